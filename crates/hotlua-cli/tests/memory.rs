//! Out of memory under `ulimit -v`: `hotlua run` answers "not enough memory" like `lua5.4`,
//! in the program and in a reload's new top level, and never aborts.

use std::process::Command;

const HOTLUA: &str = env!("CARGO_BIN_EXE_hotlua");

/// Runs `hotlua run script.lua` in a fresh folder holding `script`, under a 400 MB address
/// space; returns the exit code, stdout and stderr.
fn run_limited(test: &str, script: &str) -> (Option<i32>, String, String) {
    let dir = std::env::temp_dir().join(format!("hotlua-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("script.lua"), script).unwrap();
    let output = Command::new("sh")
        .args([
            "-c",
            "ulimit -v 400000 && exec \"$0\" run script.lua",
            HOTLUA,
        ])
        .current_dir(&dir)
        .env_remove("LUA_INIT")
        .env_remove("LUA_INIT_5_4")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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
        (
            Some(0),
            "false\tnot enough memory\nstill running\n".into(),
            String::new()
        )
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
        (
            Some(0),
            "nil\tmodule 'm' (./m.lua) raised an error in its top level: not enough memory\n1\n"
                .into(),
            String::new()
        ),
        "{run:?}"
    );
}
