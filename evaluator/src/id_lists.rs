//! ID lists: the large segments Statsig keeps outside the ruleset, named by `in_segment_list`
//! conditions and synced by server SDKs on their own schedule. Members are kept as Statsig's
//! list files hold them, the first 8 characters of base64(SHA-256(unit id)), so a list built
//! from raw ids and a list read from a file are the same thing, and no raw id is held.

use ahash::{AHashMap, AHashSet};

/// A set of named ID lists, built off the request path and then shared read-only.
#[derive(Debug, Default)]
pub struct IdLists {
    lists: AHashMap<Box<str>, AHashSet<[u8; 8]>>,
}

impl IdLists {
    /// Adds (or replaces) the list `name` with members given as raw unit ids.
    pub fn insert_ids<I: AsRef<str>>(&mut self, name: &str, ids: impl IntoIterator<Item = I>) {
        let keys = ids
            .into_iter()
            .map(|id| crate::hash::id_list_key(id.as_ref()))
            .collect();
        self.insert_keys(name, keys);
    }

    /// Adds (or replaces) the list `name` with members already hashed
    /// ([`crate::hash::id_list_key`]).
    pub fn insert_keys(&mut self, name: &str, keys: AHashSet<[u8; 8]>) {
        self.lists.insert(name.into(), keys);
    }

    /// Whether `unit_id` is in the list `name` (false when there is no such list, as in
    /// Statsig's SDKs).
    pub fn contains(&self, name: &str, unit_id: &str) -> bool {
        self.lists
            .get(name)
            .is_some_and(|keys| keys.contains(&crate::hash::id_list_key(unit_id)))
    }

    /// How many lists there are.
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// Whether there are no lists.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ids_and_their_keys_are_the_same_members() {
        let mut lists = IdLists::default();
        lists.insert_ids("raw", ["u1", "u2"]);
        lists.insert_keys(
            "hashed",
            [crate::hash::id_list_key("u1")].into_iter().collect(),
        );
        assert!(lists.contains("raw", "u1") && lists.contains("raw", "u2"));
        assert!(lists.contains("hashed", "u1") && !lists.contains("hashed", "u2"));
        assert!(!lists.contains("missing", "u1"));
        assert_eq!(lists.len(), 2);
    }
}
