//! What the multi-server tests share: free ports, servers run until told to stop, polling.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use fafnir_server::Shutdown;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A free port for a server, below the kernel's ephemeral range (32768 and up on Linux), so
/// that no outgoing connection of this or another test can be holding it when the server binds
/// it (`bind(":0")` hands out ports of that range, which clients take too), and never the same
/// twice in this process.
pub fn port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Ports 20000–31999; the start differs between runs, so that a run does not meet the last
    // one's sockets in TIME_WAIT.
    static NEXT: AtomicU16 = AtomicU16::new(u16::MAX);
    let start = (std::process::id() % 12_000) as u16;
    let _ = NEXT.compare_exchange(u16::MAX, start, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let p = 20_000 + NEXT.fetch_add(1, Ordering::SeqCst) % 12_000;
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

pub fn addr(p: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], p))
}

pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

pub fn spawn<F, Fut>(run: F) -> Running
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: std::future::Future<Output = Result<(), fafnir_server::StartError>> + Send + 'static,
{
    let (tx, rx) = oneshot::channel::<()>();
    let fut = run(Shutdown::on(async move {
        let _ = rx.await;
    }));
    let task = tokio::spawn(async move { fut.await.unwrap() });
    Running { stop: tx, task }
}

pub async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(40) {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// API-client tokens from the password grant of `{base}/auth/token`: (access, refresh).
pub async fn tokens(base: &str, email: &str, password: &str) -> (String, String) {
    let t: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/auth/token"))
        .json(&serde_json::json!({"grant_type": "password", "email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (t["access_token"].as_str().unwrap().to_owned(), t["refresh_token"].as_str().unwrap().to_owned())
}
