//! Tables by identity, held in a Lua table instead of one mlua handle each: mlua holds a
//! limited number of handles (about a million on Lua 5.2+, about 8000 on Lua 5.1 and LuaJIT),
//! and a module's data can have more tables than that.

use crate::standard::Chunk;
use mlua::{Function, Lua, Table, Value};
use rustc_hash::FxHashSet;

use super::{Path, Task};
use crate::fallible::{Grow, TryPush};
use crate::Result;

/// A map from tables to values, with membership answered without touching Lua.
pub(super) struct TableMap {
    identities: FxHashSet<usize>,
    entries: Table,
    /// For a map the data walks write into too ([`TableMap::shared`]): their data tables,
    /// where a data table maps to a table once paired (see `data.lua`). A table missing from
    /// `identities` may then be in `entries` or there.
    data: Option<Table>,
    /// How many data tables [`TableMap::insert`] paired.
    data_paired: usize,
}

impl TableMap {
    pub(super) fn new(lua: &Lua) -> Result<TableMap> {
        Ok(TableMap {
            identities: FxHashSet::default(),
            entries: lua.create_table()?,
            data: None,
            data_paired: 0,
        })
    }

    /// A map that the data walks write into too: through [`TableMap::entries`], and `data`.
    pub(super) fn shared(lua: &Lua, data: &Table) -> Result<TableMap> {
        Ok(TableMap {
            data: Some(data.clone()),
            ..TableMap::new(lua)?
        })
    }

    /// The Lua table of the entries: only a [`TableMap::shared`] map may be written through it.
    pub(super) fn entries(&self) -> &Table {
        &self.entries
    }

    pub(super) fn contains(&self, table: &Table) -> Result<bool> {
        Ok(self.identities.contains(&(table.to_pointer() as usize))
            || self.lua_side(table)?.is_some())
    }

    /// True if the table of that identity is in the map as far as Rust knows (tables the data
    /// walks mapped are not: only [`TableMap::contains`] finds those).
    pub(super) fn holds(&self, identity: usize) -> bool {
        self.identities.contains(&identity)
    }

    /// How many data tables this map paired (the data walks pair others themselves).
    pub(super) fn data_paired(&self) -> usize {
        self.data_paired
    }

    /// What the data walks mapped `table` to, if they did.
    fn lua_side(&self, table: &Table) -> Result<Option<Value>> {
        let Some(data) = &self.data else {
            return Ok(None);
        };
        if let Value::Table(paired) = data.raw_get(table)? {
            return Ok(Some(Value::Table(paired)));
        }
        Ok(match self.entries.raw_get(table)? {
            Value::Nil => None,
            value => Some(value),
        })
    }

    /// Maps `table` to `value`; false if it already was in the map (then nothing changes).
    pub(super) fn insert(&mut self, table: &Table, value: impl mlua::IntoLua) -> Result<bool> {
        if self.contains(table)? {
            return Ok(false);
        }
        if let Some(data) = &self.data {
            // A data table's pair is kept where the data walks keep it.
            if data.raw_get::<Value>(table)? == Value::Boolean(true) {
                data.raw_set(table, value)?;
                self.data_paired += 1;
                return Ok(true);
            }
        }
        self.identities.grow()?;
        self.identities.insert(table.to_pointer() as usize);
        self.entries.raw_set(table, value)?;
        Ok(true)
    }

    /// The table `table` maps to, if it maps to one.
    pub(super) fn get(&self, table: &Table) -> Result<Option<Table>> {
        if self.identities.contains(&(table.to_pointer() as usize)) {
            return Ok(self.entries.raw_get(table)?);
        }
        Ok(match self.lua_side(table)? {
            Some(Value::Table(paired)) => Some(paired),
            _ => None,
        })
    }

    /// Every table in the map, one handle at a time.
    pub(super) fn tables(&self) -> impl Iterator<Item = mlua::Result<Table>> + '_ {
        self.entries
            .pairs::<Value, Value>()
            .map(|pair| match pair? {
                (Value::Table(table), _) => Ok(table),
                _ => Err(mlua::Error::runtime(
                    "a table map holds a key that is not a table",
                )),
            })
    }
}

/// What [`PendingValues`] holds: a value to visit, or the rest of a new table's fields.
pub(super) enum Pending {
    Value(Value, Path),
    /// The fields of the new table at `path` after `key`, where the fast path stopped
    /// (`collect_fields.rs`): they are visited once everything that field reaches is.
    FieldsAfter {
        table: Table,
        key: Value,
        path: Path,
    },
}

/// Values waiting to be visited, each with its path, as a stack: the values wait in a Lua
/// table (one handle in all), the paths in Rust. Only tables and functions are kept: nothing
/// else has anything to visit.
pub(super) struct PendingValues {
    /// The value of each entry, or the table of a [`Pending::FieldsAfter`].
    values: Table,
    /// The key of each [`Pending::FieldsAfter`], at its entry's slot.
    keys: Table,
    /// Each entry's path, and whether it is a [`Pending::FieldsAfter`].
    paths: Vec<(Path, bool)>,
    /// `reverse(values, keys, low, high)`, in Lua: a table's ten thousand fields are reversed
    /// in one call, not by forty thousand trips through mlua.
    reverse: Function,
}

pub(crate) const REVERSE: Chunk = Chunk {
    name: "=hotlua reverse",
    source: r#"
return function(values, keys, low, high)
  while low < high do
    values[low], values[high] = values[high], values[low]
    keys[low], keys[high] = keys[high], keys[low]
    low, high = low + 1, high - 1
  end
end
"#,
};

impl PendingValues {
    pub(super) fn new(lua: &Lua) -> Result<PendingValues> {
        Ok(PendingValues {
            values: lua.create_table()?,
            keys: lua.create_table()?,
            paths: Vec::new(),
            reverse: crate::standard::cached(lua, &REVERSE)?,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.paths.len()
    }

    pub(super) fn push(&mut self, value: &Value, path: Path) -> Result<()> {
        if matches!(value, Value::Table(_) | Value::Function(_)) {
            self.values.raw_set(self.paths.len() + 1, value)?;
            self.paths.try_push((path, false))?;
        }
        Ok(())
    }

    /// Pushes [`Pending::FieldsAfter`] `table`'s `key`.
    pub(super) fn push_fields_after(
        &mut self,
        table: &Table,
        key: Value,
        path: Path,
    ) -> Result<()> {
        self.values.raw_set(self.paths.len() + 1, table)?;
        self.keys.raw_set(self.paths.len() + 1, key)?;
        self.paths.try_push((path, true))?;
        Ok(())
    }

    pub(super) fn pop(&mut self) -> Result<Option<Pending>> {
        let Some((path, fields_after)) = self.paths.pop() else {
            return Ok(None);
        };
        let slot = self.paths.len() + 1;
        let value: Value = self.values.raw_get(slot)?;
        self.values.raw_set(slot, Value::Nil)?;
        if !fields_after {
            return Ok(Some(Pending::Value(value, path)));
        }
        let key: Value = self.keys.raw_get(slot)?;
        self.keys.raw_set(slot, Value::Nil)?;
        match value {
            Value::Table(table) => Ok(Some(Pending::FieldsAfter { table, key, path })),
            _ => Err(mlua::Error::runtime("a pending table lost its table").into()),
        }
    }

    /// Reverses the entries pushed since the stack held `from` of them, so that the first of
    /// them is popped first.
    pub(super) fn reverse_since(&mut self, from: usize) -> Result<()> {
        let (mut low, mut high) = (from + 1, self.paths.len());
        self.paths[from..].reverse();
        if high - from > 8 {
            return Ok(self.reverse.call((&self.values, &self.keys, low, high))?);
        }
        // Keys are there only for the tables whose rest waits.
        let with_keys = self.paths[from..]
            .iter()
            .any(|(_, fields_after)| *fields_after);
        let lists = [&self.values, &self.keys];
        while low < high {
            for list in &lists[..1 + usize::from(with_keys)] {
                let a: Value = list.raw_get(low)?;
                let b: Value = list.raw_get(high)?;
                list.raw_set(low, b)?;
                list.raw_set(high, a)?;
            }
            low += 1;
            high -= 1;
        }
        Ok(())
    }
}

/// The planner's pending [`Task`]s as a stack: their objects wait in a Lua table (three slots
/// a task, one handle in all), their kinds and paths in Rust. A table of a million records
/// queues a million merges: as mlua handles they would not fit.
pub(super) struct Tasks {
    objects: Table,
    kinds: Vec<(bool, Path)>,
}

impl Tasks {
    pub(super) fn new(lua: &Lua) -> Result<Tasks> {
        Ok(Tasks {
            objects: lua.create_table()?,
            kinds: Vec::new(),
        })
    }

    pub(super) fn push(&mut self, task: Task) -> Result<()> {
        let slot = 3 * self.kinds.len();
        let (merge, path) = match task {
            Task::MergeTables {
                live,
                new,
                path,
                base,
            } => {
                self.objects.raw_set(slot + 1, live)?;
                self.objects.raw_set(slot + 2, new)?;
                self.objects.raw_set(slot + 3, base)?;
                (true, path)
            }
            Task::PairUpvalues { old, new, path } => {
                self.objects.raw_set(slot + 1, old)?;
                self.objects.raw_set(slot + 2, new)?;
                (false, path)
            }
        };
        self.kinds.try_push((merge, path))?;
        Ok(())
    }

    pub(super) fn pop(&mut self) -> Result<Option<Task>> {
        let Some((merge, path)) = self.kinds.pop() else {
            return Ok(None);
        };
        let slot = 3 * self.kinds.len();
        let take = |i: usize| -> Result<Value> {
            let value = self.objects.raw_get(slot + i)?;
            self.objects.raw_set(slot + i, Value::Nil)?;
            Ok(value)
        };
        let (first, second, third) = (take(1)?, take(2)?, take(3)?);
        Ok(Some(match (merge, first, second) {
            (true, Value::Table(live), Value::Table(new)) => Task::MergeTables {
                live,
                new,
                path,
                base: match third {
                    Value::Table(base) => Some(base),
                    _ => None,
                },
            },
            (false, Value::Function(old), Value::Function(new)) => {
                Task::PairUpvalues { old, new, path }
            }
            _ => {
                return Err(mlua::Error::runtime("a planner task lost its objects").into());
            }
        }))
    }
}
