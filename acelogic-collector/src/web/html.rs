//! HTML helpers: escaping (everything from records comes from nodes and
//! is treated as hostile), query strings, and the page frame.

use std::{collections::HashMap, fmt::Write as _};

/// Escapes text for HTML element content and quoted attribute values.
#[must_use]
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string value (everything but unreserved bytes).
#[must_use]
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A link to `path?key=value`, escaped for an attribute.
#[must_use]
pub fn href(path: &str, key: &str, value: &str) -> String {
    esc(&format!("{path}?{key}={}", enc(value)))
}

fn unhex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (unhex(bytes[i + 1]), unhex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parameters of a query string (the last of a repeated key wins).
#[must_use]
pub fn params(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d232b; background: #f6f7f9; }
header { background: #1d232b; color: #fff; padding: .6em 1.2em; display: flex; gap: 1.5em; }
header a { color: #fff; font-weight: 600; text-decoration: none; }
header .who { margin-left: auto; opacity: .8; }
main { padding: 1em 1.5em; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
code, .mono, td.mono { font-family: ui-monospace, monospace; font-size: 12.5px; }
ul.tree, ul.tree ul { list-style: none; padding-left: 1.4em; border-left: 1px dotted #aab; }
ul.tree { border: 0; padding-left: 0; }
li.proc { margin: .5em 0; }
.proc-head { font-weight: 600; }
.proc-head.asked { background: #fff6c8; }
ul.records { list-style: none; padding-left: 1em; margin: .2em 0; }
li.rec { margin: .1em 0; padding: 0 .3em; border-radius: 3px; }
.verdict-allow { background: #e3f6e5; color: #14532d; }
.verdict-deny { background: #fde2e1; color: #7f1d1d; font-weight: 600; }
.verdict-audit { background: #fff1d6; color: #7c4a03; }
.verify-ok { color: #14532d; font-weight: 600; } .verify-failed { color: #b91c1c; font-weight: 600; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #d5d9e0; padding: .25em .5em; text-align: left; vertical-align: top; }
form { margin: .6em 0; } input { font: inherit; padding: .2em .4em; }
.refused { border-left: 4px solid #b91c1c; padding: .5em 1em; background: #fff; }
";

/// A whole page around `body` (already HTML).
#[must_use]
pub fn page(title: &str, who: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t} - ACELOGIC lineage</title><style>{STYLE}</style></head>\
         <body><header><a href=\"/\">ACELOGIC lineage</a><a href=\"/denials\">denials</a>\
         <a href=\"/verify\">verify</a><span class=\"who\">{w}</span></header>\
         <main>{body}</main></body></html>\n",
        t = esc(title),
        w = esc(who),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_escaped_and_parameters_round_trip() {
        assert_eq!(
            esc("<script>alert('x')</script>&\"\u{1}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;\\u{1}"
        );
        assert_eq!(
            href("/tree", "exec_id", "a b&c\"<"),
            "/tree?exec_id=a%20b%26c%22%3C"
        );
        let p = params(Some("exec_id=a%20b%26c&x=1+2&bad=%zz&trail=%4"));
        assert_eq!(p["exec_id"], "a b&c");
        assert_eq!(p["x"], "1 2");
        assert_eq!(p["bad"], "%zz");
        assert_eq!(p["trail"], "%4");
    }
}
