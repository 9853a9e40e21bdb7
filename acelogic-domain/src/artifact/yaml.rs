//! Strict YAML for the files operators write (trust store, sign
//! requests): unknown and duplicate keys are errors, YAML 1.1 booleans
//! (`yes`, `on`) are not booleans, and every error says `file:line:column`.

use crate::reason::Reason;
use serde::de::DeserializeOwned;

/// Largest YAML file read (a trust store with a few hundred keys is ~50 KiB).
pub(crate) const MAX_YAML_BYTES: usize = 1024 * 1024;

/// A YAML document that did not parse into the expected shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// `unknown-field`, `missing-field`, `duplicate-field`, `bad-yaml`,
    /// `too-large` or `bad-value`.
    pub code: Reason,
    /// `file:line:column`, or `file` when the parser knows no position.
    pub location: String,
    pub message: String,
}

/// Formats a position the way editors and compilers do.
pub fn at(origin: &str, line: u64, column: u64) -> String {
    if line == 0 {
        origin.to_owned()
    } else {
        format!("{origin}:{line}:{column}")
    }
}

pub fn parse<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, YamlError> {
    if text.len() > MAX_YAML_BYTES {
        return Err(YamlError {
            code: Reason::TooLarge,
            location: origin.to_owned(),
            message: format!("{} bytes, over the {MAX_YAML_BYTES}-byte limit", text.len()),
        });
    }
    let options = serde_saphyr::options! {
        strict_booleans: true,
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let location = e
            .location()
            .map_or_else(|| origin.to_owned(), |l| at(origin, l.line(), l.column()));
        let (code, message) = crate::yaml::classify(&e);
        YamlError {
            code,
            location,
            message,
        }
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields are only parsed")]
    struct Doc {
        name: crate::artifact::Name,
        on: bool,
    }

    #[test]
    fn errors_carry_codes_and_positions() {
        let cases = [
            ("name: a\non: true\nx: 1\n", "unknown-field", "f.yaml:3:1"),
            ("name: a\n", "missing-field", "f.yaml"),
            (
                "name: a\nname: b\non: true\n",
                "duplicate-field",
                "f.yaml:2:1",
            ),
            ("name: a\non: yes\n", "bad-value", "f.yaml:2:5"),
            ("name: Bad\non: true\n", "bad-value", "f.yaml:1:7"),
            ("name: [a\n", "bad-yaml", "f.yaml:"),
        ];
        for (text, code, location) in cases {
            let e = parse::<Doc>(text, "f.yaml").unwrap_err();
            assert_eq!(
                (e.code.as_str(), &e.message[..0]),
                (code, ""),
                "{text:?}: {e:?}"
            );
            assert!(e.location.starts_with(location), "{text:?}: {e:?}");
        }
    }
}
