//! The standard functions hotlua's own Lua code calls, as they were when hotlua first saw the
//! state.
//!
//! hotlua runs a few small Lua chunks of its own (the protected call around a new top level,
//! the staging walks). Were they to read `select`, `type` or `os.exit` from the program's
//! globals, a program that defines a global `select` of its own, or wraps `os.exit`, would
//! change what a reload does. [`Reloader::new`](crate::Reloader::new) takes those functions
//! from the globals once, before the program's code runs in `hotlua run` (and when
//! `require "hotlua"` first runs in a C host), and every chunk of hotlua's runs with that
//! table as its environment. Where the build has them, hotlua's own C functions are there too
//! ([`crate::slots`]).

use mlua::{Function, Lua, Table, Value};

/// Registry key of the table of standard functions.
const KEY: &str = "hotlua.standard";

/// The global functions hotlua's chunks call, under their own names.
const GLOBAL_FUNCTIONS: [&str; 12] = [
    "next",
    "rawget",
    "rawset",
    "rawequal",
    "type",
    "select",
    "error",
    "pcall",
    "xpcall",
    "getmetatable",
    "tostring",
    "collectgarbage",
];

/// Takes the standard functions from the globals, unless this state has them already.
pub(crate) fn remember(lua: &Lua) -> mlua::Result<()> {
    if lua.named_registry_value::<Option<Table>>(KEY)?.is_some() {
        return Ok(());
    }
    let globals = lua.globals();
    let functions = lua.create_table()?;
    for name in GLOBAL_FUNCTIONS {
        functions.raw_set(name, globals.raw_get::<Value>(name)?)?;
    }
    let library = |library: &str, name: &str| -> mlua::Result<Value> {
        match globals.raw_get::<Value>(library)? {
            Value::Table(library) => library.raw_get(name),
            _ => Ok(Value::Nil),
        }
    };
    // `table.unpack` since Lua 5.2, the global `unpack` in 5.1 and LuaJIT.
    let unpack = match library("table", "unpack")? {
        Value::Nil => globals.raw_get("unpack")?,
        unpack => unpack,
    };
    functions.raw_set("unpack", unpack)?;
    functions.raw_set("exit", library("os", "exit")?)?;
    // LuaJIT's `jit` library, nil in PUC Lua.
    let jit = crate::modules::loaded_table(lua)
        .map_err(mlua::Error::external)?
        .raw_get::<Value>("jit")?;
    functions.raw_set("jit", jit)?;
    #[cfg(hotlua_lua54_shim)]
    if crate::layout::proven(lua) {
        for (name, function) in crate::slots::NAMES
            .into_iter()
            .zip(crate::slots::functions(lua)?)
        {
            functions.raw_set(name, function)?;
        }
    }
    lua.set_named_registry_value(KEY, functions)
}

/// The table of standard functions (taken now if [`remember`] never ran in this state).
pub(crate) fn functions(lua: &Lua) -> mlua::Result<Table> {
    remember(lua)?;
    lua.named_registry_value(KEY)
}

/// Compiles one of hotlua's chunks, `source`, to run with the standard functions as its only
/// globals. `name` is its chunk name (`=hotlua ...`).
fn load(lua: &Lua, name: &str, source: &str) -> mlua::Result<Function> {
    lua.load(source)
        .set_name(name)
        .set_environment(functions(lua)?)
        .into_function()
}

/// Registry key of the values hotlua's cached chunks returned, by chunk name.
const CACHE_KEY: &str = "hotlua.chunks";

/// One of the Lua chunks hotlua runs during a reload: compiled and run once per state
/// ([`cached`]), ahead of the first reload ([`warm`]).
pub(crate) struct Chunk {
    /// Its chunk name, `=hotlua ...`.
    pub name: &'static str,
    pub source: &'static str,
}

/// Every [`Chunk`] a reload runs.
const CHUNKS: [&Chunk; 12] = [
    &crate::baseline::FUNCTIONS,
    &crate::baseline::SNAPSHOT,
    &crate::baseline::COPY_FIELDS,
    &crate::staging::TABLE_OPS,
    &crate::staging::READ_GLOBAL,
    &crate::batch::PRELOAD_LOADER,
    &crate::plan::DATA_TABLES,
    &crate::plan::SIFT,
    &crate::plan::REVERSE,
    &crate::limits::HOOK_PROBE,
    &crate::limits::PROTECTED_CALL,
    &crate::apply::FIELDS,
];

/// Compiles and runs every chunk a reload runs, so that the first reload of a state costs no
/// more than the next ones (a few tenths of a millisecond of compiling otherwise).
pub(crate) fn warm(lua: &Lua) -> mlua::Result<()> {
    for chunk in CHUNKS {
        cached::<Value>(lua, chunk)?;
    }
    Ok(())
}

/// What `chunk` returns (a function, or a table of them), compiled and run once per state as
/// by [`load`] and kept in the registry under its chunk name.
pub(crate) fn cached<T: mlua::FromLua>(lua: &Lua, chunk: &Chunk) -> mlua::Result<T> {
    let (name, source) = (chunk.name, chunk.source);
    let cache = match lua.named_registry_value::<Option<Table>>(CACHE_KEY)? {
        Some(cache) => cache,
        None => {
            let cache = lua.create_table()?;
            lua.set_named_registry_value(CACHE_KEY, &cache)?;
            cache
        }
    };
    let value = match cache.raw_get::<Value>(name)? {
        Value::Nil => {
            let value: Value = load(lua, name, source)?.call(())?;
            cache.raw_set(name, &value)?;
            value
        }
        value => value,
    };
    T::from_lua(value, lua)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reloader compiles every chunk a reload runs: each compiles and runs on this Lua, and
    /// the first reload finds it cached.
    #[test]
    fn a_reloader_compiles_every_chunk_ahead() {
        let lua = Lua::new();
        crate::Reloader::new(&lua).unwrap();
        let cache: Table = lua.named_registry_value(CACHE_KEY).unwrap();
        for chunk in CHUNKS {
            assert_ne!(
                cache.raw_get::<Value>(chunk.name).unwrap(),
                Value::Nil,
                "{} was not compiled",
                chunk.name
            );
        }
    }

    /// The names of the chunks compiled in `lua` so far.
    fn compiled(lua: &Lua) -> Vec<String> {
        let cache: Table = lua.named_registry_value(CACHE_KEY).unwrap();
        let mut names: Vec<String> = cache
            .pairs::<String, Value>()
            .map(|pair| pair.unwrap().0)
            .collect();
        names.sort();
        names
    }

    /// Reloads under every engine built and every data policy compile no chunk a reloader did
    /// not compile ahead: a chunk added to a reload but not to [`CHUNKS`] fails here.
    #[test]
    fn a_reload_compiles_no_chunk_of_its_own() {
        let lua = Lua::new();
        let dir = std::env::temp_dir().join(format!("hotlua-chunks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = format!("{}/?.lua", dir.display());
        lua.load(format!("package.path = {path:?}")).exec().unwrap();
        // Functions, shared locals, data, a class, a global: a dozen fields, so that the
        // planner's pending stack reverses a long run of them too.
        let write = |version: usize| {
            let functions: String = (1..=12)
                .map(|i| format!("function M.f{i}() calls = calls + {version} return {i} end\n"))
                .collect();
            let source = format!(
                "local M = {{ data = {{ rows = {{ {{ id = 1 }} }} }}, Class = {{}} }}\n\
                 local calls = 0\nM.Class.__index = M.Class\n\
                 function M.Class.get(self) return self.v end\nVERSION = {version}\n\
                 {functions}return M"
            );
            std::fs::write(dir.join("m.lua"), source).unwrap();
        };
        write(1);
        let reloader = crate::Reloader::new(&lua).unwrap();
        let ahead = compiled(&lua);
        lua.load("m = require 'm'").exec().unwrap();
        let mut engines = vec![crate::Engine::Walk];
        if crate::Engine::inplace_available() {
            engines.push(crate::Engine::Inplace);
        }
        let mut version = 1;
        for engine in engines {
            for policy in [
                crate::DataPolicy::Keep,
                crate::DataPolicy::Overwrite,
                crate::DataPolicy::Merge3,
            ] {
                version += 1;
                write(version);
                let options = crate::Options {
                    engine: Some(engine),
                    ..crate::Options::with_data(policy)
                };
                reloader.reload(&["m"], &options).unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(compiled(&lua), ahead);
    }
}
