//! Out of memory under `ulimit -v`: `hotlua run` answers "not enough memory" like `lua5.4`,
//! in the program and in a reload's new top level, and never aborts.

mod common;

use common::{expect, scenario, Run, TempDir, HOTLUA};

/// Runs `hotlua run script.lua` in a fresh folder holding `script`, under a 400 MB address
/// space.
fn run_limited(test: &str, script: &str) -> Run {
    let dir = TempDir::new(test);
    dir.write("script.lua", script);
    let output = dir
        .command("sh")
        .args([
            "-c",
            "ulimit -v 400000 && exec \"$0\" run script.lua",
            HOTLUA,
        ])
        .output()
        .unwrap();
    Run::from(output)
}

#[test]
fn filling_memory_is_a_lua_error_not_an_abort() {
    let run = run_limited(
        "oom",
        "print(pcall(function() local t = {} for i = 1, 1e10 do t[i] = i end end))\n\
         print('still running')\n",
    );
    assert_eq!(
        run,
        expect(0, "false\tnot enough memory\nstill running\n", "")
    );
}

/// Small tables fill the heap to the brim: when `pcall` returns, the heap is full of garbage
/// that Lua frees only when its own next allocation fails. hotlua's Rust allocations in
/// between (its reload's bookkeeping) must not abort the process meanwhile.
#[test]
fn a_heap_full_of_small_garbage_tables_is_survived_like_lua54() {
    let script = "print(pcall(function() local t = {} for i = 1, 1e9 do t[i] = { i } end end))\n\
                  package.path = './?.lua'\n\
                  local file = assert(io.open('m.lua', 'w'))\n\
                  file:write('return { v = 1 }')\n\
                  file:close()\n\
                  local m = require 'm'\n\
                  local report, message = require('hotlua').reload('m')\n\
                  print(report and report.applied, message, m.v)\n";
    let run = run_limited("oomsmall", script);
    assert_eq!(
        run,
        expect(0, "false\tnot enough memory\ntrue\tnil\t1\n", "")
    );
}

/// The same fill in a new top level without a time limit: the reload fails and the program
/// goes on, with the garbage of the failed top level collected.
#[test]
fn a_top_level_filling_the_heap_with_small_tables_fails_the_reload_only() {
    let run = run_limited(
        "oomsmallreload",
        &scenario(
            r#"write "return { v = 1 }"
local m = require "m"
write "local t = {} for i = 1, 1e9 do t[i] = { i } end return { v = 2 }"
for _ = 1, 3 do
  local report, message = hotlua.reload("m", { timeout = math.huge })
  print(report, message)
end
local after = {} for i = 1, 1e5 do after[i] = { i } end
print(m.v, #after)
"#,
        ),
    );
    let failed = "nil\tmodule 'm' (./m.lua) raised an error in its top level: not enough memory\n";
    assert_eq!(
        run,
        expect(0, &format!("{failed}{failed}{failed}1\t100000\n"), "")
    );
}

#[test]
fn reload_whose_top_level_fills_memory_fails_and_changes_nothing() {
    let run = run_limited(
        "oomreload",
        &scenario(
            r#"write "local M = {} function M.v() return 1 end return M"
local m = require "m"
write "local M = {} local t = {} for i = 1, 1e10 do t[i] = i end function M.v() return 2 end return M"
local report, message = hotlua.reload("m")
print(report, message)
print(m.v())
"#,
        ),
    );
    assert_eq!(
        run,
        expect(
            0,
            "nil\tmodule 'm' (./m.lua) raised an error in its top level: not enough memory\n1\n",
            ""
        )
    );
}

/// Memory filled to the brim, then freed 64 KiB at a time, with a reload attempted
/// after each step: every attempt either reloads or fails with the program unchanged, and the
/// process never aborts, whichever allocation (Lua's or hotlua's own) is the one refused.
/// How many attempts fail depends on the process's layout: the first of hotlua's own
/// allocations the system refuses frees its reserve ([`hotlua::Reserve`]), which can give the
/// very first attempt room enough.
#[test]
fn reloads_while_memory_runs_out_fail_cleanly_until_one_succeeds() {
    let run = run_limited(
        "oombrim",
        r#"
package.path = "./?.lua"
local hotlua = require "hotlua"
local function write(version)
  local lines = { "local M = {}", "local count = 0" }
  for i = 1, 1000 do
    lines[#lines + 1] = ("function M.f%d() count = count + 1; return '%s', %d end"):format(i, version, i)
  end
  lines[#lines + 1] = "return M"
  local file = assert(io.open("m.lua", "w"))
  file:write(table.concat(lines, "\n"))
  file:close()
end
write "v1"
local m = require "m"
held = {}
for i = 1, 1000 do held[i] = m["f" .. i] end
write "v2"

local ballast = {}
pcall(function()
  while true do ballast[#ballast + 1] = string.rep("x", 65536) .. #ballast end
end)
while #ballast > 0 do
  ballast[#ballast] = nil
  collectgarbage()
  local report, message = hotlua.reload("m")
  if report then break end
  assert(message:find("'m'"), message)
  assert(m.f1() == "v1" and held[1000] == m.f1000, "changed by a failed reload: " .. message)
end
ballast = nil
collectgarbage()
local same = 0
for i = 1, 1000 do if held[i] == m["f" .. i] then same = same + 1 end end
print(m.f1(), same)
"#,
    );
    assert_eq!(run, expect(0, "v2\t1000\n", ""));
}
