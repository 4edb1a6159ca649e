//! The world a new top level runs in: the real globals, with every write it makes into a table
//! that existed before it ran recorded and undone afterwards.
//!
//! A new top level must see the program as the program sees itself (design §Semantics 9):
//! `rawget(_G, k)` gives the live value, `_G`'s metatable is the live one (its `__index`
//! supplies lazy globals, a strict mode raises), host tables such as `love`, `vim` or `string`
//! are there to be extended (`function love.update(dt) … end`). Yet nothing may change unless
//! the whole reload succeeds. So the top level runs against the live tables, and each table it
//! can write into is copied (one level, its fields and metatable) just before it can:
//!
//! - `_G`, before the top level starts;
//! - the module's live value, if a table (`local M = require("registry").Shape`);
//! - every table the top level reads through a global name that held that table before it ran
//!   (`love`, `string`, `Shop` in `Shop = Shop or {}`), the first time it reads it.
//!
//! One thing it does not see: a global that holds one of the old version's own functions reads
//! as nil through `_ENV` (`rawget` still gives it), so that a definition that refuses to
//! redefine (Lua 5.5's `global function f`) runs again; the new function is paired with the
//! old one by its path as usual.
//!
//! The top level's `_ENV` is an empty table whose `__index` reads the real globals (through
//! `_G`'s own metamethods) and notes such tables, and whose `__newindex` is `_G` itself, so
//! global writes land in `_G` at once and the rest of the program (other modules the top level
//! calls) sees them while it runs. Once it has run, every copied table is compared with its copy:
//! what changed comes out as a fresh table per live table (what the top level *wrote*), and the
//! live table is put back exactly as it was. The planner then merges what was written into the
//! live tables by the same rules as any new version, so a `check` or a failed reload leaves
//! them untouched.
//!
//! Staging therefore costs one shallow copy of `_G` (its keys, not what they hold) and of each
//! table the top level reads through a global, never a walk of the program's global data.
//! Limitation: a table reached *inside* a copied one (`Shop.config.debug = false`, where
//! `Shop.config` already existed) is not copied, so such a nested write is live at once and is
//! not undone.

use std::sync::Arc;

use mlua::{Function, Lua, Table, Value};

use crate::fallible::TryPush;
use crate::memory::LimitLifted;
use crate::standard::Chunk;
use crate::sync::Slot;
use crate::Result;

/// What a new top level wrote into one live table it did not create.
pub struct Written {
    /// The live table, as it was again once the top level ran.
    pub live: Table,
    /// Every field the top level set to a different non-nil value, and the metatable if it
    /// replaced it.
    pub fields: Table,
    /// The global name the top level reached the table by.
    pub name: String,
}

/// Everything a new top level wrote into tables that existed before it ran.
pub(crate) struct Writes {
    /// What it wrote into `_G`.
    pub globals: Table,
    /// What it wrote into the module's live table, if that is a table.
    pub module: Option<Table>,
    /// Every other table it wrote into.
    pub extended: Vec<Written>,
    /// How many entries were compared by looking their keys up.
    pub lookups: usize,
}

/// The staging environment of one new top level and the copies of the tables it may write.
pub(crate) struct Staging {
    /// The `_ENV` of the new top level.
    pub environment: Table,
    journal: Arc<Slot<Journal>>,
    /// `_G` as the top level found it, shared with `environment`'s `__index`, which stops
    /// noting tables once it is gone (after the run).
    state: Table,
}

/// The copied tables, in the order they were copied.
struct Journal {
    copies: Vec<Copy>,
    /// Live table → true, for every table copied.
    seen: Table,
    /// How many table entries were copied: what staging cost.
    entries: usize,
}

struct Copy {
    live: Table,
    fields: Table,
    /// How many entries `fields` has.
    entries: usize,
    metatable: Option<Table>,
    role: Role,
}

/// Why a table was copied.
enum Role {
    Globals,
    Module,
    /// Read through this global name.
    Global(String),
}

/// Makes the environment's `__index`, which reads through the real globals `G` and notes a
/// table that held its global name before the run.
/// A global that still holds one of the old version's own functions reads as nil, so that a
/// definition that refuses to redefine (Lua 5.5's `global function f`) runs again.
///
/// Each name is decided at its first read (`state.keys`: the name → `keys` itself, or the
/// hidden function); later reads cost two table lookups and call nothing, which matters with
/// the time limit's call hook on.
pub(crate) const READ_GLOBAL: Chunk = Chunk {
    name: "=hotlua read global",
    source: r#"
local type, rawequal = type, rawequal
return function(G, state, note, own)
return function(_, key)
  local value = G[key]
  local keys = state.keys
  if keys == nil then return value end
  local decided = keys[key]
  if decided ~= nil then
    if decided ~= keys and decided == value then return nil end
    return value
  end
  keys[key] = keys
  local kind = type(value)
  if (kind == "table" or kind == "function") and rawequal(state.before[key], value) then
    if kind == "table" then
      if not state.seen[value] then note(value, key) end
    elseif own(value) then
      keys[key] = value
      return nil
    end
  end
  return value
end
end
"#,
};

impl Staging {
    /// Copies `_G` and `module` (the module's live value, if a table) and makes the
    /// environment.
    /// `source` is the chunk name of the module's file: globals holding its old functions
    /// read as nil.
    pub(crate) fn new(lua: &Lua, module: &Value, source: &str) -> Result<Staging> {
        let globals = lua.globals();
        // `Send + Sync` exactly when mlua's `send` feature makes its handles so, as the
        // callback below must then be.
        #[allow(clippy::arc_with_non_send_sync)]
        let journal = Arc::new(Slot::new(Journal {
            copies: Vec::new(),
            seen: lua.create_table()?,
            entries: 0,
        }));
        journal.borrow_mut().copy(lua, &globals, Role::Globals)?;
        if let Value::Table(module) = module {
            journal.borrow_mut().copy(lua, module, Role::Module)?;
        }
        let state = lua.create_table()?;
        state.raw_set("before", journal.borrow().copies[0].fields.clone())?;
        state.raw_set("seen", journal.borrow().seen.clone())?;
        state.raw_set("keys", lua.create_table()?)?;
        let source = source.to_owned();
        let own = lua.create_function(move |_, function: Function| {
            let info = function.info();
            Ok(info.what == "Lua" && info.source.as_deref() == Some(source.as_str()))
        })?;
        // The callback holds the journal, not the environment: a Rust-held reference to the
        // table whose metatable holds the callback would be a cycle the collector cannot see.
        let noted = Arc::downgrade(&journal);
        let note = lua.create_function(move |lua, (table, key): (Table, Value)| {
            if let Some(journal) = noted.upgrade() {
                let name = match key {
                    Value::String(name) => name.to_string_lossy(),
                    other => format!("[{}]", other.type_name()),
                };
                journal
                    .borrow_mut()
                    .copy(lua, &table, Role::Global(name))
                    .map_err(mlua::Error::external)?;
            }
            Ok(())
        })?;
        let make_read: Function = crate::standard::cached(lua, &READ_GLOBAL)?;
        let read: Function = make_read.call((&globals, &state, note, own))?;
        let metatable = lua.create_table()?;
        metatable.raw_set("__index", read)?;
        metatable.raw_set("__newindex", &globals)?;
        let environment = lua.create_table()?;
        environment.set_metatable(Some(metatable))?;
        Ok(Staging {
            environment,
            journal,
            state,
        })
    }

    /// How many table entries staging copied so far.
    pub(crate) fn entries_copied(&self) -> usize {
        self.journal.borrow().entries
    }

    /// Puts every copied table back as it was and returns what the top level wrote.
    ///
    /// Every table is put back whatever happens; an error (out of memory while collecting what
    /// was written) comes after.
    pub(crate) fn restore(self, lua: &Lua) -> Result<Writes> {
        // The environment stops noting tables, and lets go of what it noted (closures the top
        // level left behind may keep it alive). Allocates nothing: the keys are there.
        for key in ["keys", "before", "seen"] {
            let _ = self.state.raw_set(key, Value::Nil);
        }
        let copies = std::mem::take(&mut self.journal.borrow_mut().copies);
        let mut writes = Taken::default();
        let mut outcome = Ok(());
        for copy in &copies {
            if outcome.is_ok() {
                let taken = copy.take_written(lua);
                match taken.and_then(|(fields, lookups)| {
                    writes.lookups += lookups;
                    writes.add(lua, copy, fields)
                }) {
                    Ok(()) => continue,
                    Err(error) => outcome = Err(error),
                }
            }
            // After a failure (out of memory), every table not put back yet is, allocating
            // nothing but keys the top level deleted.
            let _lifted = LimitLifted::new(lua);
            let _ = copy.put_back(lua);
        }
        outcome?;
        Ok(Writes {
            // `_G` is copied first, always: taken whenever nothing failed.
            globals: writes
                .globals
                .ok_or(crate::Error::Lua("_G was not copied".into()))?,
            module: writes.module,
            extended: writes.extended,
            lookups: writes.lookups,
        })
    }
}

/// What [`Staging::restore`] has taken out so far.
#[derive(Default)]
struct Taken {
    globals: Option<Table>,
    module: Option<Table>,
    extended: Vec<Written>,
    lookups: usize,
}

impl Taken {
    /// Files what the top level wrote into `copy`'s table.
    fn add(&mut self, lua: &Lua, copy: &Copy, fields: Table) -> Result<()> {
        match &copy.role {
            Role::Globals => self.globals = Some(fields),
            Role::Module => self.module = Some(fields),
            Role::Global(_) if is_empty(lua, &fields)? => {}
            Role::Global(name) => self.extended.try_push(Written {
                live: copy.live.clone(),
                fields,
                name: name.clone(),
            })?,
        }
        Ok(())
    }
}

/// True if the top level wrote nothing into the copied table.
fn is_empty(lua: &Lua, fields: &Table) -> Result<bool> {
    Ok(fields.pairs::<Value, Value>().next().is_none()
        && crate::raw::metatable(lua, fields)?.is_none())
}

impl Journal {
    fn copy(&mut self, lua: &Lua, table: &Table, role: Role) -> Result<()> {
        if self.seen.raw_get::<bool>(table)? {
            return Ok(());
        }
        let (fields, entries) = copy_table(lua, table)?;
        self.copies.try_push(Copy {
            live: table.clone(),
            fields,
            entries,
            metatable: crate::raw::metatable(lua, table)?,
            role,
        })?;
        self.seen.raw_set(table, true)?;
        self.entries += entries;
        Ok(())
    }
}

/// The three table walks of staging, in Lua: a walk through mlua's API costs a handle per key
/// and value, and a top level may write a million globals.
struct TableOps {
    /// `copy(t)`: a raw copy of `t` and its number of entries.
    copy: Function,
    /// `take(live, copy, entries of copy)`: the fields of `live` that differ from `copy` (raw),
    /// while putting `live` back as `copy`.
    take: Function,
    /// `put_back(live, copy)`: makes `live`'s fields those of `copy` again (raw).
    put_back: Function,
}

// `before` is a plain table of hotlua's (no metatable): indexing it is raw. A key the top level
// added has no value in it, which needs no `rawequal` call.
// `copy_slots` and `take_slots` ([`crate::slots`]) do the same as `copy` and `take` slot for
// slot, where the build has them.
pub(crate) const TABLE_OPS: Chunk = Chunk {
    name: "=hotlua staging",
    source: r#"
local next, rawget, rawset, rawequal = next, rawget, rawset, rawequal
local copy_slots, take_slots = copy_slots, take_slots
local function copy(t)
  local c, n = {}, 0
  for k, v in next, t do c[k] = v n = n + 1 end
  return c, n
end
-- What the top level wrote, taken out of `live` in the same pass: each changed field goes into
-- the result, then back to its value in `before`; and how many entries were looked up by key.
-- `count`: how many entries `before` has. When as many of its keys are still in `live`, none
-- was deleted, and the second pass is not needed.
local function take(live, before, count)
  local w = take_slots and take_slots(live, before)
  if w then return w, 0 end
  local still, looked_up = 0, 0
  w = {}
  for k, v in next, live do
    local old = before[k]
    looked_up = looked_up + 1
    if old ~= nil then still = still + 1 end
    if old == nil or not rawequal(old, v) then
      w[k] = v
      rawset(live, k, old)
    end
  end
  if still < count then
    for k, v in next, before do
      looked_up = looked_up + 1
      if rawget(live, k) == nil then rawset(live, k, v) end
    end
  end
  return w, looked_up
end
-- Changing or clearing a field that exists during `next` is allowed, and putting back a value
-- under a key that is there allocates nothing; only keys the top level deleted come back new.
local function put_back(live, before)
  for k, v in next, live do
    local old = before[k]
    if old == nil or not rawequal(old, v) then rawset(live, k, old) end
  end
  for k, v in next, before do
    if rawget(live, k) == nil then rawset(live, k, v) end
  end
end
return { copy_slots or copy, take, put_back }
"#,
};

/// A raw shallow copy of `table` (not its metatable), and its number of entries.
pub(crate) fn copy_table(lua: &Lua, table: &Table) -> Result<(Table, usize)> {
    Ok(table_ops(lua)?.copy.call(table)?)
}

/// The staging walks, compiled once per state.
fn table_ops(lua: &Lua) -> Result<TableOps> {
    let functions: Table = crate::standard::cached(lua, &TABLE_OPS)?;
    Ok(TableOps {
        copy: functions.raw_get(1)?,
        take: functions.raw_get(2)?,
        put_back: functions.raw_get(3)?,
    })
}

impl Copy {
    /// Every field of the live table set to a different non-nil value since the copy, and the
    /// metatable if it was replaced, as a fresh table; the live table is put back as copied.
    /// With it, how many entries were compared by key lookup.
    fn take_written(&self, lua: &Lua) -> Result<(Table, usize)> {
        let metatable = crate::raw::metatable(lua, &self.live)?;
        let (written, lookups): (Table, usize) =
            table_ops(lua)?
                .take
                .call((&self.live, &self.fields, self.entries))?;
        if metatable != self.metatable {
            written.set_metatable(metatable)?;
            self.live.set_metatable(self.metatable.clone())?;
        }
        Ok((written, lookups))
    }

    /// Puts the live table back as it was copied. Putting back a key the top level changed
    /// allocates nothing; only a key it deleted is inserted again.
    fn put_back(&self, lua: &Lua) -> Result<()> {
        if crate::raw::metatable(lua, &self.live)? != self.metatable {
            self.live.set_metatable(self.metatable.clone())?;
        }
        table_ops(lua)?
            .put_back
            .call::<()>((&self.live, &self.fields))?;
        Ok(())
    }
}
