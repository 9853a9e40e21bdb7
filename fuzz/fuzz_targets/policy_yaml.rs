//! Arbitrary bytes as a policy file: `parse_file` (YAML, strict fields,
//! cgroup and rule checks, set checks) must return, never panic, and stay
//! within its budgets whatever it is given.
#![no_main]

use std::path::Path;

use acelogic_domain::policy::parse_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_file(Path::new("fuzz.yaml"), text);
    }
});
