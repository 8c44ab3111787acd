//! Account events between services: auth-service's outbox delivers each event to the other
//! services' `HandleAccountEvent`, signed with a fresh one-minute internal token; the receiving
//! server checks that token and hands the event to its in-process handler.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use fafnir_core::events::{AccountEvent, AccountEventHandler, HandlerError};
use fafnir_core::keys::KeyManager;
use fafnir_core::token::{AccessClaims, Authenticator, TokenAudience};
use fafnir_core::{Clock, SessionId, SharedClock, UserId};
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::client::with_bearer;

/// Mints a one-minute internal token (needs the issuer's signing key).
pub fn internal_token(keys: &KeyManager, clock: &dyn Clock, expect: &TokenAudience) -> Result<String, Status> {
    internal_token_to(keys, clock, &expect.internal())
}

/// Mints a one-minute token for the internal audience `aud` (such as
/// [`TokenAudience::internal_for`] one service).
pub fn internal_token_to(keys: &KeyManager, clock: &dyn Clock, aud: &TokenAudience) -> Result<String, Status> {
    let now = clock.now().timestamp();
    let nil = uuid::Uuid::nil();
    let claims = AccessClaims {
        iss: aud.issuer.clone(),
        aud: aud.audience.clone(),
        sub: UserId::from(nil),
        sid: SessionId::from(nil),
        iat: now,
        exp: now + 60,
        jti: uuid::Uuid::new_v4().simple().to_string(),
        nbf: None,
    };
    keys.sign(&claims).map_err(|e| Status::internal(format!("cannot sign an internal token: {e}")))
}

/// Signs outbox deliveries to another service: each carries a fresh one-minute internal token.
#[derive(Debug, Clone)]
pub struct EventSigner {
    pub keys: Arc<KeyManager>,
    pub clock: SharedClock,
    pub audience: TokenAudience,
}

impl EventSigner {
    /// A request carrying the event's JSON, the token and a 3 s deadline.
    pub fn request(&self, event: &AccountEvent) -> Result<Request<String>, HandlerError> {
        let token =
            internal_token(&self.keys, self.clock.as_ref(), &self.audience).map_err(|e| HandlerError(e.to_string()))?;
        let json = serde_json::to_string(event).map_err(|e| HandlerError(e.to_string()))?;
        Ok(with_bearer(json, Some(&token), Duration::from_secs(3)))
    }
}

/// One `HandleAccountEvent` call of a generated client `C`, given the event's JSON.
pub type Deliver<C> = fn(C, Request<String>) -> Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// Delivers account events to another service (an [`AccountEventHandler`] for auth-service's
/// outbox). It subscribes under the name of the in-process handler it stands for, so pending
/// events survive a change of deployment.
pub struct EventSink<C> {
    client: C,
    signer: EventSigner,
    subscriber: &'static str,
    peer: &'static str,
    deliver: Deliver<C>,
}

impl<C> EventSink<C> {
    /// `peer` names the receiving service in failures; `deliver` makes the one call.
    pub fn new(
        client: C,
        signer: EventSigner,
        subscriber: &'static str,
        peer: &'static str,
        deliver: Deliver<C>,
    ) -> Self {
        Self { client, signer, subscriber, peer, deliver }
    }
}

impl<C> fmt::Debug for EventSink<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink").field("subscriber", &self.subscriber).field("peer", &self.peer).finish()
    }
}

#[async_trait::async_trait]
impl<C: Clone + Send + Sync + 'static> AccountEventHandler for EventSink<C> {
    fn name(&self) -> &str {
        self.subscriber
    }

    async fn handle(&self, event: &AccountEvent) -> Result<(), HandlerError> {
        let req = self.signer.request(event)?;
        (self.deliver)(self.client.clone(), req)
            .await
            .map_err(|s| HandlerError(format!("{}: {}", self.peer, s.message())))
    }
}

/// The server side of `HandleAccountEvent`: the call must carry an internal token of the
/// issuer; the event is handed to `handler` (a failure there is UNAVAILABLE, so the sender's
/// outbox retries).
pub async fn receive(
    md: &MetadataMap,
    auth: &Authenticator,
    event_json: &str,
    handler: &dyn AccountEventHandler,
) -> Result<(), Status> {
    crate::server::authenticate_internal(md, auth).await?;
    let event: AccountEvent =
        serde_json::from_str(event_json).map_err(|e| Status::invalid_argument(format!("event_json: {e}")))?;
    handler.handle(&event).await.map_err(|e| Status::unavailable(e.0))
}
