//! What waits for the next poll: the watcher's thread folds every event into it at once, so
//! that while the program does not poll it holds one entry per distinct path, however many
//! times each is saved.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use notify_debouncer_full::notify::event::{AccessKind, AccessMode, ModifyKind};
use notify_debouncer_full::notify::EventKind;
use notify_debouncer_full::DebouncedEvent;

use super::paths::{is_configmap_internal, is_lua};

/// The most distinct error lines kept while the program does not poll.
const MAX_PENDING_ERRORS: usize = 64;

/// What the watcher's thread hands to the program's.
#[derive(Default)]
pub(super) struct Inbox {
    pending: Mutex<Pending>,
    pub(super) arrived: Condvar,
}

/// What happened since the last poll, each path once.
#[derive(Default)]
pub(super) struct Pending {
    /// `.lua` files events named.
    pub(super) files: HashSet<PathBuf>,
    /// Folders created or moved in (their files come without an event each).
    pub(super) folders: HashSet<PathBuf>,
    /// Events were lost, or a ConfigMap swapped its files: look at every `.lua` file.
    pub(super) rescan: bool,
    /// Error lines, the first [`MAX_PENDING_ERRORS`] distinct ones.
    pub(super) errors: BTreeSet<String>,
    /// Watched folders that were removed.
    pub(super) removed_roots: HashSet<PathBuf>,
}

impl Inbox {
    pub(super) fn lock(&self) -> MutexGuard<'_, Pending> {
        // The watcher's thread only inserts paths: a panic there leaves a usable set.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pending {
    pub(super) fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.folders.is_empty()
            && !self.rescan
            && self.errors.is_empty()
            && self.removed_roots.is_empty()
    }

    /// Notes the `.lua` files `event` may have changed, and the removal of a watched folder.
    pub(super) fn add(&mut self, event: &DebouncedEvent, roots: &[PathBuf]) {
        if let EventKind::Remove(_) = event.kind {
            let removed = event.paths.iter().filter(|path| roots.contains(path));
            self.removed_roots.extend(removed.cloned());
        }
        // A Kubernetes ConfigMap mount: the visible files are links through `..data`, a link
        // swapped at once to a new `..<timestamp>` folder. Events inside those hidden folders
        // say nothing about when the visible files change: look at the visible files again.
        if event.need_rescan() || event.paths.iter().any(|path| is_configmap_internal(path)) {
            self.rescan = true;
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
                        self.folders.insert(path.clone());
                    } else if is_lua(path) {
                        self.files.insert(path.clone());
                    }
                }
            }
            _ => (self.files).extend(event.paths.iter().filter(|path| is_lua(path)).cloned()),
        }
    }

    pub(super) fn add_error(&mut self, line: String) {
        if self.errors.len() < MAX_PENDING_ERRORS {
            self.errors.insert(line);
        }
    }
}
