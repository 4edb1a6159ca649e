//! Paths: how Lua code reaches a value from the module (`combat.Monster.attack`,
//! `combat.hit@count`, `combat.Monster#mt`), built once per value the planner meets.
//!
//! Data can be a million levels deep, so a path shares its text with its parent's and stops
//! growing past [`SHOWN`] steps: deeper paths show their first steps, `…`, and their last step.

use std::fmt;
use std::rc::Rc;

use mlua::Value;

/// Steps written out in full before a path is shortened.
const SHOWN: u32 = 24;

#[derive(Clone, Debug)]
pub(super) struct Path {
    /// The first steps (all of them, for a path of at most [`SHOWN`] steps), shared with every
    /// deeper path below the cut.
    text: Rc<str>,
    depth: u32,
    /// The last step, for a path deeper than [`SHOWN`].
    last: Option<Rc<str>>,
}

impl Path {
    /// The path of a module or a global: its name.
    pub(super) fn root(name: &str) -> Path {
        Path {
            text: name.into(),
            depth: 0,
            last: None,
        }
    }

    /// This path followed by `step` (`.name`, `[1]`, `#mt`, `@local`).
    pub(super) fn step(&self, step: &str) -> Path {
        match self.depth {
            depth if depth < SHOWN => Path {
                text: format!("{}{step}", self.text).into(),
                depth: depth + 1,
                last: None,
            },
            depth if depth == SHOWN => Path {
                text: format!("{}…", self.text).into(),
                depth: depth + 1,
                last: Some(step.into()),
            },
            depth => Path {
                text: self.text.clone(),
                depth: depth + 1,
                last: Some(step.into()),
            },
        }
    }

    /// This path followed by the table field `key`: `.key` for a name, `[key]` otherwise.
    pub(super) fn field(&self, key: &Value) -> Path {
        let dot = if self.text.is_empty() { "" } else { "." };
        let step = match key {
            Value::String(s) => {
                let s = s.to_string_lossy();
                let is_name = !s.is_empty()
                    && !s.starts_with(|c: char| c.is_ascii_digit())
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if is_name {
                    format!("{dot}{s}")
                } else {
                    format!("[{s:?}]")
                }
            }
            Value::Integer(i) => format!("[{i}]"),
            Value::Number(n) => format!("[{n}]"),
            Value::Boolean(b) => format!("[{b}]"),
            other => format!("[{}]", other.type_name()),
        };
        self.step(&step)
    }

    /// The path of the metatable of the value at this path.
    pub(super) fn metatable(&self) -> Path {
        self.step("#mt")
    }

    /// The path of upvalue `name` of the function at this path.
    pub(super) fn upvalue(&self, name: &str) -> Path {
        self.step(&format!("@{name}"))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if let Some(last) = &self.last {
            f.write_str(last)?;
        }
        Ok(())
    }
}
