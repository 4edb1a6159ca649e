//! The module registry `require` keeps: `package.loaded`, `package.searchers`, and which
//! loaded tables belong to modules other than the ones being reloaded.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use mlua::{Function, Lua, Table, Value};

use crate::{Error, Result};

/// `package.loaded`.
pub(crate) fn loaded_table(lua: &Lua) -> Result<Table> {
    // `require` keeps it in the registry: a program that replaces its global `package`
    // still loads modules there.
    if let Some(loaded) = lua.named_registry_value::<Option<Table>>("_LOADED")? {
        return Ok(loaded);
    }
    let package: Table = lua.globals().raw_get("package")?;
    Ok(package.raw_get("loaded")?)
}

/// `package.searchers`, called `package.loaders` in Lua 5.1 and LuaJIT.
pub(crate) fn searchers(lua: &Lua) -> Result<Table> {
    let package: Table = lua.globals().raw_get("package")?;
    Ok(match package.raw_get("searchers")? {
        Value::Table(searchers) => searchers,
        _ => package.raw_get("loaders")?,
    })
}

/// Tables hotlua never pairs, merges into or copies: every module in `package.loaded` that is
/// not being reloaded (the standard library among them) and `_G`.
pub(crate) struct Foreign {
    /// As a Lua set (table → true) that hotlua's own Lua walks can consult.
    pub set: Table,
    /// The same tables, by identity.
    pub identities: HashSet<usize>,
}

/// The [`Foreign`] tables while the modules of `batch` are reloaded.
pub(crate) fn foreign(lua: &Lua, batch: &HashSet<&str>) -> Result<Foreign> {
    let set = lua.create_table()?;
    let mut identities = HashSet::new();
    let mut add = |table: Table| -> Result<()> {
        identities.insert(table.to_pointer() as usize);
        Ok(set.raw_set(table, true)?)
    };
    add(lua.globals())?;
    for pair in loaded_table(lua)?.pairs::<Value, Value>() {
        let (name, module) = pair?;
        // Module names are UTF-8 (the batch's are Rust strings): no other name is in it.
        let in_batch =
            matches!(&name, Value::String(s) if s.to_str().is_ok_and(|s| batch.contains(&*s)));
        if let (Value::Table(module), false) = (module, in_batch) {
            add(module)?;
        }
    }
    Ok(Foreign { set, identities })
}

/// Where a module was loaded from ([`loaded_from`]).
pub(crate) struct LoadedFrom {
    /// The file as the module's chunks name it: a new version is compiled under that name.
    pub file: PathBuf,
    /// Where that file is, absolute (made so while the current directory is the one the
    /// module was found from).
    pub path: PathBuf,
    /// Whether one of the module's functions names `file`. When none does (a module that
    /// returns no function, like LÖVE's `main.lua`), `file` is where `package.path` leads, and
    /// the name a host's searcher gave its chunk is not known.
    pub named_by_chunks: bool,
}

/// How many fields of a module's table [`loaded_from`] looks at for functions.
const FIELDS_LOOKED_AT: usize = 1000;

/// The file module `name` (whose value is `value`) was loaded from, as its chunk names it.
///
/// The file `package.path` leads to, when there is one: the file Lua's own searcher loads,
/// named as the module's functions name it when one of them names it (`rules.lua` where LÖVE's
/// searcher loaded the `./rules.lua` that `package.path` finds). Otherwise the file most of its
/// Lua functions were compiled from (a chunk named `@file`, among its first
/// [`FIELDS_LOOKED_AT`] fields): what a host's own searcher loaded (Neovim's runtime path,
/// LÖVE's filesystem). `None` when neither says (a module that only sets globals, loaded by a
/// host's searcher).
pub(crate) fn loaded_from(lua: &Lua, name: &str, value: &Value) -> Result<Option<LoadedFrom>> {
    let mut chunk_files: HashMap<PathBuf, usize> = HashMap::new();
    let mut count = |function: &Function| {
        if let Some(file) = function
            .info()
            .source
            .as_deref()
            .and_then(|s| s.strip_prefix('@'))
        {
            *chunk_files.entry(PathBuf::from(file)).or_default() += 1;
        }
    };
    match value {
        Value::Function(function) => count(function),
        Value::Table(table) => {
            // The first fields tell; a data module of a million records is not walked.
            for pair in table.pairs::<Value, Value>().take(FIELDS_LOOKED_AT) {
                if let (_, Value::Function(function)) = pair? {
                    count(&function);
                }
            }
        }
        _ => {}
    }
    let package: Table = lua.globals().raw_get("package")?;
    if let Some(found) = crate::load::search_path(&package, name)? {
        // A relative chunk name (LÖVE's `rules.lua`, relative to the game's folder, not to
        // the current directory) names the file when it is the end of the found path.
        let same_file = |chunk_file: &&PathBuf| {
            let relative = chunk_file.strip_prefix(".").unwrap_or(chunk_file);
            (chunk_file.is_relative() && found.ends_with(relative))
                || std::fs::canonicalize(chunk_file).ok() == std::fs::canonicalize(&found).ok()
        };
        // Functions of other files (a module re-exporting another's) do not make it theirs.
        let named = chunk_files.keys().find(same_file).cloned();
        let path = crate::sources::absolute(&found);
        return Ok(Some(LoadedFrom {
            named_by_chunks: named.is_some(),
            file: named.unwrap_or(found),
            path,
        }));
    }
    // The most frequent chunk; on a tie the first by name, so the answer never varies.
    Ok(chunk_files
        .into_iter()
        .max_by(|(a, a_count), (b, b_count)| a_count.cmp(b_count).then_with(|| b.cmp(a)))
        .map(|(file, _)| LoadedFrom {
            path: crate::sources::absolute(&file),
            file,
            named_by_chunks: true,
        }))
}

/// Registry key of the names `package.loaded` held when hotlua started in the state: the
/// standard library and whatever the host put there.
const PRESENT_AT_START: &str = "hotlua.present_at_start";

/// Remembers which modules `package.loaded` holds now, as hotlua starts in the state.
pub(crate) fn remember_present(lua: &Lua) -> Result<()> {
    let present = lua.create_table()?;
    for pair in loaded_table(lua)?.pairs::<Value, Value>() {
        present.raw_set(pair?.0, true)?;
    }
    lua.set_named_registry_value(PRESENT_AT_START, present)?;
    Ok(())
}

/// Refuses module `name` unless its live value (`package.loaded[name]`) can have come from
/// Lua source compiled under the chunk name `source`, the one the file found for it (`file`)
/// gets.
///
/// The live value shows where it came from through its functions. One with a Lua function
/// compiled from that file came from it. One whose functions are all C functions (the standard
/// library, a C module) did not; nor did one with functions that was in `package.loaded`
/// before hotlua started (what the host put there) when none of them comes from the file. A
/// value with no function (a data table, or `true` for a module that only sets globals) says
/// nothing, and neither do functions of other Lua files (a module that re-exports another's
/// functions): those reload. A `package.preload` entry never gets here: its loader is found
/// first and is not a chunk ([`Error::NotLuaSource`]).
pub(crate) fn check_origin(lua: &Lua, name: &str, file: &Path, source: &str) -> Result<()> {
    let live: Value = loaded_table(lua)?.raw_get(name)?;
    let refuse = |reason: String| {
        Err(Error::NotFromFile {
            module: name.to_owned(),
            file: file.to_owned(),
            reason,
        })
    };
    // Returns true on a function of the file; notes C functions and Lua functions of other
    // chunks.
    let mut seen_function = false;
    let mut seen_c = false;
    let mut elsewhere = None;
    let mut judge = |function: &Function| {
        seen_function = true;
        let info = function.info();
        match info.what {
            // LuaJIT's builtins written in Lua (`string.len`) have no line.
            _ if info.what == "C" || info.line_defined.is_none() => {
                seen_c = true;
                false
            }
            _ if info.source.as_deref() == Some(source) => true,
            _ => {
                elsewhere = elsewhere.take().or(info.source);
                false
            }
        }
    };
    match &live {
        Value::Function(function) if judge(function) => return Ok(()),
        Value::Table(table) if table == &lua.globals() => {
            return refuse("it is the global table _G".into());
        }
        Value::Table(table) => {
            for pair in table.pairs::<Value, Value>() {
                if let (_, Value::Function(function)) = pair? {
                    if judge(&function) {
                        return Ok(());
                    }
                }
            }
        }
        _ => {}
    }
    let present_at_start = lua
        .named_registry_value::<Option<Table>>(PRESENT_AT_START)?
        .map(|present| present.raw_get::<bool>(name))
        .transpose()?
        .unwrap_or(false);
    const C_FUNCTIONS: &str = "its functions are C functions (the standard library or a C module)";
    match (seen_function, seen_c, elsewhere) {
        (false, ..) => Ok(()),
        (true, true, _) if present_at_start => refuse(C_FUNCTIONS.into()),
        (true, true, None) => refuse(C_FUNCTIONS.into()),
        (true, false, Some(chunk)) if present_at_start => refuse(format!(
            "the host put it in package.loaded before hotlua started, and its functions \
             come from {}",
            chunk.strip_prefix(['@', '=']).unwrap_or(&chunk)
        )),
        _ => Ok(()),
    }
}
