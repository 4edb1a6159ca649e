//! The file watcher reports each real change of a `.lua` file once, whatever way it is saved.
#![cfg(feature = "watch")]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use hotlua::watch::FileWatcher;
use hotlua::Error;

/// Generous, so a loaded machine does not make a test fail; a passing test never waits it out.
const WAIT: Duration = Duration::from_secs(3);
/// How long a test waits to be sure nothing more comes.
const AFTER: Duration = Duration::from_millis(500);

/// A fresh folder for one test, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("hotlua-watch-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // The watcher reports canonical paths; the temp dir can sit behind a symlink (macOS).
        TempDir(fs::canonicalize(&dir).unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn watch(&self) -> FileWatcher {
        FileWatcher::new(std::slice::from_ref(&self.0)).unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn write(path: &Path, content: &str) {
    fs::write(path, content).unwrap();
}

#[test]
fn rename_save_is_reported_once() {
    let dir = TempDir::new("rename");
    let file = dir.path("x.lua");
    write(&file, "return 1");
    let mut watcher = dir.watch();

    let swap = dir.path(".x.lua.swp");
    write(&swap, "vim swap");
    let tmp = dir.path("x.lua.tmp");
    write(&tmp, "return 2");
    fs::rename(&tmp, &file).unwrap();
    fs::remove_file(&swap).unwrap();

    assert_eq!(watcher.changed_files(WAIT), [file]);
    assert_eq!(watcher.changed_files(AFTER), Vec::<PathBuf>::new());
}

#[test]
fn truncate_then_write_is_reported_once() {
    let dir = TempDir::new("truncate");
    let file = dir.path("x.lua");
    write(&file, "return 1");
    let mut watcher = dir.watch();

    let mut handle = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&file)
        .unwrap();
    sleep(Duration::from_millis(20));
    handle.write_all(b"return 2").unwrap();
    drop(handle);

    assert_eq!(watcher.changed_files(WAIT), [file]);
    assert_eq!(watcher.changed_files(AFTER), Vec::<PathBuf>::new());
}

#[test]
fn two_quick_saves_are_reported_once() {
    let dir = TempDir::new("twice");
    let file = dir.path("x.lua");
    write(&file, "return 1");
    let mut watcher = dir.watch();

    write(&file, "return 2");
    sleep(Duration::from_millis(30));
    write(&file, "return 3");

    assert_eq!(watcher.changed_files(WAIT), std::slice::from_ref(&file));
    assert_eq!(watcher.changed_files(AFTER), Vec::<PathBuf>::new());
    assert_eq!(fs::read_to_string(&file).unwrap(), "return 3");
}

#[test]
fn identical_save_is_not_reported() {
    let dir = TempDir::new("identical");
    let file = dir.path("x.lua");
    write(&file, "return 1");
    let mut watcher = dir.watch();

    write(&file, "return 1");
    assert_eq!(watcher.changed_files(WAIT), Vec::<PathBuf>::new());

    // The watcher still works: a real change after it is reported.
    write(&file, "return 2");
    assert_eq!(watcher.changed_files(WAIT), [file]);
}

#[test]
fn empty_file_is_not_reported_until_it_has_content() {
    let dir = TempDir::new("empty");
    let mut watcher = dir.watch();

    let file = dir.path("x.lua");
    write(&file, "");
    write(&dir.path("blank.lua"), " \n\t\n");
    assert_eq!(watcher.changed_files(WAIT), Vec::<PathBuf>::new());

    write(&file, "return 1");
    assert_eq!(watcher.changed_files(WAIT), [file]);
    assert_eq!(watcher.changed_files(AFTER), Vec::<PathBuf>::new());
}

#[test]
fn new_file_in_new_nested_folder_is_reported_and_txt_is_not() {
    let dir = TempDir::new("nested");
    let mut watcher = dir.watch();

    let deeper = dir.path("sub").join("deeper");
    fs::create_dir_all(&deeper).unwrap();
    let file = deeper.join("new.lua");
    write(&file, "return {}");
    write(&deeper.join("notes.txt"), "not Lua");
    write(&dir.path("readme.txt"), "not Lua either");

    assert_eq!(watcher.changed_files(WAIT), [file]);
    assert_eq!(watcher.changed_files(AFTER), Vec::<PathBuf>::new());
}

#[test]
fn missing_folder_is_a_watch_error_naming_it() {
    let dir = TempDir::new("missing");
    let missing = dir.path("no-such-folder");
    match FileWatcher::new(std::slice::from_ref(&missing)) {
        Err(Error::Watch { path, .. }) => assert_eq!(path, missing),
        Err(other) => panic!("expected Error::Watch, got {other:?}"),
        Ok(_) => panic!("watching a missing folder succeeded"),
    }
}

#[test]
fn mark_seen_suppresses_that_content() {
    let dir = TempDir::new("mark-seen");
    let file = dir.path("x.lua");
    write(&file, "return 1");
    let mut watcher = dir.watch();

    write(&file, "return 2");
    watcher.mark_seen(&file);
    assert_eq!(watcher.changed_files(WAIT), Vec::<PathBuf>::new());

    write(&file, "return 3");
    assert_eq!(watcher.changed_files(WAIT), [file]);
}
