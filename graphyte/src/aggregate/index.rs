//! A shard's index: its series, found by name. The name is hashed once
//! per lookup: the registry picks the shard from the hash's high bits and
//! the table probes with the same hash (a `HashSet` would hash the name
//! again). The name is stored once, in the series.

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::Series;

/// The series of one shard.
pub(super) struct Index {
    table: HashTable<Series>,
    /// The registry's hasher (the same for every shard).
    hasher: RandomState,
}

impl Index {
    pub(super) fn new(hasher: RandomState) -> Index {
        Index {
            table: HashTable::new(),
            hasher,
        }
    }

    /// The hash of `name`, as [`find`](Self::find) and
    /// [`insert`](Self::insert) take it.
    pub(super) fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    /// The series named `name`, whose hash is `hash`.
    #[inline]
    pub(super) fn find(&self, hash: u64, name: &str) -> Option<&Series> {
        self.table.find(hash, |s| s.name() == name)
    }

    /// The series named `name` (hashing it here).
    pub(super) fn get(&self, name: &str) -> Option<&Series> {
        self.find(self.hash(name), name)
    }

    /// Adds `series`, whose name's hash is `hash` and which the index
    /// does not hold yet (the caller looked, under the write lock).
    pub(super) fn insert(&mut self, hash: u64, series: Series) {
        let hasher = &self.hasher;
        self.table
            .insert_unique(hash, series, |s| hasher.hash_one(s.name()));
    }

    /// Removes `series` itself (not another series of its name); says
    /// whether it was there.
    pub(super) fn remove(&mut self, series: &Series) -> bool {
        match self
            .table
            .find_entry(self.hash(series.name()), |s| s.same(series))
        {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Series> {
        self.table.iter()
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Gives memory back, keeping room for `capacity` series.
    pub(super) fn shrink_to(&mut self, capacity: usize) {
        let hasher = &self.hasher;
        self.table
            .shrink_to(capacity, |s| hasher.hash_one(s.name()));
    }
}
