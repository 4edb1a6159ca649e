//! Build script of the `hotlua` binary.
//!
//! The vendored Lua 5.4 is linked statically into the executable. A C module loaded with
//! `require` (a `.so` compiled against the Lua 5.4 headers and not linked to any liblua) finds
//! `lua_*` / `luaL_*` through the executable, exactly as with the stock `lua5.4` program, which
//! is linked with `-Wl,-E`. For that the executable must export its symbols dynamically.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The folder holding `lua.h` of the vendored Lua (mlua-sys prints `cargo:include`), for the
    // test that builds a C module against it: found from this build, not from crate sources a
    // fresh machine may not have.
    if let Ok(include) = std::env::var("DEP_LUA_INCLUDE") {
        println!("cargo:rustc-env=HOTLUA_LUA_INCLUDE={include}");
    }
    // The target's OS, not the host's: build scripts run on the host.
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // ELF platforms whose linkers (GNU ld, gold, lld) take `--export-dynamic`. macOS needs
    // nothing: there the module is linked with `-undefined dynamic_lookup` and finds the
    // symbols of the executable.
    if matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic");
    }
}
