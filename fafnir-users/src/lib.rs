//! # fafnir-users
//!
//! User profiles: first and last name, display name, avatar URL, bio, locale and time zone.
//! Every registered user has one, created empty by the [`ProfileEvents`] subscriber of the
//! account-event outbox. Listing uses opaque cursors over the time-ordered user ids.

mod cache;
mod error;
mod events;
#[cfg(feature = "grpc")]
pub mod grpc;
mod profile;
mod service;
mod store;

pub use cache::CachingProfiles;
pub use error::UsersError;
pub use events::{ProfileEvents, SUBSCRIBER};
pub use profile::{FieldError, Profile, ProfileUpdate};
pub use service::{Page, ProfileDirectory, Profiles, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use store::{ProfileStore, SqlProfileStore};
