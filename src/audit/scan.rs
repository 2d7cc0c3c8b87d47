//! The fields a verify walk checks, read from a canonical envelope without a general JSON parse
//! (issue 13: the parse was about a third of the checking thread's time).
//!
//! [`checked`] accepts only the envelope as the ledger writes it: RFC 8785 (JCS) bytes, one
//! object, members in strictly ascending key order (so no key twice), no whitespace, every
//! value well formed JSON (strings without raw control bytes and with valid escapes, numbers in
//! the JSON grammar, nesting at most [`MAX_DEPTH`] deep) and valid UTF-8. It answers `None` for
//! anything else, and the caller then parses the bytes with `serde_json`, so that a damaged or
//! unusual envelope gets exactly the verdict and message it got before. For every input it
//! accepts, it gives the same fields `serde_json` gives (the proptest below holds it to that).

/// The fields of an envelope that a walk checks (AUDIT.md "Entry"), borrowed from its bytes.
/// The strings are bytes of valid UTF-8 (the whole envelope was checked once, so they are not
/// checked again each).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Fields<'a> {
    /// `v`, the format version.
    pub v: u32,
    /// `chain`, unescaped (an escaped one is left to the general parser).
    pub chain: &'a [u8],
    /// `seq`.
    pub seq: u64,
    /// `data_sha256`, as stored.
    pub data_sha256: &'a [u8],
    /// `prev`, as stored.
    pub prev: &'a [u8],
}

/// The same fields as the general parser reads them, for envelopes [`checked`] refuses (the
/// other members are skipped by serde_json, not copied: the hash already covers them).
#[derive(serde::Deserialize)]
pub(super) struct Parsed<'a> {
    /// `v`.
    pub v: u32,
    /// `chain`, unescaped.
    #[serde(borrow)]
    pub chain: std::borrow::Cow<'a, str>,
    /// `seq`.
    pub seq: u64,
    /// `data_sha256`.
    #[serde(borrow)]
    pub data_sha256: std::borrow::Cow<'a, str>,
    /// `prev`.
    #[serde(borrow)]
    pub prev: std::borrow::Cow<'a, str>,
}

impl Parsed<'_> {
    /// The same fields as [`checked`] gives, borrowed from this parse.
    pub(super) fn fields(&self) -> Fields<'_> {
        Fields {
            v: self.v,
            chain: self.chain.as_bytes(),
            seq: self.seq,
            data_sha256: self.data_sha256.as_bytes(),
            prev: self.prev.as_bytes(),
        }
    }
}

/// Deepest nesting accepted (`serde_json` refuses past 128).
const MAX_DEPTH: usize = 100;

/// The checked fields of a canonical envelope, or `None` when `env` is not one (see the module
/// doc): the caller falls back to `serde_json`.
pub(super) fn checked(env: &[u8]) -> Option<Fields<'_>> {
    // Valid UTF-8 throughout (`serde_json` refuses an envelope that is not), and no raw control
    // byte anywhere: canonical JSON has no whitespace between tokens, and a string holds control
    // characters only escaped. Printable ASCII, the usual envelope, is both, in one pass that
    // the compiler vectorizes (no early exit); anything else is checked in full.
    let printable_ascii = env
        .iter()
        .fold(true, |ok, &c| ok & (0x20..0x80).contains(&c));
    if !printable_ascii {
        std::str::from_utf8(env).ok()?;
        if env.iter().any(|&c| c < 0x20) {
            return None;
        }
    }
    let mut s = Scanner {
        b: env,
        i: 0,
        quote_or_escape: QuoteOrEscape::new(),
    };
    s.eat(b'{')?;
    let (mut v, mut chain, mut seq, mut data_sha256, mut prev) = (None, None, None, None, None);
    let mut last_key: &[u8] = &[];
    let mut first = true;
    loop {
        if s.peek()? == b'}' && first {
            s.i += 1;
            break;
        }
        let key = s.plain_string()?;
        if !first && !ascending(last_key, key) {
            return None;
        }
        (first, last_key) = (false, key);
        s.eat(b':')?;
        // A string field with an escape (or not a string) is left to the general parser.
        match key {
            b"v" => v = Some(u32::try_from(s.uint()?).ok()?),
            b"seq" => seq = Some(s.uint()?),
            b"chain" => chain = Some(s.plain_string()?),
            b"data_sha256" => data_sha256 = Some(s.plain_string()?),
            b"prev" => prev = Some(s.plain_string()?),
            _ => s.value(0)?,
        }
        match s.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    if s.i != env.len() {
        return None;
    }
    Some(Fields {
        v: v?,
        chain: chain?,
        seq: seq?,
        data_sha256: data_sha256?,
        prev: prev?,
    })
}

/// Whether `a < b` byte-wise: the order of JCS member names (RFC 8785 §3.2.3) as [`checked`]
/// meets them, names of a few bytes, compared without a call to `memcmp`.
fn ascending(a: &[u8], b: &[u8]) -> bool {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// Finds the end of a string or its next escape. On x86-64, memchr's SSE2 search called
/// directly (SSE2 is always there, so there is no dispatch per call, and it looks at 16 bytes a
/// step); elsewhere its portable word-at-a-time search. An envelope holds a dozen strings of a
/// few to 64 bytes.
#[derive(Clone, Copy)]
struct QuoteOrEscape {
    #[cfg(target_arch = "x86_64")]
    sse2: Option<memchr::arch::x86_64::sse2::memchr::Two>,
    portable: memchr::arch::all::memchr::Two,
}

impl QuoteOrEscape {
    fn new() -> Self {
        QuoteOrEscape {
            #[cfg(target_arch = "x86_64")]
            sse2: memchr::arch::x86_64::sse2::memchr::Two::new(b'"', b'\\'),
            portable: memchr::arch::all::memchr::Two::new(b'"', b'\\'),
        }
    }

    fn find(&self, haystack: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(sse2) = &self.sse2 {
            return sse2.find(haystack);
        }
        self.portable.find(haystack)
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    /// Finds the end of a string or its next escape.
    quote_or_escape: QuoteOrEscape,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// A string without escapes (a key, or a field the walk reads), returned without its
    /// quotes (its bytes were checked as UTF-8 before the scan).
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        let escaped = self.string()?;
        (!escaped).then(|| &self.b[start + 1..self.i - 1])
    }

    /// A JSON integer without sign, fraction or exponent, as `u64`; `None` past `u64::MAX` (as
    /// `serde_json` refuses it for a `u64` field) or for any other value.
    fn uint(&mut self) -> Option<u64> {
        let start = self.i;
        self.number()?;
        let raw = &self.b[start..self.i];
        if raw.is_empty() {
            return None;
        }
        raw.iter().try_fold(0u64, |n, &c| {
            let digit = c.checked_sub(b'0').filter(|d| *d <= 9)?;
            n.checked_mul(10)?.checked_add(u64::from(digit))
        })
    }

    /// A string with only the escapes JSON defines ([`checked`] refused raw control bytes
    /// before the scan); whether it held an escape.
    fn string(&mut self) -> Option<bool> {
        self.eat(b'"')?;
        let mut escaped = false;
        loop {
            let rest = self.b.get(self.i..)?;
            let at = self.quote_or_escape.find(rest)?;
            self.i += at + 1;
            if rest[at] == b'"' {
                return Some(escaped);
            }
            escaped = true;
            match self.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    for _ in 0..4 {
                        if !self.next()?.is_ascii_hexdigit() {
                            return None;
                        }
                    }
                }
                _ => return None,
            }
        }
    }

    /// Any JSON value, without whitespace.
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => {
                self.i += 1;
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.eat(b':')?;
                    self.value(depth + 1)?;
                    match self.next()? {
                        b',' => {}
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    match self.next()? {
                        b',' => {}
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What `serde_json` reads of the same bytes (the verify walk's general path).
    fn by_serde(env: &[u8]) -> Option<(u32, String, u64, String, String)> {
        let c: Parsed<'_> = serde_json::from_slice(env).ok()?;
        Some(fields(c.fields()))
    }

    fn fields(f: Fields<'_>) -> (u32, String, u64, String, String) {
        (
            f.v,
            String::from_utf8_lossy(f.chain).into_owned(),
            f.seq,
            String::from_utf8_lossy(f.data_sha256).into_owned(),
            String::from_utf8_lossy(f.prev).into_owned(),
        )
    }

    fn envelope() -> Vec<u8> {
        let v = serde_json::json!({
            "v": 1, "chain": "tenant:01a23ac5-f2a7-7583-93ab-0acdc10be243", "seq": 42,
            "ts": "2026-11-21T10:04:05.123456Z", "action": "tenant.suspended.v1",
            "actor": {"kind": "operator", "id": "ops@example.com"},
            "target": {"kind": "tenant", "id": "01a23ac5"},
            "tenant_id": "01a23ac5-f2a7-7583-93ab-0acdc10be243",
            "data_sha256": "ab".repeat(32), "prev": "cd".repeat(32),
        });
        crate::audit::canonical::to_vec(&v).unwrap_or_default()
    }

    #[test]
    fn a_written_envelope_is_read_without_the_general_parser() {
        let env = envelope();
        let f = checked(&env).map(fields);
        assert!(f.is_some());
        assert_eq!(f, by_serde(&env));
        // Beyond printable ASCII (the full UTF-8 check), and with escapes in a string.
        let env = String::from_utf8(envelope()).unwrap_or_default();
        let other = env.replacen("ops@example.com", "zoë\\\"\\u00e9@example.com", 1);
        let f = checked(other.as_bytes()).map(fields);
        assert!(f.is_some(), "{other}");
        assert_eq!(f, by_serde(other.as_bytes()));
        // Long strings, with escapes after their first kilobyte; cut short, refused.
        for pad in [900, 1030, 3000] {
            let long = env.replacen(
                "ops@example.com",
                &format!("{}\\\"{}", "x".repeat(pad), "y\\n".repeat(40)),
                1,
            );
            let f = checked(long.as_bytes()).map(fields);
            assert!(f.is_some(), "{pad}");
            assert_eq!(f, by_serde(long.as_bytes()));
            let unterminated = &long[..long.len() - 30];
            assert_eq!(checked(unterminated.as_bytes()), None);
        }
        // The largest seq there is, read by hand as serde reads it.
        let max = env.replacen("\"seq\":42", "\"seq\":18446744073709551615", 1);
        let f = checked(max.as_bytes()).map(fields);
        assert_eq!(f.as_ref().map(|f| f.2), Some(u64::MAX));
        assert_eq!(f, by_serde(max.as_bytes()));
    }

    #[test]
    fn anything_but_the_canonical_form_goes_to_the_general_parser() {
        let env = String::from_utf8(envelope()).unwrap_or_default();
        for bad in [
            env.replacen(',', ", ", 1),              // whitespace
            env.replacen("\"action\"", "\"zz\"", 1), // keys out of order
            env.replacen("\"seq\":42", "\"seq\":42.0", 1),
            env.replacen("\"seq\":42", "\"seq\":042", 1),
            env.replacen("\"v\":1", "\"v\":-1", 1),
            env.replacen("\"seq\":42", "\"seq\":18446744073709551616", 1), // past u64
            env.replacen("tenant:", "tenant\\u003a", 1),                   // an escaped chain
            env.replacen("operator", "op\u{1}erator", 1),                  // a raw control byte
            env.replacen("operator", "op\\qerator", 1),                    // an undefined escape
            format!("{env} "),
            env.replacen("\"v\":1", "\"v\":1,\"v\":1", 1), // a key twice
            env.replacen(",\"v\":1", "", 1),               // a member missing
        ] {
            assert_eq!(checked(bad.as_bytes()), None, "{bad}");
        }
        let mut not_utf8 = envelope();
        if let Some(i) = not_utf8.windows(8).position(|w| w == b"operator") {
            not_utf8[i] = 0xff;
        }
        assert_eq!(checked(&not_utf8), None);
    }

    proptest! {
        /// Whatever bytes an envelope is changed into, the scanner either hands it to the
        /// general parser or reads what that parser reads.
        #[test]
        fn the_scanner_reads_what_serde_reads(
            at in 0usize..400, with in any::<u8>(), cut in 0usize..400, insert in any::<bool>()
        ) {
            let mut env = envelope();
            let at = at % env.len();
            if insert { env.insert(at, with) } else { env[at] = with }
            env.truncate(env.len() - cut.min(env.len()) / 50);
            if let Some(f) = checked(&env) {
                prop_assert_eq!(Some(fields(f)), by_serde(&env));
            }
        }
    }
}
