//! What every client of a Fafnir gRPC service shares: lazily connected channels, the caller's
//! token on each call, a deadline per call, and retries of idempotent reads.

use std::future::Future;
use std::time::Duration;

use fafnir_core::ServiceError;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Timeouts and retries of the clients.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// Per call.
    pub timeout: Duration,
    /// Tries of an idempotent read (checks, role reads) before giving up.
    pub attempts: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(2), attempts: 3 }
    }
}

/// A lazily connected channel to `url` (`http://host:port`): creating it never fails because
/// the service is down; calls fail with UNAVAILABLE until it is up, and the channel reconnects.
pub fn channel(url: &str) -> Result<Channel, ServiceError> {
    Ok(Channel::from_shared(url.to_owned())
        .map_err(|e| ServiceError::Internal(format!("bad service URL {url}: {e}")))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// A request carrying `bearer` (kept out of Debug output and of HTTP/2 header compression) and
/// a deadline.
pub fn with_bearer<T>(msg: T, bearer: Option<&str>, timeout: Duration) -> Request<T> {
    let mut req = Request::new(msg);
    req.set_timeout(timeout);
    if let Some(mut v) = bearer.and_then(|b| format!("Bearer {b}").parse::<tonic::metadata::MetadataValue<_>>().ok()) {
        v.set_sensitive(true);
        req.metadata_mut().insert("authorization", v);
    }
    req
}

/// Retries an idempotent call on transient failure ([`crate::status::transient`]): up to
/// `attempts` tries, 50 ms, 100 ms … apart.
pub async fn with_retries<T, F, Fut>(attempts: u32, mut f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let mut delay = Duration::from_millis(50);
    let mut last = None;
    for _ in 0..attempts.max(1) {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if crate::status::transient(&e) => {
                last = Some(e);
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Status::unavailable("no attempt made")))
}

/// A generated client `C` with the options of its calls. `read` retries (the call must be
/// idempotent); `write` sends once, since a timeout may hide a success. Both forward the
/// caller's token and set the deadline; the answer's failure is read through
/// [`crate::codec::from_peer`].
///
/// ```ignore
/// let profile = self.client.read(pb::GetProfileRequest { user_id }, bearer, |mut c, r| async move {
///     c.get_profile(r).await
/// }).await?;
/// ```
#[derive(Debug, Clone)]
pub struct Client<C> {
    inner: C,
    opts: ClientOptions,
}

impl<C: Clone> Client<C> {
    pub fn new(inner: C, opts: ClientOptions) -> Self {
        Self { inner, opts }
    }

    /// An idempotent call, retried on transient failure.
    pub async fn read<M, R, Fut>(
        &self,
        msg: M,
        bearer: Option<&str>,
        call: impl Fn(C, Request<M>) -> Fut,
    ) -> Result<R, Status>
    where
        M: Clone,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        with_retries(self.opts.attempts, || {
            call(self.inner.clone(), with_bearer(msg.clone(), bearer, self.opts.timeout))
        })
        .await
        .map(Response::into_inner)
        .map_err(crate::codec::from_peer)
    }

    /// A call that changes something: sent once.
    pub async fn write<M, R, Fut>(
        &self,
        msg: M,
        bearer: Option<&str>,
        call: impl FnOnce(C, Request<M>) -> Fut,
    ) -> Result<R, Status>
    where
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        call(self.inner.clone(), with_bearer(msg, bearer, self.opts.timeout))
            .await
            .map(Response::into_inner)
            .map_err(crate::codec::from_peer)
    }
}
