//! Switching references to old functions, wherever the program holds them, to the new ones.
//!
//! The merge has already given the module's own tables and locals the new functions; what is
//! left are references held elsewhere: other modules' locals, callback lists, table keys,
//! metatables, the registry (and so mlua handles and `luaL_ref`s), userdata user values,
//! coroutine stacks. The planner hands this step the complete old → new function map.

#[cfg(hotlua_inplace)]
mod inplace;
mod walk;

use std::time::Instant;

use mlua::Lua;
use rustc_hash::FxHashSet;
use serde::Serialize;

use crate::fallible::Grow;
use crate::plan::Plan;

/// How a reload gives the program the new code of the module's functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Engine {
    /// Every Lua closure of the old version, wherever it is referenced and whenever it was
    /// created, is pointed at its new prototype in place (one scan of the collector's object
    /// list; a C shim built for Lua 5.4 or LuaJIT 2.1). Functions keep their identity. Where it
    /// is not built ([`Engine::inplace_available`]: Lua 5.1–5.3 and 5.5), or the Lua running
    /// it does not lay its objects out as the shim was compiled for (a C module in another
    /// build: proven once per state, said once on stderr and in each report's warnings),
    /// [`Engine::Walk`] runs instead.
    Inplace,
    /// One walk over the reachable heap through the public C API replaces every reference to
    /// an old function by the new function. Closures created at run time keep the old code.
    Walk,
}

impl Default for Engine {
    /// `Inplace` where it is built, `Walk` elsewhere.
    fn default() -> Engine {
        if Engine::inplace_available() {
            Engine::Inplace
        } else {
            Engine::Walk
        }
    }
}

impl Engine {
    /// True when this build has the `inplace` engine (Lua 5.4, LuaJIT); whether the running Lua's
    /// layout lets it run is known only in a state.
    pub fn inplace_available() -> bool {
        cfg!(hotlua_inplace)
    }

    /// Parses the names the Lua API uses: `"inplace"`, `"walk"`.
    pub fn from_name(name: &str) -> Option<Engine> {
        match name {
            "inplace" => Some(Engine::Inplace),
            "walk" => Some(Engine::Walk),
            _ => None,
        }
    }

    /// The engine's name, as the report gives it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Inplace => "inplace",
            Engine::Walk => "walk",
        }
    }

    /// True when the reload keeps the old functions (which take the new code) in the live
    /// program, instead of storing the new functions.
    pub(crate) fn keeps_identity(self, lua: &Lua) -> bool {
        self == Engine::Inplace && inplace_runs(lua)
    }
}

/// Why closures of the old version kept their old code (engine `inplace`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LeftOld {
    /// On a frame of a running thread (the one that called the reload, or one resuming
    /// another): that frame's C code holds the closure's code and constants. A module function
    /// among them is switched to its new version by the walk instead.
    pub running_frame: usize,
    /// Its new version captures a variable it does not have (a local of a factory call that
    /// already returned): its value cannot be known.
    pub unknown_upvalue: usize,
    /// Its prototype has no counterpart in the new file (deleted, moved, or the place it is
    /// made at changed: `em:on("open", fn)` became `em:on("close", fn)`), or the code is
    /// stripped of names.
    pub unpaired_prototype: usize,
    /// Several functions of the new file could be its counterpart (siblings made at the same
    /// place, with the same parameters, in a different number): running one of them could be
    /// running another function's code.
    pub ambiguous_prototype: usize,
    /// A variable its new version captures changed scope (a per-call local became a
    /// module-level one, or the other way round) and no live variable can be bound to it.
    pub upvalue_scope_changed: usize,
    /// Left old by an earlier reload, for one of the reasons above, and still on old code:
    /// the function it would have become did not pair again (each reload of the module tries
    /// those closures again where it does).
    pub earlier_reload: usize,
}

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

/// True when engine `inplace` runs in `lua`: built, and the layout of its Lua proven.
fn inplace_runs(lua: &Lua) -> bool {
    #[cfg(hotlua_inplace)]
    return crate::layout::proven(lua);
    #[cfg(not(hotlua_inplace))]
    {
        let _ = lua;
        false
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

/// Switches every reference to an old function of `plan` to the new code with `engine` and
/// records what it did in `report`.
pub(crate) fn switch_references(
    lua: &Lua,
    plan: &Plan,
    report: &mut crate::Report,
    engine: Engine,
) -> mlua::Result<()> {
    let started = Instant::now();
    #[cfg(hotlua_inplace)]
    if engine == Engine::Inplace && inplace_runs(lua) {
        report.engine = "inplace";
        inplace::switch(lua, plan, report)?;
        report.timings.switch_ms = started.elapsed().as_secs_f64() * 1e3;
        return Ok(());
    }
    if engine == Engine::Inplace {
        #[cfg(hotlua_inplace)]
        let why = crate::layout::reason_unproven(lua).unwrap_or_default();
        #[cfg(not(hotlua_inplace))]
        let why = "engine inplace is not built in this program";
        report.warnings.push(format!("{why}: 'walk' ran"));
    }
    report.engine = "walk";
    let switched = walk_pairs(lua, plan, plan.replaced.iter())?;
    report.references = switched.references;
    report.objects_visited = switched.objects_visited;
    report.closures_left_old = switched.closures_left_old;
    report.frames_left_old = switched.frames_left_old;
    report.timings.switch_ms = started.elapsed().as_secs_f64() * 1e3;
    Ok(())
}

/// Runs the walk for the given old → new pairs of `plan`; all or nothing (see [`walk::walk`]).
fn walk_pairs(
    lua: &Lua,
    plan: &Plan,
    pairs: impl Iterator<Item = mlua::Result<(mlua::Function, mlua::Function)>>,
) -> mlua::Result<Switched> {
    let map = lua.create_table()?;
    let mut old = FxHashSet::default();
    for pair in pairs {
        let (before, after) = pair?;
        map.raw_set(&before, after)?;
        old.grow()?;
        old.insert(before.to_pointer() as usize);
    }
    if old.is_empty() {
        // No old function has a new version: nothing anywhere can need switching.
        return Ok(Switched::default());
    }
    let mut known = FxHashSet::default();
    known.grow_by(plan.known.len())?;
    known.extend(plan.known.iter().copied());
    walk::walk(lua, &map, &old, &known, &plan.sources)
}
