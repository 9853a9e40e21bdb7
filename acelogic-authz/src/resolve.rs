//! Turns admitted capabilities into kernel grant objects: a binary to the
//! (device, inode) whose content was hashed, a directory or file to its
//! (device, inode), a destination to address prefixes and ports.
//!
//! A binary is opened once; its identity comes from `fstat` on that
//! descriptor and its digest from reading the same descriptor, then the
//! path is looked up again and must still name that inode. So the inode
//! the kernel will match is the one whose digest was checked, and the one
//! checked against the workload's never binaries: not the same inode (a
//! hard link), not the same content (a copy; hashed only when the size is
//! that of a never binary or the artifact names a digest anyway).
//!
//! Digests come from [`crate::digest`]: a binary hashed before and not
//! changed since (same device, inode, size, times, nobody writing it) is
//! not read again.

use std::{
    fs::File,
    net::IpAddr,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
};

use acelogic_common::rules::rights;
use acelogic_domain::capability::{Capability, Host};
use acelogic_domain::grant::{GrantObject, NetTarget, kernel_dev};

use acelogic_domain::{Reason, Refusal};

use super::{
    check::Resolved,
    digest,
    never::{Guard, Stamp},
};

/// At most this many kernel entries per artifact (ports times addresses).
pub const MAX_ENTRIES: usize = 256;

fn refuse(code: Reason, why: String) -> Refusal {
    Refusal { code, why }
}

/// The kernel objects of `caps`, in order; binaries are refused `never`
/// when they are one of `never`'s binaries by inode or content.
pub fn objects(
    caps: &[Capability],
    resolved: &Resolved,
    never: &Guard,
) -> Result<Vec<GrantObject>, Refusal> {
    let mut out = Vec::new();
    for (i, cap) in caps.iter().enumerate() {
        let at = |e: Refusal| Refusal {
            code: e.code,
            why: format!("capabilities[{i}] ({cap}): {}", e.why),
        };
        match cap {
            Capability::Exec(c) => {
                let (dev, ino) =
                    binary(c.path.as_path(), c.sha256.map(|d| d.0), never).map_err(at)?;
                out.push(GrantObject::FileId {
                    dev,
                    ino,
                    rights: rights::EXEC,
                });
            }
            Capability::Write(c) => {
                let meta = std::fs::metadata(c.path.as_path()).map_err(|e| {
                    at(refuse(
                        Reason::ObjectMissing,
                        format!(
                            "{}: {e} (a write grant names an existing file or directory)",
                            c.path
                        ),
                    ))
                })?;
                out.push(GrantObject::FileId {
                    dev: kernel_dev(meta.dev()),
                    ino: meta.ino(),
                    rights: rights::WRITE,
                });
            }
            Capability::Connect(c) => {
                let nets: Vec<(IpAddr, u8)> = match &c.host {
                    Host::Net(n) => vec![(n.network(), n.prefix_len())],
                    Host::Name(name) => {
                        let addrs = resolved.get(name).cloned().unwrap_or_default();
                        if addrs.is_empty() {
                            return Err(at(refuse(
                                Reason::Unresolvable,
                                format!("{name} resolves to no address on this node"),
                            )));
                        }
                        addrs
                            .into_iter()
                            .map(|a| (a, if a.is_ipv4() { 32 } else { 128 }))
                            .collect()
                    }
                };
                for (addr, prefix) in nets {
                    for port in c.ports.kernel_ports() {
                        out.push(GrantObject::Net(NetTarget {
                            protocol: c.protocol,
                            addr,
                            prefix,
                            port,
                        }));
                    }
                }
            }
        }
        if out.len() > MAX_ENTRIES {
            return Err(refuse(
                Reason::TooManyEntries,
                format!(
                    "the capabilities expand to more than {MAX_ENTRIES} kernel entries \
                     (ports times addresses); split the artifact"
                ),
            ));
        }
    }
    Ok(out)
}

/// (kernel dev, inode) of the executable at `path`, after checking its
/// digest when one is given and that it is none of `never`'s binaries.
fn binary(
    path: &std::path::Path,
    want: Option<[u8; 32]>,
    never: &Guard,
) -> Result<(u32, u64), Refusal> {
    let shown = path.display();
    let file =
        File::open(path).map_err(|e| refuse(Reason::ObjectMissing, format!("{shown}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| refuse(Reason::ObjectMissing, format!("{shown}: {e}")))?;
    if !meta.is_file() {
        return Err(refuse(
            Reason::ObjectMissing,
            format!("{shown} is not a regular file"),
        ));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(refuse(
            Reason::ObjectMissing,
            format!("{shown} is not executable"),
        ));
    }
    let stamp = Stamp::of(&meta);
    never.check_link(path, &stamp)?;
    if want.is_some() || never.same_size(&stamp) {
        let got = digest::sha256(&file)
            .map_err(|e| refuse(Reason::ObjectMissing, format!("reading {shown}: {e}")))?;
        never.check_copy(path, &stamp, &got)?;
        if let Some(want) = want
            && got != want
        {
            return Err(refuse(
                Reason::DigestMismatch,
                format!(
                    "{shown} has sha256 {} but the artifact grants {}",
                    hex::encode(got),
                    hex::encode(want)
                ),
            ));
        }
    }
    let now = std::fs::metadata(path)
        .map_err(|e| refuse(Reason::ObjectMissing, format!("{shown}: {e}")))?;
    if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
        return Err(refuse(
            Reason::ObjectChanged,
            format!("{shown} was replaced while its digest was being checked; submit again"),
        ));
    }
    Ok((kernel_dev(meta.dev()), meta.ino()))
}

#[cfg(test)]
mod tests {
    use acelogic_domain::capability::Protocol;

    use sha2::{Digest as _, Sha256};

    use super::*;

    fn objects(caps: &[Capability], resolved: &Resolved) -> Result<Vec<GrantObject>, Refusal> {
        super::objects(caps, resolved, &Guard::default())
    }

    fn caps(json: &str) -> Vec<Capability> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn binaries_resolve_after_their_digest_matches() {
        let sh = std::fs::read("/bin/sh").unwrap();
        let digest = hex::encode(Sha256::digest(&sh));
        let ok = caps(&format!(
            r#"[{{"exec":{{"path":"/bin/sh","sha256":"{digest}"}}}}]"#
        ));
        let objs = objects(&ok, &Resolved::new()).unwrap();
        let meta = std::fs::metadata("/bin/sh").unwrap();
        assert_eq!(
            objs,
            vec![GrantObject::FileId {
                dev: kernel_dev(meta.dev()),
                ino: meta.ino(),
                rights: rights::EXEC
            }]
        );
        let bad = caps(&format!(
            r#"[{{"exec":{{"path":"/bin/sh","sha256":"{}"}}}}]"#,
            "0".repeat(64)
        ));
        assert_eq!(
            objects(&bad, &Resolved::new()).unwrap_err().code,
            "digest-mismatch"
        );
        let missing = caps(r#"[{"exec":{"path":"/nonexistent/tool"}}]"#);
        assert_eq!(
            objects(&missing, &Resolved::new()).unwrap_err().code,
            "object-missing"
        );
        let scratch = tempfile::Builder::new()
            .prefix("acelogic-plain-")
            .tempdir()
            .unwrap();
        let plain = scratch.path().join("plain");
        std::fs::write(&plain, b"data").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let not_exec = caps(&format!(r#"[{{"exec":{{"path":"{}"}}}}]"#, plain.display()));
        assert_eq!(
            objects(&not_exec, &Resolved::new()).unwrap_err().code,
            "object-missing"
        );
    }

    /// At install time the opened descriptor is checked against the never
    /// binaries: a file that became a link or a copy after admission is
    /// refused, whatever path it has.
    #[test]
    fn binaries_are_checked_against_never_on_the_descriptor() {
        let scratch = tempfile::Builder::new()
            .prefix("acelogic-resolve-never-")
            .tempdir()
            .unwrap();
        let d = scratch.path();
        let never_bin = d.join("nsenter");
        std::fs::write(&never_bin, b"#!/bin/sh\necho never\n").unwrap();
        std::fs::set_permissions(&never_bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let meta = std::fs::metadata(&never_bin).unwrap();
        let guard = Guard {
            workload: "w".to_owned(),
            binaries: vec![crate::never::NeverBinary {
                entry: never_bin.display().to_string(),
                path: never_bin.clone(),
                stamp: Stamp::of(&meta),
            }],
            warnings: Vec::new(),
        };
        let link = d.join("tool");
        std::fs::hard_link(&never_bin, &link).unwrap();
        let c = caps(&format!(r#"[{{"exec":{{"path":"{}"}}}}]"#, link.display()));
        let r = super::objects(&c, &Resolved::new(), &guard).unwrap_err();
        assert_eq!(r.code, "never");
        assert!(r.why.contains("is a hard link to never-automated"), "{r}");
        std::fs::remove_file(&link).unwrap();
        std::fs::copy(&never_bin, &link).unwrap();
        let r = super::objects(&c, &Resolved::new(), &guard).unwrap_err();
        assert_eq!(r.code, "never");
        assert!(r.why.contains("is a copy of never-automated"), "{r}");
        // With a digest named, the one read is also compared with never's.
        let digest = hex::encode(Sha256::digest(std::fs::read(&never_bin).unwrap()));
        let named = caps(&format!(
            r#"[{{"exec":{{"path":"{}","sha256":"{digest}"}}}}]"#,
            link.display()
        ));
        let r = super::objects(&named, &Resolved::new(), &guard).unwrap_err();
        assert_eq!(r.code, "never", "{r}");
        // Another content of the same size is granted.
        std::fs::write(&link, b"#!/bin/sh\necho other\n").unwrap();
        assert_eq!(
            super::objects(&c, &Resolved::new(), &guard).unwrap().len(),
            1
        );
    }

    #[test]
    fn destinations_expand_to_ports_and_addresses() {
        let c = caps(
            r#"[{"connect":{"host":"10.0.0.0/8","ports":"8000-8002","protocol":"tcp"}},
                {"connect":{"host":"svc.example","ports":"*","protocol":"udp"}}]"#,
        );
        let mut r = Resolved::new();
        r.insert(
            "svc.example".to_owned(),
            vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        );
        let objs = objects(&c, &r).unwrap();
        assert_eq!(objs.len(), 3 + 2);
        assert!(objs.contains(&GrantObject::Net(NetTarget {
            protocol: Protocol::Udp,
            addr: "2001:db8::1".parse().unwrap(),
            prefix: 128,
            port: 0,
        })));
        r.clear();
        assert_eq!(objects(&c, &r).unwrap_err().code, "unresolvable");
    }

    #[test]
    fn too_many_entries_are_refused() {
        let many: Vec<String> = (0..5)
            .map(|i| {
                format!(
                    r#"{{"connect":{{"host":"10.0.{i}.0/24","ports":"{}-{}","protocol":"tcp"}}}}"#,
                    1000 + i * 64,
                    1063 + i * 64
                )
            })
            .collect();
        let c = caps(&format!("[{}]", many.join(",")));
        assert_eq!(
            objects(&c, &Resolved::new()).unwrap_err().code,
            "too-many-entries"
        );
    }
}
