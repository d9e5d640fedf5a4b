//! Compiles `tierlink/v1/*.proto` with the vendored `protoc`, so a fresh machine needs nothing installed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "tierlink/v1/catalog.proto",
        "tierlink/v1/exchange.proto",
        "tierlink/v1/federation.proto",
        "tierlink/v1/directory.proto",
        "tierlink/v1/audit.proto",
        "tierlink/v1/webhooks.proto",
        "tierlink/v1/cases.proto",
        "tierlink/v1/crosscheck.proto",
        "tierlink/v1/backup.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Cargo tells a build script the package's features in its environment.
    let services = std::env::var_os("CARGO_FEATURE_SERVICES").is_some();
    tonic_prost_build::configure()
        .build_client(services)
        .build_server(services)
        .codec_path("crate::codec::ProstCodec")
        .file_descriptor_set_path(out.join("tierlink_descriptor.bin"))
        .compile_with_config(config, &protos, &["."])?;
    Ok(())
}
