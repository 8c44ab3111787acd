//! Errors across the wire, both ways, in one place. A server answers a [`Status`] whose code is
//! the gRPC family of the failure and which carries, in the standard rich error model
//! (`google.rpc.ErrorInfo` and `google.rpc.BadRequest` details), the exact reason and the
//! fields at fault; a client reads those details back instead of parsing the message.

use fafnir_core::ServiceError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The `domain` of every `ErrorInfo` Fafnir sends.
pub const DOMAIN: &str = "fafnir";

/// A status with a machine-readable `reason` (UPPER_SNAKE_CASE, stable: clients match on it)
/// and the fields at fault (`(field, description)`), if any.
pub fn with_reason(code: Code, message: impl Into<String>, reason: &str, fields: &[(&str, &str)]) -> Status {
    let mut details = ErrorDetails::with_error_info(reason, DOMAIN, std::collections::HashMap::new());
    if !fields.is_empty() {
        details.set_bad_request(fields.iter().map(|(f, d)| FieldViolation::new(*f, *d)).collect::<Vec<_>>());
    }
    Status::with_error_details(code, message, details)
}

/// The `reason` of a status sent by a Fafnir service, if it carries one.
pub fn reason(s: &Status) -> Option<String> {
    s.get_details_error_info().filter(|i| i.domain == DOMAIN).map(|i| i.reason)
}

/// The fields at fault of a status (`google.rpc.BadRequest`), in the server's order.
pub fn violations(s: &Status) -> Vec<(String, String)> {
    s.get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| (v.field, v.description)).collect())
        .unwrap_or_default()
}

/// How a server answers a [`ServiceError`] of a service it asked in turn (a permission check
/// forwarded to security-service): the same family; another service's internals stay in this
/// service's log, not in the caller's answer.
pub fn from_service_error(e: ServiceError) -> Status {
    match e {
        ServiceError::Unavailable(m) => {
            // The other service's own words (addresses, transport errors) stay in this log, at
            // debug: every call says it while the dependency is down, and /readyz names it.
            tracing::debug!(error = %m, "a service this one calls is unavailable");
            Status::unavailable("a service this one depends on is unavailable; retry shortly")
        }
        ServiceError::Unauthenticated => Status::unauthenticated("the access token is invalid or expired"),
        ServiceError::Forbidden(m) => Status::permission_denied(m),
        ServiceError::NotFound(m) => Status::not_found(m),
        ServiceError::InvalidArgument(m) => Status::invalid_argument(m),
        ServiceError::Internal(m) => {
            tracing::error!(error = %m, "a call to another service failed");
            Status::internal("internal error")
        }
    }
}

/// How a client reads a peer's failure as a [`ServiceError`]. `peer` names the service in
/// messages about it being down or broken. `s` is read as [`crate::client::Client`] returns it
/// (already through [`crate::codec::from_peer`]).
pub fn to_service_error(peer: &str, s: Status) -> ServiceError {
    match s.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
            ServiceError::Unavailable(format!("{peer}: {}", s.message()))
        }
        Code::Unauthenticated => ServiceError::Unauthenticated,
        Code::PermissionDenied => ServiceError::Forbidden(s.message().to_owned()),
        Code::NotFound => ServiceError::NotFound(s.message().to_owned()),
        Code::InvalidArgument => ServiceError::InvalidArgument(s.message().to_owned()),
        code => ServiceError::Internal(format!("{peer}: {code:?}: {}", s.message())),
    }
}

/// Whether a failed idempotent read may succeed if sent again: UNAVAILABLE or UNKNOWN (which
/// a peer may also answer itself), or a transport error in the status's source chain (the
/// peer is unreachable, the connection broke, or the call timed out). Only reads are retried
/// (`client::Client::read`); writes are sent once.
pub fn transient(s: &Status) -> bool {
    if matches!(s.code(), Code::Unavailable | Code::Unknown) {
        return true;
    }
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        if e.is::<tonic::transport::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn reasons_and_fields_survive_a_round_trip_through_the_wire_form() {
        let s = with_reason(Code::InvalidArgument, "invalid profile", "VALIDATION", &[("bio", "too long")]);
        // What a peer receives: the status rebuilt from its trailers.
        let mut trailers = tonic::codegen::http::HeaderMap::new();
        s.add_header(&mut trailers).expect("headers");
        let back = Status::from_header_map(&trailers).expect("a status");
        assert_eq!(back.code(), Code::InvalidArgument);
        assert_eq!(reason(&back).as_deref(), Some("VALIDATION"));
        assert_eq!(violations(&back), vec![("bio".to_owned(), "too long".to_owned())]);
        assert_eq!(reason(&Status::invalid_argument("plain")), None);
    }

    #[test]
    fn another_services_internals_stay_out_of_the_answer() {
        let s =
            from_service_error(ServiceError::Unavailable("security-service: tcp connect error 10.0.0.7:8082".into()));
        assert_eq!(s.code(), Code::Unavailable);
        assert!(!s.message().contains("10.0.0.7") && !s.message().contains("tcp"), "{}", s.message());
        let s = from_service_error(ServiceError::Internal("pool timed out at db.internal".into()));
        assert_eq!((s.code(), s.message()), (Code::Internal, "internal error"));
    }

    #[test]
    fn only_unreachable_peers_are_transient() {
        assert!(transient(&Status::unavailable("down")));
        assert!(!transient(&Status::invalid_argument("bad")));
        assert!(!transient(&Status::permission_denied("no")));
    }
}
