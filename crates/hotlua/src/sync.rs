//! The cells of the state a [`crate::Reloader`] shares with its clones and the `hotlua` Lua
//! table. They are `Send + Sync` so that the shared state can live in mlua's app data and in
//! callbacks under mlua's `send` feature; without it they cost one uncontended lock or atomic.
//!
//! Their methods are named like `RefCell`'s and `Cell`'s. A reload never holds one across a
//! call into Lua that could come back for it, so the locks are never taken twice.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A `RefCell` that is `Sync`: a mutex.
#[derive(Default)]
pub(crate) struct Slot<T>(Mutex<T>);

impl<T> Slot<T> {
    pub(crate) fn new(value: T) -> Slot<T> {
        Slot(Mutex::new(value))
    }

    pub(crate) fn borrow(&self) -> MutexGuard<'_, T> {
        // A panic while a slot is held leaves plain data behind: keep using it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn borrow_mut(&self) -> MutexGuard<'_, T> {
        self.borrow()
    }
}

/// A `Cell<bool>` that is `Sync`.
#[derive(Default)]
pub(crate) struct Flag(AtomicBool);

impl Flag {
    pub(crate) fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, value: bool) {
        self.0.store(value, Ordering::Relaxed)
    }
}

/// What a callback the shared state keeps must be: `Send + Sync` with mlua's `send` feature
/// (the state then moves between threads), anything otherwise.
#[cfg(feature = "send")]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(feature = "send")]
impl<T: Send + Sync> MaybeSendSync for T {}

/// What a callback the shared state keeps must be: `Send + Sync` with mlua's `send` feature
/// (the state then moves between threads), anything otherwise.
#[cfg(not(feature = "send"))]
pub trait MaybeSendSync {}
#[cfg(not(feature = "send"))]
impl<T> MaybeSendSync for T {}

/// A shared callback taking `&A`: `Send + Sync` with mlua's `send` feature.
#[cfg(feature = "send")]
pub(crate) type Callback<A> = std::sync::Arc<dyn Fn(&A) + Send + Sync>;
/// A shared callback taking `&A`: `Send + Sync` with mlua's `send` feature.
#[cfg(not(feature = "send"))]
pub(crate) type Callback<A> = std::sync::Arc<dyn Fn(&A)>;
