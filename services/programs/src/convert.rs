//! Conversions every programme resource shares: record bookkeeping, classes,
//! update masks.

use chrono::{DateTime, Utc};
use sustain_domain::poverty::Standing;
use sustain_platform::api::{etag, timestamp};
use sustain_platform::error::ServiceError;
use sustain_proto::programs::v1 as pb;

pub const ACTIVE: &str = "active";
pub const ARCHIVED: &str = "archived";

/// Longest name and reason accepted.
pub const MAX_NAME_CHARS: usize = 300;
pub const MAX_REASON_CHARS: usize = 500;

pub fn meta(
    state: &str,
    version: i64,
    archive_reason: Option<&str>,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
) -> pb::RecordMeta {
    pb::RecordMeta {
        state: if state == ARCHIVED {
            pb::RecordState::Archived
        } else {
            pb::RecordState::Active
        } as i32,
        version,
        etag: etag(version),
        create_time: Some(timestamp(created)),
        update_time: Some(timestamp(updated)),
        archive_reason: archive_reason.unwrap_or_default().to_owned(),
    }
}

pub fn class_to_proto(code: &str) -> pb::EnrolmentClass {
    match Standing::from_code(code) {
        Some(Standing::Poor) => pb::EnrolmentClass::Poor,
        Some(Standing::NearPoor) => pb::EnrolmentClass::NearPoor,
        Some(Standing::RecentlyEscaped) => pb::EnrolmentClass::RecentlyEscaped,
        Some(Standing::Other) => pb::EnrolmentClass::Other,
        None => pb::EnrolmentClass::Unspecified,
    }
}

pub fn class_from_proto(class: pb::EnrolmentClass) -> Option<Standing> {
    match class {
        pb::EnrolmentClass::Poor => Some(Standing::Poor),
        pb::EnrolmentClass::NearPoor => Some(Standing::NearPoor),
        pb::EnrolmentClass::RecentlyEscaped => Some(Standing::RecentlyEscaped),
        pb::EnrolmentClass::Other => Some(Standing::Other),
        pb::EnrolmentClass::Unspecified => None,
    }
}

/// The paths of an update: the mask's, or every updatable path when it is empty
/// (AIP-134); unknown paths are an error naming them.
pub fn mask_paths<'a>(
    mask: Option<&'a prost_types::FieldMask>,
    allowed: &'a [&'a str],
) -> Result<Vec<&'a str>, ServiceError> {
    let paths: Vec<&str> = match mask {
        Some(m) if !m.paths.is_empty() => m.paths.iter().map(String::as_str).collect(),
        _ => allowed.to_vec(),
    };
    let unknown: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|p| !allowed.contains(p))
        .collect();
    if unknown.is_empty() {
        Ok(paths)
    } else {
        Err(ServiceError::invalid(
            "update_mask",
            format!(
                "cannot update {}; updatable: {}",
                unknown.join(", "),
                allowed.join(", ")
            ),
        ))
    }
}

pub use sustain_platform::error::{check, checked};

/// A stale etag on a change.
pub fn stale(resource: &str, id: &str) -> ServiceError {
    ServiceError::Aborted {
        reason: "STALE_ETAG",
        message: format!("{resource} {id} changed meanwhile; read it again"),
    }
}

/// Changes to an archived record are refused.
pub fn archived(resource: &str, id: &str) -> ServiceError {
    ServiceError::FailedPrecondition {
        reason: "ARCHIVED",
        message: format!("{resource} {id} is archived and takes no changes"),
    }
}
