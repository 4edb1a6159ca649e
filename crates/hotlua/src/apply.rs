//! Applying a [`Plan`](crate::plan::Plan): every write, with an undo log.

use mlua::{Function, Lua, Table, Value};

use crate::fallible::Grow;
use crate::memory::LimitLifted;
use crate::raw;
use crate::standard::Chunk;

/// One change to make to the program. The planner produces a list of these; nothing else
/// writes to live objects.
#[derive(Clone)]
pub(crate) enum Write {
    /// `rawset(table, key, value)`.
    Field {
        table: Table,
        key: Value,
        value: Value,
    },
    /// `table[key] = value` through the table's `__newindex`, for a field the new version adds
    /// to a live table whose metatable has one: class libraries propagate methods to subclasses
    /// that way. Made after every raw write; undone by removing the field again, but whatever
    /// else `__newindex` did stays.
    Assign {
        table: Table,
        key: Value,
        value: Value,
    },
    /// `setmetatable(table, metatable)` (raw: `__metatable` protection does not apply).
    Metatable {
        table: Table,
        metatable: Option<Table>,
    },
    /// Set the value of an upvalue cell (seen by every closure sharing it).
    Upvalue {
        function: Function,
        index: i32,
        value: Value,
    },
    /// Set the environment of each function of a Lua list (Lua 5.1 and LuaJIT, where each
    /// function has its own): the new functions of a module, which share one environment
    /// before the write as after it.
    #[cfg(any(feature = "lua51", feature = "luajit"))]
    Environment {
        functions: Table,
        environment: Table,
    },
    /// `rawset(table, key, value)` for each (table, key, value) of a Lua list (3 slots a
    /// write, `list.n` slots) whose field does not hold that value already, in order: the
    /// writes of data tables, which can be a million, and of a module's functions, held in
    /// Lua rather than as three mlua handles each.
    Fields { list: Table },
    /// Puts back what a [`Write::Fields`] replaced, newest first: a list of the same shape
    /// holding the values before.
    Restore { list: Table },
    /// Make new functions' upvalues share an old function's cell. Only ever changes
    /// functions of the new version, which nothing live references before the reload
    /// succeeds, so it needs no undo.
    Join {
        target: Function,
        target_index: i32,
        holders: raw::UpvalueList,
    },
}

impl Write {
    /// Makes the write and records in `undo` the one that undoes it, which has room for it.
    /// A [`Write::Fields`] that fails half-way records what undoes the fields it wrote.
    fn perform(&self, lua: &Lua, undo: &mut Vec<Write>) -> mlua::Result<()> {
        if let Write::Fields { list } = self {
            let slots: usize = list.raw_get("n")?;
            let Some(from) = first_write_needed(lua, list, slots)? else {
                // Every field holds its value already: nothing to write, nothing to undo.
                return Ok(());
            };
            // Sized for every value it will hold, so that noting one never grows it: Lua 5.1
            // and 5.2 lose entries of a table whose growth runs out of memory half-way (the
            // array part grown, the hash part not yet rebuilt), and the undo would lose them.
            let before = lua.create_table_with_capacity(slots + 1 - from, 1)?;
            before.raw_set("n", 0)?;
            undo.push(Write::Restore {
                list: before.clone(),
            });
            return fields_walk(lua, "write")?.call((list, before, from));
        }
        undo.extend(self.perform_one(lua)?);
        Ok(())
    }

    /// Any write but [`Write::Fields`]: reads what undoes it, then makes it.
    fn perform_one(&self, lua: &Lua) -> mlua::Result<Option<Write>> {
        let inverse = self.inverse(lua)?;
        // A field that holds its value already (under `inplace`, every field of a module
        // function: the old function stays and runs the new code) needs neither write nor undo.
        if let (Write::Field { value, .. }, Some(Write::Field { value: before, .. })) =
            (self, &inverse)
        {
            if value == before {
                return Ok(None);
            }
        }
        self.make(lua)?;
        Ok(inverse)
    }

    /// The write that puts back what this one will replace.
    fn inverse(&self, lua: &Lua) -> mlua::Result<Option<Write>> {
        Ok(match self {
            Write::Field { table, key, .. } => Some(Write::Field {
                table: table.clone(),
                key: key.clone(),
                value: table.raw_get(key)?,
            }),
            Write::Assign { table, key, .. } => Some(Write::Field {
                table: table.clone(),
                key: key.clone(),
                value: Value::Nil,
            }),
            Write::Metatable { table, .. } => Some(Write::Metatable {
                table: table.clone(),
                metatable: table.metatable(),
            }),
            Write::Upvalue {
                function, index, ..
            } => Some(Write::Upvalue {
                function: function.clone(),
                index: *index,
                value: raw::upvalues(lua, function)?
                    .into_iter()
                    .nth(*index as usize - 1)
                    .map_or(Value::Nil, |upvalue| upvalue.value),
            }),
            #[cfg(any(feature = "lua51", feature = "luajit"))]
            Write::Environment { functions, .. } => functions
                .raw_get::<Option<Function>>(1)?
                .and_then(|first| first.environment())
                .map(|environment| Write::Environment {
                    functions: functions.clone(),
                    environment,
                }),
            Write::Join { .. } | Write::Fields { .. } | Write::Restore { .. } => None,
        })
    }

    /// Makes the write, recording nothing: how an undo write is made, reading nothing first.
    fn make(&self, lua: &Lua) -> mlua::Result<()> {
        match self {
            Write::Field { table, key, value } => table.raw_set(key, value),
            Write::Assign { table, key, value } => table.set(key, value),
            Write::Metatable { table, metatable } => table.set_metatable(metatable.clone()),
            Write::Upvalue {
                function,
                index,
                value,
            } => raw::set_upvalue(lua, function, *index, value.clone()),
            #[cfg(any(feature = "lua51", feature = "luajit"))]
            Write::Environment {
                functions,
                environment,
            } => raw::set_environments(lua, functions, environment),
            Write::Join {
                target,
                target_index,
                holders,
            } => raw::join_upvalues(lua, target, *target_index, holders),
            Write::Fields { list } => fields_walk(lua, "write")?.call((list, Value::Nil)),
            Write::Restore { list } => fields_walk(lua, "restore")?.call(list),
        }
    }
}

/// The slot of the first write of a [`Write::Fields`] list of `slots` slots whose field does
/// not hold its value already, if any: the fields before it are skipped over the raw stack
/// rather than one `rawget` call each in Lua (under `inplace` a module of ten thousand
/// functions lists ten thousand such fields). The check is the one `write` makes, in order, and
/// before any write, so what it skips `write` would have skipped. A field whose live value
/// differs but may be equal by `__eq`, or a list entry that is not a table, is left to `write`.
fn first_write_needed(lua: &Lua, list: &Table, slots: usize) -> mlua::Result<Option<usize>> {
    let mut first = None;
    // SAFETY: index 1 is `list`; room for the four values each step pushes is made first.
    // lua_rawgeti and lua_rawget read without metamethods and raise nothing (lua_rawget is
    // only given a table), lua_rawequal compares without metamethods, and each step pops
    // what it pushed.
    unsafe {
        lua.exec_raw::<()>(list, |state| {
            if mlua::ffi::lua_checkstack(state, 4) == 0 {
                first = Some(1);
                return;
            }
            for slot in (1..=slots).step_by(3) {
                mlua::ffi::lua_rawgeti(state, 1, slot as mlua::ffi::lua_Integer);
                let same = mlua::ffi::lua_type(state, 2) == mlua::ffi::LUA_TTABLE && {
                    mlua::ffi::lua_rawgeti(state, 1, slot as mlua::ffi::lua_Integer + 1);
                    mlua::ffi::lua_rawget(state, 2);
                    mlua::ffi::lua_rawgeti(state, 1, slot as mlua::ffi::lua_Integer + 2);
                    mlua::ffi::lua_rawequal(state, 3, 4) != 0
                };
                mlua::ffi::lua_settop(state, 1);
                if !same {
                    first = Some(slot);
                    return;
                }
            }
        })?;
    }
    Ok(first)
}

/// `write(list, before, from)` makes the writes of a [`Write::Fields`] list in order, from
/// slot `from` (1 when not given; those whose field holds the value already are not made),
/// first noting each field's value in `before` (when given) as a [`Write::Restore`] list: the
/// slots, then their count, so that a write failing half-way leaves `before` exact.
/// `restore(list)` puts those values back, newest first; it allocates nothing (each key is
/// still there).
fn fields_walk(lua: &Lua, name: &str) -> mlua::Result<Function> {
    let walks: Table = crate::standard::cached(lua, &FIELDS)?;
    walks.raw_get(name)
}

/// The writes that undo an applied plan, newest first.
pub(crate) struct Undo(Vec<Write>);

impl Undo {
    /// Restores every value the applied writes replaced.
    pub(crate) fn undo(self, lua: &Lua) {
        let _lifted = LimitLifted::new(lua);
        for inverse in self.0.iter().rev() {
            // An undo write puts a value back into a place that held it a moment ago (a table
            // key still there, an upvalue, a metatable): it allocates nothing, so it cannot
            // fail for lack of memory; nothing better to do if it does.
            let _ = inverse.make(lua);
        }
    }
}

/// Makes every write in order and returns how to undo them all; if one fails, undoes the ones
/// made so far, newest first, and returns the error. The caller stops the collector, so no
/// finalizer runs Lua code between two writes and sees a half-applied reload.
pub(crate) fn apply(lua: &Lua, writes: &[Write]) -> mlua::Result<Undo> {
    let mut undo = Undo(Vec::new());
    // Room for every inverse before the first write: recording one never fails.
    undo.0.grow_by(writes.len())?;
    for write in writes {
        if let Err(error) = write.perform(lua, &mut undo.0) {
            undo.undo(lua);
            return Err(error);
        }
    }
    Ok(undo)
}

/// The walks of [`fields_walk`].
pub(crate) const FIELDS: Chunk = Chunk {
    name: "=hotlua fields",
    source: r#"
local rawget, rawset = rawget, rawset
local function write(list, before, from)
  local n = 0
  for i = from or 1, list.n, 3 do
    local table, key, value = list[i], list[i + 1], list[i + 2]
    local was = rawget(table, key)
    -- Under `inplace` every module function's field holds its value already: the old
    -- function stays and runs the new code. Such a field needs neither write nor undo.
    if was ~= value then
      if before then
        before[n + 1], before[n + 2], before[n + 3] = table, key, was
        n = n + 3
        before.n = n
      end
      rawset(table, key, value)
    end
  end
end
local function restore(list)
  for i = list.n - 2, 1, -3 do
    rawset(list[i], list[i + 1], list[i + 2])
  end
end
return { write = write, restore = restore }
"#,
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `list` (Lua source of a Fields list over the global table `t`) as one write and
    /// returns `t` after it and after undoing it, as `a,b` text.
    fn write_then_undo(list: &str) -> (usize, String, String) {
        let lua = Lua::new();
        lua.load("t = { a = 1, b = 2 }").exec().unwrap();
        let list: Table = lua.load(list).eval().unwrap();
        let fields = |lua: &Lua| {
            lua.load("return t.a .. ',' .. t.b")
                .eval::<String>()
                .unwrap()
        };
        let undo = apply(&lua, &[Write::Fields { list }]).unwrap();
        let (undo_writes, written) = (undo.0.len(), fields(&lua));
        undo.undo(&lua);
        (undo_writes, written, fields(&lua))
    }

    #[test]
    fn fields_that_hold_their_values_are_neither_written_nor_undone() {
        let (undo_writes, written, undone) =
            write_then_undo("return { t, 'a', 1, t, 'b', 2, n = 6 }");
        assert_eq!(
            (undo_writes, written.as_str(), undone.as_str()),
            (0, "1,2", "1,2")
        );
    }

    /// The first fields are skipped before any write; from the first that needs a write on,
    /// each is checked after the writes before it, as in one pass: the last `b = 2` is
    /// written, as `b` holds 3 by then.
    #[test]
    fn fields_are_written_in_order_after_the_first_that_needs_it() {
        let (undo_writes, written, undone) =
            write_then_undo("return { t, 'a', 1, t, 'b', 3, t, 'a', 5, t, 'b', 2, n = 12 }");
        assert_eq!(
            (undo_writes, written.as_str(), undone.as_str()),
            (1, "5,2", "1,2")
        );
    }

    #[test]
    fn a_field_of_what_is_not_a_table_fails_and_writes_nothing() {
        let lua = Lua::new();
        lua.load("t = { a = 1 }").exec().unwrap();
        let list: Table = lua
            .load("return { t, 'a', 1, 'text', 'a', 2, n = 6 }")
            .eval()
            .unwrap();
        assert!(apply(&lua, &[Write::Fields { list }]).is_err());
        assert_eq!(lua.load("return t.a").eval::<i64>().unwrap(), 1);
    }
}
