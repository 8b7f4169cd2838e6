//! Compiles `proto/` into Rust with protox (a pure-Rust protobuf compiler), so no system `protoc`
//! is needed to build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/oidc_authz/v1/records.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let file_descriptors = protox::compile(protos, ["proto"])?;
    // Records hold tokens: their `Debug` is written by hand, with the secrets redacted.
    prost_build::Config::new()
        .skip_debug([
            ".oidc_authz.v1.SessionRecord",
            ".oidc_authz.v1.PendingLoginRecord",
        ])
        .compile_fds(file_descriptors)?;
    Ok(())
}
