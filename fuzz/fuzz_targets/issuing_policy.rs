//! Arbitrary bytes as an issuing policy file: `issuing::parse_file` (YAML,
//! strict fields, tier, group and approval checks) must return, never
//! panic, and stay within its budgets whatever it is given; a policy it
//! accepts must place a request without panicking either.
#![no_main]

use std::{net::IpAddr, path::Path};

use acelogic_domain::{
    capability::{Capability, ConnectCap, ExecCap, Host, Protocol, WriteCap},
    issuing::parse_file,
};
use libfuzzer_sys::fuzz_target;

fn request() -> Vec<Capability> {
    vec![
        Capability::Exec(ExecCap {
            path: "/usr/local/bin/scale".parse().expect("a path"),
            sha256: None,
        }),
        Capability::Write(WriteCap {
            path: "/srv".parse().expect("a path"),
        }),
        Capability::Connect(ConnectCap {
            host: "db.internal".parse().expect("a host"),
            ports: "5432".parse().expect("ports"),
            protocol: Protocol::Tcp,
        }),
    ]
}

fn resolve(_: &Host) -> Vec<IpAddr> {
    vec![IpAddr::from([10, 0, 0, 1])]
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(policy) = parse_file(Path::new("fuzz.yaml"), text)
    {
        let caps = request();
        for w in ["w", "scaling-agent"] {
            let _ = policy.place(w, &caps, &resolve);
            let _ = policy.place(w, &caps[..1], &resolve);
            let _ = policy.rate_for(w);
        }
    }
});
