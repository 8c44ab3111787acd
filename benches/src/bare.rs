//! The baseline of `benches/wrk-me.sh`: a bare axum handler answering JSON of the shape and
//! size of `GET /auth/me`, built per request, served by `axum::serve` as a plain axum app would
//! be. `hardened` puts the same handler behind what every Fafnir server adds (the hardening
//! layers, the metrics route layer, and the accept loop with its header timeout and connection
//! cap), so that the gap between `me` and bare splits into what the layers cost and what `me`
//! itself does.
//!
//! Served by two binaries: `load bare-server|bare-hardened-server PORT` on the system allocator
//! (the baseline a plain axum app gets), and `bare-mimalloc plain|hardened PORT` on the
//! allocator Fafnir's binaries use, so that the comparison can also be made allocator for
//! allocator.

use std::net::SocketAddr;

use serde_json::json;

pub async fn serve(port: u16, hardened: bool) {
    let app = axum::Router::new().route(
        "/bare",
        axum::routing::get(|| async {
            axum::Json(json!({
                "id": "01a22638-2a71-71b4-b883-01d336e6cc2e",
                "email": "load0@example.com",
                "email_verified": false,
                "roles": ["member"],
                "permissions": ["profile:read", "profile:write"],
                "created_at": "2026-11-29T07:32:24.817Z",
                "sign_in_methods": ["password"]
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    if hardened {
        let settings = fafnir_auth::http::HttpSettings::from_config(&fafnir_core::Config::default());
        let app = fafnir_server::http::harden(app, &settings, false);
        fafnir_server::serve(listener, app, std::future::pending()).await.unwrap();
    } else {
        axum::serve(listener, app).await.unwrap();
    }
}
