//! One step of the walk of each kind of object: the next table entry, upvalue, user value or
//! stack slot, switched (and journalled first) when it holds an old function.

use std::ffi::c_int;

use mlua::ffi::{self, lua_State};

use super::journal::{Arg, Kind};
use super::{is_object, place_counter, Counter, Frame, Place, Walker};

impl Walker<'_> {
    /// One step of a table: returns a child to walk (left on top), or `None`.
    pub(super) unsafe fn step_table(&mut self, state: *mut lua_State) -> Option<Place> {
        let Some(Frame::Table {
            slot,
            metatable_done,
            key_pending,
            place,
            ..
        }) = self.frames.last_mut()
        else {
            unreachable!("step_table on a table frame");
        };
        let (slot, place) = (*slot, *place);
        if !*metatable_done {
            *metatable_done = true;
            if ffi::lua_getmetatable(state, slot) != 0 {
                return Some(Place::Metatable);
            }
        }
        if *key_pending {
            *key_pending = false;
            ffi::lua_pushvalue(state, slot + 1);
            return Some(Place::Table);
        }
        // Entries whose key and value hold nothing to walk are dealt with here, without going
        // back to the frame loop: most entries of a large heap are like that.
        loop {
            if ffi::lua_next(state, slot) == 0 {
                let Some(Frame::Table { old_keys, .. }) = self.frames.pop() else {
                    unreachable!("the current frame is this table");
                };
                if old_keys {
                    self.switch_keys(state, slot, place);
                }
                ffi::lua_settop(state, slot - 1);
                return None;
            }
            // Stack: table, key, value.
            if self.push_replacement(state, -1) {
                let top = ffi::lua_gettop(state);
                self.journal(state, |journal| {
                    journal.record(state, Kind::Field, slot, Arg::Value(slot + 1), 0, top - 1)
                });
                ffi::lua_pushvalue(state, slot + 1);
                ffi::lua_insert(state, -2);
                ffi::lua_rawset(state, slot);
                self.stats.count(place_counter(place, false));
            }
            let key_kind = ffi::lua_type(state, slot + 1);
            let key_unvisited = is_object(key_kind) && self.is_unvisited(state, slot + 1);
            if key_kind == ffi::LUA_TFUNCTION
                && self
                    .old
                    .contains(&(ffi::lua_topointer(state, slot + 1) as usize))
            {
                if let Some(Frame::Table { old_keys, .. }) = self.frames.last_mut() {
                    *old_keys = true;
                }
            }
            let value_unvisited = self.is_unvisited(state, -1);
            if !value_unvisited {
                ffi::lua_pop(state, 1);
                if !key_unvisited {
                    continue;
                }
                ffi::lua_pushvalue(state, slot + 1);
                return Some(Place::Table);
            }
            if let Some(Frame::Table { key_pending, .. }) = self.frames.last_mut() {
                *key_pending = key_unvisited;
            }
            return Some(Place::Table);
        }
    }

    /// Re-inserts under their new function the entries of the table at `slot` whose keys are
    /// old functions. Keys cannot change during `lua_next`, hence this second pass.
    unsafe fn switch_keys(&mut self, state: *mut lua_State, slot: c_int, place: Place) {
        ffi::lua_createtable(state, 0, 0);
        let moved = ffi::lua_gettop(state);
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, slot) != 0 {
            if self.push_replacement(state, -2) {
                // Stack: moved, old key, value, new key.
                let top = ffi::lua_gettop(state);
                let key = Arg::Value(top - 2);
                self.journal
                    .record(state, Kind::Field, slot, key, 0, top - 1);
                // moved[new key] = value
                ffi::lua_pushvalue(state, -2);
                ffi::lua_rawset(state, moved);
                // table[old key] = nil is allowed during lua_next (clearing a field).
                ffi::lua_pushvalue(state, -2);
                ffi::lua_pushnil(state);
                ffi::lua_rawset(state, slot);
            }
            ffi::lua_pop(state, 1);
        }
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, moved) != 0 {
            // Stack: moved, new key, value; the new key's value before goes to the journal.
            let top = ffi::lua_gettop(state);
            ffi::lua_pushvalue(state, top - 1);
            ffi::lua_rawget(state, slot);
            self.journal
                .record(state, Kind::Field, slot, Arg::Value(top - 1), 0, top + 1);
            ffi::lua_pop(state, 1);
            ffi::lua_pushvalue(state, -2);
            ffi::lua_insert(state, -2);
            ffi::lua_rawset(state, slot);
            self.stats.count(place_counter(place, true));
        }
        ffi::lua_pop(state, 1);
    }

    pub(super) unsafe fn step_function(&mut self, state: *mut lua_State) -> Option<Place> {
        let Some(Frame::Function { slot, next, .. }) = self.frames.last_mut() else {
            unreachable!("step_function on a function frame");
        };
        let (slot, index) = (*slot, *next);
        *next += 1;
        if ffi::lua_getupvalue(state, slot, index).is_null() {
            self.frames.pop();
            ffi::lua_settop(state, slot - 1);
            return None;
        }
        if self.push_replacement(state, -1) {
            let old = ffi::lua_gettop(state) - 1;
            self.journal(state, |journal| {
                journal.record(state, Kind::Upvalue, slot, Arg::Number(index), 0, old)
            });
            ffi::lua_setupvalue(state, slot, index);
            self.stats.count(Counter::Upvalues);
        }
        Some(Place::Table)
    }

    pub(super) unsafe fn step_userdata(&mut self, state: *mut lua_State) -> Option<Place> {
        let Some(Frame::Userdata { slot, next, .. }) = self.frames.last_mut() else {
            unreachable!("step_userdata on a userdata frame");
        };
        let (slot, index) = (*slot, *next);
        *next += 1;
        if index == 0 {
            return (ffi::lua_getmetatable(state, slot) != 0).then_some(Place::Metatable);
        }
        if !push_user_value(state, slot, index) {
            self.frames.pop();
            ffi::lua_settop(state, slot - 1);
            return None;
        }
        if self.push_replacement(state, -1) {
            let old = ffi::lua_gettop(state) - 1;
            self.journal(state, |journal| {
                journal.record(state, Kind::UserValue, slot, Arg::Number(index), 0, old)
            });
            set_user_value(state, slot, index);
            self.stats.count(Counter::UserValues);
        }
        Some(Place::Table)
    }

    pub(super) unsafe fn step_thread(&mut self, state: *mut lua_State) -> Option<Place> {
        let Some(Frame::Thread {
            slot,
            level,
            local,
            skip_level,
            ..
        }) = self.frames.last_mut()
        else {
            unreachable!("step_thread on a thread frame");
        };
        let (slot, skip) = (*slot, *skip_level);
        let thread = ffi::lua_tothread(state, slot);
        // Not luaL_checkstack: raising an error on another thread would have no handler.
        if ffi::lua_checkstack(thread, 3) == 0 {
            self.frames.pop();
            ffi::lua_settop(state, slot - 1);
            return None;
        }

        if *level < 0 {
            // No frames: the thread's stack is plain values (a coroutine's function and
            // arguments before its first resume, or mlua's handles).
            let index = *local;
            if thread == state || index > ffi::lua_gettop(thread) {
                self.frames.pop();
                ffi::lua_settop(state, slot - 1);
                return None;
            }
            *local += 1;
            ffi::lua_pushvalue(thread, index);
            ffi::lua_xmove(thread, state, 1);
            if self.push_replacement(state, -1) {
                let old = ffi::lua_gettop(state) - 1;
                self.journal
                    .record(state, Kind::StackSlot, slot, Arg::Number(index), 0, old);
                ffi::lua_xmove(state, thread, 1);
                ffi::lua_replace(thread, index);
                self.stats.count(Counter::StackSlots);
            }
            return Some(Place::Table);
        }

        loop {
            let Some(Frame::Thread { level, local, .. }) = self.frames.last_mut() else {
                unreachable!();
            };
            let mut ar: ffi::lua_Debug = std::mem::zeroed();
            if ffi::lua_getstack(thread, *level, &mut ar) == 0 {
                self.frames.pop();
                ffi::lua_settop(state, slot - 1);
                return None;
            }
            if *level == skip {
                *level += 1;
                continue;
            }
            if *local == 1 {
                // First look at this frame: is it running an old function?
                ffi::lua_getinfo(thread, c"f".as_ptr(), &mut ar);
                ffi::lua_xmove(thread, state, 1);
                let runs_old = self.old.contains(&(ffi::lua_topointer(state, -1) as usize));
                ffi::lua_pop(state, 1);
                if runs_old {
                    self.stats.frames_left_old += 1;
                }
            }
            let (n, frame_level) = (*local, *level);
            let name = ffi::lua_getlocal(thread, &ar, n);
            if name.is_null() {
                // Past the named locals and temporaries come the varargs (negative indices).
                let Some(Frame::Thread { level, local, .. }) = self.frames.last_mut() else {
                    unreachable!();
                };
                if n > 0 {
                    *local = -1;
                } else {
                    *level += 1;
                    *local = 1;
                }
                continue;
            }
            let Some(Frame::Thread { local, .. }) = self.frames.last_mut() else {
                unreachable!();
            };
            *local = if n > 0 { n + 1 } else { n - 1 };
            if thread != state {
                ffi::lua_xmove(thread, state, 1);
            }
            if self.push_replacement(state, -1) {
                let old = ffi::lua_gettop(state) - 1;
                let level = Arg::Number(frame_level);
                self.journal(state, |journal| {
                    journal.record(state, Kind::Local, slot, level, n, old)
                });
                if thread != state {
                    ffi::lua_xmove(state, thread, 1);
                }
                ffi::lua_setlocal(thread, &ar, n);
                self.stats.count(Counter::StackSlots);
            }
            return Some(Place::Table);
        }
    }
}

/// Pushes user value `n` of the userdata at `slot` and returns true, or pushes nothing and
/// returns false past the last one. Lua 5.4 has any number of user values; 5.2 and 5.3 one;
/// 5.1 and LuaJIT one environment table (which can never hold a function to switch).
pub(super) unsafe fn push_user_value(state: *mut lua_State, slot: c_int, n: c_int) -> bool {
    #[cfg(any(feature = "lua54", feature = "lua55"))]
    {
        if ffi::lua_getiuservalue(state, slot, n) == ffi::LUA_TNONE {
            ffi::lua_pop(state, 1);
            return false;
        }
        true
    }
    #[cfg(not(any(feature = "lua54", feature = "lua55")))]
    {
        if n > 1 {
            return false;
        }
        ffi::lua_getuservalue(state, slot);
        true
    }
}

/// Pops the value on top into user value `n` of the userdata at `slot`.
pub(super) unsafe fn set_user_value(state: *mut lua_State, slot: c_int, n: c_int) {
    #[cfg(any(feature = "lua54", feature = "lua55"))]
    ffi::lua_setiuservalue(state, slot, n);
    #[cfg(not(any(feature = "lua54", feature = "lua55")))]
    {
        debug_assert_eq!(n, 1);
        ffi::lua_setuservalue(state, slot);
    }
}
