use which::which;

/// The eBPF crate links with `bpf-linker`, an undeclared dependency: rebuild
/// when the linker binary on PATH changes (e.g. after `cargo xtask setup`
/// rebuilt it for a new nightly).
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(e) => println!("cargo:warning=bpf-linker not on PATH ({e}); run `cargo xtask setup`"),
    }
}
