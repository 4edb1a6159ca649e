//! Switching references to old functions, wherever the program holds them, to the new ones.
//!
//! The merge has already given the module's own tables and locals the new functions; what is
//! left are references held elsewhere: other modules' locals, callback lists, table keys,
//! metatables, the registry (and so mlua handles and `luaL_ref`s), userdata user values,
//! coroutine stacks. The planner hands this step the complete old → new function map.

mod walk;

use std::time::Instant;

use mlua::Lua;
use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::plan::Plan;

/// References switched to new functions, by the kind of place that held them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Switches {
    /// Values of ordinary tables (callback lists, other modules' tables).
    pub table_values: usize,
    /// Table keys (`seen[m.f] = true`): the entry moves to the new function, value kept.
    pub table_keys: usize,
    /// Fields of tables reached as some object's metatable (`__index`, `__call`, ...).
    pub metatables: usize,
    /// Upvalues of Lua and C closures (other modules' locals).
    pub upvalues: usize,
    /// Locals, temporaries and varargs of coroutine and thread frames, and the stacks of
    /// threads without frames (coroutines not started yet, mlua's handles).
    pub stack_slots: usize,
    /// Entries of the registry (`luaL_ref`).
    pub registry: usize,
    /// Userdata user values.
    pub user_values: usize,
}

impl Switches {
    /// All switched references.
    pub fn total(&self) -> usize {
        self.table_values
            + self.table_keys
            + self.metatables
            + self.upvalues
            + self.stack_slots
            + self.registry
            + self.user_values
    }
}

/// What the switching pass did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Switched {
    pub references: Switches,
    pub objects_visited: usize,
    pub closures_left_old: usize,
    pub frames_left_old: usize,
}

/// Switches every reference to an old function of `plan` with the `walk` engine and records
/// what it did in `report`.
pub(crate) fn switch_references(
    lua: &Lua,
    plan: &Plan,
    report: &mut crate::Report,
) -> mlua::Result<()> {
    let started = Instant::now();
    report.engine = "walk";
    if plan.replaced.is_empty() {
        // No old function has a new version: nothing anywhere can need switching.
        return Ok(());
    }
    let map = lua.create_table_with_capacity(0, plan.replaced.len())?;
    let mut old = FxHashSet::default();
    for (before, after) in &plan.replaced {
        map.raw_set(before, after)?;
        old.insert(before.to_pointer() as usize);
    }
    let switched = walk::walk(lua, &map, &old, &plan.known, &plan.sources)?;
    report.references = switched.references;
    report.objects_visited = switched.objects_visited;
    report.closures_left_old = switched.closures_left_old;
    report.frames_left_old = switched.frames_left_old;
    report.timings.switch_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(())
}
