//! The one mapping from what went wrong to a gRPC status. Every error carries an
//! `ErrorInfo` with an UPPER_SNAKE reason; invalid input carries a `BadRequest` that
//! names every bad field. Internal failures are logged here and reach the caller
//! only as a generic message.

use std::collections::HashMap;

use sustain_domain::{FieldViolation, Violations};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every Sustain error.
pub const ERROR_DOMAIN: &str = "sustain.vn";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{} invalid field(s)", .0.len())]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    #[error("{message}")]
    AlreadyExists {
        reason: &'static str,
        message: String,
        metadata: Vec<(&'static str, String)>,
    },
    #[error("{message}")]
    Aborted {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    PermissionDenied {
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Unavailable(String),
    /// A limit on how much one caller may ask at once; retry later.
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> ServiceError {
        let mut v = Violations::new();
        v.add(field, description);
        ServiceError::InvalidArgument(v.into_vec())
    }
}

/// INVALID_ARGUMENT naming every bad field, unless there are none.
pub fn check(v: Violations) -> Result<(), ServiceError> {
    if v.is_empty() { Ok(()) } else { Err(v.into()) }
}

/// What a field check built, once `v` holds no violation (INVALID_ARGUMENT
/// naming every bad field otherwise). A check returns `None` only when it
/// added a violation, so `None` here is our bug, not the caller's.
pub fn checked<T>(built: Option<T>, v: Violations) -> Result<T, ServiceError> {
    check(v)?;
    built.ok_or_else(|| ServiceError::Internal("checked fields missing".into()))
}

impl From<Violations> for ServiceError {
    fn from(v: Violations) -> Self {
        ServiceError::InvalidArgument(v.into_vec())
    }
}

impl From<tokio::task::JoinError> for ServiceError {
    fn from(e: tokio::task::JoinError) -> Self {
        ServiceError::Internal(format!("a task of this request failed: {e}"))
    }
}

impl From<sea_orm::DbErr> for ServiceError {
    fn from(e: sea_orm::DbErr) -> Self {
        if is_connection_error(&e) {
            ServiceError::Unavailable(format!("database unavailable: {e}"))
        } else if let Some(why) = concurrent_write(&e) {
            // Nothing of the request's transaction stays: the caller may
            // simply send it again, which ABORTED tells it (an INTERNAL would
            // not, and a sync batch would be kept as a conflict instead of
            // being pulled again).
            tracing::warn!(error = %e, "a write gave way to a concurrent one");
            ServiceError::Aborted {
                reason: "CONCURRENT_WRITE",
                message: format!(
                    "the database {why}; nothing of this request was written, send it again"
                ),
            }
        } else {
            ServiceError::Internal(format!("database: {e}"))
        }
    }
}

/// What the database did when `e` is its refusal of a write because of a
/// concurrent one, which the same write sent again can pass: PostgreSQL's
/// deadlock and serialization failures (SQLSTATE 40P01, 40001), SQLite's
/// busy and locked database (primary result codes 5 and 6, once the busy
/// timeout has run out).
fn concurrent_write(e: &sea_orm::DbErr) -> Option<&'static str> {
    let (sea_orm::DbErr::Exec(sea_orm::RuntimeErr::SqlxError(error))
    | sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(error))) = e
    else {
        return None;
    };
    let database = error.as_database_error()?;
    let code = database.code()?;
    if database
        .try_downcast_ref::<sea_orm::sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        return match code.as_ref() {
            "40P01" => Some("broke a deadlock with a concurrent write"),
            "40001" => Some("could not serialise this write with a concurrent one"),
            _ => None,
        };
    }
    match code.parse::<i32>().ok()? & 0xff {
        5 => Some("stayed busy with a concurrent write"),
        6 => Some("stayed locked by a concurrent write"),
        _ => None,
    }
}

fn is_connection_error(e: &sea_orm::DbErr) -> bool {
    matches!(
        e,
        sea_orm::DbErr::Conn(_) | sea_orm::DbErr::ConnectionAcquire(_)
    )
}

fn info(reason: &str, metadata: HashMap<String, String>) -> ErrorDetails {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    details
}

/// Longest status message a refusal's violations are written into; the
/// details hold every one whatever the length.
const MAX_MESSAGE_CHARS: usize = 2_000;

/// Every violation with its reason, as one line any client prints: "invalid
/// request: transfers[0].id: must be an id (UUID); …". One that would not fit
/// is counted instead ("and 3 more in the details").
fn violations_message(violations: &[FieldViolation]) -> String {
    let mut message = String::from("invalid request: ");
    let mut shown = 0;
    for v in violations {
        let part = format!("{}: {}", v.field, v.description);
        let separator = if shown == 0 { "" } else { "; " };
        if message.chars().count() + separator.len() + part.chars().count() > MAX_MESSAGE_CHARS
            && shown > 0
        {
            break;
        }
        message.push_str(separator);
        message.push_str(&part);
        shown += 1;
    }
    if shown < violations.len() {
        message.push_str(&format!(
            "; and {} more in the details (google.rpc.BadRequest)",
            violations.len() - shown
        ));
    }
    message
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Status {
        match error {
            ServiceError::InvalidArgument(violations) => {
                let mut details = info("INVALID_FIELDS", HashMap::new());
                let message = violations_message(&violations);
                for v in &violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            ServiceError::NotFound { resource, id } => {
                let metadata = HashMap::from([("id".to_owned(), id.clone())]);
                Status::with_error_details(
                    Code::NotFound,
                    format!("{resource} {id} not found"),
                    info("NOT_FOUND", metadata),
                )
            }
            ServiceError::AlreadyExists {
                reason,
                message,
                metadata,
            } => {
                let metadata = metadata
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                Status::with_error_details(Code::AlreadyExists, message, info(reason, metadata))
            }
            ServiceError::Aborted { reason, message } => {
                Status::with_error_details(Code::Aborted, message, info(reason, HashMap::new()))
            }
            ServiceError::FailedPrecondition { reason, message } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                info(reason, HashMap::new()),
            ),
            ServiceError::PermissionDenied { reason, message } => Status::with_error_details(
                Code::PermissionDenied,
                message,
                info(reason, HashMap::new()),
            ),
            ServiceError::Unauthenticated(message) => Status::with_error_details(
                Code::Unauthenticated,
                message,
                info("UNAUTHENTICATED", HashMap::new()),
            ),
            ServiceError::ResourceExhausted(message) => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                info("BUSY", HashMap::new()),
            ),
            ServiceError::Unavailable(detail) => {
                tracing::warn!(%detail, "dependency unavailable");
                Status::with_error_details(
                    Code::Unavailable,
                    "a dependency is unavailable; retry later",
                    info("UNAVAILABLE", HashMap::new()),
                )
            }
            ServiceError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::with_error_details(
                    Code::Internal,
                    "internal error",
                    info("INTERNAL", HashMap::new()),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_gives_each_fields_reason_and_counts_what_does_not_fit() {
        let mut v = Violations::new();
        v.add("transfers[0].id", "must be an id (UUID)");
        v.add("members[1].birth_date", "must not be in the future");
        let status = Status::from(ServiceError::from(v));
        assert_eq!(
            status.message(),
            "invalid request: transfers[0].id: must be an id (UUID); members[1].birth_date: must not be in the future"
        );
        let mut many = Violations::new();
        for i in 0..200 {
            many.add(
                format!("rows[{i}].amount"),
                "must be a positive number of đồng",
            );
        }
        let status = Status::from(ServiceError::from(many));
        assert!(status.message().chars().count() < MAX_MESSAGE_CHARS + 100);
        assert!(
            status
                .message()
                .starts_with("invalid request: rows[0].amount: must be")
        );
        assert!(
            status
                .message()
                .ends_with("more in the details (google.rpc.BadRequest)"),
            "{}",
            status.message()
        );
        let in_details = status
            .get_error_details()
            .bad_request()
            .map_or(0, |b| b.field_violations.len());
        assert_eq!(in_details, 200, "the details keep every one");
    }

    #[test]
    fn invalid_argument_names_every_field() {
        let mut v = Violations::new();
        v.add("household.address.commune_code", "is not a known commune");
        v.add(
            "household.members[0].citizen_id",
            "must be exactly 12 digits",
        );
        let status = Status::from(ServiceError::from(v));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let fields: Vec<_> = details
            .bad_request()
            .expect("bad request")
            .field_violations
            .iter()
            .map(|f| f.field.clone())
            .collect();
        assert_eq!(
            fields,
            [
                "household.address.commune_code",
                "household.members[0].citizen_id"
            ]
        );
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some("INVALID_FIELDS")
        );
    }

    #[test]
    fn internal_detail_is_not_sent_to_the_caller() {
        let status = Status::from(ServiceError::Internal("secret table layout".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }
}
