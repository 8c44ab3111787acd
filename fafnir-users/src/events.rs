//! The account-event subscriber of fafnir-users.

use fafnir_core::events::{AccountEvent, AccountEventHandler, HandlerError};

use crate::error::UsersError;
use crate::service::Profiles;

/// Delivers account events to the profile store: a new user gets an empty profile, a deleted
/// user loses theirs. Idempotent, as the outbox requires.
#[derive(Debug, Clone)]
pub struct ProfileEvents(pub Profiles);

pub const SUBSCRIBER: &str = "users";

#[async_trait::async_trait]
impl AccountEventHandler for ProfileEvents {
    fn name(&self) -> &str {
        SUBSCRIBER
    }

    async fn handle(&self, event: &AccountEvent) -> Result<(), HandlerError> {
        let r = match event {
            AccountEvent::UserCreated { user_id, display_name } => {
                match self.0.create(*user_id, display_name.as_deref()).await {
                    // A display name that fails validation must not block the profile.
                    Err(UsersError::Validation(_)) => self.0.create(*user_id, None).await,
                    other => other,
                }
            }
            AccountEvent::UserDeleted { user_id } => match self.0.delete(*user_id).await {
                Err(UsersError::NotFound) => Ok(()),
                other => other,
            },
        };
        r.map_err(|e| HandlerError(e.to_string()))
    }
}
