//! SIGHUP for `hotlua run`: a request to reload what changed, taken at the next safe point.
//!
//! A program can take the signal over (luv's `uv.new_signal():start("sighup", ...)`, a C
//! module calling `sigaction`); from then on an operator's `kill -HUP` no longer reloads. So
//! at safe points hotlua asks the kernel who handles SIGHUP (one `sigaction` call that changes
//! nothing) and says so once when it is no longer hotlua. It asks at most every
//! [`CHECK_EVERY`]: the system call costs as much as the rest of a `hotlua.poll()`, which a
//! program may call in a tight loop.

use std::cell::Cell;
use std::ffi::c_int;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::SIGHUP;

/// How often safe points check who handles SIGHUP.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// hotlua's SIGHUP handling, held by the Lua thread.
pub struct Hangup {
    received: Arc<AtomicBool>,
    /// The handler the kernel had for SIGHUP right after hotlua registered its own.
    ours: libc::sighandler_t,
    /// The handler last found in place, to warn once per change.
    last_seen: Cell<libc::sighandler_t>,
    next_check: Cell<Instant>,
}

impl Hangup {
    /// Handles SIGHUP from now on; call before any Lua code runs.
    pub fn install() -> io::Result<Hangup> {
        let received = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGHUP, received.clone())?;
        let ours = handler_of(SIGHUP)?;
        Ok(Hangup {
            received,
            ours,
            last_seen: Cell::new(ours),
            next_check: Cell::new(Instant::now()),
        })
    }

    /// Whether a SIGHUP arrived since the last call.
    pub fn take(&self) -> bool {
        self.received.swap(false, Ordering::SeqCst)
    }

    /// At a safe point: [`Hangup::takeover_warning`], if [`CHECK_EVERY`] has passed since
    /// the last check.
    pub fn takeover_warning_due(&self) -> Option<String> {
        let now = Instant::now();
        if now < self.next_check.get() {
            return None;
        }
        self.next_check.set(now + CHECK_EVERY);
        self.takeover_warning()
    }

    /// The warning to print when SIGHUP's handler changed since the last check and is not
    /// hotlua's; `None` otherwise (so one warning per change, however many safe points).
    fn takeover_warning(&self) -> Option<String> {
        let now = handler_of(SIGHUP).ok()?;
        if now == self.last_seen.replace(now) || now == self.ours {
            return None;
        }
        let what = match now {
            libc::SIG_DFL => {
                "its handler was reset to the default: `kill -HUP` now ends the program"
            }
            libc::SIG_IGN => "the program ignores it",
            _ => "the program installed its own handler (luv's uv.new_signal, a C module)",
        };
        Some(format!(
            "hotlua: SIGHUP no longer reloads: {what}; reload with --watch, --control or hotlua.reload"
        ))
    }
}

/// The handler the kernel runs for `signal` (an address, `SIG_DFL` or `SIG_IGN`).
fn handler_of(signal: c_int) -> io::Result<libc::sighandler_t> {
    // SAFETY: `sigaction` with a null new action changes nothing and only writes the current
    // action into `current`, a plain-data struct owned by this frame (all-zero is a valid
    // value of it); it is thread-safe and `signal` is checked by the kernel (EINVAL).
    let current = unsafe {
        let mut current = std::mem::zeroed::<libc::sigaction>();
        if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 {
            return Err(io::Error::last_os_error());
        }
        current
    };
    Ok(current.sa_sigaction)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes `action` SIGHUP's, returning the one it replaced.
    fn replace_action(action: &libc::sigaction) -> libc::sigaction {
        // SAFETY: `action` and `old` are plain data; `action`'s handler is `SIG_DFL`,
        // `SIG_IGN`, `ignore` or one `sigaction` returned (signal-hook's, registered for the
        // whole process), and nothing in this test process sends SIGHUP.
        unsafe {
            let mut old = std::mem::zeroed::<libc::sigaction>();
            assert_eq!(libc::sigaction(SIGHUP, action, &mut old), 0);
            old
        }
    }

    fn replace_handler(handler: libc::sighandler_t) -> libc::sigaction {
        // SAFETY: all-zero is a valid `sigaction` (no flags, empty mask).
        let mut action = unsafe { std::mem::zeroed::<libc::sigaction>() };
        action.sa_sigaction = handler;
        replace_action(&action)
    }

    extern "C" fn ignore(_: c_int) {}

    #[test]
    fn a_changed_sighup_handler_is_reported_once_per_change() {
        let hangup = Hangup::install().unwrap();
        assert_eq!(hangup.takeover_warning(), None);

        let ours = replace_handler(ignore as *const () as libc::sighandler_t);
        let warning = hangup.takeover_warning().unwrap();
        assert!(warning.contains("installed its own handler"), "{warning}");
        assert_eq!(hangup.takeover_warning(), None);
        replace_handler(libc::SIG_DFL);
        let warning = hangup.takeover_warning().unwrap();
        assert!(warning.contains("now ends the program"), "{warning}");
        replace_handler(libc::SIG_IGN);
        let warning = hangup.takeover_warning().unwrap();
        assert!(warning.contains("ignores it"), "{warning}");

        // Given back to hotlua: nothing to say, and a later takeover is said again.
        replace_action(&ours);
        assert_eq!(hangup.takeover_warning(), None);
        replace_handler(libc::SIG_DFL);
        assert!(hangup.takeover_warning().is_some());
        replace_action(&ours);
    }
}
