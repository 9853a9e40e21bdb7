//! Kernel-into-journal benchmark; `cargo xtask bench` runs it natively
//! (as root: it loads the lineage tracepoints).
fn main() {
    match acelogic_tests::journal_bench::run(5) {
        Ok(doc) => println!("ACELOGIC-BENCH-JOURNAL {doc}"),
        Err(e) => {
            println!("acelogic-journal-bench failed: {e:#}");
            std::process::exit(1);
        }
    }
}
