//! [`Indexed`]: values by the identity of the Lua object they describe, kept in the order they
//! were added.
//!
//! The planner holds a few values for each function of a module (its mlua handle, its path,
//! what it is), ten thousand of each for a big module. In a hash map they are dropped in hash
//! order, and each mlua handle dropped writes its slot of mlua's reference stack: at random
//! places of a stack of megabytes, a cache miss each (a third of the planner's time at the
//! end of a reload of 10,000 functions went to that). Kept in a list, they are dropped in the
//! order they were made, which walks that stack from one end to the other.

use rustc_hash::FxHashMap;

use crate::fallible::{Grow, TryPush};
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

    /// Adds `value` for `identity` unless it has one already; true if it was added.
    pub(super) fn insert(&mut self, identity: usize, value: T) -> Result<bool> {
        if self.contains(identity) {
            return Ok(false);
        }
        self.at.grow()?;
        self.items.try_push((identity, value))?;
        self.at.insert(identity, self.items.len() - 1);
        Ok(true)
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
