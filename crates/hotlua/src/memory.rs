//! Running out of memory as a Lua error instead of a process abort.
//!
//! mlua's allocator calls Rust's `handle_alloc_error` (which aborts the process) when the
//! system refuses an allocation, for instance under `ulimit -v`: `pcall` never sees the "not
//! enough memory" error `lua5.4` gives. [`recover_from_allocation_failure`] gives the state an
//! allocator that returns NULL instead, which Lua turns into that error.
//!
//! That is not enough when the heap is full of garbage: Lua frees its garbage when one of its
//! own allocations fails (an emergency collection), but a Rust allocation of hotlua's that
//! fails first (a message, a report) aborts. A binary that sets [`Reserve`] as its global
//! allocator keeps [`RESERVE_BYTES`] aside for those: the first Rust allocation the system
//! refuses frees the reserve and is tried again, and the next safe point of hotlua's (a
//! reload's end, `hotlua.poll`, `hotlua.sleep`) runs a full collection and takes the reserve
//! back ([`collect_if_reserve_spent`]). Lua's own allocations never take from the reserve:
//! they must fail, so that Lua collects.

mod malloc_only;

use std::alloc::{self, GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

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
    FOR_LUA.set(true);
    let allocated = if block.is_null() {
        alloc::alloc(layout)
    } else {
        let old = Layout::from_size_align_unchecked(osize, ffi::SYS_MIN_ALIGN);
        alloc::realloc(block as *mut u8, old, nsize)
    };
    FOR_LUA.set(false);
    allocated as *mut c_void
}

/// What the system may refuse to hotlua's Rust code before a collection gives Lua's garbage
/// back: far above what a reload's own bookkeeping takes between two safe points.
pub const RESERVE_BYTES: usize = 16 << 20;

thread_local! {
    /// True while [`allocate`] asks for Lua's memory on this thread: that allocation must
    /// fail rather than take the reserve.
    static FOR_LUA: Cell<bool> = const { Cell::new(false) };
}

/// The reserve's block, or null when it is spent (or was never taken).
static KEPT: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());

/// [`RESERVE_NEVER_TAKEN`], [`RESERVE_KEPT`] or [`RESERVE_SPENT`].
static RESERVE: AtomicU8 = AtomicU8::new(RESERVE_NEVER_TAKEN);
const RESERVE_NEVER_TAKEN: u8 = 0;
const RESERVE_KEPT: u8 = 1;
const RESERVE_SPENT: u8 = 2;

fn reserve_layout() -> Layout {
    Layout::from_size_align(RESERVE_BYTES, 16).expect("a valid layout")
}

/// The system allocator with [`RESERVE_BYTES`] kept aside for Rust allocations the system
/// refuses. Lua frees its garbage only when one of its own allocations fails; a Rust
/// allocation of hotlua's that fails first (a message, a report) takes from the reserve
/// instead of aborting, and the next safe point (a reload's end, `hotlua.poll`,
/// `hotlua.sleep`) runs a full collection and takes the reserve back. Lua's own allocations
/// never take from it. Set it in a binary that runs Lua with
/// [`recover_from_allocation_failure`]:
///
/// ```
/// #[global_allocator]
/// static ALLOCATOR: hotlua::Reserve = hotlua::Reserve;
/// ```
pub struct Reserve;

impl Reserve {
    /// Runs `allocation` again after freeing the reserve, when it failed outside Lua's own
    /// allocator and the reserve is there.
    fn or_from_reserve(allocation: impl Fn() -> *mut u8) -> *mut u8 {
        if RESERVE.load(Ordering::Relaxed) == RESERVE_NEVER_TAKEN {
            take_reserve();
        }
        let allocated = allocation();
        if !allocated.is_null() || FOR_LUA.get() {
            return allocated;
        }
        let kept = KEPT.swap(ptr::null_mut(), Ordering::AcqRel);
        if kept.is_null() {
            return allocated;
        }
        // SAFETY: `kept` came from `System.alloc(reserve_layout())` in `take_reserve`, and the
        // swap above made this the only place that frees it.
        unsafe { System.dealloc(kept, reserve_layout()) };
        RESERVE.store(RESERVE_SPENT, Ordering::Relaxed);
        allocation()
    }
}

// SAFETY: every block comes from `malloc_only` with the caller's layout and goes back to it
// with that layout; the reserve is a block of `System`'s of its own.
unsafe impl GlobalAlloc for Reserve {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Reserve::or_from_reserve(|| malloc_only::alloc(layout, false))
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Reserve::or_from_reserve(|| malloc_only::alloc(layout, true))
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        malloc_only::dealloc(block, layout)
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        // A failed realloc leaves `block` as it was: trying again is sound.
        Reserve::or_from_reserve(|| malloc_only::realloc(block, layout, size))
    }
}

/// Takes the reserve from the system, if it is not kept already. Returns whether it is kept.
fn take_reserve() -> bool {
    if !KEPT.load(Ordering::Acquire).is_null() {
        return true;
    }
    // SAFETY: a non-zero size; the block is freed only with the same layout.
    let block = unsafe { System.alloc(reserve_layout()) };
    if block.is_null() {
        // Tried again at the next safe point, not at every allocation.
        RESERVE.store(RESERVE_SPENT, Ordering::Relaxed);
        return false;
    }
    if KEPT
        .compare_exchange(ptr::null_mut(), block, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // Another thread took it meanwhile.
        // SAFETY: `block` is ours alone, allocated just above with this layout.
        unsafe { System.dealloc(block, reserve_layout()) };
    }
    RESERVE.store(RESERVE_KEPT, Ordering::Relaxed);
    true
}

/// At a safe point: when a refused allocation spent the [`Reserve`], runs a full collection
/// (the program's garbage is what filled the memory) and takes the reserve back. Does nothing
/// otherwise, or when the binary does not use [`Reserve`].
pub(crate) fn collect_if_reserve_spent(lua: &Lua) {
    if RESERVE.load(Ordering::Relaxed) != RESERVE_SPENT {
        return;
    }
    let _ = lua.gc_collect();
    take_reserve();
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
