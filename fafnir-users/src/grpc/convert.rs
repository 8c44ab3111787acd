//! UserService messages and errors, both ways. A failure crosses the wire with its reason and
//! the fields at fault as structured details, so [`from_status`] rebuilds the same
//! [`UsersError`] the server had.

use chrono::{DateTime, Utc};
use fafnir_core::UserId;
use fafnir_proto::status::{reason, violations, with_reason};
use fafnir_proto::users::v1 as pb;
use tonic::{Code, Status};

use crate::{FieldError, Profile, ProfileUpdate, UsersError};

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
}

fn from_ts(t: Option<prost_types::Timestamp>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::<Utc>::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))).unwrap_or_default()
}

pub(crate) fn profile_to_pb(p: Profile) -> pb::Profile {
    pb::Profile {
        user_id: p.user_id.to_string(),
        first_name: p.first_name.unwrap_or_default(),
        last_name: p.last_name.unwrap_or_default(),
        display_name: p.display_name.unwrap_or_default(),
        avatar_url: p.avatar_url.unwrap_or_default(),
        bio: p.bio.unwrap_or_default(),
        locale: p.locale.unwrap_or_default(),
        timezone: p.timezone.unwrap_or_default(),
        created_at: Some(ts(p.created_at)),
        updated_at: Some(ts(p.updated_at)),
    }
}

pub(crate) fn profile_from_pb(p: pb::Profile) -> Result<Profile, UsersError> {
    let some = |s: String| (!s.is_empty()).then_some(s);
    Ok(Profile {
        user_id: UserId::parse(&p.user_id)
            .map_err(|_| UsersError::Unavailable("user-service answered a malformed user id".into()))?,
        first_name: some(p.first_name),
        last_name: some(p.last_name),
        display_name: some(p.display_name),
        avatar_url: some(p.avatar_url),
        bio: some(p.bio),
        locale: some(p.locale),
        timezone: some(p.timezone),
        created_at: from_ts(p.created_at),
        updated_at: from_ts(p.updated_at),
    })
}

/// The update a request asks for: a field present (even empty) is set, an absent one kept.
pub(crate) fn update_from_pb(r: &pb::UpdateProfileRequest) -> ProfileUpdate {
    let f = |v: &Option<String>| v.clone().map(Some);
    ProfileUpdate {
        first_name: f(&r.first_name),
        last_name: f(&r.last_name),
        display_name: f(&r.display_name),
        avatar_url: f(&r.avatar_url),
        bio: f(&r.bio),
        locale: f(&r.locale),
        timezone: f(&r.timezone),
    }
}

/// The request of an update: a cleared field (`Some(None)`) is sent as an empty string.
pub(crate) fn update_to_pb(user: UserId, u: &ProfileUpdate) -> pb::UpdateProfileRequest {
    let flat = |v: &Option<Option<String>>| v.as_ref().map(|x| x.clone().unwrap_or_default());
    pb::UpdateProfileRequest {
        user_id: user.to_string(),
        first_name: flat(&u.first_name),
        last_name: flat(&u.last_name),
        display_name: flat(&u.display_name),
        avatar_url: flat(&u.avatar_url),
        bio: flat(&u.bio),
        locale: flat(&u.locale),
        timezone: flat(&u.timezone),
    }
}

const PROFILE_NOT_FOUND: &str = "PROFILE_NOT_FOUND";
const INVALID_PROFILE: &str = "INVALID_PROFILE";
const INVALID_CURSOR: &str = "INVALID_CURSOR";
const INVALID_PAGE_SIZE: &str = "INVALID_PAGE_SIZE";

/// The status of a failure of [`Profiles`](crate::Profiles), with its reason and fields.
pub fn status(e: UsersError) -> Status {
    let message = e.to_string();
    match e {
        UsersError::NotFound => with_reason(Code::NotFound, message, PROFILE_NOT_FOUND, &[]),
        UsersError::Validation(fields) => {
            let fields: Vec<(&str, &str)> = fields.iter().map(|f| (f.field, f.message.as_str())).collect();
            with_reason(Code::InvalidArgument, message, INVALID_PROFILE, &fields)
        }
        UsersError::InvalidCursor => {
            with_reason(Code::InvalidArgument, message.clone(), INVALID_CURSOR, &[("page_token", &message)])
        }
        UsersError::InvalidPageSize => {
            with_reason(Code::InvalidArgument, message.clone(), INVALID_PAGE_SIZE, &[("page_size", &message)])
        }
        UsersError::Unauthenticated => Status::unauthenticated(message),
        UsersError::Forbidden(m) => Status::permission_denied(m),
        UsersError::Unavailable(m) => Status::unavailable(m),
        UsersError::Store(inner) => {
            tracing::error!(error = %inner, "profile store failed");
            Status::unavailable("the profile store is unavailable")
        }
    }
}

/// A client's reading of user-service's failure: the [`UsersError`] the server had, from the
/// status's reason and fields. `s` is read as `fafnir_proto::client::Client` returns it (already
/// through `codec::from_peer`).
pub fn from_status(s: Status) -> UsersError {
    match (s.code(), reason(&s).as_deref()) {
        (Code::NotFound, _) => UsersError::NotFound,
        (Code::InvalidArgument, Some(INVALID_CURSOR)) => UsersError::InvalidCursor,
        (Code::InvalidArgument, Some(INVALID_PAGE_SIZE)) => UsersError::InvalidPageSize,
        (Code::InvalidArgument, _) => {
            let mut fields: Vec<FieldError> = violations(&s)
                .into_iter()
                .map(|(field, message)| FieldError { field: known_field(&field), message })
                .collect();
            if fields.is_empty() {
                fields.push(FieldError { field: "request", message: s.message().to_owned() });
            }
            UsersError::Validation(fields)
        }
        (Code::Unauthenticated, _) => UsersError::Unauthenticated,
        (Code::PermissionDenied, _) => UsersError::Forbidden(s.message().to_owned()),
        _ => UsersError::Unavailable(s.message().to_owned()),
    }
}

/// A field name as this crate spells it (`FieldError::field` is static); one it does not know
/// is the request's.
fn known_field(name: &str) -> &'static str {
    crate::profile::COLUMNS.iter().find(|c| **c == name).copied().unwrap_or("request")
}
