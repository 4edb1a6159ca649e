//! Out of memory under `ulimit -v`: `hotlua run` answers "not enough memory" like `lua5.4`,
//! in the program and in a reload's new top level, and never aborts.

mod common;

use common::{expect, Run, TempDir, HOTLUA};

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

#[test]
fn reload_whose_top_level_fills_memory_fails_and_changes_nothing() {
    let run = run_limited(
        "oomreload",
        r#"
package.path = "./?.lua"
local hotlua = require "hotlua"
local function write(source)
  local file = assert(io.open("m.lua", "w"))
  file:write(source)
  file:close()
end
write "local M = {} function M.v() return 1 end return M"
local m = require "m"
write "local M = {} local t = {} for i = 1, 1e10 do t[i] = i end function M.v() return 2 end return M"
local report, message = hotlua.reload("m")
print(report, message)
print(m.v())
"#,
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
