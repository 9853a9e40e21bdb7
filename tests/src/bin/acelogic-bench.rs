//! Kernel hook overhead, kernel-native peers and submit-to-enforced
//! latency; run by `cargo xtask bench` in the VM.
fn main() {
    if let Err(e) = acelogic_tests::bench::main() {
        println!("acelogic-bench failed: {e:#}");
        std::process::exit(1);
    }
}
