//! What every strict YAML file of ours (policies, trust store, sign
//! requests) shares: how a serde-saphyr error becomes a stable code and a
//! message that is safe to print.

use crate::reason::Reason;
use serde_saphyr::{DefaultMessageFormatter, Error as E, MessageFormatter as _};

/// The error's code (`unknown-field`, `missing-field`, `duplicate-field`,
/// `too-large`, `bad-value` or `bad-yaml`) and its message, with control
/// characters from the input escaped so they cannot reach a terminal or
/// log. Errors met through an alias or carrying a snippet are unwrapped
/// first, so an alias bomb is `too-large` wherever it is used.
pub(crate) fn classify(e: &E) -> (Reason, String) {
    let mut inner = e;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = inner {
        inner = error;
    }
    let code = match inner {
        E::SerdeUnknownField { .. } => Reason::UnknownField,
        E::SerdeMissingField { .. } => Reason::MissingField,
        E::DuplicateMappingKey { .. } => Reason::DuplicateField,
        E::Budget { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => Reason::TooLarge,
        E::Message { .. }
        | E::SerdeInvalidType { .. }
        | E::SerdeInvalidValue { .. }
        | E::SerdeInvalidLength { .. }
        | E::SerdeUnknownVariant { .. }
        | E::NullIntoString { .. }
        | E::InvalidScalar { .. }
        | E::InvalidBooleanStrict { .. } => Reason::BadValue,
        _ => Reason::BadYaml,
    };
    let message = DefaultMessageFormatter
        .format_message(inner)
        .chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    (code, message)
}
