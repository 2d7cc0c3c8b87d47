//! Order-preserving key encoding.
//!
//! Every table is `&[u8] -> &[u8]`; keys are built here so that byte order equals the order we
//! want to scan in: integers big-endian (signed ones with the sign bit flipped), UUIDv7 ids as
//! their 16 bytes (which sort by creation time), and strings with inner `0x00` escaped as
//! `0x00 0xFF` and terminated by `0x00 0x00`, so a shorter string sorts before its extensions
//! and the next component (which may start with any byte) never bleeds into the string. (The
//! FoundationDB tuple layer ends strings with one `0x00` because a type byte, never `0xFF`,
//! follows; our components are untyped, hence the two-byte terminator.)

use uuid::Uuid;

/// Builds a key component by component.
#[derive(Default, Clone, Debug)]
pub struct Key(Vec<u8>);

impl Key {
    /// An empty key.
    pub fn new() -> Key {
        Key(Vec::with_capacity(48))
    }
    /// Appends one byte (index ids, enum tags).
    pub fn u8(mut self, v: u8) -> Key {
        self.0.push(v);
        self
    }
    /// Appends a `u64` big-endian.
    pub fn u64(mut self, v: u64) -> Key {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends an `i64` so that negative values sort first (sign bit flipped, big-endian).
    pub fn i64(mut self, v: i64) -> Key {
        self.0
            .extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
        self
    }
    /// Appends the 16 bytes of a UUID.
    pub fn uuid(mut self, v: &Uuid) -> Key {
        self.0.extend_from_slice(v.as_bytes());
        self
    }
    /// Appends raw bytes of a fixed width known to the reader.
    pub fn raw(mut self, v: &[u8]) -> Key {
        self.0.extend_from_slice(v);
        self
    }
    /// Appends an escaped string and its two-byte terminator.
    pub fn str(mut self, v: &str) -> Key {
        for &b in v.as_bytes() {
            self.0.push(b);
            if b == 0 {
                self.0.push(0xFF);
            }
        }
        self.0.extend_from_slice(&[0, 0]);
        self
    }
    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    /// The encoded bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Reads back what [`Key`] wrote; every method returns `None` on a short or malformed key.
pub struct KeyReader<'a>(&'a [u8]);

impl<'a> KeyReader<'a> {
    /// Starts reading `bytes`.
    pub fn new(bytes: &'a [u8]) -> KeyReader<'a> {
        KeyReader(bytes)
    }
    /// Reads one byte.
    pub fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    /// Reads a big-endian `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_at_checked(8)?;
        self.0 = rest;
        Some(u64::from_be_bytes(head.try_into().ok()?))
    }
    /// Reads an `i64` written by [`Key::i64`].
    pub fn i64(&mut self) -> Option<i64> {
        self.u64().map(|v| (v ^ (1 << 63)) as i64)
    }
    /// Reads a UUID.
    pub fn uuid(&mut self) -> Option<Uuid> {
        let (head, rest) = self.0.split_at_checked(16)?;
        self.0 = rest;
        Uuid::from_slice(head).ok()
    }
    /// Reads `n` raw bytes.
    pub fn raw(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    /// Reads a string written by [`Key::str`].
    pub fn str(&mut self) -> Option<String> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let b = *self.0.get(i)?;
            if b == 0 {
                match self.0.get(i + 1)? {
                    0xFF => {
                        out.push(0);
                        i += 2;
                        continue;
                    }
                    0 => {
                        self.0 = &self.0[i + 2..];
                        return String::from_utf8(out).ok();
                    }
                    _ => return None,
                }
            }
            out.push(b);
            i += 1;
        }
    }
    /// What is left unread.
    pub fn rest(&self) -> &'a [u8] {
        self.0
    }
}

/// The smallest key greater than every key that starts with `prefix`, or `None` when no such
/// key exists (the prefix is all `0xFF`). Used as the exclusive upper bound of a prefix scan.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn string_keys_sort_like_the_strings(a in ".{0,12}", b in ".{0,12}", x in any::<u64>(), y in any::<u64>()) {
            let ka = Key::new().str(&a).u64(x).into_bytes();
            let kb = Key::new().str(&b).u64(y).into_bytes();
            prop_assert_eq!(ka.cmp(&kb), (a.as_bytes(), x).cmp(&(b.as_bytes(), y)));
        }

        #[test]
        fn signed_keys_sort_like_the_numbers(a in any::<i64>(), b in any::<i64>()) {
            let ka = Key::new().i64(a).into_bytes();
            let kb = Key::new().i64(b).into_bytes();
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(KeyReader::new(&ka).i64(), Some(a));
        }

        #[test]
        fn strings_round_trip(s in ".{0,20}") {
            let k = Key::new().str(&s).u8(7).into_bytes();
            let mut r = KeyReader::new(&k);
            prop_assert_eq!(r.str(), Some(s));
            prop_assert_eq!(r.u8(), Some(7));
        }
    }

    #[test]
    fn a_string_ending_in_nul_never_collides_with_the_next_component() {
        // Found by the property test: with a one-byte terminator, ("", 0xFF..) sorted after
        // ("\0", 0) although "" < "\0".
        let a = Key::new().str("").u64(u64::MAX).into_bytes();
        let b = Key::new().str("\0").u64(0).into_bytes();
        assert!(a < b);
        let mut r = KeyReader::new(&b);
        assert_eq!(r.str().as_deref(), Some("\0"));
        assert_eq!(r.u64(), Some(0));
    }

    #[test]
    fn prefix_end_bounds_every_extension() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
    }
}
