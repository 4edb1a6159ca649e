//! One notify watcher per process, shared by every [`FileWatcher`](super::FileWatcher).
//!
//! A host like skynet runs thousands of Lua states in one process, each of which may call
//! `hotlua.watch`. A notify watcher each would take an inotify instance each (the per-user
//! limit, `fs.inotify.max_user_instances`, is 128 by default) and two threads each. Instead,
//! every subscription shares one debounced watcher: its thread hands each event to the
//! inboxes of the subscriptions whose folders contain the event's paths. Each folder is
//! watched once, however many subscriptions ask for it. When the last subscription ends (its
//! state closed), the watcher is stopped and its thread joined before the drop returns.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use notify_debouncer_full::notify::{self, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};

use super::pending::Inbox;
use super::{error_line, DEBOUNCE};

/// The process's watcher, while a subscription exists.
static HUB: Mutex<Option<Hub>> = Mutex::new(None);

/// Tells subscriptions apart.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

struct Hub {
    debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    /// Read by the watcher's thread at each batch of events.
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
    /// How many subscriptions watch each folder.
    watched: HashMap<PathBuf, usize>,
}

/// Where a subscription's events go.
struct Subscriber {
    id: u64,
    roots: Vec<PathBuf>,
    inbox: Arc<Inbox>,
}

/// A share of the process's watcher: events under `roots` go to one inbox until it is dropped.
pub(super) struct Subscription {
    id: u64,
    roots: Vec<PathBuf>,
}

/// Locks a mutex whose holders leave it consistent at every step (a panic in the middle of one
/// leaves at worst an event not delivered).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Subscription {
    /// Watches `roots` (canonical folders) recursively and hands their events to `inbox`.
    ///
    /// # Errors
    ///
    /// The folder that could not be watched and why; nothing stays subscribed then.
    pub(super) fn new(
        roots: &[PathBuf],
        inbox: Arc<Inbox>,
    ) -> Result<Subscription, (PathBuf, notify::Error)> {
        let mut hub = lock(&HUB);
        if hub.is_none() {
            *hub = Some(Hub::start().map_err(|error| (roots[0].clone(), error))?);
        }
        let subscription = Subscription {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            roots: Vec::new(),
        };
        let state = hub.as_mut().expect("started above");
        lock(&state.subscribers).push(Subscriber {
            id: subscription.id,
            roots: roots.to_vec(),
            inbox,
        });
        drop(hub);
        // Dropped on an error, it unwatches what it watched so far.
        let mut subscription = subscription;
        for root in roots {
            let mut hub = lock(&HUB);
            let state = hub.as_mut().expect("kept while a subscription exists");
            state.watch(root).map_err(|error| (root.clone(), error))?;
            subscription.roots.push(root.clone());
        }
        Ok(subscription)
    }

    /// Watches `root` again (it was removed and created again: its old watch died with it).
    pub(super) fn rewatch(&self, root: &Path) -> Result<(), notify::Error> {
        let mut hub = lock(&HUB);
        let debouncer = &mut hub.as_mut().expect("kept while subscribed").debouncer;
        // notify may still list the dead watch.
        let _ = debouncer.unwatch(root);
        debouncer.watch(root, RecursiveMode::Recursive)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut hub = lock(&HUB);
        let Some(state) = hub.as_mut() else {
            return;
        };
        for root in &self.roots {
            state.unwatch(root);
        }
        let mut subscribers = lock(&state.subscribers);
        subscribers.retain(|subscriber| subscriber.id != self.id);
        let last = subscribers.is_empty();
        drop(subscribers);
        if last {
            let stopped = hub.take().expect("checked above");
            drop(hub);
            // Joins the watcher's thread: once a state's close returns, no code of hotlua's
            // runs for it, and none runs at all when it was the last state watching.
            stopped.debouncer.stop();
        }
    }
}

impl Hub {
    fn start() -> notify::Result<Hub> {
        let subscribers: Arc<Mutex<Vec<Subscriber>>> = Arc::default();
        let receivers = subscribers.clone();
        let debouncer = new_debouncer(DEBOUNCE, None, move |batch: DebounceEventResult| {
            deliver(&lock(&receivers), batch)
        })?;
        Ok(Hub {
            debouncer,
            subscribers,
            watched: HashMap::new(),
        })
    }

    fn watch(&mut self, root: &Path) -> notify::Result<()> {
        if let Some(count) = self.watched.get_mut(root) {
            *count += 1;
            return Ok(());
        }
        self.debouncer.watch(root, RecursiveMode::Recursive)?;
        self.watched.insert(root.to_owned(), 1);
        Ok(())
    }

    fn unwatch(&mut self, root: &Path) {
        let Some(count) = self.watched.get_mut(root) else {
            return;
        };
        *count -= 1;
        if *count == 0 {
            self.watched.remove(root);
            // A folder already gone has no watch left to remove.
            let _ = self.debouncer.unwatch(root);
        }
    }
}

/// Hands each event (or error) of `batch` to the subscribers it concerns: those with a folder
/// containing one of its paths, or every one when it names no path (events lost).
fn deliver(subscribers: &[Subscriber], batch: DebounceEventResult) {
    let concerns = |subscriber: &Subscriber, paths: &[PathBuf]| {
        paths.is_empty()
            || paths.iter().any(|path| {
                (subscriber.roots.iter()).any(|root| path.starts_with(root) || root == path)
            })
    };
    match batch {
        Ok(events) => {
            for subscriber in subscribers {
                let mut pending = subscriber.inbox.lock();
                let mine = events
                    .iter()
                    .filter(|event| concerns(subscriber, &event.paths));
                mine.for_each(|event| pending.add(event, &subscriber.roots));
                drop(pending);
                subscriber.inbox.arrived.notify_all();
            }
        }
        Err(errors) => {
            for error in errors {
                for subscriber in subscribers.iter().filter(|s| concerns(s, &error.paths)) {
                    let line = error_line(&subscriber.roots, clone_error(&error));
                    subscriber.inbox.lock().add_error(line);
                    subscriber.inbox.arrived.notify_all();
                }
            }
        }
    }
}

/// notify's errors are not `Clone`; what a line says of one is its kind's text and its paths.
fn clone_error(error: &notify::Error) -> notify::Error {
    let kind = match &error.kind {
        notify::ErrorKind::Generic(text) => notify::ErrorKind::Generic(text.clone()),
        notify::ErrorKind::Io(io) => {
            notify::ErrorKind::Io(std::io::Error::new(io.kind(), io.to_string()))
        }
        notify::ErrorKind::PathNotFound => notify::ErrorKind::PathNotFound,
        notify::ErrorKind::WatchNotFound => notify::ErrorKind::WatchNotFound,
        notify::ErrorKind::InvalidConfig(config) => notify::ErrorKind::InvalidConfig(*config),
        notify::ErrorKind::MaxFilesWatch => notify::ErrorKind::MaxFilesWatch,
    };
    notify::Error::new(kind).set_paths(error.paths.clone())
}
