//! Watches folders and reports each `.lua` file whose content really changed, once per save.
//!
//! # How it works
//!
//! [`FileWatcher`] watches whole folders, recursively, never single files: many editors save
//! by writing a temporary file and renaming it over the original (vim with `backupcopy=no`,
//! VS Code, JetBrains "safe write"), which replaces the file's inode, and a watch on the file
//! itself would fall silent after the first such save. Watching the folder sees the rename, and
//! files created later, in new subfolders too.
//!
//! The events pass through `notify-debouncer-full` with a 150 ms delay, so the burst one save
//! makes (create the temporary file, write it, rename it; or truncate, write, close) arrives
//! together, and every file is read at least 150 ms after the first event of its save.
//!
//! Events only say that something happened at a path, not that the code changed. So each
//! `.lua` file an event names is read when its batch arrives, and its content hash compared
//! with the last one seen for that path: the hash taken when the watcher started, when the file
//! was last reported, or when it was passed to [`FileWatcher::mark_seen`]. A save that leaves the
//! content as it was reports nothing. A file that is missing or blank at that moment is skipped
//! and its hash not recorded: it is most likely caught between a truncate and a write, or
//! between a delete and a create, and the write that completes it reports it.
//!
//! Paths are reported canonical ([`std::fs::canonicalize`]), each once per call.
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
//!   chunks more than about 150 ms apart can be read mid-write: the partial file is reported
//!   (its reload fails and the old code stays), then the finished file is reported again.
//! - **Symbolic links.** Reported paths have their links resolved, so they can differ from the
//!   path `package.path` found: compare canonical paths. Symlinked folders are followed when
//!   the watch starts; a symlinked file whose target lies outside the watched folders is not
//!   seen when the target is edited, since the event happens in the target's folder.
//! - **Kubernetes ConfigMap volumes.** The files of a ConfigMap mount are links into `..data`,
//!   itself a link that the kubelet swaps at once to a new `..<timestamp>` folder. Events in
//!   those hidden folders make the watcher look at the visible files again, and a file is
//!   reported once, when its link resolves to the new content (after the swap). A swap that
//!   leaves a file's content as it was can still report it once (its real path changed).
//! - **Event queue overflow.** When the kernel drops events under a flood of changes, the
//!   watcher rereads every `.lua` file of the watched folders, which can take a moment on large
//!   trees.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use notify_debouncer_full::notify::event::{AccessKind, AccessMode, ModifyKind};
use notify_debouncer_full::notify::{self, EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{
    new_debouncer, DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache,
};

use std::sync::Arc;

use crate::{Error, MaybeSendSync, Options, Reloader, Report, Result, Trigger};

/// Long enough to gather the events of one save, short enough that a reload feels immediate.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Watches folders recursively and reports `.lua` files whose content changed.
pub struct FileWatcher {
    /// Held only because dropping it stops the watch.
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    batches: Receiver<DebounceEventResult>,
    /// The watched folders, canonical.
    roots: Vec<PathBuf>,
    /// Hash of the content last seen, by canonical path.
    seen: HashMap<PathBuf, u64>,
    /// Error lines already printed, so an error that recurs at every save does not flood stderr.
    printed: HashSet<String>,
}

impl FileWatcher {
    /// Starts watching `dirs` recursively.
    ///
    /// # Errors
    ///
    /// [`Error::Watch`], naming the folder, when one of `dirs` is missing, is not a folder or
    /// cannot be watched (out of inotify watches, for example).
    pub fn new(dirs: &[PathBuf]) -> Result<FileWatcher> {
        let (sender, batches) = mpsc::channel();
        let mut debouncer = new_debouncer(DEBOUNCE, None, sender)
            .map_err(|error| watch_error(&dirs.first().cloned().unwrap_or_default(), error))?;
        let mut roots = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let root = fs::canonicalize(dir).map_err(|error| Error::Watch {
                path: dir.clone(),
                message: error.to_string(),
            })?;
            if !root.is_dir() {
                return Err(Error::Watch {
                    path: dir.clone(),
                    message: "not a folder".into(),
                });
            }
            debouncer
                .watch(&root, RecursiveMode::Recursive)
                .map_err(|error| watch_error(dir, error))?;
            roots.push(root);
        }
        let mut watcher = FileWatcher {
            _debouncer: debouncer,
            batches,
            roots,
            seen: HashMap::new(),
            printed: HashSet::new(),
        };
        // Hashing after the watch has started means a save made meanwhile is either in the
        // hash or in an event, never lost between the two.
        for file in lua_files(&watcher.roots) {
            watcher.mark_seen(&file);
        }
        Ok(watcher)
    }

    /// Waits up to `wait` for a first change; returns the changed `.lua` files (canonical
    /// paths), each once.
    ///
    /// Batches of events that change no content (an identical save, a `touch`) do not end the
    /// wait. Once a change is found, the batches already queued are taken too, so the files of
    /// one multi-file save come back together. Returns an empty `Vec` when `wait` passes.
    pub fn changed_files(&mut self, wait: Duration) -> Vec<PathBuf> {
        let deadline = Instant::now() + wait;
        loop {
            let timeout = deadline.saturating_duration_since(Instant::now());
            let Ok(first) = self.batches.recv_timeout(timeout) else {
                return Vec::new();
            };
            let batches: Vec<_> = std::iter::once(first)
                .chain(self.batches.try_iter())
                .collect();
            let mut candidates = BTreeSet::new();
            for batch in batches {
                match batch {
                    Ok(events) => {
                        for event in &events {
                            self.collect(event, &mut candidates);
                        }
                    }
                    Err(errors) => self.print_errors(errors),
                }
            }
            // Keyed by canonical path, because two event paths can name one file.
            let current: BTreeMap<PathBuf, u64> = candidates
                .iter()
                .filter_map(|path| read_hash(path))
                .collect();
            let changed: Vec<PathBuf> = current
                .into_iter()
                .filter(|(path, hash)| self.seen.insert(path.clone(), *hash) != Some(*hash))
                .map(|(path, _)| path)
                .collect();
            if !changed.is_empty() {
                return changed;
            }
        }
    }

    /// Records `file`'s current content as seen, so an unchanged save is skipped.
    pub fn mark_seen(&mut self, file: &Path) {
        if let Some((path, hash)) = read_hash(file) {
            self.seen.insert(path, hash);
        }
    }

    /// Adds to `candidates` the `.lua` files `event` may have changed.
    fn collect(&self, event: &DebouncedEvent, candidates: &mut BTreeSet<PathBuf>) {
        // A Kubernetes ConfigMap mount: the visible files are links through `..data`, a link
        // swapped at once to a new `..<timestamp>` folder. Events inside those hidden folders
        // say nothing about when the visible files change: look at the visible files again.
        if event.need_rescan() || event.paths.iter().any(|path| is_configmap_internal(path)) {
            candidates.extend(lua_files(&self.roots));
            return;
        }
        match event.kind {
            // Opening a file, our own reads included, changes nothing; only closing a file
            // that was written to does.
            EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write) => {}
            // Files can land in a new folder before its watch is added, and a folder moved in
            // brings its files without an event for each: look inside.
            EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(_)) => {
                for path in &event.paths {
                    if path.is_dir() {
                        candidates.extend(lua_files(std::slice::from_ref(path)));
                    } else if is_lua(path) {
                        candidates.insert(path.clone());
                    }
                }
            }
            _ => candidates.extend(event.paths.iter().filter(|path| is_lua(path)).cloned()),
        }
    }

    fn print_errors(&mut self, errors: Vec<notify::Error>) {
        for mut error in errors {
            // notify leaves the paths out of some errors (a lost inotify instance, for
            // example); then every watched folder is concerned.
            let paths = std::mem::take(&mut error.paths);
            let paths = if paths.is_empty() {
                &self.roots
            } else {
                &paths
            };
            let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            let line = format!(
                "hotlua: watch error on {}: {}",
                paths.join(", "),
                describe(&error)
            );
            self.print_once(line);
        }
    }

    /// Prints `line` on stderr unless it was printed before.
    fn print_once(&mut self, line: String) {
        if !self.printed.contains(&line) {
            eprintln!("{line}");
            self.printed.insert(line);
        }
    }
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

/// True for a path inside (or naming) the `..data` link or a `..<timestamp>` folder of a
/// ConfigMap mount.
fn is_configmap_internal(path: &Path) -> bool {
    path.components().any(|part| {
        part.as_os_str()
            .to_str()
            .is_some_and(|name| name.starts_with("..") && name.len() > 2)
    })
}

fn is_lua(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "lua")
}

/// The `.lua` files under `dirs`, at any depth.
fn lua_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut visited = HashSet::new();
    let mut pending = dirs.to_vec();
    while let Some(dir) = pending.pop() {
        // Symlinked folders are followed, as the watcher follows them, and a link back up the
        // tree must not make this loop forever.
        let Ok(canonical) = fs::canonicalize(&dir) else {
            continue;
        };
        if !visited.insert(canonical) {
            continue;
        }
        // Unreadable folders are skipped, as the watcher skips them.
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|entry| entry.path()) {
            // A ConfigMap's hidden folders hold the same files as its visible links.
            if is_configmap_internal(&path) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if is_lua(&path) {
                files.push(path);
            }
        }
    }
    files
}

/// The canonical path of `path` and the hash of its content, unless it is missing, unreadable
/// or blank.
fn read_hash(path: &Path) -> Option<(PathBuf, u64)> {
    let canonical = fs::canonicalize(path).ok()?;
    let content = fs::read(&canonical).ok()?;
    if content.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let mut hasher = DefaultHasher::new();
    content.hash(&mut hasher);
    Some((canonical, hasher.finish()))
}

/// The longest `hotlua.sleep` waits between two runs of the safe-point hook
/// ([`Reloader::set_safe_point`]).
pub const SAFE_POINT_SLICE: Duration = Duration::from_millis(5);

/// The watch loop a host drives from its own main loop.
impl Reloader {
    /// Watches `dirs` recursively: [`Reloader::poll`] then reloads, as one batch, the loaded
    /// modules whose `.lua` files changed.
    pub fn watch(&self, dirs: &[std::path::PathBuf]) -> Result<()> {
        let watcher = FileWatcher::new(dirs)?;
        *self.shared.watcher.borrow_mut() = Some(watcher);
        Ok(())
    }

    /// Makes the lines `hotlua.poll` prints for each watch reload JSON reports instead of the
    /// one-line summary.
    pub fn set_json_log(&self, json: bool) {
        self.shared.json_log.set(json);
    }

    /// Reloads the modules whose files changed, waiting up to `wait` for a first change.
    /// Returns `None` when no loaded module changed.
    ///
    /// Only modules the program has loaded are reloaded; a file is matched to a module through
    /// `package.path` (`package.searchpath`), like `require` would find it.
    pub fn poll(&self, wait: std::time::Duration) -> Option<Result<Report>> {
        let files = self
            .shared
            .watcher
            .borrow_mut()
            .as_mut()?
            .changed_files(wait);
        if files.is_empty() {
            return None;
        }
        let modules = match crate::load::loaded_modules_in(&self.lua, &files) {
            Ok((modules, refused)) => {
                if let Some(watcher) = self.shared.watcher.borrow_mut().as_mut() {
                    for error in refused {
                        watcher.print_once(format!("hotlua: {error}; the file is ignored"));
                    }
                }
                if modules.is_empty() {
                    return None;
                }
                modules
            }
            Err(error) => return Some(Err(error)),
        };
        let names: Vec<&str> = modules.iter().map(String::as_str).collect();
        Some(self.with_trigger(Trigger::Watch, |r| r.reload(&names, &Options::default())))
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
