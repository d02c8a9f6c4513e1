//! Compiles `proto/` with protox (pure Rust, no system protoc) and writes both the
//! generated code and the encoded descriptor set, which the services serve for reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "sustain/registry/v1/admin_units.proto",
        "sustain/registry/v1/households.proto",
        "sustain/registry/v1/reviews.proto",
        "sustain/programs/v1/common.proto",
        "sustain/programs/v1/catalog.proto",
        "sustain/programs/v1/livelihood.proto",
        "sustain/programs/v1/training.proto",
        "sustain/programs/v1/outreach.proto",
        "sustain/programs/v1/support.proto",
        "sustain/programs/v1/sector.proto",
        "sustain/programs/v1/summary.proto",
        "sustain/ledger/v1/ledger.proto",
        "sustain/gateway/v1/reports.proto",
        "sustain/sync/v1/sync.proto",
    ];
    println!("cargo:rerun-if-changed={}", root.display());

    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("sustain_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
