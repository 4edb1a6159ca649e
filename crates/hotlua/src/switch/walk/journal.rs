//! The walk's undo journal: every reference the walk switches is recorded, with the value it
//! held, before it is switched, so that a walk that fails half-way (Lua or the walk itself ran
//! out of memory) can put every one of them back.
//!
//! The journal is a Lua table on the walking frame's stack ([`JOURNAL`]); each record takes
//! [`FIELDS`] consecutive array slots: the kind, the object written, two arguments, the old
//! value. A record is complete before the write it describes is made, and only complete
//! records are counted, so whatever stops the walk, the journal covers every write made.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use super::steps::set_user_value;
use super::MAP;

/// Index of the journal on the walking frame's stack (the map is at [`MAP`]).
pub(super) const JOURNAL: c_int = MAP + 1;

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

/// Counts the complete records of the journal at [`JOURNAL`].
#[derive(Default)]
pub(super) struct Journal {
    pub(super) records: usize,
}

impl Journal {
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
        ffi::lua_rawseti(state, JOURNAL, base + 1);
        ffi::lua_pushvalue(state, object);
        ffi::lua_rawseti(state, JOURNAL, base + 2);
        match a {
            Arg::Value(index) => ffi::lua_pushvalue(state, index),
            Arg::Number(n) => ffi::lua_pushinteger(state, n.into()),
        }
        ffi::lua_rawseti(state, JOURNAL, base + 3);
        ffi::lua_pushinteger(state, b.into());
        ffi::lua_rawseti(state, JOURNAL, base + 4);
        ffi::lua_pushvalue(state, old);
        ffi::lua_rawseti(state, JOURNAL, base + 5);
        self.records += 1;
    }

    /// Puts every recorded value back, newest first.
    ///
    /// Each restore writes a value that was in place a moment ago into a place that still
    /// exists: a table key that was there, an upvalue, a stack slot, a local of a frame that
    /// has not returned (nothing ran since). Frame levels of the running thread count from
    /// the calling C frame, which sits at the walk's depth: the caller runs this in a
    /// protected call made from the same place as the walk's.
    ///
    /// # Safety
    /// `state` is a fresh protected frame with the journal at [`JOURNAL`]; `self` counts its
    /// complete records.
    pub(super) unsafe fn undo(&self, state: *mut lua_State) {
        ffi::luaL_checkstack(state, 8, c"hotlua walk undo: Lua stack".as_ptr());
        for record in (0..self.records as ffi::lua_Integer).rev() {
            let base = record * FIELDS;
            for field in 1..=FIELDS {
                ffi::lua_rawgeti(state, JOURNAL, base + field);
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
                    let mut ar: ffi::lua_Debug = std::mem::zeroed();
                    if ffi::lua_getstack(thread, number(a), &mut ar) != 0 {
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
