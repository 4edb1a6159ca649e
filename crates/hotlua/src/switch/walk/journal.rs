//! The walk's undo journal: what a walk that fails half-way (Lua, or the walk itself, ran out
//! of memory) needs to put back every reference it switched.
//!
//! Most switches are journalled by their *container*: the table, closure, userdata or thread
//! whose value was switched, once per object. Undoing goes through each container again and
//! gives every value that is a new function its one old function back ([`REVERSE`]); that costs
//! one array slot per object touched instead of one record per reference. (A container may
//! also hold new functions the reload's own writes put there; those go back to the old
//! functions too, and the caller then undoes its own writes, which restores them exactly.)
//!
//! Switches that cannot be undone that way get a *precise* record of the place and the value
//! it held ([`PRECISE`], [`FIELDS`] array slots each): table keys moved to the new function,
//! new functions that replace several old ones, and the stack slots of threads without frames
//! (mlua's handles, where the plan's own handles to new functions live).
//!
//! A record is complete before the write it describes is made, and only complete records are
//! counted, so whatever stops the walk, the journal covers every write made.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use super::steps::{push_user_value, set_user_value};
use super::MAP;

/// Index, on the walking frame's stack, of the new → old map (`false` for a new function
/// that replaces several old ones).
pub(super) const REVERSE: c_int = MAP + 1;
/// Index of the containers journalled, an array.
pub(super) const CONTAINERS: c_int = MAP + 2;
/// Index of the precise records, an array of [`FIELDS`] slots each.
pub(super) const PRECISE: c_int = MAP + 3;

const FIELDS: ffi::lua_Integer = 5;

/// What kind of place a record restores.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    /// `rawset(object, a, old)`: a table value, or a table key moved or cleared.
    Field = 1,
    /// `debug.setupvalue(object, a, old)`.
    Upvalue,
    /// Slot `a` of the stack of thread `object`, which has no frames.
    StackSlot,
    /// Local `b` of frame `a` of thread `object`.
    Local,
    /// User value `a` of userdata `object`.
    UserValue,
}

impl Kind {
    fn from_code(code: ffi::lua_Integer) -> Option<Kind> {
        [
            Kind::Field,
            Kind::Upvalue,
            Kind::StackSlot,
            Kind::Local,
            Kind::UserValue,
        ]
        .into_iter()
        .find(|place| *place as ffi::lua_Integer == code)
    }
}

/// The first argument of a record: a Lua value on the stack, or a number.
pub(super) enum Arg {
    Value(c_int),
    Number(c_int),
}

/// Counts the complete records of the journal.
#[derive(Default)]
pub(super) struct Journal {
    containers: usize,
    records: usize,
}

impl Journal {
    /// True when the new function at `index` replaces exactly one old function, which the undo
    /// can find from it.
    ///
    /// # Safety
    /// `state` is the walking frame; `index` is valid; there is room for one more slot.
    pub(super) unsafe fn reversible(&self, state: *mut lua_State, index: c_int) -> bool {
        ffi::lua_pushvalue(state, index);
        let old = ffi::lua_rawget(state, REVERSE);
        ffi::lua_pop(state, 1);
        old == ffi::LUA_TFUNCTION
    }

    /// Records the container at stack index `object` (once per container: the caller
    /// remembers). May raise "not enough memory"; the record then does not count.
    ///
    /// # Safety
    /// As for [`Journal::record`].
    pub(super) unsafe fn contain(&mut self, state: *mut lua_State, object: c_int) {
        ffi::lua_pushvalue(state, object);
        ffi::lua_rawseti(state, CONTAINERS, self.containers as ffi::lua_Integer + 1);
        self.containers += 1;
    }

    /// Records that `place` of the object at stack index `object`, which holds the value at
    /// stack index `old`, is about to change.
    ///
    /// # Safety
    /// `state` is the walking frame; `object`, `old` and an [`Arg::Value`] are valid absolute
    /// indices of it, and there is room for one more stack slot. May raise "not enough memory"
    /// (the walk runs protected); the record then does not count.
    pub(super) unsafe fn record(
        &mut self,
        state: *mut lua_State,
        place: Kind,
        object: c_int,
        a: Arg,
        b: c_int,
        old: c_int,
    ) {
        let base = self.records as ffi::lua_Integer * FIELDS;
        ffi::lua_pushinteger(state, place as ffi::lua_Integer);
        ffi::lua_rawseti(state, PRECISE, base + 1);
        ffi::lua_pushvalue(state, object);
        ffi::lua_rawseti(state, PRECISE, base + 2);
        match a {
            Arg::Value(index) => ffi::lua_pushvalue(state, index),
            Arg::Number(n) => ffi::lua_pushinteger(state, n.into()),
        }
        ffi::lua_rawseti(state, PRECISE, base + 3);
        ffi::lua_pushinteger(state, b.into());
        ffi::lua_rawseti(state, PRECISE, base + 4);
        ffi::lua_pushvalue(state, old);
        ffi::lua_rawseti(state, PRECISE, base + 5);
        self.records += 1;
    }

    /// Puts every switched reference back: the precise records, newest first (a moved key
    /// gets its entry back, with the value it then had), then the containers.
    ///
    /// Each restore writes into a place that still exists: a table key that was there, an
    /// upvalue, a stack slot, a local of a frame that has not returned (nothing ran since).
    /// Nothing is allocated: the values read go to stack slots reserved before the walk, and
    /// other threads' stacks were given room when the walk read them.
    ///
    /// # Safety
    /// `state` is the frame that called the walk, with the walk's arguments at their indices
    /// and [`super::UNDO_STACK`] free slots; `self` counts the complete records.
    pub(super) unsafe fn undo(&self, state: *mut lua_State) {
        self.undo_precise(state);
        for container in (1..=self.containers as ffi::lua_Integer).rev() {
            ffi::lua_rawgeti(state, CONTAINERS, container);
            reverse_container(state, ffi::lua_gettop(state));
            ffi::lua_pop(state, 1);
        }
    }

    unsafe fn undo_precise(&self, state: *mut lua_State) {
        for record in (0..self.records as ffi::lua_Integer).rev() {
            let base = record * FIELDS;
            for field in 1..=FIELDS {
                ffi::lua_rawgeti(state, PRECISE, base + field);
            }
            // Stack: place, object, a, b, old.
            let top = ffi::lua_gettop(state);
            let (object, a, old) = (top - 3, top - 2, top);
            let number = |index| ffi::lua_tointeger(state, index) as c_int;
            match Kind::from_code(ffi::lua_tointeger(state, top - 4)) {
                Some(Kind::Field) => {
                    ffi::lua_pushvalue(state, a);
                    ffi::lua_pushvalue(state, old);
                    ffi::lua_rawset(state, object);
                }
                Some(Kind::Upvalue) => {
                    ffi::lua_pushvalue(state, old);
                    ffi::lua_setupvalue(state, object, number(a));
                }
                Some(Kind::StackSlot) => {
                    let thread = ffi::lua_tothread(state, object);
                    ffi::lua_pushvalue(state, old);
                    ffi::lua_xmove(state, thread, 1);
                    ffi::lua_replace(thread, number(a));
                }
                Some(Kind::Local) => {
                    let thread = ffi::lua_tothread(state, object);
                    // The walk counted this thread's levels from its protected call, one
                    // frame above this one.
                    let level = number(a) - c_int::from(thread == state);
                    let mut ar: ffi::lua_Debug = std::mem::zeroed();
                    if ffi::lua_getstack(thread, level, &mut ar) != 0 {
                        ffi::lua_pushvalue(state, old);
                        if thread != state {
                            ffi::lua_xmove(state, thread, 1);
                        }
                        if ffi::lua_setlocal(thread, &ar, number(top - 1)).is_null() {
                            ffi::lua_pop(thread, 1);
                        }
                    }
                }
                Some(Kind::UserValue) => {
                    ffi::lua_pushvalue(state, old);
                    set_user_value(state, object, number(a));
                }
                None => unreachable!("the walk writes only the places it records"),
            }
            ffi::lua_settop(state, top - 5);
        }
    }
}

/// If the value on top is a new function with one old function, replaces it by that one and
/// returns true; otherwise leaves it.
unsafe fn reverse_top(state: *mut lua_State) -> bool {
    if ffi::lua_type(state, -1) != ffi::LUA_TFUNCTION {
        return false;
    }
    ffi::lua_pushvalue(state, -1);
    if ffi::lua_rawget(state, REVERSE) != ffi::LUA_TFUNCTION {
        ffi::lua_pop(state, 1);
        return false;
    }
    ffi::lua_replace(state, -2);
    true
}

/// Gives every value of the container at `slot` (table values, upvalues, user values, locals
/// of every frame but the undoing one) that is a new function its old function back.
unsafe fn reverse_container(state: *mut lua_State, slot: c_int) {
    match ffi::lua_type(state, slot) {
        ffi::LUA_TTABLE => {
            ffi::lua_pushnil(state);
            while ffi::lua_next(state, slot) != 0 {
                if reverse_top(state) {
                    // Assigning to an existing field is allowed during lua_next.
                    ffi::lua_pushvalue(state, -2);
                    ffi::lua_insert(state, -2);
                    ffi::lua_rawset(state, slot);
                } else {
                    ffi::lua_pop(state, 1);
                }
            }
        }
        ffi::LUA_TFUNCTION => {
            for index in 1.. {
                if ffi::lua_getupvalue(state, slot, index).is_null() {
                    break;
                }
                if reverse_top(state) {
                    ffi::lua_setupvalue(state, slot, index);
                } else {
                    ffi::lua_pop(state, 1);
                }
            }
        }
        ffi::LUA_TUSERDATA => {
            for index in 1.. {
                if !push_user_value(state, slot, index) {
                    break;
                }
                if reverse_top(state) {
                    set_user_value(state, slot, index);
                } else {
                    ffi::lua_pop(state, 1);
                }
            }
        }
        ffi::LUA_TTHREAD => reverse_locals(state, ffi::lua_tothread(state, slot)),
        _ => {}
    }
}

/// Every local, temporary and vararg of every frame of `thread` (the walk journals threads
/// without frames precisely).
unsafe fn reverse_locals(state: *mut lua_State, thread: *mut lua_State) {
    if ffi::lua_checkstack(thread, 3) == 0 {
        return;
    }
    // Level 0 of the running thread is this undo's own C frame.
    let first = if thread == state { 1 } else { 0 };
    let mut ar: ffi::lua_Debug = std::mem::zeroed();
    for level in first.. {
        if ffi::lua_getstack(thread, level, &mut ar) == 0 {
            break;
        }
        for direction in [1, -1] {
            for n in (1..).map(|n: c_int| n * direction) {
                if ffi::lua_getlocal(thread, &ar, n).is_null() {
                    break;
                }
                if thread != state {
                    ffi::lua_xmove(thread, state, 1);
                }
                if reverse_top(state) {
                    if thread != state {
                        ffi::lua_xmove(state, thread, 1);
                    }
                    ffi::lua_setlocal(thread, &ar, n);
                } else {
                    ffi::lua_pop(state, 1);
                }
            }
        }
    }
}
