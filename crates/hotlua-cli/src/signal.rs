//! Ctrl-C as in `lua.c`: while Lua code runs, SIGINT sets a hook that raises `interrupted!` at
//! the next instruction, call or return; a second SIGINT before the hook fires, or one while no
//! Lua code runs, ends the process the default way.
//!
//! As in single-threaded `lua.c`, the handler must run on the thread that runs Lua: threads
//! hotlua starts (the file watcher's) are started by `with_sigint_kept_here` with SIGINT
//! blocked, so the kernel delivers it to the Lua thread.

use std::ffi::c_int;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use mlua::ffi;

/// The Lua state whose code runs under `interruptible`, or null.
static RUNNING: AtomicPtr<ffi::lua_State> = AtomicPtr::new(ptr::null_mut());

/// Installs the SIGINT handler; call once, before any Lua code runs.
pub fn install() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        // SAFETY: `on_sigint` is async-signal-safe: it does one atomic swap, then either calls
        // `lua_sethook`, which the Lua manual allows from a signal handler, or signal-hook's
        // `emulate_default_handler`, which is documented async-signal-safe. It allocates, locks
        // and panics nowhere.
        unsafe { signal_hook::low_level::register(signal_hook::consts::SIGINT, on_sigint) }?;
    }
    Ok(())
}

#[cfg(unix)]
fn on_sigint() {
    let state = RUNNING.swap(ptr::null_mut(), Ordering::SeqCst);
    if state.is_null() {
        let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGINT);
    } else {
        let mask = ffi::LUA_MASKCALL | ffi::LUA_MASKRET | ffi::LUA_MASKLINE | ffi::LUA_MASKCOUNT;
        // SAFETY: `state` was stored by `interruptible`, which is still inside its call (it
        // clears the pointer before returning), so the state is alive; the handler interrupts
        // the thread that runs it (the only one that takes SIGINT), as lua.c's does.
        unsafe { ffi::lua_sethook(state, Some(stop), mask, 1) };
    }
}

/// lua.c's `lstop`: removes itself and raises `interrupted!` in the running Lua code.
///
/// No Rust value with a destructor lives in this frame, which `luaL_error` leaves by `longjmp`.
#[cfg(unix)]
unsafe extern "C-unwind" fn stop(state: *mut ffi::lua_State, _: *mut ffi::lua_Debug) {
    ffi::lua_sethook(state, None, 0, 0);
    ffi::luaL_error(state, c"interrupted!".as_ptr());
}

/// Runs `call` (a `lua_pcall` on `state`) with Ctrl-C interrupting the Lua code it runs.
///
/// `state` must stay alive while `call` runs.
pub fn interruptible(state: *mut ffi::lua_State, call: impl FnOnce() -> c_int) -> c_int {
    let outer = RUNNING.swap(state, Ordering::SeqCst);
    let status = call();
    RUNNING.store(outer, Ordering::SeqCst);
    status
}

/// Runs `start`, which starts threads, with SIGINT blocked in them (they inherit this thread's
/// signal mask), so that SIGINT keeps reaching this thread, the one that runs Lua.
pub fn with_sigint_kept_here<R>(start: impl FnOnce() -> R) -> R {
    #[cfg(unix)]
    {
        // SAFETY: `sigset_t` is plain data that `sigemptyset` initialises; `pthread_sigmask`
        // changes only this thread's mask, and the old one is put back right after `start`.
        let old = unsafe {
            let mut sigint = std::mem::zeroed::<libc::sigset_t>();
            let mut old = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut sigint);
            libc::sigaddset(&mut sigint, libc::SIGINT);
            libc::pthread_sigmask(libc::SIG_BLOCK, &sigint, &mut old);
            old
        };
        let result = start();
        // SAFETY: as above; `old` is the mask `pthread_sigmask` returned.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut()) };
        result
    }
    #[cfg(not(unix))]
    start()
}
