//! `hotlua run --watch DIR --json`: every line a reload prints is JSON, failures included.

use std::process::Command;

const HOTLUA: &str = env!("CARGO_BIN_EXE_hotlua");

/// Saves a broken `mod.lua`, lets the watcher fail on it, then saves a fixed one.
const SCRIPT: &str = "\
local hotlua = require 'hotlua'
local m = require 'mod'
local function save(source)
  local file = assert(io.open('mod.lua', 'w'))
  file:write(source)
  file:close()
end
save('local M = {}\\nfunction M.f( return 2 end\\nreturn M\\n')
for _ = 1, 20 do hotlua.sleep(0.05) end
save('local M = {}\\nfunction M.f() return 2 end\\nreturn M\\n')
for _ = 1, 100 do
  hotlua.sleep(0.05)
  if m.f() == 2 then break end
end
print(m.f())
";

#[test]
fn failed_and_successful_reloads_both_print_json() {
    let dir = std::env::temp_dir().join(format!("hotlua-cli-watchjson-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mod.lua"),
        "local M = {}\nfunction M.f() return 1 end\nreturn M\n",
    )
    .unwrap();
    std::fs::write(dir.join("script.lua"), SCRIPT).unwrap();
    let output = Command::new(HOTLUA)
        .args(["run", "--watch", ".", "--json", "script.lua"])
        .current_dir(&dir)
        .env_remove("LUA_INIT")
        .env_remove("LUA_INIT_5_4")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        (output.status.code(), &*stdout),
        (Some(0), "2\n"),
        "{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    for line in &lines {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not JSON: {line}"
        );
    }
    let failure = lines[0];
    assert!(
        failure.starts_with(r#"{"ok":false,"modules":["mod"],"#),
        "{failure}"
    );
    assert!(
        failure.contains(r#""file":"./mod.lua","line":2}"#),
        "{failure}"
    );
    assert!(lines[1].contains(r#""mod""#), "{}", lines[1]);
}
