//! The collector as the program set it: paused while hotlua works, and put back after a new
//! top level changed it.

use std::cell::Cell;

use mlua::Lua;

/// The collector's state as the program chose it: running or stopped and, on Lua 5.4, its
/// mode. A reload that fails restores it, whatever the new top level did to it.
pub(crate) struct CollectorState {
    running: bool,
    /// Whether the collector was generational before the new top levels ran, known only if one
    /// of them asked to switch modes: Lua tells the mode only by changing it, and switching to
    /// generational costs a full collection, so it is asked only then ([`crate::limits`]).
    pub(crate) generational_before: Cell<Option<bool>>,
}

impl CollectorState {
    pub(crate) fn of(lua: &Lua) -> CollectorState {
        CollectorState {
            running: collector_running(lua),
            generational_before: Cell::new(None),
        }
    }

    pub(crate) fn restore(&self, lua: &Lua) {
        #[cfg(feature = "lua54")]
        if let Some(generational) = self.generational_before.get() {
            // SAFETY: lua_gc with a mode and zero parameters (keep the current ones) raises no
            // error and needs no stack.
            unsafe {
                let _ = lua.exec_raw::<()>((), |state| {
                    let mode = if generational {
                        mlua::ffi::LUA_GCGEN
                    } else {
                        mlua::ffi::LUA_GCINC
                    };
                    mlua::ffi::lua_gc(state, mode, 0, 0, 0);
                });
            }
        }
        if self.running {
            lua.gc_restart();
        } else {
            lua.gc_stop();
        }
    }
}

/// Whether the collector runs. Lua 5.1 cannot tell: a program that stopped it and runs on 5.1
/// gets it restarted after a reload.
#[cfg(not(any(feature = "lua51", feature = "luajit")))]
fn collector_running(lua: &Lua) -> bool {
    lua.gc_is_running()
}

/// Whether the collector runs. Lua 5.1 cannot tell: a program that stopped it and runs on 5.1
/// gets it restarted after a reload.
#[cfg(any(feature = "lua51", feature = "luajit"))]
fn collector_running(_lua: &Lua) -> bool {
    true
}

/// Stops the collector for its lifetime, restarting it only if it was running.
pub(crate) struct CollectorPause<'lua> {
    lua: &'lua Lua,
    was_running: bool,
    /// The collector's debt when the pause began, put back when it ends (where the layout
    /// of the global state is proven).
    #[cfg(hotlua_inplace)]
    debt: Option<isize>,
}

#[cfg(hotlua_inplace)]
extern "C" {
    fn hotlua_gc_debt(state: *mut mlua::ffi::lua_State) -> isize;
    fn hotlua_gc_set_debt(state: *mut mlua::ffi::lua_State, debt: isize);
}

impl<'lua> CollectorPause<'lua> {
    pub(crate) fn new(lua: &'lua Lua) -> CollectorPause<'lua> {
        let was_running = collector_running(lua);
        #[cfg(hotlua_inplace)]
        let debt = crate::layout::proven(lua).then(|| debt(lua).ok()).flatten();
        lua.gc_stop();
        CollectorPause {
            lua,
            was_running,
            #[cfg(hotlua_inplace)]
            debt,
        }
    }
}

impl Drop for CollectorPause<'_> {
    fn drop(&mut self) {
        if self.was_running {
            self.lua.gc_restart();
            // `restart` zeroes the debt, which would start a collection step (a major one, in
            // generational mode after a bad collection) at the next allocation: go on as if
            // the reload had not happened instead.
            #[cfg(hotlua_inplace)]
            if let Some(debt) = self.debt {
                set_debt(self.lua, debt);
            }
        }
    }
}

/// Runs `run` (the layout proof) as if it allocated nothing: with the collector stopped and,
/// where `proven` says the layout is proven after it, the debt put back to what it was before
/// (the allocations since, counted by `lua_gc`, taken off), so the program's collections (and
/// the order its finalizers run in) fall where they would without hotlua. The debt cannot be
/// read before the proof: the layout it is read with is what the proof proves.
#[cfg(hotlua_lua54_shim)]
pub(crate) fn unscheduled<R>(
    lua: &Lua,
    run: impl FnOnce() -> R,
    proven: impl FnOnce(&R) -> bool,
) -> R {
    let was_running = collector_running(lua);
    let before = counted_bytes(lua);
    lua.gc_stop();
    let result = run();
    if was_running {
        let spent = counted_bytes(lua) as isize - before as isize;
        let debt = proven(&result).then(|| debt(lua).ok()).flatten();
        lua.gc_restart();
        if let Some(debt) = debt {
            set_debt(lua, debt - spent);
        }
    }
    result
}

/// The bytes the collector counts as allocated (`collectgarbage("count")` in bytes).
#[cfg(hotlua_lua54_shim)]
fn counted_bytes(lua: &Lua) -> usize {
    let mut bytes = 0;
    // SAFETY: lua_gc with COUNT and COUNTB reads two numbers; it raises nothing and needs no
    // stack.
    unsafe {
        let _ = lua.exec_raw::<()>((), |state| {
            let kib = mlua::ffi::lua_gc(state, mlua::ffi::LUA_GCCOUNT, 0, 0, 0);
            let rest = mlua::ffi::lua_gc(state, mlua::ffi::LUA_GCCOUNTB, 0, 0, 0);
            bytes = kib.max(0) as usize * 1024 + rest.max(0) as usize;
        });
    }
    bytes
}

/// The collector's debt (Lua 5.4's `GCdebt`; in LuaJIT, how far the allocations are past the
/// next step's threshold).
#[cfg(hotlua_inplace)]
pub(crate) fn debt(lua: &Lua) -> mlua::Result<isize> {
    let mut debt = 0;
    // SAFETY: reads fields of the state's global_State, whose layout is proven
    // (csrc/lua54/collector.c, csrc/luajit/internals.c).
    unsafe { lua.exec_raw::<()>((), |state| debt = hotlua_gc_debt(state))? };
    Ok(debt)
}

/// Puts back a debt [`debt`] read in this state.
#[cfg(hotlua_inplace)]
pub(crate) fn set_debt(lua: &Lua, debt: isize) {
    // SAFETY: keeps the state's total allocation count as it is and only moves the debt (or
    // LuaJIT's threshold) in a global_State whose layout is proven (csrc/lua54/collector.c,
    // csrc/luajit/internals.c); it allocates nothing and raises nothing.
    unsafe {
        let _ = lua.exec_raw::<()>((), |state| hotlua_gc_set_debt(state, debt));
    }
}

/// A state holding a heap of 1e5 tables right after a full collection (its collector owes
/// nothing), the layout proven as `Reloader::new` proves it: where tests read the debt.
#[cfg(all(test, hotlua_lua54_shim))]
pub(crate) fn collected_state() -> Lua {
    let lua = Lua::new();
    lua.load("keep = {} for i = 1, 1e5 do keep[i] = { i } end collectgarbage()")
        .exec()
        .unwrap();
    // The proof allocates, so it comes before the debt is read.
    crate::layout::check(&lua).unwrap();
    lua
}

#[cfg(all(test, hotlua_lua54_shim))]
mod tests {
    use super::*;

    /// A reload between two collector steps leaves the next step where it was planned: the
    /// pause puts the debt back instead of zeroing it (which starts a step, a whole major
    /// collection in generational mode, at the next allocation).
    #[test]
    fn a_pause_leaves_the_collectors_debt_as_it_was() {
        let lua = collected_state();
        let before = debt(&lua).unwrap();
        assert!(
            before < 0,
            "a collector right after a full cycle owes nothing: {before}"
        );
        {
            let _paused = CollectorPause::new(&lua);
            lua.load("local garbage = {} for i = 1, 1e4 do garbage[i] = { i } end")
                .exec()
                .unwrap();
        }
        assert_eq!(debt(&lua).unwrap(), before);
    }
}
