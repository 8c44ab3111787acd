//! GraphQL load driver: the `me` query (account, roles, permissions and profile) through the
//! gateway at concurrency 64, in both deployments (see benches/README.md):
//! - `fafnir serve`: the gateway on the in-process services;
//! - api-gateway + auth-service + security-service + user-service as four processes, each
//!   service on its own SQLite database.
//!
//! For reference it also measures `GET /auth/me` of the same server (REST, no profile).
//! Needs the release binaries: `cargo build --release -p fafnir-cli -p api-gateway -p auth-service
//! -p security-service -p user-service`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a load tool: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use fafnir_benches::driver::{drive, free_port, pct, rss_kib, wait_ready, Proc};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";
const ME: &str = "{ me { user { id email } roles permissions profile { displayName } } }";

struct Opts {
    bin: PathBuf,
    duration: Duration,
    concurrency: usize,
}

fn parse_opts() -> Opts {
    let mut bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release");
    let mut duration = Duration::from_secs(10);
    let mut concurrency = 64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bin-dir" => bin = PathBuf::from(args.next().expect("--bin-dir DIR")),
            "--duration" => {
                duration = Duration::from_secs(args.next().expect("--duration SECS").parse().expect("seconds"))
            }
            "--concurrency" => concurrency = args.next().expect("--concurrency N").parse().expect("a number"),
            other => panic!("unknown argument {other}; see benches/README.md"),
        }
    }
    Opts { bin, duration, concurrency }
}

fn start(bin: &Path, name: &str, env: &[(&str, String)], log: &Path) -> Proc {
    let path = bin.join(name);
    assert!(path.exists(), "{} not found: build the release binaries first (see this file's doc)", path.display());
    let mut cmd = Command::new(path);
    cmd.env("FAFNIR_LOG", "warn").env("FAFNIR_COOKIE_SECURE", "false");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(cmd.stdout(Stdio::null()).stderr(std::fs::File::create(log).unwrap()).spawn().expect("start"))
}

/// Registers a user through `base` (the gateway's origin) and returns a bearer token once the
/// profile has reached the user service.
async fn user(c: &reqwest::Client, base: &str) -> String {
    let r = c
        .post(format!("{base}/auth/register"))
        .json(&json!({"email": "bench@example.com", "password": PASSWORD, "display_name": "Bench"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "register: {}", r.text().await.unwrap());
    let tok: Value = c
        .post(format!("{base}/auth/token"))
        .json(&json!({"grant_type": "password", "email": "bench@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["access_token"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        if me(c, base, &token).await {
            return token;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the me query never answered in full");
}

async fn me(c: &reqwest::Client, base: &str, token: &str) -> bool {
    let Ok(r) = c.post(format!("{base}/graphql")).bearer_auth(token).json(&json!({ "query": ME })).send().await else {
        return false;
    };
    if r.status() != 200 {
        return false;
    }
    let Ok(v) = r.json::<Value>().await else { return false };
    v.get("errors").is_none() && v["data"]["me"]["profile"]["displayName"] == "Bench"
}

struct Row {
    what: String,
    rps: f64,
    p50: f64,
    p99: f64,
    errors: usize,
}

/// What a row sends: the `me` query (answer checked in full), another query (no errors), or a
/// REST GET (200).
#[derive(Clone, Copy)]
enum Op {
    Me,
    Query(&'static str),
    Get,
}

async fn query_ok(c: &reqwest::Client, url: &str, token: &str, query: &str) -> bool {
    let Ok(r) = c.post(url).bearer_auth(token).json(&json!({ "query": query })).send().await else {
        return false;
    };
    r.status() == 200 && r.json::<Value>().await.is_ok_and(|v| v.get("errors").is_none())
}

async fn measure(c: &reqwest::Client, o: &Opts, what: &str, url: String, token: String, op: Op) -> Row {
    let (c2, u, t) = (c.clone(), url.clone(), token.clone());
    let (ok, errors, lat) = drive(o.concurrency, o.duration, move |_| {
        let (c, u, t) = (c2.clone(), u.clone(), t.clone());
        async move {
            match op {
                Op::Me => me(&c, u.trim_end_matches("/graphql"), &t).await,
                Op::Query(q) => query_ok(&c, &u, &t, q).await,
                Op::Get => c.get(&u).bearer_auth(&t).send().await.is_ok_and(|r| r.status() == 200),
            }
        }
    })
    .await;
    Row {
        what: what.to_owned(),
        rps: ok as f64 / o.duration.as_secs_f64(),
        p50: pct(&lat, 0.5),
        p99: pct(&lat, 0.99),
        errors,
    }
}

#[tokio::main]
async fn main() {
    let o = parse_opts();
    let dir = tempfile::tempdir().unwrap();
    let db = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let c = reqwest::Client::builder().pool_max_idle_per_host(o.concurrency * 2).build().unwrap();
    let mut rows = Vec::new();

    // 1. fafnir serve.
    let (http, grpc) = (free_port(), free_port());
    let server = start(
        &o.bin,
        "fafnir",
        &[
            ("FAFNIR_DATABASE_URL", db("all.db")),
            ("FAFNIR_HTTP_ADDR", format!("127.0.0.1:{http}")),
            ("FAFNIR_GRPC_ADDR", format!("127.0.0.1:{grpc}")),
        ],
        &dir.path().join("fafnir.log"),
    );
    let base = format!("http://127.0.0.1:{http}");
    wait_ready(&c, &format!("{base}/readyz")).await;
    let token = user(&c, &base).await;
    let gql = format!("{base}/graphql");
    rows.push(measure(&c, &o, "`me` query, fafnir serve", gql.clone(), token.clone(), Op::Me).await);
    let no_profile = "{ me { user { id email } roles permissions } }";
    rows.push(measure(&c, &o, "… `me` without `profile`", gql.clone(), token.clone(), Op::Query(no_profile)).await);
    let health = "{ health { status } }";
    rows.push(
        measure(&c, &o, "… `{ health { status } }` (GraphQL layer only)", gql, token.clone(), Op::Query(health)).await,
    );
    rows.push(measure(&c, &o, "`GET /auth/me` (REST), fafnir serve", format!("{base}/auth/me"), token, Op::Get).await);
    let rss_all = rss_kib(server.0.id());
    drop(server);

    // 2. Four processes.
    let (gw, auth, sec, sec_http, usr, usr_http) =
        (free_port(), free_port(), free_port(), free_port(), free_port(), free_port());
    let urls = [
        ("FAFNIR_AUTH_URL", format!("http://127.0.0.1:{auth}")),
        ("FAFNIR_SECURITY_URL", format!("http://127.0.0.1:{sec}")),
        ("FAFNIR_USERS_URL", format!("http://127.0.0.1:{usr}")),
    ];
    let with = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        urls.iter().cloned().chain(extra.iter().cloned()).collect()
    };
    let _security = start(
        &o.bin,
        "security-service",
        &with(&[
            ("FAFNIR_DATABASE_URL", db("security.db")),
            ("FAFNIR_GRPC_ADDR", format!("127.0.0.1:{sec}")),
            ("FAFNIR_HTTP_ADDR", format!("127.0.0.1:{sec_http}")),
        ]),
        &dir.path().join("security.log"),
    );
    let _users = start(
        &o.bin,
        "user-service",
        &with(&[
            ("FAFNIR_DATABASE_URL", db("users.db")),
            ("FAFNIR_GRPC_ADDR", format!("127.0.0.1:{usr}")),
            ("FAFNIR_HTTP_ADDR", format!("127.0.0.1:{usr_http}")),
        ]),
        &dir.path().join("users.log"),
    );
    let _auth = start(
        &o.bin,
        "auth-service",
        &with(&[
            ("FAFNIR_DATABASE_URL", db("auth.db")),
            ("FAFNIR_HTTP_ADDR", format!("127.0.0.1:{auth}")),
            ("FAFNIR_TRUST_FORWARDED_FOR", "true".into()),
        ]),
        &dir.path().join("auth.log"),
    );
    wait_ready(&c, &format!("http://127.0.0.1:{auth}/readyz")).await;
    let gateway = start(
        &o.bin,
        "api-gateway",
        &with(&[("FAFNIR_HTTP_ADDR", format!("127.0.0.1:{gw}"))]),
        &dir.path().join("gateway.log"),
    );
    let base = format!("http://127.0.0.1:{gw}");
    wait_ready(&c, &format!("{base}/readyz")).await;
    wait_ready(&c, &format!("http://127.0.0.1:{sec_http}/readyz")).await;
    wait_ready(&c, &format!("http://127.0.0.1:{usr_http}/readyz")).await;
    let token = user(&c, &base).await;
    rows.push(
        measure(&c, &o, "`me` query, api-gateway + 3 services", format!("{base}/graphql"), token.clone(), Op::Me).await,
    );
    rows.push(
        measure(&c, &o, "`GET /auth/me` through the gateway's proxy", format!("{base}/auth/me"), token, Op::Get).await,
    );
    let rss_gw = rss_kib(gateway.0.id());

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "## GraphQL `me`, concurrency {}, {} s per row, {cores} cores, driver on the same machine",
        o.concurrency,
        o.duration.as_secs()
    );
    println!();
    println!("| request | req/s | p50 | p99 | errors |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!("| {} | {:.0} | {:.2} ms | {:.2} ms | {} |", r.what, r.rps, r.p50, r.p99, r.errors);
    }
    println!();
    println!(
        "RSS after load: fafnir serve {:.1} MB, api-gateway {:.1} MB",
        rss_all as f64 / 1024.0,
        rss_gw as f64 / 1024.0
    );
}
