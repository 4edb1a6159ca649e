//! Engine `walk`: one pass over the reachable heap that replaces every reference to an old
//! function of the reloaded modules by its new version, using only the public C API.
//!
//! The pass starts at the registry (which holds the main thread, the globals and every
//! `luaL_ref`), the running thread, and the metatables of the basic types, and visits each
//! table, function, thread and userdata once:
//!
//! | object | what is visited and switched | C API |
//! |---|---|---|
//! | table | values, keys, metatable | [`lua_next`], [`lua_rawset`], [`lua_getmetatable`] |
//! | function (Lua or C closure) | upvalues | [`lua_getupvalue`], [`lua_setupvalue`] |
//! | thread | locals, temporaries and varargs of every frame; the stack of a thread without frames (a coroutine not started, mlua's handle thread) | [`lua_getlocal`], [`lua_setlocal`] |
//! | userdata | user values, metatable | [`lua_getiuservalue`], [`lua_setiuservalue`] |
//!
//! Objects being walked sit on the Lua stack of the walking C frame (one to two slots each,
//! depth-first, so the stack grows with the depth of the object graph, not its size); the
//! visited set and the frame records are Rust collections, grown fallibly. Nothing is
//! allocated in Lua per object, except for tables whose *keys* must change (rare), objects
//! deeper than [`MAX_DEPTH`], which wait in one Lua table for a later pass, and the
//! [`journal`] entry of each object whose references it switches: a walk that fails half-way
//! puts back every reference it switched.
//!
//! [`lua_next`]: https://www.lua.org/manual/5.4/manual.html#lua_next
//! [`lua_rawset`]: https://www.lua.org/manual/5.4/manual.html#lua_rawset
//! [`lua_getmetatable`]: https://www.lua.org/manual/5.4/manual.html#lua_getmetatable
//! [`lua_getupvalue`]: https://www.lua.org/manual/5.4/manual.html#lua_getupvalue
//! [`lua_setupvalue`]: https://www.lua.org/manual/5.4/manual.html#lua_setupvalue
//! [`lua_getlocal`]: https://www.lua.org/manual/5.4/manual.html#lua_getlocal
//! [`lua_setlocal`]: https://www.lua.org/manual/5.4/manual.html#lua_setlocal
//! [`lua_getiuservalue`]: https://www.lua.org/manual/5.4/manual.html#lua_getiuservalue
//! [`lua_setiuservalue`]: https://www.lua.org/manual/5.4/manual.html#lua_setiuservalue

mod journal;
mod steps;
mod visited;

use std::ffi::{c_int, c_void, CStr};

use mlua::ffi::{self, lua_State};
use mlua::{Lua, Table, Value};
use rustc_hash::FxHashSet;

use self::journal::{Journal, CONTAINERS, PRECISE, REVERSE};
use self::visited::Visited;
use super::{Switched, Switches};

/// Deeper objects are put aside in a Lua table and walked from there, so that a long chain
/// (a linked list of a million nodes) cannot exhaust the Lua stack (`LUAI_MAXSTACK` slots).
///
/// Each frame holds up to three stack slots. Lua 5.1 and LuaJIT give a C function at most
/// `LUAI_MAXCSTACK` (8000) slots, later versions `LUAI_MAXSTACK` (1 000 000).
const MAX_DEPTH: usize = if cfg!(any(feature = "lua51", feature = "luajit")) {
    2_000
} else {
    100_000
};

/// Walks the heap of `lua` and switches every reference to a key of `map` (old function →
/// new function) to its value.
///
/// `known` holds every function the planner saw (old and new): a Lua function compiled from
/// one of `sources` that is not known was created at run time by the old code (a factory's
/// closure) and cannot be upgraded by this engine; it is counted, not changed.
///
/// All or nothing: when the walk fails (out of memory, in Lua or in its own collections),
/// every reference it switched is put back and the error is returned.
pub(crate) fn walk(
    lua: &Lua,
    map: &Table,
    old: &FxHashSet<usize>,
    known: &FxHashSet<usize>,
    sources: &[String],
) -> mlua::Result<Switched> {
    let mut walker = Walker {
        old,
        known,
        sources,
        visited: Visited::default(),
        frames: Vec::new(),
        journal: Journal::default(),
        stats: Switched::default(),
        running: std::ptr::null_mut(),
    };
    // New → old, for the undo; `false` where a new function replaces several old ones.
    let reverse = lua.create_table()?;
    for pair in map.pairs::<Value, Value>() {
        let (before, after) = pair?;
        let known: Value = reverse.raw_get(&after)?;
        let back = if known.is_nil() {
            before
        } else {
            Value::Boolean(false)
        };
        reverse.raw_set(after, back)?;
    }
    let args = (map, reverse, lua.create_table()?, lua.create_table()?);
    // SAFETY: exec_raw runs the closure in a fresh protected C frame whose only stack values
    // are its arguments: `map` at MAP, then the journal's REVERSE, CONTAINERS and PRECISE. The
    // walk itself runs one protected call deeper (`walk_protected`, same arguments at the same
    // indices), so that when it fails this frame, whose stack room is reserved first, can
    // undo it without allocating. Every index the walker uses is one of those or a slot it
    // pushed itself above them, recorded in `frames`; the garbage collector is stopped by the
    // caller, so objects reached through pointers compared here stay alive and unmoved. Lua
    // errors (out of memory) unwind through the walker by longjmp, so the walker owns no Rust
    // value that needs dropping: its collections live in `walker`, outside, and the journal
    // counts only records complete before their write.
    unsafe {
        lua.exec_raw::<()>(args, |state| {
            if ffi::lua_checkstack(state, UNDO_STACK) == 0 {
                fail(state);
            }
            walker.running = state;
            ffi::lua_pushcfunction(state, walk_protected);
            for index in MAP..=PRECISE {
                ffi::lua_pushvalue(state, index);
            }
            ffi::lua_pushlightuserdata(state, (&raw mut walker).cast());
            if ffi::lua_pcall(state, PRECISE + 1, 0, 0) != ffi::LUA_OK {
                // The error value is on top; the journal's tables are still at their indices.
                walker.journal.undo(state);
                ffi::lua_error(state);
            }
        })?;
    }
    Ok(walker.stats)
}

/// Stack slots the undo may use, reserved before the walk.
const UNDO_STACK: c_int = 16;

/// The walk's protected call: arguments as `walk`'s frame has them, then the walker.
///
/// # Safety
/// Called only by `walk`, through `lua_pcall`, with a `*mut Walker` as last argument.
unsafe extern "C-unwind" fn walk_protected(state: *mut lua_State) -> c_int {
    let walker = &mut *ffi::lua_touserdata(state, PRECISE + 1).cast::<Walker<'_>>();
    ffi::lua_settop(state, PRECISE);
    walker.run(state);
    0
}

/// Where the walk of one object stands. The object itself is on the Lua stack at `slot`.
enum Frame {
    /// `lua_next` over the table; its current key is at `slot + 1`. `key_pending` is set when
    /// the current key still has to be walked after the value; `old_keys` when some keys must
    /// be switched once the traversal ends.
    Table {
        slot: c_int,
        journalled: bool,
        metatable_done: bool,
        key_pending: bool,
        old_keys: bool,
        place: Place,
    },
    /// The next upvalue to read.
    Function {
        slot: c_int,
        journalled: bool,
        next: c_int,
    },
    /// The next user value to read; 0 is the metatable.
    Userdata {
        slot: c_int,
        journalled: bool,
        next: c_int,
    },
    /// Frame `level`, local `local` (positive: named locals and temporaries; negative:
    /// varargs). `level` = -1 walks the raw stack of a thread without frames.
    Thread {
        slot: c_int,
        journalled: bool,
        level: c_int,
        local: c_int,
        skip_level: c_int,
    },
}

impl Frame {
    /// The object's stack slot, and whether the object is in the journal's containers.
    fn journalled(&mut self) -> (c_int, &mut bool) {
        match self {
            Frame::Table {
                slot, journalled, ..
            }
            | Frame::Function {
                slot, journalled, ..
            }
            | Frame::Userdata {
                slot, journalled, ..
            }
            | Frame::Thread {
                slot, journalled, ..
            } => (*slot, journalled),
        }
    }
}

/// What kind of place a table is, for the report.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Table,
    Metatable,
    Registry,
}

struct Walker<'a> {
    old: &'a FxHashSet<usize>,
    known: &'a FxHashSet<usize>,
    sources: &'a [String],
    visited: Visited,
    frames: Vec<Frame>,
    journal: Journal,
    stats: Switched,
    running: *mut lua_State,
}

/// Index of the old → new map on the walking frame's stack.
pub(super) const MAP: c_int = 1;

impl Walker<'_> {
    unsafe fn run(&mut self, state: *mut lua_State) {
        // The map and the journal must not have their own keys switched.
        for table in [MAP, REVERSE, CONTAINERS, PRECISE] {
            self.mark(state, table);
        }

        ffi::lua_createtable(state, 0, 0); // objects put aside past MAX_DEPTH
        let aside = ffi::lua_gettop(state);
        self.mark(state, aside);

        ffi::lua_pushvalue(state, ffi::LUA_REGISTRYINDEX);
        self.enter(state, Place::Registry);
        self.drain(state, aside);

        ffi::lua_pushthread(state);
        self.enter(state, Place::Table);
        self.drain(state, aside);

        // Metatables of the basic types live outside the registry.
        for push in [
            push_nil,
            push_boolean,
            push_number,
            push_string,
            push_lightuserdata,
        ] {
            push(state);
            if ffi::lua_getmetatable(state, -1) != 0 {
                self.enter(state, Place::Metatable);
                self.drain(state, aside);
            }
            ffi::lua_pop(state, 1);
        }

        // Objects put aside, until none are left.
        loop {
            let count = ffi::lua_rawlen(state, aside) as ffi::lua_Integer;
            if count == 0 {
                break;
            }
            ffi::lua_rawgeti(state, aside, count);
            ffi::lua_pushnil(state);
            ffi::lua_rawseti(state, aside, count);
            self.enter(state, Place::Table);
            self.drain(state, aside);
        }
    }

    /// Walks until the frame stack is empty.
    unsafe fn drain(&mut self, state: *mut lua_State, aside: c_int) {
        while let Some(frame) = self.frames.last_mut() {
            let child = match frame {
                Frame::Table { .. } => self.step_table(state),
                Frame::Function { .. } => self.step_function(state),
                Frame::Userdata { .. } => self.step_userdata(state),
                Frame::Thread { .. } => self.step_thread(state),
            };
            let Some(place) = child else { continue };
            // A child value is on top of the stack.
            if self.frames.len() >= MAX_DEPTH {
                if self.is_unvisited(state, -1) {
                    let count = ffi::lua_rawlen(state, aside) as ffi::lua_Integer;
                    ffi::lua_rawseti(state, aside, count + 1);
                } else {
                    ffi::lua_pop(state, 1);
                }
            } else {
                self.enter(state, place);
            }
        }
    }

    /// True if the value at `index` is an object not walked yet.
    unsafe fn is_unvisited(&mut self, state: *mut lua_State, index: c_int) -> bool {
        if !is_object(ffi::lua_type(state, index)) {
            return false;
        }
        let address = ffi::lua_topointer(state, index) as usize;
        !self.visited.contains(address)
    }

    /// Marks the object at `index` as visited; returns true if it was not before.
    unsafe fn mark(&mut self, state: *mut lua_State, index: c_int) -> bool {
        let address = ffi::lua_topointer(state, index) as usize;
        self.visited.insert(address).unwrap_or_else(|_| fail(state))
    }

    /// Starts walking the value on top of the stack, or pops it if there is nothing to walk.
    unsafe fn enter(&mut self, state: *mut lua_State, place: Place) {
        let kind = ffi::lua_type(state, -1);
        if !is_object(kind) || !self.mark(state, -1) {
            ffi::lua_pop(state, 1);
            return;
        }
        self.push_frame(state, kind, place);
    }

    unsafe fn push_frame(&mut self, state: *mut lua_State, kind: c_int, place: Place) {
        // Every frame needs at most 3 more slots (object, key, value) plus room for the
        // replacement pushed while switching and a journal record.
        // The depth is bounded (MAX_DEPTH), so a stack that cannot grow is out of memory.
        if ffi::lua_checkstack(state, 8) == 0 {
            fail(state);
        }
        if self.frames.try_reserve(1).is_err() {
            fail(state);
        }
        self.stats.objects_visited += 1;
        let slot = ffi::lua_gettop(state);
        let frame = match kind {
            ffi::LUA_TTABLE => {
                ffi::lua_pushnil(state);
                Frame::Table {
                    slot,
                    journalled: false,
                    metatable_done: false,
                    key_pending: false,
                    old_keys: false,
                    place,
                }
            }
            ffi::LUA_TFUNCTION => {
                self.count_runtime_closure(state);
                Frame::Function {
                    slot,
                    journalled: false,
                    next: 1,
                }
            }
            ffi::LUA_TUSERDATA => Frame::Userdata {
                slot,
                journalled: false,
                next: 0,
            },
            _ => {
                let thread = ffi::lua_tothread(state, slot);
                let has_frames = {
                    let mut ar: ffi::lua_Debug = std::mem::zeroed();
                    ffi::lua_getstack(thread, 0, &mut ar) != 0
                };
                Frame::Thread {
                    slot,
                    journalled: false,
                    level: if has_frames { 0 } else { -1 },
                    local: 1,
                    // The walking C frame itself (level 0 of the running thread) holds the
                    // walk's own stack: never touched.
                    skip_level: if thread == self.running { 0 } else { -2 },
                }
            }
        };
        self.frames.push(frame);
    }

    /// A function from a reloaded file that the planner never met was created at run time by
    /// the old code: this engine cannot give it the new code.
    unsafe fn count_runtime_closure(&mut self, state: *mut lua_State) {
        let identity = ffi::lua_topointer(state, -1) as usize;
        if ffi::lua_iscfunction(state, -1) != 0 || self.known.contains(&identity) {
            return;
        }
        let mut ar: ffi::lua_Debug = std::mem::zeroed();
        ffi::lua_pushvalue(state, -1);
        ffi::lua_getinfo(state, c">S".as_ptr(), &mut ar);
        // A main chunk ("main") is the old file's top level, not a closure it created.
        let is_closure = CStr::from_ptr(ar.what).to_bytes() == b"Lua";
        let source = CStr::from_ptr(ar.source).to_bytes();
        if is_closure && self.sources.iter().any(|s| s.as_bytes() == source) {
            self.stats.closures_left_old += 1;
        }
    }

    /// Journals the switch about to be made in the current frame's object (the replacement is
    /// on top of the stack): the object, once, when the undo can find the old function from
    /// the new one; otherwise the place itself, by `precise`.
    unsafe fn journal(&mut self, state: *mut lua_State, precise: impl FnOnce(&mut Journal)) {
        if !self.journal.reversible(state, -1) {
            precise(&mut self.journal);
            return;
        }
        let frame = self.frames.last_mut().expect("a switch happens in a frame");
        let (slot, journalled) = frame.journalled();
        if !*journalled {
            self.journal.contain(state, slot);
            // Only once the record is complete.
            if let Some(frame) = self.frames.last_mut() {
                *frame.journalled().1 = true;
            }
        }
    }

    /// If the value on top is an old function, pushes its new version and returns true.
    unsafe fn push_replacement(&self, state: *mut lua_State, index: c_int) -> bool {
        if ffi::lua_type(state, index) != ffi::LUA_TFUNCTION
            || !self
                .old
                .contains(&(ffi::lua_topointer(state, index) as usize))
        {
            return false;
        }
        ffi::lua_pushvalue(state, index);
        ffi::lua_rawget(state, MAP);
        true
    }
}

/// Fails the walk for lack of memory for its own collections: raises Lua's memory error in
/// the walking frame (the walk runs protected; its journal puts back what it switched).
unsafe fn fail(state: *mut lua_State) -> ! {
    ffi::lua_pushstring(state, c"not enough memory".as_ptr());
    ffi::lua_error(state)
}

fn is_object(kind: c_int) -> bool {
    matches!(
        kind,
        ffi::LUA_TTABLE | ffi::LUA_TFUNCTION | ffi::LUA_TUSERDATA | ffi::LUA_TTHREAD
    )
}

/// The report counter a switched reference in a table of `place` adds to.
fn place_counter(place: Place, key: bool) -> Counter {
    match (place, key) {
        (_, true) => Counter::TableKeys,
        (Place::Registry, false) => Counter::Registry,
        (Place::Metatable, false) => Counter::Metatables,
        (Place::Table, false) => Counter::TableValues,
    }
}

/// The places a switched reference is counted in.
#[derive(Clone, Copy)]
pub(crate) enum Counter {
    TableValues,
    TableKeys,
    Metatables,
    Upvalues,
    StackSlots,
    Registry,
    UserValues,
}

impl Switched {
    fn count(&mut self, counter: Counter) {
        let switches: &mut Switches = &mut self.references;
        let field = match counter {
            Counter::TableValues => &mut switches.table_values,
            Counter::TableKeys => &mut switches.table_keys,
            Counter::Metatables => &mut switches.metatables,
            Counter::Upvalues => &mut switches.upvalues,
            Counter::StackSlots => &mut switches.stack_slots,
            Counter::Registry => &mut switches.registry,
            Counter::UserValues => &mut switches.user_values,
        };
        *field += 1;
    }
}

unsafe fn push_nil(state: *mut lua_State) {
    ffi::lua_pushnil(state);
}
unsafe fn push_boolean(state: *mut lua_State) {
    ffi::lua_pushboolean(state, 0);
}
unsafe fn push_number(state: *mut lua_State) {
    ffi::lua_pushinteger(state, 0);
}
unsafe fn push_string(state: *mut lua_State) {
    ffi::lua_pushstring(state, c"".as_ptr());
}
unsafe fn push_lightuserdata(state: *mut lua_State) {
    ffi::lua_pushlightuserdata(state, std::ptr::null_mut::<c_void>());
}
