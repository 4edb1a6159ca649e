//! The one error type of hotlua.

use std::path::PathBuf;

/// Everything that can make a reload fail.
///
/// Whatever the variant, a failed reload has changed nothing in the running program: the old
/// module keeps working, and a later fixed version reloads normally. Every variant that concerns
/// a module names it, and the file when one was found; [`Error::line`] extracts the line the Lua
/// message points at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No searcher in `package.searchers` found the module; `tried` is what `require` would
    /// print ("no field package.preload['x']", "no file './x.lua'", ...).
    #[error("module '{module}' not found:{tried}")]
    NotFound {
        /// The module's name, as `require` takes it.
        module: String,
        /// What every searcher said, one `\n\t`-prefixed line each.
        tried: String,
    },

    /// The module was found but not by the Lua file searcher (a C module or a custom loader
    /// that is not a Lua chunk), so there is no Lua code to merge.
    #[error(
        "module '{module}' is not a Lua source module ({}): only Lua files can be reloaded",
        file.display()
    )]
    NotLuaSource {
        /// The module's name, as `require` takes it.
        module: String,
        /// The file the searcher named (`?` when it named none).
        file: PathBuf,
    },

    /// The file exists but is empty (or blank): most likely an editor caught mid-write.
    #[error("module '{module}': file {} is empty; old code kept", file.display())]
    EmptyFile {
        /// The module's name, as `require` takes it.
        module: String,
        /// The module's file.
        file: PathBuf,
    },

    /// The file did not compile: syntax error, binary garbage, unreadable file.
    #[error("module '{module}' failed to load from {}: {message}", file.display())]
    Load {
        /// The module's name, as `require` takes it.
        module: String,
        /// The module's file.
        file: PathBuf,
        /// Lua's (or the file system's) message, with the line.
        message: String,
    },

    /// The new top level raised an error while it ran in the staging environment.
    #[error("module '{module}' ({}) raised an error in its top level: {message}", file.display())]
    TopLevel {
        /// The module's name, as `require` takes it.
        module: String,
        /// The module's file.
        file: PathBuf,
        /// Lua's error message, without the traceback.
        message: String,
    },

    /// The new version returns a different kind of value (a table before, a function now).
    #[error("module '{module}' ({}) now returns a {new} where it returned a {old}; reload refused", file.display())]
    ReturnChanged {
        /// The module's name, as `require` takes it.
        module: String,
        /// The module's file.
        file: PathBuf,
        /// What the live version returned: `"table"`, `"function"`, `"nothing"`, ...
        old: &'static str,
        /// What the new version returns.
        new: &'static str,
    },

    /// A `hotlua.on_reload` hook returned `false, reason` before the reload was applied.
    #[error("reload of {modules} vetoed by an on_reload hook: {reason}")]
    Vetoed {
        /// The modules of the batch, quoted and comma-separated.
        modules: String,
        /// The reason the hook gave.
        reason: String,
    },

    /// `reload` was called while another reload was running (for example from a module's new
    /// top level, or from an `on_reload` hook).
    #[error("reload of '{module}' refused: a reload of {running} is already in progress")]
    Reentrant {
        /// The first module of the refused call.
        module: String,
        /// The modules of the reload already running.
        running: String,
    },

    /// Pairing the new versions with the live program failed, for example because the modules
    /// reach more objects than one plan can hold handles to (about a million). Nothing was
    /// applied.
    #[error("planning the reload of {modules} failed, nothing changed: {message}")]
    Plan {
        /// The modules of the batch, quoted and comma-separated.
        modules: String,
        /// What failed.
        message: String,
    },

    /// A module appears twice in one batch, or the batch is empty.
    #[error("invalid reload request: {0}")]
    Request(String),

    /// The file watcher could not watch a folder (missing, unreadable, out of inotify watches).
    #[error("cannot watch {}: {message}", path.display())]
    Watch {
        /// The folder.
        path: PathBuf,
        /// The watcher's message.
        message: String,
    },

    /// The Lua state failed in a way that is not about any one module (out of memory while
    /// applying, for example). The undo log has already restored the old state.
    ///
    /// It holds Lua's message (without mlua's traceback), so that [`Error`] is `Send + Sync`
    /// whatever mlua's features (`mlua::Error` is only with `send`).
    #[error("{0}")]
    Lua(String),
}

impl From<mlua::Error> for Error {
    fn from(error: mlua::Error) -> Error {
        Error::Lua(crate::load::lua_error_text(&error))
    }
}

impl Error {
    /// The module this error is about, when it is about one.
    pub fn module(&self) -> Option<&str> {
        match self {
            Error::NotFound { module, .. }
            | Error::NotLuaSource { module, .. }
            | Error::EmptyFile { module, .. }
            | Error::Load { module, .. }
            | Error::TopLevel { module, .. }
            | Error::ReturnChanged { module, .. }
            | Error::Reentrant { module, .. } => Some(module),
            _ => None,
        }
    }

    /// The line of the module's file that the Lua error message points at, if any.
    ///
    /// Lua prefixes errors with `chunkname:line:`; this finds the first `:<digits>:` after the
    /// file's name in the message.
    pub fn line(&self) -> Option<u32> {
        let (file, message) = match self {
            Error::Load { file, message, .. } | Error::TopLevel { file, message, .. } => {
                (file, message)
            }
            _ => return None,
        };
        let name = file.file_name()?.to_str()?;
        let after = &message[message.find(name)? + name.len()..];
        let digits = after.strip_prefix(':')?;
        let end = digits.find(|c: char| !c.is_ascii_digit())?;
        digits[..end].parse().ok()
    }
}

/// `Result` with hotlua's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
