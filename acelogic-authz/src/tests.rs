//! The engine's decision paths without a kernel: grants go to a table in
//! memory that behaves like the kernel's (all or none, conflicts), and
//! every outcome is checked for its reason code and its record.

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
    time::{Duration, SystemTime},
};

use super::{
    Authorizer, GrantTable, Inputs, PortError, Refusal, Usage, check::Settings, state::State,
};
use acelogic_domain::grant::{GrantObject, GrantSpec};
use acelogic_domain::policy::{self, PolicySet};
use acelogic_domain::{
    artifact::{Artifact, ArtifactId, Name, Role, SecretKey, Subject, TrustStore, sign},
    capability::{Capability, ExecCap},
};

#[derive(Debug, Default)]
struct Table {
    grants: Vec<GrantSpec>,
    fail_next: bool,
    /// Grant ids whose every entry has used its last use.
    used_up: std::collections::HashSet<u64>,
}

impl GrantTable for Table {
    fn install(&mut self, set: &[GrantSpec]) -> Result<(), PortError> {
        if std::mem::take(&mut self.fail_next) {
            return Err(PortError("map full".into()));
        }
        for s in set {
            if self
                .grants
                .iter()
                .any(|g| g.object == s.object && g.scope_id == s.scope_id)
            {
                return Err(PortError("conflict".into()));
            }
        }
        self.grants.extend_from_slice(set);
        Ok(())
    }

    fn remove(&mut self, grant_id: u64) -> Result<usize, PortError> {
        let before = self.grants.len();
        self.grants.retain(|g| g.grant_id != grant_id);
        Ok(before - self.grants.len())
    }

    fn usage(&mut self) -> Result<HashMap<u64, Usage>, PortError> {
        let mut out: HashMap<u64, Usage> = HashMap::new();
        for g in &self.grants {
            let e = out.entry(g.grant_id).or_insert(Usage {
                entries: 0,
                uses_left: g.max_uses.map(u64::from),
                used_up: true,
                scope_id: g.scope_id,
            });
            e.entries += 1;
            e.used_up &= self.used_up.contains(&g.grant_id);
        }
        Ok(out)
    }
}

struct World {
    issuer: SecretKey,
    approver: SecretKey,
    trust: TrustStore,
    policy: PolicySet,
    authz: Authorizer,
    table: Table,
    now: SystemTime,
    /// The test's scratch directory, removed when the world is dropped
    /// (last: after the state database in it is closed).
    dir: tempfile::TempDir,
}

fn whole_now() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn tempdir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("acelogic-authz-{name}-"))
        .tempdir()
        .unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    dir
}

fn policy_text(with_sh: bool) -> String {
    let sh = if with_sh {
        "    - name: shell\n      exec: [/bin/sh]\n      issuers: [ci]\n      maxTtl: 1h\n"
    } else {
        ""
    };
    format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata: {{name: t}}
spec:
  workloads:
    - {{name: agent, cgroups: [/t]}}
  grantable:
{sh}    - name: links
      exec: [/tmp/**]
      issuers: [ci]
      maxTtl: 1h
    - name: approved
      exec: [/bin/ls]
      issuers: [ci]
      maxTtl: 1h
      approvals: 1
  never:
    exec: [/bin/true, /usr/bin/true]
"
    )
}

fn load(dir: &Path, text: &str) -> PolicySet {
    std::fs::write(dir.join("policies/p.yaml"), text).unwrap();
    policy::load_dir(&dir.join("policies")).unwrap().set
}

impl World {
    fn new(name: &str) -> Self {
        let dir = tempdir(name);
        let issuer = SecretKey::from_seed("ci", Role::Issuer, [1; 32]).unwrap();
        let approver = SecretKey::from_seed("alice", Role::Approver, [2; 32]).unwrap();
        let trust = TrustStore::new([issuer.trusted(), approver.trusted()], []).unwrap();
        let policy = load(dir.path(), &policy_text(true));
        let authz = Self::open(dir.path());
        Self {
            dir,
            issuer,
            approver,
            trust,
            policy,
            authz,
            table: Table::default(),
            now: whole_now(),
        }
    }

    fn open(dir: &Path) -> Authorizer {
        Authorizer::new(
            State::open(&dir.join("state.db")).unwrap(),
            Settings {
                audience: "test".to_owned(),
                node: "n1".to_owned(),
                clock_skew: Duration::from_secs(30),
            },
        )
    }

    fn artifact(&self, path: &str, key: Option<&str>) -> Artifact {
        Artifact {
            version: 1,
            id: ArtifactId::generate().unwrap(),
            issuer: "ci".parse::<Name>().unwrap(),
            subject: Subject {
                workload: "agent".parse().unwrap(),
                node: None,
                cgroup: None,
            },
            audience: "test".parse().unwrap(),
            not_before: self.now - Duration::from_secs(1),
            expires: self.now + Duration::from_secs(600),
            capabilities: vec![Capability::Exec(ExecCap {
                path: path.parse().unwrap(),
                sha256: None,
            })],
            max_uses: None,
            operation_key: key.map(str::to_owned),
            approval_ref: None,
            reason: "test".to_owned(),
            parent: None,
        }
    }

    fn envelope(&self, a: &Artifact, approve: bool) -> Vec<u8> {
        let payload = a.to_json().unwrap();
        let mut keys = vec![&self.issuer];
        if approve {
            keys.push(&self.approver);
        }
        sign(&payload, &keys).to_json()
    }

    fn submit(&mut self, env: &[u8]) -> Result<super::Accepted, Refusal> {
        let frozen = BTreeSet::new();
        let cgroups = HashMap::new();
        let inputs = Inputs {
            policy: &self.policy,
            trust: &self.trust,
            frozen: &frozen,
            cgroups: &cgroups,
            now: self.now,
        };
        self.authz.submit(env, None, &inputs, &mut self.table)
    }

    fn last_record(&mut self) -> (String, String) {
        let r = self.authz.state().records_after(0).unwrap();
        let last = r.last().unwrap();
        (last.outcome.clone(), last.reason.clone())
    }
}

#[test]
fn accepted_once_then_replayed_also_after_reopening() {
    let mut w = World::new("replay");
    let env = w.envelope(&w.artifact("/bin/sh", None), false);
    let ok = w.submit(&env).unwrap();
    assert_eq!(ok.workload, "agent");
    assert_eq!(w.table.grants.len(), 1);
    assert!(matches!(
        w.table.grants[0].object,
        GrantObject::FileId { .. }
    ));
    assert_eq!(w.last_record(), ("accepted".into(), "granted".into()));
    assert_eq!(w.submit(&env).unwrap_err().code, "replayed");
    assert_eq!(w.last_record(), ("refused".into(), "replayed".into()));
    w.authz = World::open(w.dir.path());
    assert_eq!(w.submit(&env).unwrap_err().code, "replayed");
}

#[test]
fn an_operation_key_has_one_live_holder_until_revoked() {
    let mut w = World::new("conflict");
    let first = w.artifact("/bin/sh", Some("scale/checkout"));
    let id = first.id.to_string();
    let env1 = w.envelope(&first, false);
    let env2 = w.envelope(&w.artifact("/bin/sh", Some("scale/checkout")), false);
    w.submit(&env1).unwrap();
    assert_eq!(w.submit(&env2).unwrap_err().code, "operation-conflict");
    assert_eq!(
        w.table.grants.len(),
        1,
        "the refused artifact installed nothing"
    );
    let removed = w
        .authz
        .revoke(&id, "test", None, &mut w.table, w.now)
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        w.authz
            .revoke(&id, "again", None, &mut w.table, w.now)
            .unwrap_err()
            .code,
        "not-live"
    );
    w.submit(&env2).unwrap();
}

#[test]
fn approvals_are_counted() {
    let mut w = World::new("approvals");
    let a = w.artifact("/bin/ls", None);
    assert_eq!(
        w.submit(&w.envelope(&a, false)).unwrap_err().code,
        "approval-missing"
    );
    w.submit(&w.envelope(&a, true)).unwrap();
}

#[test]
fn time_audience_subject_and_policy_refusals() {
    let mut w = World::new("refusals");
    let mut a = w.artifact("/bin/sh", None);
    a.expires = w.now - Duration::from_secs(1);
    a.not_before = w.now - Duration::from_secs(60);
    assert_eq!(
        w.submit(&w.envelope(&a, false)).unwrap_err().code,
        "expired"
    );
    let mut a = w.artifact("/bin/sh", None);
    a.not_before = w.now + Duration::from_secs(120);
    a.expires = w.now + Duration::from_secs(600);
    assert_eq!(
        w.submit(&w.envelope(&a, false)).unwrap_err().code,
        "not-yet-valid"
    );
    let mut a = w.artifact("/bin/sh", None);
    a.audience = "other".parse().unwrap();
    assert_eq!(
        w.submit(&w.envelope(&a, false)).unwrap_err().code,
        "wrong-audience"
    );
    let mut a = w.artifact("/bin/sh", None);
    a.subject.workload = "nobody".parse().unwrap();
    assert_eq!(
        w.submit(&w.envelope(&a, false)).unwrap_err().code,
        "unknown-workload"
    );
    let mut a = w.artifact("/bin/sh", None);
    a.subject.node = Some("n2".parse().unwrap());
    assert_eq!(
        w.submit(&w.envelope(&a, false)).unwrap_err().code,
        "wrong-node"
    );
    let a = w.artifact("/bin/cat", None);
    assert_eq!(
        w.submit(&w.envelope(&a, false)).unwrap_err().code,
        "not-grantable"
    );
    let mut a = w.artifact("/bin/sh", None);
    a.expires = w.now + Duration::from_secs(7200);
    assert_eq!(
        w.submit(&w.envelope(&a, false)).unwrap_err().code,
        "ttl-exceeded"
    );
    let mut bad = w.envelope(&w.artifact("/bin/sh", None), false);
    let n = bad.len();
    bad[n / 2] ^= 1;
    assert!(w.submit(&bad).is_err());
    assert!(w.table.grants.is_empty());
    let refused = w
        .authz
        .state()
        .records_after(0)
        .unwrap()
        .iter()
        .filter(|r| r.outcome == "refused")
        .count();
    assert_eq!(refused, 8, "every refusal is a record");
}

#[test]
fn a_failed_install_spends_the_id_and_frees_the_key() {
    let mut w = World::new("failed");
    let a = w.artifact("/bin/sh", Some("k"));
    let env = w.envelope(&a, false);
    w.table.fail_next = true;
    assert_eq!(w.submit(&env).unwrap_err().code, "install-failed");
    assert_eq!(
        w.authz
            .state()
            .artifact(&a.id.to_string())
            .unwrap()
            .unwrap()
            .state,
        "failed"
    );
    assert_eq!(w.submit(&env).unwrap_err().code, "replayed");
    w.submit(&w.envelope(&w.artifact("/bin/sh", Some("k")), false))
        .unwrap();
}

#[test]
fn a_narrower_policy_revokes_what_it_no_longer_permits() {
    let mut w = World::new("narrow");
    let keep = w.artifact("/bin/ls", None);
    w.submit(&w.envelope(&keep, true)).unwrap();
    let drop = w.artifact("/bin/sh", None);
    w.submit(&w.envelope(&drop, false)).unwrap();
    assert_eq!(w.table.grants.len(), 2);
    w.policy = load(w.dir.path(), &policy_text(false));
    let frozen = BTreeSet::new();
    let cgroups = HashMap::new();
    let inputs = Inputs {
        policy: &w.policy,
        trust: &w.trust,
        frozen: &frozen,
        cgroups: &cgroups,
        now: w.now,
    };
    let revoked = w.authz.recheck(&inputs, &mut w.table).unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].0, drop.id.to_string());
    assert_eq!(revoked[0].1.code, "not-grantable");
    assert_eq!(w.table.grants.len(), 1, "the still-permitted grant stays");
    assert_eq!(
        w.last_record(),
        ("revoked".into(), "policy-narrowed".into())
    );
}

#[test]
fn expiry_retires_grants_and_frees_keys() {
    let mut w = World::new("expiry");
    let a = w.artifact("/bin/sh", Some("k"));
    w.submit(&w.envelope(&a, false)).unwrap();
    let later = w.now + Duration::from_secs(601);
    assert_eq!(w.authz.expire(&mut w.table, later).unwrap(), 1);
    assert!(w.table.grants.is_empty());
    assert_eq!(w.last_record(), ("expired".into(), "expired".into()));
    w.now = later;
    let b = w.artifact("/bin/sh", Some("k"));
    w.submit(&w.envelope(&b, false)).unwrap();
}

#[test]
fn grants_nobody_accounts_for_are_removed_at_start() {
    let mut w = World::new("orphans");
    w.submit(&w.envelope(&w.artifact("/bin/sh", None), false))
        .unwrap();
    let scope = w.table.grants[0].scope_id;
    // The state is lost; the kernel still holds the grant.
    drop(std::fs::remove_file(w.dir.path().join("state.db")));
    w.authz = World::open(w.dir.path());
    let foreign = GrantSpec {
        scope_id: scope + 1,
        grant_id: 7,
        ..w.table.grants[0].clone()
    };
    w.table.grants.push(foreign);
    let ours = std::collections::HashSet::from([scope]);
    w.authz.settle(&mut w.table, &ours, w.now).unwrap();
    assert_eq!(
        w.table.grants.len(),
        1,
        "only the other scope's grant stays"
    );
    assert_eq!(w.table.grants[0].grant_id, 7);
    assert_eq!(w.last_record(), ("revoked".into(), "orphan-grant".into()));
}

#[test]
fn a_symlink_to_a_never_binary_is_refused() {
    let mut w = World::new("symlink");
    let scratch = tempfile::Builder::new()
        .prefix("acelogic-link-")
        .tempdir()
        .unwrap();
    let link = scratch.path().join("link");
    let target = std::fs::canonicalize("/bin/true").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let a = w.artifact(link.to_str().unwrap(), None);
    let r = w.submit(&w.envelope(&a, false));
    let r = r.unwrap_err();
    assert_eq!(r.code, "never", "{r}");
    assert!(r.why.contains("resolved through symlinks"), "{r}");
    assert!(w.table.grants.is_empty());
}

#[test]
fn a_used_up_artifact_is_consumed_frees_its_key_and_stays_spent() {
    let mut w = World::new("consume");
    let first = w.artifact("/bin/sh", Some("scale/checkout"));
    let env1 = w.envelope(&first, false);
    let ok = w.submit(&env1).unwrap();
    // Not used up yet: nothing happens.
    assert_eq!(w.authz.consume(&mut w.table, w.now).unwrap(), 0);
    assert_eq!(w.table.grants.len(), 1);
    w.table.used_up.insert(ok.grant_id);
    assert_eq!(w.authz.consume(&mut w.table, w.now).unwrap(), 1);
    assert_eq!(w.last_record(), ("consumed".into(), "consumed".into()));
    assert!(w.table.grants.is_empty(), "the spent entries were removed");
    assert_eq!(
        w.authz.consume(&mut w.table, w.now).unwrap(),
        0,
        "only once"
    );
    assert_eq!(w.submit(&env1).unwrap_err().code, "replayed");
    // The operation key is free for the next artifact.
    let env2 = w.envelope(&w.artifact("/bin/sh", Some("scale/checkout")), false);
    w.submit(&env2).unwrap();
}

/// The policy of [`policy_text`] with `extra` more never exec entries.
fn policy_with_never(extra: &[&Path]) -> String {
    let mut list = vec!["/bin/true".to_owned(), "/usr/bin/true".to_owned()];
    list.extend(extra.iter().map(|p| p.display().to_string()));
    policy_text(true).replace(
        "    exec: [/bin/true, /usr/bin/true]\n",
        &format!("    exec: [{}]\n", list.join(", ")),
    )
}

fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("acelogic-{name}-"))
        .tempdir_in("/tmp")
        .unwrap()
}

fn executable(path: &Path, content: &[u8]) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl World {
    fn inputs_recheck(&mut self) -> Vec<(String, Refusal)> {
        let frozen = BTreeSet::new();
        let cgroups = HashMap::new();
        let inputs = Inputs {
            policy: &self.policy,
            trust: &self.trust,
            frozen: &frozen,
            cgroups: &cgroups,
            now: self.now,
        };
        self.authz.recheck(&inputs, &mut self.table).unwrap()
    }

    fn records(&mut self) -> Vec<super::state::StoredRecord> {
        self.authz.state().records_after(0).unwrap()
    }

    fn state_of(&mut self, id: &str) -> String {
        self.authz.state().artifact(id).unwrap().unwrap().state
    }
}

/// A hard link to a never binary under another name, in a directory a
/// rule grants, is refused `never` at submission: nothing is installed
/// and the refusal is recorded with the link named.
#[test]
fn a_hard_link_to_a_never_binary_is_refused() {
    let mut w = World::new("never-link");
    let dir = scratch("never-link");
    let never_bin = dir.path().join("nsenter");
    executable(&never_bin, b"#!/bin/sh\necho never\n");
    w.policy = load(w.dir.path(), &policy_with_never(&[&never_bin]));
    let link = dir.path().join("innocent");
    std::fs::hard_link(&never_bin, &link).unwrap();
    let a = w.artifact(link.to_str().unwrap(), None);
    let r = w.submit(&w.envelope(&a, false)).unwrap_err();
    assert_eq!(r.code, "never", "{r}");
    assert!(
        r.why.contains(&format!(
            "is a hard link to never-automated {}",
            never_bin.display()
        )),
        "{r}"
    );
    assert!(w.table.grants.is_empty());
    let last = w.records().pop().unwrap();
    assert_eq!(
        (last.outcome.as_str(), last.reason.as_str()),
        ("refused", "never")
    );
    assert!(last.detail.contains("hard link"), "{}", last.detail);
    // The never binary itself is refused by name, as before.
    let a = w.artifact(never_bin.to_str().unwrap(), None);
    assert_eq!(w.submit(&w.envelope(&a, false)).unwrap_err().code, "never");
}

/// A copy of a never binary (here of the policy's `/bin/true`) is refused
/// `never`, also when the artifact names its digest; a file of the same
/// size with other content is granted.
#[test]
fn a_copy_of_a_never_binary_is_refused() {
    let mut w = World::new("never-copy");
    let dir = scratch("never-copy");
    let copy = dir.path().join("mytrue");
    std::fs::copy("/bin/true", &copy).unwrap();
    let a = w.artifact(copy.to_str().unwrap(), None);
    let r = w.submit(&w.envelope(&a, false)).unwrap_err();
    assert_eq!(r.code, "never", "{r}");
    assert!(r.why.contains("is a copy of never-automated"), "{r}");
    let mut named = w.artifact(copy.to_str().unwrap(), None);
    let digest: [u8; 32] =
        <sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&copy).unwrap()).into();
    named.capabilities = vec![Capability::Exec(ExecCap {
        path: copy.to_str().unwrap().parse().unwrap(),
        sha256: Some(acelogic_domain::capability::Sha256Digest(digest)),
    })];
    let r = w.submit(&w.envelope(&named, false)).unwrap_err();
    assert_eq!(r.code, "never", "{r}");
    assert!(w.table.grants.is_empty());
    assert_eq!(w.last_record(), ("refused".into(), "never".into()));

    // Same size, one byte changed: not a copy.
    let mut bytes = std::fs::read(&copy).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    let other = dir.path().join("other");
    executable(&other, &bytes);
    w.submit(&w.envelope(&w.artifact(other.to_str().unwrap(), None), false))
        .unwrap();
    assert_eq!(w.table.grants.len(), 1);
}

/// A reload that puts a binary in `never` revokes a live artifact for a
/// hard link to it: the re-check goes through the same identity check.
#[test]
fn a_reload_revokes_a_live_link_to_a_new_never_binary() {
    let mut w = World::new("never-reload");
    let dir = scratch("never-reload");
    let tool = dir.path().join("tool");
    executable(&tool, b"#!/bin/sh\necho tool\n");
    let link = dir.path().join("alias");
    std::fs::hard_link(&tool, &link).unwrap();
    let a = w.artifact(link.to_str().unwrap(), None);
    w.submit(&w.envelope(&a, false)).unwrap();
    assert!(w.inputs_recheck().is_empty(), "nothing changed yet");
    w.policy = load(w.dir.path(), &policy_with_never(&[&tool]));
    let revoked = w.inputs_recheck();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].1.code, "never");
    assert!(w.table.grants.is_empty());
    assert_eq!(
        w.last_record(),
        ("revoked".into(), "policy-narrowed".into())
    );
}

/// A second approver key for tests that need two approvals.
fn bob() -> SecretKey {
    SecretKey::from_seed("bob", Role::Approver, [3; 32]).unwrap()
}

fn trust_of(keys: &[&SecretKey], revoked: &[&SecretKey]) -> TrustStore {
    TrustStore::new(
        keys.iter().map(|k| k.trusted()),
        revoked.iter().map(|k| k.key_id()),
    )
    .unwrap()
}

/// Removing the issuer's key from the trust store revokes at the next
/// re-check every live artifact it signed: grants removed, `revoked
/// [key-revoked]` naming the key; the artifact stays spent.
#[test]
fn removing_the_issuer_key_revokes_its_live_artifacts() {
    let mut w = World::new("key-removed");
    let a = w.artifact("/bin/sh", Some("k"));
    let env = w.envelope(&a, false);
    w.submit(&env).unwrap();
    w.trust = trust_of(&[&w.approver], &[]);
    let revoked = w.inputs_recheck();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].1.code, "key-revoked");
    assert!(w.table.grants.is_empty(), "the kernel grants were removed");
    let id = a.id.to_string();
    assert_eq!(w.state_of(&id), "revoked");
    let last = w.records().pop().unwrap();
    assert_eq!(
        (last.outcome.as_str(), last.reason.as_str()),
        ("revoked", "key-revoked")
    );
    assert_eq!(last.artifact_id.as_deref(), Some(id.as_str()));
    let key = w.issuer.key_id().to_string();
    assert!(
        last.detail.contains(&format!(
            "issuer key {key} (ci) was removed from the trust store"
        )),
        "{}",
        last.detail
    );
    // Once only; the id stays spent and the operation key is free.
    assert!(w.inputs_recheck().is_empty());
    w.trust = trust_of(&[&w.issuer, &w.approver], &[]);
    assert_eq!(w.submit(&env).unwrap_err().code, "replayed");
    w.submit(&w.envelope(&w.artifact("/bin/sh", Some("k")), false))
        .unwrap();
}

#[test]
fn listing_the_issuer_key_revoked_revokes_its_live_artifacts() {
    let mut w = World::new("key-listed");
    w.submit(&w.envelope(&w.artifact("/bin/sh", None), false))
        .unwrap();
    w.trust = trust_of(&[&w.issuer, &w.approver], &[&w.issuer]);
    let revoked = w.inputs_recheck();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].1.code, "key-revoked");
    assert!(
        revoked[0].1.why.contains("is listed in revokedKeyIds"),
        "{}",
        revoked[0].1
    );
    assert!(w.table.grants.is_empty());
    assert_eq!(w.last_record(), ("revoked".into(), "key-revoked".into()));
}

/// Rotation: a new key for the same issuer name replaces the old one.
/// What the old key signed is revoked; the new key's artifacts are
/// accepted and survive the re-check.
#[test]
fn rotating_the_issuer_key_revokes_what_the_old_key_signed() {
    let mut w = World::new("key-rotated");
    let old = w.artifact("/bin/sh", None);
    w.submit(&w.envelope(&old, false)).unwrap();
    let new_key = SecretKey::from_seed("ci", Role::Issuer, [9; 32]).unwrap();
    w.trust = trust_of(&[&new_key, &w.approver], &[]);
    w.issuer = new_key;
    let fresh = w.artifact("/bin/ls", None);
    w.submit(&w.envelope(&fresh, true)).unwrap();
    let revoked = w.inputs_recheck();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].0, old.id.to_string());
    assert_eq!(revoked[0].1.code, "key-revoked");
    assert_eq!(w.table.grants.len(), 1, "the new key's grant stays");
    assert_eq!(w.state_of(&fresh.id.to_string()), "live");
}

/// A key bound to another name in the reloaded store no longer speaks for
/// the issuer it signed as.
#[test]
fn a_key_rebound_to_another_name_no_longer_counts() {
    let mut w = World::new("key-rebound");
    w.submit(&w.envelope(&w.artifact("/bin/sh", None), false))
        .unwrap();
    let renamed = SecretKey::from_seed("other", Role::Issuer, [1; 32]).unwrap();
    assert_eq!(renamed.key_id(), w.issuer.key_id());
    w.trust = trust_of(&[&renamed, &w.approver], &[]);
    let revoked = w.inputs_recheck();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].1.code, "key-revoked");
    assert!(
        revoked[0].1.why.contains("now signs as issuer other"),
        "{}",
        revoked[0].1
    );
}

/// An approver key removed while the approvals left still meet the
/// policy: the artifact stays live. Below the threshold: revoked
/// `key-revoked`, naming the approver key.
#[test]
fn approver_keys_count_until_the_threshold() {
    let mut w = World::new("key-approver");
    let bob = bob();
    w.trust = trust_of(&[&w.issuer, &w.approver, &bob], &[]);
    // /bin/ls needs one approval; signed by alice and bob.
    let a = w.artifact("/bin/ls", None);
    let payload = a.to_json().unwrap();
    let env = sign(&payload, &[&w.issuer, &w.approver, &bob]).to_json();
    let ok = w.submit(&env).unwrap();
    assert_eq!(ok.approvers, vec!["alice".to_owned(), "bob".to_owned()]);
    // Bob's key removed: alice's approval still suffices.
    w.trust = trust_of(&[&w.issuer, &w.approver], &[]);
    assert!(w.inputs_recheck().is_empty());
    assert_eq!(w.table.grants.len(), 1);
    assert_eq!(w.state_of(&a.id.to_string()), "live");
    // Alice's key revoked too: no approval left, one required.
    w.trust = trust_of(&[&w.issuer, &w.approver], &[&w.approver]);
    let revoked = w.inputs_recheck();
    assert_eq!(revoked.len(), 1);
    let r = &revoked[0].1;
    assert_eq!(r.code, "key-revoked");
    let alice = w.approver.key_id().to_string();
    let bob_id = bob.key_id().to_string();
    assert!(
        r.why.contains(&format!(
            "approver key {alice} (alice) is listed in revokedKeyIds"
        )),
        "{r}"
    );
    assert!(
        r.why
            .contains(&format!("approver key {bob_id} (bob) was removed")),
        "{r}"
    );
    assert!(
        r.why
            .contains("require 1 approver signature(s); the artifact has 0"),
        "{r}"
    );
    assert!(w.table.grants.is_empty());
    assert_eq!(w.last_record(), ("revoked".into(), "key-revoked".into()));
}

/// Removing a key no live artifact relied on changes nothing; nor does
/// removing an approver key from an artifact whose rule needs none.
#[test]
fn an_unrelated_key_removed_changes_nothing() {
    let mut w = World::new("key-unrelated");
    let bob = bob();
    w.trust = trust_of(&[&w.issuer, &w.approver, &bob], &[]);
    w.submit(&w.envelope(&w.artifact("/bin/sh", None), true))
        .unwrap();
    let before = w.records().len();
    w.trust = trust_of(&[&w.issuer, &w.approver], &[]);
    assert!(w.inputs_recheck().is_empty());
    // Alice approved /bin/sh, which needs no approval.
    w.trust = trust_of(&[&w.issuer], &[]);
    assert!(w.inputs_recheck().is_empty());
    assert_eq!(w.table.grants.len(), 1);
    assert_eq!(w.records().len(), before, "nothing was recorded");
}

/// A live row accepted before the state recorded keys (a schema-1
/// database) is revoked `key-revoked` at the first re-check: which keys
/// signed it is unknown (fail closed).
#[test]
fn a_live_artifact_without_recorded_keys_is_revoked() {
    let mut w = World::new("key-legacy");
    let a = w.artifact("/bin/sh", None);
    w.submit(&w.envelope(&a, false)).unwrap();
    let db = rusqlite::Connection::open(w.dir.path().join("state.db")).unwrap();
    db.execute(
        "UPDATE artifacts SET issuer_key = NULL, approver_keys = NULL",
        [],
    )
    .unwrap();
    drop(db);
    let revoked = w.inputs_recheck();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].1.code, "key-revoked");
    assert!(
        revoked[0].1.why.contains("state schema 1"),
        "{}",
        revoked[0].1
    );
    assert!(w.table.grants.is_empty());
}
