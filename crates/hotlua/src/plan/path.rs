//! Paths: how Lua code reaches a value from the module (`combat.Monster.attack`,
//! `combat.hit@count`, `combat.Monster#mt`), made for every value the planner meets and
//! written out only for the few the report and its warnings name.
//!
//! A path is its last step and a link to its parent path, so making one costs one small
//! allocation and no formatting, however deep the data (it can be a million levels deep).
//! Written out, a path of more than [`SHOWN`] steps shows its first steps, `…`, and its last.

use std::ffi::c_int;
use std::fmt;
use std::rc::Rc;

use mlua::Value;
use smallvec::SmallVec;

/// Steps written out in full before a path is shortened.
const SHOWN: u32 = 24;

/// Bytes of a string key held in the path's step without an allocation of their own.
const INLINE_KEY: usize = 24;

#[derive(Clone)]
pub(super) struct Path(Rc<Node>);

struct Node {
    parent: Option<Path>,
    step: Step,
    /// Steps from the root: 0 for the root itself.
    depth: u32,
    /// For a path deeper than [`SHOWN`]: its ancestor of that depth, whose steps are the ones
    /// written out, so that writing out a deep path takes [`SHOWN`] steps, not its depth.
    shown: Option<Path>,
}

#[derive(PartialEq)]
enum Step {
    /// A module's or a global's name (empty for `_G` itself).
    Root(Rc<str>),
    /// A field with a string key, as bytes: `.name`, or `["key"]` when it is not a name. Held
    /// in the step itself up to [`INLINE_KEY`] bytes: a module's ten thousand function paths
    /// are then one allocation each, not two.
    Text(SmallVec<[u8; INLINE_KEY]>),
    Integer(i64),
    Number(f64),
    Boolean(bool),
    /// A key that is neither: its type.
    Other(&'static str),
    Metatable,
    /// An upvalue of the function at the parent path.
    Upvalue(Rc<str>),
}

impl Path {
    /// The path of a module or a global: its name.
    pub(super) fn root(name: &str) -> Path {
        Path(Rc::new(Node {
            parent: None,
            step: Step::Root(name.into()),
            depth: 0,
            shown: None,
        }))
    }

    fn step(&self, step: Step) -> Path {
        let shown = match self.0.depth {
            SHOWN => Some(self.clone()),
            _ => self.0.shown.clone(),
        };
        Path(Rc::new(Node {
            parent: Some(self.clone()),
            step,
            depth: self.0.depth + 1,
            shown,
        }))
    }

    /// This path followed by the table field `key`: `.key` for a name, `[key]` otherwise.
    pub(super) fn field(&self, key: &Value) -> Path {
        self.step(match key {
            Value::String(s) => Step::Text(SmallVec::from_slice(&s.as_bytes())),
            Value::Integer(i) => Step::Integer(*i),
            Value::Number(n) => Step::Number(*n),
            Value::Boolean(b) => Step::Boolean(*b),
            other => Step::Other(other.type_name()),
        })
    }

    /// [`Path::field`] for the string key at stack index `key`, read without an mlua handle.
    ///
    /// # Safety
    /// `key` is a valid stack index holding a string (lua_tolstring then converts nothing).
    pub(super) unsafe fn field_at(&self, state: *mut mlua::ffi::lua_State, key: c_int) -> Path {
        self.step(Step::Text(SmallVec::from_slice(key_bytes(state, key))))
    }

    /// True if this path is [`Path::field_at`]`(parent, key)`: the same steps, made apart or
    /// not. The planner then shares it rather than making it again.
    ///
    /// # Safety
    /// As for [`Path::field_at`].
    pub(super) unsafe fn is_field_at(
        &self,
        parent: &Path,
        state: *mut mlua::ffi::lua_State,
        key: c_int,
    ) -> bool {
        let Step::Text(text) = &self.0.step else {
            return false;
        };
        text.as_slice() == key_bytes(state, key)
            && self
                .0
                .parent
                .as_ref()
                .is_some_and(|own| own.same_steps(parent))
    }

    /// True if the two paths have the same steps.
    fn same_steps(&self, other: &Path) -> bool {
        let (mut a, mut b) = (self, other);
        loop {
            if Rc::ptr_eq(&a.0, &b.0) {
                return true;
            }
            if a.0.depth != b.0.depth || a.0.step != b.0.step {
                return false;
            }
            match (&a.0.parent, &b.0.parent) {
                (Some(pa), Some(pb)) => (a, b) = (pa, pb),
                _ => return true,
            }
        }
    }

    /// The path of the metatable of the value at this path.
    pub(super) fn metatable(&self) -> Path {
        self.step(Step::Metatable)
    }

    /// The path of upvalue `name` of the function at this path.
    pub(super) fn upvalue(&self, name: &Rc<str>) -> Path {
        self.step(Step::Upvalue(name.clone()))
    }

    /// True for the path of `_G` itself, whose fields are written without a leading dot.
    fn is_globals(&self) -> bool {
        matches!(&self.0.step, Step::Root(name) if name.is_empty())
    }
}

/// The bytes of the string at stack index `key`.
///
/// # Safety
/// As for [`Path::field_at`]; the bytes live while the string stays on the stack.
unsafe fn key_bytes<'a>(state: *mut mlua::ffi::lua_State, key: c_int) -> &'a [u8] {
    let mut len = 0;
    let text = mlua::ffi::lua_tolstring(state, key, &mut len);
    std::slice::from_raw_parts(text.cast::<u8>(), len)
}

impl Drop for Node {
    /// Drops a chain of a million parents one at a time, not by a million nested drops.
    fn drop(&mut self) {
        let mut parent = self.parent.take();
        while let Some(Path(node)) = parent {
            parent = match Rc::try_unwrap(node) {
                Ok(mut node) => node.parent.take(),
                Err(_) => None,
            };
        }
    }
}

fn write_step(f: &mut impl fmt::Write, node: &Node) -> fmt::Result {
    let dot = if node.parent.as_ref().is_some_and(Path::is_globals) {
        ""
    } else {
        "."
    };
    match &node.step {
        Step::Root(name) => f.write_str(name),
        Step::Text(bytes) => {
            let is_name = bytes.first().is_some_and(|b| !b.is_ascii_digit())
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'_');
            if is_name {
                // ASCII, as checked: the bytes are the text (ten thousand paths in a report
                // are written this way, not through the formatter).
                f.write_str(dot)?;
                f.write_str(std::str::from_utf8(bytes).map_err(|_| fmt::Error)?)
            } else {
                write!(f, "[{:?}]", String::from_utf8_lossy(bytes))
            }
        }
        Step::Integer(i) => write!(f, "[{i}]"),
        Step::Number(n) => write!(f, "[{n}]"),
        Step::Boolean(b) => write!(f, "[{b}]"),
        Step::Other(kind) => write!(f, "[{kind}]"),
        Step::Metatable => f.write_str("#mt"),
        Step::Upvalue(name) => write!(f, "@{name}"),
    }
}

/// Writes `node`'s steps from the root: at most [`SHOWN`] levels of recursion, as `node` is
/// never deeper than that.
fn write_from_root(f: &mut impl fmt::Write, node: &Node) -> fmt::Result {
    if let Some(parent) = &node.parent {
        write_from_root(f, &parent.0)?;
    }
    write_step(f, node)
}

/// Writes the path at `node` out (see [`Path`]'s `Display`).
fn write_path(f: &mut impl fmt::Write, node: &Node) -> fmt::Result {
    match &node.shown {
        None => write_from_root(f, node),
        Some(shown) => {
            write_from_root(f, &shown.0)?;
            f.write_str("…")?;
            write_step(f, node)
        }
    }
}

impl Path {
    /// The path written out, as `to_string` writes it but straight into the string, not
    /// through a formatter: a report names ten thousand paths.
    pub(super) fn text(&self) -> String {
        // Room for most paths at once: grown a few bytes at a time, a path took four
        // allocations.
        let mut text = String::with_capacity(32);
        write_path(&mut text, &self.0).expect("a String takes every write");
        text
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_path(f, &self.0)
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Path({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path made apart with the same steps is the same place; another key, another parent,
    /// or a parent one step shorter is not.
    #[test]
    fn a_field_is_known_by_its_steps() {
        let lua = mlua::Lua::new();
        let key = |s: &str| Value::String(lua.create_string(s).unwrap());
        let parent = Path::root("m").field(&key("Class"));
        let collected = parent.field(&key("f1"));
        let made_apart = Path::root("m").field(&key("Class"));
        let other_parent = Path::root("n").field(&key("Class"));
        let mut found = Vec::new();
        // SAFETY: index 1 holds the string "f1", index 2 "f2".
        unsafe {
            lua.exec_raw::<()>((key("f1"), key("f2")), |state| {
                found = vec![
                    collected.is_field_at(&made_apart, state, 1),
                    collected.is_field_at(&parent, state, 1),
                    collected.is_field_at(&made_apart, state, 2),
                    collected.is_field_at(&other_parent, state, 1),
                    collected.is_field_at(&Path::root("m"), state, 1),
                ];
            })
            .unwrap();
        }
        assert_eq!(found, [true, true, false, false, false]);
    }

    #[test]
    fn names_keys_metatables_and_upvalues() {
        let lua = mlua::Lua::new();
        let module = Path::root("combat");
        let key = |s: &str| Value::String(lua.create_string(s).unwrap());
        let path = module
            .field(&key("Monster"))
            .metatable()
            .field(&key("not a name"))
            .field(&Value::Integer(3))
            .upvalue(&"count".into());
        assert_eq!(
            path.to_string(),
            r#"combat.Monster#mt["not a name"][3]@count"#
        );
        assert_eq!(Path::root("").field(&key("love")).to_string(), "love");
    }

    #[test]
    fn a_deep_path_shows_its_first_steps_and_its_last() {
        let mut path = Path::root("m");
        for depth in 1..=1_000_000 {
            path = path.field(&Value::Integer(depth));
        }
        let first: String = (1..=SHOWN).map(|i| format!("[{i}]")).collect();
        assert_eq!(path.to_string(), format!("m{first}…[1000000]"));
    }
}
