//! Kernel hook overhead benchmark; run by `cargo xtask bench` in the VM.
fn main() {
    if let Err(e) = acelogic_tests::bench::main() {
        println!("acelogic-bench failed: {e:#}");
        std::process::exit(1);
    }
}
