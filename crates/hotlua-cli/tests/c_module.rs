//! The C module (crates/hotlua-module) in the real interpreters: `require "hotlua"` from
//! `lua5.4` and `luajit`, found through `LUA_CPATH`, reloads a module end to end.
//!
//! Each test builds the module with `scripts/build-module` (once per Lua version per test
//! binary) and skips when its interpreter is not installed (`common::system`).

mod common;

use std::path::Path;
use std::process::Command;

use common::module_host::{build_lua_host, build_module, run_in_host};
use common::system::{self, missing};
use common::{scenario, TempDir};

/// Writes v1 of module `m`, keeps state in it, writes v2, reloads, then tries a broken v3.
/// Plain Lua 5.1 so that every interpreter runs it.
const RELOAD: &str = r#"

write [[
local M = { limit = 10 }
local count = 0
function M.bump() count = count + 1; return "v1 " .. count end
M.Point = {}
M.Point.__index = M.Point
function M.Point.new(x) return setmetatable({ x = x }, M.Point) end
function M.Point:describe() return "v1 point " .. self.x end
function M.greet() return "hello v1" end
return M
]]
local m = require "m"
m.bump(); m.bump()                        -- a local counter, now 2
m.limit = 99                              -- a field changed at run time
m.extra = "runtime"                       -- a field only the program set
local point = m.Point.new(7)              -- an instance with the module's metatable
local callbacks = { on_tick = m.greet }   -- a callback stored outside the module

write [[
local M = { limit = 20 }
local count = 0
function M.bump() count = count + 1; return "v2 " .. count end
M.Point = {}
M.Point.__index = M.Point
function M.Point.new(x) return setmetatable({ x = x }, M.Point) end
function M.Point:describe() return "v2 point " .. self.x end
function M.greet() return "hello v2" end
return M
]]
local report, message = hotlua.reload("m")
assert(type(report) == "table", message)
assert(report.applied == true, "report.applied")
assert(hotlua.reloading == false, "reloading outside a reload")
assert(require("m") == m, "same module table")
local function expect(got, want)
  assert(got == want, ("expected %s, got %s"):format(tostring(want), tostring(got)))
end
expect(m.bump(), "v2 3")
expect(m.limit, 99)
expect(m.extra, "runtime")
expect(point:describe(), "v2 point 7")
expect(callbacks.on_tick(), "hello v2")

write [[
local M = {}
function M.greet() return "hello v3" end
local x = = 1
return M
]]
report, message = hotlua.reload("m")
expect(report, nil)
assert(message:find("module 'm'", 1, true), message)
assert(message:find("./m.lua:3:", 1, true), message)
expect(m.bump(), "v2 4")
expect(callbacks.on_tick(), "hello v2")
print("reload ok")
"#;

/// `hotlua.watch(".")` then `hotlua.sleep` until the edited file is reloaded.
const WATCH: &str = r#"

write "local M = {} function M.version() return 1 end return M"
local m = require "m"
hotlua.watch(".")
write "local M = {} function M.version() return 2 end return M"
local deadline = hotlua.now() + 10
while m.version() ~= 2 and hotlua.now() < deadline do
  hotlua.sleep(0.05)
end
assert(m.version() == 2, "the watcher did not reload m within 10 s")
print("watch ok")
"#;

/// A LÖVE-style `main` and a Neovim-style plugin: callbacks defined into host tables
/// (`function love.update`, `vim.notify = …`, `function string.trim`) reload; a failed reload
/// leaves the host tables as they were.
const HOST_TABLES: &str = r#"
love, vim = { graphics = {} }, { api = {} }
local function version(word)
  return "local frames = 0\n" ..
    "function love.update(dt) frames = frames + 1 return '" .. word .. "', frames end\n" ..
    "vim.notify = function(message) return '" .. word .. " ' .. message end\n" ..
    "function string.trim(s) return '" .. word .. ":' .. s:match('^%s*(.-)%s*$') end\n"
end
write(version("v1"), "game")
require "game"
local update = love.update
love.update(0); love.update(0)
write(version("v2"), "game")
local report, message = hotlua.reload("game")
assert(report, message)
local word, frames = update(0)
assert(word == "v2" and frames == 3, ("stored callback: %s %s"):format(word, frames))
assert(vim.notify("hi") == "v2 hi", vim.notify("hi"))
assert(("  x "):trim() == "v2:x", ("  x "):trim())
write(version("v3") .. "love.extra = true\nerror('boom')", "game")
report, message = hotlua.reload("game")
assert(report == nil and message:find("boom", 1, true), message)
assert(love.extra == nil and love.update(0) == "v2" and vim.notify("a") == "v2 a", "changed")
write("return { upper = function() return 'hijacked' end }", "string")
report, message = hotlua.reload("string")
assert(report == nil and message:find("C functions", 1, true), message)
assert(string.upper("a") == "A", "string.upper was replaced")
print("host tables ok")
"#;

/// LuaJIT with the JIT on: a function another module caches in a local runs its new code in
/// a loop compiled before the reload.
const JIT_TRACES: &str = r#"
write("local M = {} function M.weight(x) return 1 end return M", "util")
write("local w = require('util').weight local M = {} " ..
  "function M.run(n) local s = 0 for i = 1, n do s = s + w(i) end return s end return M",
  "consumer")
local consumer = require "consumer"
assert(jit and jit.status(), "the JIT is off")
for _ = 1, 20 do consumer.run(1000) end
assert(consumer.run(100000) == 100000)
write("local M = {} function M.weight(x) return 2 end return M", "util")
local report, message = hotlua.reload("util")
assert(report, message)
local sum = consumer.run(100000)
assert(sum == 200000, "compiled code ran the old weight: " .. sum)
print("jit ok")
"#;

/// A program that redefines the globals hotlua's own code could call, and changes the
/// upvalues of hotlua's functions: reloads still work and nothing crashes.
const HOSTILE_PROGRAM: &str = r#"
write "local M = {} function M.f() return 1 end return M"
local m = require "m"
write "local M = {} function M.f() return 2 end return M"
local real_pcall, setupvalue = pcall, debug.setupvalue
select = function() return 0 end
error = function() end
type = function() return "nil" end
xpcall = function() return false, "no" end
unpack = function() end
if table.unpack then table.unpack = function() end end
local report, message = hotlua.reload("m")
assert(report and report.applied, message)
assert(m.f() == 2, "old code")
local ok, raised = real_pcall(hotlua.reload)
assert(not ok and raised:find("bad argument #1 to 'reload'", 1, true), raised)
for _, f in ipairs({ hotlua.now, hotlua.poll, hotlua.sleep, hotlua.reload, hotlua.watch }) do
  for i = 1, 3 do setupvalue(f, i, 0) end
end
hotlua.now(); hotlua.poll(); hotlua.sleep(0)
assert(hotlua.reload("m").applied)
print("hostile ok")
"#;

#[test]
fn lua54_hostile_program() {
    run_scenario("lua54", "lua5.4", &scenario(HOSTILE_PROGRAM), "hostile ok");
}

#[test]
fn luajit_hostile_program() {
    run_scenario("luajit", "luajit", &scenario(HOSTILE_PROGRAM), "hostile ok");
}

/// A new top level that fills the heap with small tables, under `ulimit -v`: the reload fails
/// and the program goes on (hotlua's own allocations take from its reserve meanwhile).
const FILLS_MEMORY: &str = r#"
write "return { v = 1 }"
local m = require "m"
write "local t = {} for i = 1, 1e9 do t[i] = { i } end return { v = 2 }"
for _ = 1, 3 do
  local report, message = hotlua.reload("m", { timeout = math.huge })
  assert(report == nil and message:find("not enough memory", 1, true), message)
end
local after = {} for i = 1, 1e5 do after[i] = { i } end
assert(m.v == 1 and #after == 100000)
print("memory ok")
"#;

#[test]
fn lua54_top_level_filling_memory_fails_the_reload_only() {
    if Command::new("lua5.4").arg("-v").output().is_err() {
        eprintln!("skipped: `lua5.4` is not installed (Debian: apt-get install lua5.4)");
        return;
    }
    let module = build_module("lua54");
    let dir = TempDir::new("c-module-memory");
    std::fs::write(dir.0.join("main.lua"), scenario(FILLS_MEMORY)).unwrap();
    let output = dir
        .command("sh")
        .args(["-c", "ulimit -v 1500000 && exec lua5.4 main.lua"])
        .env(
            "LUA_CPATH",
            format!("{}/?.so", module.parent().unwrap().display()),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("memory ok"),
        "lua5.4 failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn luajit_compiled_loops_run_new_code() {
    run_scenario("luajit", "luajit", &scenario(JIT_TRACES), "jit ok");
}

#[test]
fn luajit_host_tables_reload() {
    run_scenario("luajit", "luajit", &scenario(HOST_TABLES), "host tables ok");
}

#[test]
fn lua54_host_tables_reload() {
    run_scenario("lua54", "lua5.4", &scenario(HOST_TABLES), "host tables ok");
}

/// Lua 5.5 has no distribution package: its host is built from the vendored sources.
#[test]
fn lua55_reload_keeps_state() {
    run_lua55_scenario(&scenario(RELOAD), "reload ok");
}

#[test]
fn lua55_watch_reloads_changed_files() {
    run_lua55_scenario(&scenario(WATCH), "watch ok");
}

/// A script that expects `require "hotlua"` to fail with a message containing `expected`.
fn refusal(expected: &str) -> String {
    format!(
        "local ok, message = pcall(require, 'hotlua')\n\
         assert(not ok, 'hotlua loaded')\n\
         message = tostring(message)\n\
         assert(message:find({expected:?}, 1, true), message)\n\
         print('refused')\n"
    )
}

/// LuaJIT also says `_VERSION` "Lua 5.1" and has every symbol the Lua 5.1 build calls: that
/// build would load and silently copy locals the LuaJIT build joins, so it refuses.
#[test]
fn lua51_build_refuses_luajit() {
    let script = refusal(
        "this hotlua.so is built for Lua 5.1 but runs in LuaJIT, where it would copy a \
         module's locals on each reload instead of sharing them: build it for LuaJIT \
         (scripts/build-module luajit",
    );
    run_scenario("lua51", "luajit", &script, "refused");
}

/// Lua 5.5 exports every symbol the Lua 5.4 build calls, which would then read 5.5's state
/// with 5.4's layout and crash the host (skynet master): it refuses, naming the build to make.
#[test]
fn lua54_build_refuses_lua55() {
    if missing(&[system::C_COMPILER]) {
        return;
    }
    let script = refusal(
        "this hotlua.so is built for Lua 5.4 but runs in Lua 5.5, whose data it would read \
         with the wrong layout: build it for Lua 5.5 (scripts/build-module lua55",
    );
    run_in_host("lua54", &build_lua_host(&["lua55"]), &script, "refused");
}

/// Every build in every other interpreter: `require` fails with an error (the refusal above,
/// or the dynamic linker's `undefined symbol` where the host lacks a function the build
/// calls), and the host goes on. Never a crash.
#[test]
fn every_build_refuses_every_other_lua() {
    let stock = [
        ("lua51", "lua5.1"),
        ("lua52", "lua5.2"),
        ("lua53", "lua5.3"),
        ("lua54", "lua5.4"),
        ("luajit", "luajit"),
    ];
    let mut hosts: Vec<(&str, String)> = stock
        .into_iter()
        .filter(|(_, program)| !missing(&[system::interpreter(program)]))
        .map(|(version, program)| (version, program.to_owned()))
        .collect();
    if !missing(&[system::C_COMPILER]) {
        hosts.push(("lua55", build_lua_host(&["lua55"])));
    }
    let script = "local ok, message = pcall(require, 'hotlua')\n\
                  assert(not ok, 'hotlua loaded')\n\
                  message = tostring(message)\n\
                  assert(message:find('build it for', 1, true) \
                    or message:find('undefined symbol', 1, true), message)\n\
                  print('refused')\n";
    for (version, _) in &hosts {
        for (other, host) in &hosts {
            if version != other {
                run_in_host(version, host, script, "refused");
            }
        }
    }
}

/// The reverse of `lua51_build_refuses_luajit`: Lua 5.1 cannot load the LuaJIT build, which
/// calls `luaJIT_setmode`.
#[test]
fn luajit_build_refuses_lua51() {
    let script = refusal("undefined symbol: lua");
    run_scenario("luajit", "lua5.1", &script, "refused");
}

/// Runs `script` in a minimal host linked with Lua 5.5, built with the C compiler.
fn run_lua55_scenario(script: &str, expected: &str) {
    if missing(&[system::C_COMPILER]) {
        return;
    }
    run_in_host("lua55", &build_lua_host(&["lua55"]), script, expected);
}

/// skynet's way of running Lua, with its Lua (5.5): 4 threads each keep 50 states open at
/// once (200, past the 128 inotify instances a user has by default), each watching the same
/// folder, and close them, three times over (600 states). They share one watcher: one inotify
/// instance at most, none after the last close; and hotlua.so never asks for aligned memory,
/// which skynet's jemalloc hook hands back wrong (heap corruption). `.ci/run` runs the same
/// host under valgrind.
#[test]
fn lua55_many_states_on_threads_share_one_watcher() {
    if missing(&[system::C_COMPILER]) {
        return;
    }
    let module = build_module("lua55");
    let host = build_lua_host(&["lua55", "many_states"]);
    let dir = TempDir::new("c-module-many-states");
    std::fs::write(dir.0.join("m.lua"), "return { version = 1 }\n").unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c_host/many_states.lua");
    let output = dir
        .command(&host)
        .arg(&script)
        .args(["4", "3", "50"])
        .env("WATCH_DIR", &dir.0)
        .env(
            "LUA_CPATH",
            format!("{}/?.so", module.parent().unwrap().display()),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{host} failed ({})\n{stdout}\n{stderr}",
        output.status
    );
    for line in [
        "states: 600",
        "aligned allocations by hotlua.so: 0",
        "most inotify instances at once: 1",
        "inotify instances after the last close: 0",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}\n{stderr}");
    }
}

#[test]
fn lua54_reload_keeps_state() {
    run_scenario("lua54", "lua5.4", &scenario(RELOAD), "reload ok");
}

#[test]
fn lua54_watch_reloads_changed_files() {
    run_scenario("lua54", "lua5.4", &scenario(WATCH), "watch ok");
}

#[test]
fn luajit_reload_keeps_state() {
    run_scenario("luajit", "luajit", &scenario(RELOAD), "reload ok");
}

#[test]
fn luajit_watch_reloads_changed_files() {
    run_scenario("luajit", "luajit", &scenario(WATCH), "watch ok");
}

#[test]
fn lua53_reload_keeps_state() {
    run_scenario("lua53", "lua5.3", &scenario(RELOAD), "reload ok");
}

#[test]
fn lua53_watch_reloads_changed_files() {
    run_scenario("lua53", "lua5.3", &scenario(WATCH), "watch ok");
}

#[test]
fn lua52_reload_keeps_state() {
    run_scenario("lua52", "lua5.2", &scenario(RELOAD), "reload ok");
}

#[test]
fn lua51_reload_keeps_state() {
    run_scenario("lua51", "lua5.1", &scenario(RELOAD), "reload ok");
}

/// Runs `script` with the stock interpreter `interpreter`, when it is installed.
fn run_scenario(version: &str, interpreter: &'static str, script: &str, expected: &str) {
    if missing(&[system::interpreter(interpreter)]) {
        return;
    }
    run_in_host(version, interpreter, script, expected);
}
