//! What a reload request must be before anything is searched or run.

use crate::{Error, Result};

/// Refuses an empty batch, a module named twice, and names `require` could never load: empty,
/// with an empty dotted segment (`..m`, `m.`, `.m`), or holding a NUL byte (Lua paths are C
/// strings: the name would be cut there and another file found).
pub(crate) fn check_names(modules: &[&str]) -> Result<()> {
    if modules.is_empty() {
        return Err(Error::Request("no module named".into()));
    }
    for (i, name) in modules.iter().enumerate() {
        if let Some(why) = unloadable(name) {
            return Err(Error::Request(format!(
                "{name:?} is not a module name require can load: {why}"
            )));
        }
        if modules[..i].contains(name) {
            return Err(Error::Request(format!("module '{name}' named twice")));
        }
    }
    Ok(())
}

/// Why `require` could never load a module of this name, if it could not.
fn unloadable(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.contains('\0') {
        Some("it holds a NUL byte")
    } else if name.split('.').any(str::is_empty) {
        Some("a dotted segment is empty")
    } else {
        None
    }
}
