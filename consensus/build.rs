//! Compiles the Raft RPC contract (`proto/aurigraph/raft/v1/raft.proto`) with protoc (Debian's
//! protobuf-compiler, installed by `scripts/setup`; `PROTOC` overrides the one on the PATH).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_protos(&["proto/aurigraph/raft/v1/raft.proto"], &["proto"])?;
    Ok(())
}
