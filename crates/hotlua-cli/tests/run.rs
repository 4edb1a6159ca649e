//! `hotlua run` behaves like `lua5.4 SCRIPT ARGS` and adds reloading: these drive the built
//! binary.

mod common;

use std::process::Command;

use common::system::{missing, C_COMPILER};
use common::{expect, Run, TempDir, HOTLUA};

/// `run` and its options are part of the command line before the script, so they get
/// negative indices like lua.c's options: re-running `arg[-3] .. arg[-2] ..` runs the same way.
#[test]
fn arg_table_and_varargs() {
    let dir = TempDir::new("args");
    dir.write(
        "script.lua",
        "for i = -4, #arg do print(i, arg[i]) end\n\
         print(select('#', ...), ...)\n",
    );
    let run = dir.hotlua(&[
        "run",
        "--json",
        "script.lua",
        "one",
        "two words",
        "--json",
        "-w",
        "",
    ]);
    assert_eq!(
        run,
        expect(
            0,
            &format!(
                "-4\tnil\n-3\t{HOTLUA}\n-2\trun\n-1\t--json\n0\tscript.lua\n1\tone\n2\ttwo words\n3\t--json\n4\t-w\n5\t\n\
                 5\tone\ttwo words\t--json\t-w\t\n"
            ),
            ""
        )
    );
}

#[test]
fn success_exits_0() {
    let dir = TempDir::new("ok");
    dir.write("script.lua", "io.write('done\\n')\n");
    assert_eq!(dir.hotlua(&["run", "script.lua"]), expect(0, "done\n", ""));
}

#[test]
fn shebang_line_is_skipped_and_line_numbers_stay_right() {
    let dir = TempDir::new("shebang");
    dir.write(
        "script.lua",
        "#!/usr/bin/env -S hotlua run\nprint('first')\nerror('boom')\n",
    );
    assert_eq!(
        dir.hotlua(&["run", "script.lua"]),
        expect(
            1,
            "first\n",
            "lua: script.lua:3: boom\n\
             stack traceback:\n\
             \t[C]: in function 'error'\n\
             \tscript.lua:3: in main chunk\n\
             \t[C]: in ?\n"
        )
    );
}

#[test]
fn uncaught_error_exits_1_with_message_and_traceback() {
    let dir = TempDir::new("error");
    dir.write(
        "script.lua",
        "local function inner() error('boom') end\n\
         local function outer() inner() end\n\
         print('before')\n\
         outer()\n\
         print('not reached')\n",
    );
    assert_eq!(
        dir.hotlua(&["run", "script.lua"]),
        expect(
            1,
            "before\n",
            "lua: script.lua:1: boom\n\
             stack traceback:\n\
             \t[C]: in function 'error'\n\
             \tscript.lua:1: in upvalue 'inner'\n\
             \tscript.lua:2: in local 'outer'\n\
             \tscript.lua:4: in main chunk\n\
             \t[C]: in ?\n"
        )
    );
}

#[test]
fn error_object_with_tostring_is_the_message() {
    let dir = TempDir::new("tostring");
    dir.write(
        "script.lua",
        "error(setmetatable({}, { __tostring = function() return 'custom error' end }))\n",
    );
    // Exactly lua.c: the `__tostring` text replaces the message, without a traceback.
    assert_eq!(
        dir.hotlua(&["run", "script.lua"]),
        expect(1, "", "lua: custom error\n")
    );
}

#[test]
fn error_object_without_tostring_names_its_type() {
    let dir = TempDir::new("errobj");
    dir.write("table.lua", "error({ code = 2 })\n");
    dir.write("nil.lua", "\nerror()\n");
    assert_eq!(
        dir.hotlua(&["run", "table.lua"]),
        expect(
            1,
            "",
            "lua: (error object is a table value)\n\
             stack traceback:\n\
             \t[C]: in function 'error'\n\
             \ttable.lua:1: in main chunk\n\
             \t[C]: in ?\n"
        )
    );
    assert_eq!(
        dir.hotlua(&["run", "nil.lua"]),
        expect(
            1,
            "",
            "lua: (error object is a nil value)\n\
             stack traceback:\n\
             \t[C]: in function 'error'\n\
             \tnil.lua:2: in main chunk\n\
             \t[C]: in ?\n"
        )
    );
}

#[test]
fn syntax_error_in_the_script() {
    let dir = TempDir::new("syntax");
    dir.write("script.lua", "print('never printed')\nlocal x = = 1\n");
    assert_eq!(
        dir.hotlua(&["run", "script.lua"]),
        expect(1, "", "lua: script.lua:2: unexpected symbol near '='\n")
    );
}

#[test]
fn missing_script() {
    let dir = TempDir::new("missing");
    assert_eq!(
        dir.hotlua(&["run", "nonexist.lua"]),
        expect(
            1,
            "",
            "lua: cannot open nonexist.lua: No such file or directory\n"
        )
    );
}

#[test]
fn gc_finalizers_run_at_exit() {
    let dir = TempDir::new("gc");
    // `live` is still reachable at the end, so only closing the state finalizes it.
    dir.write(
        "script.lua",
        "live = setmetatable({}, { __gc = function() print('live finalized') end })\n\
         setmetatable({}, { __gc = function() print('garbage finalized') end })\n\
         print('end of script')\n",
    );
    assert_eq!(
        dir.hotlua(&["run", "script.lua"]),
        expect(0, "end of script\ngarbage finalized\nlive finalized\n", "")
    );

    // lua.c closes the state after reporting an error too.
    dir.write(
        "error.lua",
        "live = setmetatable({}, { __gc = function() print('live finalized') end })\n\
         error('boom', 0)\n",
    );
    let run = dir.hotlua(&["run", "error.lua"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(1), "live finalized\n")
    );
    assert!(
        run.stderr.starts_with("lua: boom\nstack traceback:\n"),
        "{run:?}"
    );
}

#[test]
fn os_exit_keeps_its_lua_meaning() {
    let dir = TempDir::new("exit");
    // `os.exit(n)` exits at once without closing the state, as in lua5.4 ...
    dir.write(
        "exit3.lua",
        "live = setmetatable({}, { __gc = function() print('finalized') end })\n\
         print('before')\nos.exit(3)\nprint('after')\n",
    );
    assert_eq!(dir.hotlua(&["run", "exit3.lua"]), expect(3, "before\n", ""));
    // ... and `os.exit(false, true)` closes it first (finalizers run), exit status 1.
    dir.write(
        "close.lua",
        "live = setmetatable({}, { __gc = function() print('finalized') end })\n\
         os.exit(false, true)\n",
    );
    assert_eq!(
        dir.hotlua(&["run", "close.lua"]),
        expect(1, "finalized\n", "")
    );
}

#[test]
fn debug_library_and_c_module_loading_are_present() {
    let dir = TempDir::new("libs");
    dir.write(
        "script.lua",
        "print(type(debug), type(debug.getupvalue), type(debug.upvaluejoin))\n\
         print(type(package.loadlib), #package.searchers, package.cpath ~= '')\n\
         print(type(io.open), type(os.execute), type(utf8.char), type(coroutine.close))\n",
    );
    assert_eq!(
        dir.hotlua(&["run", "script.lua"]),
        expect(
            0,
            "table\tfunction\tfunction\nfunction\t4\ttrue\nfunction\tfunction\tfunction\tfunction\n",
            ""
        )
    );
}

#[test]
fn warnings_are_off_until_enabled() {
    let dir = TempDir::new("warn");
    dir.write(
        "script.lua",
        "warn('hidden')\nwarn('@on')\nwarn('shown', ' in ', 'pieces')\nwarn('@off')\nwarn('hidden')\n",
    );
    assert_eq!(
        dir.hotlua(&["run", "script.lua"]),
        expect(0, "", "Lua warning: shown in pieces\n")
    );
}

#[test]
fn script_from_stdin() {
    let dir = TempDir::new("stdin");
    dir.write("in.lua", "print(arg[0], ...)\nerror('e')\n");
    let output = Command::new(HOTLUA)
        .args(["run", "-", "x"])
        .current_dir(&dir.0)
        .stdin(std::fs::File::open(dir.0.join("in.lua")).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        Run::from(output),
        expect(
            1,
            "-\tx\n",
            "lua: stdin:2: e\nstack traceback:\n\t[C]: in function 'error'\n\tstdin:2: in main chunk\n\t[C]: in ?\n"
        )
    );
}

#[test]
fn require_hotlua_returns_the_api() {
    let dir = TempDir::new("require");
    dir.write(
        "script.lua",
        "local hotlua = require 'hotlua'\n\
         print(type(hotlua), type(hotlua.reload), require('hotlua') == hotlua)\n",
    );
    assert_eq!(
        dir.hotlua(&["run", "script.lua"]),
        expect(0, "table\tfunction\ttrue\n", "")
    );
}

#[test]
fn c_module_loads_through_package_cpath() {
    if missing(&[C_COMPILER]) {
        return;
    }
    // Set by build.rs from the vendored Lua's build; absent when linking a system Lua.
    let Some(include) = option_env!("HOTLUA_LUA_INCLUDE") else {
        println!("skipped: no vendored Lua headers (built without the `vendored` feature)");
        return;
    };
    let dir = TempDir::new("cmodule");
    dir.write(
        "cmod.c",
        r#"#include "lua.h"
#include "lauxlib.h"

static int add(lua_State *L) {
  lua_Integer a = luaL_checkinteger(L, 1);
  lua_Integer b = luaL_checkinteger(L, 2);
  lua_pushinteger(L, a + b);
  return 1;
}

static const luaL_Reg funcs[] = {{"add", add}, {NULL, NULL}};

int luaopen_cmod(lua_State *L) {
  luaL_newlib(L, funcs);
  lua_pushstring(L, "hello from C");
  lua_setfield(L, -2, "greeting");
  return 1;
}
"#,
    );
    // Not linked to any liblua: the symbols must come from the hotlua executable.
    let cc = Command::new("cc")
        .args(["-shared", "-fPIC", "-o", "cmod.so", "cmod.c", "-I"])
        .arg(include)
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(cc.status.success(), "cc failed: {cc:?}");
    dir.write(
        "script.lua",
        "package.cpath = './?.so'\n\
         local cmod = require 'cmod'\n\
         print(cmod.add(40, 2), math.type(cmod.add(1, 2)), cmod.greeting)\n\
         print(pcall(cmod.add, 'x', 1))\n",
    );
    assert_eq!(
        dir.hotlua(&["run", "script.lua"]),
        expect(
            0,
            "42\tinteger\thello from C\n\
             false\tbad argument #1 to 'cmod.add' (number expected, got string)\n",
            ""
        )
    );
}

#[test]
fn help_explains_the_poll_loop() {
    let dir = TempDir::new("help");
    let top = dir.hotlua(&["--help"]);
    assert_eq!((top.code, top.stderr.as_str()), (Some(0), ""));
    for needle in [
        "Usage: hotlua [options] [script [args]]",
        "hotlua run [--watch DIR]... [-w] [--json] [--control ADDR] [--audit FILE] [options] [script [args]]",
        "hotlua ctl --connect ADDR reload|check|rollback|status|health",
        "-l g=mod  require library 'mod' into global 'g'",
        "A script named `run`: `hotlua ./run`",
    ] {
        assert!(
            top.stdout.contains(needle),
            "{needle:?} not in:\n{}",
            top.stdout
        );
    }
    assert!(top.stdout.contains("hotlua.poll()"), "{}", top.stdout);
    assert!(
        top.stdout.contains("hotlua.sleep(seconds)"),
        "{}",
        top.stdout
    );

    assert_docs_exist(&top.stdout, 6);

    let run = dir.hotlua(&["run", "--help"]);
    assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""));
    for needle in [
        "Usage: hotlua run [--watch DIR]... [-w] [--json] [--control ADDR] [--audit FILE] [options] [script [args]]",
        "exactly `lua5.4`'s command line",
        "a `--` ends them explicitly",
        "--watch <DIR>",
        "\n  -w\n",
        "--json",
        "hotlua.poll()",
        "hotlua.sleep(seconds)",
        "must call one of them",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle:?} not in:\n{}",
            run.stdout
        );
    }
    assert_docs_exist(&run.stdout, 3);
}

/// The help names at least `at_least` pages of the repository's `docs/` folder, and each of
/// them exists.
fn assert_docs_exist(help: &str, at_least: usize) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let pages: Vec<&str> = help
        .split(|c: char| c.is_whitespace() || c == ',' || c == '(' || c == ')')
        .filter(|word| word.starts_with("docs/"))
        .map(|word| word.trim_end_matches(['.', ',']))
        .collect();
    assert!(pages.len() >= at_least, "{pages:?} in:\n{help}");
    for page in pages {
        assert!(
            root.join(page).is_file(),
            "the help names {page}, which is missing"
        );
    }
}

#[test]
fn watch_of_a_missing_folder_is_an_error() {
    let dir = TempDir::new("watchmissing");
    dir.write("script.lua", "print('ran')\n");
    let run = dir.hotlua(&["run", "--watch", "no-such-dir", "script.lua"]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(1), ""), "{run:?}");
    assert!(
        run.stderr.starts_with("hotlua: cannot watch no-such-dir"),
        "{run:?}"
    );
}

/// A script that loads `mod`, rewrites `mod.lua` and sleeps through `hotlua.sleep` until the
/// reload is seen.
const RELOADING_SCRIPT: &str = "\
local hotlua = require 'hotlua'
local m = require 'mod'
print(m.f())
local file = assert(io.open('mod.lua', 'w'))
file:write('local M = {}\\nfunction M.f() return 2 end\\nreturn M\\n')
file:close()
for _ = 1, 100 do
  hotlua.sleep(0.05)
  if m.f() == 2 then break end
end
print(m.f(), m == require 'mod')
";

const MOD_V1: &str = "local M = {}\nfunction M.f() return 1 end\nreturn M\n";

#[test]
fn watch_script_folder_reloads_a_changed_module() {
    let dir = TempDir::new("watchw");
    dir.write("mod.lua", MOD_V1)
        .write("script.lua", RELOADING_SCRIPT);
    let run = dir.hotlua(&["run", "-w", "script.lua"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "1\n2\ttrue\n"),
        "{run:?}"
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(lines[0].starts_with("reloaded mod "), "{run:?}");
}

#[test]
fn watch_dir_with_json_prints_json_reports() {
    let dir = TempDir::new("watchjson");
    dir.write("mod.lua", MOD_V1)
        .write("script.lua", RELOADING_SCRIPT);
    let run = dir.hotlua(&["run", "--watch", ".", "--json", "script.lua"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "1\n2\ttrue\n"),
        "{run:?}"
    );
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(
        lines[0].starts_with('{') && lines[0].ends_with('}') && lines[0].contains("\"mod\""),
        "{run:?}"
    );
}

/// `run`'s options come first; the first other argument starts lua5.4's command line, and a
/// `--` ends run's options explicitly (a second `--` is then lua5.4's).
#[test]
fn run_options_then_the_lua_command_line() {
    let dir = TempDir::new("runlua");
    dir.write("s.lua", "print('script', ...)\nwarn('w')\n")
        .write("-x.lua", "print('dash script')\n");
    assert_eq!(
        dir.hotlua(&[
            "run",
            "-w",
            "-W",
            "-e",
            "print(type(require 'hotlua'))",
            "s.lua",
            "a"
        ]),
        expect(0, "table\nscript\ta\n", "Lua warning: w\n")
    );
    assert_eq!(
        dir.hotlua(&["run", "--watch", ".", "--", "-e", "print(1)", "s.lua"]),
        expect(0, "1\nscript\n", "")
    );
    assert_eq!(
        dir.hotlua(&["run", "--json", "--", "--", "-x.lua"]),
        expect(0, "dash script\n", "")
    );
    let usage = dir.hotlua(&["run", "-w", "-x"]);
    assert_eq!((usage.code, usage.stdout.as_str()), (Some(1), ""));
    assert!(
        usage
            .stderr
            .starts_with("lua: unrecognized option '-x'\nusage: lua "),
        "{usage:?}"
    );
}

/// Only `run` itself is special: a script named `run` is reached through a path or `--`.
#[test]
fn a_script_named_run() {
    let dir = TempDir::new("runscript");
    dir.write("run", "print('the run script', ...)\n");
    assert_eq!(
        dir.hotlua(&["./run", "a"]),
        expect(0, "the run script\ta\n", "")
    );
    assert_eq!(
        dir.hotlua(&["--", "run", "b"]),
        expect(0, "the run script\tb\n", "")
    );
    assert_eq!(
        dir.hotlua(&["run", "run", "c"]),
        expect(0, "the run script\tc\n", "")
    );
}

/// Without `run`, hotlua is lua5.4 and nothing more: no `hotlua` module, no load tracking.
#[test]
fn plain_hotlua_adds_nothing_to_lua() {
    let dir = TempDir::new("plain");
    assert_eq!(
        dir.hotlua(&["-e", "print(package.loaded.hotlua, package.preload.hotlua)"]),
        expect(0, "nil\tnil\n", "")
    );
}

/// `hotlua run -w -i`: the REPL reloads changed modules before each line it runs.
#[test]
fn repl_under_run_reloads_before_each_line() {
    let dir = TempDir::new("runrepl");
    dir.write("mod.lua", MOD_V1);
    let mut input = String::from(
        "m = require 'mod'\n\
         m.f()\n\
         f = io.open('mod.lua', 'w') f:write('return { f = function() return 2 end }') f:close()\n",
    );
    // Time for the watcher to see the change; each line polls it.
    input.push_str(&"os.execute('sleep 0.1')\n".repeat(40));
    input.push_str("m.f()\n");
    let output = Command::new(HOTLUA)
        .args(["run", "-w", "-i"])
        .current_dir(&dir.0)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let run = Run::from(output);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("> m.f()\n1\n"), "{run:?}");
    assert!(run.stdout.ends_with("> m.f()\n2\n> \n"), "{run:?}");
    assert!(run.stderr.starts_with("reloaded mod "), "{run:?}");
}
