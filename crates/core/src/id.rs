//! Task ids: UUIDv7 layout (time-ordered, so ids sort by creation) whose 74 non-time bits
//! all come from the thread-local CSPRNG.
//!
//! `uuid`'s own `now_v7` keeps a counter in those bits to stay monotonic within a
//! millisecond, which would make a neighbour's id guessable from one's own. Ids here are
//! capabilities (knowing one lets you poll and cancel until auth scopes it), so every
//! random bit stays random.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::Timestamp;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(Uuid);

impl TaskId {
    pub fn generate(now: Timestamp) -> Self {
        let mut random = [0u8; 10];
        rand::rng().fill_bytes(&mut random);
        let ms = u64::try_from(now.as_millis()).unwrap_or(0);
        TaskId(uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid())
    }

    /// The smallest id a task created at `at` can have: ids of tasks created at or after
    /// `at` are at least this, those of tasks created before are less (a time window of
    /// tasks is a range of ids).
    pub fn first_at(at: Timestamp) -> Self {
        let ms = u64::try_from(at.as_millis()).unwrap_or(0);
        TaskId(uuid::Builder::from_unix_timestamp_millis(ms, &[0; 10]).into_uuid())
    }

    /// The same id every time for the same `at` and `name`: what a process makes once
    /// (a schedule's tick), whichever process makes it, has one id. Ordered by `at` like
    /// generated ids; the rest is a hash of `name`.
    pub fn derived(at: Timestamp, name: &str) -> Self {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("{}\0{name}", at.as_millis()).as_bytes());
        let mut bits = [0u8; 10];
        bits.copy_from_slice(&digest[..10]);
        let ms = u64::try_from(at.as_millis()).unwrap_or(0);
        TaskId(uuid::Builder::from_unix_timestamp_millis(ms, &bits).into_uuid())
    }

    pub fn from_uuid(u: Uuid) -> Self {
        TaskId(u)
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

/// Why a string is not a task id.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a valid task id (expected a UUID such as 019a8a4e-7c1d-7b22-9f3e-2c4d5e6f7a8b)"
)]
pub struct ParseTaskIdError(pub String);

impl FromStr for TaskId {
    type Err = ParseTaskIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shown: String = s.chars().take(64).collect();
        Uuid::try_parse(s)
            .map(TaskId)
            .map_err(|_| ParseTaskIdError(shown))
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn ids_of_a_time_window_are_a_range() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        let first = TaskId::first_at(t);
        for _ in 0..1000 {
            let at = TaskId::generate(t);
            assert!(first <= at);
            assert!(at < TaskId::first_at(Timestamp::from_millis(t.as_millis() + 1)));
            assert!(TaskId::generate(Timestamp::from_millis(t.as_millis() - 1)) < first);
            // As text too (SQLite keeps ids as hyphenated lowercase text).
            assert!(first.to_string() <= at.to_string());
        }
    }
}

impl schemars::JsonSchema for TaskId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TaskId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "uuid"})
    }
}

impl Serialize for TaskId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TaskId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_do_not_share_random_bits() {
        let a = TaskId::generate(Timestamp::from_millis(1_000));
        let b = TaskId::generate(Timestamp::from_millis(2_000));
        assert!(a < b);
        assert_eq!(a.as_uuid().get_version_num(), 7);
        // Two ids in the same millisecond: their random tails must differ in many bits,
        // not be counter neighbours.
        let c = TaskId::generate(Timestamp::from_millis(3_000));
        let d = TaskId::generate(Timestamp::from_millis(3_000));
        let tail = |t: &TaskId| u128::from_be_bytes(*t.as_uuid().as_bytes()) & ((1u128 << 62) - 1);
        assert!((tail(&c) ^ tail(&d)).count_ones() > 8);
    }

    #[test]
    fn parse_round_trip_and_errors() {
        let a = TaskId::generate(Timestamp::now());
        assert_eq!(a.to_string().parse::<TaskId>().unwrap(), a);
        let err = "not-an-id".parse::<TaskId>().unwrap_err();
        assert!(err.to_string().contains("not-an-id"));
    }
}
