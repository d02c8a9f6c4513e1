//! The rules of Sustain as plain functions over plain data: which administrative
//! units exist and when, what a valid citizen ID is, who counts as an ethnic
//! minority, what makes a household record valid, and how Vietnamese names fold
//! for search. Nothing here knows about gRPC, databases or the clock.

pub mod admin;
pub mod citizen_id;
pub mod ethnicity;
pub mod household;
pub mod text;
pub mod violation;

pub use violation::{FieldViolation, Violations};
