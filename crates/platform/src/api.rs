//! The request conventions every service shares (AIP-154/158): dates in
//! Vietnam's calendar, page sizes and opaque page tokens bound to their filter,
//! etags, timestamps, ids.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sustain_domain::Violations;

use crate::error::ServiceError;

/// Today in Vietnam (UTC+7): registration dates and unit validity are local dates.
pub fn today() -> NaiveDate {
    let offset = FixedOffset::east_opt(7 * 3600).unwrap_or_else(|| unreachable!("valid offset"));
    Utc::now().with_timezone(&offset).date_naive()
}

/// Now, to the microsecond: the finest both SQLite and PostgreSQL store, so a
/// response and a later read of the same record agree.
pub fn now() -> DateTime<Utc> {
    chrono::SubsecRound::trunc_subsecs(Utc::now(), 6)
}

/// A new record id: UUIDv7, so ids sort by creation.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Page size when a list request gives none, and the most one page holds.
pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 500;

/// AIP-158: 0 means the default, larger values are capped, negative is an error.
pub fn page_size(raw: i32, v: &mut Violations) -> Option<usize> {
    match usize::try_from(raw) {
        Err(_) => {
            v.add("page_size", "must not be negative");
            None
        }
        Ok(0) => Some(DEFAULT_PAGE_SIZE),
        Ok(n) => Some(n.min(MAX_PAGE_SIZE)),
    }
}

pub fn parse_date(raw: &str, field: &str, v: &mut Violations) -> Option<NaiveDate> {
    match NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            v.add(field, "must be a date written YYYY-MM-DD");
            None
        }
    }
}

/// A date that may be left empty.
pub fn optional_date(raw: &str, field: &str, v: &mut Violations) -> Option<NaiveDate> {
    if raw.trim().is_empty() {
        None
    } else {
        parse_date(raw, field, v)
    }
}

/// An id (UUID) in its one stored spelling: lower-case and hyphenated,
/// whichever of the spellings UUIDs are written in it came in (upper case,
/// braces, no hyphens, `urn:uuid:`). `None` when it is no UUID.
pub fn canonical_id(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw.trim())
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// A required id (UUID), in its canonical spelling ([`canonical_id`]): a
/// client that spells an id another way on a retry names the same record.
pub fn required_id(raw: &str, field: &str, v: &mut Violations) -> String {
    let id = raw.trim();
    if id.is_empty() {
        v.add(field, "is required");
        return String::new();
    }
    canonical_id(id).unwrap_or_else(|| {
        v.add(field, "must be an id (UUID)");
        id.to_owned()
    })
}

pub fn etag(version: i64) -> String {
    format!("v{version}")
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

#[derive(Serialize, Deserialize)]
struct PageToken {
    after: String,
    filter: String,
}

/// Where a list resumes: `None` for the first page. A token is bound to the
/// filter it was issued for (`filter` is the encoded filter message).
pub fn page_after(token: &str, filter: &[u8]) -> Result<Option<String>, ServiceError> {
    if token.is_empty() {
        return Ok(None);
    }
    let parsed: Option<PageToken> = B64
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match parsed {
        Some(t) if t.filter == B64.encode(filter) => Ok(Some(t.after)),
        Some(_) => Err(ServiceError::invalid(
            "page_token",
            "was issued for a different filter; start again without a page_token",
        )),
        None => Err(ServiceError::invalid(
            "page_token",
            "is not a token this service issued",
        )),
    }
}

/// The token for the page after the one ending at `last`.
pub fn next_page_token(last: &str, filter: &[u8]) -> String {
    let token = PageToken {
        after: last.to_owned(),
        filter: B64.encode(filter),
    };
    B64.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// A page fetched with one row more than `size` (keyset paging): the rows to
/// answer with, and the token for the next page when that row was there.
pub fn cut_page<T>(
    mut rows: Vec<T>,
    size: usize,
    filter: &[u8],
    key: impl Fn(&T) -> &str,
) -> (Vec<T>, String) {
    if rows.len() > size {
        rows.truncate(size);
        let next = next_page_token(rows.last().map_or("", key), filter);
        (rows, next)
    } else {
        (rows, String::new())
    }
}

/// One page of a list as asked for: its size, the key it starts after, and
/// the filter its tokens are bound to. Read [`Page::limit`] rows ordered by
/// key after [`Page::after`]; [`Page::cut`] makes the answer and next token.
#[derive(Debug, Clone)]
pub struct Page {
    pub size: usize,
    pub after: Option<String>,
    filter: Vec<u8>,
}

impl Page {
    /// The page `token` names of the list under `filter` (the encoded filter
    /// message); INVALID_ARGUMENT for a token of another filter or none of ours.
    pub fn asked(size: usize, token: &str, filter: Vec<u8>) -> Result<Page, ServiceError> {
        Ok(Page {
            size,
            after: page_after(token, &filter)?,
            filter,
        })
    }

    /// Rows to read: one more than the page, to know whether another follows.
    pub fn limit(&self) -> u64 {
        self.size as u64 + 1
    }

    /// The rows to answer with and the next page's token ("" at the end).
    pub fn cut<T>(&self, rows: Vec<T>, key: impl Fn(&T) -> &str) -> (Vec<T>, String) {
        cut_page(rows, self.size, &self.filter, key)
    }
}

/// Trims and checks a free-text field; `None` (and a violation) when it is
/// required and empty or longer than `max` characters.
pub fn text(raw: &str, field: &str, max: usize, required: bool, v: &mut Violations) -> String {
    let trimmed = raw.trim();
    if required && trimmed.is_empty() {
        v.add(field, "is required");
    } else if trimmed.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    } else if trimmed.chars().any(char::is_control) {
        v.add(field, "must not contain control characters");
    }
    trimmed.to_owned()
}

/// An optional unit filter: `None` when empty; a violation when it is not a
/// known administrative unit code.
pub fn known_unit(raw: &str, field: &str, v: &mut Violations) -> Option<String> {
    let unit = raw.trim();
    if unit.is_empty() {
        return None;
    }
    if !sustain_domain::admin::catalog().is_known(unit) {
        v.add(field, "is not a known administrative unit code");
        return None;
    }
    Some(unit.to_owned())
}

/// Checks the unit and span of years a summary is asked for: a known unit,
/// years 2000–2100 in order, at most `max_years` of them, and the whole unit
/// inside the caller's scope. `what` names the summary in the message.
pub fn checked_period(
    caller: &crate::Caller,
    unit_code: &str,
    from_year: i32,
    to_year: i32,
    max_years: i32,
    what: &str,
) -> Result<(String, i32, i32), ServiceError> {
    let mut v = Violations::new();
    let unit = unit_code.trim().to_owned();
    if unit.is_empty() {
        v.add("unit_code", "is required");
    } else if !sustain_domain::admin::catalog().is_known(&unit) {
        v.add("unit_code", "is not a known administrative unit code");
    }
    for (field, year) in [("from_year", from_year), ("to_year", to_year)] {
        if !(2000..=2100).contains(&year) {
            v.add(field, "must be a year between 2000 and 2100");
        }
    }
    if to_year < from_year {
        v.add("to_year", "is before from_year");
    } else if to_year - from_year >= max_years {
        v.add(
            "to_year",
            format!("a {what} covers at most {max_years} years"),
        );
    }
    crate::error::check(v)?;
    if !caller.scope.contains_unit(&unit) {
        return Err(ServiceError::PermissionDenied {
            reason: "OUT_OF_SCOPE",
            message: format!(
                "unit {unit} is not wholly inside the caller's scope; ask for a unit within it"
            ),
        });
    }
    Ok((unit, from_year, to_year))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_with_one_row_more_has_a_next_token_and_drops_that_row() {
        let rows = vec!["a", "b", "c"];
        let (page, next) = cut_page(rows.clone(), 2, b"f", |r| r);
        assert_eq!(page, ["a", "b"]);
        assert_eq!(page_after(&next, b"f").unwrap(), Some("b".to_owned()));
        let (page, next) = cut_page(rows, 3, b"f", |r| r);
        assert_eq!((page.len(), next.as_str()), (3, ""));
    }

    #[test]
    fn page_tokens_are_bound_to_their_filter() {
        let token = next_page_token("abc", b"filter-1");
        assert_eq!(
            page_after(&token, b"filter-1").unwrap(),
            Some("abc".to_owned())
        );
        assert!(page_after(&token, b"filter-2").is_err());
        assert!(page_after("garbage!", b"filter-1").is_err());
        assert_eq!(page_after("", b"x").unwrap(), None);
    }

    #[test]
    fn text_fields_are_checked() {
        let mut v = Violations::new();
        assert_eq!(text("  a  ", "name", 5, true, &mut v), "a");
        text("", "name", 5, true, &mut v);
        text("toolong", "title", 5, false, &mut v);
        text("", "note", 5, false, &mut v);
        let fields: Vec<_> = v.iter().map(|f| f.field.clone()).collect();
        assert_eq!(fields, ["name", "title"]);
    }
}
