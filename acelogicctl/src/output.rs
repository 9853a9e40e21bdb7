//! How commands print times for a person.

use std::time::{Duration, UNIX_EPOCH};

/// Unix seconds as an RFC 3339 time (a negative value as it is).
pub(crate) fn when(unix: i64) -> String {
    u64::try_from(unix).map_or_else(
        |_| unix.to_string(),
        |s| acelogic_domain::artifact::format_timestamp(UNIX_EPOCH + Duration::from_secs(s)),
    )
}

/// Nanoseconds since the Unix epoch (lineage's clock), to the millisecond.
pub(crate) fn when_ns(ns: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}
