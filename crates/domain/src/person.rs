//! What a person is recorded with that several rules read: their sex (the
//! citizen ID's century-and-sex digit, a household member, a child's growth
//! reference). Kept apart so the citizen ID and the household can both use
//! it without leaning on each other.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    /// The stable lower-case code used in storage and file imports.
    pub fn code(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
        }
    }

    pub fn from_code(code: &str) -> Option<Sex> {
        match code {
            "male" => Some(Sex::Male),
            "female" => Some(Sex::Female),
            _ => None,
        }
    }
}
