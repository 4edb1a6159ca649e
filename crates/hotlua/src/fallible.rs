//! Growing collections without aborting the process.
//!
//! Rust's collections abort the process when the system refuses memory. Every collection of
//! hotlua that grows with the program it reloads (the planner's maps and lists for a big
//! module, the tables the `inplace` engine hands its C scan) grows through these instead,
//! which answer Lua's "not enough memory" error: the reload fails and changes nothing.
//! Fixed-size values (a message, one handle) are still allocated the usual way.

use std::collections::HashMap;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash};

/// The error a refused allocation gives: Lua's own.
pub(crate) fn out_of_memory() -> mlua::Error {
    mlua::Error::MemoryError("not enough memory".to_owned())
}

/// A collection that can make room for more elements without aborting.
pub(crate) trait Grow {
    /// Makes room for `additional` more elements, or fails with "not enough memory".
    fn grow_by(&mut self, additional: usize) -> mlua::Result<()>;

    /// Makes room for one more element, or fails with "not enough memory".
    fn grow(&mut self) -> mlua::Result<()> {
        self.grow_by(1)
    }
}

impl<T> Grow for Vec<T> {
    fn grow_by(&mut self, additional: usize) -> mlua::Result<()> {
        self.try_reserve(additional).map_err(|_| out_of_memory())
    }
}

impl<K: Eq + Hash, V, S: BuildHasher> Grow for HashMap<K, V, S> {
    fn grow_by(&mut self, additional: usize) -> mlua::Result<()> {
        self.try_reserve(additional).map_err(|_| out_of_memory())
    }
}

impl<T: Eq + Hash, S: BuildHasher> Grow for HashSet<T, S> {
    fn grow_by(&mut self, additional: usize) -> mlua::Result<()> {
        self.try_reserve(additional).map_err(|_| out_of_memory())
    }
}

/// `Vec::push` that fails with "not enough memory" instead of aborting.
pub(crate) trait TryPush<T> {
    fn try_push(&mut self, item: T) -> mlua::Result<()>;
}

impl<T> TryPush<T> for Vec<T> {
    fn try_push(&mut self, item: T) -> mlua::Result<()> {
        self.grow()?;
        self.push(item);
        Ok(())
    }
}

/// The items of `iter` in a new vector, or "not enough memory".
pub(crate) fn collect<T>(iter: impl IntoIterator<Item = T>) -> mlua::Result<Vec<T>> {
    let iter = iter.into_iter();
    let mut vec = Vec::new();
    vec.grow_by(iter.size_hint().0)?;
    for item in iter {
        vec.try_push(item)?;
    }
    Ok(vec)
}

/// The items of `iter`, each with its sort key, sorted by key (equal keys in any order), or
/// "not enough memory". Sorting in place allocates nothing.
pub(crate) fn sorted_by_key<T, K: Ord>(
    iter: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
) -> mlua::Result<Vec<(K, T)>> {
    let mut keyed = collect(iter.into_iter().map(|item| (key(&item), item)))?;
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(keyed)
}

/// `vec![value; len]`, or "not enough memory".
#[cfg(hotlua_inplace)]
pub(crate) fn filled<T: Clone>(value: T, len: usize) -> mlua::Result<Vec<T>> {
    let mut vec = Vec::new();
    vec.grow_by(len)?;
    vec.resize(len, value);
    Ok(vec)
}
