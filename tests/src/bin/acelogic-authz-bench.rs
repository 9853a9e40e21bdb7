//! Verify-and-decide benchmark; `cargo xtask bench` runs it natively.
fn main() {
    match acelogic_tests::authz_bench::run(2000) {
        Ok(doc) => println!("ACELOGIC-BENCH-AUTHZ {doc}"),
        Err(e) => {
            println!("acelogic-authz-bench failed: {e:#}");
            std::process::exit(1);
        }
    }
}
