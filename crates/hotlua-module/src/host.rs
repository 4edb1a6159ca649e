//! Which Lua the host runs, told from the symbols it exports, before anything calls into it.
//!
//! A `hotlua.so` built for one Lua loads into another whenever that Lua exports every symbol
//! the build calls: Lua 5.4 and 5.5 share almost all of them, and LuaJIT has all of Lua 5.1's.
//! It then reads the host's structures with the wrong layout and crashes the process (the
//! `lua54` build in skynet master, which runs Lua 5.5). So `luaopen_hotlua` asks the dynamic
//! linker which symbols exist before mlua touches the state: only presence is looked at,
//! since calling a function whose signature differs between versions (`lua_version` returns a
//! pointer in 5.2, 5.3 and LuaJIT, a number in 5.4 and 5.5) could itself crash.

use std::ffi::CStr;

/// A Lua the module can be built for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Flavour {
    Lua51,
    Lua52,
    Lua53,
    Lua54,
    Lua55,
    LuaJit,
}

impl Flavour {
    /// The flavour this library was built for.
    pub(crate) const BUILT: Flavour = if cfg!(feature = "lua55") {
        Flavour::Lua55
    } else if cfg!(feature = "lua54") {
        Flavour::Lua54
    } else if cfg!(feature = "lua53") {
        Flavour::Lua53
    } else if cfg!(feature = "lua52") {
        Flavour::Lua52
    } else if cfg!(feature = "lua51") {
        Flavour::Lua51
    } else {
        Flavour::LuaJit
    };

    /// The flavour whose symbols the process exports: each test names a function that the
    /// versions before it lack (LuaJIT first: it also has 5.2's `lua_upvaluejoin`).
    fn running() -> Flavour {
        if exported(c"luaJIT_setmode") {
            Flavour::LuaJit
        } else if exported(c"lua_pushexternalstring") {
            Flavour::Lua55
        } else if exported(c"lua_newuserdatauv") {
            Flavour::Lua54
        } else if exported(c"lua_rotate") {
            Flavour::Lua53
        } else if exported(c"lua_upvaluejoin") {
            Flavour::Lua52
        } else {
            Flavour::Lua51
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flavour::Lua51 => "Lua 5.1",
            Flavour::Lua52 => "Lua 5.2",
            Flavour::Lua53 => "Lua 5.3",
            Flavour::Lua54 => "Lua 5.4",
            Flavour::Lua55 => "Lua 5.5",
            Flavour::LuaJit => "LuaJIT",
        }
    }

    /// The argument of `scripts/build-module` (and the crate's feature) for this flavour.
    fn build_name(self) -> &'static str {
        match self {
            Flavour::Lua51 => "lua51",
            Flavour::Lua52 => "lua52",
            Flavour::Lua53 => "lua53",
            Flavour::Lua54 => "lua54",
            Flavour::Lua55 => "lua55",
            Flavour::LuaJit => "luajit",
        }
    }
}

/// Why this library must not run in the host, or `None` when the host runs the Lua it was
/// built for.
pub(crate) fn mismatch() -> Option<String> {
    let running = Flavour::running();
    if running == Flavour::BUILT {
        return None;
    }
    // The Lua 5.1 build would run in LuaJIT, but copy what the LuaJIT build shares.
    let consequence = match (Flavour::BUILT, running) {
        (Flavour::Lua51, Flavour::LuaJit) => {
            ", where it would copy a module's locals on each reload instead of sharing them"
        }
        _ => ", whose data it would read with the wrong layout",
    };
    Some(format!(
        "this hotlua.so is built for {} but runs in {}{consequence}: build it for {} \
         (scripts/build-module {}, or `luarocks make` with that Lua's luarocks)",
        Flavour::BUILT.name(),
        running.name(),
        running.name(),
        running.build_name(),
    ))
}

/// True when the process exports `symbol`: the host's Lua API is global, or the module's own
/// references to it could not have been resolved when Lua loaded it.
fn exported(symbol: &CStr) -> bool {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks the name up.
    !unsafe { libc::dlsym(libc::RTLD_DEFAULT, symbol.as_ptr()) }.is_null()
}
