//! `hotlua run --watch`: the watcher follows the file each module was loaded from (after a
//! change of directory, through a host's own searcher), says when it is gone, and keeps what
//! waits for a poll bounded by the number of files.

mod common;

use common::TempDir;

const V1: &str = "local M = {}\nfunction M.v() return 1 end\nreturn M\n";

/// Lua that saves `V2`-like source (`v() == 2`) to `file` and sleeps until `module.v() == 2`.
fn save_and_wait(module: &str, file: &str) -> String {
    format!(
        "do
  local file = assert(io.open('{file}', 'w'))
  file:write('local M = {{}}\\nfunction M.v() return 2 end\\nreturn M\\n')
  file:close()
end
for _ = 1, 200 do
  hotlua.sleep(0.05)
  if {module}.v() == 2 then break end
end
print({module}.v())
"
    )
}

/// True when Lua's `lfs` loads in `hotlua`; otherwise one line says the test is skipped, or,
/// with `CI` set (where `.ci/run` installs it), the test fails.
fn lfs_installed(dir: &TempDir) -> bool {
    if dir.hotlua(&["-e", "require 'lfs'"]).code == Some(0) {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "lua-filesystem (Lua's lfs) is not installed, and CI is set: apt-get install lua-filesystem"
    );
    eprintln!(
        "skipped: lua-filesystem (Lua's lfs) is not installed (apt-get install lua-filesystem)"
    );
    false
}

#[test]
fn an_edit_after_a_change_of_directory_reloads_a_module_loaded_through_dot_path() {
    let dir = TempDir::new("chdir");
    if !lfs_installed(&dir) {
        return;
    }
    dir.write("m.lua", V1);
    dir.write(
        "script.lua",
        &format!(
            "local hotlua = require 'hotlua'
local lfs = require 'lfs'
package.path = './?.lua'
m = require 'm'
assert(lfs.mkdir('elsewhere'))
assert(lfs.chdir('elsewhere'))
{}",
            save_and_wait("m", "../m.lua")
        ),
    );
    let run = dir.hotlua(&["run", "--watch", ".", "script.lua"]);
    assert_eq!((run.code, &*run.stdout), (Some(0), "2\n"), "{}", run.stderr);
    assert!(run.stderr.starts_with("reloaded m in"), "{}", run.stderr);
}

#[test]
fn a_module_a_host_searcher_loaded_under_a_relative_chunk_name_is_reloaded() {
    // As LÖVE's searcher: reads `rules.lua` itself and names the chunk `@rules.lua`; nothing
    // on `package.path` leads to the file.
    let dir = TempDir::new("host-searcher");
    dir.write("rules.lua", V1);
    dir.write(
        "script.lua",
        &format!(
            "package.path = ''
table.insert(package.searchers, 2, function(name)
  local file = io.open(name .. '.lua')
  if not file then return '\\n\\tno file ' .. name .. '.lua' end
  local text = file:read('a')
  file:close()
  return assert(load(text, '@' .. name .. '.lua'))
end)
hotlua = require 'hotlua'
rules = require 'rules'
{}",
            save_and_wait("rules", "rules.lua")
        ),
    );
    let run = dir.hotlua(&["run", "--watch", ".", "script.lua"]);
    assert_eq!((run.code, &*run.stdout), (Some(0), "2\n"), "{}", run.stderr);
    assert!(
        run.stderr.starts_with("reloaded rules in"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_module_whose_file_is_gone_gets_one_line_and_is_followed_when_it_is_back() {
    let dir = TempDir::new("gone");
    dir.write("m.lua", V1);
    dir.write(
        "script.lua",
        &format!(
            "hotlua = require 'hotlua'
m = require 'm'
assert(os.remove('m.lua'))
for _ = 1, 20 do hotlua.sleep(0.05) end
local file = assert(io.open('other.lua', 'w'))
file:write('return 1')
file:close()
for _ = 1, 10 do hotlua.sleep(0.05) end
{}",
            save_and_wait("m", "m.lua")
        ),
    );
    let run = dir.hotlua(&["run", "--watch", ".", "script.lua"]);
    assert_eq!((run.code, &*run.stdout), (Some(0), "2\n"), "{}", run.stderr);
    let gone = format!(
        "hotlua: module 'm' was loaded from {}, which is gone; it is reloaded when a file is \
         saved there again",
        std::fs::canonicalize(&dir.0)
            .unwrap()
            .join("m.lua")
            .display()
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    assert_eq!(lines[0], gone);
    assert!(lines[1].starts_with("reloaded m in"), "{}", run.stderr);
}

/// 40,000 saves of 2,000 files no module was loaded from, while the program does not poll: what
/// waits for the next poll is one entry per file, not one per save.
#[test]
fn saves_waiting_for_a_poll_take_memory_by_file_not_by_save() {
    let dir = TempDir::new("pending");
    dir.write(
        "script.lua",
        "hotlua = require 'hotlua'
local function rss_kb()
  collectgarbage() collectgarbage()
  for line in io.lines('/proc/self/status') do
    local kb = line:match('^VmRSS:%s*(%d+)')
    if kb then return tonumber(kb) end
  end
end
local function save_all(round)
  for i = 1, 2000 do
    local file = assert(io.open('data/f' .. i .. '.lua', 'w'))
    file:write('return ', round)
    file:close()
  end
end
assert(os.execute('mkdir data'))
save_all(0)
assert(os.execute('sleep 0.5'))
hotlua.poll()
local before = rss_kb()
for round = 1, 20 do save_all(round) end
-- Not a poll: the watcher's thread takes every event meanwhile.
assert(os.execute('sleep 1'))
print(rss_kb() - before)
assert(hotlua.poll() == nil)
",
    );
    let run = dir.hotlua(&["run", "--watch", ".", "script.lua"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let grown_kb: i64 = run.stdout.trim().parse().expect("a number of KiB");
    // Before, every event waited for the poll: RSS grew by 50 MB for 80,000 saves. One entry
    // per file: about 1 MB.
    assert!(grown_kb < 8 * 1024, "RSS grew by {grown_kb} KiB");
}
