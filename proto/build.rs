//! Compiles `tollgate/v1/collector.proto` and the subset of Envoy's rate-limit protocol
//! (`envoy/service/ratelimit/v3/rls.proto`) with protox (pure Rust: no `protoc` needed) and
//! generates the prost messages, plus tonic client and server code when the `grpc` feature is on.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=tollgate/v1/collector.proto");
    println!("cargo:rerun-if-changed=envoy/service/ratelimit/v3/rls.proto");
    let fds = protox::compile(
        [
            "tollgate/v1/collector.proto",
            "envoy/service/ratelimit/v3/rls.proto",
        ],
        ["."],
    )?;
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_server(grpc)
        .build_client(grpc)
        .codec_path("crate::codec::StrictCodec")
        .compile_fds(fds)?;
    Ok(())
}
