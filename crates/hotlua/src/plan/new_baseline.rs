//! Each module's new baseline: what its file just produced, kept where the program cannot
//! change it (`merge3` compares the next version with it), once the cells are joined and
//! before [`finish`](super::finish) points the writes at live objects.

use mlua::{Table, Value};

use super::Planner;
use crate::load::StagedModule;
use crate::{baseline, Result};

impl Planner<'_> {
    /// The module's new baseline: what its file just produced, where the program cannot
    /// change it. A new table merged into a live one is never live and is its own baseline
    /// (the tables that go live from its fields are replaced with copies when the baseline
    /// is recorded: [`baseline::replace`]); a new table that goes live is copied.
    /// `sifted` holds every table `module`'s top level wrote into `_G`
    /// ([`globals::sift`](super::globals::sift)).
    pub(super) fn baseline_of(&self, module: &StagedModule, sifted: &Table) -> Result<Value> {
        let baseline = self.lua.create_table()?;
        baseline.raw_set("module", self.baseline_value(&module.new)?)?;
        let (globals, _): (Table, usize) = crate::staging::copy_table(self.lua, &module.globals)?;
        for pair in sifted.pairs::<Value, Value>() {
            if let (key, value @ Value::Table(_)) = pair? {
                globals.raw_set(key, self.baseline_value(&value)?)?;
            }
        }
        baseline.raw_set("globals", globals)?;
        baseline.raw_set("locals", &self.new_local_bases)?;
        Ok(Value::Table(baseline))
    }

    /// `value` if it is a new table merged into a live one, else a copy of it.
    fn baseline_value(&self, value: &Value) -> Result<Value> {
        Ok(match value {
            Value::Table(table) if self.table_pairs.contains(table)? => value.clone(),
            _ => baseline::snapshot(self.lua, value, &self.foreign_set)?,
        })
    }
}
