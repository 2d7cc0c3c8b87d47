//! Ids: UUIDv7 (API.md "IDs are UUIDv7 strings"), taken from the request's `now` so that ids sort
//! by creation time even when time is simulated (tests, the demo replay). Within one millisecond
//! the order is random, which the directory tolerates: it sorts by id, and ids are unique.

use chrono::{DateTime, Utc};
use uuid::{NoContext, Timestamp, Uuid};

/// A new UUIDv7 for an object created at `now`.
pub fn new_id(now: DateTime<Utc>) -> Uuid {
    let secs = u64::try_from(now.timestamp()).unwrap_or(0);
    Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        secs,
        now.timestamp_subsec_nanos(),
    ))
}

/// Parses a UUID from a path or query value.
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    Uuid::try_parse(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_their_creation_time() {
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let a = new_id(t0);
        let b = new_id(t0 + chrono::Duration::milliseconds(2));
        assert!(a < b);
        assert_eq!(a.get_version_num(), 7);
    }
}
