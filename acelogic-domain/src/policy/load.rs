//! A policy directory to one [`PolicySet`]: every file is read and checked
//! (all errors are collected, not just the first), then the checks that
//! span files run over the whole set.

use std::{
    collections::BTreeMap,
    fs,
    io::Read as _,
    path::{Path, PathBuf},
};

use super::{
    Loaded, Located, PolicyDoc, PolicyErrors, PolicySet, Problem, Workload,
    compile::compile_doc,
    error::at_text,
    model::set_hash,
    parse::{MAX_POLICY_BYTES, Parsed, parse_raw},
};
use crate::{
    artifact::{TrustError, TrustStore},
    reason::Reason,
};

/// Parses and checks one policy file on its own (everything but the
/// checks against other files). A trust store or an issuing policy is
/// refused here (`wrong-kind`); [`load_dir`] skips them instead.
pub fn parse_file(path: &Path, text: &str) -> Result<PolicyDoc, PolicyErrors> {
    parse_file_unsorted(path, text).map_err(PolicyErrors::sorted)
}

fn parse_file_unsorted(path: &Path, text: &str) -> Result<PolicyDoc, PolicyErrors> {
    match parse_raw(path, text)? {
        Parsed::Skipped(kind, at) => Err(PolicyErrors::one(
            path,
            at,
            Problem::WrongKind {
                what: "kind",
                found: kind.to_owned(),
            },
        )),
        Parsed::Policy(raw) => {
            let doc = compile_doc(path, *raw)?;
            let errors = check_set(std::slice::from_ref(&doc));
            if errors.is_empty() {
                Ok(doc)
            } else {
                Err(PolicyErrors(errors))
            }
        }
    }
}

/// True for the files a policy directory is made of: `*.yaml` and
/// `*.yml`, not hidden (Kubernetes ConfigMap mounts keep their own
/// `..data` entries there, and editors their lock files).
fn is_policy_name(name: &Path) -> bool {
    let hidden = name
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let ext = name.extension().and_then(|e| e.to_str());
    !hidden && matches!(ext, Some("yaml" | "yml"))
}

/// Reads at most one byte past the limit, so a huge file is refused
/// without being read whole.
pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>, Problem> {
    let file = fs::File::open(path).map_err(|e| Problem::Io(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Problem::Io(e.to_string()))?;
    if bytes.len() > MAX_POLICY_BYTES {
        return Err(Problem::TooLarge(format!(
            "over the {MAX_POLICY_BYTES}-byte limit for a policy file; split it"
        )));
    }
    Ok(bytes)
}

/// Loads every policy file (`*.yaml`, `*.yml`, not recursive) of `dir`.
/// Symbolic links to files are followed (ConfigMap mounts are made of
/// them). On success the set is complete and consistent; on failure
/// nothing is returned but the errors, so a caller keeps its last good
/// set.
pub fn load_dir(dir: &Path) -> Result<Loaded, PolicyErrors> {
    let io = |e: std::io::Error| PolicyErrors::one(dir, (0, 0), Problem::Io(e.to_string()));
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if is_policy_name(&path) {
            paths.push(path);
        }
    }
    paths.sort();

    let mut errors = Vec::new();
    let mut skipped = Vec::new();
    let mut docs = Vec::new();
    let mut texts = Vec::new();
    for path in paths {
        // A directory named like a policy is not one; a dangling link is
        // an error (it was meant to be a policy).
        match fs::metadata(&path) {
            Ok(m) if !m.is_file() => continue,
            Ok(_) => {}
            Err(e) => {
                errors.push(Located::new(&path, (0, 0), Problem::Io(e.to_string())));
                continue;
            }
        }
        let bytes = match read_limited(&path) {
            Ok(b) => b,
            Err(problem) => {
                errors.push(Located::new(&path, (0, 0), problem));
                continue;
            }
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            errors.push(Located::new(
                &path,
                (0, 0),
                Problem::BadYaml("not UTF-8 text".into()),
            ));
            continue;
        };
        match parse_raw(&path, text) {
            Err(e) => errors.extend(e.0),
            Ok(Parsed::Skipped(..)) => skipped.push(path),
            Ok(Parsed::Policy(raw)) => match compile_doc(&path, *raw) {
                Ok(doc) => {
                    docs.push(doc);
                    texts.push((path, bytes));
                }
                Err(e) => errors.extend(e.0),
            },
        }
    }
    errors.extend(check_set(&docs));
    if !errors.is_empty() {
        return Err(PolicyErrors(errors).sorted());
    }

    let mut warnings: Vec<Located> = docs.iter().flat_map(|d| d.warnings.clone()).collect();
    if docs.is_empty() {
        warnings.push(Located::new(dir, (0, 0), Problem::NoPolicies));
    }
    let sha256 = set_hash(texts.iter().map(|(p, t)| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        (name, t.as_slice())
    }));
    let files: Vec<PathBuf> = texts.into_iter().map(|(p, _)| p).collect();
    let workloads: BTreeMap<String, Workload> = docs
        .into_iter()
        .flat_map(|d| d.workloads)
        .map(|w| (w.name.clone(), w))
        .collect();
    Ok(Loaded {
        set: PolicySet {
            workloads,
            sha256,
            files,
        },
        warnings,
        skipped,
    })
}

/// The checks between workloads, over files: unique policy and workload
/// names, distinct scope ids, and no cgroup that two workloads could both
/// claim (the kernel registers a cgroup to one scope).
pub(super) fn check_set(docs: &[PolicyDoc]) -> Vec<Located> {
    struct Seen<'a> {
        name: &'a str,
        file: &'a Path,
        at: (u64, u64),
    }
    let mut errors = Vec::new();
    let mut policies: BTreeMap<&str, Seen<'_>> = BTreeMap::new();
    let mut names: BTreeMap<&str, Seen<'_>> = BTreeMap::new();
    let mut ids: BTreeMap<u32, Seen<'_>> = BTreeMap::new();
    let mut cgroups: Vec<(&super::CgroupPattern, Seen<'_>)> = Vec::new();
    for doc in docs {
        let file = doc.source.as_path();
        if let Some(first) = policies.get(doc.name.as_str()) {
            errors.push(Located::new(
                file,
                doc.at.name,
                Problem::DuplicatePolicy {
                    name: doc.name.clone(),
                    first: at_text(first.file, first.at),
                },
            ));
        } else {
            let seen = Seen {
                name: &doc.name,
                file,
                at: doc.at.name,
            };
            policies.insert(&doc.name, seen);
        }
        for (w, (name_at, cgroup_at)) in doc.workloads.iter().zip(&doc.at.workloads) {
            let me = || Seen {
                name: &w.name,
                file,
                at: *name_at,
            };
            if let Some(first) = names.get(w.name.as_str()) {
                errors.push(Located::new(
                    file,
                    *name_at,
                    Problem::DuplicateWorkload {
                        name: w.name.clone(),
                        first: at_text(first.file, first.at),
                    },
                ));
                continue;
            }
            names.insert(&w.name, me());
            if let Some(other) = ids.get(&w.scope_id) {
                errors.push(Located::new(
                    file,
                    *name_at,
                    Problem::ScopeCollision {
                        name: w.name.clone(),
                        id: w.scope_id,
                        other: other.name.to_owned(),
                        other_at: at_text(other.file, other.at),
                    },
                ));
            } else {
                ids.insert(w.scope_id, me());
            }
            for (c, c_at) in w.cgroups.iter().zip(cgroup_at) {
                if let Some((oc, other)) = cgroups.iter().find(|(oc, _)| oc.overlaps(c)) {
                    errors.push(Located::new(
                        file,
                        *c_at,
                        Problem::CgroupConflict {
                            path: c.to_string(),
                            workload: w.name.clone(),
                            other_path: oc.to_string(),
                            other: other.name.to_owned(),
                            other_at: at_text(other.file, other.at),
                        },
                    ));
                }
            }
            // Added after the loop: a workload may repeat or overlap its
            // own patterns harmlessly (expansion de-duplicates).
            for (c, c_at) in w.cgroups.iter().zip(cgroup_at) {
                cgroups.push((
                    c,
                    Seen {
                        name: &w.name,
                        file,
                        at: *c_at,
                    },
                ));
            }
        }
    }
    errors
}

/// Why the policy inputs of a node could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum InputsError {
    #[error("{0}")]
    Policy(#[from] PolicyErrors),
    #[error("{path}: {source}")]
    Trust {
        path: PathBuf,
        #[source]
        source: TrustError,
    },
}

impl InputsError {
    /// The reason recorded when a load or a reload is rejected.
    #[must_use]
    pub fn code(&self) -> Reason {
        match self {
            Self::Policy(e) => e.code(),
            Self::Trust { source, .. } => source.code(),
        }
    }
}

/// Loads a node's policy inputs: the policy directory and the trust store.
/// Both or neither.
pub fn load_inputs(policies: &Path, trust: &Path) -> Result<(Loaded, TrustStore), InputsError> {
    let loaded = load_dir(policies)?;
    let store = TrustStore::load(trust).map_err(|source| InputsError::Trust {
        path: trust.to_path_buf(),
        source,
    })?;
    Ok((loaded, store))
}
