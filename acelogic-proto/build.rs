//! Generates the node API, the authority API, the lineage record format
//! and the collector API from `proto/` (protoc comes from the protoc-bin-vendored crate, so a
//! fresh machine needs no system protobuf compiler).
use anyhow::Context as _;

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
    // The node API refers to the authority's types (a relayed request's
    // evidence and state) by path; they are generated last, on their own,
    // so the file the node API's run wrote for them is replaced.
    let mut lineage = tonic_prost_build::configure()
        .extern_path(".acelogic.authority.v1", "crate::authority")
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
        "Issuance",
        "EvidenceDigest",
    ] {
        lineage = lineage.field_attribute(
            format!(".acelogic.lineage.v1.{message}"),
            "#[serde(skip_serializing_if = \"crate::is_default\")]",
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
        .extern_path(".acelogic.lineage.v1", "crate::lineage")
        .compile_protos(&["proto/acelogic/collector/v1/collector.proto"], &["proto"])
        .context("generating the collector API")?;
    tonic_prost_build::configure()
        .compile_protos(&["proto/acelogic/authority/v1/authority.proto"], &["proto"])
        .context("generating the authority API")?;

    Ok(())
}
