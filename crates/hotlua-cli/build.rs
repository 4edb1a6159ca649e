//! Build script of the `hotlua` binary.
//!
//! The vendored Lua 5.4 is linked statically into the executable. A C module loaded with
//! `require` (a `.so` compiled against the Lua 5.4 headers and not linked to any liblua) finds
//! `lua_*` / `luaL_*` through the executable, exactly as with the stock `lua5.4` program, which
//! is linked with `-Wl,-E`. For that the executable must export its symbols dynamically.
//!
//! On Linux it also sets `HOTLUA_MULTIARCH`, the Debian multiarch name of the target
//! (`x86_64-linux-gnu`), whose `/usr/lib/<multiarch>/lua/5.4` folder holds the C libraries
//! apt installs: `package.cpath` searches it, as the system's `lua5.4` does.

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
    if os == "linux" {
        let target = std::env::var("TARGET").unwrap_or_default();
        if let Some(multiarch) = multiarch(&target) {
            println!("cargo:rustc-env=HOTLUA_MULTIARCH={multiarch}");
        }
    }
}

/// `x86_64-unknown-linux-gnu` -> `x86_64-linux-gnu`, `i686-unknown-linux-gnu` ->
/// `i386-linux-gnu`, `armv7-unknown-linux-gnueabihf` -> `arm-linux-gnueabihf`.
fn multiarch(target: &str) -> Option<String> {
    let arch = target.split('-').next()?;
    let (_, env) = target.split_once("-linux-")?;
    let arch = match arch {
        "i386" | "i486" | "i586" | "i686" => "i386",
        "riscv64gc" => "riscv64",
        arm if arm.starts_with("arm") || arm.starts_with("thumb") => "arm",
        other => other,
    };
    Some(format!("{arch}-linux-{env}"))
}
