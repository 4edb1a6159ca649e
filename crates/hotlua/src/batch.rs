//! Staging a batch: every module's new top level runs once, and a top level that `require`s
//! another module of the batch gets that module's new version, whatever the order of the batch.
//!
//! While the batch stages, the live entries of its modules in `package.loaded` are hidden and
//! `package.preload` holds, for each of them, a loader that stages that module (if it is not
//! staged yet) and returns its new version. Both are put back before staging returns, whatever
//! happened.

use std::cell::RefCell;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use std::path::PathBuf;

use mlua::{Function, Lua, Table, Value};

use crate::collector::CollectorState;
use crate::load::{compile_given, find, stage, StagedModule};
use crate::memory::LimitLifted;
use crate::modules::{check_origin, loaded_table};
use crate::standard::Chunk;
use crate::{Error, Result};

/// A module's source as read from its file, or given instead of reading it (a rollback's
/// previous version, the bytes the watcher compared).
#[derive(Clone)]
pub(crate) struct GivenSource {
    /// The file as the module's chunk names it: the chunk is compiled under that name.
    pub file: PathBuf,
    /// Where the bytes were read, absolute.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Where a reload takes each module's new source from.
pub(crate) enum NewSource {
    /// Its file, found as `require` finds it.
    Files,
    /// The source its one module ran before its last reload (a rollback).
    Previous(GivenSource),
    /// What the watcher read from each module's file (the bytes it compared with the live
    /// source), compiled as they are: found where the module was loaded from, whatever the
    /// current directory and `package.path` say now.
    Read(std::collections::HashMap<String, GivenSource>),
}

impl NewSource {
    /// The source given for `module`, if it is not to be read from its file.
    pub(crate) fn given(&self, module: &str, first: &str) -> Option<GivenSource> {
        match self {
            NewSource::Files => None,
            NewSource::Previous(source) => (module == first).then(|| source.clone()),
            NewSource::Read(sources) => sources.get(module).cloned(),
        }
    }
}

/// The staged new versions of a batch, and what staging changed that a failure must undo.
pub struct Staged {
    pub modules: Vec<StagedModule>,
    /// Modules the new top levels `require`d for the first time.
    newly_loaded: Vec<Value>,
    /// The collector as the program left it, for a top level that stopped it or changed its
    /// mode.
    collector: CollectorState,
    /// The source each module's new version was compiled from, in the order of the batch
    /// (`None` for a chunk another searcher loaded).
    pub texts: Vec<Option<GivenSource>>,
    /// Milliseconds spent finding and compiling the files.
    pub load_ms: f64,
    /// Milliseconds spent running the new top levels.
    pub stage_ms: f64,
}

impl Staged {
    /// Forgets the modules the new top levels loaded for the first time and puts the
    /// collector back as it was, for a reload that failed or was only a check.
    pub(crate) fn roll_back(&self, lua: &Lua) -> Result<()> {
        let _lifted = LimitLifted::new(lua);
        self.collector.restore(lua);
        let loaded = loaded_table(lua)?;
        for name in &self.newly_loaded {
            loaded.raw_set(name, Value::Nil)?;
        }
        Ok(())
    }
}

/// Finds, compiles and runs the new top level of every module of the batch.
///
/// `given` returns, for a module whose new source is not to be read from its file (a
/// rollback), that file and the source. Each top level may run for `timeout`
/// ([`crate::limits`]). `reloading` is true exactly while a new top level runs
/// (`hotlua.reloading`).
pub(crate) fn stage_all(
    lua: &Lua,
    names: &[&str],
    given: &dyn Fn(&str) -> Option<GivenSource>,
    timeout: Duration,
    reloading: &crate::sync::Flag,
) -> Result<Staged> {
    let started = Instant::now();
    let collector = CollectorState::of(lua);
    // Every file is found and compiled before any top level runs: a syntax error anywhere
    // fails the batch before it has run any code.
    let (chunks, texts): (Vec<_>, Vec<_>) = names
        .iter()
        .map(|name| match given(name) {
            Some(given) => Ok((
                compile_given(lua, name, &given.file, &given.bytes)?,
                given.file.clone(),
                Some(given),
            )),
            None => find(lua, name).map(|(chunk, file, bytes)| {
                let read = bytes.map(|bytes| GivenSource {
                    path: crate::sources::absolute(&file),
                    file: file.clone(),
                    bytes,
                });
                (chunk, file, read)
            }),
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .map(|(chunk, file, text)| ((chunk, file), text))
        .unzip();
    for (name, (chunk, file)) in names.iter().zip(&chunks) {
        let source = chunk.info().source.unwrap_or_default();
        check_origin(lua, name, file, &source)?;
    }
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let loaded = loaded_table(lua)?;
    let preload: Table = lua
        .globals()
        .raw_get::<Table>("package")?
        .raw_get("preload")?;
    let batch = Batch {
        lua,
        names,
        live: names
            .iter()
            .map(|name| loaded.raw_get(*name))
            .collect::<mlua::Result<_>>()?,
        chunks,
        timeout,
        collector: &collector,
        reloading,
        modules: RefCell::new(names.iter().map(|_| None).collect()),
        running: RefCell::new(Vec::new()),
        failure: RefCell::new(None),
    };
    let preloaded: Vec<Value> = names
        .iter()
        .map(|name| preload.raw_get(*name))
        .collect::<mlua::Result<_>>()?;
    let before: HashSet<usize> = loaded_keys(&loaded)?;
    // From here to the end of the staging nothing returns early: what is hidden is put back.
    for name in names {
        loaded.raw_set(*name, Value::Nil)?;
    }

    let outcome = lua.scope(|scope| {
        let make_loader: Function = crate::standard::cached(lua, &PRELOAD_LOADER)?;
        for (index, name) in names.iter().enumerate() {
            let batch = &batch;
            let stage = scope.create_function(move |_, ()| Ok(batch.require_new(index)))?;
            preload.raw_set(*name, make_loader.call::<Function>(stage)?)?;
        }
        for index in 0..names.len() {
            if let Err(error) = batch.stage(index) {
                batch.failure.borrow_mut().get_or_insert(error);
                break;
            }
        }
        Ok(())
    });

    let mut newly_loaded = Vec::new();
    for (key, _) in loaded.pairs::<Value, Value>().flatten() {
        let in_batch = matches!(&key, Value::String(s) if names.iter().any(|n| s == n));
        if !in_batch && !before.contains(&key_identity(&key)) {
            newly_loaded.push(key);
        }
    }
    // Putting back keys that were there a moment ago allocates nothing.
    let mut put_back = Ok(());
    for ((name, live), preloaded) in names.iter().zip(&batch.live).zip(preloaded) {
        put_back = put_back
            .and(loaded.raw_set(*name, live))
            .and(preload.raw_set(*name, preloaded));
    }
    put_back?;
    let failure = batch.failure.into_inner();
    let modules = batch.modules.into_inner().into_iter().flatten().collect();
    let staged = Staged {
        modules,
        newly_loaded,
        collector,
        texts,
        load_ms,
        stage_ms: started.elapsed().as_secs_f64() * 1e3 - load_ms,
    };
    if let Some(error) = failure.or(outcome.err().map(Error::from)) {
        staged.roll_back(lua)?;
        return Err(error);
    }
    Ok(staged)
}

/// The batch being staged.
struct Batch<'a> {
    lua: &'a Lua,
    names: &'a [&'a str],
    /// `package.loaded[name]` of each module before the reload.
    live: Vec<Value>,
    /// The compiled chunk and file of each module.
    chunks: Vec<(Function, PathBuf)>,
    timeout: Duration,
    collector: &'a CollectorState,
    reloading: &'a crate::sync::Flag,
    /// The staged modules, by their place in the batch.
    modules: RefCell<Vec<Option<StagedModule>>>,
    /// The modules whose top level is running, outermost first: to refuse a cycle.
    running: RefCell<Vec<usize>>,
    /// The first error, also when it was raised inside another module's top level.
    failure: RefCell<Option<Error>>,
}

impl Batch<'_> {
    /// What `require` of module `index` gets while the batch stages: `(true, new version)`, or
    /// `(false, message)` to raise in the top level that called `require`.
    fn require_new(&self, index: usize) -> (bool, Value) {
        let name = self.names[index];
        let running = self.running.borrow().clone();
        let refusal = if running.last() == Some(&index) {
            Some(format!(
                "module '{name}' requires itself in its new top level: a reload runs the file once"
            ))
        } else {
            running.iter().position(|&i| i == index).map(|start| {
                let cycle: Vec<&str> = running[start..]
                    .iter()
                    .chain([&index])
                    .map(|&i| self.names[i])
                    .collect();
                format!(
                    "the new top levels of the batch require each other in a cycle: {}",
                    cycle.join(" → ")
                )
            })
        };
        let failure = match refusal {
            Some(message) => message,
            None => match self.stage(index) {
                Ok(new) => return (true, new),
                Err(error) => {
                    let message = error.to_string();
                    self.failure.borrow_mut().get_or_insert(error);
                    message
                }
            },
        };
        match self.lua.create_string(failure) {
            Ok(message) => (false, Value::String(message)),
            Err(_) => (false, Value::Nil),
        }
    }

    /// Stages module `index` unless it already is, and returns its new version.
    fn stage(&self, index: usize) -> Result<Value> {
        if let Some(module) = &self.modules.borrow()[index] {
            return Ok(module.new.clone());
        }
        let name = self.names[index];
        self.running.borrow_mut().push(index);
        let staged = stage(
            self.lua,
            name,
            self.chunks[index].clone(),
            self.live[index].clone(),
            self.timeout,
            self.collector,
            self.reloading,
        );
        self.running.borrow_mut().pop();
        let module = staged?;
        let new = module.new.clone();
        // Later top levels that `require` it get the new version.
        loaded_table(self.lua)?.raw_set(name, &new)?;
        self.modules.borrow_mut()[index] = Some(module);
        Ok(new)
    }
}

/// Makes the `package.preload` loader of one module of the batch from `stage`, which answers
/// `true, new version` or `false, message`. The message is raised at level 3, the line of the
/// `require` call, so that it reads like Lua's own errors.
pub(crate) const PRELOAD_LOADER: Chunk = Chunk {
    name: "=hotlua preload",
    source: r#"
local error = error
return function(stage)
  return function()
    local ok, result = stage()
    if ok then
      return result
    end
    error(result, 3)
  end
end
"#,
};

fn loaded_keys(loaded: &Table) -> Result<HashSet<usize>> {
    Ok(loaded
        .pairs::<Value, Value>()
        .flatten()
        .map(|(key, _)| key_identity(&key))
        .collect())
}

/// Identity of a `package.loaded` key (always a string in practice; interned, so the pointer
/// identifies it).
fn key_identity(key: &Value) -> usize {
    key.to_pointer() as usize
}
