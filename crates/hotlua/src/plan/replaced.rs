//! [`Replaced`]: every old function of a batch and its new version, in one Lua list.
//!
//! A module of ten thousand functions makes ten thousand pairs: as two mlua handles each they
//! would cost twenty thousand of the handles mlua has room for (about 8000 in all on Lua 5.1
//! and LuaJIT, where such a reload used to fail), and the switching engines read them back
//! into Lua anyway. Here they wait in a Lua table, and a pair becomes handles only when Rust
//! code reads it.

use std::ffi::c_int;

use mlua::{ffi, Function, Lua, Result, Table};
use rustc_hash::FxHashMap;

use super::lua_list::LuaList;

/// Old functions and their new versions: slots `2i + 1` and `2i + 2` of a Lua list hold pair
/// `i` (0-based).
pub(crate) struct Replaced {
    list: LuaList,
    /// For each pair whose closures and prototypes the planner read, their addresses (see
    /// [`Replaced::addresses`]).
    #[cfg(hotlua_inplace)]
    addresses: Vec<Option<PairAddresses>>,
}

/// Where a pair of Lua functions lives, as the planner read it: the addresses of the old and
/// new closures and of their prototypes, and whether both were compiled from the batch's
/// files. A closure's prototype changes only when engine `inplace` retargets it, which comes
/// after planning; the list anchors the closures, and they their prototypes.
#[cfg(hotlua_inplace)]
#[derive(Clone, Copy)]
pub(crate) struct PairAddresses {
    pub old_closure: usize,
    pub old_proto: usize,
    pub new_closure: usize,
    pub new_proto: usize,
    pub from_sources: bool,
}

impl Replaced {
    /// An empty list with room for `pairs` pairs.
    pub(crate) fn new(lua: &Lua, pairs: usize) -> Result<Replaced> {
        Ok(Replaced {
            list: LuaList::new(lua, 2 * pairs)?,
            #[cfg(hotlua_inplace)]
            addresses: Vec::new(),
        })
    }

    /// The addresses of pair `at`, if the planner read them (engine `inplace`'s layout proven,
    /// both Lua functions, not main chunks).
    #[cfg(hotlua_inplace)]
    pub(crate) fn addresses(&self, at: usize) -> Option<PairAddresses> {
        self.addresses.get(at).copied().flatten()
    }

    /// Records the addresses of the pairs (indexed as the pairs).
    #[cfg(hotlua_inplace)]
    pub(super) fn set_addresses(&mut self, addresses: Vec<Option<PairAddresses>>) {
        self.addresses = addresses;
    }

    /// Adds the pair of functions at stack indices `old` and `new` and returns its index, if
    /// the list (at stack index `list`) has room for it ([`LuaList::push_raw`]).
    ///
    /// # Safety
    /// As for [`LuaList::push_raw`].
    pub(super) unsafe fn push_raw(
        &mut self,
        state: *mut ffi::lua_State,
        list: c_int,
        old: c_int,
        new: c_int,
    ) -> Option<usize> {
        self.list
            .push_raw(state, list, &[old, new])
            .then(|| self.len() - 1)
    }

    /// Adds a pair and returns its index.
    pub(crate) fn push(&mut self, old: &Function, new: &Function) -> Result<usize> {
        self.list.push(old)?;
        self.list.push(new)?;
        Ok(self.len() - 1)
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len() / 2
    }

    /// The Lua list: `old, new, old, new, ...`, [`Replaced::len`] pairs.
    pub(crate) fn list(&self) -> &Table {
        self.list.table()
    }

    /// Pair `at`.
    pub(crate) fn pair(&self, at: usize) -> Result<(Function, Function)> {
        Ok((self.old_of(at)?, self.new_of(at)?))
    }

    /// The old function of pair `at`.
    pub(crate) fn old_of(&self, at: usize) -> Result<Function> {
        self.list().raw_get(2 * at + 1)
    }

    /// The new function of pair `at`.
    pub(crate) fn new_of(&self, at: usize) -> Result<Function> {
        self.list().raw_get(2 * at + 2)
    }

    /// Every pair, in the order they were added.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<(Function, Function)>> + '_ {
        (0..self.len()).map(|at| self.pair(at))
    }

    /// Points each value of `writes` (a `Fields` list: 3 slots a write) that is the new
    /// function of pair `new_to_old[its identity]` at that pair's old function.
    pub(crate) fn point_at_old(
        &self,
        lua: &Lua,
        writes: &LuaList,
        new_to_old: &FxHashMap<usize, Option<usize>>,
    ) -> Result<()> {
        let slots = writes.len();
        // SAFETY: index 1 is the writes' list, index 2 the pairs' list. Each value read is
        // pushed (index 3) and popped, or replaced by the old function pushed in its place,
        // which lua_rawseti pops into a slot that exists already (nothing is allocated).
        unsafe {
            lua.exec_raw::<()>((writes.table(), self.list()), |state| {
                for slot in (3..=slots).step_by(3) {
                    ffi::lua_rawgeti(state, 1, slot as ffi::lua_Integer);
                    let identity = ffi::lua_topointer(state, -1) as usize;
                    ffi::lua_pop(state, 1);
                    if let Some(&Some(at)) = new_to_old.get(&identity) {
                        ffi::lua_rawgeti(state, 2, 2 * at as ffi::lua_Integer + 1);
                        ffi::lua_rawseti(state, 1, slot as ffi::lua_Integer);
                    }
                }
            })
        }
    }
}
