//! Serving connections: the accept loops of the HTTP and gRPC listeners, with the limits that
//! keep slow or idle clients from holding a process hostage.
//!
//! - A connection must send its request headers within [`Limits::header_read_timeout`] (also
//!   between keep-alive requests) — on gRPC listeners, the HTTP/2 preface — otherwise it is
//!   closed; a gRPC connection lives at most [`MAX_CONNECTION_AGE`] (then it is asked to go
//!   away and reconnect), so an idle one cannot hold its place forever.
//! - At most [`Limits::max_connections`] connections are open per process, across all of its
//!   listeners; beyond that new connections wait in the kernel's accept queue.
//! - On shutdown, listeners stop accepting, idle connections close, in-flight requests get
//!   [`Limits::shutdown_grace`] to finish; whatever is still open then is closed.
//!
//! HTTP listeners speak HTTP/1.1 (what browsers, proxies and load balancers send over plain
//! TCP); gRPC has its own listener.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::StartError;

/// What the HTTP accept loops serve: an [`axum::Router`], or a router behind
/// [`crate::http::harden`] (the hardening layers wrap it as one service, not as another router
/// level, so that no request routes twice). The service must always be ready (routers and
/// Fafnir's layers are): the accept loop calls it without `poll_ready`, so a layer that applies
/// back-pressure through readiness (a concurrency limit, a buffer) belongs inside the router.
pub trait HttpApp:
    tower::Service<
        axum::extract::Request,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> HttpApp for T where
    T: tower::Service<
            axum::extract::Request,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Connection limits of one process.
#[derive(Debug, Clone)]
pub struct Limits {
    connections: Arc<Semaphore>,
    max_connections: usize,
    pub header_read_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl Limits {
    pub fn new(max_connections: usize, header_read_timeout: Duration, shutdown_grace: Duration) -> Self {
        let max_connections = max_connections.max(1);
        Self {
            connections: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            header_read_timeout,
            shutdown_grace,
        }
    }

    pub fn from_config(c: &fafnir_core::Config) -> Self {
        Self::new(c.max_connections, c.header_read_timeout, c.shutdown_timeout)
    }

    /// Sets the process-wide limits from the configuration (the first call wins: one process,
    /// one connection budget) and returns them.
    pub fn install(c: &fafnir_core::Config) -> &'static Limits {
        PROCESS.get_or_init(|| Limits::from_config(c))
    }

    /// The process-wide limits: as installed, else the defaults.
    pub fn current() -> &'static Limits {
        PROCESS.get_or_init(|| Limits::from_config(&fafnir_core::Config::default()))
    }

    /// The most connections open at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Connections open now, across the listeners that share these limits (a listener waiting
    /// for its next connection holds one place for it).
    pub fn open_connections(&self) -> usize {
        self.max_connections - self.connections.available_permits()
    }

    /// Waits for room for one more connection.
    async fn admit(&self) -> OwnedSemaphorePermit {
        // Acquiring fails only on a closed semaphore, and nothing ever closes this one.
        self.connections.clone().acquire_owned().await.expect("the connection semaphore is never closed")
    }
}

static PROCESS: OnceLock<Limits> = OnceLock::new();

/// The longest a gRPC connection lives before the server asks the client to reconnect.
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(30 * 60);

/// Connections of a health/metrics side port: its own small budget, so that probes are answered
/// even when the main listener's budget is spent.
pub const SIDE_PORT_CONNECTIONS: usize = 64;

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|e| StartError::Io(format!("cannot listen on {addr}: {e}")))
}

/// Serves `app` until `shutdown` resolves, with the process-wide [`Limits`].
pub async fn serve(
    listener: TcpListener,
    app: impl HttpApp,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    serve_with(listener, app, shutdown, Limits::current()).await
}

/// Serves `app` until `shutdown` resolves, within `limits`; then stops accepting, lets
/// in-flight requests finish for at most `limits.shutdown_grace`, and closes the rest.
pub async fn serve_with(
    listener: TcpListener,
    app: impl HttpApp,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: &Limits,
) -> Result<(), StartError> {
    // Told to every connection at shutdown: finish the request in flight, then close. One
    // `oneshot` per connection, each polled only by its own connection (one atomic load per
    // wake-up); a shared `watch` would take its waiter list's lock on every poll of every
    // connection, from every worker thread.
    let mut stop: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = limits.admit() => p,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // With upgrades: a route of the app may take the connection over (WebSocket).
        let conn = http1(limits).serve_connection(TokioIo::new(stream), service(&app, peer)).with_upgrades();
        // Forget the connections that have closed, now and then.
        if stop.len() > 2 * connections.len() + 16 {
            stop.retain(|tx| !tx.is_closed());
        }
        let (tx, mut stopping) = tokio::sync::oneshot::channel::<()>();
        stop.push(tx);
        connections.spawn(async move {
            let mut conn = pin!(conn);
            // The connection first: it is what is ready nearly every time this task runs.
            let r = tokio::select! {
                biased;
                r = conn.as_mut() => r,
                _ = &mut stopping => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, %peer, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    for tx in stop {
        let _ = tx.send(());
    }
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, drained).await.is_err() {
        tracing::warn!(
            open = connections.len(),
            "HTTP: connections still open {:?} after shutdown began; closing them",
            limits.shutdown_grace
        );
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// HTTP/1.1 only (no protocol sniffing that could wait on a silent client before the header
/// timer starts), with the header-read timeout.
fn http1(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(HeadTimer::default()).header_read_timeout(limits.header_read_timeout);
    b
}

/// The header-read timer of one connection. hyper asks for a new timer at every request head
/// and drops it once the head has arrived; with `hyper_util`'s `TokioTimer`, every request
/// would register a timer with the runtime's timer driver and remove it again, each under the
/// driver's one lock, shared by all worker threads. Here the connection keeps one tokio timer:
/// a head's timer takes it when it is first polled (a head that has already arrived never
/// needs it) and gives it back when dropped. The timer is not moved at every head: it keeps
/// the deadline of an earlier head, which is never later than this one's (each counts the
/// same timeout from a later start), and when it fires before this head's deadline it is
/// moved then, once. A stale registration wakes the connection once, harmlessly.
#[derive(Default)]
struct HeadTimer {
    spare: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

/// One request head's timer (see [`HeadTimer`]).
struct HeadSleep {
    deadline: tokio::time::Instant,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    spare: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

impl HeadTimer {
    fn slot(
        spare: &Mutex<Option<Pin<Box<tokio::time::Sleep>>>>,
    ) -> std::sync::MutexGuard<'_, Option<Pin<Box<tokio::time::Sleep>>>> {
        spare.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    /// The runtime's clock (a paused one in tests), as `TokioTimer`'s: hyper counts each
    /// head's deadline from it.
    fn now(&self) -> std::time::Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadSleep { deadline: deadline.into(), timer: None, spare: self.spare.clone() })
    }
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        let this = &mut *self;
        let deadline = this.deadline;
        let timer = this.timer.get_or_insert_with(|| match HeadTimer::slot(&this.spare).take() {
            Some(mut t) => {
                // A later deadline than this head's cannot be kept (it would cut the head
                // late); an earlier one is moved when it fires, below.
                if t.deadline() > deadline {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        });
        loop {
            std::task::ready!(timer.as_mut().poll(cx));
            if timer.deadline() >= deadline {
                return std::task::Poll::Ready(());
            }
            // An earlier head's deadline: this head has until its own.
            timer.as_mut().reset(deadline);
        }
    }
}

impl hyper::rt::Sleep for HeadSleep {}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        if let Some(t) = self.timer.take() {
            *HeadTimer::slot(&self.spare) = Some(t);
        }
    }
}

/// The router as a hyper service for one connection, with the peer's address available to
/// handlers as `ConnectInfo<SocketAddr>` (as `into_make_service_with_connect_info` would).
/// Written out rather than `TowerToHyperService` over a `service_fn`: that clones the closure,
/// and the closure the router, so every request would touch the router's shared reference
/// count twice; here once.
#[derive(Clone)]
struct AppService<A> {
    app: A,
    peer: SocketAddr,
}

fn service<A: HttpApp>(app: &A, peer: SocketAddr) -> AppService<A> {
    AppService { app: app.clone(), peer }
}

impl<A: HttpApp> hyper::service::Service<hyper::Request<hyper::body::Incoming>> for AppService<A> {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = A::Future;

    fn call(&self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        // Always ready (see `HttpApp`), and `call` needs `&mut`: call a clone (for the router,
        // one reference count; a CORS layer, when configured, copies its lists).
        tower::Service::call(&mut self.app.clone(), req.map(axum::body::Body::new))
    }
}

/// After an accept error: too many open files and the like pass; wait a little so that a
/// persistent error does not spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if !matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        tracing::warn!(error = %e, "accept failed; retrying shortly");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The HTTP/2 connection preface every gRPC client sends first.
const H2_PREFACE_LEN: usize = 24;

/// A connection that holds one of the process's connection permits while it is open, and must
/// send the HTTP/2 preface within the header-read timeout (the gRPC server has no timeout of
/// its own before the handshake: a silent client would hold its permit forever).
#[derive(Debug)]
pub(crate) struct Admitted {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Until the preface has arrived: when it must have, and how many bytes came so far.
    preface: Option<(std::pin::Pin<Box<tokio::time::Sleep>>, usize)>,
}

impl tokio::io::AsyncRead for Admitted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future;
        use std::task::Poll;
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if let Some((deadline, seen)) = &mut self.preface {
            if let Poll::Ready(Ok(())) = &r {
                *seen += buf.filled().len() - before;
                if *seen >= H2_PREFACE_LEN {
                    self.preface = None;
                    return r;
                }
            }
            if r.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no HTTP/2 preface within the header-read timeout",
                )));
            }
        }
        r
    }
}

impl tokio::io::AsyncWrite for Admitted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for Admitted {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// The accepted connections of a gRPC listener, each admitted within `limits`, until
/// `stop` fires.
pub(crate) fn admitted(
    listener: TcpListener,
    limits: Limits,
) -> impl futures_util::Stream<Item = Result<Admitted, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold((listener, limits), |(listener, limits)| async move {
        loop {
            let permit = limits.admit().await;
            match listener.accept().await {
                Ok((io, _)) => {
                    let _ = io.set_nodelay(true);
                    let deadline = Box::pin(tokio::time::sleep(limits.header_read_timeout));
                    let admitted = Admitted { io, _permit: permit, preface: Some((deadline, 0)) };
                    return Some((Ok(admitted), (listener, limits)));
                }
                Err(e) => accept_error(e).await,
            }
        }
    })
}

/// Runs `server` (which stops accepting when `shutdown` fires and then waits for its
/// connections) but gives up waiting `grace` after `shutdown`: a connection that never
/// finishes must not keep the process alive.
pub(crate) async fn bounded<T>(
    server: impl Future<Output = T>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    what: &str,
) -> Option<T> {
    let mut server = pin!(server);
    let deadline = async {
        shutdown.await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = &mut server => Some(r),
        () = deadline => {
            tracing::warn!("{what}: connections still open {grace:?} after shutdown began; closing them");
            None
        }
    }
}
