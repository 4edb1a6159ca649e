//! Reading one function's facts on the raw stack ([`Read::top`]): from its prototype where
//! engine `inplace`'s layout is proven, through the debug API otherwise; and the cache hints
//! [`Facts::read_fields`] gives ahead of the reads.

use std::ffi::{c_int, CStr};
use std::num::NonZeroUsize;

use mlua::ffi;
use rustc_hash::FxHashSet;

use super::{Facts, Stored, UpvalueFact};
use crate::fallible::{Grow, TryPush};
use crate::raw::cell_identity;

/// Asks the cache for the closures, prototypes and upvalue descriptions of the functions a
/// few places ahead in `order` (stack slots), so that reading them does not wait on memory:
/// their closures lie wherever the program made them, and each read starts with three
/// dependent misses.
///
/// SAFETY (for callers): every slot of `order` is a valid stack index, and engine `inplace`'s
/// layout is proven in this state (`Facts::by_prototype`): the hints read the closure and
/// the prototype where that layout puts them.
#[cfg(hotlua_inplace)]
pub(super) unsafe fn prefetch_ahead(state: *mut ffi::lua_State, order: &[c_int], at: usize) {
    extern "C" {
        fn hotlua_prefetch_function(state: *mut ffi::lua_State, idx: c_int, depth: c_int);
    }
    if let Some(&slot) = order.get(at + 8) {
        hotlua_prefetch_function(state, slot, 0);
    }
    if let Some(&slot) = order.get(at + 4) {
        hotlua_prefetch_function(state, slot, 1);
    }
    if let Some(&slot) = order.get(at + 2) {
        hotlua_prefetch_function(state, slot, 2);
    }
}

#[cfg(not(hotlua_inplace))]
pub(super) unsafe fn prefetch_ahead(_: *mut ffi::lua_State, _: &[c_int], _: usize) {}

/// What `hotlua_function_facts` (csrc/facts.c) reads of one Lua function: [`Facts`] holds one,
/// initialized once and written over for each function.
#[cfg(hotlua_inplace)]
#[repr(C)]
pub(super) struct FunctionRead {
    proto: *const std::ffi::c_void,
    source: *const std::ffi::c_char,
    len: usize,
    first: c_int,
    last: c_int,
    /// -1 when the prototype has no upvalue names (stripped code).
    nupvalues: c_int,
    names: [*const std::ffi::c_char; 256],
    name_lens: [usize; 256],
    cells: [*const std::ffi::c_void; 256],
}

#[cfg(hotlua_inplace)]
impl Default for FunctionRead {
    fn default() -> Self {
        // SAFETY: all zeros is a FunctionRead: null pointers and zero integers.
        unsafe { std::mem::zeroed() }
    }
}

#[cfg(hotlua_inplace)]
extern "C" {
    fn hotlua_function_facts(
        state: *mut ffi::lua_State,
        idx: c_int,
        read: *mut FunctionRead,
    ) -> c_int;
}

/// What one call read: how many functions (their facts go straight to [`Facts`]) and
/// upvalues, how many fields held a function (read or not), and the cells whose values it kept
/// on the stack, in the order it kept them.
#[derive(Default)]
pub(super) struct Read {
    pub(super) functions: usize,
    pub(super) upvalues: usize,
    pub(super) function_fields: usize,
    pub(super) cells: Vec<usize>,
    cells_kept: FxHashSet<usize>,
    /// The first error of memory, reported once the C frame is left.
    pub(super) failed: bool,
}

impl Read {
    /// Reads the function at the top of the stack. The value of each cell neither `facts` nor
    /// this read knows is moved to `keep_at` (relative to the top once it is pushed, so that
    /// the function stays at the top); every other value pushed is popped.
    ///
    /// SAFETY (for callers): the top of the stack holds a function and there is room for two
    /// more values.
    pub(super) unsafe fn top(
        &mut self,
        state: *mut ffi::lua_State,
        facts: &mut Facts,
        keep_at: c_int,
    ) {
        let identity = ffi::lua_topointer(state, -1) as usize;
        let mut function = Stored {
            prototype: None,
            #[cfg(hotlua_inplace)]
            proto_address: None,
            first_upvalue: facts.upvalues.len(),
            upvalue_count: 0,
            from_sources: false,
        };
        if !(facts.by_prototype && self.read_by_prototype(state, facts, keep_at, &mut function)) {
            self.read_by_debug_api(state, facts, keep_at, &mut function);
        }
        let upvalues = function.upvalue_count as usize;
        match facts.by_function.insert(identity, function) {
            Ok(true) => {
                self.functions += 1;
                self.upvalues += upvalues;
            }
            Ok(false) => facts.upvalues.truncate(facts.upvalues.len() - upvalues),
            Err(_) => self.failed = true,
        }
    }

    /// [`Read::top`] through the debug API.
    ///
    /// SAFETY: as for [`Read::top`]. lua_getinfo with '>' pops the copy pushed for it and
    /// fills `ar`, whose `what` and `source` point at strings the function's prototype keeps
    /// alive while it is on the stack. lua_getupvalue pushes one value per existing upvalue
    /// (room is made for each first: a function has at most 255) and returns NULL past the
    /// last, pushing nothing; lua_upvalueid is called with an index lua_getupvalue just
    /// accepted, while the function is just below the value it pushed.
    unsafe fn read_by_debug_api(
        &mut self,
        state: *mut ffi::lua_State,
        facts: &mut Facts,
        keep_at: c_int,
        function: &mut Stored,
    ) {
        let mut ar: ffi::lua_Debug = std::mem::zeroed();
        ffi::lua_pushvalue(state, -1);
        ffi::lua_getinfo(state, c">S".as_ptr(), &mut ar);
        if CStr::from_ptr(ar.what).to_bytes() != b"Lua" {
            return;
        }
        let source = CStr::from_ptr(ar.source).to_bytes();
        function.note_source(&facts.sources, source, ar.linedefined, ar.lastlinedefined);
        let mut index = 1;
        while ffi::lua_checkstack(state, 2) != 0 {
            let name = ffi::lua_getupvalue(state, -1, index);
            if name.is_null() {
                break;
            }
            let cell = cell_identity(state, -2, index);
            if self.keeps(facts, cell) {
                ffi::lua_insert(state, keep_at);
            } else {
                ffi::lua_pop(state, 1);
            }
            let name = facts.name(CStr::from_ptr(name).to_bytes());
            self.push_upvalue(facts, function, UpvalueFact { name, cell });
            index += 1;
        }
    }

    /// [`Read::top`] from the function's prototype (engine `inplace`'s layouts, once proven):
    /// what `lua_getinfo` would say without the chunk id it formats, and each upvalue's value
    /// read only for a cell not met yet (ten thousand functions share a few). False, having
    /// read only the prototype's address, for a prototype without its names (stripped code),
    /// which the debug API reads as it always has.
    ///
    /// SAFETY: as for [`Read::top`]; the layout is proven in this state. The names and the
    /// chunk name are strings of the prototype, alive while the function is on the stack.
    #[cfg(hotlua_inplace)]
    unsafe fn read_by_prototype(
        &mut self,
        state: *mut ffi::lua_State,
        facts: &mut Facts,
        keep_at: c_int,
        function: &mut Stored,
    ) -> bool {
        match hotlua_function_facts(state, -1, &mut facts.function_read) {
            // A C function or a main chunk: nothing to read.
            0 => return true,
            1 => {}
            _ => return false,
        }
        let read = &facts.function_read;
        function.proto_address = NonZeroUsize::new(read.proto as usize);
        let Ok(count) = usize::try_from(read.nupvalues) else {
            return false;
        };
        let source = std::slice::from_raw_parts(read.source.cast::<u8>(), read.len);
        function.note_source(&facts.sources, source, read.first, read.last);
        // Each cell kept takes one slot below the function.
        let room = ffi::lua_checkstack(state, read.nupvalues + 1) != 0;
        for (at, index) in (0..count).zip(1..) {
            let read = &facts.function_read;
            let cell = read.cells[at] as usize;
            let name = std::slice::from_raw_parts(read.names[at].cast::<u8>(), read.name_lens[at]);
            if room && self.keeps(facts, cell) {
                ffi::lua_getupvalue(state, -1, index);
                ffi::lua_insert(state, keep_at);
            }
            let name = facts.name(name);
            self.push_upvalue(facts, function, UpvalueFact { name, cell });
        }
        true
    }

    #[cfg(not(hotlua_inplace))]
    unsafe fn read_by_prototype(
        &mut self,
        _: *mut ffi::lua_State,
        _: &mut Facts,
        _: c_int,
        _: &mut Stored,
    ) -> bool {
        false
    }

    /// True if the value of `cell` is to be kept: neither `facts` nor this read has it (out of
    /// memory it is not kept, and reads as nil).
    fn keeps(&mut self, facts: &Facts, cell: usize) -> bool {
        if facts.cell_values.contains_key(&cell)
            || self.cells_kept.contains(&cell)
            || self.cells_kept.grow().is_err()
            || self.cells.try_push(cell).is_err()
        {
            return false;
        }
        self.cells_kept.insert(cell);
        true
    }

    /// Adds `upvalue` to the run of `function`, the last run of `facts`.
    fn push_upvalue(&mut self, facts: &mut Facts, function: &mut Stored, upvalue: UpvalueFact) {
        self.failed |= facts.upvalues.try_reserve(1).is_err();
        if !self.failed {
            facts.upvalues.push(upvalue);
            function.upvalue_count += 1;
        }
    }
}

impl Stored {
    /// Notes the function's chunk name `source` (the bytes of its prototype's source string)
    /// and lines: whether one of the batch's files (`sources`) made it, and its prototype's
    /// identity.
    fn note_source(&mut self, sources: &[String], source: &[u8], first: i32, last: i32) {
        self.from_sources = sources.iter().any(|s| s.as_bytes() == source);
        self.prototype = NonZeroUsize::new(source.as_ptr() as usize).map(|at| (at, first, last));
    }
}
