//! The enrollment file (`--nodes` of the collector and the authority):
//! which key each node signs with.
//!
//! ```yaml
//! apiVersion: acelogic.dev/v1
//! kind: NodeEnrollment
//! nodes:
//!   - name: node-a
//!     publicKey: <standard base64 of the node's 32-byte Ed25519 key>
//! ```
//!
//! The node agent writes its key to `<state_dir>/node.key` and logs the
//! entry to paste here. Strict YAML: unknown fields, duplicate names and
//! keys that are not Ed25519 points are errors with `file:line:column`.

use std::{collections::BTreeSet, path::Path};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use serde_saphyr::Spanned;

use acelogic_domain::artifact::yaml;

const KIND: &str = "NodeEnrollment";
/// Longest node name (a DNS name's limit).
pub const MAX_NODE_NAME: usize = 253;
const API_VERSION: &str = "acelogic.dev/v1";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct File {
    api_version: Spanned<String>,
    kind: String,
    nodes: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Entry {
    name: Spanned<String>,
    public_key: Spanned<String>,
}

/// Parses an enrollment file; `origin` names it in messages.
pub fn parse(text: &str, origin: &str) -> Result<Vec<(String, VerifyingKey)>, String> {
    let file: File = yaml::parse(text, origin)
        .map_err(|e| format!("{}: [{}] {}", e.location, e.code, e.message))?;
    let at = |s: &serde_saphyr::Location| yaml::at(origin, s.line(), s.column());
    if file.api_version.value != API_VERSION || file.kind != KIND {
        return Err(format!(
            "{}: apiVersion/kind must be {API_VERSION}/{KIND}",
            at(&file.api_version.referenced)
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(file.nodes.len());
    for e in file.nodes {
        let name = e.name.value;
        if name.is_empty() || name.len() > MAX_NODE_NAME || name.chars().any(char::is_control) {
            return Err(format!(
                "{}: node name must be 1-{} bytes without control characters",
                at(&e.name.referenced),
                MAX_NODE_NAME
            ));
        }
        if !seen.insert(name.clone()) {
            return Err(format!(
                "{}: node {name:?} is listed twice",
                at(&e.name.referenced)
            ));
        }
        let key = STANDARD
            .decode(e.public_key.value.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .filter(|k| !k.is_weak())
            .ok_or_else(|| {
                format!(
                    "{}: publicKey is not standard base64 of a 32-byte Ed25519 key",
                    at(&e.public_key.referenced)
                )
            })?;
        out.push((name, key));
    }
    Ok(out)
}

/// Reads an enrollment file.
pub fn load(path: &Path) -> Result<Vec<(String, VerifyingKey)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use crate::wire::entry_yaml;

    use super::*;

    fn key(seed: u8) -> VerifyingKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key()
    }

    const HEAD: &str = "apiVersion: acelogic.dev/v1\nkind: NodeEnrollment\nnodes:\n";

    #[test]
    fn parses_entries_and_refuses_bad_ones() {
        let text = format!(
            "{HEAD}{}{}",
            entry_yaml("node-a", &key(1)),
            entry_yaml("node-b", &key(2))
        );
        let nodes = parse(&text, "n.yaml").unwrap();
        assert_eq!(
            nodes,
            vec![("node-a".into(), key(1)), ("node-b".into(), key(2))]
        );

        let twice = format!(
            "{HEAD}{}{}",
            entry_yaml("node-a", &key(1)),
            entry_yaml("node-a", &key(2))
        );
        assert!(
            parse(&twice, "n.yaml")
                .unwrap_err()
                .contains("listed twice")
        );
        let bad_key = format!("{HEAD}  - name: node-a\n    publicKey: AAAA\n");
        let e = parse(&bad_key, "n.yaml").unwrap_err();
        assert!(e.starts_with("n.yaml:5:"), "{e}");
        let unknown = format!("{HEAD}  - name: node-a\n    publicKey: x\n    role: node\n");
        assert!(
            parse(&unknown, "n.yaml")
                .unwrap_err()
                .contains("unknown-field")
        );
        let kind = text.replace("NodeEnrollment", "TrustStore");
        assert!(
            parse(&kind, "n.yaml")
                .unwrap_err()
                .contains("apiVersion/kind")
        );
    }
}
