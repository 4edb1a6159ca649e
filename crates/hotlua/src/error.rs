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
    /// print, line breaks included ("\n\tno field package.preload['x']\n\tno file './x.lua'").
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

    /// The module's live value did not come from a Lua source file that `require` found under
    /// its name: the standard library (`string`, `table`), a C module, a `package.preload`
    /// entry, a table a host put in `package.loaded`. A same-named file on `package.path` is
    /// never loaded in its place; `reason` says what the live value is.
    #[error(
        "module '{module}' is not reloaded from {}: {reason}; a reload never replaces a module \
         that did not come from its file",
        file.display()
    )]
    NotFromFile {
        /// The module's name, as `require` takes it.
        module: String,
        /// The same-named file that was found.
        file: PathBuf,
        /// What the live value is instead.
        reason: String,
    },

    /// The file exists but is empty (or blank): most likely an editor caught mid-write.
    #[error("module '{module}': file {} is empty; old code kept", file.display())]
    EmptyFile {
        /// The module's name, as `require` takes it.
        module: String,
        /// The module's file.
        file: PathBuf,
    },

    /// The file holds precompiled code (`luac` output, `string.dump`): a reload loads source
    /// text only, so that it can never feed corrupted bytecode to Lua's undump. `require`
    /// itself still accepts such files.
    #[error(
        "module '{module}': file {} is precompiled Lua bytecode; only source text can be reloaded",
        file.display()
    )]
    Precompiled {
        /// The module's name, as `require` takes it.
        module: String,
        /// The module's file.
        file: PathBuf,
    },

    /// The file did not compile: syntax error, binary garbage; or was not read: unreadable, not
    /// a regular file (a FIFO, a device, a link to one), larger than [`crate::MAX_MODULE_FILE`].
    #[error(
        "module '{module}' failed to load{}: {message}",
        unless_named(message, file, format!(" from {}", file.display()))
    )]
    Load {
        /// The module's name, as `require` takes it.
        module: String,
        /// The module's file.
        file: PathBuf,
        /// Lua's (or the file system's) message, with the line.
        message: String,
    },

    /// The new top level raised an error while it ran in the staging environment, ran out of
    /// memory (`message` is Lua's "not enough memory"), or called `os.exit` (refused: a reload
    /// never ends the program). An error value that is not a string shows through its
    /// `__tostring`, or as `(error object is a table value)`.
    #[error(
        "module '{module}'{} raised an error in its top level: {message}",
        unless_named(message, file, format!(" ({})", file.display()))
    )]
    TopLevel {
        /// The module's name, as `require` takes it.
        module: String,
        /// The module's file.
        file: PathBuf,
        /// Lua's error message, without the traceback.
        message: String,
    },

    /// The new top level did not finish within the time limit ([`crate::Options::timeout`]);
    /// `stopped_at` is where it was running then (`file:line`), when Lua could tell.
    #[error(
        "module '{module}' ({}) did not finish its top level within {} s{}; reload refused",
        file.display(),
        seconds,
        stopped_at.as_ref().map(|at| format!(" (stopped at {at})")).unwrap_or_default()
    )]
    Timeout {
        /// The module's name, as `require` takes it.
        module: String,
        /// The module's file.
        file: PathBuf,
        /// The time limit the top level ran under.
        seconds: f64,
        /// Where the top level was running when it was stopped (`file:line`), if Lua could tell.
        stopped_at: Option<String>,
    },

    /// The reload was called where Lua runs no hooks (inside a debug hook or a `__gc`
    /// finalizer): the time limit and the `os.exit` guard are hooks, so the new top level was
    /// not run.
    #[error(
        "module '{module}' ({}): reload refused inside a debug hook or a __gc finalizer: Lua runs no hooks there, so hotlua could neither stop an endless top level nor refuse its os.exit; reload from ordinary code (for example the program's next hotlua.poll)",
        file.display()
    )]
    NoHooksHere {
        /// The module's name, as `require` takes it.
        module: String,
        /// The module's file.
        file: PathBuf,
    },

    /// The new version returns a different kind of value (a table before, a function now).
    /// `old` and `new` are Lua type names, or `"nothing"`.
    #[error(
        "module '{module}' ({}) now returns {} where it returned {}; reload refused",
        file.display(),
        with_article(new),
        with_article(old)
    )]
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

    /// Applying a planned reload failed: Lua ran out of memory (or a class library's
    /// `__newindex` raised an error) while the reload wrote the module's tables and locals or
    /// switched references. Every write made so far has been undone: nothing changed.
    #[error("applying the reload of {modules} failed while {step}, nothing changed: {message}")]
    Apply {
        /// The modules of the batch, quoted and comma-separated.
        modules: String,
        /// What the reload was doing.
        step: ApplyStep,
        /// Lua's message.
        message: String,
    },

    /// Lua failed (in practice: ran out of memory) while the reload read the files or set up
    /// the staging of the new versions, outside any one module's top level. Nothing changed.
    #[error("reload of {modules} failed, nothing changed: {message}")]
    Reload {
        /// The modules of the batch, quoted and comma-separated.
        modules: String,
        /// Lua's message.
        message: String,
    },

    /// A module appears twice in one batch, the batch is empty, or a name is one `require`
    /// could never load (empty, an empty dotted segment, a NUL byte).
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

    /// The Lua state failed outside a reload: installing the Lua API, reading the list of
    /// loaded modules. (A reload's own failures name their modules: [`Error::Reload`],
    /// [`Error::Plan`], [`Error::Apply`].)
    ///
    /// It holds Lua's message (without mlua's traceback), so that [`Error`] is `Send + Sync`
    /// whatever mlua's features (`mlua::Error` is only with `send`).
    #[error("{0}")]
    Lua(String),
}

/// The step of applying a reload that failed ([`Error::Apply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApplyStep {
    /// Recording the new versions' load-time values (the merge's next base).
    Baselines,
    /// Writing the module's tables and upvalues.
    Writes,
    /// Switching references held elsewhere to the new code (the engine's pass).
    Switch,
}

impl std::fmt::Display for ApplyStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ApplyStep::Baselines => "recording load-time values",
            ApplyStep::Writes => "writing the module's tables and locals",
            ApplyStep::Switch => "switching references to the new code",
        })
    }
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
            | Error::NotFromFile { module, .. }
            | Error::EmptyFile { module, .. }
            | Error::Precompiled { module, .. }
            | Error::Load { module, .. }
            | Error::TopLevel { module, .. }
            | Error::Timeout { module, .. }
            | Error::NoHooksHere { module, .. }
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
            Error::Timeout {
                file,
                stopped_at: Some(message),
                ..
            } => (file, message),
            _ => return None,
        };
        let name = file.file_name()?.to_str()?;
        let after = &message[message.find(name)? + name.len()..];
        let digits = after.strip_prefix(':')?;
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        digits[..end].parse().ok()
    }

    /// The file this error is about, when one was found.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Error::NotLuaSource { file, .. }
            | Error::NotFromFile { file, .. }
            | Error::EmptyFile { file, .. }
            | Error::Precompiled { file, .. }
            | Error::Load { file, .. }
            | Error::TopLevel { file, .. }
            | Error::Timeout { file, .. }
            | Error::NoHooksHere { file, .. }
            | Error::ReturnChanged { file, .. } => Some(file),
            _ => None,
        }
    }
}

/// `mention` of `file`, unless `message` names the file already (Lua's own messages start
/// with `file:line:`): a message names the path once.
fn unless_named(message: &str, file: &std::path::Path, mention: String) -> String {
    if message.contains(&*file.to_string_lossy()) {
        String::new()
    } else {
        mention
    }
}

/// `'a', 'b'`: a batch's module names as messages give them.
pub(crate) fn quoted<'a>(modules: impl IntoIterator<Item = &'a str>) -> String {
    modules
        .into_iter()
        .map(|name| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "a table", "an integer", "nothing": a type name as English reads it after "returns".
fn with_article(kind: &str) -> String {
    match kind {
        "nothing" => kind.to_owned(),
        _ if kind.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {kind}"),
        _ => format!("a {kind}"),
    }
}

/// `Result` with hotlua's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
