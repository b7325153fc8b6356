//! Compiles `evlog/v1` and `raft/v1` without protoc: protox parses the files into a
//! descriptor set, which madsim-tonic-build turns into both the real tonic code and the
//! simulated one (picked by `cfg(madsim)` in `include_proto!`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "evlog/v1/evlog.proto",
        "evlog/v1/groups.proto",
        "raft/v1/raft.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["."])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("evlog_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_build::configure()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .bytes(["."])
        .compile_protos(&protos, &["."])?;
    Ok(())
}
