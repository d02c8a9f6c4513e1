//! Folding Vietnamese text for search: "Nguyễn Văn Ánh" and "nguyen van anh" fold
//! to the same string, so a clerk without a Vietnamese keyboard still finds people.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower-cases, strips diacritics (including đ → d) and collapses whitespace.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        match c {
            'đ' | 'Đ' => out.push('d'),
            other => out.extend(other.to_lowercase()),
        }
    }
    out
}

/// A name as it is searched: folded ([`fold`]), every character that is not
/// a letter or digit read as a space, spaces collapsed. Stored names and
/// queries both go through it, so "Trần Văn-Cường" is found by its own
/// spelling and by "tran van cuong", and no LIKE wildcard survives.
pub fn search_key(text: &str) -> String {
    let spaced: String = fold(text)
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::{fold, search_key};

    #[test]
    fn search_keys_read_punctuation_as_a_space() {
        assert_eq!(search_key("Trần Văn-Cường"), "tran van cuong");
        assert_eq!(search_key("Hà Thị_Lan"), "ha thi lan");
        assert_eq!(search_key("Lý O'Sảo"), "ly o sao");
        assert_eq!(search_key(" %_ "), "");
        assert_eq!(search_key("Đinh  Thị\tHồng."), "dinh thi hong");
    }
    use proptest::prelude::*;

    #[test]
    fn folds_vietnamese_names() {
        assert_eq!(fold("Nguyễn Văn A"), "nguyen van a");
        assert_eq!(fold("ĐINH THỊ Hồng"), "dinh thi hong");
        assert_eq!(fold("  Hoàng   Văn\tThụ "), "hoang van thu");
        assert_eq!(fold("Lạng Sơn"), fold("Lang Son"));
    }

    #[test]
    fn precomposed_and_decomposed_forms_fold_alike() {
        // "ế" as one code point and as e + circumflex + acute.
        assert_eq!(fold("Nguy\u{1EBF}n"), fold("Nguye\u{0302}\u{0301}n"));
    }

    proptest! {
        #[test]
        fn folding_is_idempotent(s in "\\PC{0,40}") {
            let once = fold(&s);
            prop_assert_eq!(fold(&once), once.clone());
        }

        #[test]
        fn search_keys_hold_only_letters_digits_and_single_spaces(s in "\\PC{0,40}") {
            let key = search_key(&s);
            prop_assert!(key.chars().all(|c| c.is_alphanumeric() || c == ' '));
            prop_assert!(!key.contains("  ") && key.trim() == key);
            prop_assert_eq!(search_key(&key), key.clone());
        }

        #[test]
        fn folded_text_has_no_combining_marks(s in "[a-zA-Zàáảãạăắằẳẵặâấầẩẫậđèéẻẽẹêếềểễệìíỉĩịòóỏõọôốồổỗộơớờởỡợùúủũụưứừửữựỳýỷỹỵ ]{0,40}") {
            let folded = fold(&s);
            prop_assert!(folded.is_ascii());
        }
    }
}
