//! Phase 2, fields: merging each field of a new table into its live table, by the pairing
//! rules and the data policy (the bulk of a module's function fields go by the fast path of
//! `function_fields.rs`).

use mlua::{Function, Table, Value};

use super::{both_numbers, Path, Planner};
use crate::apply::Write;
use crate::fallible::TryPush;
use crate::report::Conflict;
use crate::{DataPolicy, Result};

impl Planner<'_> {
    /// Merges every field the new table sets into the live table. Returns how many of those
    /// fields (at keys other than tables and functions) hold a function in the live table.
    pub(super) fn merge_fields(
        &mut self,
        live: &Table,
        new: &Table,
        path: &Path,
        base: Option<&Table>,
    ) -> Result<usize> {
        // The fields that hold a function of the batch replacing another go by the fast path
        // (function_fields.rs); it stops at any other field, which is merged here.
        let mut live_functions = 0;
        let mut from = Value::Nil;
        while let Some(key) =
            self.merge_function_fields(live, new, path, &from, &mut live_functions)?
        {
            let new_value: Value = new.raw_get(&key)?;
            let live_function =
                self.merge_one_field(live, new, key.clone(), new_value, path, base)?;
            live_functions += usize::from(live_function);
            from = key;
        }
        Ok(live_functions)
    }

    /// Merges `new[key]` into the live table, and says whether the live table held a function
    /// at `key` (never for a key that is a table or a function).
    fn merge_one_field(
        &mut self,
        live: &Table,
        new: &Table,
        key: Value,
        new_value: Value,
        path: &Path,
        base: Option<&Table>,
    ) -> Result<bool> {
        if matches!(key, Value::Table(_) | Value::Function(_)) {
            // Not a path: add the entry if the live table lacks it, never merge.
            let live_key = self.resolve(&key)?;
            if live.raw_get::<Value>(&live_key)? == Value::Nil {
                self.note_unmerged(new, &key, &new_value, None)?;
                self.writes.try_push(Write::Field {
                    table: live.clone(),
                    key,
                    value: new_value,
                })?;
            }
            return Ok(false);
        }
        let field_path = path.field(&key);
        let live_value: Value = live.raw_get(&key)?;
        let live_function = matches!(live_value, Value::Function(_));
        let base_value = BaseField { base, key: &key };
        let added = live_value == Value::Nil;
        let live_table = match &live_value {
            Value::Table(table) => Some(table.clone()),
            _ => None,
        };
        let replaced = self.merge_field(live_value, &new_value, base_value, &field_path)?;
        self.note_unmerged(new, &key, &new_value, live_table.as_ref())?;
        if replaced {
            if let Value::Function(function) = &new_value {
                if !added && self.is_new_function(function) {
                    self.push_function_write(live, &key, function)?;
                    return Ok(live_function);
                }
            }
            let write = if added && live != &self.globals && self.has_newindex(live)? {
                Write::Assign {
                    table: live.clone(),
                    key,
                    value: new_value,
                }
            } else {
                Write::Field {
                    table: live.clone(),
                    key,
                    value: new_value,
                }
            };
            self.writes.try_push(write)?;
        }
        Ok(live_function)
    }

    /// Plans `live[key] = function`, a new function of the batch replacing another function:
    /// one for each function of a module, held in a Lua list (see [`Write::Fields`]).
    fn push_function_write(
        &mut self,
        live: &Table,
        key: &Value,
        function: &Function,
    ) -> Result<()> {
        self.function_writes.push(live)?;
        self.function_writes.push(key)?;
        self.function_writes.push(function)?;
        Ok(())
    }

    /// Notes `new[key]` (a field of a new table merged into a live one) if it holds a table
    /// that did not merge into `live`, the live table at that field: a table that goes live,
    /// or one the program holds already, which the baseline must copy.
    fn note_unmerged(
        &mut self,
        new: &Table,
        key: &Value,
        value: &Value,
        live: Option<&Table>,
    ) -> Result<()> {
        let Value::Table(table) = value else {
            return Ok(());
        };
        if live.is_some() && self.table_pairs.get(table)?.as_ref() == live {
            return Ok(());
        }
        let at: usize = self.unmerged.raw_get("n")?;
        self.unmerged.raw_set(at + 1, new)?;
        self.unmerged.raw_set(at + 2, key)?;
        self.unmerged.raw_set("n", at + 2)?;
        Ok(())
    }

    /// Pairs a field's live and new values and says whether the new value replaces the live one.
    fn merge_field(
        &mut self,
        live: Value,
        new: &Value,
        base: BaseField<'_>,
        path: &Path,
    ) -> Result<bool> {
        if &live == new {
            return Ok(false);
        }
        // Read only where the rules need it: not for the ten thousand function pairs of a
        // module.
        let base = || base.value();
        Ok(match (&live, new) {
            (Value::Nil, _) => {
                self.report.fields_added += 1;
                true
            }
            (Value::Table(live_table), Value::Table(new_table))
                if self.is_new_table(new_table)? && !self.is_foreign(live_table) =>
            {
                if self.paired_elsewhere(new_table, live_table)? {
                    self.report.warnings.try_push(elsewhere_warning(path))?;
                    return Ok(true);
                }
                let base_table = match base()? {
                    Some(Value::Table(base_table)) => Some(base_table),
                    _ => None,
                };
                self.pair_tables(live_table, new_table, path, base_table)?;
                false
            }
            (Value::Function(live_fn), Value::Function(new_fn)) => {
                if self.owned(live_fn)? && self.is_new_function(new_fn) {
                    self.pair_functions(live_fn, new_fn, path)?;
                    true
                } else if self.same_foreign_prototype(live_fn, new_fn)? {
                    self.pair_foreign_closures(live_fn, new_fn, path)?;
                    false
                } else if self.owned(live_fn)? || !self.is_new_function(new_fn) {
                    // The file points the field at different code.
                    true
                } else {
                    self.file_still_sets(&live, base()?.as_ref())?
                }
            }
            (Value::Table(live_table), Value::Table(new_table))
                if self.is_foreign(live_table) && self.is_new_table(new_table)? =>
            {
                self.file_still_sets(&live, base()?.as_ref())?
            }
            _ if std::mem::discriminant(&live) != std::mem::discriminant(new)
                && !both_numbers(&live, new) =>
            {
                true
            }
            _ => self.merge_data(&live, new, base()?, path),
        })
    }

    /// Whether the module's own new value replaces a live value the module does not own (a
    /// builtin, another module's table or function, a callback the program installed). The
    /// load-time values say whether the file put the live value there, when they were recorded;
    /// otherwise a builtin or another module's value was the file's doing, and any other
    /// function is a callback the program installed.
    pub(super) fn file_still_sets(&mut self, live: &Value, base: Option<&Value>) -> Result<bool> {
        Ok(match base {
            Some(base) => base == live,
            None => self.belongs_elsewhere(live)?,
        })
    }

    /// True for another module's table, a C function, or a function that another module or
    /// `_G` exports as a field.
    fn belongs_elsewhere(&mut self, value: &Value) -> Result<bool> {
        Ok(match value {
            Value::Table(table) => self.is_foreign(table),
            Value::Function(function) => {
                function.info().what == "C"
                    || self
                        .exported_elsewhere()?
                        .contains(&(function.to_pointer() as usize))
            }
            _ => false,
        })
    }

    /// Same-type data: the policy decides.
    fn merge_data(&mut self, live: &Value, new: &Value, base: Option<Value>, path: &Path) -> bool {
        match self.policy {
            DataPolicy::Keep => false,
            DataPolicy::Overwrite => true,
            DataPolicy::Merge3 => match base {
                Some(base) if &base == live => true,
                Some(base) => {
                    if &base != new {
                        self.report.conflicts.push(Conflict {
                            path: path.to_string(),
                            live: display(live),
                            file: display(new),
                        });
                    }
                    false
                }
                None => false,
            },
        }
    }
}

/// The load-time value of a field (`None` when no load-time values were recorded), read on
/// demand.
struct BaseField<'a> {
    base: Option<&'a Table>,
    key: &'a Value,
}

impl BaseField<'_> {
    fn value(&self) -> Result<Option<Value>> {
        Ok(match self.base {
            Some(base) => Some(base.raw_get(self.key)?),
            None => None,
        })
    }
}

/// The warning for a field at `path` that the new version points at a table another field
/// holds too (`M.b = M.a`): the field takes the live table the other field kept, so that both
/// read one table as the file says.
pub(super) fn elsewhere_warning(path: &Path) -> String {
    format!(
        "{path} now holds a table another field of the new version holds too: it takes that \
         field's live table, and the table it held before is no longer reachable from it"
    )
}

pub(super) fn display(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{:?}", s.to_string_lossy()),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::Nil => "nil".into(),
        other => other.type_name().to_owned(),
    }
}
