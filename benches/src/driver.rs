//! What the load drivers share: child processes that die with the driver, ports, readiness,
//! time-bounded workers and percentiles.

use std::net::TcpListener;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A child process, killed when dropped.
#[derive(Debug)]
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until `url` answers 2xx (10 s at most).
pub async fn wait_ready(c: &reqwest::Client, url: &str) {
    for _ in 0..200 {
        if c.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not come up");
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs `op` from `concurrency` workers for `duration`; returns (ok count, error count, latencies).
pub async fn drive<F, Fut>(concurrency: usize, duration: Duration, op: F) -> (usize, usize, Vec<Duration>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let deadline = Instant::now() + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let op = op.clone();
            tokio::spawn(async move {
                let (mut ok, mut err, mut lat) = (0usize, 0usize, Vec::new());
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if op(w).await {
                        ok += 1;
                        lat.push(t.elapsed());
                    } else {
                        err += 1;
                    }
                }
                (ok, err, lat)
            })
        })
        .collect();
    let (mut ok, mut err, mut lat) = (0, 0, Vec::new());
    for w in workers {
        let (o, e, l) = w.await.unwrap();
        ok += o;
        err += e;
        lat.extend(l);
    }
    lat.sort();
    (ok, err, lat)
}

/// The `p` quantile (0..1) of sorted latencies, in milliseconds.
pub fn pct(lat: &[Duration], p: f64) -> f64 {
    if lat.is_empty() {
        return f64::NAN;
    }
    let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
    lat[i].as_secs_f64() * 1000.0
}
