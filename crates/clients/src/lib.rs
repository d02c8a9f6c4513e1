//! The command-line clients of the services and the data they carry: the
//! import file reader (CSV, XLSX) and the client that streams it to
//! `ReviewService.ImportHouseholds` (`sustain-registry import`), and the
//! reproducible demo population (`sustain-registry demo`, the programmes'
//! and ledger's demo data). They speak to the services through the
//! protobuf API; none of the services' own code is in here.

pub mod demo;
pub mod import_client;
pub mod import_file;
