//! `hotlua run --watch DIR --json`: every line a reload prints is JSON, failures included.

mod common;

use common::{scenario, TempDir};

/// Saves a broken `mod.lua`, lets the watcher fail on it, then saves a fixed one.
const SCRIPT: &str = "\
local m = require 'mod'
write('local M = {}\\nfunction M.f( return 2 end\\nreturn M\\n', 'mod')
for _ = 1, 20 do hotlua.sleep(0.05) end
write('local M = {}\\nfunction M.f() return 2 end\\nreturn M\\n', 'mod')
for _ = 1, 100 do
  hotlua.sleep(0.05)
  if m.f() == 2 then break end
end
print(m.f())
";

#[test]
fn failed_and_successful_reloads_both_print_json() {
    let dir = TempDir::new("watchjson");
    dir.write(
        "mod.lua",
        "local M = {}\nfunction M.f() return 1 end\nreturn M\n",
    );
    dir.write("script.lua", &scenario(SCRIPT));
    let run = dir.hotlua(&["run", "--watch", ".", "--json", "script.lua"]);
    let (stdout, stderr) = (run.stdout, run.stderr);
    assert_eq!((run.code, &*stdout), (Some(0), "2\n"), "{stderr}");
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
