//! The one codec of stored records: postcard (compact, not self-describing).
//!
//! Every stored record is a versioned enum (`enum TenantRecord { V1(TenantV1) }`), so a future
//! field becomes a new variant and an old file still decodes. postcard writes the variant index
//! as a varint, which is the record's version tag. Because postcard is not self-describing, stored
//! records never hold `serde_json::Value`, internally tagged enums, `flatten` or
//! `skip_serializing_if` (CRATES.md).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::error::{Error, Result};

/// Encodes a record. Encoding into a `Vec` cannot fail for the types we store; should it ever,
/// the error surfaces as a storage error rather than a panic.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| Error::Corrupt {
        table: "(encode)",
        detail: e.to_string(),
    })
}

/// Decodes a record read from `table`; a failure names the table and the decoder's complaint.
pub fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Corrupt {
        table,
        detail: e.to_string(),
    })
}

/// Decodes a record whose strings borrow from `bytes` (a `&'a str` field reads in place): for
/// hot read paths that serialize a row straight from the store's page. The borrowed type must
/// mirror the stored one field for field.
///
/// Errors: as [`decode`].
pub fn decode_borrowed<'a, T: Deserialize<'a>>(table: &'static str, bytes: &'a [u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Corrupt {
        table,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Rec {
        V1 { a: u32, b: String },
        V2 { a: u32, b: String, c: Option<i64> },
    }

    #[test]
    fn a_v1_record_still_decodes_after_a_v2_variant_is_added() {
        let v1 = encode(&Rec::V1 {
            a: 7,
            b: "x".into(),
        })
        .unwrap();
        assert_eq!(
            decode::<Rec>("t", &v1).unwrap(),
            Rec::V1 {
                a: 7,
                b: "x".into()
            }
        );
    }

    #[test]
    fn garbage_is_a_corrupt_error_naming_the_table() {
        let err = decode::<Rec>("tenants", &[9, 9, 9]).unwrap_err();
        assert!(err.to_string().contains("tenants"), "{err}");
    }
}
