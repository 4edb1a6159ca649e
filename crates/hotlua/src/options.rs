//! The options of a reload: the data policy, the time limit, the engine.

use std::time::Duration;

use crate::Engine;
#[cfg(doc)]
use crate::{Conflict, Error, Reloader, DEFAULT_TIMEOUT};

/// How the data of a module's tables is merged when both the live table and the new file have
/// a field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataPolicy {
    /// The live value stays, unless its type differs from the new file's value (then the new
    /// value wins). New fields are added; `nil` in the new file never erases anything.
    #[default]
    Keep,
    /// The new file's value wins for every data field it sets. Tables still keep their identity.
    Overwrite,
    /// Three-way: a field the program never changed since the module was loaded takes the
    /// edited value; a field the program changed keeps its live value, and if the file changed
    /// it too, the report lists a [`Conflict`]. Needs the value the field had at load time,
    /// which hotlua records for modules loaded (or reloaded) after [`Reloader::new`]; for
    /// others it behaves like [`DataPolicy::Keep`] and warns.
    Merge3,
}

impl DataPolicy {
    /// Parses the names the Lua API uses: `"keep"`, `"overwrite"`, `"merge3"`.
    pub fn from_name(name: &str) -> Option<DataPolicy> {
        [DataPolicy::Keep, DataPolicy::Overwrite, DataPolicy::Merge3]
            .into_iter()
            .find(|policy| policy.name() == name)
    }

    /// The name the Lua API uses for this policy.
    pub fn name(self) -> &'static str {
        match self {
            DataPolicy::Keep => "keep",
            DataPolicy::Overwrite => "overwrite",
            DataPolicy::Merge3 => "merge3",
        }
    }
}

/// Options of one reload call.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// The data policy for every module of this call; `None` uses each module's own policy
    /// ([`Reloader::set_policy`]) or [`DataPolicy::Keep`].
    pub data: Option<DataPolicy>,
    /// The time each new top level may run; `None` means [`DEFAULT_TIMEOUT`] (5 s). A top level
    /// still running then is stopped and the reload fails with [`Error::Timeout`].
    /// `Duration::MAX` means no limit.
    pub timeout: Option<Duration>,
    /// How references to old functions are switched; `None` uses the reloader's engine
    /// ([`Reloader::set_engine`]), by default [`Engine::default`].
    pub engine: Option<Engine>,
}

impl Options {
    /// Options with the given data policy for every module of the call.
    pub fn with_data(data: DataPolicy) -> Options {
        Options {
            data: Some(data),
            ..Options::default()
        }
    }

    /// These options with `timeout` for each new top level.
    pub fn with_timeout(self, timeout: Duration) -> Options {
        Options {
            timeout: Some(timeout),
            ..self
        }
    }

    /// Options that switch references with `engine`.
    pub fn with_engine(engine: Engine) -> Options {
        Options {
            engine: Some(engine),
            ..Options::default()
        }
    }
}
