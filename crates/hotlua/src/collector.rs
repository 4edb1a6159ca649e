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
}

impl<'lua> CollectorPause<'lua> {
    pub(crate) fn new(lua: &'lua Lua) -> CollectorPause<'lua> {
        let was_running = collector_running(lua);
        lua.gc_stop();
        CollectorPause { lua, was_running }
    }
}

impl Drop for CollectorPause<'_> {
    fn drop(&mut self) {
        if self.was_running {
            self.lua.gc_restart();
        }
    }
}
