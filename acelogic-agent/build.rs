//! Builds the BPF object from `acelogic-ebpf` with aya-build (nightly,
//! `-Z build-std=core`, bpf-linker on PATH; `cargo xtask setup` installs
//! them). The object lands in OUT_DIR and is embedded by `kernel::object`.
//! Also generates the daemon's gRPC API from `proto/` (protoc comes from
//! the protoc-bin-vendored crate).
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=proto");
    let protoc = protoc_bin_vendored::protoc_bin_path().context("locating the vendored protoc")?;
    // SAFETY: build scripts are single-threaded; nothing else reads the
    // environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    // Lineage records also derive serde::Serialize: the collector stores
    // a JSON rendering beside each record and `acelogicctl lineage --json`
    // prints the same rendering.
    // Fields left at their default are omitted, as in protobuf's own JSON
    // mapping (it keeps the stored rendering about half the size). Not on
    // `Record`, whose oneof `body` is an enum serde renders as is.
    let mut lineage = tonic_prost_build::configure()
        .type_attribute(".acelogic.lineage.v1", "#[derive(serde::Serialize)]")
        .type_attribute(
            ".acelogic.lineage.v1",
            "#[serde(rename_all = \"camelCase\")]",
        );
    for message in [
        "Process",
        "Decision",
        "FileObject",
        "NetObject",
        "TaskObject",
        "ProcessExec",
        "ProcessFork",
        "ProcessExit",
        "Authorization",
        "Lifecycle",
        "Loss",
    ] {
        lineage = lineage.field_attribute(
            format!(".acelogic.lineage.v1.{message}"),
            "#[serde(skip_serializing_if = \"crate::lineage::is_default\")]",
        );
    }
    lineage
        .compile_protos(
            &[
                "proto/acelogic/agent/v1/agent.proto",
                "proto/acelogic/lineage/v1/lineage.proto",
            ],
            &["proto"],
        )
        .context("generating the gRPC APIs")?;
    // The collector's API imports the record format; it refers to the
    // types generated above instead of generating them twice.
    tonic_prost_build::configure()
        .extern_path(".acelogic.lineage.v1", "crate::lineage::pb")
        .compile_protos(&["proto/acelogic/collector/v1/collector.proto"], &["proto"])
        .context("generating the collector API")?;
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "acelogic-ebpf")
        .ok_or_else(|| anyhow!("acelogic-ebpf package not found in the workspace"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
