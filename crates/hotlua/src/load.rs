//! Finding a module's file, compiling it, and running its new top level in a staging
//! environment.
//!
//! Modules are found exactly as [`require`](https://www.lua.org/manual/5.4/manual.html#pdf-require)
//! finds them: each function of `package.searchers` in turn. The new top level then runs with
//! an `_ENV` whose reads see the real globals and whose writes land in a staging table, so that
//! nothing global changes unless the whole reload succeeds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mlua::{Function, IntoLuaMulti, Lua, MultiValue, Table, Value};

use crate::collector::CollectorState;
use crate::limits::{self, Stop};
use crate::modules::{loaded_table, searchers};
use crate::staging::{Staging, Written};
use crate::{Error, Result};

/// One module's new version, run in its staging environment, nothing applied.
pub struct StagedModule {
    pub name: String,
    pub file: PathBuf,
    /// The chunk name (`@` + file) every function compiled from the file reports as its
    /// source: how hotlua tells the module's own functions from everyone else's.
    pub source: String,
    /// `package.loaded[name]` before the reload.
    pub old: Value,
    /// What the new top level produced: its return value, or what it stored in
    /// `package.loaded[name]`, or `true`.
    pub new: Value,
    /// The `_ENV` the new top level ran with (it stands for `_G`).
    pub environment: Table,
    /// What the new top level wrote into `_G`.
    pub globals: Table,
    /// What it wrote into other tables it did not create (host tables, tables it reached
    /// through a global), each put back as it was.
    pub extended: Vec<Written>,
    /// How many table entries staging copied to be able to undo the top level's writes.
    pub entries_copied: usize,
    /// How many entries staging compared by looking their keys up.
    pub lookups: usize,
}

/// Runs `chunk`, the new top level of module `name` compiled from `file`, whose live value is
/// `old`, in a staging environment, for at most `timeout` ([`limits`]). The caller hides
/// `package.loaded[name]` meanwhile, so that `local M = package.loaded[...] or {}` builds a
/// fresh table instead of writing into the live one. `reloading` is true exactly while the top
/// level runs (`hotlua.reloading`).
pub(crate) fn stage(
    lua: &Lua,
    name: &str,
    (chunk, file): (Function, PathBuf),
    old: Value,
    timeout: Duration,
    collector: &CollectorState,
    reloading: &crate::sync::Flag,
) -> Result<StagedModule> {
    // The chunk's own name: a host's searcher (LÖVE's, for one) names chunks its own way, and
    // the module's functions are recognised by it.
    let source = (chunk.info().source).unwrap_or_else(|| chunk_name(&file));
    let staging = Staging::new(lua, &old, &source)?;
    let environment = staging.environment.clone();
    // The `_ENV` upvalue on Lua 5.2+, the function environment on 5.1 and LuaJIT.
    chunk.set_environment(environment.clone())?;

    let loaded = loaded_table(lua)?;
    let args = (name, file.display().to_string()).into_lua_multi(lua)?;
    // From here to the end of the run nothing returns early: what is hidden is put back.
    // Lua 5.1's `module(name)` looks the module up in the real globals (not the chunk's
    // environment) and would reuse and fill the live table: hide it too, and put it back.
    #[cfg(any(feature = "lua51", feature = "luajit"))]
    let globals = lua.globals();
    #[cfg(any(feature = "lua51", feature = "luajit"))]
    let old_global: Value = globals.raw_get(name)?;
    #[cfg(any(feature = "lua51", feature = "luajit"))]
    globals.raw_set(name, Value::Nil)?;
    reloading.set(true);
    let ran = limits::call_limited(lua, &chunk, args, timeout, collector);
    reloading.set(false);
    let entries_copied = staging.entries_copied();
    let written = staging.restore(lua);
    // Putting back a key that was there a moment ago allocates nothing.
    #[cfg(any(feature = "lua51", feature = "luajit"))]
    globals.raw_set(name, old_global)?;
    let written = written?;
    let stored: Value = loaded.raw_get(name)?;
    loaded.raw_set(name, Value::Nil)?;
    let returned = ran?.map_err(|stop| match stop {
        Stop::Timeout { stopped_at } => Error::Timeout {
            module: name.to_owned(),
            file: file.clone(),
            seconds: timeout.as_secs_f64(),
            stopped_at,
        },
        Stop::NoHooks => Error::NoHooksHere {
            module: name.to_owned(),
            file: file.clone(),
        },
        Stop::Exit { message } | Stop::Error { message } => Error::TopLevel {
            module: name.to_owned(),
            file: file.clone(),
            message,
        },
    })?;

    let mut new = match returned.into_iter().next() {
        Some(Value::Nil) | None if stored != Value::Nil => stored,
        Some(Value::Nil) | None => Value::Boolean(true),
        Some(value) => value,
    };
    // The new top level filled the live module table itself: what it wrote is the new version.
    if let (Some(fields), true) = (written.module, old == new) {
        new = Value::Table(fields);
    }
    check_same_kind(name, &file, &old, &new)?;
    Ok(StagedModule {
        name: name.to_owned(),
        file,
        source,
        old,
        new,
        environment,
        globals: written.globals,
        extended: written.extended,
        entries_copied,
        lookups: written.lookups,
    })
}

/// A module that returned a table must go on returning one (and a function a function):
/// anything else would leave every user of the module holding the wrong kind of value.
fn check_same_kind(name: &str, file: &std::path::Path, old: &Value, new: &Value) -> Result<()> {
    let kind = |value: &Value| match value {
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Nil | Value::Boolean(true) => "nothing",
        other => other.type_name(),
    };
    if old == &Value::Nil || kind(old) == kind(new) {
        return Ok(());
    }
    Err(Error::ReturnChanged {
        module: name.to_owned(),
        file: file.to_owned(),
        old: kind(old),
        new: kind(new),
    })
}

/// Runs `package.searchers` like `require` does and returns the Lua chunk, its file and, when
/// the Lua file searcher found it, the file's bytes as read.
///
/// The file `package.path` leads to is read and checked before any searcher runs, so an empty
/// or precompiled file is refused before Lua's own searcher could hand bytecode to the undump.
/// Where that searcher (or one that names its chunks the same way) then finds the file, the
/// bytes checked are what is compiled, as source text only. A host's own searcher (LÖVE's
/// names its chunks `@rules.lua`) keeps its loader, and so the chunk name the module's live
/// functions carry.
pub(crate) fn find(lua: &Lua, name: &str) -> Result<(Function, PathBuf, Option<Vec<u8>>)> {
    let package: Table = lua.globals().raw_get("package")?;
    let searchers = searchers(lua)?;
    // The file the Lua searcher will open, found once: to refuse an empty or precompiled file
    // before anything runs, and to name the file where a searcher does not (Lua 5.1) or fails.
    let expected = search_path(&package, name)?;
    let mut text = match &expected {
        Some(file) => Some(read_source(name, file)?),
        None => None,
    };
    let mut lua_file_searcher = lua
        .named_registry_value::<Option<Function>>(LUA_FILE_SEARCHER)
        .ok()
        .flatten();
    if lua_file_searcher.is_none() && text.is_some() {
        lua_file_searcher = identify_lua_file_searcher(&package, &searchers)?;
        if let Some(searcher) = &lua_file_searcher {
            lua.set_named_registry_value(LUA_FILE_SEARCHER, searcher)?;
        }
    }
    let mut tried = String::new();
    for searcher in searchers.sequence_values::<Function>() {
        let searcher = searcher?;
        // Known to be Lua's file searcher: what it would load is the checked file, compiled
        // once here instead of twice.
        if let (Some(expected), Some(checked), true) = (
            &expected,
            &text,
            lua_file_searcher.as_ref() == Some(&searcher),
        ) {
            let chunk = compile_source(lua, name, expected, source_text(checked))?;
            return Ok((chunk, expected.clone(), text.take()));
        }
        let found: MultiValue = searcher.call(name).map_err(|error| Error::Load {
            module: name.to_owned(),
            file: expected.clone().unwrap_or_default(),
            message: strip_require_prefix(&lua_error_text(&error)),
        })?;
        let mut found = found.into_iter();
        match (found.next(), found.next()) {
            (Some(Value::Function(loader)), extra) => {
                // Lua 5.1's loaders do not say which file they loaded.
                let file = match extra {
                    Some(Value::String(file)) => PathBuf::from(file.to_string_lossy()),
                    _ => expected.clone().unwrap_or_else(|| PathBuf::from("?")),
                };
                let info = loader.info();
                if info.what != "main" {
                    return Err(Error::NotLuaSource {
                        module: name.to_owned(),
                        file,
                    });
                }
                if let (Some(expected), Some(checked)) = (&expected, &text) {
                    if info.source.as_deref() == Some(chunk_name(expected).as_str()) {
                        // This searcher names its chunks like Lua's file searcher: remember it.
                        lua.set_named_registry_value(LUA_FILE_SEARCHER, &searcher)?;
                        let chunk = compile_source(lua, name, expected, source_text(checked))?;
                        return Ok((chunk, expected.clone(), text.take()));
                    }
                }
                return Ok((loader, file, None));
            }
            (Some(Value::String(message)), _) => {
                // Lua 5.4's `require` puts the line break before each searcher's message;
                // older searchers start their messages with it.
                #[cfg(any(feature = "lua54", feature = "lua55"))]
                tried.push_str("\n\t");
                tried.push_str(&message.to_string_lossy());
            }
            _ => {}
        }
    }
    Err(Error::NotFound {
        module: name.to_owned(),
        tried,
    })
}

/// The bytes of module `name`'s `file`, checked by [`check_source`].
fn read_source(name: &str, file: &Path) -> Result<Vec<u8>> {
    let bytes = crate::source_file::read(file).map_err(|error| Error::Load {
        module: name.to_owned(),
        file: file.to_owned(),
        message: error.to_string(),
    })?;
    check_source(name, file, &bytes)?;
    Ok(bytes)
}

/// Compiles `bytes`, the content of module `name`'s `file` given by the caller instead of read
/// from the file (a rollback to the previous source), as [`find`] compiles what it reads.
pub(crate) fn compile_given(lua: &Lua, name: &str, file: &Path, bytes: &[u8]) -> Result<Function> {
    check_source(name, file, bytes)?;
    compile_source(lua, name, file, source_text(bytes))
}

/// The source text of a file as the Lua file searcher compiles it: a UTF-8 byte order mark and
/// a first line starting with `#` skipped, the line break kept so line numbers stay right.
fn source_text(bytes: &[u8]) -> &[u8] {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match text.starts_with(b"#") {
        true => &text[text.iter().position(|&b| b == b'\n').unwrap_or(text.len())..],
        false => text,
    }
}

/// Refuses an empty or precompiled file.
fn check_source(name: &str, file: &Path, bytes: &[u8]) -> Result<()> {
    let text = source_text(bytes);
    let after_bom = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // After a skipped `#` line, the byte after its line break.
    let first_byte = match after_bom.starts_with(b"#") {
        true => text.get(1),
        false => text.first(),
    };
    // The first byte of every Lua and LuaJIT bytecode signature (`\x1bLua`, `\x1bLJ`).
    if first_byte == Some(&0x1b) {
        return Err(Error::Precompiled {
            module: name.to_owned(),
            file: file.to_owned(),
        });
    }
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::EmptyFile {
            module: name.to_owned(),
            file: file.to_owned(),
        });
    }
    Ok(())
}

/// Registry key of the searcher found to be Lua's file searcher (it named a chunk `@file` for
/// the file `package.path` leads to).
const LUA_FILE_SEARCHER: &str = "hotlua.lua_file_searcher";

/// Which of `searchers` is Lua's own file searcher, found without letting it compile a module
/// (a big file would be compiled twice on the first reload) and without touching the disk:
/// with `package.path` set for the moment to one template in a folder that does not exist,
/// each C searcher is asked for a module. Lua's searcher answers that it tried that file
/// ("no file '…/hotlua_probe.lua'"); the others (`package.preload`, C modules, which search
/// `package.cpath`, a host's) do not name it. `package.path` is put back whatever happens.
fn identify_lua_file_searcher(package: &Table, searchers: &Table) -> Result<Option<Function>> {
    static PROBES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let probe = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "hotlua-no-such-folder-{}-{probe}",
        std::process::id()
    ));
    let file = dir.join("hotlua_probe.lua");
    let file_text = file.display().to_string();
    let path: Value = package.raw_get("path")?;
    let found = package
        .raw_set("path", format!("{}/?.lua", dir.display()))
        .and_then(|()| {
            for searcher in searchers.sequence_values::<Function>() {
                let searcher = searcher?;
                if searcher.info().what != "C" {
                    continue;
                }
                let named_the_file = match searcher.call::<Value>("hotlua_probe") {
                    Ok(Value::String(message)) => message.to_string_lossy().contains(&file_text),
                    // Someone made the folder and the file after all: Lua's searcher loads it.
                    Ok(Value::Function(loader)) => {
                        loader.info().source.as_deref() == Some(chunk_name(&file).as_str())
                    }
                    _ => false,
                };
                if named_the_file {
                    return Ok(Some(searcher));
                }
            }
            Ok(None)
        });
    package.raw_set("path", path)?;
    Ok(found?)
}

/// The chunk name the Lua file searcher gives `file`.
fn chunk_name(file: &Path) -> String {
    format!("@{}", file.display())
}

/// Compiles `text` as source only, under the chunk name the Lua file searcher gives `file`.
fn compile_source(lua: &Lua, name: &str, file: &Path, text: &[u8]) -> Result<Function> {
    lua.load(text)
        .set_name(chunk_name(file))
        .set_mode(mlua::chunk::ChunkMode::Text)
        .into_function()
        .map_err(|error| Error::Load {
            module: name.to_owned(),
            file: file.to_owned(),
            message: lua_error_text(&error),
        })
}

/// `package.searchpath(name, package.path)`: the file the Lua searcher will open, if any.
///
/// Done here rather than by calling `package.searchpath`, which Lua 5.1 lacks: each `;`-separated
/// template of `package.path` with `?` replaced by the name, dots turned into `/`.
pub(crate) fn search_path(package: &Table, name: &str) -> Result<Option<PathBuf>> {
    let Ok(path) = package.raw_get::<String>("path") else {
        return Ok(None);
    };
    let name = name.replace('.', std::path::MAIN_SEPARATOR_STR);
    Ok(path
        .split(';')
        .filter(|template| !template.is_empty())
        .map(|template| PathBuf::from(template.replace('?', &name)))
        .find(|file| crate::source_file::is_readable(file)))
}

/// The Lua error's own text, without mlua's decorations (callback wrappers, the traceback
/// mlua appends to runtime errors): one line a watch log can print.
pub(crate) fn lua_error_text(error: &mlua::Error) -> String {
    let text = match error {
        mlua::Error::CallbackError { cause, .. } => return lua_error_text(cause),
        // Lua's own words ("not enough memory"), without mlua's "memory error: " in front.
        mlua::Error::RuntimeError(message)
        | mlua::Error::MemoryError(message)
        | mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    match text.split_once("\nstack traceback:") {
        Some((message, _)) => message.to_owned(),
        None => text,
    }
}

/// `require`'s searchers wrap load errors as "error loading module 'x' from file 'f':\n\t...";
/// the file is reported separately, so keep only Lua's own message.
fn strip_require_prefix(message: &str) -> String {
    match message.split_once(":\n\t") {
        Some((prefix, rest)) if prefix.starts_with("error loading module") => rest.to_owned(),
        _ => message.to_owned(),
    }
}
