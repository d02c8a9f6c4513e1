//! The 54 ethnic groups of Vietnam with their two-digit codes (bundled from the
//! official list). A household is ethnic-minority when its head is not Kinh.

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Code of the Kinh majority.
pub const KINH: &str = "01";

const CSV: &str = include_str!("../data/vn-ethnic-groups.csv");

fn groups() -> &'static BTreeMap<String, String> {
    static GROUPS: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let mut reader = csv::Reader::from_reader(CSV.as_bytes());
        reader
            .records()
            .filter_map(Result::ok)
            .filter_map(|r| Some((r.get(0)?.to_owned(), r.get(1)?.to_owned())))
            .collect()
    })
}

/// The group's name for a code, `None` for an unknown code.
pub fn name(code: &str) -> Option<&'static str> {
    groups().get(code).map(String::as_str)
}

pub fn is_known(code: &str) -> bool {
    groups().contains_key(code)
}

pub fn is_minority(code: &str) -> bool {
    code != KINH
}

pub fn count() -> usize {
    groups().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_all_54_groups() {
        assert_eq!(count(), 54);
        assert_eq!(name("01"), Some("Kinh"));
        assert_eq!(name("02"), Some("Tày"));
        assert_eq!(name("07"), Some("Nùng"));
        assert_eq!(name("54"), Some("Rơ Măm"));
        assert!(!is_known("55"));
        assert!(!is_known("1"));
    }

    #[test]
    fn only_kinh_is_majority() {
        assert!(!is_minority("01"));
        assert!(is_minority("02"));
    }
}
