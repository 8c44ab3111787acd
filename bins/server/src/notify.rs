//! notification-service (microservice mode): the one service that talks to the mail server.
//!
//! auth-service keeps its durable mail outbox (written in the transaction of the change that
//! causes a message) and delivers each message here, as it delivers account events to the other
//! services: `POST /internal/mail` with a fresh one-minute internal token signed by
//! auth-service's key. notification-service keeps nothing: it sends the message by SMTP and
//! answers how that went, and auth-service's outbox retries, backs off and gives up as it would
//! with its own SMTP connection:
//!
//! | answer | meaning | auth-service |
//! |---|---|---|
//! | 204 | sent | done |
//! | 422 `MAIL_REJECTED` | the mail server refused this message for good | dead |
//! | 503 `MAIL_UNAVAILABLE` | the mail server is unreachable or failed for now | retry |
//! | 502 `MAIL_CONFIG` | the mail settings are wrong (credentials, TLS) | retry, end the pass |
//! | 401 | the internal token was refused | retry (a key rotation or a clock problem) |

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use fafnir_auth::http::ApiError;
use fafnir_auth::{Mail, MailError, Mailer};
use fafnir_core::token::Authenticator;
use fafnir_core::Email;
use fafnir_proto::events::EventSigner;
use serde::{Deserialize, Serialize};

/// The path auth-service posts mail to.
pub const MAIL_PATH: &str = "/internal/mail";

/// The internal audience of notification-service (`<audience>-internal:notification`): its
/// tokens are good nowhere else, and the other services' internal tokens are refused here.
const SERVICE: &str = "notification";

/// Largest message accepted (custom templates may be long).
const MAX_MESSAGE: usize = 1024 * 1024;

/// A message on the wire between auth-service and notification-service.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailMessage {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl std::fmt::Debug for MailMessage {
    // The body may carry a single-use link.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailMessage").field("to", &self.to).finish_non_exhaustive()
    }
}

/// auth-service's [`Mailer`] in microservice mode: hands each message to notification-service.
#[derive(Debug)]
pub struct RemoteMailer {
    client: reqwest::Client,
    url: String,
    signer: OnceLock<EventSigner>,
}

impl RemoteMailer {
    /// A mailer posting to notification-service at `base` (`FAFNIR_NOTIFICATION_URL`). It
    /// sends nothing until [`RemoteMailer::sign_with`] gives it auth-service's keys.
    pub fn new(base: &str) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            // Longer than one SMTP send may take there (30 s), so its verdict arrives.
            .timeout(Duration::from_secs(45))
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the notification-service client: {e}"))?;
        Ok(Self { client, url: format!("{}{MAIL_PATH}", base.trim_end_matches('/')), signer: OnceLock::new() })
    }

    /// The keys that sign each delivery's internal token (known once the stack is open).
    pub fn sign_with(&self, signer: EventSigner) {
        let _ = self.signer.set(signer);
    }
}

#[async_trait::async_trait]
impl Mailer for RemoteMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let Some(signer) = self.signer.get() else {
            return Err(MailError::Unavailable("the notification-service client has no signing key yet".into()));
        };
        let aud = signer.audience.internal_for(SERVICE);
        let token = fafnir_proto::events::internal_token_to(&signer.keys, signer.clock.as_ref(), &aud)
            .map_err(|e| MailError::Unavailable(e.message().to_owned()))?;
        let body = MailMessage {
            to: mail.to.as_str().to_owned(),
            subject: mail.subject.clone(),
            text: mail.text.clone(),
            html: mail.html.clone(),
        };
        let res = self
            .client
            .post(&self.url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .map_err(|e| MailError::Unavailable(format!("notification-service: {e}")))?;
        let status = res.status();
        if status.is_success() {
            return Ok(());
        }
        let text = res.text().await.unwrap_or_default();
        let (code, why) = match serde_json::from_str::<fafnir_auth::http::ErrorBody>(&text) {
            Ok(e) => (e.error.code, e.error.message),
            Err(_) => (String::new(), format!("notification-service answered {status}")),
        };
        // By the code notification-service chose, not the status alone: a 422 from a version
        // that reads the message differently must not kill the mail for good.
        Err(match code.as_str() {
            "MAIL_REJECTED" => MailError::Rejected(why),
            "MAIL_CONFIG" => MailError::Config(why),
            _ => MailError::Unavailable(format!("{status}: {why}")),
        })
    }

    fn describe(&self) -> String {
        format!("notification-service at {}", self.url.trim_end_matches(MAIL_PATH))
    }
}

#[derive(Clone)]
struct NotifyState {
    authn: Authenticator,
    mailer: Arc<dyn Mailer>,
}

/// `POST /internal/mail`: authenticated by auth-service's internal token for this service (checked
/// before the body is read); sends at once.
async fn receive(State(s): State<NotifyState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    // A bearer token only: an internal call carries no cookie.
    let fafnir_auth::http::Presented::Bearer(token) = fafnir_auth::http::presented(&headers) else {
        return ApiError::unauthorized().into_response();
    };
    match s.authn.internal_for(&token, SERVICE).await {
        Ok(_) => {}
        Err(fafnir_core::token::TokenError::Unavailable) => {
            return ApiError::unavailable("auth-service's keys").into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "mail delivery with a refused internal token");
            return ApiError::unauthorized().into_response();
        }
    }
    let m: MailMessage = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED_JSON", format!("the message: {e}"))
                .into_response()
        }
    };
    let to = match Email::parse(&m.to) {
        Ok(e) => e,
        Err(e) => {
            return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "MAIL_REJECTED", format!("to: {e}")).into_response()
        }
    };
    let mail = Mail { to, subject: m.subject, text: m.text, html: m.html };
    match s.mailer.send(&mail).await {
        Ok(()) => {
            metrics::counter!("fafnir_mail_sent_total").increment(1);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => {
            let (status, code, outcome) = match &e {
                MailError::Rejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "MAIL_REJECTED", "rejected"),
                MailError::Config(_) => (StatusCode::BAD_GATEWAY, "MAIL_CONFIG", "config"),
                MailError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "MAIL_UNAVAILABLE", "unavailable"),
            };
            tracing::warn!(error = %e, "mail not sent");
            metrics::counter!("fafnir_mail_failures_total", "outcome" => outcome).increment(1);
            let mut err = ApiError::new(status, code, e.to_string());
            if status == StatusCode::SERVICE_UNAVAILABLE {
                err.retry_after_secs = Some(2);
            }
            err.into_response()
        }
    }
}

/// The internal route of notification-service.
pub fn routes(authn: Authenticator, mailer: Arc<dyn Mailer>) -> Router {
    Router::new()
        .route(MAIL_PATH, post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_MESSAGE))
        .with_state(NotifyState { authn, mailer })
}
