//! Canonical bytes: RFC 8785 (JSON Canonicalization Scheme) for the ledger's integer-only JSON.
//!
//! Object members are sorted by their UTF-16 code units (RFC 8785 §3.2.3), there is no
//! insignificant whitespace, and strings are escaped as `JSON.stringify` does: `\"`, `\\`, the
//! short forms `\b \f \n \r \t`, other control characters as lowercase `\u00xx`, everything else
//! literal UTF-8 (serde_json's string writer does exactly this). Numbers are integers only
//! (AUDIT.md: no floats anywhere in the ledger); a float is refused rather than guessed at.
//!
//! In the ledger, integers must also lie within ±[`MAX_SAFE_INTEGER`] (I-JSON, RFC 7493 §2.2):
//! RFC 8785 serializes numbers as ECMAScript doubles, so a verifier written in JavaScript (or any
//! that parses numbers as doubles) would read 2^53 + 1 as 2^53, re-serialize other bytes and see
//! a wrong hash. [`to_vec_safe`] refuses larger integers, and [`safe_integers`] turns them into
//! their decimal strings before audit `data` is canonicalized. [`to_vec`] still writes them, for
//! the signed on-prem documents (licenses, heartbeats) whose format is HEARTBEATS.md's.

use serde_json::Value;

/// Why a value has no canonical form in the ledger.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanonicalError {
    /// AUDIT.md forbids floats in the ledger; use integer minor units or seconds.
    #[error("audit data may hold integers only, found {0}")]
    Float(String),
    /// An integer that a double cannot hold exactly (beyond ±(2^53 - 1)).
    #[error("integer {0} is beyond ±(2^53 - 1), which RFC 8785 verifiers cannot read exactly")]
    UnsafeInteger(String),
}

/// The largest integer every RFC 8785 verifier reads exactly: 2^53 - 1 (JavaScript's
/// `Number.MAX_SAFE_INTEGER`; I-JSON, RFC 7493 §2.2).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Replaces every integer of `value` beyond ±[`MAX_SAFE_INTEGER`] with its decimal string
/// (`18446744073709551615` becomes `"18446744073709551615"`), in place. Floats are left for
/// [`to_vec`] to refuse. Used on audit `data`, whose integers come from the change recorded.
pub fn safe_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            let unsafe_int = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => i.unsigned_abs() > MAX_SAFE_INTEGER,
                (None, Some(_)) => true,
                (None, None) => false,
            };
            if unsafe_int {
                *value = Value::String(n.to_string());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(safe_integers),
        Value::Object(map) => map.values_mut().for_each(safe_integers),
        Value::Null | Value::Bool(_) | Value::String(_) => {}
    }
}

/// The canonical bytes of `value`, integers of any size written as they are.
///
/// Errors: [`CanonicalError::Float`].
pub fn to_vec(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out, false)?;
    Ok(out)
}

/// The canonical bytes of `value`, refusing integers beyond ±[`MAX_SAFE_INTEGER`]: what the
/// ledger stores (envelopes and `data`).
///
/// Errors: [`CanonicalError::Float`], [`CanonicalError::UnsafeInteger`].
pub fn to_vec_safe(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out, true)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>, strict: bool) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            let safe = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => i.unsigned_abs() <= MAX_SAFE_INTEGER,
                (None, Some(_)) => false,
                (None, None) => return Err(CanonicalError::Float(n.to_string())),
            };
            if strict && !safe {
                return Err(CanonicalError::UnsafeInteger(n.to_string()));
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out, strict)?;
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
                write(v, out, strict)?;
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
        if let Ok(safe) = to_vec_safe(&v) {
            assert_eq!(String::from_utf8(safe).unwrap(), expected);
        }
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

    #[test]
    fn integers_beyond_2_pow_53_are_refused_and_the_largest_safe_ones_kept() {
        check(
            json!([9007199254740991i64, -9007199254740991i64]),
            "[9007199254740991,-9007199254740991]",
        );
        for v in [
            json!(9007199254740992u64),
            json!(-9007199254740992i64),
            json!({"a": [u64::MAX]}),
            json!(i64::MIN),
        ] {
            assert!(
                matches!(to_vec_safe(&v), Err(CanonicalError::UnsafeInteger(_))),
                "{v}"
            );
        }
    }

    #[test]
    fn unsafe_integers_become_decimal_strings_and_safe_ones_stay_numbers() {
        let mut v = json!({
            "big": 9007199254740992u64,
            "neg": -9007199254740992i64,
            "max": u64::MAX,
            "ok": 9007199254740991u64,
            "deep": [{"n": i64::MIN}, 1, "s", null],
        });
        safe_integers(&mut v);
        check(
            v,
            r#"{"big":"9007199254740992","deep":[{"n":"-9223372036854775808"},1,"s",null],"max":"18446744073709551615","neg":"-9007199254740992","ok":9007199254740991}"#,
        );
    }
}
