//! An allocation the system refuses in the middle of a reload, on hotlua's own (Rust) side as
//! on Lua's: an error and the program exactly as it was, never a process abort.
//!
//! Rust's standard collections abort the process when an allocation fails, so every
//! collection of hotlua that grows with the program (the planner's maps and lists for a big
//! module, the walk's frames and visited pages for deep and large heaps) grows fallibly. This
//! binary's global allocator refuses the `k`-th large allocation (64 KiB or more: what runs
//! out first when the address space is nearly full, as under `ulimit -v`) made during a
//! reload, for every `k` until a reload makes no more; small allocations are served as usual,
//! as malloc's free lists would.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::Fixture;
use hotlua::{Engine, Options};

/// Allocations of this size or more are the ones refused.
const LARGE: usize = 64 << 10;

thread_local! {
    /// Index of the large allocation to refuse on this thread (`usize::MAX`: none).
    static REFUSE_AT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Large allocations made on this thread since the count was reset.
    static LARGE_SEEN: Cell<usize> = const { Cell::new(0) };
}

struct Refusing;

impl Refusing {
    fn refuses(size: usize) -> bool {
        if size < LARGE {
            return false;
        }
        // `try_with`: the thread's locals may be gone while it exits.
        let seen = LARGE_SEEN.try_with(|seen| seen.replace(seen.get() + 1));
        seen.is_ok_and(|seen| REFUSE_AT.try_with(|at| at.get() == seen) == Ok(true))
    }
}

// SAFETY: every call is passed on to the system allocator unchanged, except that some
// allocations and growths return null, which the `GlobalAlloc` contract allows.
unsafe impl GlobalAlloc for Refusing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Refusing::refuses(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Refusing::refuses(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && Refusing::refuses(new_size) {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Refusing = Refusing;

/// Enough that the planner's lists and maps pass [`LARGE`] under every Lua (a function's
/// facts take 40 bytes: at 1000 functions, none of engine `inplace`'s did on LuaJIT). The
/// planner holds no mlua handle per function, so this many fit in the 8000 handles mlua has
/// room for on Lua 5.1 and LuaJIT.
const FUNCTIONS: usize = 2000;
const DEPTH: usize = 10_000;
/// More mlua handles than a reload of this module holds at once (mlua has room for about 8000
/// on Lua 5.1 and LuaJIT).
const HANDLES: usize = if cfg!(any(feature = "lua51", feature = "luajit")) {
    7000
} else {
    100_000
};

/// A module with many functions and fields (the planner's collections grow large), and a deep
/// chain of tables in the program, below a table holding every function (the walk's frames
/// grow large).
fn module(version: &str) -> String {
    let mut source = String::from("local M = {}\nlocal count = 0\n");
    for i in 1..=FUNCTIONS {
        source += &format!("function M.f{i}() return '{version}', {i}, count end\n");
    }
    source
        + &format!(
            "function M.version() count = count + 1; return '{version}' end\n\
         function M.count() return count end\n\
         return M"
        )
}

const PROGRAM: &str = "
m = require 'm'
m.version()
held = {}
for i = 1, FUNCTIONS do held[i] = m['f' .. i] end
local t = { held = held }
deep = t
for i = 1, DEPTH do t.next = { i = i, version = m.version }; t = t.next end

function snapshot()
  local same, t, n = 0, deep, 0
  for i = 1, #held do if held[i] == m['f' .. i] then same = same + 1 end end
  while t.next do n = n + 1; t = t.next end
  return table.concat({ m.f1(), same, n, tostring(t.version == m.version), m.count() }, ' ')
end
";

fn setup(engine: Engine) -> Fixture {
    let f = Fixture::new();
    // Lua's own allocations: "not enough memory" instead of mlua's abort, as `hotlua run`
    // (LuaJIT allocates with its own allocator: only Rust's allocations are refused there).
    hotlua::recover_from_allocation_failure(&f.lua).unwrap();
    // mlua keeps the free slots of its handles in a Rust list that grows as handles are
    // dropped (mlua's bookkeeping, not hotlua's): grown here, before anything is refused.
    let handles: Vec<mlua::Table> = (0..HANDLES)
        .map(|_| f.lua.create_table().unwrap())
        .collect();
    drop(handles);
    f.reloader.set_engine(engine);
    f.write("m", &module("v1"));
    f.lua::<()>(&format!("FUNCTIONS, DEPTH = {FUNCTIONS}, {DEPTH}"));
    f.lua::<()>(PROGRAM);
    f.write("m", &module("v2"));
    f
}

fn engines() -> Vec<Engine> {
    let mut engines = vec![Engine::Walk];
    if Engine::inplace_available() {
        engines.push(Engine::Inplace);
    }
    engines
}

#[test]
fn refused_large_allocations_fail_the_reload_and_change_nothing() {
    for engine in engines() {
        let mut f = setup(engine);
        let mut before: String = f.lua("return snapshot()");
        let (mut failed, mut recovered) = (0, 0);
        for k in 0.. {
            LARGE_SEEN.set(0);
            REFUSE_AT.set(k);
            let result = f.reloader.reload(&["m"], &Options::default());
            REFUSE_AT.set(usize::MAX);
            let refused = LARGE_SEEN.get() > k;
            match result {
                Err(error) => {
                    assert!(refused, "{engine:?}: failed with nothing refused: {error}");
                    assert!(error.to_string().contains("'m'"), "{error}");
                    let after: String = f.lua("return snapshot()");
                    assert_eq!(
                        after, before,
                        "{engine:?}: changed by a failed reload: {error}"
                    );
                    failed += 1;
                }
                Ok(_) => {
                    let after: String = f.lua("return snapshot()");
                    let expected = format!("v2 {FUNCTIONS} {DEPTH} true 1");
                    assert_eq!(after, expected, "{engine:?} at k = {k}");
                    if !refused {
                        break;
                    }
                    // Lua retried after an emergency collection: start again from v1.
                    recovered += 1;
                    f = setup(engine);
                    before = f.lua("return snapshot()");
                }
            }
        }
        eprintln!("{engine:?}: {failed} reloads failed, {recovered} recovered");
        assert!(failed > 0, "{engine:?}: no refusal failed a reload");
    }
}
