//! gRPC load driver: `CheckPermission` and `CheckPermissions` against a running `fafnir serve`
//! (release), over loopback, at concurrency 1, 16 and 64 (see benches/README.md).
//! Target: p99 under 2 ms at 10,000 checks per second.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a load tool: failing loudly is the point

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fafnir_benches::driver::{free_port, Proc};
use fafnir_proto::security::v1 as pb;
use fafnir_proto::security::v1::security_service_client::SecurityServiceClient;
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::Request;

fn req<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// `rate` > 0 paces the workers to `rate` calls per second in all (unpaced otherwise).
async fn phase(
    client: &SecurityServiceClient<Channel>,
    token: &str,
    concurrency: usize,
    duration: Duration,
    batch: bool,
    rate: f64,
) -> (f64, f64, f64, usize) {
    let deadline = Instant::now() + duration;
    let perms: Vec<String> = [
        "profile:read",
        "profile:write",
        "users:read",
        "roles:manage",
        "docs:read",
        "docs:write",
        "a:b",
        "c:d",
        "e:f",
        "g:h",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let tasks: Vec<_> = (0..concurrency)
        .map(|w| {
            let (mut c, token, perms) = (client.clone(), token.to_owned(), perms.clone());
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                // Workers are staggered across the period, so the load arrives evenly rather than
                // in bursts of `concurrency` calls at once.
                let mut tick = (rate > 0.0).then(|| {
                    let period = Duration::from_secs_f64(concurrency as f64 / rate);
                    let offset = period.mul_f64(w as f64 / concurrency as f64);
                    let mut i = tokio::time::interval_at(tokio::time::Instant::now() + offset, period);
                    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    i
                });
                while Instant::now() < deadline {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    let t = Instant::now();
                    let ok = if batch {
                        c.check_permissions(req(
                            pb::CheckPermissionsRequest { user_id: String::new(), permissions: perms.clone() },
                            &token,
                        ))
                        .await
                        .is_ok()
                    } else {
                        c.check_permission(req(
                            pb::CheckPermissionRequest { user_id: String::new(), permission: "profile:read".into() },
                            &token,
                        ))
                        .await
                        .is_ok()
                    };
                    if ok {
                        lat.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    lat.sort();
    let p = |q: f64| {
        lat.get(((lat.len().max(1) - 1) as f64 * q) as usize).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(f64::NAN)
    };
    (lat.len() as f64 / duration.as_secs_f64(), p(0.5), p(0.99), errors)
}

#[tokio::main]
async fn main() {
    let mut duration = Duration::from_secs(5);
    let mut fafnir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/fafnir");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--duration" => duration = Duration::from_secs(args.next().expect("SECS").parse().expect("seconds")),
            "--fafnir" => fafnir = PathBuf::from(args.next().expect("PATH")),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(fafnir.exists(), "{} not found: run `cargo build --release -p fafnir-cli` first", fafnir.display());
    let dir = tempfile::tempdir().unwrap();
    let (http, grpc) = (free_port(), free_port());
    let _server = Proc(
        Command::new(&fafnir)
            .env("FAFNIR_DATABASE_URL", format!("sqlite://{}", dir.path().join("g.db").display()))
            .env("FAFNIR_HTTP_ADDR", format!("127.0.0.1:{http}"))
            .env("FAFNIR_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
            .env("FAFNIR_COOKIE_SECURE", "false")
            .env("FAFNIR_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start fafnir"),
    );
    let web = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{http}");
    for _ in 0..200 {
        if web.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pw = "correct horse battery staple";
    web.post(format!("{base}/auth/register"))
        .json(&json!({"email": "g@example.com", "password": pw}))
        .send()
        .await
        .unwrap();
    let tok: Value = web
        .post(format!("{base}/auth/token"))
        .json(&json!({"grant_type": "password", "email": "g@example.com", "password": pw}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_owned();
    let ch = Channel::from_shared(format!("http://127.0.0.1:{grpc}")).unwrap().connect().await.unwrap();
    let client = SecurityServiceClient::new(ch);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("## gRPC permission checks, {} s per row, one HTTP/2 connection, {cores} cores", duration.as_secs());
    println!();
    println!("| call | concurrency | calls/s | checks/s | p50 | p99 | errors |");
    println!("|---|---|---|---|---|---|---|");
    for batch in [false, true] {
        for c in [1, 16, 64] {
            let (rps, p50, p99, errors) = phase(&client, &token, c, duration, batch, 0.0).await;
            let (name, per) = if batch { ("CheckPermissions (10)", 10.0) } else { ("CheckPermission", 1.0) };
            println!("| {name} | {c} | {rps:.0} | {:.0} | {p50:.2} ms | {p99:.2} ms | {errors} |", rps * per);
        }
    }
    // The target: p99 under 2 ms at 10,000 checks per second, one check per call.
    for c in [16, 64] {
        let (rps, p50, p99, errors) = phase(&client, &token, c, duration, false, 10_000.0).await;
        println!("| CheckPermission paced at 10,000/s | {c} | {rps:.0} | {rps:.0} | {p50:.2} ms | **{p99:.2} ms** | {errors} |");
    }
}
