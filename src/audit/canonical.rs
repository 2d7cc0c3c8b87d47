//! Canonical bytes: RFC 8785 (JSON Canonicalization Scheme) for the ledger's integer-only JSON.
//!
//! Object members are sorted by their UTF-16 code units (RFC 8785 §3.2.3), there is no
//! insignificant whitespace, and strings are escaped as `JSON.stringify` does: `\"`, `\\`, the
//! short forms `\b \f \n \r \t`, other control characters as lowercase `\u00xx`, everything else
//! literal UTF-8 (serde_json's string writer does exactly this). Numbers are integers only
//! (AUDIT.md: no floats anywhere in the ledger); a float is refused rather than guessed at.

use serde_json::Value;

/// Why a value has no canonical form in the ledger.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanonicalError {
    /// AUDIT.md forbids floats in the ledger; use integer minor units or seconds.
    #[error("audit data may hold integers only, found {0}")]
    Float(String),
}

/// The canonical bytes of `value`.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(CanonicalError::Float(n.to_string()));
            }
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaping is JSON.stringify's (see the module doc); writing a `&str`
    // into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(v: Value, expected: &str) {
        assert_eq!(String::from_utf8(to_vec(&v).unwrap()).unwrap(), expected);
    }

    #[test]
    fn members_are_sorted_and_whitespace_dropped() {
        check(
            json!({"b": 1, "a": [true, null, "x"], "c": {"z": -3, "y": 18446744073709551615u64}}),
            r#"{"a":[true,null,"x"],"b":1,"c":{"y":18446744073709551615,"z":-3}}"#,
        );
    }

    #[test]
    fn strings_are_escaped_like_json_stringify() {
        check(
            json!("\u{8}\t\n\u{c}\r\u{1}\u{1f}\"\\/é€😀\u{7f}"),
            "\"\\b\\t\\n\\f\\r\\u0001\\u001f\\\"\\\\/é€😀\u{7f}\"",
        );
    }

    #[test]
    fn keys_sort_by_utf16_code_units_not_utf8_bytes() {
        // RFC 8785 §3.2.3's example: U+E000 (one unit 0xE000) sorts after U+1F600
        // (surrogates 0xD83D 0xDE00), although its UTF-8 bytes sort before.
        check(json!({"\u{e000}": 1, "😀": 2}), "{\"😀\":2,\"\u{e000}\":1}");
    }

    #[test]
    fn floats_are_refused() {
        assert_eq!(
            to_vec(&json!({"x": 1.5})),
            Err(CanonicalError::Float("1.5".into()))
        );
    }
}
