//! Collector ingest benchmark; `cargo xtask bench` runs it natively.
fn main() {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    match acelogic_tests::collector_bench::run(n) {
        Ok(doc) => println!("ACELOGIC-BENCH-COLLECTOR {doc}"),
        Err(e) => {
            println!("acelogic-collector-bench failed: {e:#}");
            std::process::exit(1);
        }
    }
}
