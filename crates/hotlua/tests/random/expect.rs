//! What a successful reload must leave, under the Keep policy (docs/semantics.md "What a reload does"):
//! the module as the snapshot must show it, and what the program's references must give.

use std::collections::{BTreeMap, BTreeSet};

use super::lua::expr;
use super::model::{path_name, Func, Module, Node, Path, Program, Scalar, Step, Table};

pub struct Outcome<'a> {
    /// Version 1 with the program's changes.
    live: &'a Module,
    new: &'a Module,
    /// Locals of version 2 joined to the live local of the same name.
    joined: BTreeSet<String>,
}

impl<'a> Outcome<'a> {
    pub fn new(live: &'a Module, new: &'a Module) -> Outcome<'a> {
        let mut outcome = Outcome {
            live,
            new,
            joined: BTreeSet::new(),
        };
        let new_functions = new.functions();
        let live_functions = live.functions();
        let captured_in_new: BTreeSet<&String> =
            new_functions.iter().flat_map(|(_, f)| f.locals()).collect();
        for (path, func) in &new_functions {
            // Through the function paired at the same path, by upvalue name.
            if let (true, Some(Node::Func(old))) = (outcome.paired(path), live.root.node_at(path)) {
                let old_names: BTreeSet<&String> = old.locals().collect();
                for name in func.locals().filter(|n| old_names.contains(n)) {
                    outcome.joined.insert(name.clone());
                }
            }
        }
        // A cell no paired function carries joins the only old local of its name among the
        // old functions the pairing met (paired, or deleted from a merged table).
        for (path, func) in &live_functions {
            if outcome.paired(path) || outcome.deleted(path) {
                for name in func.locals().filter(|n| captured_in_new.contains(n)) {
                    outcome.joined.insert(name.clone());
                }
            }
        }
        outcome
    }

    /// Both versions have a function at `path`, under tables paired by path.
    pub fn paired(&self, path: &[Step]) -> bool {
        matches!(self.live.root.node_at(path), Some(Node::Func(_)))
            && matches!(self.new.root.node_at(path), Some(Node::Func(_)))
    }

    /// The live function at `path` sits in a table both versions have, and version 2 lacks it.
    fn deleted(&self, path: &[Step]) -> bool {
        let (last, parent) = path.split_last().expect("a field");
        self.new
            .root
            .table_at(parent)
            .is_some_and(|t| t.get(last).is_none())
    }

    /// The live table at `path` is still the module's table there.
    pub fn table_kept(&self, path: &[Step]) -> bool {
        for end in 0..=path.len() {
            if self.new.root.table_at(&path[..end]).is_some() {
                continue;
            }
            let (last, parent) = path[..end].split_last().expect("the root is a table");
            let parent = self
                .new
                .root
                .table_at(parent)
                .expect("checked one step before");
            return match last {
                Step::Key(key) => !parent.fields.contains_key(key),
                Step::Meta => parent.meta.is_none(),
            };
        }
        true
    }

    /// The tag a reference to the live function at `path`, taken before the reload, returns.
    pub fn tag_of_reference(&self, path: &[Step]) -> String {
        match (
            self.paired(path),
            self.new.root.node_at(path),
            self.live.root.node_at(path),
        ) {
            (true, Some(Node::Func(func)), _) | (false, _, Some(Node::Func(func))) => {
                func.tag.clone()
            }
            _ => unreachable!("references are taken to functions"),
        }
    }

    fn local_value(&self, func: &Func, name: &str) -> Scalar {
        let live = self.live.cells();
        let new = self.new.cells();
        let is_new = func.tag.starts_with("v2:");
        match (live.get(name), new.get(name)) {
            (Some(live), Some(new)) if self.joined.contains(name) => Scalar::merged(live, new),
            (_, Some(new)) if is_new => new.clone(),
            (Some(live), _) => live.clone(),
            _ => unreachable!("a function's local is in its version"),
        }
    }

    /// The snapshot (`lua::MODULE_SNAPSHOT`) the module must give after the reload.
    pub fn module_snapshot(&self) -> String {
        let merged = merge_tables(&self.live.root, &self.new.root);
        let mut lines = vec!["M = table".to_string()];
        self.table_lines(&merged, &mut vec![], &mut lines);
        lines.join("\n")
    }

    fn table_lines(&self, table: &Table, path: &mut Path, lines: &mut Vec<String>) {
        for (key, node) in &table.fields {
            path.push(Step::Key(key.clone()));
            let name = path_name("M", path);
            match node {
                Node::Data(value) => lines.push(format!("{name} = {}", scalar_line(value))),
                Node::Table(child) => {
                    lines.push(format!("{name} = table"));
                    self.table_lines(child, path, lines);
                }
                Node::Func(func) => {
                    lines.push(format!("{name} = fn {}", func.tag));
                    let mut upvalues: BTreeMap<String, String> = func
                        .locals()
                        .map(|local| (local.clone(), scalar_line(&self.local_value(func, local))))
                        .collect();
                    if func.factory {
                        upvalues.insert("M".into(), "ref M".into());
                        // Lua 5.1 and LuaJIT functions have an environment, not an `_ENV` upvalue.
                        if cfg!(not(any(feature = "lua51", feature = "luajit"))) {
                            upvalues.insert("_ENV".into(), "_G".into());
                        }
                    }
                    for (upvalue, value) in upvalues {
                        lines.push(format!("{name}.^{upvalue} = {value}"));
                    }
                }
                Node::Up(levels) => {
                    let ancestor = &path[..path.len() - 1 - levels];
                    lines.push(format!("{name} = ref {}", path_name("M", ancestor)));
                }
            }
            path.pop();
        }
        if let Some(meta) = &table.meta {
            path.push(Step::Meta);
            lines.push(format!("{} = table", path_name("M", path)));
            self.table_lines(meta, path, lines);
            path.pop();
        }
    }

    /// A chunk returning a list of mismatches between what the program's references give and
    /// what they must.
    pub fn program_checks(&self, program: &Program) -> String {
        let mut checks = vec!["local bad = {}".to_string()];
        let mut check = |what: String, expected: String| {
            checks.push(format!(
                "do local got = {what}\n  if got ~= {expected} then \
                 bad[#bad + 1] = {what:?} .. ': ' .. tostring(got) .. ' ~= ' .. tostring({expected}) end end"
            ));
        };
        for (i, path) in program.functions.iter().enumerate() {
            check(
                format!("P.fns[{}]()", i + 1),
                format!("{:?}", self.tag_of_reference(path)),
            );
        }
        for (i, path) in program.tables.iter().enumerate() {
            if self.table_kept(path) {
                check(
                    format!("rawequal(P.tabs[{}], {})", i + 1, expr("M", path)),
                    "true".into(),
                );
            }
        }
        for (i, path) in program.factories.iter().enumerate() {
            let class = &path[..path.len() - 1];
            if self.table_kept(class) {
                let instance = format!("P.insts[{}]", i + 1);
                check(
                    format!("rawequal(getmetatable({instance}), {})", expr("M", class)),
                    "true".into(),
                );
            }
        }
        if let Some(path) = &program.held {
            let tag = format!("{:?}", self.tag_of_reference(path));
            check("select(2, coroutine.resume(P.co))".into(), tag.clone());
            check("P.call()".into(), tag);
        }
        check("rawequal(package.loaded.m, M)".into(), "true".into());
        checks.push("return table.concat(bad, '\\n')".into());
        checks.join("\n")
    }
}

fn scalar_line(value: &Scalar) -> String {
    match value {
        Scalar::Int(n) => format!("int {n}"),
        Scalar::Str(s) => format!("str {s}"),
        Scalar::Bool(b) => format!("boolean {b}"),
    }
}

/// Keep policy: fields in both merge (same-type data keeps its live value, another kind takes
/// the new value, functions take the new version); new fields are added; live-only fields and
/// a metatable the new file lacks stay.
fn merge_tables(live: &Table, new: &Table) -> Table {
    let mut merged = live.clone();
    for (key, new_node) in &new.fields {
        let node = match (live.fields.get(key), new_node) {
            (Some(Node::Table(l)), Node::Table(n)) => Node::Table(merge_tables(l, n)),
            (Some(Node::Data(l)), Node::Data(n)) => Node::Data(Scalar::merged(l, n)),
            _ => new_node.clone(),
        };
        merged.fields.insert(key.clone(), node);
    }
    merged.meta = match (&live.meta, &new.meta) {
        (Some(l), Some(n)) => Some(Box::new(merge_tables(l, n))),
        (l, n) => l.clone().or_else(|| n.clone()),
    };
    merged
}
