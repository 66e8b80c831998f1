//! The facade's shortcut: counters found by the hash of the `metrics` key
//! that named them, so that a `metrics::counter!` call on a key seen
//! before builds no Graphite name. The caller verifies a hit against the
//! counter's name (see `recorder::names::key_is_name`), so a hash that two
//! keys share finds nothing wrong.
//!
//! What keeps it bounded and correct:
//! * **At most one key per counter** (the counter keeps the hash of the key
//!   it is filed under, set once): keys that clean up to one Graphite name
//!   add no entries past the first, so there are never more entries than
//!   live counters, within `max_series`.
//! * **Filed only while the counter is registered**: under its shard's read
//!   lock, which a retirement holds for writing, so a counter is never
//!   filed once its removal began.
//! * **Removed with the counter**, by the retirement that removes it from
//!   its shard (under that shard's write lock); a retired counter is never
//!   returned by a lookup meanwhile. An entry holds a `Weak`: the registry
//!   alone keeps a series alive, as for every series.
//!
//! Lock order: a series shard, then a key shard; a lookup takes a key
//! shard alone.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock, Weak};

use hashbrown::HashTable;

use super::{Counter, Registry, Series, SHARDS};
use crate::sync::{read, write};

/// One key shard: counters by key tag.
pub(super) type KeyShard = HashTable<(u32, Weak<Counter>)>;

/// The 32 bits of a key's hash that a counter keeps (never 0: 0 is "not
/// filed"), so that its entry can be found again at its removal without
/// making the counter bigger than a cache line.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn tag(key_hash: u64) -> u32 {
    let folded = (key_hash ^ (key_hash >> 32)) as u32;
    folded.max(1)
}

/// The table hash of a tag: spread over 64 bits (the table probes with
/// the low bits and tags slots with the high ones).
fn spread(tag: u32) -> u64 {
    u64::from(tag).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The key shards of a new registry.
pub(super) fn key_shards() -> Box<[RwLock<KeyShard>]> {
    (0..SHARDS).map(|_| RwLock::new(HashTable::new())).collect()
}

impl Registry {
    fn key_shard(&self, spread: u64) -> &RwLock<KeyShard> {
        &self.keys[(spread >> 60) as usize % SHARDS]
    }

    /// The live counter filed under the key hash `key_hash` whose name
    /// `matches`, if any.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn counter_by_key(
        &self,
        key_hash: u64,
        matches: impl Fn(&str) -> bool,
    ) -> Option<Arc<Counter>> {
        let tag = tag(key_hash);
        let spread = spread(tag);
        let shard = read(self.key_shard(spread));
        let mut found = None;
        shard.find(spread, |(t, c)| {
            if *t != tag {
                return false;
            }
            // Upgrading is the handle's reference (what a clone would be).
            match c.upgrade() {
                Some(c) if !c.life.retired() && matches(c.name()) => {
                    found = Some(c);
                    true
                }
                _ => false,
            }
        })?;
        found
    }

    /// Files `counter` under the key hash `key_hash`, unless it is filed
    /// under a key already or is no longer the registered series of its
    /// name.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn file_key(&self, key_hash: u64, counter: &Arc<Counter>) {
        let tag = tag(key_hash);
        if counter.key_tag() != 0 {
            return;
        }
        let (name_hash, shard) = self.locate(counter.name());
        let index = read(shard);
        let registered = matches!(
            index.find(name_hash, counter.name()),
            Some(Series::Counter(c)) if Arc::ptr_eq(c, counter)
        );
        if !registered || counter.life.retired() || !counter.claim_key(tag) {
            return;
        }
        let spread = spread(tag);
        write(self.key_shard(spread)).insert_unique(
            spread,
            (tag, Arc::downgrade(counter)),
            |(t, _)| self::spread(*t),
        );
        drop(index);
    }

    /// Removes the entry of `counter`, removed from its shard (the caller
    /// holds that shard's write lock).
    pub(super) fn forget_key(&self, counter: &Arc<Counter>) {
        let tag = counter.key_tag();
        if tag == 0 {
            return;
        }
        let spread = spread(tag);
        let mut shard = write(self.key_shard(spread));
        if let Ok(entry) = shard.find_entry(spread, |(_, c)| {
            std::ptr::eq(c.as_ptr(), Arc::as_ptr(counter))
        }) {
            entry.remove();
        }
    }

    /// Gives memory back from key shards that are mostly empty.
    pub(super) fn shrink_keys(&self) {
        for shard in self.keys.iter() {
            let mut shard = write(shard);
            let len = shard.len();
            if len * 4 < shard.capacity() {
                shard.shrink_to(len * 2, |(t, _)| spread(*t));
            }
        }
    }

    /// Entries filed (for tests).
    #[cfg(test)]
    pub(super) fn keys_filed(&self) -> usize {
        self.keys.iter().map(|s| read(s).len()).sum()
    }
}

impl Counter {
    /// The tag of the key it is filed under; 0 if none.
    fn key_tag(&self) -> u32 {
        self.key.load(Ordering::Relaxed)
    }

    /// Marks it filed under `tag`; false if it was filed already.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn claim_key(&self, tag: u32) -> bool {
        self.key
            .compare_exchange(0, tag, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::line::LineFormat;
    use crate::timestamp::Timestamp;

    fn drain(r: &Registry, ts: i64) -> usize {
        let format = LineFormat::default();
        r.drain(Timestamp::from(ts), &format, &mut Vec::new(), false)
    }

    #[test]
    fn a_counter_is_filed_under_one_key_and_forgotten_with_it() {
        let r = Registry::default();
        r.configure(100, Duration::from_secs(10));
        let (c, _) = r.expiring_counter("c;k=v").unwrap();
        let is_c = |name: &str| name == "c;k=v";
        assert!(r.counter_by_key(42, is_c).is_none(), "nothing filed yet");
        r.file_key(42, &c);
        let found = r.counter_by_key(42, is_c).unwrap();
        assert!(Arc::ptr_eq(&found, &c));
        assert!(
            r.counter_by_key(42, |_| false).is_none(),
            "a hit is verified"
        );
        assert!(r.counter_by_key(43, is_c).is_none());
        // A second key of the same counter is not filed: at most one entry
        // per counter, so keys cleaning up to one name cannot grow it.
        r.file_key(7, &c);
        assert!(r.counter_by_key(7, is_c).is_none());
        assert_eq!(r.keys_filed(), 1);
        drop(found);

        // Idle: the drain that removes it forgets its key, and the counter
        // goes with the last handle.
        let weak = Arc::downgrade(&c);
        drop(c);
        drain(&r, 100);
        assert_eq!(drain(&r, 110), 0);
        assert_eq!(r.count().live, 0);
        assert_eq!(r.keys_filed(), 0, "forgotten with its counter");
        assert!(weak.upgrade().is_none(), "freed");
        assert!(r.counter_by_key(42, is_c).is_none());
    }

    #[test]
    fn a_counter_no_longer_registered_is_not_filed_nor_found_retired() {
        let r = Registry::default();
        r.configure(100, Duration::from_secs(10));
        let (old, _) = r.expiring_counter("c").unwrap();
        drain(&r, 100);
        assert_eq!(drain(&r, 110), 0, "removed");
        // A handle kept past the removal: filing it would keep it alive.
        r.file_key(42, &old);
        assert_eq!(r.keys_filed(), 0);
        assert!(old.life.retired());

        // Filed, then retired (the removal's first step): not returned.
        let (c, _) = r.expiring_counter("c").unwrap();
        r.file_key(42, &c);
        c.life.retire();
        assert!(r.counter_by_key(42, |_| true).is_none());
    }

    #[test]
    fn tags_are_never_zero() {
        assert_eq!(tag(0), 1);
        assert_eq!(tag(1 << 32 | 1), 1);
        assert_ne!(tag(u64::MAX >> 1), 0);
    }
}
