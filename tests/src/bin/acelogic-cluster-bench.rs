//! Cluster store benchmark; `cargo xtask bench` runs it natively.
fn main() {
    match acelogic_tests::cluster_bench::run(400) {
        Ok(doc) => println!("ACELOGIC-BENCH-CLUSTER {doc}"),
        Err(e) => {
            println!("acelogic-cluster-bench failed: {e:#}");
            std::process::exit(1);
        }
    }
}
