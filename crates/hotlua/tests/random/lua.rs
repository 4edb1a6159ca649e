//! The Lua text of a case: the module's two files and the program that uses it.

use std::fmt::Write;

use super::model::{Change, Failure, Func, Module, Node, Path, Program, Scalar, Step};

/// A Lua function serialising everything reachable from some roots into one canonical string:
/// a line per value, by path; tables once (later meetings are `ref <first path>`); functions
/// by the tag they return when called with no arguments, then their upvalues by name.
pub const SNAPSHOT: &str = include_str!("snapshot.lua");

pub fn literal(value: &Scalar) -> String {
    match value {
        Scalar::Int(n) => n.to_string(),
        Scalar::Str(s) => format!("{s:?}"),
        Scalar::Bool(b) => b.to_string(),
    }
}

/// A Lua expression for the value at `path` in the module held by `root`.
pub fn expr(root: &str, path: &[Step]) -> String {
    let mut expr = root.to_string();
    for step in path {
        expr = match step {
            Step::Key(key) => format!("{expr}[{key:?}]"),
            Step::Meta => format!("getmetatable({expr})"),
        };
    }
    expr
}

/// The module's file.
pub fn source(module: &Module) -> String {
    let mut lines = vec![];
    for (name, value) in &module.locals {
        lines.push(format!("local {name} = {}", literal(value)));
    }
    lines.push("local M = {}".into());
    fields(&module.root, &mut vec![], &mut lines);
    match module.failure {
        Failure::None => lines.push("return M".into()),
        Failure::Syntax => {
            lines.insert(lines.len() / 2, "local = 'injected syntax error'".into());
            lines.push("return M".into());
        }
        Failure::ErrorAtEnd => {
            lines.push("INJECTED = true".into());
            lines.push("error('injected failure')".into());
            lines.push("return M".into());
        }
        Failure::ReturnsNumber => lines.push("return 42".into()),
        Failure::ReturnsFunction => lines.push("return function() return M end".into()),
    }
    lines.join("\n") + "\n"
}

fn fields(table: &super::model::Table, path: &mut Path, lines: &mut Vec<String>) {
    for (key, node) in &table.fields {
        path.push(Step::Key(key.clone()));
        let target = expr("M", path);
        match node {
            Node::Data(value) => lines.push(format!("{target} = {}", literal(value))),
            Node::Table(child) => {
                lines.push(format!("{target} = {{}}"));
                fields(child, path, lines);
            }
            Node::Func(func) => {
                let body = function(func, &path[..path.len() - 1]);
                match &func.own {
                    Some((name, value)) => lines.push(format!(
                        "do\nlocal {name} = {}\n{target} = {body}\nend",
                        literal(value)
                    )),
                    None => lines.push(format!("{target} = {body}")),
                }
            }
            Node::Up(levels) => {
                let ancestor = &path[..path.len() - 1 - levels];
                lines.push(format!("{target} = {}", expr("M", ancestor)));
            }
        }
        path.pop();
    }
    if let Some(meta) = &table.meta {
        lines.push(format!("setmetatable({}, {{}})", expr("M", path)));
        path.push(Step::Meta);
        fields(meta, path, lines);
        path.pop();
    }
}

/// `function(op, v)`: no argument gives the tag; a local's name reads it (and sets it to `v`);
/// `"new"` makes an instance of the table holding a factory.
fn function(func: &Func, parent: &[Step]) -> String {
    let mut body = format!(
        "function(op, v)\n  if op == nil then return {:?} end\n",
        func.tag
    );
    for name in func.locals() {
        writeln!(
            body,
            "  if op == {name:?} then if v ~= nil then {name} = v end return {name} end"
        )
        .unwrap();
    }
    if func.factory {
        writeln!(
            body,
            "  if op == 'new' then return setmetatable({{}}, {}) end",
            expr("M", parent)
        )
        .unwrap();
    }
    body + "end"
}

/// The program: requires the module into global `M`, changes it, and keeps references to it
/// in global `P` (functions, tables, instances, a suspended coroutine, a closure).
pub fn program(program: &Program) -> String {
    let mut lines = vec![
        "M = require 'm'".to_string(),
        "P = { fns = {}, tabs = {}, insts = {} }".into(),
    ];
    for change in &program.changes {
        lines.push(match change {
            Change::SetField(path, value) => format!("{} = {}", expr("M", path), literal(value)),
            Change::SetLocal(path, name, value) => {
                format!("{}({name:?}, {})", expr("M", path), literal(value))
            }
        });
    }
    for (i, path) in program.functions.iter().enumerate() {
        lines.push(format!("P.fns[{}] = {}", i + 1, expr("M", path)));
    }
    for (i, path) in program.tables.iter().enumerate() {
        lines.push(format!("P.tabs[{}] = {}", i + 1, expr("M", path)));
    }
    for (i, path) in program.factories.iter().enumerate() {
        lines.push(format!("P.insts[{}] = {}('new')", i + 1, expr("M", path)));
    }
    if let Some(path) = &program.held {
        let held = expr("M", path);
        lines.push(
            "P.co = coroutine.create(function(fn)\n  local held = fn\n  \
             while true do coroutine.yield(held()) end\nend)"
                .into(),
        );
        lines.push(format!("assert(coroutine.resume(P.co, {held}))"));
        lines.push(format!(
            "do\n  local held = {held}\n  P.call = function() return held() end\nend"
        ));
    }
    lines.join("\n")
}

/// A chunk returning the snapshot of the module and everything the program holds, with
/// `package.loaded.m` and the global a failed top level would have written.
pub const WHOLE_SNAPSHOT: &str = "return snapshot({ {'M', M}, {'P', P}, \
     {'loaded', package.loaded.m}, {'INJECTED', rawget(_G, 'INJECTED')} })";

/// A chunk returning the snapshot of the module alone.
pub const MODULE_SNAPSHOT: &str = "return snapshot({ {'M', M} })";
