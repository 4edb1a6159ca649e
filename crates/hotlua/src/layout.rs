//! Whether the Lua running this state lays its objects out as the C shim was compiled to
//! expect (`layout.c` of csrc/lua54/ or csrc/luajit/), proven once per state before anything
//! reads them.
//!
//! A program that vendors Lua runs the very Lua the shim was compiled against; the C module
//! may be loaded by any `lua5.4` or LuaJIT (Debian's 5.4.4, a distribution's 5.4.6, skynet's
//! patched 5.4, a LuaJIT without GC64). Where the proof fails, everything that reads Lua's
//! structures is left out: engine `inplace` gives way to `walk` (said once per process on
//! stderr, and in each report's warnings), and staging compares tables by key. skynet 1.8.0's patched Lua 5.4.7 is refused
//! (its prototypes keep their chunk names apart): its services reload with `walk`.

use mlua::Lua;

/// What [`check`] found in this state: `None` when the layout is proven, else what disagreed.
struct Proof(Option<String>);

/// Runs the proof in `lua` unless it ran already, and says on stderr when it failed (once per
/// process; each report's warnings say it too).
pub(crate) fn check(lua: &Lua) -> mlua::Result<()> {
    if lua.app_data_ref::<Proof>().is_some() {
        return Ok(());
    }
    extern "C-unwind" {
        fn hotlua_layout_check(state: *mut mlua::ffi::lua_State) -> std::ffi::c_int;
    }
    // SAFETY: a lua_CFunction taking no arguments; it reads only fields of objects it made
    // and of the global state, each after the fields before it agreed (see the backend's
    // layout.c), and the C module has checked that the Lua is the version it was built for
    // (5.4, or LuaJIT) before this runs.
    let probe = unsafe { lua.create_c_function(hotlua_layout_check)? };
    #[cfg(hotlua_lua54_shim)]
    let (proven, wrong): (bool, Option<String>) = crate::collector::unscheduled(
        lua,
        || probe.call(()),
        |result| matches!(result, Ok((true, _))),
    )?;
    // LuaJIT's collector has no debt to put back: the proof's few kilobytes move its next
    // step a little, as any allocation does.
    #[cfg(not(hotlua_lua54_shim))]
    let (proven, wrong): (bool, Option<String>) = probe.call(())?;
    let wrong = (!proven).then(|| wrong.unwrap_or_default());
    // Once per process: a host that runs many states (skynet's services) would say it for each.
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Some(wrong) = &wrong {
        if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!("hotlua: {}; using walk", unavailable(wrong));
        }
    }
    lua.set_app_data(Proof(wrong));
    Ok(())
}

/// True when the layout is proven in `lua` (the proof runs now if it never ran; a proof that
/// cannot run, out of memory, proves nothing).
pub(crate) fn proven(lua: &Lua) -> bool {
    reason_unproven(lua).is_none()
}

/// What keeps engine `inplace` from running in `lua`, as a report's warning says it.
pub(crate) fn reason_unproven(lua: &Lua) -> Option<String> {
    if let Err(error) = check(lua) {
        return Some(unavailable(&format!("the layout check failed: {error}")));
    }
    let proof = lua.app_data_ref::<Proof>()?;
    proof.0.as_deref().map(unavailable)
}

fn unavailable(detail: &str) -> String {
    format!("engine inplace is not available for this Lua build ({detail})")
}
