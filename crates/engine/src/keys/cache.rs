//! The node's copy of the store's keys (hashes only), refreshed by the engine.

use std::collections::HashMap;
use std::sync::RwLock;

use baton_core::Timestamp;
use baton_store::StoredKey;

/// The node's copy of the store's keys.
#[derive(Default)]
pub(crate) struct KeyCache {
    pub(super) keys: RwLock<HashMap<String, StoredKey>>,
    /// The newest `updated_at` seen: the next refresh reads from there (inclusive, so an
    /// update in the same millisecond is not missed).
    pub(super) seen_until: RwLock<Option<Timestamp>>,
}

impl KeyCache {
    pub(super) fn upsert(&self, keys: Vec<StoredKey>) {
        if keys.is_empty() {
            return;
        }
        let newest = keys.iter().map(|k| k.updated_at).max();
        let mut map = self.keys.write().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            // A refresh that read a key before this node changed it must not bring the
            // old state back: a change always moves `updated_at` on (the store makes it
            // strictly increase per key).
            match map.get(&k.key_id) {
                Some(have) if have.updated_at >= k.updated_at => {}
                _ => {
                    map.insert(k.key_id.clone(), k);
                }
            }
        }
        let mut seen = self.seen_until.write().unwrap_or_else(|e| e.into_inner());
        *seen = (*seen).max(newest);
    }

    pub(super) fn get(&self, key_id: &str) -> Option<StoredKey> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_id)
            .cloned()
    }

    pub(super) fn len(&self) -> usize {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}
