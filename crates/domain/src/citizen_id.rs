//! The 12-digit citizen identity number (CCCD). Its first six digits are not
//! random: the province of birth registration, a digit giving century and sex, and
//! the last two digits of the birth year. A number that contradicts the member's
//! own birth date or sex is a typing error worth catching at the door.

use chrono::{Datelike, NaiveDate};
use std::fmt;

use crate::admin;
use crate::person::Sex;

/// A citizen ID whose structure has been checked.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CitizenId(String);

/// Why a string is not a citizen ID. Messages never repeat the number itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CitizenIdError {
    #[error("must be exactly 12 digits")]
    Format,
    #[error("digits 1-3 must be the code of a province of birth registration (001-096)")]
    UnknownProvince,
    #[error("digits 5-6 give birth year {id_year:02}, but the birth date is in {birth_year}")]
    BirthYearMismatch { id_year: u32, birth_year: i32 },
    #[error("digit 4 encodes the {century}s, but the birth date is in {birth_year}")]
    CenturyMismatch { century: i32, birth_year: i32 },
    #[error("digit 4 encodes a {encoded} holder, but the member's sex is {given}")]
    SexMismatch {
        encoded: &'static str,
        given: &'static str,
    },
}

impl CitizenId {
    /// Checks the structure: 12 ASCII digits and a known province code.
    pub fn parse(raw: &str) -> Result<Self, CitizenIdError> {
        let raw = raw.trim();
        if raw.len() != 12 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CitizenIdError::Format);
        }
        let province = &raw[0..3];
        if !province.starts_with('0') || admin::catalog().province(&province[1..]).is_none() {
            return Err(CitizenIdError::UnknownProvince);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn digit(&self, i: usize) -> u32 {
        u32::from(self.0.as_bytes()[i] - b'0')
    }

    /// The century (1800, 1900, ...) and sex encoded by digit 4.
    pub fn century_and_sex(&self) -> (i32, Sex) {
        let d = self.digit(3);
        let century = match d / 2 {
            0 => 1900,
            1 => 2000,
            2 => 2100,
            3 => 2200,
            _ => 1800,
        };
        let sex = if d.is_multiple_of(2) {
            Sex::Male
        } else {
            Sex::Female
        };
        (century, sex)
    }

    /// The full birth year encoded by digits 4-6.
    pub fn birth_year(&self) -> i32 {
        let (century, _) = self.century_and_sex();
        century + (self.digit(4) * 10 + self.digit(5)) as i32
    }

    /// Checks that the number agrees with what else is known about its holder.
    pub fn check_holder(
        &self,
        birth_date: Option<NaiveDate>,
        sex: Option<Sex>,
    ) -> Result<(), CitizenIdError> {
        let (century, encoded_sex) = self.century_and_sex();
        if let Some(date) = birth_date {
            let year = date.year();
            let id_year = self.digit(4) * 10 + self.digit(5);
            if year.rem_euclid(100) as u32 != id_year {
                return Err(CitizenIdError::BirthYearMismatch {
                    id_year,
                    birth_year: year,
                });
            }
            if year - year.rem_euclid(100) != century {
                return Err(CitizenIdError::CenturyMismatch {
                    century,
                    birth_year: year,
                });
            }
        }
        if let Some(given) = sex
            && given != encoded_sex
        {
            return Err(CitizenIdError::SexMismatch {
                encoded: sex_word(encoded_sex),
                given: sex_word(given),
            });
        }
        Ok(())
    }

    /// The number with all but the province code and the last two digits hidden.
    pub fn masked(&self) -> String {
        format!("{}*******{}", &self.0[..3], &self.0[10..])
    }
}

fn sex_word(sex: Sex) -> &'static str {
    match sex {
        Sex::Male => "male",
        Sex::Female => "female",
    }
}

/// Never print the number itself: Debug output ends up in logs.
impl fmt::Debug for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CitizenId({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, d)
    }

    #[test]
    fn accepts_a_lang_son_number() {
        let id = CitizenId::parse("020085001234").expect("valid");
        assert_eq!(id.century_and_sex(), (1900, Sex::Male));
        assert_eq!(id.birth_year(), 1985);
        assert!(id.check_holder(date(1985, 3, 2), Some(Sex::Male)).is_ok());
    }

    #[test]
    fn decodes_century_and_sex() {
        let female_2000s = CitizenId::parse("020305000001").expect("valid");
        assert_eq!(female_2000s.century_and_sex(), (2000, Sex::Female));
        assert_eq!(female_2000s.birth_year(), 2005);
        let male_1800s = CitizenId::parse("001899000001").expect("valid");
        assert_eq!(male_1800s.birth_year(), 1899);
    }

    #[test]
    fn rejects_bad_shapes() {
        for bad in [
            "",
            "02008500123",
            "0200850012345",
            "02008500123a",
            "٠٢٠٠٨٥٠٠١٢٣٤",
        ] {
            assert_eq!(CitizenId::parse(bad), Err(CitizenIdError::Format), "{bad}");
        }
    }

    #[test]
    fn rejects_unknown_province_codes() {
        assert_eq!(
            CitizenId::parse("099085001234"),
            Err(CitizenIdError::UnknownProvince)
        );
        assert_eq!(
            CitizenId::parse("120085001234"),
            Err(CitizenIdError::UnknownProvince)
        );
        assert_eq!(
            CitizenId::parse("000085001234"),
            Err(CitizenIdError::UnknownProvince)
        );
    }

    #[test]
    fn catches_numbers_that_contradict_the_holder() {
        let id = CitizenId::parse("020085001234").expect("valid");
        assert!(matches!(
            id.check_holder(date(1986, 1, 1), None),
            Err(CitizenIdError::BirthYearMismatch {
                id_year: 85,
                birth_year: 1986
            })
        ));
        assert!(matches!(
            id.check_holder(date(2085, 1, 1), None),
            Err(CitizenIdError::CenturyMismatch { century: 1900, .. })
        ));
        assert!(matches!(
            id.check_holder(None, Some(Sex::Female)),
            Err(CitizenIdError::SexMismatch { .. })
        ));
    }

    #[test]
    fn debug_and_errors_never_show_the_number() {
        let id = CitizenId::parse("020085001234").expect("valid");
        assert_eq!(format!("{id:?}"), "CitizenId(020*******34)");
        let err = id
            .check_holder(date(1990, 1, 1), None)
            .expect_err("mismatch");
        assert!(!err.to_string().contains("020085001234"));
    }

    proptest! {
        #[test]
        fn any_structurally_valid_number_round_trips(
            sex_century in 0u32..10, yy in 0u32..100, rest in 0u32..1_000_000
        ) {
            let raw = format!("020{sex_century}{yy:02}{rest:06}");
            let id = CitizenId::parse(&raw).expect("structurally valid");
            let year = id.birth_year();
            prop_assert_eq!(year.rem_euclid(100) as u32, yy);
            let (_, sex) = id.century_and_sex();
            let birth = NaiveDate::from_ymd_opt(year, 6, 15);
            prop_assert!(id.check_holder(birth, Some(sex)).is_ok());
        }
    }
}
