//! Running out of memory as a Lua error instead of a process abort.
//!
//! mlua's allocator calls Rust's `handle_alloc_error` (which aborts the process) when the
//! system refuses an allocation, for instance under `ulimit -v`: `pcall` never sees the "not
//! enough memory" error `lua5.4` gives. [`recover_from_allocation_failure`] gives the state an
//! allocator that returns NULL instead, which Lua turns into that error.

use std::alloc::{self, Layout};
use std::ffi::c_void;
use std::ptr;

use mlua::{ffi, Lua};

/// Makes `lua` answer an allocation the system refuses with Lua's "not enough memory" error,
/// as `lua5.4` does, instead of aborting the process. Returns false, changing nothing, when
/// the state does not use mlua's allocator (a state created by a C host, LuaJIT's own
/// allocator) or has a memory limit ([`Lua::set_memory_limit`], which keeps mlua's allocator).
///
/// mlua's memory accounting ([`Lua::used_memory`]) then comes from the collector's count, and
/// [`Lua::set_memory_limit`] is no longer available.
pub fn recover_from_allocation_failure(lua: &Lua) -> mlua::Result<bool> {
    // Only a state on mlua's allocator accepts a limit. Setting one also tells mlua that
    // allocations can fail, so it keeps every allocating call protected (it skips that when a
    // state has no limit and so could only abort).
    match lua.set_memory_limit(isize::MAX as usize) {
        Ok(0) => {}
        Ok(limit) => {
            lua.set_memory_limit(limit)?;
            return Ok(false);
        }
        Err(_) => return Ok(false),
    }
    // SAFETY: the closure only swaps the allocator of the state. Every block allocated so far
    // came from mlua's allocator, which is Rust's global allocator with the layout
    // (size, SYS_MIN_ALIGN): `allocate` frees and grows them with that same layout.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            ffi::lua_setallocf(state, allocate, ptr::null_mut());
        })?;
    }
    Ok(true)
}

/// A `lua_Alloc` on Rust's global allocator with mlua's layout, that returns NULL when the
/// system refuses, as Lua's own allocator (`realloc`) does.
///
/// SAFETY (invariant): Lua passes a block it got from this allocator or mlua's (same layout)
/// with its size `osize`, or NULL; on failure the old block is left untouched, as Lua requires.
unsafe extern "C" fn allocate(
    _: *mut c_void,
    block: *mut c_void,
    osize: usize,
    nsize: usize,
) -> *mut c_void {
    if nsize == 0 {
        if !block.is_null() {
            alloc::dealloc(
                block as *mut u8,
                Layout::from_size_align_unchecked(osize, ffi::SYS_MIN_ALIGN),
            );
        }
        return ptr::null_mut();
    }
    let Ok(layout) = Layout::from_size_align(nsize, ffi::SYS_MIN_ALIGN) else {
        return ptr::null_mut();
    };
    if block.is_null() {
        return alloc::alloc(layout) as *mut c_void;
    }
    let old = Layout::from_size_align_unchecked(osize, ffi::SYS_MIN_ALIGN);
    alloc::realloc(block as *mut u8, old, nsize) as *mut c_void
}

/// Lifts the state's memory limit ([`Lua::set_memory_limit`]) until dropped: undoing a
/// failed reload writes back values that were there a moment ago, but mlua's calls may still
/// need a little stack, and the host's limit must not leave a reload half undone.
pub(crate) struct LimitLifted<'lua> {
    lua: &'lua Lua,
    limit: Option<usize>,
}

impl<'lua> LimitLifted<'lua> {
    pub(crate) fn new(lua: &'lua Lua) -> LimitLifted<'lua> {
        let limit = lua.set_memory_limit(0).ok().filter(|&limit| limit != 0);
        LimitLifted { lua, limit }
    }
}

impl Drop for LimitLifted<'_> {
    fn drop(&mut self) {
        if let Some(limit) = self.limit {
            let _ = self.lua.set_memory_limit(limit);
        }
    }
}
