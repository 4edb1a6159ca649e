//! The warning function of `luaL_newstate` (lauxlib.c `warnfoff`/`warnfon`/`warnfcont`), which
//! `lua5.4` uses: warnings are off until `warn("@on")` (or `-W`), then print
//! `Lua warning: ...` on stderr.

use std::cell::Cell;
use std::io::Write;

use mlua::Lua;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Off,
    On,
    /// Inside a message sent in pieces (`warn("a", "b")`).
    Continued,
}

/// Installs the warning function on `lua`, warnings off.
pub fn install(lua: &Lua) {
    let mode = Cell::new(Mode::Off);
    lua.set_warning_function(move |_, msg, to_continue| {
        let mut stderr = std::io::stderr().lock();
        match mode.get() {
            Mode::Continued => {}
            current => {
                if !to_continue {
                    if let Some(control) = msg.strip_prefix('@') {
                        match control {
                            "on" => mode.set(Mode::On),
                            "off" => mode.set(Mode::Off),
                            _ => {}
                        }
                        return Ok(());
                    }
                }
                if current == Mode::Off {
                    return Ok(());
                }
                let _ = stderr.write_all(b"Lua warning: ");
            }
        }
        let _ = stderr.write_all(msg.as_bytes());
        if to_continue {
            mode.set(Mode::Continued);
        } else {
            let _ = stderr.write_all(b"\n");
            mode.set(Mode::On);
        }
        Ok(())
    });
}
