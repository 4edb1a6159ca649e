//! What each reload attempt was, for an audit log ([`crate::Reloader::on_attempt`]).

use std::path::PathBuf;

use serde::Serialize;

/// What asked for a reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// `hotlua.reload` from Lua, or [`crate::Reloader::reload`] from Rust.
    #[default]
    Api,
    /// The file watcher, through `hotlua.poll`/`hotlua.sleep`.
    Watch,
    /// A signal (SIGHUP).
    Signal,
    /// A control endpoint; `peer` names the client (`unix`, `127.0.0.1:53412`).
    Control {
        /// The client: `unix`, or its address and port.
        peer: String,
    },
}

impl Trigger {
    /// `api`, `watch`, `signal` or `control`.
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Watch => "watch",
            Trigger::Signal => "signal",
            Trigger::Control { .. } => "control",
        }
    }
}

/// One module of an [`Attempt`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptModule {
    /// The module's name.
    pub name: String,
    /// Its file, when one was found.
    pub file: Option<PathBuf>,
    /// SHA-256 of the source live before the attempt, when known.
    pub old_sha256: Option<String>,
    /// SHA-256 of the source the attempt loaded (after a failure: of the file as it was then,
    /// or of the version a rollback tried to reinstate).
    pub new_sha256: Option<String>,
}

/// One reload or rollback attempt, successful or not: one line of an audit log
/// ([`Attempt::to_json`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Attempt {
    /// Seconds since the Unix epoch when the attempt started.
    pub time: f64,
    /// `api`, `watch`, `signal` or `control`.
    pub trigger: &'static str,
    /// The control client, for the `control` trigger.
    pub peer: Option<String>,
    /// `reload` or `rollback`.
    pub action: &'static str,
    /// The modules of the attempt.
    pub modules: Vec<AttemptModule>,
    /// `ok` or `failed`.
    pub result: &'static str,
    /// How long the attempt took.
    pub duration_ms: f64,
    /// Why it failed.
    pub error: Option<String>,
}

impl Attempt {
    /// The attempt as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an Attempt always serializes")
    }
}
