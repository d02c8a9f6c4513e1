//! The rules of Sustain as plain functions over plain data: which administrative
//! units exist and when, what a valid citizen ID is, who counts as an ethnic
//! minority, what makes a household record valid, and how Vietnamese names fold
//! for search; when a household is poor under which standard, and the MPI; how
//! the programme is structured and what counts as a model's success; which
//! sector agencies' reports make a unit's yearly labour and insurance figures.
//! How the funding ledger moves money and chains its journal.
//! Nothing here knows about gRPC, databases or the clock.

pub mod admin;
pub mod citizen_id;
pub mod country;
pub mod ethnicity;
pub mod household;
pub mod lang_son;
pub mod ledger;
pub mod mpi;
pub mod nutrition;
pub mod person;
pub mod poverty;
pub mod programme;
pub mod sector;
pub mod text;
pub mod violation;

pub use violation::{FieldViolation, Violations};
