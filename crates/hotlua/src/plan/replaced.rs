//! [`Replaced`]: every old function of a batch and its new version, in one Lua list.
//!
//! A module of ten thousand functions makes ten thousand pairs: as two mlua handles each they
//! would cost twenty thousand of the handles mlua has room for (about 8000 in all on Lua 5.1
//! and LuaJIT, where such a reload used to fail), and the switching engines read them back
//! into Lua anyway. Here they wait in a Lua table, and a pair becomes handles only when Rust
//! code reads it.

use mlua::{ffi, Function, Lua, Result, Table};
use rustc_hash::FxHashMap;

/// Old functions and their new versions: slots `2i + 1` and `2i + 2` of a Lua list hold pair
/// `i` (0-based).
pub(crate) struct Replaced {
    list: Table,
    len: usize,
    /// Pairs the list has room for without growing.
    capacity: usize,
}

impl Replaced {
    /// An empty list with room for `pairs` pairs.
    pub(crate) fn new(lua: &Lua, pairs: usize) -> Result<Replaced> {
        Ok(Replaced {
            list: lua.create_table_with_capacity(2 * pairs, 0)?,
            len: 0,
            capacity: pairs,
        })
    }

    /// Adds the pair of functions at stack indices `old` and `new` and returns its index, if
    /// the list (at stack index `list`) has room for it: a write that allocates nothing, so
    /// it cannot raise.
    ///
    /// # Safety
    /// `list` holds this list's table; `old` and `new` are valid indices; two slots are free.
    pub(super) unsafe fn push_raw(
        &mut self,
        state: *mut ffi::lua_State,
        list: std::ffi::c_int,
        old: std::ffi::c_int,
        new: std::ffi::c_int,
    ) -> Option<usize> {
        if self.len == self.capacity {
            return None;
        }
        ffi::lua_pushvalue(state, old);
        ffi::lua_rawseti(state, list, 2 * self.len as ffi::lua_Integer + 1);
        ffi::lua_pushvalue(state, new);
        ffi::lua_rawseti(state, list, 2 * self.len as ffi::lua_Integer + 2);
        self.len += 1;
        Some(self.len - 1)
    }

    /// Adds a pair and returns its index.
    pub(crate) fn push(&mut self, old: &Function, new: &Function) -> Result<usize> {
        self.list.raw_set(2 * self.len + 1, old)?;
        self.list.raw_set(2 * self.len + 2, new)?;
        self.len += 1;
        Ok(self.len - 1)
    }

    #[cfg_attr(not(hotlua_inplace), allow(dead_code))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The Lua list: `old, new, old, new, ...`, [`Replaced::len`] pairs.
    #[cfg_attr(not(hotlua_inplace), allow(dead_code))]
    pub(crate) fn list(&self) -> &Table {
        &self.list
    }

    /// Pair `at`.
    pub(crate) fn pair(&self, at: usize) -> Result<(Function, Function)> {
        Ok((
            self.list.raw_get(2 * at + 1)?,
            self.list.raw_get(2 * at + 2)?,
        ))
    }

    /// The old function of pair `at`.
    pub(crate) fn old_of(&self, at: usize) -> Result<Function> {
        self.list.raw_get(2 * at + 1)
    }

    /// Points each value of a `Fields` list (3 slots a write, `list.n` slots) that is the new
    /// function of pair `new_to_old[its identity]` at that pair's old function.
    pub(crate) fn point_at_old(
        &self,
        lua: &Lua,
        list: &Table,
        new_to_old: &FxHashMap<usize, Option<usize>>,
    ) -> Result<()> {
        let slots: usize = list.raw_get("n")?;
        // SAFETY: index 1 is `list`, index 2 the pairs' list. Each value read is pushed (index
        // 3) and popped, or replaced by the old function pushed in its place, which
        // lua_rawseti pops into a slot that exists already (nothing is allocated).
        unsafe {
            lua.exec_raw::<()>((list, &self.list), |state| {
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

    /// The new function of pair `at`.
    pub(crate) fn new_of(&self, at: usize) -> Result<Function> {
        self.list.raw_get(2 * at + 2)
    }

    /// Every pair, in the order they were added.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Result<(Function, Function)>> + '_ {
        (0..self.len).map(|at| self.pair(at))
    }
}
