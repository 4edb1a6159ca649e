//! Builds the planner's data walks (csrc/data/, public C API only) for every Lua, and the C
//! shim (csrc/: the `inplace` engine, and for Lua 5.4 staging's slot-for-slot table copies)
//! when the library is built for Lua 5.4 or LuaJIT, and sets `cfg(hotlua_inplace)` (and
//! `cfg(hotlua_lua54_shim)` for 5.4).
//!
//! The shim includes Lua's *internal* headers (lobject.h, lstate.h, lj_obj.h, ...). With the
//! vendored Lua 5.4 it is compiled against the very source folder mlua built its Lua from:
//! mlua-sys (`links = "lua"`) exports the folder of the public headers it copied from that
//! source (`DEP_LUA_INCLUDE`); the source folder itself is found among the `lua-src` crates
//! cargo unpacked (or at `HOTLUA_LUA_SRC`), and accepted only when its `lua.h` and
//! `luaconf.h` are byte-identical to the exported ones. Without the vendored Lua (the C
//! module, loaded by a `lua5.4` of any release), it is compiled against the newest 5.4 folder
//! of `lua-src`; for LuaJIT, against the newest `luajit-src` (or `HOTLUA_LUAJIT_SRC`). In every
//! build the shim proves at run time, before it reads anything, that the running Lua lays its
//! objects out as those headers say (each backend's `layout.c`). The 5.4 shim
//! refuses (`#error`) any release other than its folder's. Without such a folder the library
//! builds with the `walk` engine only, and says so.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(hotlua_inplace)");
    println!("cargo::rustc-check-cfg=cfg(hotlua_lua54_shim)");
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=HOTLUA_LUA_SRC");
    println!("cargo:rerun-if-env-changed=HOTLUA_LUAJIT_SRC");
    println!("cargo:rerun-if-env-changed=HOTLUA_NO_INPLACE");
    build_data_walks();
    if env::var_os("HOTLUA_NO_INPLACE").is_some() {
        return;
    }
    let built = if env::var_os("CARGO_FEATURE_LUA54").is_some() {
        build_lua54()
    } else if env::var_os("CARGO_FEATURE_LUAJIT").is_some() {
        build_luajit()
    } else {
        return;
    };
    match built {
        Ok(()) => println!("cargo:rustc-cfg=hotlua_inplace"),
        Err(why) => println!("cargo:warning=hotlua: {why}; engine `inplace` not built"),
    }
}

/// The Lua 5.4 backend (csrc/lua54/), and staging's slot-for-slot copies with it.
fn build_lua54() -> Result<(), String> {
    let (source, release) = if env::var_os("CARGO_FEATURE_VENDORED").is_some() {
        vendored_source()?
    } else {
        newest_source()?
    };
    let mut build = shim(
        "lua54",
        &[
            "proto.c",
            "collector.c",
            "tables.c",
            "internals.c",
            "layout.c",
        ],
        &source,
    );
    build
        .define("HOTLUA_EXPECTED_RELEASE", release.to_string().as_str())
        // The same configuration lua-src compiles Lua 5.4 with.
        .define("LUA_COMPAT_5_3", None);
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    match os.as_str() {
        "linux" | "android" => build.define("LUA_USE_LINUX", None),
        "macos" => build.define("LUA_USE_MACOSX", None),
        "windows" => build.define("LUA_USE_WINDOWS", None),
        _ => build.define("LUA_USE_POSIX", None),
    };
    build.compile("hotlua_inplace");
    println!("cargo:rustc-cfg=hotlua_lua54_shim");
    Ok(())
}

/// The LuaJIT backend (csrc/luajit/), against the headers of the newest LuaJIT the
/// `luajit-src` crate unpacked (or `HOTLUA_LUAJIT_SRC`): the LuaJIT that runs it proves its
/// layout at run time, the vendored one included.
fn build_luajit() -> Result<(), String> {
    let source = luajit_source()?;
    let target_width = env::var("CARGO_CFG_TARGET_POINTER_WIDTH").unwrap_or_default();
    if target_width != "64" {
        return Err("the LuaJIT backend is written for 64-bit targets (GC64)".to_owned());
    }
    shim("luajit", &["proto.c", "internals.c", "layout.c"], &source).compile("hotlua_inplace");
    Ok(())
}

/// The source folder of LuaJIT: `HOTLUA_LUAJIT_SRC`, or the newest `luajit-src` unpacked.
fn luajit_source() -> Result<PathBuf, String> {
    match env::var_os("HOTLUA_LUAJIT_SRC") {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => crate_folders("luajit-src")
            .into_iter()
            .flat_map(|krate| [krate.join("luajit2/src"), krate.join("luajit/src")])
            .find(|dir| dir.join("lj_obj.h").is_file())
            .ok_or_else(|| {
                "no LuaJIT source folder was found (set HOTLUA_LUAJIT_SRC to one)".to_owned()
            }),
    }
}

/// csrc/data/, the planner's walks over data tables, for every Lua: they use only the public
/// C API, whose headers any release of the same Lua version provides.
fn build_data_walks() {
    let headers = public_headers().unwrap_or_else(|why| panic!("hotlua: {why}"));
    println!("cargo:rerun-if-changed={}", headers.display());
    cc::Build::new()
        .files(["csrc/data/collect.c", "csrc/data/merge.c"])
        .include(headers)
        .warnings(true)
        .compile("hotlua_data");
}

/// The folder of `lua.h` for the Lua this build is for: the vendored Lua's (exported by
/// mlua-sys), else LuaJIT's or that version's in the `lua-src` crates.
fn public_headers() -> Result<PathBuf, String> {
    if env::var_os("CARGO_FEATURE_LUAJIT").is_some() {
        return luajit_source();
    }
    if let Some(include) = env::var_os("DEP_LUA_INCLUDE") {
        return Ok(PathBuf::from(include));
    }
    let versions = [
        ("CARGO_FEATURE_LUA55", "lua-5.5"),
        ("CARGO_FEATURE_LUA54", "lua-5.4"),
        ("CARGO_FEATURE_LUA53", "lua-5.3"),
        ("CARGO_FEATURE_LUA52", "lua-5.2"),
        ("CARGO_FEATURE_LUA51", "lua-5.1"),
    ];
    let (_, prefix) = versions
        .iter()
        .find(|(feature, _)| env::var_os(feature).is_some())
        .ok_or("no Lua version feature is on")?;
    lua_src_folders(prefix)
        .into_iter()
        .find(|dir| dir.join("lua.h").is_file())
        .ok_or_else(|| format!("no {prefix} folder with lua.h among the lua-src crates"))
}

/// A C build of csrc/scan.c and the `backend` folder's `files`, with Lua's internal headers
/// from `source`.
fn shim(backend: &str, files: &[&str], source: &Path) -> cc::Build {
    println!("cargo:rerun-if-changed={}", source.display());
    let mut build = cc::Build::new();
    build
        .files([
            "csrc/scan.c",
            "csrc/template.c",
            "csrc/prefetch.c",
            "csrc/facts.c",
        ])
        .files(files.iter().map(|file| format!("csrc/{backend}/{file}")))
        .include(format!("csrc/{backend}"))
        .include("csrc")
        .include(source)
        .warnings(true)
        .flag_if_supported("-Wno-unused-parameter");
    build
}

/// The source folder of the Lua 5.4 mlua vendors, found among the `lua-src` crates and
/// accepted only when its `lua.h` and `luaconf.h` are byte-identical to the headers mlua-sys
/// exported, and its release.
fn vendored_source() -> Result<(PathBuf, u32), String> {
    let include = env::var_os("DEP_LUA_INCLUDE")
        .map(PathBuf::from)
        .ok_or("mlua-sys exported no Lua headers")?;
    let (Ok(lua_h), Ok(luaconf_h)) = (
        fs::read(include.join("lua.h")),
        fs::read(include.join("luaconf.h")),
    ) else {
        return Err(format!("no lua.h in {}", include.display()));
    };
    let release =
        release_num(&String::from_utf8_lossy(&lua_h)).ok_or("cannot read the Lua release")?;
    let matches = |dir: &Path| {
        fs::read(dir.join("lua.h")).is_ok_and(|bytes| bytes == lua_h)
            && fs::read(dir.join("luaconf.h")).is_ok_and(|bytes| bytes == luaconf_h)
            && dir.join("lstate.h").is_file()
    };
    let source = candidates().into_iter().find(|dir| matches(dir)).ok_or_else(|| {
        format!("the source of the vendored Lua {release} was not found (set HOTLUA_LUA_SRC to its folder)")
    })?;
    Ok((source, release))
}

/// For a library that runs in the Lua of its host (the C module): the newest Lua 5.4 source
/// folder of the `lua-src` crates (a build dependency, so cargo unpacked one) and its
/// release. The host's layout is proven at run time (csrc/lua54/layout.c).
fn newest_source() -> Result<(PathBuf, u32), String> {
    candidates()
        .into_iter()
        .filter(|dir| dir.join("lstate.h").is_file())
        .find_map(|dir| {
            let lua_h = fs::read_to_string(dir.join("lua.h")).ok()?;
            Some((dir, release_num(&lua_h)?))
        })
        .ok_or_else(|| "no Lua 5.4 source folder was found (set HOTLUA_LUA_SRC to one)".to_owned())
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
/// `lua-5.4.*` of the `lua-src` crates cargo unpacked.
fn candidates() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = env::var_os("HOTLUA_LUA_SRC")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    found.extend(lua_src_folders("lua-5.4"));
    found
}

/// The folders of the `lua-src` crates cargo unpacked whose names start with `prefix`
/// (`lua-5.4`), newest crate first.
fn lua_src_folders(prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for krate in crate_folders("lua-src") {
        let Ok(dirs) = fs::read_dir(&krate) else {
            continue;
        };
        found.extend(dirs.flatten().map(|entry| entry.path()).filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(prefix))
        }));
    }
    found
}

/// The folders of crate `name` (`NAME-VERSION`) cargo unpacked from a registry or a `vendor`
/// folder above this crate, newest first.
fn crate_folders(name: &str) -> Vec<PathBuf> {
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
    let prefix = format!("{name}-");
    let mut found: Vec<PathBuf> = roots
        .iter()
        .filter_map(|root| fs::read_dir(root).ok())
        .flat_map(|crates| crates.flatten().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_prefix(&prefix))
                .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    // Newest first: the likeliest match.
    found.sort();
    found.reverse();
    found
}
