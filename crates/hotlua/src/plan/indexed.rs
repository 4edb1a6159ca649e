//! [`Indexed`]: values by the identity of the Lua object they describe, kept in the order they
//! were added.
//!
//! The planner holds a few values for each function of a module (its mlua handle, its path,
//! what it is), ten thousand of each for a big module. In a hash map they are dropped in hash
//! order, and each mlua handle dropped writes its slot of mlua's reference stack: at random
//! places of a stack of megabytes, a cache miss each (a third of the planner's time at the
//! end of a reload of 10,000 functions went to that). Kept in a list, they are dropped in the
//! order they were made, which walks that stack from one end to the other.

use std::cell::Cell;
use std::collections::hash_map::Entry;

use rustc_hash::FxHashMap;

use crate::fallible::Grow;
use crate::Result;

/// A map from identities (`to_pointer` of a Lua object) to values, iterated and dropped in
/// the order the values were added.
pub(super) struct Indexed<T> {
    at: FxHashMap<usize, usize>,
    items: Vec<(usize, T)>,
}

impl<T> Default for Indexed<T> {
    fn default() -> Self {
        Indexed {
            at: FxHashMap::default(),
            items: Vec::new(),
        }
    }
}

impl<T> Indexed<T> {
    pub(super) fn contains(&self, identity: usize) -> bool {
        self.at.contains_key(&identity)
    }

    pub(super) fn get(&self, identity: usize) -> Option<&T> {
        self.at.get(&identity).map(|&at| &self.items[at].1)
    }

    /// [`Indexed::get`] for a walk that meets values mostly in the order they were added:
    /// the value `last` found, or the one after it, is tried before the hash map, so such a
    /// walk reads the values in order and hashes nothing. `last` is updated.
    pub(super) fn get_in_order(&self, identity: usize, last: &Cell<usize>) -> Option<&T> {
        let at = [last.get(), last.get().wrapping_add(1)]
            .into_iter()
            .find(|&at| self.items.get(at).is_some_and(|(id, _)| *id == identity))
            .or_else(|| self.at.get(&identity).copied())?;
        last.set(at);
        Some(&self.items[at].1)
    }

    /// Adds `value` for `identity` unless it has one already; true if it was added.
    pub(super) fn insert(&mut self, identity: usize, value: T) -> Result<bool> {
        self.at.grow()?;
        self.items.grow()?;
        // One probe of the map, not a lookup and then an insertion.
        match self.at.entry(identity) {
            Entry::Occupied(_) => Ok(false),
            Entry::Vacant(at) => {
                at.insert(self.items.len());
                self.items.push((identity, value));
                Ok(true)
            }
        }
    }

    /// Makes room for `additional` more values at once.
    pub(super) fn reserve(&mut self, additional: usize) -> Result<()> {
        self.at.grow_by(additional)?;
        Ok(self.items.grow_by(additional)?)
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Every identity and its value, in the order they were added.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.items
            .iter()
            .map(|(identity, value)| (*identity, value))
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_in_order_finds_every_value_in_any_order() {
        let mut indexed = Indexed::default();
        for identity in [10, 20, 30, 40] {
            indexed.insert(identity, identity * 2).unwrap();
        }
        let last = Cell::new(0);
        // In order, then repeated, backwards, skipping, and an identity never added.
        for identity in [10, 20, 30, 30, 40, 20, 40, 10] {
            assert_eq!(indexed.get_in_order(identity, &last), Some(&(identity * 2)));
            assert_eq!(indexed.items[last.get()].0, identity);
        }
        assert_eq!(indexed.get_in_order(50, &last), None);
        assert_eq!(
            indexed.items[last.get()].0,
            10,
            "a miss leaves `last` where it was"
        );
        let fresh = Cell::new(usize::MAX);
        assert_eq!(indexed.get_in_order(10, &fresh), Some(&20));
    }

    #[test]
    fn an_identity_keeps_its_first_value() {
        let mut indexed = Indexed::default();
        assert!(indexed.insert(7, "first").unwrap());
        assert!(indexed.insert(8, "other").unwrap());
        assert!(!indexed.insert(7, "second").unwrap());
        assert_eq!(
            (indexed.get(7), indexed.get(8)),
            (Some(&"first"), Some(&"other"))
        );
        let order: Vec<_> = indexed.iter().collect();
        assert_eq!(order, [(7, &"first"), (8, &"other")]);
    }
}
