//! Phase 3: joining the new version's upvalue cells to the live locals.

use mlua::{Function, Value};

use super::{both_numbers, NewCell, OldCell, Planner};
use crate::apply::Write;
use crate::batch::Staged;
use crate::fallible::{self, Grow, TryPush};
use crate::raw::UpvalueList;
use crate::report::Conflict;
use crate::DataPolicy;
use crate::Result;

impl Planner<'_> {
    /// Indexes the upvalue cells of an old function by name, for cells of the new version
    /// that no paired function carries.
    pub(super) fn remember_old_cells(&mut self, old: &Function) -> Result<()> {
        self.old_functions.grow()?;
        if !self.old_functions.insert(old.to_pointer() as usize) {
            return Ok(());
        }
        let facts = self.facts(old)?.detach()?;
        for (index, upvalue) in facts.numbered_upvalues() {
            self.old_cells_by_name.grow()?;
            let cells = self
                .old_cells_by_name
                .entry(upvalue.name.clone())
                .or_default();
            cells.grow()?;
            cells.entry(upvalue.cell).or_insert_with(|| OldCell {
                function: old.clone(),
                index,
                value: self.facts.cell_value(upvalue.cell),
                cell: upvalue.cell,
            });
        }
        Ok(())
    }

    pub(super) fn join_cells(&mut self, staged: &Staged) -> Result<()> {
        // Cells no paired function carries join the old module's only local of their name;
        // pairing their values may pair more functions, so repeat until nothing changes.
        loop {
            if self.repeated_locals.is_none()
                && self
                    .new_cells
                    .keys()
                    .any(|cell| !self.cell_joins.contains_key(cell))
            {
                self.repeated_locals = Some(
                    staged
                        .texts
                        .iter()
                        .flatten()
                        .flat_map(|text| {
                            super::declarations::repeated_top_level_locals(&text.bytes)
                        })
                        .collect(),
                );
            }
            let repeated = self.repeated_locals.as_ref();
            let unpaired = fallible::sorted_by_key(
                self.new_cells
                    .iter()
                    .filter(|(cell, new)| {
                        !self.cell_joins.contains_key(cell)
                            && &*new.name != "_ENV"
                            && !repeated.is_some_and(|names| names.contains(&*new.name))
                    })
                    .map(|(cell, new)| (*cell, new.name.clone(), new.value.clone())),
                |(cell, ..)| self.new_cells[cell].path.to_string(),
            )?;
            let mut joined_any = false;
            for (_, (cell, name, value)) in unpaired {
                let path = self.new_cells[&cell].path.clone();
                let Some(candidates) = self.old_cells_by_name.get(&name) else {
                    continue;
                };
                if candidates.len() != 1 {
                    continue;
                }
                let old = candidates.values().next().cloned().expect("one candidate");
                self.cell_joins.grow()?;
                self.cell_joins.insert(cell, old.clone());
                self.pair_values(&old.value, &value, &path)?;
                joined_any = true;
            }
            self.drain()?;
            if !joined_any {
                break;
            }
        }

        let new_cells = std::mem::take(&mut self.new_cells);
        let cells = fallible::sorted_by_key(new_cells, |(_, cell)| cell.path.to_string())?;
        let mut writes = Vec::new();
        for (_, (cell, new)) in cells {
            // What the file set is the base of the next reload, under the cell that stays live.
            let live_cell = self.cell_joins.get(&cell).map_or(cell, |old| old.cell);
            if crate::baseline::is_local_data(&new.value) {
                self.new_local_bases
                    .raw_set(crate::baseline::cell_key(live_cell), &new.value)?;
            }
            match self.cell_joins.get(&cell).cloned() {
                Some(old) => {
                    // The value first: where cells can only be copied, the copy must be the
                    // final value.
                    if let Some(value) = self.joined_value(&old, &new)? {
                        writes.try_push(Write::Upvalue {
                            function: old.function.clone(),
                            index: old.index,
                            value,
                        })?;
                    }
                    writes.try_push(Write::Join {
                        target: old.function.clone(),
                        target_index: old.index,
                        holders: UpvalueList::new(self.cell_holders.table().clone(), new.holders),
                    })?;
                    if &*new.name != "_ENV" {
                        self.report.locals_joined += 1;
                        if !crate::raw::CELLS_CAN_BE_JOINED {
                            self.report.locals_copied.try_push(new.path.to_string())?;
                        }
                    }
                }
                None => {
                    let resolved = self.resolve(&new.value)?;
                    if resolved != new.value {
                        let holders =
                            UpvalueList::new(self.cell_holders.table().clone(), new.holders);
                        if let Some((function, index)) = holders.first()? {
                            writes.try_push(Write::Upvalue {
                                function,
                                index,
                                value: new.value.clone(),
                            })?;
                        }
                    }
                    if &*new.name != "_ENV" {
                        self.report.locals_new.try_push(new.path.to_string())?;
                    }
                }
            }
        }
        self.writes.grow_by(writes.len())?;
        self.writes.extend(writes);
        Ok(())
    }

    /// The value a joined cell must hold after the reload, if not its live one.
    fn joined_value(&mut self, old: &OldCell, new_cell: &NewCell) -> Result<Option<Value>> {
        let (live, new, path) = (&old.value, &new_cell.value, &new_cell.path);
        let resolved = self.resolve(new)?;
        // `local world` declared without a value: nil in the new file never erases live data.
        if &resolved == live || new == &Value::Nil {
            return Ok(None);
        }
        let new_wins = match (live, new) {
            (Value::Function(live_fn), Value::Function(new_fn)) => {
                let paired = self.function_pairs.contains(live_fn.to_pointer() as usize);
                if paired || self.owned(live_fn)? || !self.is_new_function(new_fn) {
                    true
                } else if self.same_foreign_prototype(live_fn, new_fn)? {
                    false
                } else {
                    self.file_still_sets(live, None)?
                }
            }
            (Value::Table(live_table), Value::Table(new_table)) => {
                self.is_foreign(live_table)
                    && self.is_new_table(new_table)?
                    && self.file_still_sets(live, None)?
            }
            _ if std::mem::discriminant(live) != std::mem::discriminant(new)
                && !both_numbers(live, new) =>
            {
                self.report.locals_type_changed.try_push(path.to_string())?;
                true
            }
            _ => self.merge_local(old, new_cell)?,
        };
        Ok(new_wins.then(|| new.clone()))
    }

    /// Same-type data in a joined local: the module's policy decides, against the value the
    /// file set at the last load (`locals` of its baseline).
    fn merge_local(&mut self, old: &OldCell, new: &NewCell) -> Result<bool> {
        let key = crate::baseline::cell_key(old.cell);
        let mut base = None;
        for bases in &self.local_bases {
            if let Some(value) = bases.raw_get::<Option<Value>>(key)? {
                base = Some(value);
                break;
            }
        }
        // The initializer was edited since the last load (a userdata is new at every load:
        // edited for `overwrite` and `merge3`, not worth a line in the report).
        let edited = base.as_ref().is_some_and(|base| base != &new.value);
        let path = new.path.to_string();
        Ok(match new.policy {
            DataPolicy::Keep => {
                if edited && !matches!(new.value, Value::UserData(_) | Value::LightUserData(_)) {
                    self.report.locals_kept_edited.try_push(path)?;
                }
                false
            }
            DataPolicy::Overwrite => edited,
            DataPolicy::Merge3 => match base {
                Some(base) if base == old.value => edited,
                Some(_) if edited => {
                    self.report.conflicts.try_push(Conflict {
                        path,
                        live: super::fields::display(&old.value),
                        file: super::fields::display(&new.value),
                    })?;
                    false
                }
                _ => false,
            },
        })
    }
}
