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

/// Lays out `dir` as the kubelet lays out a ConfigMap volume: `name -> ..data/name`,
/// `..data -> ..<version>`, the files in `..<version>/`. A new version is written into a new
/// folder, and `..data` is swapped to it by renaming a new link over it (atomic).
fn configmap_version(dir: &TempDir, version: u32, files: &[(&str, &str)]) {
    let folder = configmap_write(dir, version, files);
    configmap_swap(dir, &folder);
}

/// Writes version `version` of the files into its hidden folder; returns the folder's name.
fn configmap_write(dir: &TempDir, version: u32, files: &[(&str, &str)]) -> String {
    use std::os::unix::fs::symlink;
    let folder = format!("..2024_01_01_00_00_0{version}.000000001");
    fs::create_dir(dir.path(&folder)).unwrap();
    for (name, content) in files {
        write(&dir.path(&folder).join(name), content);
        let link = dir.path(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
    folder
}

/// Points `..data` at `folder` (one rename) and removes the folder it pointed at.
fn configmap_swap(dir: &TempDir, folder: &str) {
    use std::os::unix::fs::symlink;
    let new_link = dir.path("..data_tmp");
    symlink(folder, &new_link).unwrap();
    let old = fs::read_link(dir.path("..data")).ok();
    fs::rename(&new_link, dir.path("..data")).unwrap();
    if let Some(old) = old {
        fs::remove_dir_all(dir.path(old.to_str().unwrap())).unwrap();
    }
}

#[test]
fn configmap_swap_is_reported_once_with_the_new_content() {
    let dir = TempDir::new("configmap");
    configmap_version(
        &dir,
        1,
        &[("game.lua", "return 1"), ("other.lua", "return 'a'")],
    );
    let mut watcher = dir.watch();
    let visible = dir.path("game.lua");

    for version in 2..=3 {
        let content = format!("return {version}");
        configmap_version(
            &dir,
            version,
            &[("game.lua", &content), ("other.lua", "return 'a'")],
        );
        let changed = watcher.changed_files(WAIT);
        let canonical = fs::canonicalize(&visible).unwrap();
        assert!(changed.contains(&canonical), "{changed:?}");
        assert_eq!(fs::read_to_string(&canonical).unwrap(), content);
        // Nothing under the hidden folders but the current version, and nothing more later.
        assert!(
            changed.iter().all(|path| path.starts_with(
                dir.path(fs::read_link(dir.path("..data")).unwrap().to_str().unwrap())
            )),
            "{changed:?}"
        );
        let more = watcher.changed_files(AFTER);
        assert!(more.is_empty(), "reported again: {more:?}");
    }
}

#[test]
fn configmap_swap_reloads_the_module_once() {
    let dir = TempDir::new("configmap-reload");
    configmap_version(
        &dir,
        1,
        &[("game.lua", "return { v = function() return 1 end }")],
    );
    let lua = mlua::Lua::new();
    lua.load(format!(
        "package.path = {:?}",
        format!("{}/?.lua", dir.0.display())
    ))
    .exec()
    .unwrap();
    let reloader = hotlua::Reloader::new(&lua).unwrap();
    lua.load("game = require 'game'").exec().unwrap();
    reloader.watch(std::slice::from_ref(&dir.0)).unwrap();
    // The new version's files land first; the program's module still resolves to the old
    // ones until the swap, which may come later than one debounce period.
    let folder = configmap_write(
        &dir,
        2,
        &[("game.lua", "return { v = function() return 2 end }")],
    );
    assert!(reloader.poll(AFTER).is_none(), "reloaded before the swap");
    configmap_swap(&dir, &folder);
    let report = reloader.poll(WAIT).expect("a reload").unwrap();
    assert_eq!(report.functions_replaced, ["game.v"]);
    assert_eq!(lua.load("return game.v()").eval::<i64>().unwrap(), 2);
    assert!(reloader.poll(AFTER).is_none(), "reloaded twice");
}
