//! Phase 4: the plan itself — every planned write pointed at the live objects its values
//! paired with, and the report's lists.

use mlua::{Table, Value};
use rustc_hash::FxHashSet;

use super::{Plan, Planner};
use crate::apply::Write;
use crate::fallible::{self, Grow, TryPush};
use crate::Result;

impl Planner<'_> {
    /// The plan: every write pointed at live objects, and the report.
    pub(super) fn finish(mut self) -> Result<Plan> {
        // Values were planned as the new version holds them; now that every pairing is known,
        // point them at their live counterparts. Assignments run library code (`__newindex`)
        // that expects the live objects to be complete: they come after every raw write.
        let planned = std::mem::take(&mut self.writes);
        let (mut writes, mut assignments) = (Vec::new(), Vec::new());
        writes.grow_by(planned.len())?;
        for write in planned {
            match self.resolve_write(write)? {
                assign @ Write::Assign { .. } => assignments.try_push(assign)?,
                write => writes.push(write),
            }
        }
        if self.function_writes.len() > 0 {
            if self.keep_identity {
                // The live program keeps the old functions (which will run the new code).
                self.replaced
                    .point_at_old(self.lua, &self.function_writes, &self.new_to_old)?;
            }
            let list = self.function_writes.table().clone();
            list.raw_set("n", self.function_writes.len())?;
            writes.try_push(Write::Fields { list })?;
        }
        writes.grow_by(assignments.len())?;
        writes.extend(assignments);
        #[cfg(hotlua_inplace)]
        self.record_pair_addresses()?;

        let replaced = sorted_texts(self.function_pairs.values().map(|(_, _, path)| path.text()))?;
        let mut paired_new = FxHashSet::default();
        paired_new.grow_by(self.function_pairs.len())?;
        paired_new.extend(self.function_pairs.values().map(|&(_, new, _)| new));
        let added = sorted_texts(
            self.new_functions
                .iter()
                .filter(|(identity, _)| !paired_new.contains(identity))
                .map(|(_, path)| path.text()),
        )?;
        self.report.functions_replaced = replaced;
        let mut known = Vec::new();
        known.grow_by(self.new_functions.len() + self.old_functions.len())?;
        known.extend(self.new_functions.iter().map(|(identity, _)| identity));
        known.extend(self.old_functions.iter().copied());
        self.report.functions_added = added;
        self.report.functions_kept_deleted.sort_unstable();
        self.report.locals_new.sort_unstable();
        Ok(Plan {
            report: self.report,
            writes,
            baselines: Vec::new(),
            baseline_copies: crate::baseline::FieldsToCopy {
                fields: self.unmerged,
                foreign: self.foreign_set,
            },
            replaced: self.replaced,
            known,
            sources: self.facts.into_sources(),
            kept_deleted: self.kept_deleted,
        })
    }

    /// Hands engine `inplace` the closures and prototypes of the pairs, which the facts read
    /// (a pair whose facts lack a prototype is read again by the engine).
    #[cfg(hotlua_inplace)]
    fn record_pair_addresses(&mut self) -> Result<()> {
        use super::{facts::Walk, replaced::PairAddresses};
        let mut addresses = fallible::filled(None, self.replaced.len())?;
        for (old_id, &(at, new_id, _)) in self.function_pairs.iter() {
            let (Some(old), Some(new)) = (
                self.facts.known_in_order(old_id, Walk::Live),
                self.facts.known_in_order(new_id, Walk::New),
            ) else {
                continue;
            };
            if let (Some(old_proto), Some(new_proto)) = (old.proto_address, new.proto_address) {
                addresses[at] = Some(PairAddresses {
                    old_closure: old_id,
                    old_proto: old_proto.get(),
                    new_closure: new_id,
                    new_proto: new_proto.get(),
                    from_sources: old.from_sources && new.from_sources,
                });
            }
        }
        self.replaced.set_addresses(addresses);
        Ok(())
    }

    fn resolve_write(&self, write: Write) -> Result<Write> {
        let live_table =
            |table: Table| -> Result<Table> { Ok(self.table_pairs.get(&table)?.unwrap_or(table)) };
        Ok(match write {
            Write::Field { table, key, value } => Write::Field {
                table,
                key: self.resolve_owned(key)?,
                value: self.resolve_owned(value)?,
            },
            Write::Assign { table, key, value } => Write::Assign {
                table,
                key: self.resolve_owned(key)?,
                value: self.resolve_owned(value)?,
            },
            Write::Upvalue {
                function,
                index,
                value,
            } => Write::Upvalue {
                function,
                index,
                value: self.resolve_owned(value)?,
            },
            Write::Metatable { table, metatable } => Write::Metatable {
                table,
                metatable: metatable.map(live_table).transpose()?,
            },
            #[cfg(any(feature = "lua51", feature = "luajit"))]
            Write::Environment {
                functions,
                environment,
            } => Write::Environment {
                functions,
                environment: live_table(environment)?,
            },
            Write::Fields { list } => {
                self.data.resolve_writes(&list)?;
                Write::Fields { list }
            }
            other @ (Write::Join { .. } | Write::Restore { .. }) => other,
        })
    }

    /// [`Planner::resolve`] for a value the caller gives up: data is returned as it is.
    fn resolve_owned(&self, value: Value) -> Result<Value> {
        match value {
            Value::Table(_) | Value::Function(_) => self.resolve(&value),
            data => Ok(data),
        }
    }
}

/// `texts` in byte order (as `sort_unstable` puts them), each compared first by its first
/// eight bytes read as one number: the ten thousand paths of a module's functions mostly
/// differ there, and comparing two numbers is a fraction of comparing two strings.
fn sorted_texts(texts: impl Iterator<Item = String>) -> Result<Vec<String>> {
    // Zeros after a shorter text's end: they sort it first, as byte order does, or tie (with
    // a text that has zeros there), which the full comparison then settles.
    let first_bytes = |text: &str| {
        let mut bytes = [0; 8];
        let len = text.len().min(8);
        bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
        u64::from_be_bytes(bytes)
    };
    let mut texts = fallible::collect(texts)?;
    // Sorted as (key, place) pairs of 16 bytes, the texts read only where two keys tie.
    let mut keyed = fallible::collect(
        texts
            .iter()
            .enumerate()
            .map(|(at, text)| (first_bytes(text), at)),
    )?;
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| texts[a.1].cmp(&texts[b.1])));
    Ok(fallible::collect(
        keyed
            .into_iter()
            .map(|(_, at)| std::mem::take(&mut texts[at])),
    )?)
}

#[cfg(test)]
mod tests {
    use super::sorted_texts;

    #[test]
    fn texts_are_sorted_in_byte_order() {
        let texts = [
            "m.f10",
            "m.f1",
            "m.f2",
            "m.f1\0",
            "",
            "m.f",
            "m.state.helpers.a",
            "m.state.helpers",
            "m.stat",
            "M",
            "m.f100",
            "é",
            "m.state.helpers.b",
            "m.f1\x01",
        ];
        let mut expected: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        expected.sort_unstable();
        let sorted = sorted_texts(texts.iter().map(|t| t.to_string())).unwrap();
        assert_eq!(sorted, expected);
    }
}
