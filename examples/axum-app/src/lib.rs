//! An axum service that embeds Fafnir. See README.md.

use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use fafnir::http::{AuthHttp, Authorized, CurrentUser};
use serde_json::{json, Value};

// The permission `/reports` needs, as a type for the `Authorized` guard.
fafnir::permission!(pub ReportsRead = "reports:read");

/// Your application's state; Fafnir's part of it is reachable through `FromRef`.
#[derive(Debug, Clone)]
pub struct AppState {
    pub fafnir: AuthHttp,
    pub app_name: &'static str,
}

impl FromRef<AppState> for AuthHttp {
    fn from_ref(s: &AppState) -> AuthHttp {
        s.fafnir.clone()
    }
}

/// Any logged-in user.
async fn hello(State(s): State<AppState>, CurrentUser(who): CurrentUser) -> Result<String, fafnir::http::ApiError> {
    let account = s.fafnir.auth().me(&who).await?;
    Ok(format!("Hello, {} — welcome to {}", account.email, s.app_name))
}

/// Anyone: a greeting that knows the caller when there is one.
async fn welcome(who: Option<CurrentUser>) -> String {
    match who {
        Some(CurrentUser(p)) => format!("Welcome back, {}", p.user_id),
        None => "Welcome, stranger".into(),
    }
}

/// Only users holding `reports:read` (admins hold `*:*`).
async fn reports(guard: Authorized<ReportsRead>) -> Json<Value> {
    Json(json!({ "viewer": guard.principal().user_id, "reports": ["q1", "q2"] }))
}

/// Fafnir's routes and yours, in one router.
pub async fn app(fafnir: &fafnir::Fafnir) -> Result<Router, fafnir::Error> {
    let (routes, http) = fafnir.router().await?;
    let state = AppState { fafnir: http, app_name: "axum-app" };
    Ok(Router::new()
        .route("/", get(welcome))
        .route("/hello", get(hello))
        .route("/reports", get(reports))
        .with_state(state)
        .merge(routes))
}
