//! The source text each module runs, and the one it ran before its last successful reload:
//! what [`crate::Reloader::rollback`] reinstates, and what status lines and audit logs name by
//! SHA-256.
//!
//! Each module's file is kept as its chunk names it and as an absolute path, read where it was
//! found: the watcher and SIGHUP compare that file with the live version
//! ([`crate::Reloader::changed_modules`]), wherever the program's current directory is now.
//!
//! Memory is bounded: two versions per module at most (the live one and the previous one), and
//! a version larger than [`MAX_KEPT_SOURCE`] is kept as its hash only (no rollback to it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::batch::GivenSource;
use sha2::{Digest, Sha256};

/// The largest source kept in memory for a rollback, in bytes.
pub const MAX_KEPT_SOURCE: usize = 4 << 20;

/// The hex SHA-256 of `bytes`, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// One version of a module's source.
#[derive(Clone)]
struct Version {
    sha256: String,
    /// `None` when larger than [`MAX_KEPT_SOURCE`], or when there was no memory to keep it (the
    /// reload it came with has already succeeded: it is not failed for that).
    bytes: Option<Arc<Vec<u8>>>,
}

impl Version {
    fn of(bytes: &[u8]) -> Version {
        Version {
            sha256: sha256_hex(bytes),
            bytes: (bytes.len() <= MAX_KEPT_SOURCE)
                .then(|| {
                    let mut kept = Vec::new();
                    kept.try_reserve_exact(bytes.len()).ok()?;
                    kept.extend_from_slice(bytes);
                    Some(Arc::new(kept))
                })
                .flatten(),
        }
    }
}

struct Versions {
    /// The file as the module's chunk names it (`./m.lua`, `rules.lua`, `/p/m.lua`): what a
    /// reload from a given source compiles it under, so its functions keep their chunk name.
    file: PathBuf,
    /// Where that file was read, absolute: a relative `file` is still found after the program
    /// changed directory.
    path: PathBuf,
    live: Version,
    previous: Option<Version>,
}

impl Versions {
    fn first(file: &Path, path: &Path, live: Version) -> Versions {
        Versions {
            file: file.to_owned(),
            path: path.to_owned(),
            live,
            previous: None,
        }
    }
}

/// A module whose source is known, as the watcher compares it with its file.
pub(crate) struct Known {
    pub module: String,
    /// The file as the module's chunk names it.
    pub file: PathBuf,
    /// Where it was read, absolute.
    pub path: PathBuf,
    /// SHA-256 of the live version.
    pub sha256: String,
}

/// `file` made absolute against the current directory, where it was just read.
pub(crate) fn absolute(file: &Path) -> PathBuf {
    std::path::absolute(file).unwrap_or_else(|_| file.to_owned())
}

/// The live and previous source of every module loaded or reloaded from a Lua file.
#[derive(Default)]
pub(crate) struct Sources(crate::sync::Slot<HashMap<String, Versions>>);

/// What is known of the source a loaded module runs ([`crate::Reloader::sources`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ModuleSource {
    /// The module's name.
    pub module: String,
    /// The file the live version came from.
    pub file: PathBuf,
    /// SHA-256 of the live version's bytes (the file's bytes as read when it was loaded).
    pub sha256: String,
    /// SHA-256 of the version a rollback would reinstate, if one is kept.
    pub previous_sha256: Option<String>,
}

impl Sources {
    /// `require` loaded `module` from `file`, read at `path`, whose content was `bytes`.
    pub(crate) fn loaded(&self, module: &str, file: &Path, path: &Path, bytes: &[u8]) {
        self.0.borrow_mut().insert(
            module.to_owned(),
            Versions::first(file, path, Version::of(bytes)),
        );
    }

    /// A reload made `bytes` (from `file`, read at `path`) the live version of `module`; the
    /// version live until then becomes the previous one.
    pub(crate) fn reloaded(&self, module: &str, file: &Path, path: &Path, bytes: &[u8]) {
        let mut map = self.0.borrow_mut();
        let new = Version::of(bytes);
        match map.get_mut(module) {
            Some(versions) => {
                // Reloading the same source again keeps the one before it to go back to.
                if versions.live.sha256 != new.sha256 {
                    versions.previous = Some(std::mem::replace(&mut versions.live, new));
                }
                versions.file = file.to_owned();
                versions.path = path.to_owned();
            }
            None => {
                map.insert(module.to_owned(), Versions::first(file, path, new));
            }
        }
    }

    /// True when the source of `module` is known.
    #[cfg(feature = "watch")]
    pub(crate) fn contains(&self, module: &str) -> bool {
        self.0.borrow().contains_key(module)
    }

    /// Every module whose source is known, with where its file is.
    pub(crate) fn known(&self) -> Vec<Known> {
        self.0
            .borrow()
            .iter()
            .map(|(module, versions)| Known {
                module: module.clone(),
                file: versions.file.clone(),
                path: versions.path.clone(),
                sha256: versions.live.sha256.clone(),
            })
            .collect()
    }

    /// SHA-256 of the live version of `module`, if known.
    pub(crate) fn live_sha256(&self, module: &str) -> Option<String> {
        self.0.borrow().get(module).map(|v| v.live.sha256.clone())
    }

    /// The previous version of `module`, or why there is none.
    pub(crate) fn previous(&self, module: &str) -> Result<GivenSource, &'static str> {
        let map = self.0.borrow();
        let versions = map
            .get(module)
            .ok_or("its source is not known (it was not loaded from a Lua file by require after hotlua started)")?;
        let previous = versions
            .previous
            .as_ref()
            .ok_or("it has not been reloaded since it was loaded")?;
        let bytes = previous
            .bytes
            .as_ref()
            .ok_or("its previous source was too large to keep (or memory ran out keeping it)")?;
        Ok(GivenSource {
            file: versions.file.clone(),
            path: versions.path.clone(),
            bytes: bytes.to_vec(),
        })
    }

    /// Every module with a known source, sorted by name.
    pub(crate) fn list(&self) -> Vec<ModuleSource> {
        let mut list: Vec<ModuleSource> = self
            .0
            .borrow()
            .iter()
            .map(|(module, versions)| ModuleSource {
                module: module.clone(),
                file: versions.file.clone(),
                sha256: versions.live.sha256.clone(),
                previous_sha256: versions.previous.as_ref().map(|v| v.sha256.clone()),
            })
            .collect();
        list.sort_by(|a, b| a.module.cmp(&b.module));
        list
    }
}
