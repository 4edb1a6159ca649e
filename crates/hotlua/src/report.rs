//! [`Report`]: what one reload (or dry run) did.
//!
//! One structure, shown four ways: this Rust struct, a Lua table ([`Report::to_lua`]), JSON
//! ([`Report::to_json`]) and one human line ([`Report::summary`]).

use std::fmt::Write as _;
use std::path::PathBuf;

use mlua::{Lua, LuaSerdeExt, Value};
use serde::Serialize;

/// What a reload did, module by module and in total.
///
/// Paths name values the way Lua code reaches them: `combat.Monster.attack` is the field
/// `attack` of the table at field `Monster` of module `combat`; `combat.hit@count` is the local
/// (upvalue) `count` of function `combat.hit`; `combat.Monster#mt` is a metatable.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The modules of the batch, in the order they were given.
    pub modules: Vec<ModuleFile>,
    /// False for [`crate::Reloader::check`]: planned, nothing applied.
    pub applied: bool,
    /// The engine that gave the program the new code: `"inplace"` or `"walk"`.
    pub engine: &'static str,
    /// Lua functions of the module now running their new version.
    pub functions_replaced: Vec<String>,
    /// Functions that exist only in the new version.
    pub functions_added: Vec<String>,
    /// Functions the new version no longer defines: kept in place, still callable.
    pub functions_kept_deleted: Vec<String>,
    /// Old tables that kept their identity and received the new version's fields.
    pub tables_merged: usize,
    /// Live tables the new top levels wrote into without creating them, by the global name
    /// they reached them through (`love`, `string`): their writes are merged like fields of the
    /// module (`_G` itself is not listed).
    pub tables_extended: Vec<String>,
    /// Table entries staging copied so that the new top levels' writes into live tables could
    /// be undone: `_G`'s keys, the module table's, and those of each table read through a
    /// global. Never the program's data beyond that.
    pub staging_entries_copied: usize,
    /// Entries staging compared with its copies by looking their keys up, one hash lookup
    /// each. Where the build has the vendored Lua 5.4's internals, copies are laid out slot
    /// for slot like the tables they copy and compared side by side, which needs no lookup
    /// (0 here) unless the new top level moved a table's slots (say, by adding enough keys
    /// to make it grow).
    pub staging_lookups: usize,
    /// Fields added to live tables.
    pub fields_added: usize,
    /// Upvalue cells of new functions joined to the old module's cells (one shared variable).
    pub locals_joined: usize,
    /// Locals that exist only in the new version and start with its initial value.
    pub locals_new: Vec<String>,
    /// Locals whose sharing could not be kept (Lua 5.1 cannot share an upvalue cell between
    /// closures): the new functions got a copy of the live value, so from now on the old and
    /// new closures each have their own variable.
    pub locals_copied: Vec<String>,
    /// Joined locals that kept their live value although the file now initializes them to
    /// another one than at the last load (policy `keep`; `overwrite` and `merge3` give them the
    /// edited value): why an edit of `local DAMAGE = 10` did not show.
    pub locals_kept_edited: Vec<String>,
    /// Joined locals whose live value changed type in the new version: the new value won.
    pub locals_type_changed: Vec<String>,
    /// Data the program changed since load and the new file changed too (`merge3` only):
    /// the live value was kept.
    pub conflicts: Vec<Conflict>,
    /// References to old functions held outside the module, switched to the new ones.
    pub references: crate::Switches,
    /// Objects the switching engine visited.
    pub objects_visited: usize,
    /// Closures of the old version that still run the old code. With `walk`: closures the old
    /// code created at run time (factories, callbacks), which it cannot upgrade. With
    /// `inplace`: every closure it could not retarget, for the reasons in
    /// [`Report::closures_left_old_why`].
    pub closures_left_old: usize,
    /// Why closures were left old (engine `inplace`).
    pub closures_left_old_why: crate::LeftOld,
    /// Closures pointed at their new prototype in place (engine `inplace`), module functions
    /// and closures created at run time alike.
    pub closures_upgraded: usize,
    /// Frames (in any coroutine) that were executing an old function: they finish in the old
    /// code and call new code from then on.
    pub frames_left_old: usize,
    /// Things the user should know: a value that could not be paired, a skipped merge.
    pub warnings: Vec<String>,
    /// The source each module ran before and runs now (for a check: would run), by SHA-256:
    /// which version is live.
    pub sources: Vec<SourceChange>,
    /// True for [`crate::Reloader::rollback`]: the previous source was reinstated.
    pub rolled_back: bool,
    /// Time of each phase.
    pub timings: Timings,
}

/// A module of the batch and the file its new version came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleFile {
    /// The module's name, as `require` takes it (`game.combat`).
    pub name: String,
    /// The file its new version was loaded from.
    pub file: PathBuf,
}

/// The source of one module of the batch, before and after, by SHA-256 of its bytes (`None`
/// when not known: a module loaded before hotlua started, or by another searcher).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceChange {
    /// The module's name.
    pub module: String,
    /// SHA-256 of the source live before the reload.
    pub old_sha256: Option<String>,
    /// SHA-256 of the source live after it.
    pub new_sha256: Option<String>,
}

/// A data field both the program and the new file changed since the module was loaded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    /// Where the field is, from the module: `combat.config.damage`.
    pub path: String,
    /// The live value (kept), as `tostring` shows it.
    pub live: String,
    /// The edited file's value (not applied), as `tostring` shows it.
    pub file: String,
}

/// Milliseconds spent in each phase of a reload.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Finding and compiling the files.
    pub load_ms: f64,
    /// Running the new top levels in their staging environments.
    pub stage_ms: f64,
    /// Pairing old and new values and planning every write.
    pub plan_ms: f64,
    /// Writing the plan into the live program.
    pub apply_ms: f64,
    /// Switching references held elsewhere (the engine's heap walk).
    pub switch_ms: f64,
    /// LuaJIT only: flushing every compiled trace, so that none runs old code (a trace can
    /// hold an upvalue's old function as a constant). Traces are compiled again as the
    /// program runs.
    pub jit_flush_ms: f64,
    /// The whole call.
    pub total_ms: f64,
}

impl Report {
    /// The one-line summary printed by `hotlua run --watch`, for example
    /// `reloaded combat in 2.1 ms: 4 functions, 2 locals joined`.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self.modules.iter().map(|m| m.name.as_str()).collect();
        let verb = match (self.applied, self.rolled_back) {
            (true, true) => "rolled back",
            (true, false) => "reloaded",
            (false, _) => "checked",
        };
        let mut line = format!(
            "{verb} {} in {:.1} ms: {} functions, {} locals joined",
            names.join(", "),
            self.timings.total_ms,
            self.functions_replaced.len() + self.functions_added.len(),
            self.locals_joined,
        );
        if self.references.total() > 0 {
            let _ = write!(line, ", {} references switched", self.references.total());
        }
        if self.closures_left_old > 0 {
            let _ = write!(
                line,
                ", {} runtime closures left old",
                self.closures_left_old
            );
        }
        if !self.functions_kept_deleted.is_empty() {
            let _ = write!(line, ", {} deleted kept", self.functions_kept_deleted.len());
        }
        if !self.conflicts.is_empty() {
            let _ = write!(line, ", {} conflicts", self.conflicts.len());
        }
        if !self.warnings.is_empty() {
            let _ = write!(line, ", {} warnings", self.warnings.len());
        }
        let live: Vec<String> = self
            .sources
            .iter()
            .filter_map(|s| {
                Some(format!(
                    "{}={}",
                    s.module,
                    s.new_sha256.as_ref()?.get(..12)?
                ))
            })
            .collect();
        if !live.is_empty() {
            let _ = write!(line, "; source {}", live.join(" "));
        }
        line
    }

    /// The report as one line of JSON (`hotlua run --json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Report always serializes")
    }

    /// The report as a Lua table, the form `hotlua.reload` returns, with the one-line
    /// [`Report::summary`] in its field `summary` (what a host logs).
    ///
    /// The lists of functions (one path per function: ten thousand for a big module) are made
    /// Lua strings only when the table is first read by a key it lacks, or iterated with
    /// `pairs` (Lua 5.2 and later: Lua 5.1 and LuaJIT's `pairs` ignores `__pairs`, so there
    /// read a list by name first). Until then they cost the program nothing; reading them
    /// fills them in and removes the table's metatable.
    ///
    /// Serialized straight into Lua tables: running out of memory is Lua's error, not an
    /// abort, however long the report's lists.
    pub fn to_lua(&self, lua: &Lua) -> mlua::Result<Value> {
        self.clone().into_lua_table(lua)
    }

    /// [`Report::to_lua`] for a report the caller gives up: its lists are moved, not copied.
    pub(crate) fn into_lua_table(mut self, lua: &Lua) -> mlua::Result<Value> {
        let summary = self.summary();
        let lists: [Vec<String>; 3] = [
            std::mem::take(&mut self.functions_replaced),
            std::mem::take(&mut self.functions_added),
            std::mem::take(&mut self.functions_kept_deleted),
        ];
        let options = mlua::serde::SerializeOptions::new()
            .serialize_none_to_null(false)
            .serialize_unit_to_null(false)
            .set_array_metatable(false);
        let report = lua.to_value_with(&self, options)?;
        if let Value::Table(table) = &report {
            table.raw_set("summary", summary)?;
            for name in LAZY_LISTS {
                table.raw_set(name, Value::Nil)?;
            }
            table.set_metatable(Some(lazy_lists(lua, lists)?))?;
        }
        Ok(report)
    }
}

/// The report's fields [`Report::into_lua_table`] fills in on first read, in the order of its
/// `lists`.
const LAZY_LISTS: [&str; 3] = [
    "functions_replaced",
    "functions_added",
    "functions_kept_deleted",
];

/// The metatable of a report table whose [`LAZY_LISTS`] are still Rust strings: `__index` and
/// `__pairs` fill them all in, then remove the metatable.
fn lazy_lists(lua: &Lua, lists: [Vec<String>; 3]) -> mlua::Result<mlua::Table> {
    let lists = std::sync::Arc::new(lists);
    let fill = move |lua: &Lua, report: &mlua::Table| -> mlua::Result<()> {
        for (name, list) in LAZY_LISTS.iter().zip(lists.iter()) {
            let sequence = lua.create_table_with_capacity(list.len(), 0)?;
            for (at, path) in list.iter().enumerate() {
                sequence.raw_set(at + 1, path.as_str())?;
            }
            report.raw_set(*name, sequence)?;
        }
        report.set_metatable(None)?;
        Ok(())
    };
    let fill = std::sync::Arc::new(fill);
    let metatable = lua.create_table()?;
    let on_index = fill.clone();
    metatable.raw_set(
        "__index",
        lua.create_function(move |lua, (report, key): (mlua::Table, Value)| {
            on_index(lua, &report)?;
            report.raw_get::<Value>(key)
        })?,
    )?;
    metatable.raw_set(
        "__pairs",
        lua.create_function(move |lua, report: mlua::Table| {
            fill(lua, &report)?;
            // `next` as hotlua first saw it, whatever the program did to its global.
            let next: mlua::Function = crate::standard::functions(lua)?.raw_get("next")?;
            Ok((next, report, Value::Nil))
        })?,
    )?;
    Ok(metatable)
}
