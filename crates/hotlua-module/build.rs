//! Build script of the C module.
//!
//! The module leaves every `lua_*` / `luaL_*` symbol undefined: the host that loads it (the
//! `lua5.4` executable, a C program) provides them. ELF linkers accept undefined symbols in a
//! shared library by default; Apple's linker must be told to look them up at load time.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The target's OS, not the host's: build scripts run on the host.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        println!("cargo:rustc-cdylib-link-arg=-undefined");
        println!("cargo:rustc-cdylib-link-arg=dynamic_lookup");
    }
}
