//! Tests of the policy module; shared helpers here.

mod admission;
mod checks;
mod examples;

/// A fresh, empty directory under the system temp dir, removed when the
/// `TempDir` is dropped: keep it bound while the test uses paths in it.
pub(super) fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("acelogic-policy-{tag}-"))
        .tempdir()
        .unwrap()
}
