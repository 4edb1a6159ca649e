//! The file watcher sees every save of a `.lua` file, whatever way it is made, and a module is
//! reloaded when its file differs from the source it runs.
#![cfg(feature = "watch")]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use hotlua::watch::FileWatcher;
use hotlua::{Error, Reloader, Report};

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
fn rename_save_is_reported_and_its_temporary_files_are_not() {
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

    assert_eq!(watcher.changed_files(WAIT), std::slice::from_ref(&file));
    // A loaded machine can split the creation and the write into two batches: the file may
    // be reported again (each touch is; `poll` compares contents), the `.txt` files never.
    let later = watcher.changed_files(AFTER);
    assert!(later.iter().all(|path| *path == file), "{later:?}");
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
fn a_watched_folder_removed_and_created_again_is_watched_again() {
    let dir = TempDir::new("recreated");
    let watched = dir.path("src");
    fs::create_dir(&watched).unwrap();
    let mut watcher = FileWatcher::new(std::slice::from_ref(&watched)).unwrap();
    fs::remove_dir_all(&watched).unwrap();
    assert_eq!(watcher.changed_files(AFTER), Vec::<PathBuf>::new());

    // Created again, with a file saved before the watcher looked: both that file and later
    // saves are seen.
    fs::create_dir(&watched).unwrap();
    write(&watched.join("early.lua"), "return 1");
    let changed = watcher.changed_files(WAIT);
    assert!(changed.contains(&watched.join("early.lua")), "{changed:?}");
    let _ = watcher.changed_files(AFTER);
    write(&watched.join("later.lua"), "return 2");
    assert_eq!(watcher.changed_files(WAIT), [watched.join("later.lua")]);
}

/// A Lua state whose `package.path` is a watched folder, with `hotlua` installed.
struct Watched {
    dir: TempDir,
    lua: mlua::Lua,
    reloader: Reloader,
}

impl Watched {
    /// Module `m` loaded from `source`, and its folder watched.
    fn new(test: &str, source: &str) -> Watched {
        let dir = TempDir::new(test);
        write(&dir.path("m.lua"), source);
        let lua = mlua::Lua::new();
        let path = format!("{}/?.lua", dir.0.display());
        lua.load(format!("package.path = {path:?}")).exec().unwrap();
        let reloader = Reloader::new(&lua).unwrap();
        reloader.install().unwrap();
        lua.load("m = require 'm'").exec().unwrap();
        reloader.watch(std::slice::from_ref(&dir.0)).unwrap();
        Watched { dir, lua, reloader }
    }

    fn save(&self, source: &str) {
        write(&self.dir.path("m.lua"), source);
    }

    /// What `m.v()` returns now.
    fn version(&self) -> i64 {
        self.lua.load("return m.v()").eval().unwrap()
    }

    /// Polls until a reload happens (its outcome) or `wait` passes (`None`).
    fn poll(&self, wait: Duration) -> Option<hotlua::Result<Report>> {
        self.reloader.poll(wait)
    }

    /// Puts a searcher like LÖVE's before Lua's: modules from the watched folder, their chunks
    /// named `@name.lua` (relative to that folder, not to the current directory); then runs
    /// `code`.
    fn with_game_searcher(&self, code: &str) {
        self.lua
            .load(format!(
                "local dir = {:?}
                 table.insert(package.searchers or package.loaders, 2, function(name)
                   local file = io.open(dir .. '/' .. name .. '.lua')
                   if not file then return '\\n\\tnot in the game folder' end
                   local text = file:read('*a') file:close()
                   return (loadstring or load)(text, '@' .. name .. '.lua')
                 end)
                 {code}",
                self.dir.0.display().to_string()
            ))
            .exec()
            .unwrap();
    }
}

fn module(version: i64) -> String {
    format!("local M = {{}}\nfunction M.v() return {version} end\nreturn M\n")
}

#[test]
fn truncate_then_write_reloads_once_with_the_final_content() {
    let w = Watched::new("truncate", &module(1));
    let mut handle = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(w.dir.path("m.lua"))
        .unwrap();
    sleep(Duration::from_millis(20));
    handle.write_all(module(2).as_bytes()).unwrap();
    drop(handle);

    assert!(w.poll(WAIT).expect("a reload").is_ok());
    assert_eq!(w.version(), 2);
    assert!(w.poll(AFTER).is_none(), "reloaded twice");
}

#[test]
fn two_quick_saves_reload_once_with_the_last() {
    let w = Watched::new("twice", &module(1));
    w.save(&module(2));
    sleep(Duration::from_millis(30));
    w.save(&module(3));
    assert!(w.poll(WAIT).expect("a reload").is_ok());
    assert_eq!(w.version(), 3);
    assert!(w.poll(AFTER).is_none(), "reloaded twice");
}

/// `poll(Duration::MAX)` (`hotlua.sleep(math.huge)`) waits for the save, with no clock
/// overflow.
#[test]
fn a_wait_no_clock_can_hold_waits_for_the_save() {
    let w = Watched::new("forever", &module(1));
    w.save(&module(2));
    assert!(w.poll(Duration::MAX).expect("a reload").is_ok());
    assert_eq!(w.version(), 2);
}

#[test]
fn a_save_of_what_runs_does_not_reload_and_blank_files_wait_for_content() {
    let w = Watched::new("identical", &module(1));
    w.save(&module(1));
    assert!(w.poll(AFTER).is_none());
    w.save(" \n\t\n");
    assert!(w.poll(AFTER).is_none());
    w.save(&module(2));
    assert!(w.poll(WAIT).expect("a reload").is_ok());
    assert_eq!(w.version(), 2);
}

#[test]
fn a_file_back_at_its_start_content_reloads_a_module_running_other_code() {
    let dir = TempDir::new("back");
    let file = dir.path("m.lua");
    write(&file, &module(1));
    let lua = mlua::Lua::new();
    let path = format!("{}/?.lua", dir.0.display());
    lua.load(format!("package.path = {path:?}")).exec().unwrap();
    let reloader = Reloader::new(&lua).unwrap();
    lua.load("m = require 'm'").exec().unwrap();
    // Reloaded by other means (the API, a control endpoint) from version 2, and the file
    // checked out back to version 1 before the watch starts.
    write(&file, &module(2));
    reloader.reload(&["m"], &Default::default()).unwrap();
    write(&file, &module(1));
    reloader.watch(std::slice::from_ref(&dir.0)).unwrap();
    let version = || lua.load("return m.v()").eval::<i64>().unwrap();
    assert_eq!(version(), 2);

    // Saved again as it was when the watch started: the module runs other code.
    write(&file, &module(1));
    assert!(reloader.poll(WAIT).expect("a reload").is_ok());
    assert_eq!(version(), 1);
}

#[test]
fn a_vetoed_save_is_retried_when_saved_again_unchanged() {
    let w = Watched::new("veto", &module(1));
    w.lua
        .load(
            "vetoes = 1
             require('hotlua').on_reload(function(phase)
               if phase == 'before' and vetoes > 0 then vetoes = vetoes - 1 return false, 'not now' end
             end)",
        )
        .exec()
        .unwrap();
    w.save(&module(2));
    let vetoed = w.poll(WAIT).expect("an attempt").unwrap_err();
    assert!(vetoed.to_string().contains("not now"), "{vetoed}");
    assert_eq!(w.version(), 1);
    // The same bytes saved again: the module still runs the old code, so it reloads.
    w.save(&module(2));
    assert!(w.poll(WAIT).expect("a retry").is_ok());
    assert_eq!(w.version(), 2);
}

/// One save is tried once: another event of the same save (here a `chmod`, as editors and
/// sync tools make; a rename seen in two batches is the same) does not try a failed file
/// again, a new save of the same bytes does.
#[cfg(unix)]
#[test]
fn a_failed_save_is_not_tried_again_by_another_event_of_the_same_save() {
    use std::os::unix::fs::PermissionsExt;
    let w = Watched::new("same-save", &module(1));
    w.save("return {");
    let failed = w.poll(WAIT).expect("an attempt").unwrap_err();
    assert!(failed.to_string().contains("m.lua"), "{failed}");
    let file = w.dir.path("m.lua");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let again = w.poll(AFTER);
    assert!(
        again.is_none(),
        "tried again: {:?}",
        again.map(|r| r.map(|_| ()))
    );
    // Saved again, the same bytes: tried again.
    w.save("return {");
    assert!(w.poll(WAIT).expect("a retry").is_err());
    w.save(&module(2));
    assert!(w.poll(WAIT).expect("a reload").is_ok());
    assert_eq!(w.version(), 2);
}

#[test]
fn a_module_a_host_searcher_loaded_is_reloaded_from_its_own_file() {
    // As Neovim's runtime-path loader: its own folder, not on `package.path`, loaded with
    // `loadfile` (chunk `@/abs/lua/plug.lua`), placed before Lua's searchers.
    let w = Watched::new("host-searcher", &module(1));
    let runtime = w.dir.path("rtp").join("lua");
    fs::create_dir_all(&runtime).unwrap();
    write(&runtime.join("plug.lua"), &module(10));
    w.lua
        .load(format!(
            "table.insert(package.searchers or package.loaders, 2, function(name)
               local file = {:?} .. '/' .. name .. '.lua'
               local chunk = loadfile(file)
               if chunk then return chunk, file end
               return '\\n\\tno file in the runtime path'
             end)
             plug = require 'plug'",
            runtime.display().to_string()
        ))
        .exec()
        .unwrap();
    write(&runtime.join("plug.lua"), &module(11));
    let report = w.poll(WAIT).expect("a reload").unwrap();
    assert_eq!(report.modules[0].name, "plug");
    assert_eq!(w.lua.load("return plug.v()").eval::<i64>().unwrap(), 11);
}

/// As LÖVE's searcher: chunks named `@counter.lua`, relative to the game's folder, not to the
/// current directory, while `package.path` also finds the file. The watcher's reload compiles
/// the new version under that same name, so it pairs with the live functions and keeps their
/// locals.
#[test]
fn a_module_loaded_under_a_relative_chunk_name_keeps_its_locals_when_saved() {
    let w = Watched::new("relative-chunk", &module(1));
    let counter = |version: i64| {
        format!(
            "local M = {{}}\nlocal count = 0\n\
             function M.bump() count = count + 1 return count, {version} end\nreturn M\n"
        )
    };
    write(&w.dir.path("counter.lua"), &counter(1));
    w.with_game_searcher("counter = require 'counter'; counter.bump(); counter.bump()");
    write(&w.dir.path("counter.lua"), &counter(2));
    let report = w.poll(WAIT).expect("a reload").unwrap();
    assert_eq!(report.locals_joined, 1, "{report:?}");
    let (count, version): (i64, i64) = w.lua.load("return counter.bump()").eval().unwrap();
    assert_eq!((count, version), (3, 2));
}

/// As LÖVE's `main.lua`: loaded by a host's searcher under a relative chunk name, returning
/// nothing, its functions set into a global table. No function of the module's value names its
/// file, so the watcher finds it again as `require` does (through the host's searcher) and the
/// new version pairs with the live functions.
#[test]
fn a_module_returning_nothing_a_host_searcher_loaded_keeps_its_locals_when_saved() {
    let w = Watched::new("relative-main", &module(1));
    let game = |version: i64| {
        format!(
            "local count = 0\n\
             function game.bump() count = count + 1 return count, {version} end\n"
        )
    };
    write(&w.dir.path("main.lua"), &game(1));
    w.with_game_searcher("game = {}; require 'main'; game.bump(); game.bump()");
    write(&w.dir.path("main.lua"), &game(2));
    let report = w.poll(WAIT).expect("a reload").unwrap();
    assert_eq!(report.locals_joined, 1, "{report:?}");
    let (count, version): (i64, i64) = w.lua.load("return game.bump()").eval().unwrap();
    assert_eq!((count, version), (3, 2));
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
fn configmap_swap_is_reported_with_the_new_content() {
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
        // Nothing under the hidden folders but the current version.
        assert!(
            changed.iter().all(|path| path.starts_with(
                dir.path(fs::read_link(dir.path("..data")).unwrap().to_str().unwrap())
            )),
            "{changed:?}"
        );
        // Later events (the old folder's removal) may name the files again; the reload is
        // once all the same (`configmap_swap_reloads_the_module_once`).
        let _ = watcher.changed_files(AFTER);
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

#[test]
fn a_module_re_exporting_another_ones_functions_is_not_reloaded_from_that_file() {
    let w = Watched::new("re-export", &module(1));
    write(&w.dir.path("api.lua"), "return { v = require('m').v }");
    w.lua.load("api = require 'api'").exec().unwrap();
    w.save(&module(2));
    let report = w.poll(WAIT).expect("a reload").unwrap();
    let names: Vec<&str> = report.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["m"]);
    assert_eq!(w.lua.load("return api.v()").eval::<i64>().unwrap(), 2);
}

#[test]
fn saves_reload_again_after_the_watched_folder_is_removed_and_created_again() {
    let w = Watched::new("recreated-reload", &module(1));
    fs::remove_dir_all(&w.dir.0).unwrap();
    assert!(w.poll(AFTER).is_none());
    fs::create_dir(&w.dir.0).unwrap();
    assert!(w.poll(AFTER).is_none());
    w.save(&module(2));
    assert!(w.poll(WAIT).expect("a reload").is_ok());
    assert_eq!(w.version(), 2);
}
