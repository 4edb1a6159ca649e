//! Engine `inplace` through the C module in stock interpreters (issue 19): closures the program
//! made at run time take the new code, where the module proves that the interpreter lays its
//! objects out as the Lua 5.4 or LuaJIT it was built against; elsewhere `walk` runs, said once.

mod common;

use common::module_host::{build_lua_host, run_in_host};
use common::scenario;
use common::system::{self, missing};

/// A closure made at run time, a module function held by the program, and a coroutine
/// suspended inside the old version, across one reload. `INPLACE` (set before) says which
/// engine the scenario expects to have run.
const RUNTIME_CLOSURES: &str = r#"
local function expect(got, want)
  assert(got == want, ("expected %s, got %s"):format(tostring(want), tostring(got)))
end
write [[
local M = {}
local hits = 0
function M.make(n) return function() hits = hits + 1; return "v1 " .. n .. " " .. hits end end
function M.greet() return "hello v1" end
function M.work() coroutine.yield("v1 before"); return "v1 after " .. M.greet() end
return M
]]
local m = require "m"
local made = m.make(7)
expect(made(), "v1 7 1")
local greet = m.greet
local work = coroutine.wrap(m.work)
expect(work(), "v1 before")

write [[
local M = {}
local hits = 0
function M.make(n) return function() hits = hits + 1; return "v2 " .. n .. " " .. hits end end
function M.greet() return "hello v2" end
function M.work() coroutine.yield("v2 before"); return "v2 after " .. M.greet() end
return M
]]
local report, message = hotlua.reload("m")
assert(type(report) == "table", message)
-- the suspended frame finishes in the old code; what it calls is new
expect(work(), "v1 after hello v2")
expect(m.greet(), "hello v2")
expect(greet(), "hello v2")
if INPLACE then
  expect(report.engine, "inplace")
  expect(made(), "v2 7 2")
  expect(greet, m.greet)
  assert(report.closures_upgraded >= 1, "closures_upgraded")
else
  expect(report.engine, "walk")
  expect(made(), "v1 7 2")
  local said = table.concat(report.warnings, "\n")
  assert(said:find("engine inplace is not available for this Lua build", 1, true), said)
end
print("runtime closures ok")
"#;

fn runtime_closures(inplace: bool) -> String {
    format!("INPLACE = {inplace}\n{}", scenario(RUNTIME_CLOSURES))
}

/// Runs the scenario in the stock `interpreter` with the module built for `version`: the
/// layout is proven, and a closure the program made before the reload runs the new code.
fn runtime_closures_take_the_new_code(version: &str, interpreter: &'static str) {
    if missing(&[system::interpreter(interpreter)]) {
        return;
    }
    let output = run_in_host(
        version,
        interpreter,
        &runtime_closures(true),
        "runtime closures ok",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("not available"), "{stderr}");
}

/// Debian's `lua5.4` (5.4.4; the module is built against 5.4.9's headers).
#[test]
fn lua54_runtime_closures_take_the_new_code() {
    runtime_closures_take_the_new_code("lua54", "lua5.4");
}

/// Debian's `luajit` (upstream 2.1 of 2022; the module is built against OpenResty's luajit2,
/// whose header opcodes are numbered differently).
#[test]
fn luajit_runtime_closures_take_the_new_code() {
    runtime_closures_take_the_new_code("luajit", "luajit");
}

/// A Lua 5.4 whose prototypes have one field more than the module was built for: the proof
/// fails before the shim reads one, `walk` runs (the module functions still switch), and
/// stderr says so exactly once, naming what differed.
#[test]
fn lua54_with_another_layout_falls_back_to_walk_and_says_so_once() {
    if missing(&[system::C_COMPILER]) {
        return;
    }
    let host = build_lua_host(&["lua54-moved"]);
    let script = format!(
        "{}\nassert(hotlua.reload('m'))\nprint('second reload ok')\n",
        runtime_closures(false)
    );
    let output = run_in_host("lua54", &host, &script, "second reload ok");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = "hotlua: engine inplace is not available for this Lua build (its layout \
                differs from Lua 5.4.";
    assert_eq!(stderr.matches(said).count(), 1, "{stderr}");
    assert!(
        stderr.contains("'s in the sizes and lines of a prototype); using walk"),
        "{stderr}"
    );
}

/// LuaJIT built without GC64 (32-bit references): the module, built for GC64, refuses it at
/// the first function it reads, and `walk` runs.
#[test]
fn luajit_without_gc64_falls_back_to_walk_and_says_so_once() {
    if missing(&[system::C_COMPILER, system::MAKE]) {
        return;
    }
    let host = build_lua_host(&["luajit-nogc64"]);
    let output = run_in_host(
        "luajit",
        &host,
        &runtime_closures(false),
        "runtime closures ok",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = "hotlua: engine inplace is not available for this Lua build (its layout differs \
                from the GC64 LuaJIT 2.1 hotlua was built for in the header of a function); \
                using walk";
    assert_eq!(stderr.matches(said).count(), 1, "{stderr}");
}
