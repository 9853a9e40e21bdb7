//! Builds the BPF object from `acelogic-ebpf` with aya-build (nightly,
//! `-Z build-std=core`, bpf-linker on PATH; `cargo xtask setup` installs
//! them). The object lands in OUT_DIR and is embedded by `object.rs`. This
//! is the only crate that needs the BPF toolchain.
use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
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
