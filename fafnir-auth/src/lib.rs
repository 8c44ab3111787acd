//! # fafnir-auth
//!
//! Accounts and sessions: registration with a password policy, Argon2id hashing off the async
//! executor, login with per-account and per-address throttling, EdDSA access tokens, opaque
//! rotating refresh tokens with reuse detection, session listing and revocation, and password
//! changes. No HTTP in the default features: transports call [`Auth`].

pub mod action_token;
mod admin;
mod email;
mod error;
#[cfg(feature = "axum")]
pub mod http;
pub mod mail;
pub mod mail_outbox;
pub mod mfa;
pub mod oauth;
pub mod passkey;
mod password;
mod secret;
mod service;
mod store;
pub mod templates;
mod throttle;

pub use action_token::{ActionToken, ActionTokens, Purpose, Redeemed};
pub use admin::{AccountState, AdminUser, UserPage, MAX_USERS_PAGE};
pub use email::{AccountMail, EmailSettings};
pub use error::AuthError;
pub use fafnir_core::audit::{self, AuditEvent, AuditKind, AuditLog, AuditQuery, AuditRecord};
pub use mail::{mailer_from_config, LogMailer, Mail, MailError, Mailer};
pub use mail_outbox::MailOutbox;
pub use password::{Argon2Config, Password, PasswordHasher, PasswordPolicy, Verified};
pub use secret::{sha256_hex, SecretString};
pub use service::{Account, Auth, AuthConfig, ClientInfo, Introspection, Login, Principal, SessionInfo};
pub use store::{AuthStore, RotateParams, Rotation, SessionRecord, SqlAuthStore, ThrottleRule, UserQuery, UserRecord};
pub use templates::{Message, TemplateError, Templates};
pub use throttle::{address_key, ThrottleConfig};
