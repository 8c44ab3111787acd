//! Load driver for a running `fafnir serve` (see benches/README.md).
//!
//! It starts the release `fafnir` binary on a fresh SQLite database, and a bare axum handler as
//! a second process for the baseline, then measures:
//! - login throughput at concurrency C, as a fraction of the machine's hashing limit
//!   (cores ÷ the time of one Argon2id hash with the production parameters, measured in this run);
//! - authenticated `GET /auth/me`: requests per second and p99, against the bare handler's
//!   requests per second at the same concurrency;
//! - `POST /auth/refresh` (body mode) per second;
//! - resident memory of the idle server.
//!
//! Loops are bounded by time; all traffic goes to 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a load tool: failing loudly is the point

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fafnir_auth::{Argon2Config, Password, PasswordHasher};
use fafnir_benches::driver::{drive, free_port, pct, rss_kib, wait_ready, Proc};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";

/// Logins answered 429 (diagnostic: with one account per worker there should be none).
static LIMITED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Opts {
    fafnir: PathBuf,
    duration: Duration,
    concurrency: usize,
    /// Seconds of `GET /auth/me` after the other phases, with the server's RSS sampled every
    /// [`SOAK_ROUND`]: whether memory levels off under sustained load (0: no soak).
    soak: u64,
}

const SOAK_ROUND: Duration = Duration::from_secs(10);

fn parse_opts() -> Opts {
    let mut fafnir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/fafnir");
    let mut duration = Duration::from_secs(10);
    let mut concurrency = 64;
    let mut soak = 0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--fafnir" => fafnir = PathBuf::from(args.next().expect("--fafnir PATH")),
            "--duration" => {
                duration = Duration::from_secs(args.next().expect("--duration SECS").parse().expect("seconds"))
            }
            "--concurrency" => concurrency = args.next().expect("--concurrency N").parse().expect("a number"),
            "--soak" => soak = args.next().expect("--soak SECS").parse().expect("seconds"),
            other => panic!("unknown argument {other}; see benches/README.md"),
        }
    }
    Opts { fafnir, duration, concurrency, soak }
}

/// User + system CPU time of a process, from /proc (clock ticks of 10 ms on Linux).
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks * 10.0
}

/// Machine-wide (busy, idle, steal) jiffies from /proc/stat.
fn machine_cpu() -> (f64, f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> =
        stat.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0.0);
    // user nice system idle iowait irq softirq steal
    let idle = get(3) + get(4);
    let steal = get(7);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6);
    (busy, idle, steal)
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1);
    if matches!(mode.as_deref(), Some("bare-server" | "bare-hardened-server")) {
        let port = std::env::args().nth(2).and_then(|p| p.parse().ok()).expect("bare-server PORT");
        return fafnir_benches::bare::serve(port, mode.as_deref() == Some("bare-hardened-server")).await;
    }
    let o = parse_opts();
    assert!(o.fafnir.exists(), "{} not found: run `cargo build --release -p fafnir-cli` first", o.fafnir.display());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // One account per worker, created before the server starts (registration through the API
    // is rate-limited per address, as it should be).
    let db_url = format!("sqlite://{}", dir.path().join("load.db").display());
    for w in 0..o.concurrency {
        let mut child = Command::new(&o.fafnir)
            .args(["user", "create", "--email", &format!("load{w}@example.com"), "--password-stdin"])
            .env("FAFNIR_DATABASE_URL", &db_url)
            .env("FAFNIR_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("fafnir user create");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
        assert!(child.wait().unwrap().success(), "creating load{w}@example.com");
    }
    let server = Proc(
        Command::new(&o.fafnir)
            .arg("serve")
            .env("FAFNIR_DATABASE_URL", &db_url)
            .env("FAFNIR_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("FAFNIR_COOKIE_SECURE", "false")
            .env("FAFNIR_LOG", "warn")
            .stdout(std::fs::File::create(dir.path().join("server.log")).unwrap())
            .spawn()
            .expect("start fafnir"),
    );
    let c = reqwest::Client::builder().pool_max_idle_per_host(o.concurrency * 2).build().unwrap();
    wait_ready(&c, &format!("{base}/healthz")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kib(server.0.id());

    // The machine's hashing limit, measured now: one production-parameter hash at a time.
    let hasher = PasswordHasher::new(Argon2Config::default(), 1).unwrap();
    let pw = Password::new(PASSWORD);
    hasher.hash(&pw).await.unwrap();
    // The median of 20, so that a scheduling hiccup does not move the limit.
    let mut samples = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        hasher.hash(&pw).await.unwrap();
        samples.push(t.elapsed());
    }
    samples.sort();
    let one_hash = samples[samples.len() / 2];
    let limit = cores as f64 / one_hash.as_secs_f64();
    // What the machine really sustains: `cores` hashes at a time, back to back, nothing else
    // running in this process (the idle server is the only other process). On SMT siblings or a
    // shared host this is below the limit above, which assumes hashes scale with cores.
    let parallel = Arc::new(PasswordHasher::new(Argon2Config::default(), cores).unwrap());
    let hashed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(5);
    let runs: Vec<_> = (0..cores)
        .map(|_| {
            let (h, n, pw) = (parallel.clone(), hashed.clone(), Password::new(PASSWORD));
            tokio::spawn(async move {
                while Instant::now() < until {
                    h.hash(&pw).await.unwrap();
                    n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for r in runs {
        r.await.unwrap();
    }
    let capacity = hashed.load(std::sync::atomic::Ordering::Relaxed) as f64 / 5.0;

    // Logins.
    let cpu_before = cpu_ms(server.0.id());
    let m0 = machine_cpu();
    let (lc, lbase) = (c.clone(), base.clone());
    let (l_ok, l_err, l_lat) = drive(o.concurrency, o.duration, move |w| {
        let (c, base) = (lc.clone(), lbase.clone());
        async move {
            c.post(format!("{base}/auth/login"))
                .json(&json!({"email": format!("load{w}@example.com"), "password": PASSWORD}))
                .send()
                .await
                .map(|r| {
                    if r.status() == 429 && LIMITED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
                        eprintln!("first 429: worker {w}, retry-after {:?}", r.headers().get("retry-after"));
                    }
                    r.status() == 200
                })
                .unwrap_or_else(|e| {
                    eprintln!("login request failed: {e}");
                    false
                })
        }
    })
    .await;
    let logins = l_ok as f64 / o.duration.as_secs_f64();
    let cpu_per_login = (cpu_ms(server.0.id()) - cpu_before) / l_ok.max(1) as f64;
    let m1 = machine_cpu();
    let total = (m1.0 - m0.0) + (m1.1 - m0.1) + (m1.2 - m0.2);
    let (busy_pct, steal_pct) = (100.0 * (m1.0 - m0.0) / total, 100.0 * (m1.2 - m0.2) / total);

    // GET /auth/me with a Bearer token.
    let tok: Value = c
        .post(format!("{base}/auth/token"))
        .json(&json!({"grant_type": "password", "email": "load0@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tok["access_token"].as_str().unwrap().to_owned();
    let (mc, mbase, macc) = (c.clone(), base.clone(), access.clone());
    let (m_ok, m_err, m_lat) = drive(o.concurrency, o.duration, move |_| {
        let (c, base, a) = (mc.clone(), mbase.clone(), macc.clone());
        async move { c.get(format!("{base}/auth/me")).bearer_auth(a).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    let me_rps = m_ok as f64 / o.duration.as_secs_f64();

    // The bare axum handler, in its own process, same client, same concurrency.
    let bare_port = free_port();
    let _bare = Proc(
        Command::new(std::env::current_exe().unwrap()).args(["bare-server", &bare_port.to_string()]).spawn().unwrap(),
    );
    let bare_url = format!("http://127.0.0.1:{bare_port}/bare");
    wait_ready(&c, &bare_url).await;
    let (bc, burl) = (c.clone(), bare_url.clone());
    let (b_ok, b_err, b_lat) = drive(o.concurrency, o.duration, move |_| {
        let (c, url) = (bc.clone(), burl.clone());
        async move { c.get(url).send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    let bare_rps = b_ok as f64 / o.duration.as_secs_f64();

    // POST /auth/refresh: one session per worker, each rotating its own token.
    let mut tokens = Vec::new();
    for _ in 0..o.concurrency {
        let t: Value = c
            .post(format!("{base}/auth/token"))
            .json(&json!({"grant_type": "password", "email": "load0@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(tokio::sync::Mutex::new(t["refresh_token"].as_str().unwrap().to_owned()));
    }
    let tokens = Arc::new(tokens);
    let (rc, rbase) = (c.clone(), base.clone());
    let (r_ok, r_err, r_lat) = drive(o.concurrency, o.duration, move |w| {
        let (c, base, tokens) = (rc.clone(), rbase.clone(), tokens.clone());
        async move {
            let mut slot = tokens[w].lock().await;
            let res = c.post(format!("{base}/auth/refresh")).json(&json!({"refresh_token": *slot})).send().await;
            let Ok(res) = res else { return false };
            if res.status() != 200 {
                return false;
            }
            let v: Value = res.json().await.unwrap_or(Value::Null);
            match v["refresh_token"].as_str() {
                Some(t) => {
                    *slot = t.to_owned();
                    true
                }
                None => false,
            }
        }
    })
    .await;
    let refresh_rps = r_ok as f64 / o.duration.as_secs_f64();
    let after_rss = rss_kib(server.0.id());

    if l_err > 0 {
        eprintln!("logins answered 429: {}", LIMITED.load(std::sync::atomic::Ordering::Relaxed));
    }
    if l_err + m_err + r_err > 0 {
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).take(5) {
            eprintln!("server: {line}");
        }
    }
    println!("## Load run: {} s per phase, concurrency {}, {} cores", o.duration.as_secs(), o.concurrency, cores);
    println!();
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!("| one Argon2id hash (m=19456 KiB, t=2, p=1), this run | {:.1} ms | |", one_hash.as_secs_f64() * 1000.0);
    println!("| hashing limit = cores ÷ hash time | {limit:.0} /s | |");
    println!(
        "| hashing capacity: {cores} hashes at a time, back to back, no server work | {capacity:.0} /s ({:.0}% of the limit) | |",
        100.0 * capacity / limit
    );
    println!(
        "| `POST /auth/login` | {logins:.0} /s, p99 {:.0} ms, {l_err} errors | **{:.0}%** of the limit (target ≥ 90%, no errors); {:.0}% of the measured capacity |",
        pct(&l_lat, 0.99),
        100.0 * logins / limit,
        100.0 * logins / capacity
    );
    println!(
        "| server CPU per login | {cpu_per_login:.1} ms | one hash is {:.1} ms: the rest is HTTP, database and token work; machine busy {busy_pct:.0}%, stolen by the hypervisor {steal_pct:.0}% |",
        one_hash.as_secs_f64() * 1000.0
    );
    println!(
        "| bare axum handler `GET /bare` | {bare_rps:.0} /s, p99 {:.2} ms, {b_err} errors | baseline |",
        pct(&b_lat, 0.99)
    );
    println!(
        "| `GET /auth/me` (Bearer) | {me_rps:.0} /s, p50 {:.2} ms, p99 {:.2} ms, {m_err} errors | **{:.0}%** of bare (target ≥ 70%) |",
        pct(&m_lat, 0.5),
        pct(&m_lat, 0.99),
        100.0 * me_rps / bare_rps
    );
    println!("| `POST /auth/refresh` | {refresh_rps:.0} /s, p99 {:.1} ms, {r_err} errors | |", pct(&r_lat, 0.99));
    println!("| idle resident memory of `fafnir serve` | {:.1} MB | < 30 MB |", idle_rss as f64 / 1024.0);
    println!("| resident memory after the run | {:.1} MB | |", after_rss as f64 / 1024.0);

    if o.soak > 0 {
        soak(&o, &c, &base, &access, server.0.id()).await;
    }
}

/// Sustained `GET /auth/me` with one token, RSS after every round: a server that keeps
/// something per request grows round after round; a sound one levels off.
async fn soak(o: &Opts, c: &reqwest::Client, base: &str, access: &str, pid: u32) {
    let rounds = (o.soak / SOAK_ROUND.as_secs()).max(2);
    println!();
    println!(
        "## Soak: `GET /auth/me`, one token, concurrency {}, {rounds} rounds of {} s",
        o.concurrency,
        SOAK_ROUND.as_secs()
    );
    println!();
    println!("| after | requests (total) | errors | RSS |");
    println!("|---|---|---|---|");
    let start_rss = rss_kib(pid);
    println!("| 0 s | 0 | 0 | {:.1} MB |", start_rss as f64 / 1024.0);
    let (mut total, mut errors, mut samples) = (0usize, 0usize, vec![start_rss]);
    for round in 1..=rounds {
        let (mc, mbase, macc) = (c.clone(), base.to_owned(), access.to_owned());
        let (ok, err, _) = drive(o.concurrency, SOAK_ROUND, move |_| {
            let (c, base, a) = (mc.clone(), mbase.clone(), macc.clone());
            async move { c.get(format!("{base}/auth/me")).bearer_auth(a).send().await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        total += ok;
        errors += err;
        let rss = rss_kib(pid);
        samples.push(rss);
        println!("| {} s | {total} | {errors} | {:.1} MB |", round * SOAK_ROUND.as_secs(), rss as f64 / 1024.0);
    }
    // Levelled off: the second half of the run added little next to what the first half did.
    let half = samples.len() / 2;
    let kib = |i: usize| samples[i] as f64;
    let (first, second) = (kib(half) - kib(0), kib(samples.len() - 1) - kib(half));
    let per_request = (kib(samples.len() - 1) - kib(1)) * 1024.0 / total.max(1) as f64;
    println!();
    println!(
        "RSS grew {:.1} MB in the first half and {:.1} MB in the second; {per_request:.2} bytes per request after the first round.",
        first / 1024.0,
        second / 1024.0
    );
}
