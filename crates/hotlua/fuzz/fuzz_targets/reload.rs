//! Bytes → two module files: before the first NUL byte is version 1 (empty: a fixed
//! version 1), after it version 2. Requires version 1 (inputs whose version 1 does not load
//! are skipped), reloads version 2, and checks that the process survives and that a failed
//! reload leaves the module's snapshot exactly as it was.

#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

const FIXED_V1: &[u8] = b"local n = 0\nlocal M = { data = { x = 1 } }\n\
function M.bump() n = n + 1 return n end\nM.data.self = M.data\nreturn M\n";

/// The module's reachable state as text: tables by path, functions by identity order,
/// upvalues by name (the snapshot of crates/hotlua/tests/random/snapshot.lua, whose
/// functions cannot be called here: fuzzed code may loop or fail).
const SNAPSHOT: &str = r#"
local debug = debug
return function()
local seen, lines, count = {}, {}, 0
local function visit(path, v)
  local t = type(v)
  if (t == "table" or t == "function") and seen[v] then
    lines[#lines + 1] = path .. " = ref " .. seen[v] return
  end
  if t == "table" then
    seen[v] = path
    lines[#lines + 1] = path .. " = table"
    local keys = {}
    for k in next, v do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      return type(a) .. tostring(a) < type(b) .. tostring(b) end)
    for _, k in ipairs(keys) do visit(path .. "." .. tostring(k), rawget(v, k)) end
    local mt = debug.getmetatable(v)
    if mt then visit(path .. ".#mt", mt) end
  elseif t == "function" then
    count = count + 1
    seen[v] = path
    lines[#lines + 1] = path .. " = function " .. count
    for i = 1, 255 do
      local name, value = debug.getupvalue(v, i)
      if not name then break end
      if value ~= _G then visit(path .. ".^" .. name, value) end
    end
  else
    lines[#lines + 1] = path .. " = " .. t .. " " .. tostring(v)
  end
end
visit("m", package.loaded.m)
return table.concat(lines, "\n")
end
"#;

/// Fuzzed code gets no way to the file system, the shell, C libraries or bytecode (whose
/// loading Lua itself does not check); `os.exit` stays, for the reload to refuse.
const SANDBOX: &str = r#"
debug, io, dofile, loadfile, string.dump, package.loadlib = nil
os = { exit = os.exit, time = os.time, clock = os.clock }
package.cpath, package.searchers[3], package.searchers[4] = "", nil, nil
local load_ = load
load = function(chunk, name, _, env) return load_(chunk, name, "t", env) end
"#;

fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hotlua-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fuzz_target!(|data: &[u8]| {
    let (v1, v2) = match data.iter().position(|&b| b == 0) {
        Some(0) | None => (FIXED_V1, data),
        Some(at) => (&data[..at], &data[at + 1..]),
    };
    let dir = dir();
    let file = dir.join("m.lua");
    std::fs::write(&file, v1).unwrap();
    // SAFETY: the snapshot needs the `debug` library.
    let lua = unsafe { mlua::Lua::unsafe_new() };
    let limits = hotlua::Options::default().with_timeout(std::time::Duration::from_millis(200));
    lua.load(format!(
        "package.path = {:?}",
        dir.join("?.lua").display().to_string()
    ))
    .exec()
    .unwrap();
    let reloader = hotlua::Reloader::new(&lua).unwrap();
    let snapshot: mlua::Function = lua.load(SNAPSHOT).eval().unwrap();
    lua.load(SANDBOX).exec().unwrap();
    // Version 1 runs without hotlua's guards: a budget of instructions and no `os.exit`;
    // inputs whose version 1 fails or returns no table are skipped.
    lua.set_hook(
        mlua::HookTriggers::new().every_nth_instruction(100_000),
        |_, _| Err(mlua::Error::runtime("version 1 ran too long")),
    )
    .unwrap();
    let loaded = lua
        .load("local exit = os.exit; os.exit = nil; local ok, m = pcall(require, 'm'); os.exit = exit; return ok and type(m) == 'table'")
        .eval::<bool>();
    lua.remove_hook();
    if !matches!(loaded, Ok(true)) {
        return;
    }
    let before: String = snapshot.call(()).unwrap();
    std::fs::write(&file, v2).unwrap();
    if reloader.reload(&["m"], &limits).is_err() {
        let after: String = snapshot.call(()).unwrap();
        assert_eq!(before, after, "a failed reload changed the module");
    }
});
