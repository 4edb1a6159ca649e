//! Builds the C shim (csrc/: the `inplace` engine, and staging's slot-for-slot table copies)
//! when the library is built with the vendored Lua 5.4 (features `lua54` + `vendored`), and
//! sets `cfg(hotlua_inplace)`.
//!
//! The shim includes Lua's *internal* headers (lobject.h, lstate.h, ...), so it must be
//! compiled against the very source folder mlua built its Lua from. mlua-sys (`links = "lua"`)
//! exports the folder of the public headers it copied from that source (`DEP_LUA_INCLUDE`);
//! the source folder itself is found among the `lua-src` crates cargo unpacked (or at
//! `HOTLUA_LUA_SRC`), and accepted only when its `lua.h` and `luaconf.h` are byte-identical to
//! the exported ones. The shim also refuses (`#error`) any release other than the exported one.
//! Without such a folder the library builds with the `walk` engine only, and says so.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hotlua_inplace)");
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=HOTLUA_LUA_SRC");
    println!("cargo:rerun-if-env-changed=HOTLUA_NO_INPLACE");
    let lua54 = env::var_os("CARGO_FEATURE_LUA54").is_some();
    let vendored = env::var_os("CARGO_FEATURE_VENDORED").is_some();
    if !lua54 || !vendored || env::var_os("HOTLUA_NO_INPLACE").is_some() {
        return;
    }
    let Some(include) = env::var_os("DEP_LUA_INCLUDE").map(PathBuf::from) else {
        println!(
            "cargo:warning=hotlua: mlua-sys exported no Lua headers; engine `inplace` not built"
        );
        return;
    };
    let (Ok(lua_h), Ok(luaconf_h)) = (
        fs::read(include.join("lua.h")),
        fs::read(include.join("luaconf.h")),
    ) else {
        println!(
            "cargo:warning=hotlua: no lua.h in {}; engine `inplace` not built",
            include.display()
        );
        return;
    };
    let Some(release) = release_num(&String::from_utf8_lossy(&lua_h)) else {
        println!("cargo:warning=hotlua: cannot read the Lua release; engine `inplace` not built");
        return;
    };
    let matches = |dir: &Path| {
        fs::read(dir.join("lua.h")).is_ok_and(|bytes| bytes == lua_h)
            && fs::read(dir.join("luaconf.h")).is_ok_and(|bytes| bytes == luaconf_h)
            && dir.join("lstate.h").is_file()
    };
    let Some(source) = candidates().into_iter().find(|dir| matches(dir)) else {
        println!(
            "cargo:warning=hotlua: the source of the vendored Lua {release} was not found \
             (set HOTLUA_LUA_SRC to its folder); engine `inplace` not built"
        );
        return;
    };
    println!("cargo:rerun-if-changed={}", source.display());

    let mut build = cc::Build::new();
    build
        .files([
            "csrc/proto.c",
            "csrc/scan.c",
            "csrc/collector.c",
            "csrc/tables.c",
        ])
        .include(&source)
        .define("HOTLUA_EXPECTED_RELEASE", release.to_string().as_str())
        // The same configuration lua-src compiles Lua 5.4 with.
        .define("LUA_COMPAT_5_3", None)
        .warnings(true)
        .flag_if_supported("-Wno-unused-parameter");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    match os.as_str() {
        "linux" | "android" => {
            build.define("LUA_USE_LINUX", None);
        }
        "macos" => {
            build.define("LUA_USE_MACOSX", None);
        }
        "windows" => {
            build.define("LUA_USE_WINDOWS", None);
        }
        _ => {
            build.define("LUA_USE_POSIX", None);
        }
    }
    build.compile("hotlua_inplace");
    println!("cargo:rustc-cfg=hotlua_inplace");
}

/// `LUA_VERSION_RELEASE_NUM` as lua.h defines it: `(LUA_VERSION_NUM * 100 + 9)`.
fn release_num(lua_h: &str) -> Option<u32> {
    let define = |name: &str| {
        lua_h.lines().find_map(|line| {
            let rest = line.trim().strip_prefix("#define")?.trim_start();
            let value = rest.strip_prefix(name)?;
            value
                .starts_with([' ', '\t'])
                .then(|| value.trim().to_owned())
        })
    };
    let num: u32 = define("LUA_VERSION_NUM")?.parse().ok()?;
    let release = define("LUA_VERSION_RELEASE_NUM")?;
    let patch: u32 = release
        .trim_end_matches(')')
        .rsplit('+')
        .next()?
        .trim()
        .parse()
        .ok()?;
    Some(num * 100 + patch)
}

/// Folders that may hold the vendored Lua 5.4 source: `HOTLUA_LUA_SRC`, then every
/// `lua-src-*/lua-5.4.*` cargo unpacked from a registry or a `vendor` folder above the crate.
fn candidates() -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Some(dir) = env::var_os("HOTLUA_LUA_SRC") {
        found.push(PathBuf::from(dir));
    }
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let mut roots = Vec::new();
    if let Some(home) = cargo_home {
        if let Ok(registries) = fs::read_dir(home.join("registry").join("src")) {
            roots.extend(registries.flatten().map(|entry| entry.path()));
        }
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    roots.extend(manifest.ancestors().map(|dir| dir.join("vendor")));
    for root in roots {
        let Ok(crates) = fs::read_dir(&root) else {
            continue;
        };
        let mut crates: Vec<PathBuf> = crates
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("lua-src"))
            })
            .collect();
        // Newest first: the likeliest match.
        crates.sort();
        crates.reverse();
        for krate in crates {
            let Ok(dirs) = fs::read_dir(&krate) else {
                continue;
            };
            found.extend(dirs.flatten().map(|entry| entry.path()).filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("lua-5.4"))
            }));
        }
    }
    found
}
