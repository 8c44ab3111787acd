//! What every Fafnir HTTP server puts around every request, as one layer instead of eight:
//! a request id (kept from the client when it sends a valid one, else a new UUID; echoed on the
//! answer), a tracing span carrying it (so every line logged while handling the request names
//! it), a deadline (408 after [`REQUEST_TIMEOUT`]), panics turned into a 500 with the usual
//! error body, the security headers the answer does not set itself, and per-route metrics
//! ([`Track`], a route layer, since only the router knows the route template).
//!
//! Written by hand because the same eight tower-http layers stacked cost a bare handler about a
//! third of its throughput under wrk (docs/performance.md): each adds a future, some a timer
//! armed on every request, a boxed future or a cloned service. Here there is one future, no
//! allocation beyond the request id, and the deadline timer is made (and boxed) only when the
//! handler does not answer on its first poll.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fafnir_core::cache::TrustedKeys;
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::Instrument;

/// Longest a request may run before it is answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The request id header, read from the client and set on every answer.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The security headers of every answer (unless the handler set its own).
fn security_headers(https: bool) -> Vec<(HeaderName, HeaderValue)> {
    let mut h = vec![
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")),
        // Answers carry personal data and tokens: no cache keeps them. Assets, the JWKS and the
        // metadata document set their own, public, policy.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    if https {
        h.push((header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains")));
    }
    h
}

/// The headers every answer starts from, made once per process for a plain and for an HTTPS
/// server: the security headers, then a slot for `content-type`, one for `content-length` and
/// one for `x-request-id`. Every request reads it through a `'static` reference, without
/// touching a reference count shared by the worker threads, and starts its answer from a copy
/// of it (two allocations, no hashing). The slots are there so that the answer's own
/// `content-type` and `content-length` (a JSON answer sets both; axum adds the length) and the
/// request id replace entries of the copy instead of growing it: a clone's list of entries is
/// exactly as long as the template's, and growing it moves them all.
fn shared_headers(https: bool) -> &'static HeaderMap {
    static PLAIN: OnceLock<HeaderMap> = OnceLock::new();
    static HTTPS: OnceLock<HeaderMap> = OnceLock::new();
    let cell = if https { &HTTPS } else { &PLAIN };
    cell.get_or_init(|| {
        let mut h = HeaderMap::with_capacity(12);
        h.extend(security_headers(https));
        // Placeholders, replaced or removed by `with_defaults`. The length's is not a number: if
        // it ever got out, hyper would send it as it is (it trusts a length the answer sets) and
        // the client would refuse the answer as malformed, not read a wrongly framed one.
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("-"));
        h.insert(REQUEST_ID, HeaderValue::from_static("-"));
        h
    })
}

/// An answer's headers: `own`, with the defaults of [`shared_headers`] it does not set itself
/// (a header the answer sets, every value of it, replaces the default of the same name), and
/// `id` as `x-request-id` unless the answer has its own. No `content-type` or `content-length`
/// unless the answer set one.
fn with_defaults(own: HeaderMap, defaults: &HeaderMap, id: Option<HeaderValue>) -> HeaderMap {
    let mut h = defaults.clone();
    let (mut typed, mut sized, mut has_id) = (false, false, false);
    let mut current: Option<HeaderName> = None;
    for (name, value) in own {
        // `None`: another value of the name before it.
        match name {
            Some(name) => {
                typed |= name == header::CONTENT_TYPE;
                sized |= name == header::CONTENT_LENGTH;
                has_id |= name == REQUEST_ID;
                h.insert(&name, value);
                current = Some(name);
            }
            None => {
                if let Some(name) = &current {
                    h.append(name, value);
                }
            }
        }
    }
    if !typed {
        h.remove(header::CONTENT_TYPE);
    }
    if !sized {
        h.remove(header::CONTENT_LENGTH);
    }
    if !has_id {
        match id {
            Some(id) => h.insert(REQUEST_ID, id),
            None => h.remove(&REQUEST_ID),
        };
    }
    h
}

/// The layer; `https` adds `Strict-Transport-Security`.
///
/// The request id is the span's and the answer's. A client's `x-request-id` that is not kept is
/// taken off the request, so a handler never sees a refused one; a new id is not put on the
/// request (nothing reads it there, and every request would pay for the insert and for sharing
/// the id's bytes), except with [`HardenLayer::forwarding_request_id`].
#[derive(Debug, Clone, Copy)]
pub struct HardenLayer {
    headers: &'static HeaderMap,
    forward_id: bool,
}

impl HardenLayer {
    pub fn new(https: bool) -> Self {
        Self { headers: shared_headers(https), forward_id: false }
    }

    /// Also puts the request id on the request, for a server that forwards requests to another
    /// one (api-gateway's `/auth/*` proxy passes the request's headers on): the service behind
    /// it then logs and echoes the same id instead of making its own.
    pub fn forwarding_request_id(self) -> Self {
        Self { forward_id: true, ..self }
    }
}

impl<S> Layer<S> for HardenLayer {
    type Service = Harden<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Harden { inner, headers: self.headers, forward_id: self.forward_id }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct Harden<S> {
    inner: S,
    headers: &'static HeaderMap,
    forward_id: bool,
}

/// A client's request id is kept when it is short and printable (it is logged); anything else
/// is replaced.
fn acceptable_id(v: &HeaderValue) -> bool {
    (1..=128).contains(&v.len()) && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
}

fn new_request_id() -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    // A UUID's text is always a valid header value.
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The answer at the deadline. The handler's future is dropped with [`HardenFuture`], which
/// cancels it.
fn timed_out() -> Response {
    tracing::warn!(timeout_s = REQUEST_TIMEOUT.as_secs(), "request timed out");
    StatusCode::REQUEST_TIMEOUT.into_response()
}

fn panic_response() -> Response {
    tracing::error!("a request handler panicked");
    let body = serde_json::json!({"error": {"code": "INTERNAL", "message": "internal error"}});
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

impl<S> Service<Request> for Harden<S>
where
    S: Service<Request, Response = Response, Error = std::convert::Infallible>,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = HardenFuture<tracing::instrument::Instrumented<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        // The runtime's clock (a paused one in tests): the deadline counts from here.
        let start = tokio::time::Instant::now();
        // On the request only when it is forwarded (see `HardenLayer`).
        let id = match req.headers().get(&REQUEST_ID) {
            Some(v) if acceptable_id(v) => v.clone(),
            other => {
                let refused = other.is_some();
                let id = new_request_id();
                if self.forward_id {
                    req.headers_mut().insert(REQUEST_ID, id.clone());
                } else if refused {
                    req.headers_mut().remove(&REQUEST_ID);
                }
                id
            }
        };
        // Method and path only: never headers (cookies, tokens) or bodies.
        let span = tracing::info_span!(
            "http",
            request_id = id.to_str().unwrap_or("-"),
            method = %req.method(),
            path = req.uri().path()
        );
        let inner = {
            let _entered = span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
        };
        HardenFuture {
            inner: inner.ok().map(|f| f.instrument(span.clone())),
            deadline: None,
            span,
            start,
            id: Some(id),
            headers: self.headers,
        }
    }
}

pin_project! {
    /// The future of [`Harden`].
    pub struct HardenFuture<F> {
        // `None` when the service panicked in `call`.
        #[pin]
        inner: Option<F>,
        // [`REQUEST_TIMEOUT`] after `start`, made when the handler does not answer on its first
        // poll: most answer at once, and then no timer is made, registered or cancelled (nor the
        // runtime handle looked up, whose shared reference count every request would otherwise
        // touch). Unconstrained, so it still fires when the handler spends the task's
        // cooperative budget on every poll.
        deadline: Option<Pin<Box<tokio::task::coop::Unconstrained<tokio::time::Sleep>>>>,
        // For the lines logged about the answer (a failure, a panic, a timeout).
        span: tracing::Span,
        start: tokio::time::Instant,
        id: Option<HeaderValue>,
        headers: &'static HeaderMap,
    }
}

impl<F> Future for HardenFuture<F>
where
    F: Future<Output = Result<Response, std::convert::Infallible>>,
{
    type Output = Result<Response, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (start, deadline) = (*this.start, this.deadline);
        // `None`: the handler is still running and its deadline has not passed.
        let polled = match this.inner.as_pin_mut() {
            Some(inner) => std::panic::catch_unwind(AssertUnwindSafe(|| match inner.poll(cx) {
                Poll::Ready(res) => Some(res),
                Poll::Pending => {
                    let deadline = deadline.get_or_insert_with(|| {
                        let at = start + REQUEST_TIMEOUT;
                        Box::pin(tokio::task::coop::unconstrained(tokio::time::sleep_until(at)))
                    });
                    deadline.as_mut().poll(cx).is_ready().then(|| Ok(timed_out()))
                }
            })),
            None => Err(Box::new("panicked in call") as Box<dyn std::any::Any + Send>),
        };
        let _entered = this.span.enter();
        let mut res = match polled {
            Ok(None) => return Poll::Pending,
            Ok(Some(Ok(res))) => res,
            Ok(Some(Err(never))) => match never {},
            Err(_) => panic_response(),
        };
        let own = std::mem::take(res.headers_mut());
        *res.headers_mut() = with_defaults(own, this.headers, this.id.take());
        let status = res.status();
        // The clock is read only when the line is logged (macro arguments are evaluated then).
        let ms = |start: &tokio::time::Instant| start.elapsed().as_millis() as u64;
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), latency_ms = ms(this.start), "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), latency_ms = ms(this.start), "request answered");
        }
        Poll::Ready(Ok(res))
    }
}

// ---- body cap ----

/// axum's [`DefaultBodyLimit`] (`max` bytes for the body extractors), set only on requests
/// that may have a body: the limit is an entry in the request's extensions, and a request whose
/// body is known to be empty (HTTP/1 without `content-length` or `transfer-encoding`, or with
/// `content-length: 0`; HTTP/2 ended with its headers) has nothing to cap. Every request
/// otherwise paid for that entry, and with axum's own two it made the extensions' table grow a
/// second time.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimitLayer {
    limit: DefaultBodyLimit,
}

impl BodyLimitLayer {
    pub fn max(max: usize) -> Self {
        Self { limit: DefaultBodyLimit::max(max) }
    }
}

impl<S> Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BodyLimit { inner, limit: self.limit }
    }
}

/// See [`BodyLimitLayer`].
#[derive(Debug, Clone)]
pub struct BodyLimit<S> {
    inner: S,
    limit: DefaultBodyLimit,
}

impl<S: Service<Request>> Service<Request> for BodyLimit<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        if !axum::body::HttpBody::is_end_stream(req.body()) {
            self.limit.apply(&mut req);
        }
        self.inner.call(req)
    }
}

// ---- per-route metrics ----

/// A route layer recording `fafnir_http_requests_total{method, route, status}` and
/// `fafnir_http_request_duration_seconds` (route = the matched template, so the label set is
/// bounded by the routes; made-up methods count as `OTHER`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackLayer;

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Track { inner }
    }
}

/// See [`TrackLayer`].
#[derive(Debug, Clone)]
pub struct Track<S> {
    inner: S,
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// A route template as a `'static` label, interned: routes are a fixed set, so this holds one
/// string per route for the life of the process and no request allocates one. Each worker
/// thread remembers the labels it has seen by the address of the router's own copy of the
/// template (checked against the label's text, as an address can be reused): no lock shared
/// between the threads and no hashing of the text on every request.
fn route_label(path: Option<&MatchedPath>) -> &'static str {
    static ROUTES: OnceLock<RwLock<std::collections::HashMap<Box<str>, &'static str>>> = OnceLock::new();
    thread_local! {
        static SEEN: std::cell::RefCell<std::collections::HashMap<(usize, usize), &'static str, TrustedKeys>> =
            Default::default();
    }
    let Some(path) = path else { return "unmatched" };
    let path = path.as_str();
    let at = (path.as_ptr() as usize, path.len());
    if let Some(label) = SEEN.with(|s| s.borrow().get(&at).copied()).filter(|l| *l == path) {
        return label;
    }
    let routes = ROUTES.get_or_init(Default::default);
    let known = routes.read().unwrap_or_else(|e| e.into_inner()).get(path).copied();
    let label = known.unwrap_or_else(|| {
        let mut w = routes.write().unwrap_or_else(|e| e.into_inner());
        w.entry(path.into()).or_insert_with(|| Box::leak(path.to_owned().into_boxed_str()))
    });
    SEEN.with(|s| {
        let mut s = s.borrow_mut();
        // Addresses are stable for a router's own routes; a nested router's templates are made
        // per request, and would only add addresses: start again then.
        if s.len() >= 1024 {
            s.clear();
        }
        s.insert(at, label);
    });
    label
}

/// A status code as a `'static` label (`"200"`…), from a table made once.
fn status_label(s: StatusCode) -> &'static str {
    static CODES: OnceLock<Vec<String>> = OnceLock::new();
    let codes = CODES.get_or_init(|| (100..1000).map(|c| c.to_string()).collect());
    codes.get(usize::from(s.as_u16()).wrapping_sub(100)).map_or("other", String::as_str)
}

/// The counter and histogram of one label set.
type Handles = (metrics::Counter, metrics::Histogram);

/// Counts one answer of (method, route, status) and records its duration. Once the recorder is
/// installed, the handles are kept per worker thread, looked up by the labels' addresses (they
/// are interned): no hashing of label strings, no lock and no reference count shared between
/// threads on every request. The label sets are bounded (methods × routes × statuses).
fn record(method: &'static str, route: &'static str, status: StatusCode, seconds: f64) {
    type Key = ((usize, usize), (usize, usize), u16);
    thread_local! {
        static HANDLES: std::cell::RefCell<std::collections::HashMap<Key, Handles, TrustedKeys>> = Default::default();
    }
    let make = || {
        let labels = [
            metrics::Label::from_static_parts("method", method),
            metrics::Label::from_static_parts("route", route),
            metrics::Label::from_static_parts("status", status_label(status)),
        ];
        (
            metrics::counter!("fafnir_http_requests_total", labels.iter()),
            metrics::histogram!("fafnir_http_request_duration_seconds", labels.iter()),
        )
    };
    let count = |(counter, histogram): &Handles| {
        counter.increment(1);
        histogram.record(seconds);
    };
    if !crate::telemetry::installed() {
        return count(&make());
    }
    let at = |s: &'static str| (s.as_ptr() as usize, s.len());
    let key = (at(method), at(route), status.as_u16());
    HANDLES.with(|h| count(h.borrow_mut().entry(key).or_insert_with(make)));
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let method = method_label(req.method());
        let route = route_label(req.extensions().get::<MatchedPath>());
        TrackFuture { inner: self.inner.call(req), start: Instant::now(), method, route }
    }
}

pin_project! {
    /// The future of [`Track`].
    pub struct TrackFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
        method: &'static str,
        route: &'static str,
    }
}

impl<F, E> Future for TrackFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx));
        if let Ok(res) = &res {
            record(this.method, this.route, res.status(), this.start.elapsed().as_secs_f64());
        }
        Poll::Ready(res)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn labels_are_interned_and_bounded() {
        assert_eq!(status_label(StatusCode::OK), "200");
        assert_eq!(status_label(StatusCode::from_u16(599).unwrap()), "599");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
        assert_eq!(route_label(None), "unmatched");
    }

    #[test]
    fn an_answers_own_headers_replace_the_defaults_of_their_name_and_keep_every_value() {
        let defaults = shared_headers(true);
        let mut own = HeaderMap::new();
        own.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        own.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        own.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        own.append(header::CACHE_CONTROL, HeaderValue::from_static("public"));
        own.append(header::CACHE_CONTROL, HeaderValue::from_static("max-age=60"));
        let h = with_defaults(own, defaults, Some(HeaderValue::from_static("id-1")));
        let all = |name| h.get_all(name).iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>();
        assert_eq!(all(header::CONTENT_TYPE), ["application/json"]);
        assert_eq!(all(header::SET_COOKIE), ["a=1", "b=2"]);
        assert_eq!(all(header::CACHE_CONTROL), ["public", "max-age=60"], "the default no-store is replaced");
        for (name, value) in security_headers(true).iter().filter(|(n, _)| *n != header::CACHE_CONTROL) {
            assert_eq!(all(name.clone()), [value.to_str().unwrap()], "{name}");
        }
        assert_eq!(all(REQUEST_ID), ["id-1"]);
        assert_eq!(h.len(), security_headers(true).len() + 5);
        // An answer without headers gets exactly the security headers and the id: no
        // content-type it did not set.
        let bare = with_defaults(HeaderMap::new(), defaults, Some(HeaderValue::from_static("id-2")));
        let mut expected: HeaderMap = security_headers(true).into_iter().collect();
        expected.insert(REQUEST_ID, HeaderValue::from_static("id-2"));
        assert_eq!(bare, expected);
        assert_eq!(with_defaults(HeaderMap::new(), defaults, None), security_headers(true).into_iter().collect());
        // An answer's own request id stands.
        let mut own = HeaderMap::new();
        own.insert(REQUEST_ID, HeaderValue::from_static("mine"));
        let h = with_defaults(own, defaults, Some(HeaderValue::from_static("id-3")));
        assert_eq!(h.get_all(REQUEST_ID).iter().collect::<Vec<_>>(), [&HeaderValue::from_static("mine")]);
        assert!(!h.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn a_json_answer_fits_the_copy_of_the_defaults_without_growing_it() {
        let defaults = shared_headers(false);
        let mut own = HeaderMap::new();
        own.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        own.insert(header::CONTENT_LENGTH, HeaderValue::from(231));
        let h = with_defaults(own, defaults, Some(HeaderValue::from_static("id")));
        assert_eq!(h.capacity(), defaults.capacity(), "the copy kept its index, with room to spare");
        assert_eq!(h.len(), defaults.len());
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        assert_eq!(h[header::CONTENT_LENGTH], "231");
        // A length without a type, and a type without a length: the other slot goes.
        let mut own = HeaderMap::new();
        own.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        let h = with_defaults(own, defaults, None);
        assert_eq!((h.get(header::CONTENT_TYPE), &h[header::CONTENT_LENGTH]), (None, &HeaderValue::from(0)));
        let mut own = HeaderMap::new();
        own.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let h = with_defaults(own, defaults, None);
        assert_eq!(
            (&h[header::CONTENT_TYPE], h.get(header::CONTENT_LENGTH)),
            (&HeaderValue::from_static("text/plain"), None)
        );
    }

    #[test]
    fn only_short_printable_request_ids_are_kept() {
        assert!(acceptable_id(&HeaderValue::from_static("abc-123")));
        assert!(!acceptable_id(&HeaderValue::from_static("has space")));
        assert!(!acceptable_id(&HeaderValue::from_str(&"x".repeat(129)).unwrap()));
        assert_eq!(new_request_id().len(), 36);
    }

    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> axum::Router {
        axum::Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/own-cache", get(|| async { ([(header::CACHE_CONTROL, "public, max-age=60")], "jwks") }))
            .route(
                "/seen-id",
                get(|h: HeaderMap| async move {
                    h.get(REQUEST_ID).map_or_else(|| "none".to_owned(), |v| v.to_str().unwrap().to_owned())
                }),
            )
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    "unreachable"
                }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(REQUEST_TIMEOUT * 2).await;
                    "late"
                }),
            )
    }

    /// The test routes behind [`crate::http::harden`] itself, as every server serves them.
    async fn send(path: &str, id: Option<&str>) -> Response {
        send_through(false, path, id).await
    }

    /// Through `harden`, or `harden_forwarding` when `forwarding`.
    async fn send_through(forwarding: bool, path: &str, id: Option<&str>) -> Response {
        let mut req = axum::http::Request::get(path);
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        let settings = fafnir_auth::http::HttpSettings::from_config(&fafnir_core::Config::default());
        let req = req.body(Body::empty()).unwrap();
        if forwarding {
            crate::http::harden_forwarding(app(), &settings, true).oneshot(req).await.unwrap()
        } else {
            crate::http::harden(app(), &settings, true).oneshot(req).await.unwrap()
        }
    }

    #[tokio::test]
    async fn every_answer_gets_the_security_headers_and_a_request_id() {
        let res = send("/ok", None).await;
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin");
        assert_eq!(h["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
        assert_eq!(h["cache-control"], "no-store");
        assert!(h["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
        assert!(uuid::Uuid::parse_str(h["x-request-id"].to_str().unwrap()).is_ok());
        // A handler's own cache policy stands; a 404 is hardened too.
        assert_eq!(send("/own-cache", None).await.headers()["cache-control"], "public, max-age=60");
        let res = send("/nowhere", None).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.headers()["x-frame-options"], "DENY");
    }

    #[tokio::test]
    async fn a_clients_request_id_is_kept_only_when_printable() {
        assert_eq!(send("/ok", Some("trace-42")).await.headers()["x-request-id"], "trace-42");
        let replaced = send("/ok", Some("two words")).await;
        assert!(uuid::Uuid::parse_str(replaced.headers()["x-request-id"].to_str().unwrap()).is_ok());
        // What the handler sees: a kept id; never a refused one, nor one made up for the answer.
        let seen = |id| async move {
            let res = send("/seen-id", id).await;
            String::from_utf8(axum::body::to_bytes(res.into_body(), 1024).await.unwrap().to_vec()).unwrap()
        };
        assert_eq!(seen(Some("trace-42")).await, "trace-42");
        assert_eq!(seen(Some("two words")).await, "none");
        assert_eq!(seen(None).await, "none");
        // A forwarding server (api-gateway) puts the answer's id on the request, so the service
        // it forwards to uses the same one.
        for id in [Some("trace-42"), Some("two words"), None] {
            let res = send_through(true, "/seen-id", id).await;
            let answered = res.headers()["x-request-id"].clone();
            let seen = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
            assert_eq!(seen, answered.as_bytes(), "{id:?}");
        }
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_with_the_usual_body() {
        let res = send("/panic", None).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.headers()["x-frame-options"], "DENY");
        let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "INTERNAL");
    }

    #[tokio::test]
    async fn bodies_are_capped_at_the_servers_limit_and_empty_ones_pass() {
        let settings = fafnir_auth::http::HttpSettings::from_config(&fafnir_core::Config::default());
        let echo = axum::Router::new()
            .route("/echo", axum::routing::post(|body: axum::body::Bytes| async move { body.len().to_string() }));
        let app = crate::http::harden(echo, &settings, false);
        let post = |body: Body| {
            let app = app.clone();
            async move {
                let res = app.oneshot(axum::http::Request::post("/echo").body(body).unwrap()).await.unwrap();
                let status = res.status();
                (status, axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap())
            }
        };
        let limit = crate::http::BODY_LIMIT;
        assert_eq!(post(Body::empty()).await, (StatusCode::OK, "0".into()));
        assert_eq!(post(Body::from(vec![b'a'; limit])).await, (StatusCode::OK, limit.to_string().into()));
        // Over the server's limit, and under axum's own default (2 MB): the server's limit is
        // the one applied.
        assert!(limit + 1 < 2_000_000);
        assert_eq!(post(Body::from(vec![b'a'; limit + 1])).await.0, StatusCode::PAYLOAD_TOO_LARGE);
        // A streamed body of unknown length is capped as it arrives.
        let chunks = futures_util::stream::iter((0..=limit / 1024).map(|_| Ok::<_, std::io::Error>(vec![b'a'; 1024])));
        assert_eq!(post(Body::from_stream(chunks)).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_outlives_the_deadline_is_a_408() {
        let started = tokio::time::Instant::now();
        let res = send("/slow", None).await;
        assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(started.elapsed(), REQUEST_TIMEOUT, "answered at the deadline, not when the handler would finish");
        assert!(res.headers().contains_key("x-request-id"));
    }
}
