//! JSON on hot paths: date-times written in one piece, and response bodies serialized into a
//! buffer sized up front.
//!
//! chrono serializes a `DateTime` through `Serializer::collect_str`, which serde_json escapes
//! one `write_char` at a time: on a directory page of 50 tenants those calls were a third of
//! the request's CPU (issue 13's profile). [`rfc3339`] writes the same text (RFC 3339, UTC `Z`,
//! fractional seconds only as precise as needed: chrono's `SecondsFormat::AutoSi`) into a stack
//! buffer and hands it to `serialize_str` once.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Serialize, Serializer};

/// The longest text [`write_rfc3339`] produces: `9999-12-31T23:59:59.999999999Z`.
const MAX_LEN: usize = 30;

/// Writes `t` as chrono's `Serialize` does (`to_rfc3339_opts(SecondsFormat::AutoSi, true)`)
/// into `buf`, and returns the text; `None` for what the fast path does not cover (years
/// outside 0–9999 and leap seconds), which the caller formats with chrono.
fn write_rfc3339<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; MAX_LEN]) -> Option<&'b str> {
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return None;
    }
    let date = (year as u32, t.month(), t.day());
    write_fields(date, t.num_seconds_from_midnight(), nanos, buf)
}

/// Writes `YYYY-MM-DDThh:mm:ss`, the fraction as chrono's `AutoSi` chooses it (none, 3, 6 or 9
/// digits, as precise as needed) and `Z` into `buf`. The caller has checked the fields: a year
/// of 0–9999, a second of the day below 86,400, nanoseconds below one second.
fn write_fields(
    (year, month, day): (u32, u32, u32),
    day_secs: u32,
    nanos: u32,
    buf: &mut [u8; MAX_LEN],
) -> Option<&str> {
    let (frac, digits) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1_000) {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    // `YYYY-MM-DDThh:mm:ss`, then `.` and the fraction when there is one, then `Z`.
    buf[..20].copy_from_slice(b"0000-00-00T00:00:00.");
    let mut digits_at = |at: usize, v: u32, n: usize| {
        let mut v = v;
        for i in (at..at + n).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits_at(0, year, 4);
    digits_at(5, month, 2);
    digits_at(8, day, 2);
    digits_at(11, day_secs / 3_600, 2);
    digits_at(14, day_secs / 60 % 60, 2);
    digits_at(17, day_secs % 60, 2);
    let len = if digits == 0 {
        19
    } else {
        digits_at(20, frac, digits);
        20 + digits
    };
    buf[len] = b'Z';
    std::str::from_utf8(&buf[..=len]).ok()
}

/// `#[serde(serialize_with = "crate::http::json::rfc3339")]`: the text chrono writes, in one
/// `serialize_str`.
///
/// Errors: the serializer's.
pub fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX_LEN];
    match write_rfc3339(t, &mut buf) {
        Some(text) => s.serialize_str(text),
        None => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    }
}

/// [`rfc3339`] for an optional date-time (`null` when absent).
///
/// Errors: the serializer's.
pub fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// A `200 application/json` response serialized into a buffer of `capacity` bytes to start
/// with (axum's `Json` starts at 128 and grows by reallocation), for large bodies whose size is
/// known roughly: a page of rows.
///
/// A value that cannot be serialized (a programming error) is answered 500 `internal` as a
/// problem.
pub fn response<T: Serialize>(value: &T, capacity: usize) -> Response {
    let mut buf = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut buf, value) {
        Ok(()) => written(buf),
        Err(e) => super::problem::ApiError::from(crate::error::Error::Internal(format!(
            "serializing the response: {e}"
        )))
        .into_response(),
    }
}

/// A `200 application/json` response of a body already written as JSON (a page appended by
/// hand with the `push_*` writers below).
pub fn written(body: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Appends `s` as a JSON string, byte for byte what serde_json writes: copied between quotes
/// when no byte needs escaping (no `"`, `\\` or control character: the usual case), else
/// escaped by serde_json itself. For rows written by hand on hot paths.
pub fn push_str(buf: &mut Vec<u8>, s: &str) {
    if needs_escape(s.as_bytes()) {
        // Writing a `str` into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *buf, s);
    } else {
        push_quoted(buf, s.as_bytes());
    }
}

/// Appends `text` between quotes as it is: the caller knows it needs no escaping.
fn push_quoted(buf: &mut Vec<u8>, text: &[u8]) {
    buf.reserve(text.len() + 2);
    buf.push(b'"');
    buf.extend_from_slice(text);
    buf.push(b'"');
}

/// Whether a byte of `s` must be escaped inside a JSON string (RFC 8259 §7): a control
/// character (below 0x20), `"` or `\\`. Eight bytes at a time with the exact word tests of
/// "Bit Twiddling Hacks" (`hasless(x, 0x20)`, and `haszero` of `x` xor each of the two
/// characters), then the last bytes one by one.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let mut words = s.chunks_exact(8);
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().unwrap_or_default());
        if x.wrapping_sub(ONES * 0x20) & !x & HIGHS != 0
            || has_zero_byte(x ^ (ONES * u64::from(b'"')))
            || has_zero_byte(x ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// [`push_str`], or `null`.
pub fn push_opt_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => push_str(buf, s),
        None => buf.extend_from_slice(b"null"),
    }
}

/// Appends `t` as [`rfc3339`] serializes it, quoted.
pub fn push_rfc3339(buf: &mut Vec<u8>, t: &DateTime<Utc>) {
    let mut text = [0u8; MAX_LEN];
    match write_rfc3339(t, &mut text) {
        // Digits, `-`, `:`, `.`, `T` and `Z`: nothing to escape.
        Some(text) => push_quoted(buf, text.as_bytes()),
        None => push_str(buf, &t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    }
}

/// Appends the instant `micros` microseconds after the Unix epoch (a stored time,
/// `clock::to_micros`) as [`push_rfc3339`] appends `clock::from_micros(micros)`, without
/// building a chrono `DateTime`: the date comes from the day count by Howard Hinnant's
/// `civil_from_days` ("chrono-Compatible Low-Level Date Algorithms"), which was a tenth of a
/// directory row's JSON through chrono. Years outside 0–9999 go through chrono.
pub fn push_micros_rfc3339(buf: &mut Vec<u8>, micros: i64) {
    const DAY: i64 = 86_400;
    let (secs, sub) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let (days, day_secs) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
    // civil_from_days: days since 1970-01-01 to (year, month, day), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = [0u8; MAX_LEN];
    // Every value below is in range once the year is: month 1–12, day 1–31, a second of the
    // day below 86,400, a fraction below one second.
    let written = (0..=9999).contains(&year).then(|| {
        let date = (year as u32, month as u32, day as u32);
        write_fields(date, day_secs as u32, sub as u32 * 1_000, &mut text)
    });
    match written.flatten() {
        // Digits, `-`, `:`, `.`, `T` and `Z`: nothing to escape.
        Some(text) => push_quoted(buf, text.as_bytes()),
        None => push_rfc3339(buf, &crate::clock::from_micros(micros)),
    }
}

/// [`push_rfc3339`], or `null`.
pub fn push_opt_rfc3339(buf: &mut Vec<u8>, t: Option<&DateTime<Utc>>) {
    match t {
        Some(t) => push_rfc3339(buf, t),
        None => buf.extend_from_slice(b"null"),
    }
}

/// Appends a UUID as its serde form: the quoted, hyphenated, lowercase text.
pub fn push_uuid(buf: &mut Vec<u8>, id: &uuid::Uuid) {
    let mut text = uuid::Uuid::encode_buffer();
    // Hex digits and hyphens: nothing to escape.
    push_quoted(buf, id.hyphenated().encode_lower(&mut text).as_bytes());
}

/// Appends an unsigned number, or `null`.
pub fn push_opt_u64(buf: &mut Vec<u8>, n: Option<u64>) {
    match n {
        // Writing a number into a `Vec` cannot fail.
        Some(n) => {
            let _ = serde_json::to_writer(&mut *buf, &n);
        }
        None => buf.extend_from_slice(b"null"),
    }
}

/// `push_key!(buf, "name")` appends `,"name":`, and `push_key!(buf, first "name")` appends
/// `{"name":`, for the first field of an object: one copy of a constant, since `name` is a
/// string literal (a field name, which needs no escaping).
macro_rules! push_key {
    ($buf:expr, first $name:literal) => {
        $buf.extend_from_slice(concat!("{\"", $name, "\":").as_bytes())
    };
    ($buf:expr, $name:literal) => {
        $buf.extend_from_slice(concat!(",\"", $name, "\":").as_bytes())
    };
}
pub(crate) use push_key;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[derive(Serialize)]
    struct Fast(#[serde(serialize_with = "rfc3339")] DateTime<Utc>);

    /// Every precision chrono chooses, and the fallbacks, give chrono's own text.
    #[test]
    fn writes_what_chrono_writes() {
        let base = Utc.with_ymd_and_hms(2026, 12, 2, 7, 5, 9).unwrap();
        let mut cases = vec![
            base,
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(-5, 3, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(12_000, 3, 1, 0, 0, 0).unwrap(),
        ];
        for nanos in [
            1,
            7,
            1_000,
            120_000,
            1_000_000,
            5_000_000,
            999_999_999,
            123_456_789,
        ] {
            cases.push(base + chrono::Duration::nanoseconds(nanos));
        }
        // A leap second (nanoseconds past 1e9).
        cases.push(
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                .unwrap()
                .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
                .unwrap()
                .and_utc(),
        );
        for t in cases {
            let ours = serde_json::to_string(&Fast(t)).unwrap();
            let chrono = serde_json::to_string(&t).unwrap();
            assert_eq!(ours, chrono, "{t:?}");
        }
    }

    /// The stored-time path writes what the `DateTime` path writes, at every precision, around
    /// leap days and century years, before the epoch, at both ends of the fast path and past
    /// them, and over a spread of instants from year 0 to 9999.
    #[test]
    fn micros_write_what_their_date_time_writes() {
        let at = |y, m, d| crate::clock::to_micros(Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap());
        let mut cases = vec![
            0,
            1,
            -1,
            999,
            1_000,
            120_000,
            999_999,
            1_000_000,
            i64::MIN,
            i64::MAX,
        ];
        for (y, m, d) in [
            (0, 1, 1),
            (1, 1, 1),
            (1600, 2, 29),
            (1900, 2, 28),
            (1900, 3, 1),
            (1969, 12, 31),
            (2000, 2, 29),
            (2024, 2, 29),
            (2026, 12, 31),
            (2100, 3, 1),
            (9999, 12, 31),
            (-1, 12, 31),
            (10_000, 1, 1),
        ] {
            let t = at(y, m, d);
            cases.extend([t, t - 1, t + 86_399_999_999, t + 86_400_000_000 - 1_000]);
        }
        let (lo, hi) = (at(0, 1, 1), at(10_000, 1, 1));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = lo + (x % (hi - lo) as u64) as i64;
            cases.extend([t, t - t.rem_euclid(1_000), t - t.rem_euclid(1_000_000)]);
        }
        for t in cases {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            push_micros_rfc3339(&mut ours, t);
            push_rfc3339(&mut theirs, &crate::clock::from_micros(t));
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap(),
                "{t}"
            );
        }
    }

    #[test]
    fn response_is_json() {
        let r = response(&serde_json::json!({"a": [1, 2]}), 16);
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }

    /// The word-at-a-time test agrees with the plain byte test for every byte value at every
    /// position of a word and of the tail, beside every other byte value, and `push_str` writes
    /// what serde_json writes either way.
    #[test]
    fn needs_escape_is_the_byte_test() {
        let plain = |s: &[u8]| s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
        for len in [1usize, 7, 8, 9, 16, 23] {
            for at in 0..len {
                for b in 0..=255u8 {
                    for fill in [b'a', 0x7f, 0x80, 0xff, 0x1f, 0x21, 0x5b, 0x5d, 0x20] {
                        let mut s = vec![fill; len];
                        s[at] = b;
                        assert_eq!(needs_escape(&s), plain(&s), "{s:?}");
                    }
                }
            }
        }
        for text in [
            "",
            "plain",
            "ac\u{e9}me \u{1f600}",
            "q\"uote",
            "back\\slash",
            "tab\tin",
            "x\u{7f}y",
        ] {
            let mut buf = Vec::new();
            push_str(&mut buf, text);
            assert_eq!(buf, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }
}
