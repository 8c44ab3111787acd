//! Wiring of one process: the [`fafnir`] facade, plus what only the servers need.

pub use fafnir::{Background, Fafnir as Stack, Mode, KEY_RELOAD};
use std::sync::Arc;

use fafnir_core::{Config, CoreError};

/// Why a server could not start: a one-line reason.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Auth(#[from] fafnir_auth::AuthError),
    #[error(transparent)]
    Rbac(#[from] fafnir_rbac::RbacError),
    #[error("{0}")]
    Io(String),
}

impl From<fafnir::Error> for StartError {
    fn from(e: fafnir::Error) -> Self {
        match e {
            fafnir::Error::Core(e) => StartError::Core(e),
            fafnir::Error::Auth(e) => StartError::Auth(e),
            fafnir::Error::Rbac(e) => StartError::Rbac(e),
            fafnir::Error::Other(m) => StartError::Io(m),
        }
    }
}

/// auth-service: microservice mode when both `FAFNIR_SECURITY_URL` and `FAFNIR_USERS_URL` are
/// set, else self-contained (all in one process, REST only).
pub async fn open_auth_service(config: Config) -> Result<Stack, StartError> {
    let mode = match (&config.security_url, &config.users_url) {
        (Some(s), Some(u)) => Mode::Remote { security_url: s.clone(), users_url: u.clone() },
        (None, None) => Mode::AllInOne,
        _ => {
            return Err(StartError::Core(CoreError::Config(
                "set both FAFNIR_SECURITY_URL and FAFNIR_USERS_URL, or neither".into(),
            )))
        }
    };
    // Microservice mode may hand mail to notification-service instead of sending it here.
    let remote_mail = match config.notification_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => Some(Arc::new(crate::notify::RemoteMailer::new(url).map_err(StartError::Io)?)),
        None => None,
    };
    let mut builder = Stack::builder().config(config).mode(mode);
    if let Some(m) = &remote_mail {
        builder = builder.mailer(m.clone());
    }
    let stack = builder.open().await?;
    if let Some(m) = remote_mail {
        m.sign_with(fafnir_proto::events::EventSigner {
            keys: stack.keys.clone(),
            clock: stack.clock.clone(),
            audience: stack.auth.config().token_audience(),
        });
    }
    Ok(stack)
}
