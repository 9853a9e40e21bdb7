//! Tracepoint record layouts, read from the running kernel's tracefs so no
//! kernel's offsets are frozen into the BPF object.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// Where tracefs is mounted, trying the usual places and then the mount
/// table.
pub fn mount_point() -> Option<PathBuf> {
    for candidate in ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"] {
        let p = Path::new(candidate);
        if p.join("events").is_dir() {
            return Some(p.to_path_buf());
        }
    }
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (_src, dir, fstype) = (f.next()?, f.next()?, f.next()?);
        (fstype == "tracefs").then(|| PathBuf::from(dir))
    })
}

/// Why a tracepoint field could not be located.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing)")]
    NoTracefs,
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tracepoint {tracepoint} has no field `{field}`")]
    NoField { tracepoint: String, field: String },
    #[error("malformed line in {tracepoint} format: {line:?}")]
    Malformed { tracepoint: String, line: String },
}

/// Offset of `field` in the record of tracepoint `category/name`.
pub fn field_offset(category: &str, name: &str, field: &str) -> Result<u32, FormatError> {
    let root = mount_point().ok_or(FormatError::NoTracefs)?;
    let path = root.join("events").join(category).join(name).join("format");
    let text = fs::read_to_string(&path).map_err(|source| FormatError::Read { path, source })?;
    parse_field_offset(&text, &format!("{category}/{name}"), field)
}

/// Parses a tracefs `format` file. Field lines look like
/// `\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;`.
pub fn parse_field_offset(format: &str, tracepoint: &str, field: &str) -> Result<u32, FormatError> {
    let malformed = |line: &str| FormatError::Malformed {
        tracepoint: tracepoint.to_owned(),
        line: line.to_owned(),
    };
    for line in format.lines() {
        let line = line.trim();
        let Some(decl) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = decl.split(';').map(str::trim);
        let declaration = parts.next().ok_or_else(|| malformed(line))?;
        // The field name is the last word of the declaration, minus any
        // array suffix: `char comm[16]` -> `comm`.
        let last = declaration.rsplit(' ').next().unwrap_or_default();
        let name = last.split('[').next().unwrap_or_default();
        if name != field {
            continue;
        }
        let offset = parts
            .find_map(|p| p.strip_prefix("offset:"))
            .ok_or_else(|| malformed(line))?;
        return offset.parse().map_err(|_| malformed(line));
    }
    Err(FormatError::NoField {
        tracepoint: tracepoint.to_owned(),
        field: field.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHED_PROCESS_EXEC: &str = "name: sched_process_exec
ID: 312
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:1;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;

print fmt: \"filename=%s pid=%d old_pid=%d\", __get_str(filename), REC->pid, REC->old_pid
";

    #[test]
    fn finds_data_loc_and_plain_fields() {
        let off = |f| parse_field_offset(SCHED_PROCESS_EXEC, "sched/sched_process_exec", f);
        assert_eq!(off("filename").unwrap(), 8);
        assert_eq!(off("old_pid").unwrap(), 16);
        assert_eq!(off("common_pid").unwrap(), 4);
    }

    #[test]
    fn array_fields_match_by_name() {
        let fmt = "\tfield:char comm[16];\toffset:24;\tsize:16;\tsigned:0;\n";
        assert_eq!(parse_field_offset(fmt, "t", "comm").unwrap(), 24);
    }

    #[test]
    fn missing_and_malformed_fields_are_errors() {
        let e = parse_field_offset(SCHED_PROCESS_EXEC, "sched/x", "nope").unwrap_err();
        assert_eq!(e.to_string(), "tracepoint sched/x has no field `nope`");
        let e = parse_field_offset("field:int pid;\toffset:abc;", "t", "pid").unwrap_err();
        assert!(matches!(e, FormatError::Malformed { .. }), "{e}");
        let e = parse_field_offset("field:int pid;\tsize:4;", "t", "pid").unwrap_err();
        assert!(matches!(e, FormatError::Malformed { .. }), "{e}");
    }

    #[test]
    fn prefix_of_a_name_does_not_match() {
        let fmt = "\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n";
        assert!(parse_field_offset(fmt, "t", "pid").is_err());
    }
}
