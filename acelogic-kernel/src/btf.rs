//! A small reader of the running kernel's BTF (`/sys/kernel/btf/vmlinux`)
//! that answers the two questions the loader asks at load time, so that no
//! struct offset or hook signature is frozen from one kernel: where a
//! member of a kernel struct lies ([`Btf::member`]) and how many parameters
//! a kernel function takes ([`Btf::func_param_count`]).
//!
//! Hand-written rather than borrowed: aya-obj 0.3 (already a dependency)
//! keeps BTF type and member access crate-private, and the `btf-rs` crate is
//! LGPL-2.1, which we do not want statically linked into this Apache-2.0
//! binary. Every read is bounds-checked: malformed input gives a
//! [`BtfError`], never a panic.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    path::PathBuf,
};

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
const MAGIC: u16 = 0xEB9F;
const HEADER_LEN: u32 = 24;
/// Bound on type chains and anonymous nesting: kernels stay far below it;
/// a cycle in malformed input stops here instead of overflowing the stack.
const MAX_DEPTH: u32 = 64;

const INT: u8 = 1;
const PTR: u8 = 2;
const ARRAY: u8 = 3;
const STRUCT: u8 = 4;
const UNION: u8 = 5;
const ENUM: u8 = 6;
const FWD: u8 = 7;
const TYPEDEF: u8 = 8;
const VOLATILE: u8 = 9;
const CONST: u8 = 10;
const RESTRICT: u8 = 11;
const FUNC: u8 = 12;
const FUNC_PROTO: u8 = 13;
const VAR: u8 = 14;
const DATASEC: u8 = 15;
const FLOAT: u8 = 16;
const DECL_TAG: u8 = 17;
const TYPE_TAG: u8 = 18;
const ENUM64: u8 = 19;

/// Kind names as the kernel spells them (`BTF_KIND_*`), indexed by kind.
const KIND_NAMES: &str = "void int ptr array struct union enum fwd typedef volatile const \
    restrict func func_proto var datasec float decl_tag type_tag enum64";

fn kind_name(kind: u8) -> &'static str {
    let name = KIND_NAMES.split_whitespace().nth(usize::from(kind));
    name.unwrap_or("unknown kind")
}

/// Why a BTF question could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("not little-endian BTF: magic {found:#06x}, expected 0xeb9f")]
    BadMagic { found: u16 },
    #[error("BTF header length {hdr_len} is shorter than the 24-byte header")]
    BadHeader { hdr_len: u32 },
    #[error("BTF truncated: {what} at byte {at} runs past its end")]
    Truncated { what: &'static str, at: usize },
    #[error("BTF type {id} has unknown kind {kind}")]
    UnknownKind { kind: u8, id: u32 },
    #[error("BTF refers to type {id}, which does not exist")]
    BadTypeId { id: u32 },
    #[error("BTF string offset {off} is outside the string section or unterminated")]
    BadString { off: u32 },
    #[error("BTF type chain or nesting deeper than 64 levels at type {id} (cyclic?)")]
    TooDeep { id: u32 },
    #[error("kernel BTF has no struct or union `{name}` with members")]
    NoStruct { name: String },
    #[error("`{strukt}` has no member `{member}`")]
    NoMember { strukt: String, member: String },
    #[error("`{strukt}.{member}` is a bitfield and has no byte offset")]
    Bitfield { strukt: String, member: String },
    #[error("`{path}` is a {kind}, not an embedded struct or union")]
    NotAStruct { path: String, kind: &'static str },
    #[error("BTF type {id} is a {kind}, which has no size")]
    NoSize { id: u32, kind: &'static str },
    #[error("offset or size of `{path}` does not fit in 32 bits")]
    Overflow { path: String },
    #[error("kernel BTF has no function `{name}`")]
    NoFunc { name: String },
    #[error("BTF function `{name}` refers to a {kind}, not a function prototype")]
    NotAProto { name: String, kind: &'static str },
}

const fn truncated(what: &'static str, at: usize) -> BtfError {
    BtfError::Truncated { what, at }
}

/// Where a struct member lies, in bytes from the start of the struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    pub offset: u32,
    pub size: u32,
}

/// One type record: its header words and where its kind-specific data
/// starts in the blob (validated to lie inside the type section).
#[derive(Debug, Clone, Copy, Default)]
struct Type {
    name_off: u32,
    info: u32,
    size_or_type: u32,
    extra: usize,
}

impl Type {
    fn kind(self) -> u8 {
        self.info.to_le_bytes()[3] & 0x1f
    }

    fn kind_flag(self) -> bool {
        self.info.to_le_bytes()[3] & 0x80 != 0
    }

    fn vlen(self) -> usize {
        let [lo, hi, ..] = self.info.to_le_bytes();
        usize::from(u16::from_le_bytes([lo, hi]))
    }
}

type FindResult = Result<Option<Found>, BtfError>;

/// A member found by name, possibly inside anonymous structs/unions.
#[derive(Debug, Clone, Copy)]
struct Found {
    bits: u64,
    bitfield: bool,
    ty: u32,
}

/// A parsed BTF blob.
pub struct Btf {
    bytes: Vec<u8>,
    strings: (usize, usize),
    /// Indexed by type id; id 0 is `void`.
    types: Vec<Type>,
    /// Named structs, unions and functions, by name, in id order.
    by_name: HashMap<Box<[u8]>, Vec<u32>>,
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("bytes", &self.bytes.len())
            .field("types", &self.types.len())
            .finish_non_exhaustive()
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

/// The NUL-terminated string at `off` of the string section `strings`.
fn cstr(strings: &[u8], off: u32) -> Result<&[u8], BtfError> {
    let rest = usize::try_from(off).ok().and_then(|o| strings.get(o..));
    let rest = rest.ok_or(BtfError::BadString { off })?;
    let len = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(BtfError::BadString { off })?;
    Ok(&rest[..len])
}

fn to_usize(v: u32) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl Btf {
    /// Reads and parses the running kernel's BTF.
    pub fn from_sys_fs() -> Result<Self, BtfError> {
        let bytes = std::fs::read(VMLINUX).map_err(|source| BtfError::Io {
            path: PathBuf::from(VMLINUX),
            source,
        })?;
        Self::parse(bytes)
    }

    /// Parses a BTF blob, indexing its types and naming structs, unions
    /// and functions.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, BtfError> {
        if bytes.len() < 24 {
            return Err(truncated("header", bytes.len()));
        }
        let header = |i: usize| read_u32(&bytes, 4 * i).unwrap_or_default();
        let [m0, m1, ..] = header(0).to_le_bytes();
        let magic = u16::from_le_bytes([m0, m1]);
        if magic != MAGIC {
            return Err(BtfError::BadMagic { found: magic });
        }
        let hdr_len = header(1);
        if hdr_len < HEADER_LEN {
            return Err(BtfError::BadHeader { hdr_len });
        }
        let (type_off, type_len, str_off, str_len) = (header(2), header(3), header(4), header(5));
        let section = |off: u32, len: u32, what: &'static str| {
            let start = to_usize(hdr_len).checked_add(to_usize(off));
            let end = start.and_then(|s| s.checked_add(to_usize(len)));
            match (start, end) {
                (Some(start), Some(end)) if end <= bytes.len() => Ok((start, end)),
                _ => Err(truncated(what, start.unwrap_or(usize::MAX))),
            }
        };
        let (types_start, types_end) = section(type_off, type_len, "type section")?;
        let strings = section(str_off, str_len, "string section")?;
        let string_bytes = &bytes[strings.0..strings.1];
        let type_bytes = &bytes[..types_end];

        let mut types = vec![Type::default()];
        let mut by_name: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        let mut pos = types_start;
        while pos < types_end {
            let record = move || truncated("type record", pos);
            let word = |i: usize| read_u32(type_bytes, pos + 4 * i).ok_or_else(record);
            let t = Type {
                name_off: word(0)?,
                info: word(1)?,
                size_or_type: word(2)?,
                extra: pos + 12,
            };
            let id = u32::try_from(types.len()).map_err(|_| record())?;
            let extra_len = match t.kind() {
                INT | VAR | DECL_TAG => 4,
                PTR | FWD | TYPEDEF | VOLATILE | CONST | RESTRICT | FUNC | FLOAT | TYPE_TAG => 0,
                ARRAY => 12,
                STRUCT | UNION | DATASEC | ENUM64 => 12 * t.vlen(),
                ENUM | FUNC_PROTO => 8 * t.vlen(),
                kind => return Err(BtfError::UnknownKind { kind, id }),
            };
            pos = t.extra + extra_len;
            if pos > types_end {
                return Err(record());
            }
            if matches!(t.kind(), STRUCT | UNION | FUNC) && t.name_off != 0 {
                let name = cstr(string_bytes, t.name_off)?;
                by_name.entry(name.into()).or_default().push(id);
            }
            types.push(t);
        }
        Ok(Self {
            bytes,
            strings,
            types,
            by_name,
        })
    }

    /// Byte offset and size of member `path` of struct (or union) `strukt`.
    /// `path` is dotted through embedded members (`"f_path.dentry"`);
    /// members of anonymous structs and unions are found as C finds them.
    pub fn member(&self, strukt: &str, path: &str) -> Result<Member, BtfError> {
        let mut container = self.find_struct(strukt)?;
        let mut bits = 0u64;
        let mut start = 0;
        let mut last: Option<Found> = None;
        for elem in path.split('.') {
            let here = || match start {
                0 => strukt.to_owned(),
                _ => format!("{strukt}.{}", &path[..start - 1]),
            };
            if let Some(prev) = last {
                let (_, t) = self.resolve(prev.ty)?;
                if !matches!(t.kind(), STRUCT | UNION) {
                    return Err(BtfError::NotAStruct {
                        path: here(),
                        kind: kind_name(t.kind()),
                    });
                }
                container = t;
            }
            let found = self.find(container, elem.as_bytes(), 0, &mut HashSet::new())?;
            let found = found.ok_or_else(|| BtfError::NoMember {
                strukt: here(),
                member: elem.to_owned(),
            })?;
            bits = bits.saturating_add(found.bits);
            if found.bitfield || !bits.is_multiple_of(8) {
                return Err(BtfError::Bitfield {
                    strukt: here(),
                    member: elem.to_owned(),
                });
            }
            last = Some(found);
            start += elem.len() + 1;
        }
        let overflow = || BtfError::Overflow {
            path: format!("{strukt}.{path}"),
        };
        let offset = u32::try_from(bits / 8).map_err(|_| overflow())?;
        // `split` yields at least one element, so `last` is set.
        let ty = last.map_or(0, |f| f.ty);
        let size = self.size_of(ty, 0)?.ok_or_else(overflow)?;
        Ok(Member { offset, size })
    }

    /// Number of parameters of kernel function `func` (the `vlen` of its
    /// prototype; a C variadic `...` would count as one).
    pub fn func_param_count(&self, func: &str) -> Result<usize, BtfError> {
        let t = self
            .named(func, |t| t.kind() == FUNC)
            .ok_or_else(|| BtfError::NoFunc {
                name: func.to_owned(),
            })?;
        let proto = self.ty(t.size_or_type)?;
        if proto.kind() != FUNC_PROTO {
            return Err(BtfError::NotAProto {
                name: func.to_owned(),
                kind: kind_name(proto.kind()),
            });
        }
        Ok(proto.vlen())
    }

    /// Whether the kernel has a function `func` in its BTF.
    pub fn has_func(&self, func: &str) -> bool {
        self.named(func, |t| t.kind() == FUNC).is_some()
    }

    /// The first indexed type called `name` that satisfies `want`.
    fn named(&self, name: &str, want: impl Fn(Type) -> bool) -> Option<Type> {
        let ids = self.by_name.get(name.as_bytes())?;
        ids.iter()
            .filter_map(|&id| self.ty(id).ok())
            .find(|&t| want(t))
    }

    fn find_struct(&self, name: &str) -> Result<Type, BtfError> {
        self.named(name, |t| matches!(t.kind(), STRUCT | UNION) && t.vlen() > 0)
            .ok_or_else(|| BtfError::NoStruct {
                name: name.to_owned(),
            })
    }

    fn ty(&self, id: u32) -> Result<Type, BtfError> {
        let t = usize::try_from(id).ok().and_then(|i| self.types.get(i));
        t.copied().ok_or(BtfError::BadTypeId { id })
    }

    fn word(&self, at: usize) -> Result<u32, BtfError> {
        read_u32(&self.bytes, at).ok_or(truncated("type data", at))
    }

    fn name(&self, off: u32) -> Result<&[u8], BtfError> {
        cstr(&self.bytes[self.strings.0..self.strings.1], off)
    }

    /// Follows typedef, const, volatile, restrict and type tags.
    fn resolve(&self, mut id: u32) -> Result<(u32, Type), BtfError> {
        for _ in 0..MAX_DEPTH {
            let t = self.ty(id)?;
            match t.kind() {
                TYPEDEF | VOLATILE | CONST | RESTRICT | TYPE_TAG => id = t.size_or_type,
                _ => return Ok((id, t)),
            }
        }
        Err(BtfError::TooDeep { id })
    }

    /// Size in bytes of type `id`; `None` if it overflows `u32`.
    fn size_of(&self, id: u32, depth: u32) -> Result<Option<u32>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep { id });
        }
        let (_, t) = self.resolve(id)?;
        match t.kind() {
            INT | ENUM | ENUM64 | STRUCT | UNION | FLOAT => Ok(Some(t.size_or_type)),
            PTR => Ok(Some(8)),
            ARRAY => {
                let (elem, nelems) = (self.word(t.extra)?, self.word(t.extra + 8)?);
                Ok(self
                    .size_of(elem, depth + 1)?
                    .and_then(|s| s.checked_mul(nelems)))
            }
            kind => Err(BtfError::NoSize {
                id,
                kind: kind_name(kind),
            }),
        }
    }

    /// Looks `name` up among the members of `parent`, descending into
    /// anonymous struct/union members and adding their offsets. `seen`
    /// holds the anonymous types already searched, so each is searched
    /// once even in cyclic input.
    fn find(&self, parent: Type, name: &[u8], depth: u32, seen: &mut HashSet<u32>) -> FindResult {
        for i in 0..parent.vlen() {
            let at = parent.extra + 12 * i;
            let (name_off, ty, off) = (self.word(at)?, self.word(at + 4)?, self.word(at + 8)?);
            let (bit_off, bit_size) = match parent.kind_flag() {
                true => (off & 0x00ff_ffff, off >> 24),
                false => (off, 0),
            };
            let member_name = self.name(name_off)?;
            if member_name.is_empty() {
                let (id, inner) = self.resolve(ty)?;
                if !matches!(inner.kind(), STRUCT | UNION) || !seen.insert(id) {
                    continue;
                }
                if depth >= MAX_DEPTH {
                    return Err(BtfError::TooDeep { id });
                }
                if let Some(f) = self.find(inner, name, depth + 1, seen)? {
                    let bits = f.bits.saturating_add(u64::from(bit_off));
                    return Ok(Some(Found { bits, ..f }));
                }
            } else if member_name == name {
                let bitfield =
                    bit_size != 0 || (!parent.kind_flag() && self.is_int_bitfield(ty)?);
                return Ok(Some(Found {
                    bits: u64::from(bit_off),
                    bitfield,
                    ty,
                }));
            }
        }
        Ok(None)
    }

    /// Old-style bitfields (no `kind_flag`) narrow the int type itself.
    fn is_int_bitfield(&self, ty: u32) -> Result<bool, BtfError> {
        let (_, t) = self.resolve(ty)?;
        if t.kind() != INT {
            return Ok(false);
        }
        let [bits, _, offset, _] = self.word(t.extra)?.to_le_bytes();
        Ok(offset != 0 || u64::from(bits) != u64::from(t.size_or_type) * 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Assembles a BTF blob, one record at a time; ids count from 1.
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next: u32,
    }

    impl Builder {
        fn s(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = u32::try_from(self.strings.len()).unwrap();
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }

        /// A record of `kind` (plus 0x80 for `kind_flag`) and `vlen`.
        fn ty(&mut self, name: &str, kind: u8, vlen: usize, sot: u32, extra: &[u32]) -> u32 {
            let info = u32::from_le_bytes([u8::try_from(vlen).unwrap(), 0, 0, kind]);
            let name = self.s(name);
            for w in [name, info, sot].iter().chain(extra) {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
            self.next += 1;
            self.next - 1
        }

        /// A struct or union with `(name, type, offset)` members, or a
        /// function prototype with `(name, type, _)` parameters.
        fn agg(&mut self, name: &str, kind: u8, sot: u32, members: &[(&str, u32, u32)]) -> u32 {
            let mut extra = Vec::new();
            for &(n, t, off) in members {
                extra.extend([self.s(n), t]);
                if kind != FUNC_PROTO {
                    extra.push(off);
                }
            }
            self.ty(name, kind, members.len(), sot, &extra)
        }

        fn build(&self) -> Vec<u8> {
            let tl = u32::try_from(self.types.len()).unwrap();
            let sl = u32::try_from(self.strings.len()).unwrap();
            let mut out = vec![0x9f, 0xeb, 1, 0];
            for w in [HEADER_LEN, 0, tl, tl, sl] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    fn sample() -> Vec<u8> {
        let mut b = Builder {
            types: Vec::new(),
            strings: vec![0],
            next: 1,
        };
        let int = b.ty("int", INT, 0, 4, &[32]);
        let long = b.ty("long", INT, 0, 8, &[64]);
        let int3 = b.ty("int", INT, 0, 4, &[3]);
        let pint = b.ty("", PTR, 0, int, &[]);
        b.ty("outer", FWD, 0, 0, &[]);
        b.agg("outer", STRUCT, 0, &[]);
        let inner = b.agg("inner", STRUCT, 16, &[("a", long, 0), ("b", pint, 64)]);
        let td = b.ty("inner_t", TYPEDEF, 0, inner, &[]);
        let konst = b.ty("", CONST, 0, td, &[]);
        let inner_ct = b.ty("inner_ct", TYPEDEF, 0, konst, &[]);
        let anon = b.agg("", UNION, 8, &[("u_long", long, 0), ("u_ptr", pint, 0)]);
        let arr = b.ty("", ARRAY, 0, 0, &[int, int, 4]);
        let outer = [
            ("x", int, 0),
            ("", anon, 64),
            ("nested", inner_ct, 128),
            ("flags", int, 256 | 3 << 24),
            ("arr", arr, 288),
        ];
        b.agg("outer", STRUCT | 0x80, 56, &outer);
        b.agg("old", STRUCT, 8, &[("narrow", int3, 0), ("odd", int, 36)]);
        let params = [("p", int, 0), ("q", pint, 0), ("r", long, 0)];
        let proto = b.agg("", FUNC_PROTO, int, &params);
        b.ty("do_thing", FUNC, 0, proto, &[]);
        b.build()
    }

    fn at(offset: u32, size: u32) -> Member {
        Member { offset, size }
    }

    #[test]
    fn synthetic_members() {
        let btf = Btf::parse(sample()).unwrap();
        let m = |s: &str, p: &str| btf.member(s, p);
        assert_eq!(m("outer", "x").unwrap(), at(0, 4));
        assert_eq!(m("outer", "u_long").unwrap(), at(8, 8));
        assert_eq!(m("outer", "u_ptr").unwrap(), at(8, 8));
        assert_eq!(m("outer", "nested").unwrap(), at(16, 16));
        assert_eq!(m("outer", "nested.b").unwrap(), at(24, 8));
        assert_eq!(m("outer", "arr").unwrap(), at(36, 16));
        assert_eq!(m("inner", "b").unwrap(), at(8, 8));
        for (s, p) in [("outer", "flags"), ("old", "narrow"), ("old", "odd")] {
            let err = m(s, p).unwrap_err();
            assert!(matches!(err, BtfError::Bitfield { .. }), "{s}.{p}: {err}");
        }
        let err = m("outer", "nested.zz").unwrap_err().to_string();
        assert_eq!(err, "`outer.nested` has no member `zz`");
        let err = m("outer", "x.y").unwrap_err().to_string();
        assert_eq!(err, "`outer.x` is a int, not an embedded struct or union");
        let err = m("nosuch", "x").unwrap_err();
        assert!(matches!(err, BtfError::NoStruct { .. }), "{err}");
        let err = m("inner_t", "a").unwrap_err();
        assert!(matches!(err, BtfError::NoStruct { .. }), "{err}");
    }

    #[test]
    fn synthetic_funcs() {
        let btf = Btf::parse(sample()).unwrap();
        assert_eq!(btf.func_param_count("do_thing").unwrap(), 3);
        assert!(btf.has_func("do_thing"));
        assert!(!btf.has_func("outer"));
        let err = btf.func_param_count("missing").unwrap_err();
        assert!(matches!(err, BtfError::NoFunc { .. }), "{err}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let exercise = |bytes: Vec<u8>| {
            if let Ok(btf) = Btf::parse(bytes) {
                for p in ["u_ptr", "nested.b", "arr", "odd", "flags"] {
                    let _ = btf.member("outer", p);
                }
                let _ = (btf.func_param_count("do_thing"), btf.has_func("do_thing"));
            }
        };
        let blob = sample();
        let err = Btf::parse(vec![0; 24]).unwrap_err();
        assert!(matches!(err, BtfError::BadMagic { .. }), "{err}");
        for len in 0..blob.len() {
            assert!(Btf::parse(blob[..len].to_vec()).is_err(), "prefix {len}");
        }
        let mut state = 0x9E37_79B9_7F4A_7C15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state >> 40).unwrap()
        };
        for _ in 0..5000 {
            let mut bytes = blob.clone();
            for _ in 0..=next() % 4 {
                let i = next() % bytes.len();
                bytes[i] = next().to_le_bytes()[0];
            }
            exercise(bytes);
        }
    }

    #[test]
    fn running_kernel() {
        if !std::path::Path::new(VMLINUX).exists() {
            eprintln!("skipped: {VMLINUX} does not exist");
            return;
        }
        let btf = Btf::from_sys_fs().unwrap();
        let m = |s: &str, p: &str| {
            let r = btf.member(s, p).unwrap_or_else(|e| panic!("{s}.{p}: {e}"));
            eprintln!("{s}.{p}: offset {} size {}", r.offset, r.size);
            r
        };
        assert_eq!(m("path", "dentry"), at(8, 8));
        assert_eq!(m("list_head", "prev"), at(8, 8));
        let f_path = m("file", "f_path").offset;
        assert_eq!(m("file", "f_path.dentry").offset, f_path + 8);
        assert_eq!(m("kernfs_node", "id").size, 8);
        for (s, p) in [
            ("task_struct", "real_parent"),
            ("sock", "sk_protocol"),
            ("msghdr", "msg_name"),
            ("linux_binprm", "file"),
            ("vm_area_struct", "vm_file"),
            ("inode", "i_ino"),
            ("super_block", "s_dev"),
            ("dentry", "d_parent"),
            ("css_set", "dfl_cgrp"),
            ("cgroup", "kn"),
            ("socket", "type"),
            ("socket", "sk"),
            ("file", "f_mode"),
            ("file", "f_inode"),
        ] {
            m(s, p);
        }
        let count = |f: &str| btf.func_param_count(f).unwrap();
        assert_eq!(count("bpf_lsm_bprm_check_security"), 1);
        assert_eq!(count("bpf_lsm_socket_connect"), 3);
        assert_eq!(count("bpf_lsm_path_rename"), 5);
        assert!(btf.has_func("bpf_lsm_file_open"));
    }
}
