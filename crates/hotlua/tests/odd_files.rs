//! A module path that names a FIFO, a device or a huge file: no read of hotlua's blocks or
//! reads without bound, and the error names the module and the path.
#![cfg(all(feature = "watch", unix))]

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Fixture;

/// How long a poll may wait for a save that must not reload anything.
const AFTER: Duration = Duration::from_millis(500);
const WAIT: Duration = Duration::from_secs(3);

/// Ends the test process with a message if still armed after `limit`: a read that blocks
/// fails the test instead of hanging it.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn arm(limit: Duration, what: &'static str) -> Watchdog {
        let armed = Arc::new(AtomicBool::new(true));
        let flag = armed.clone();
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            if flag.load(Ordering::SeqCst) {
                eprintln!("blocked for {limit:?}: {what}");
                std::process::exit(101);
            }
        });
        Watchdog(armed)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

fn module(version: i64) -> String {
    format!("local M = {{}}\nfunction M.v() return {version} end\nreturn M\n")
}

/// Module `m` loaded and its folder watched.
fn watched() -> Fixture {
    let f = Fixture::new();
    f.write("m", &module(1));
    f.lua::<()>("m = require 'm'");
    f.reloader.watch(std::slice::from_ref(&f.dir)).unwrap();
    f
}

/// Reloading `m` fails with an error naming the module, the file, and `what`.
fn assert_refused(f: &Fixture, file: &Path, what: &str) {
    let error = f.reload("m").unwrap_err().to_string();
    assert!(error.contains("module 'm'"), "{error}");
    assert!(error.contains(&file.display().to_string()), "{error}");
    assert!(error.contains(what), "{error}");
    assert_eq!(f.lua::<i64>("return m.v()"), 1);
}

/// Saves `m` as a regular file again and checks the watcher reloads it.
fn assert_watching_goes_on(f: &Fixture, file: &Path) {
    fs::remove_file(file).unwrap();
    fs::write(file, module(2)).unwrap();
    assert!(f.reloader.poll(WAIT).expect("a reload").is_ok());
    assert_eq!(f.lua::<i64>("return m.v()"), 2);
}

#[test]
fn a_module_file_replaced_by_a_fifo_blocks_nothing() {
    let f = watched();
    let file = f.dir.join("m.lua");
    fs::remove_file(&file).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&file).status();
    assert!(made.unwrap().success(), "mkfifo failed");

    let _watchdog = Watchdog::arm(Duration::from_secs(20), "reading a FIFO");
    assert!(f.reloader.poll(AFTER).is_none());
    assert!(f.reloader.changed_modules().is_empty());
    assert_refused(&f, &file, "a FIFO (named pipe), not a regular file");
    assert_watching_goes_on(&f, &file);
}

#[test]
fn a_module_file_that_became_a_link_to_dev_zero_is_not_read() {
    let f = watched();
    let file = f.dir.join("m.lua");
    fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();

    let _watchdog = Watchdog::arm(Duration::from_secs(20), "reading /dev/zero");
    assert!(f.reloader.poll(AFTER).is_none());
    assert!(f.reloader.changed_modules().is_empty());
    assert_refused(&f, &file, "a device, not a regular file");
    assert_watching_goes_on(&f, &file);
}

#[test]
fn a_module_file_above_the_size_limit_is_not_read() {
    let f = watched();
    let file = f.dir.join("m.lua");
    // Sparse: no disk space used.
    let handle = fs::OpenOptions::new().write(true).open(&file).unwrap();
    handle.set_len(hotlua::MAX_MODULE_FILE + 1).unwrap();
    drop(handle);

    assert!(f.reloader.poll(AFTER).is_none());
    assert_refused(&f, &file, "larger than 256 MiB");
    assert_watching_goes_on(&f, &file);
}
