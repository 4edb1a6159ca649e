//! Watches folders and reloads each loaded module whose file now differs from the source it
//! runs.
//!
//! # How it works
//!
//! [`FileWatcher`] watches whole folders, recursively, never single files: many editors save
//! by writing a temporary file and renaming it over the original (vim with `backupcopy=no`,
//! VS Code, JetBrains "safe write"), which replaces the file's inode, and a watch on the file
//! itself would fall silent after the first such save. Watching the folder sees the rename, and
//! files created later, in new subfolders too. A watched folder that is removed is watched again
//! as soon as it exists again (checked at every poll), and every file in it is looked at then.
//!
//! The events pass through `notify-debouncer-full` with a 150 ms delay, so the burst one save
//! makes (create the temporary file, write it, rename it; or truncate, write, close) arrives
//! together, and every file is read at least 150 ms after the first event of its save. The
//! watcher's thread folds them at once into the set of `.lua` paths touched since the last
//! poll: while the program does not poll, what waits is one entry per distinct file, however
//! many times each is saved.
//!
//! Events only say that something happened at a path. At a poll ([`Reloader::poll`](crate::Reloader::poll)), each
//! path touched is matched to the loaded modules whose source it is: the file each module was
//! actually loaded from, recorded when `require` loaded it (by Lua's own searcher or by a host's,
//! such as Neovim's runtime path or LÖVE's filesystem, through the chunk name of its functions;
//! see [`crate::Reloader::sources`]), as an absolute path, so that a module loaded through
//! `./?.lua` is still followed after the program changed directory. Modules loaded before the
//! [`Reloader`](crate::Reloader) was made are recorded when the watch starts, with their file
//! as it is then. Paths are compared canonical ([`std::fs::canonicalize`]), resolved at each
//! poll, so a link swapped to another target is followed. A path that matches no loaded module
//! is never read.
//!
//! A matched file is read ([`MAX_MODULE_FILE`](crate::MAX_MODULE_FILE) bytes at most, regular
//! files only: a FIFO, a device or a link to one gets one line on stderr naming the module and
//! the path, and is not opened for reading, so it can neither block the program nor fill its
//! memory; a file gone gets one line too) and its SHA-256 compared with the source the module
//! runs now: the one it was loaded or last reloaded from. The module is reloaded, from exactly the bytes compared, when
//! they differ: a save that goes back to an older version reloads it, a save of what already
//! runs does not, and a save whose reload failed or an `on_reload` hook vetoed is retried when
//! saved again, changed or not; the events of one save (a write and its close, a rename, a
//! `chmod` afterwards) try it once: a save is the bytes with the file's modification time,
//! size and inode. A file that is blank at that moment is skipped: it is most
//! likely caught between a truncate and a write, and the write that completes it is seen.
//!
//! # Known problems
//!
//! - **Linux inotify limits.** Every watched folder and subfolder uses one inotify watch. When
//!   `fs.inotify.max_user_watches` is exhausted (other watchers such as IDEs share it),
//!   [`FileWatcher::new`] fails with [`Error::Watch`], and a folder created later is not
//!   watched (an error is printed on stderr). Raise the limit, for example
//!   `sudo sysctl fs.inotify.max_user_watches=524288`, or watch fewer folders.
//! - **Network and virtual file systems.** NFS, SMB/CIFS, sshfs, many FUSE mounts, Docker bind
//!   mounts on macOS and Windows drives seen from WSL often deliver no events for changes made
//!   from the other side (another machine, the host): nothing is reported. Run the watcher
//!   where the files are edited, or reload explicitly.
//! - **Slow in-place writes.** An editor or tool that rewrites a file in place in several
//!   chunks more than about 150 ms apart can be read mid-write: the partial file is reloaded
//!   (its reload fails and the old code stays), then the finished file is reloaded.
//! - **A file deleted, then written again more than 150 ms later** prints one line saying the
//!   module's file is gone; the write that brings it back reloads it if it differs.
//! - **Symbolic links.** Symlinked folders are followed when the watch starts; a symlinked file
//!   whose target lies outside the watched folders is not seen when the target is edited,
//!   since the event happens in the target's folder. Only files under the watched folders are
//!   followed, whatever folder a module came from.
//! - **Modules a host's searcher loaded** are followed when their functions name their file
//!   (`@file` chunk names, as Neovim's and LÖVE's searchers give them), and a relative name is
//!   resolved against the current directory when the module loaded. A module that only sets
//!   globals, loaded by such a searcher, is not followed; nor is one whose source is not a
//!   `.lua` file (Fennel, MoonScript).
//! - **Kubernetes ConfigMap volumes.** The files of a ConfigMap mount are links into `..data`,
//!   itself a link that the kubelet swaps at once to a new `..<timestamp>` folder. Events in
//!   those hidden folders make the watcher look at the visible files again, and a module is
//!   reloaded once, when its link resolves to new content (after the swap).
//! - **Event queue overflow.** When the kernel drops events under a flood of changes, the
//!   watcher lists every `.lua` file of the watched folders again, which can take a moment on
//!   large trees; only the files of loaded modules are read.

mod hub;
mod paths;
mod pending;
mod poll;

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use notify_debouncer_full::notify;

use hub::Subscription;
pub(crate) use paths::canonical;
use paths::lua_files;
use pending::{Inbox, Pending};

use crate::{Error, Result};

pub(crate) use poll::Watching;
pub use poll::SAFE_POINT_SLICE;

/// Long enough to gather the events of one save, short enough that a reload feels immediate.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// How often a long wait looks whether a removed watched folder exists again.
const ROOT_CHECK: Duration = Duration::from_millis(250);

/// The moment `wait` from now; a wait no clock can hold (`Duration::MAX`, `math.huge` seconds)
/// ends in a century.
pub(crate) fn deadline_after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// Watches folders recursively and reports the `.lua` files that saves touched.
///
/// Every `FileWatcher` of the process shares one watcher and its thread (see `hub.rs`): a host
/// with thousands of Lua states watching uses one inotify instance. Dropping the last one
/// stops that watcher and joins its thread.
pub struct FileWatcher {
    subscription: Subscription,
    inbox: Arc<Inbox>,
    roots: Vec<Root>,
    /// Error lines already printed, so an error that recurs at every save does not flood stderr.
    printed: HashSet<String>,
}

/// A watched folder.
struct Root {
    /// Canonical, as given when the watch started.
    path: PathBuf,
    /// What the path named when it was last watched (`None` while it is not watched): a
    /// folder removed and created again is another one, and must be watched again.
    identity: Option<(u64, u64)>,
    /// An event said it was removed (a folder created again in its place may reuse the inode
    /// number, so `identity` alone does not tell).
    removed: bool,
}

impl FileWatcher {
    /// Starts watching `dirs` recursively.
    ///
    /// # Errors
    ///
    /// [`Error::Watch`], naming the folder, when one of `dirs` is missing, is not a folder or
    /// cannot be watched (out of inotify watches, for example).
    pub fn new(dirs: &[PathBuf]) -> Result<FileWatcher> {
        let mut roots = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let path = fs::canonicalize(dir).map_err(|error| Error::Watch {
                path: dir.clone(),
                message: error.to_string(),
            })?;
            if !path.is_dir() {
                return Err(Error::Watch {
                    path: dir.clone(),
                    message: "not a folder".into(),
                });
            }
            roots.push(Root {
                identity: identity(&path),
                removed: false,
                path,
            });
        }
        let inbox = Arc::new(Inbox::default());
        let root_paths: Vec<PathBuf> = roots.iter().map(|root| root.path.clone()).collect();
        let subscription =
            Subscription::new(&root_paths, inbox.clone()).map_err(|(root, error)| {
                // Name the folder as the caller gave it.
                let index = root_paths.iter().position(|path| *path == root);
                watch_error(index.map_or(&root, |index| &dirs[index]), error)
            })?;
        Ok(FileWatcher {
            subscription,
            inbox,
            roots,
            printed: HashSet::new(),
        })
    }

    /// Waits up to `wait` for saves; returns the `.lua` files they touched, each once, as
    /// canonical paths (a file removed since: its folder's canonical path and its name).
    ///
    /// A file is reported for every save, also one that left its content as it was: the
    /// caller compares it with what it knows ([`Reloader::poll`](crate::Reloader::poll)
    /// compares it with the source the module runs). Returns an empty `Vec` when `wait` passes.
    pub fn changed_files(&mut self, wait: Duration) -> Vec<PathBuf> {
        let deadline = deadline_after(wait);
        loop {
            self.watch_returned_roots();
            let pending = self.take(deadline.min(Instant::now() + ROOT_CHECK));
            for line in &pending.errors {
                self.print_once(line.clone());
            }
            for root in &mut self.roots {
                root.removed |= pending.removed_roots.contains(&root.path);
            }
            let files = self.files_of(pending);
            if !files.is_empty() || Instant::now() >= deadline {
                return files;
            }
        }
    }

    /// Waits until something is pending or `until` passes, and takes what is pending.
    fn take(&self, until: Instant) -> Pending {
        let mut pending = self.inbox.lock();
        while pending.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            pending = (self.inbox.arrived.wait_timeout(pending, left))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::take(&mut *pending)
    }

    /// The `.lua` files `pending` names, canonical, sorted, each once.
    fn files_of(&self, pending: Pending) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = pending.files.into_iter().collect();
        if pending.rescan {
            let roots: Vec<PathBuf> = self.roots.iter().map(|root| root.path.clone()).collect();
            files.extend(lua_files(&roots));
        }
        let folders: Vec<PathBuf> = pending.folders.into_iter().collect();
        files.extend(lua_files(&folders));
        let canonical: BTreeSet<PathBuf> = files.iter().filter_map(|f| canonical(f)).collect();
        canonical.into_iter().collect()
    }

    /// Watches again each watched folder that was removed and exists again, and looks at every
    /// file in it (saves made while it was not watched included). Says once when one is gone.
    fn watch_returned_roots(&mut self) {
        for index in 0..self.roots.len() {
            let root = &mut self.roots[index];
            let now = identity(&root.path).filter(|_| root.path.is_dir());
            if now == root.identity && !root.removed {
                continue;
            }
            root.removed = false;
            let path = root.path.clone();
            if now.is_none() {
                if root.identity.take().is_some() {
                    eprintln!(
                        "hotlua: the watched folder {} was removed; it is watched again when it \
                         is created again",
                        path.display()
                    );
                }
                continue;
            }
            match self.subscription.rewatch(&path) {
                Ok(()) => {
                    self.roots[index].identity = now;
                    self.inbox.lock().folders.insert(path);
                }
                // Tried again at the next poll (`identity` stays `None`).
                Err(error) => self.print_once(format!("hotlua: {}", watch_error(&path, error))),
            }
        }
    }

    /// Prints `line` on stderr unless it was printed before.
    pub(crate) fn print_once(&mut self, line: String) {
        if !self.printed.contains(&line) {
            eprintln!("{line}");
            self.printed.insert(line);
        }
    }
}

/// The line printed for an error of the watcher's.
pub(super) fn error_line(roots: &[PathBuf], mut error: notify::Error) -> String {
    // notify leaves the paths out of some errors (a lost inotify instance, for example); then
    // every watched folder is concerned.
    let paths = std::mem::take(&mut error.paths);
    let paths = if paths.is_empty() { roots } else { &paths };
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    format!(
        "hotlua: watch error on {}: {}",
        paths.join(", "),
        describe(&error)
    )
}

/// Turns a failure to watch `path` into hotlua's error.
fn watch_error(path: &Path, mut error: notify::Error) -> Error {
    // `Error::Watch` names the folder already.
    error.paths.clear();
    Error::Watch {
        path: path.to_owned(),
        message: describe(&error),
    }
}

/// The message of `error`, with the fix when there is a well-known one.
fn describe(error: &notify::Error) -> String {
    match error.kind {
        notify::ErrorKind::MaxFilesWatch => {
            format!("{error} Raise the limit fs.inotify.max_user_watches, or watch fewer folders.")
        }
        _ => error.to_string(),
    }
}

/// What `path` names now (device and inode), `None` when it is missing.
fn identity(path: &Path) -> Option<(u64, u64)> {
    let metadata = fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((metadata.dev(), metadata.ino()))
    }
    #[cfg(not(unix))]
    {
        Some((u64::from(metadata.is_dir()), 0))
    }
}
