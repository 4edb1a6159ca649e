//! Phase 2, functions: an old function of the batch and its new version, the upvalue cells
//! they pair, and the values those cells hold (tables to merge, more functions to pair).

use mlua::{Function, Value};

use super::facts::same_name;
use super::{OldCell, Path, Planner, Task};
use crate::fallible::Grow;
use crate::Result;

impl Planner<'_> {
    pub(super) fn pair_values(&mut self, live: &Value, new: &Value, path: &Path) -> Result<()> {
        match (live, new) {
            (Value::Table(live), Value::Table(new))
                if live != new && self.is_new_table(new)? && !self.is_foreign(live) =>
            {
                self.pair_tables(live, new, path, None)?;
            }
            (Value::Function(old), Value::Function(new)) if old != new => {
                if self.owned(old)? && self.is_new_function(new) {
                    self.pair_functions(old, new, path)?;
                } else if self.same_foreign_prototype(old, new)? {
                    self.pair_foreign_closures(old, new, path)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Pairs an old function of the batch with its new version, and each upvalue cell of the
    /// new one with the old one's cell of the same name.
    pub(super) fn pair_functions(
        &mut self,
        old: &Function,
        new: &Function,
        path: &Path,
    ) -> Result<()> {
        let identity = old.to_pointer() as usize;
        if self.function_pairs.contains(identity) {
            return Ok(());
        }
        let at = self.replaced.push(old, new)?;
        self.note_pair(identity, new.to_pointer() as usize, at, path.clone())?;
        self.remember_old_cells(old)?;
        let old_facts = self.facts(old)?.detach()?;
        let new_facts = self.facts(new)?.detach()?;
        // Functions of one module share cells: the values of a pair of cells are paired once.
        let mut values_to_pair = false;
        for upvalue in &new_facts.upvalues {
            let Some((old_index, old_upvalue)) = old_facts
                .numbered_upvalues()
                .find(|(_, u)| same_name(&u.name, &upvalue.name))
            else {
                continue;
            };
            self.cell_joins.grow()?;
            self.cell_joins
                .entry(upvalue.cell)
                .or_insert_with(|| OldCell {
                    function: old.clone(),
                    index: old_index,
                    value: self.facts.cell_value(old_upvalue.cell),
                    cell: old_upvalue.cell,
                });
            if self.facts.cell_holds_object(upvalue.cell) {
                self.cell_values_paired.grow()?;
                values_to_pair |= self
                    .cell_values_paired
                    .insert((old_upvalue.cell, upvalue.cell));
            }
        }
        if values_to_pair {
            self.tasks.push(Task::PairUpvalues {
                old: old.clone(),
                new: new.clone(),
                path: path.clone(),
            })?;
        }
        Ok(())
    }

    /// Records pair `at` of [`Replaced`](super::Replaced), of the old and new functions of
    /// these identities, paired at `path`.
    pub(super) fn note_pair(
        &mut self,
        old_id: usize,
        new_id: usize,
        at: usize,
        path: Path,
    ) -> Result<()> {
        self.function_pairs.insert(old_id, (at, new_id, path))?;
        // A new function paired with two old ones (`M.b = M.a` in the new file) has no single
        // old counterpart: the live program then gets the new function itself.
        self.new_to_old.grow()?;
        self.new_to_old
            .entry(new_id)
            .and_modify(|entry| *entry = None)
            .or_insert(Some(at));
        Ok(())
    }

    /// Two closures of one function of other code (say a class library's constructor, made
    /// once for the live class and once for the new version's): the live closure stays, and
    /// the tables the new one captured pair with those the live one captured, by upvalue name.
    pub(super) fn pair_foreign_closures(
        &mut self,
        live: &Function,
        new: &Function,
        path: &Path,
    ) -> Result<()> {
        self.foreign_closure_pairs.grow()?;
        if self.foreign_closure_pairs.insert(new.to_pointer() as usize) {
            self.tasks.push(Task::PairUpvalues {
                old: live.clone(),
                new: new.clone(),
                path: path.clone(),
            })?;
        }
        Ok(())
    }

    pub(super) fn pair_upvalues(
        &mut self,
        old: &Function,
        new: &Function,
        path: &Path,
    ) -> Result<()> {
        let old_facts = self.facts(old)?.detach()?;
        let new_facts = self.facts(new)?.detach()?;
        for upvalue in &new_facts.upvalues {
            if let Some(old_upvalue) = old_facts
                .upvalues
                .iter()
                .find(|u| same_name(&u.name, &upvalue.name))
            {
                self.pair_values(
                    &self.facts.cell_value(old_upvalue.cell),
                    &self.facts.cell_value(upvalue.cell),
                    &path.upvalue(&upvalue.name),
                )?;
            }
        }
        Ok(())
    }
}
