//! SecurityService messages and errors, both ways.

use fafnir_core::{Permission, RoleInfo, ServiceError};
use fafnir_proto::security::v1 as pb;
use fafnir_proto::status::{to_service_error, with_reason};
use tonic::{Code, Status};

use crate::{CheckCode, RbacError, Role, RoleName};

pub(crate) fn role_name(field: &str, s: &str) -> Result<RoleName, Status> {
    RoleName::parse(s).map_err(|_| {
        let e = RbacError::InvalidRoleName.to_string();
        with_reason(Code::InvalidArgument, format!("{field}: {e}"), "INVALID_ROLE_NAME", &[(field, &e)])
    })
}

pub(crate) fn permissions(field: &str, list: &[String]) -> Result<Vec<Permission>, Status> {
    list.iter()
        .map(|p| {
            Permission::parse(p).map_err(|e| {
                let e = format!("permission `{}`: {e}", p.chars().take(80).collect::<String>());
                with_reason(Code::InvalidArgument, e.clone(), "INVALID_PERMISSION", &[(field, &e)])
            })
        })
        .collect()
}

/// The status of a failure of [`Rbac`](crate::Rbac), with its reason.
pub fn status(e: RbacError) -> Status {
    let (code, reason) = match &e {
        RbacError::InvalidRoleName => (Code::InvalidArgument, "INVALID_ROLE_NAME"),
        RbacError::InvalidPermission(_) => (Code::InvalidArgument, "INVALID_PERMISSION"),
        RbacError::RoleNotFound(_) => (Code::NotFound, "ROLE_NOT_FOUND"),
        RbacError::UserNotFound(_) => (Code::NotFound, "USER_NOT_FOUND"),
        RbacError::RoleExists(_) => (Code::AlreadyExists, "ROLE_EXISTS"),
        RbacError::BuiltinRole(_) => (Code::FailedPrecondition, "BUILTIN_ROLE"),
        RbacError::Cycle(..) => (Code::FailedPrecondition, "ROLE_CYCLE"),
        RbacError::Store(inner) => {
            tracing::error!(error = %inner, "RBAC store failed");
            return Status::unavailable("the policy store is unavailable");
        }
    };
    with_reason(code, e.to_string(), reason, &[])
}

/// A client's reading of security-service's failure.
pub(crate) fn service_error(s: Status) -> ServiceError {
    to_service_error("security-service", s)
}

pub fn code_to_pb(c: CheckCode) -> pb::PermissionCode {
    match c {
        CheckCode::PermissionGranted => pb::PermissionCode::PermissionGranted,
        CheckCode::PermissionDenied => pb::PermissionCode::PermissionDenied,
        CheckCode::UserNotFound => pb::PermissionCode::UserNotFound,
        CheckCode::InvalidPermission => pb::PermissionCode::InvalidPermission,
    }
}

/// The check code of an answer; UNSPECIFIED (or a code this build does not know) is a broken
/// peer.
pub(crate) fn code_from_pb(c: i32) -> Result<CheckCode, ServiceError> {
    match pb::PermissionCode::try_from(c) {
        Ok(pb::PermissionCode::PermissionGranted) => Ok(CheckCode::PermissionGranted),
        Ok(pb::PermissionCode::PermissionDenied) => Ok(CheckCode::PermissionDenied),
        Ok(pb::PermissionCode::UserNotFound) => Ok(CheckCode::UserNotFound),
        Ok(pb::PermissionCode::InvalidPermission) => Ok(CheckCode::InvalidPermission),
        Ok(pb::PermissionCode::Unspecified) | Err(_) => {
            Err(ServiceError::Internal("security-service answered an unspecified permission code".into()))
        }
    }
}

pub(crate) fn role_to_pb(r: Role) -> pb::Role {
    pb::Role {
        name: r.name.to_string(),
        description: r.description,
        permissions: r.permissions.iter().map(|p| p.to_string()).collect(),
        inherits: r.inherits.iter().map(|p| p.to_string()).collect(),
        builtin: r.builtin,
    }
}

pub(crate) fn role_from_pb(r: pb::Role) -> RoleInfo {
    RoleInfo {
        name: r.name,
        description: r.description,
        permissions: r.permissions,
        inherits: r.inherits,
        builtin: r.builtin,
    }
}
