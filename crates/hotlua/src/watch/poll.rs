//! The watch loop a host drives from its own main loop: which modules a batch of touched files
//! concerns, and whether each now differs from the source the module runs.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mlua::Value;

use super::{canonical, FileWatcher};
use crate::batch::{GivenSource, NewSource};
use crate::modules::{check_origin, loaded_from, loaded_table, LoadedFrom};
use crate::sources::sha256_hex;
use crate::{source_file, MaybeSendSync, Options, Reloader, Report, Result, Trigger};

/// The longest `hotlua.sleep` waits between two runs of the safe-point hook
/// ([`Reloader::set_safe_point`]).
pub const SAFE_POINT_SLICE: Duration = Duration::from_millis(5);

/// A running watch: the watcher, and the modules whose file it found gone.
pub(crate) struct Watching {
    files: FileWatcher,
    /// Modules whose file was missing when a save touched it, said once until it is back.
    gone: HashSet<String>,
    /// Modules whose last watch reload failed (or was vetoed), with the save it read: a
    /// second event of that same save is not retried, a new save is.
    failed: HashMap<String, Save>,
}

/// One save of a file: what it holds and when and where it was written. A file saved again
/// with the same bytes has a new modification time (or, written to a temporary file and
/// renamed, a new inode); two events of one save, or a `chmod`, do not change this.
#[derive(PartialEq)]
struct Save {
    sha256: String,
    stamp: Option<Stamp>,
}

/// When a file was last written, its size, and what it is (device and inode).
#[derive(PartialEq)]
struct Stamp {
    modified: SystemTime,
    len: u64,
    identity: Option<(u64, u64)>,
}

impl Save {
    fn of(path: &Path, sha256: String) -> Save {
        let stamp = fs::metadata(path).ok().and_then(|metadata| {
            Some(Stamp {
                modified: metadata.modified().ok()?,
                len: metadata.len(),
                identity: super::identity(path),
            })
        });
        Save { sha256, stamp }
    }

    /// Whether `other` is this save, seen again (never when the time it was written is not
    /// known).
    fn seen_again_as(&self, other: &Save) -> bool {
        self.stamp.is_some() && self == other
    }
}

impl Reloader {
    /// Watches `dirs` recursively: [`Reloader::poll`] then reloads, as one batch, the loaded
    /// modules whose files changed.
    ///
    /// Modules loaded before [`Reloader::new`] are followed from now on, through the file they
    /// were loaded from (the one `package.path` finds, or the one their functions name), whose
    /// content now is taken to be the source they run.
    pub fn watch(&self, dirs: &[PathBuf]) -> Result<()> {
        let files = FileWatcher::new(dirs)?;
        self.adopt_loaded_modules()?;
        *self.shared.watcher.borrow_mut() = Some(Watching {
            files,
            gone: HashSet::new(),
            failed: HashMap::new(),
        });
        Ok(())
    }

    /// Makes the lines `hotlua.poll` prints for each watch reload JSON reports instead of the
    /// one-line summary.
    pub fn set_json_log(&self, json: bool) {
        self.shared.json_log.set(json);
    }

    /// Reloads the loaded modules whose files a save left different from the source they run,
    /// waiting up to `wait` for such a save. Returns `None` when there was none.
    ///
    /// A file is matched to the modules loaded from it, whichever searcher loaded them and
    /// whatever the current directory is now, and each is reloaded from exactly the bytes
    /// compared. A module whose file is gone, or is not a regular file, gets one line on stderr.
    pub fn poll(&self, wait: Duration) -> Option<Result<Report>> {
        let deadline = super::deadline_after(wait);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let files = (self.shared.watcher.borrow_mut().as_mut()?)
                .files
                .changed_files(left);
            let due = self.differing(&files);
            if !due.is_empty() {
                let mut names: Vec<String> = due.keys().cloned().collect();
                names.sort_unstable();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let mut saves = Vec::new();
                // A module whose chunk name is not known is found again as `require` finds it
                // (its host's searcher names the chunk).
                let read = due
                    .into_iter()
                    .filter_map(|(name, (source, save))| {
                        saves.push((name.clone(), save));
                        Some((name, source?))
                    })
                    .collect();
                let source = Ok(NewSource::Read(read));
                let result = self.with_trigger(Trigger::Watch, |r| {
                    r.attempt(&names, &Options::default(), source)
                });
                if let Some(watching) = self.shared.watcher.borrow_mut().as_mut() {
                    for (name, save) in saves {
                        match result {
                            Ok(_) => watching.failed.remove(&name),
                            Err(_) => watching.failed.insert(name, save),
                        };
                    }
                }
                return Some(result);
            }
            if Instant::now() >= deadline {
                return None;
            }
        }
    }

    /// The loaded modules among those loaded from `files` (canonical paths) whose file differs
    /// from the source they run, with the bytes read and the save they come from; a save
    /// whose reload failed is not tried again until the file is saved again.
    /// A module whose chunk name is not known (no function of it names its file) has `None`:
    /// it is found again as `require` finds it.
    fn differing(&self, files: &[PathBuf]) -> HashMap<String, (Option<GivenSource>, Save)> {
        let mut due = HashMap::new();
        if files.is_empty() {
            return due;
        }
        let touched: HashSet<&PathBuf> = files.iter().collect();
        let mut watcher = self.shared.watcher.borrow_mut();
        let Some(watching) = watcher.as_mut() else {
            return due;
        };
        for known in self.shared.sources.known() {
            let matched = canonical(&known.path).is_some_and(|path| touched.contains(&path));
            if !matched || !self.is_loaded(&known.module) {
                continue;
            }
            let bytes = match source_file::read(&known.path) {
                Ok(bytes) => bytes,
                Err(error) if error.kind() == ErrorKind::NotFound => {
                    if watching.gone.insert(known.module.clone()) {
                        eprintln!(
                            "hotlua: module '{}' was loaded from {}, which is gone; it is \
                             reloaded when a file is saved there again",
                            known.module,
                            known.path.display()
                        );
                    }
                    continue;
                }
                Err(error) => {
                    watching.files.print_once(format!(
                        "hotlua: module '{}': {} is not read: {error}",
                        known.module,
                        known.path.display()
                    ));
                    continue;
                }
            };
            watching.gone.remove(&known.module);
            // Most likely between a truncate and a write: the write is seen next.
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let sha256 = sha256_hex(&bytes);
            if sha256 != known.sha256 {
                let save = Save::of(&known.path, sha256);
                if (watching.failed.get(&known.module)).is_some_and(|f| f.seen_again_as(&save)) {
                    continue;
                }
                let named = self.chunks_name_their_file(&known.module);
                let source = GivenSource {
                    file: known.file,
                    path: known.path,
                    bytes,
                };
                due.insert(known.module, (named.then_some(source), save));
            }
        }
        due
    }

    /// Whether module `name`'s functions name the file it was loaded from
    /// ([`LoadedFrom::named_by_chunks`]).
    fn chunks_name_their_file(&self, name: &str) -> bool {
        let named = || -> Result<bool> {
            let value: Value = loaded_table(&self.lua)?.raw_get(name)?;
            Ok(loaded_from(&self.lua, name, &value)?.is_some_and(|from| from.named_by_chunks))
        };
        named().unwrap_or(false)
    }

    /// Records the source of each module loaded before [`Reloader::new`] (so not seen by
    /// `require`'s bookkeeping): the file it was loaded from as it is now, when its live value
    /// can have come from it ([`check_origin`]: never the standard library).
    fn adopt_loaded_modules(&self) -> Result<()> {
        for pair in loaded_table(&self.lua)?.pairs::<Value, Value>() {
            let (Value::String(name), value) = pair? else {
                continue;
            };
            let name = name.to_string_lossy();
            if self.shared.sources.contains(&name) {
                continue;
            }
            let Some(LoadedFrom { file, path, .. }) = loaded_from(&self.lua, &name, &value)? else {
                continue;
            };
            let chunk_name = format!("@{}", file.display());
            if check_origin(&self.lua, &name, &file, &chunk_name).is_err() {
                continue;
            }
            if let Ok(bytes) = source_file::read(&path) {
                self.shared.sources.loaded(&name, &file, &path, &bytes);
            }
        }
        Ok(())
    }

    /// Makes `hook` run at every safe point: each call of `hotlua.poll()`, and every few
    /// milliseconds ([`SAFE_POINT_SLICE`]) during `hotlua.sleep(seconds)`. This is where a host
    /// runs work queued by other threads (a control endpoint, a signal): the hook runs on the
    /// Lua thread, between two steps of the program. It is not called again while it runs.
    pub fn set_safe_point(&self, hook: impl Fn(&Reloader) + MaybeSendSync + 'static) {
        *self.shared.safe_point.borrow_mut() = Some(Arc::new(hook));
    }

    /// Runs the safe-point hook, if there is one and it is not running already.
    pub(crate) fn run_safe_point(&self) -> bool {
        let Some(hook) = self.shared.safe_point.borrow().clone() else {
            return false;
        };
        if !self.shared.in_safe_point.get() {
            self.shared.in_safe_point.set(true);
            hook(self);
            self.shared.in_safe_point.set(false);
        }
        true
    }

    /// True once [`Reloader::watch`] has started a watcher.
    pub fn is_watching(&self) -> bool {
        self.shared.watcher.borrow().is_some()
    }
}
