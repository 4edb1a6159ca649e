//! `hotlua` is a drop-in `lua5.4`: the same command line, input and environment give the same
//! stdout, stderr and exit status under the system's `lua5.4` and under `hotlua`.
//!
//! Outputs are compared after one normalisation: the program name (`lua5.4` or the path of
//! `hotlua` in `arg` and `lua5.4:` prefixes, `lua:` for hotlua's messages) becomes `<lua>`, and
//! the version line (`Lua 5.4.4  Copyright (C) 1994-2022 ...`) becomes `<version>`. A test that
//! compares skips when `lua5.4` is not installed (`common::system`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::system::{missing, LUA54, LUA_FILESYSTEM, PENLIGHT};
use common::{expect, Run, TempDir, HOTLUA};

/// The system interpreter hotlua is compared with.
const LUA: &str = "lua5.4";

/// One invocation, run under both interpreters.
#[derive(Clone, Copy, Default)]
struct Case<'a> {
    args: &'a [&'a str],
    stdin: Option<&'a str>,
    env: &'a [(&'a str, &'a str)],
}

fn args<'a>(args: &'a [&'a str]) -> Case<'a> {
    Case {
        args,
        ..Case::default()
    }
}

impl<'a> Case<'a> {
    fn stdin(self, stdin: &'a str) -> Case<'a> {
        Case {
            stdin: Some(stdin),
            ..self
        }
    }

    fn env(self, env: &'a [(&'a str, &'a str)]) -> Case<'a> {
        Case { env, ..self }
    }
}

impl TempDir {
    /// Runs `case` with `program` (standard input empty unless the case gives some) and
    /// normalises its output.
    fn run_case(&self, program: &str, case: Case) -> Run {
        let mut command = self.command(program);
        command
            .args(case.args)
            .envs(case.env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("cannot start the interpreter");
        let mut stdin = child.stdin.take().unwrap();
        // The program may end without reading its input (`-v`): a broken pipe is no error.
        let _ = stdin.write_all(case.stdin.unwrap_or("").as_bytes());
        drop(stdin);
        let run = Run::from(child.wait_with_output().unwrap());
        let own_name = if program == LUA { LUA } else { "lua" };
        Run {
            code: run.code,
            stdout: normalise(&run.stdout, program, own_name),
            stderr: normalise(&run.stderr, program, own_name),
        }
    }

    /// Runs `case` under `lua5.4` and `hotlua`, asserts they behave the same and returns that.
    fn same(&self, case: Case) -> Run {
        let reference = self.run_case(LUA, case);
        let hotlua = self.run_case(HOTLUA, case);
        assert_eq!(
            hotlua, reference,
            "hotlua (left) differs from {LUA} (right) for args {:?}, stdin {:?}, env {:?}",
            case.args, case.stdin, case.env
        );
        hotlua
    }
}

/// `argv0` (as it appears in `arg` and `io.popen` commands) and the `NAME:` message prefix
/// become `<lua>`; the version line becomes `<version>`.
fn normalise(text: &str, argv0: &str, message_name: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            if line.starts_with("Lua 5.4.") && line.contains("  Copyright (C) 1994-") {
                return line.replacen(line.trim_end_matches('\n'), "<version>", 1);
            }
            let line = match line.strip_prefix(&format!("{message_name}: ")) {
                Some(rest) => format!("<lua>: {rest}"),
                None => line.to_owned(),
            };
            let line = line.replace(&format!("usage: {message_name} "), "usage: <lua> ");
            line.replace(argv0, "<lua>")
        })
        .collect()
}

#[test]
fn execute_options_run_in_order() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-e");
    let run = dir.same(args(&["-e", "x = 1", "-e", "print(x + 1)", "-eprint(x)"]));
    assert_eq!(run, expect(0, "2\n1\n", ""));
    dir.same(args(&["-e", "print(...)"]));
    dir.same(args(&["-e", "x = ", "-e", "print('not reached')"]));
}

#[test]
fn library_options() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-l");
    dir.write("m.lua", "print('loading', ...)\nreturn { v = 'm' }\n");
    let run = dir.same(args(&["-l", "m", "-e", "print(m.v)"]));
    assert_eq!(run, expect(0, "loading\tm\t./m.lua\nm\n", ""));
    dir.same(args(&["-lm", "-e", "print(m.v)"]));
    dir.same(args(&["-l", "g=m", "-e", "print(g.v, m)"]));
    dir.same(args(&["-e", "print(m)", "-l", "m", "-e", "print(m.v)"]));
    // The message lists every folder searched: package.path and cpath agree too.
    let missing = dir.same(args(&["-l", "nosuch", "-e", "print('not reached')"]));
    assert_eq!(missing.code, Some(1));
    assert!(missing
        .stderr
        .contains("no file '/usr/lib/x86_64-linux-gnu/lua/5.4/nosuch.so'"));
}

/// Lua 5.4.6's `-l mod-suffix` (the system lua5.4 may be older): the global is named without
/// the suffix.
#[test]
fn library_option_drops_a_version_suffix() {
    let dir = TempDir::new("compat-lsuffix");
    dir.write("m-v2.lua", "return { v = 2 }\n");
    assert_eq!(
        dir.hotlua(&["-l", "m-v2", "-e", "print(m.v, _G['m-v2'])"]),
        expect(0, "2\tnil\n", "")
    );
}

#[test]
fn version_option() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-v");
    assert_eq!(dir.same(args(&["-v"])), expect(0, "<version>\n", ""));
    dir.same(args(&["-v", "-e", "print(1)"]));
    dir.write("s.lua", "print('script')\n");
    dir.same(args(&["-v", "s.lua"]));
    // hotlua's version is the one of the Lua it is built with.
    let own = dir.hotlua(&["-v"]);
    let version = dir.hotlua(&["-e", "io.write(_VERSION)"]).stdout;
    assert!(own.stdout.starts_with(&format!("{version}.")), "{own:?}");
    assert!(own.stdout.ends_with("Lua.org, PUC-Rio\n"), "{own:?}");
}

#[test]
fn lua_init_and_ignore_env() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-init");
    dir.write("init.lua", "print('init file', ...)\nx = 41\n");
    let init = [("LUA_INIT", "print('init') x = 1")];
    assert_eq!(
        dir.same(args(&["-e", "print(x)"]).env(&init)),
        expect(0, "init\n1\n", "")
    );
    assert_eq!(
        dir.same(args(&["-E", "-e", "print(x)"]).env(&init)),
        expect(0, "nil\n", "")
    );
    let versioned = [
        ("LUA_INIT", "print('plain')"),
        ("LUA_INIT_5_4", "print('5.4')"),
    ];
    assert_eq!(
        dir.same(args(&["-e", "print(x)"]).env(&versioned)),
        expect(0, "5.4\nnil\n", "")
    );
    let file = [("LUA_INIT", "@init.lua")];
    assert_eq!(
        dir.same(args(&["-e", "print(x + 1)"]).env(&file)),
        expect(0, "init file\n42\n", "")
    );
    dir.same(args(&["-e", "print(x)"]).env(&[("LUA_INIT", "@missing.lua")]));
    let failing =
        dir.same(args(&["-e", "print('not reached')"]).env(&[("LUA_INIT", "error('x')")]));
    assert_eq!(failing.code, Some(1));
    assert!(failing
        .stderr
        .starts_with("<lua>: LUA_INIT:1: x\nstack traceback:\n"));
}

#[test]
fn package_path_and_cpath_match_the_system_lua() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-path");
    let print = args(&["-e", "print(package.path) print(package.cpath)"]);
    let run = dir.same(print);
    for folder in [
        "/usr/share/lua/5.4/?.lua;",
        "/usr/share/lua/5.4/?/init.lua;",
        "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;",
        "/usr/lib/lua/5.4/?.so;",
        "/usr/local/lib/lua/5.4/loadall.so;",
    ] {
        assert!(run.stdout.contains(folder), "{folder} not in {run:?}");
    }
    dir.same(print.env(&[
        ("LUA_PATH", "/a/?.lua;;/b/?.lua"),
        ("LUA_CPATH", ";;/c/?.so"),
    ]));
    dir.same(print.env(&[("LUA_PATH", "/a/?.lua"), ("LUA_PATH_5_4", "/v/?.lua;;")]));
    dir.same(print.env(&[("LUA_CPATH_5_4", "/only/?.so")]));
    let ignored = [("LUA_PATH", "/a/?.lua"), ("LUA_CPATH", "/c/?.so")];
    let print_ignoring = args(&["-E", "-e", "print(package.path) print(package.cpath)"]);
    assert_eq!(dir.same(print_ignoring.env(&ignored)), run);
}

#[test]
fn warnings_option() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-w");
    assert_eq!(
        dir.same(args(&["-W", "-e", "warn('shown')"])),
        expect(0, "", "Lua warning: shown\n")
    );
    // `-W` takes effect in its place among `-e` and `-l`.
    dir.same(args(&[
        "-e",
        "warn('hidden')",
        "-W",
        "-e",
        "warn('a', 'b')",
    ]));
    dir.same(args(&["-e", "warn('hidden')"]));
}

#[test]
fn double_dash_and_dash() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-dash");
    dir.write("-e", "print('a script named -e', ...)\n");
    dir.write("s.lua", "print('s', ...)\n");
    assert_eq!(
        dir.same(args(&["--", "-e", "x"])),
        expect(0, "a script named -e\tx\n", "")
    );
    dir.same(args(&["-e", "print(1)", "--", "s.lua", "-v"]));
    // `--` at the end: no script, and standard input (not a terminal) runs.
    dir.same(args(&["--"]).stdin("print('from stdin', arg[0])"));
    dir.same(args(&["-e", "print(1)", "--"]).stdin("print('not run')"));
    // `-` is standard input, with arguments; after `--` it is a file named `-`.
    let stdin = "print('stdin', ...) for i = -2, #arg do print(i, arg[i]) end";
    assert_eq!(
        dir.same(args(&["-", "a", "b"]).stdin(stdin)),
        expect(0, "stdin\ta\tb\n-2\tnil\n-1\t<lua>\n0\t-\n1\ta\n2\tb\n", "")
    );
    dir.same(args(&["--", "-"]).stdin(stdin));
}

#[test]
fn standard_input_without_arguments() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-stdin");
    assert_eq!(
        dir.same(args(&[]).stdin("print('piped', #arg, arg[0])\n")),
        expect(0, "piped\t0\t<lua>\n", "")
    );
    // lua.c ignores how standard input ended for its exit status.
    let failing = dir.same(args(&[]).stdin("print('before')\nerror('boom')\n"));
    assert_eq!(failing.code, Some(0));
    assert!(failing.stderr.starts_with("<lua>: stdin:2: boom\n"));
    dir.same(args(&["-W"]).stdin("warn('w')"));
    // `-v` and `-e` are active options: standard input is then left alone.
    dir.same(args(&["-v"]).stdin("print('not run')"));
}

#[test]
fn interactive_mode_with_piped_input() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-i");
    dir.write("s.lua", "x = 10\nprint('script ran')\n");
    let session = "\
x
= x + 1
1, nil, 'three'
for i = 1, 2 do
print(i)
end
local t = {
  n = 5 }
print(t)
error('in repl')
error({})
y = x * 2
y
_PROMPT = '$ '
_PROMPT2 = '... '
if true then
print('prompts')
end
";
    let run = dir.same(args(&["-i", "s.lua"]).stdin(session));
    assert_eq!(run.code, Some(0));
    assert!(run
        .stdout
        .starts_with("<version>\nscript ran\n> x\n10\n> = x + 1\n11\n"));
    assert!(run
        .stdout
        .contains("$ if true then\n... print('prompts')\n... end\nprompts\n$ \n"));
    assert!(run
        .stderr
        .starts_with("stdin:1: in repl\nstack traceback:\n"));
    dir.same(args(&["-e", "z = 3", "-i"]).stdin("z\n"));
    dir.same(args(&["-i"]).stdin(""));
    // A failing script ends the program before the REPL.
    let failed = dir.same(args(&["-i", "-e", "error('x')"]).stdin("print('not run')\n"));
    assert_eq!(
        (failed.code, failed.stdout.as_str()),
        (Some(1), "<version>\n")
    );
}

#[test]
fn arg_table_from_lowest_negative_index() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-arg");
    let script = "local lowest = 0\n\
                  while arg[lowest - 1] do lowest = lowest - 1 end\n\
                  for i = lowest, #arg do print(i, arg[i]) end\n\
                  print(select('#', ...), ...)\n";
    dir.write("args.lua", script);
    let run = dir.same(args(&[
        "-W", "-e", "x=1", "-l", "string", "args.lua", "a", "", "-e",
    ]));
    assert_eq!(
        run.stdout,
        "-6\t<lua>\n-5\t-W\n-4\t-e\n-3\tx=1\n-2\t-l\n-1\tstring\n0\targs.lua\n\
         1\ta\n2\t\n3\t-e\n3\ta\t\t-e\n"
    );
    dir.same(args(&["args.lua"]));
    dir.same(args(&["-e", "for i = -1, #arg do print(i, arg[i]) end"]));
    // The script's `...` are the global `arg` when it starts, as lua.c's `pushargs` reads it.
    dir.same(args(&["-e", "arg[1] = 'changed'", "args.lua", "original"]));
    dir.same(args(&["-e", "arg = nil", "args.lua"]));
}

#[test]
fn errors_print_one_message_and_one_traceback() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-errors");
    dir.write(
        "string.lua",
        "local function inner() error('boom') end\nlocal function outer() inner() end\nouter()\n",
    );
    dir.write(
        "tostring.lua",
        "error(setmetatable({}, { __tostring = function() return 'custom' end }))\n",
    );
    dir.write("table.lua", "error({ code = 2 })\n");
    dir.write("nil.lua", "\nerror(nil)\n");
    dir.write("syntax.lua", "print('never')\nlocal x = = 1\n");
    dir.write("runtime.lua", "local t = nil\nprint(t.field)\n");
    dir.write("level0.lua", "error('no position', 0)\n");
    let string = dir.same(args(&["string.lua"]));
    assert_eq!(
        string,
        expect(
            1,
            "",
            "<lua>: string.lua:1: boom\n\
             stack traceback:\n\
             \t[C]: in function 'error'\n\
             \tstring.lua:1: in upvalue 'inner'\n\
             \tstring.lua:2: in local 'outer'\n\
             \tstring.lua:3: in main chunk\n\
             \t[C]: in ?\n"
        )
    );
    assert_eq!(
        dir.same(args(&["tostring.lua"])),
        expect(1, "", "<lua>: custom\n")
    );
    for script in [
        "table.lua",
        "nil.lua",
        "syntax.lua",
        "runtime.lua",
        "level0.lua",
    ] {
        assert_eq!(dir.same(args(&[script])).code, Some(1), "{script}");
    }
    assert_eq!(
        dir.same(args(&["missing.lua"])),
        expect(
            1,
            "",
            "<lua>: cannot open missing.lua: No such file or directory\n"
        )
    );
    let from_e = dir.same(args(&["-e", "error('from -e')"]));
    assert_eq!(
        from_e.stderr,
        "<lua>: (command line):1: from -e\n\
         stack traceback:\n\
         \t[C]: in function 'error'\n\
         \t(command line):1: in main chunk\n\
         \t[C]: in ?\n"
    );
    dir.same(args(&[
        "-e",
        "error(setmetatable({}, {__tostring = function() return 42 end}))",
    ]));
}

#[test]
fn usage_errors() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-usage");
    let run = dir.same(args(&["-x"]));
    assert_eq!(run.code, Some(1));
    assert!(run
        .stderr
        .starts_with("<lua>: unrecognized option '-x'\nusage: <lua> [options] [script [args]]\n"));
    for bad in [
        &["-e"][..],
        &["-l"],
        &["-e", "-v"],
        &["-vx"],
        &["-Ex"],
        &["--x"],
        &["-i", "-h"],
        &["-e", "print(1)", "-y", "script.lua"],
    ] {
        dir.same(args(bad));
    }
}

#[test]
fn exit_status_and_finalizers() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-exit");
    let gc = "live = setmetatable({}, { __gc = function() print('finalized') end })\n";
    dir.write("exit3.lua", &format!("{gc}os.exit(3)\n"));
    dir.write("exittrue.lua", &format!("{gc}os.exit(true)\n"));
    dir.write("exitfalse.lua", &format!("{gc}os.exit(false)\n"));
    dir.write("exitclose.lua", &format!("{gc}os.exit(0, true)\n"));
    dir.write("end.lua", &format!("{gc}print('end')\n"));
    dir.write("error.lua", &format!("{gc}error('boom')\n"));
    assert_eq!(dir.same(args(&["exit3.lua"])), expect(3, "", ""));
    assert_eq!(dir.same(args(&["exittrue.lua"])), expect(0, "", ""));
    assert_eq!(dir.same(args(&["exitfalse.lua"])), expect(1, "", ""));
    assert_eq!(
        dir.same(args(&["exitclose.lua"])),
        expect(0, "finalized\n", "")
    );
    assert_eq!(
        dir.same(args(&["end.lua"])),
        expect(0, "end\nfinalized\n", "")
    );
    assert_eq!(dir.same(args(&["error.lua"])).stdout, "finalized\n");
}

/// At exit the state is closed as `lua_close` closes it, with no full collection first: every
/// pending finalizer runs in the reverse order of marking (Lua manual §2.5.3), garbage or not,
/// and an object a finalizer creates then is never finalized. `exit_order.lua` mixes garbage
/// and live objects; `close_order.lua` is the official test suite's main.lua (line 327).
#[test]
fn finalizers_at_exit_run_in_lua54_order() {
    let dir = TempDir::new("compat-exit-order");
    dir.write(
        "exit_order.lua",
        "local function make(name)\n\
           return setmetatable({}, { __gc = function() print('gc ' .. name) end })\n\
         end\n\
         local a = make('a')\n\
         make('garbage 1')\n\
         global = make('global')\n\
         make('garbage 2')\n\
         local b = setmetatable({}, { __gc = function()\n\
           print('gc b, making c')\n\
           c = make('c, made at exit')\n\
         end })\n\
         print('end of script')\n",
    );
    dir.write(
        "close_order.lua",
        "print('creating 1')\n\
         setmetatable({}, {__gc = function () print(1) end})\n\
         print('creating 2')\n\
         setmetatable({}, {__gc = function ()\n\
           print('2')\n\
           print('creating 3')\n\
           setmetatable({}, {__gc = function () print(3) end})\n\
           print(collectgarbage())\n\
           os.exit(0, true)\n\
         end})\n",
    );
    let cases = [
        (
            "exit_order.lua",
            "end of script\ngc b, making c\ngc garbage 2\ngc global\ngc garbage 1\ngc a\n",
        ),
        (
            "close_order.lua",
            "creating 1\ncreating 2\n2\ncreating 3\nnil\n1\n",
        ),
    ];
    let lua54 = !missing(&[LUA54]);
    for (script, stdout) in cases {
        for before in [&[][..], &["run"], &["run", "-w"]] {
            let args: Vec<&str> = before.iter().copied().chain(["-W", script]).collect();
            assert_eq!(dir.hotlua(&args), expect(0, stdout, ""), "hotlua {args:?}");
        }
        if lua54 {
            let run = common::run_program(LUA, &["-W", script], &dir.0, &[]);
            assert_eq!(run, expect(0, stdout, ""), "{LUA} {script}");
        }
    }
}

#[test]
fn garbage_collector_starts_generational() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-gc");
    let run = dir.same(args(&["-e", "print(collectgarbage('incremental'))"]));
    assert_eq!(run, expect(0, "generational\n", ""));
}

#[test]
fn shebang_line_is_skipped() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-shebang");
    dir.write(
        "s.lua",
        "#!/usr/bin/env lua5.4\nprint('ok')\nerror('line 3')\n",
    );
    dir.same(args(&["s.lua"]));
}

/// Debian's `lua-penlight` and `lua-filesystem` (a C module in the multiarch folder) load with
/// the default paths.
#[test]
fn system_libraries_load() {
    if missing(&[LUA54, PENLIGHT, LUA_FILESYSTEM]) {
        return;
    }
    let dir = TempDir::new("compat-libs");
    let penlight = "local List = require 'pl.List'\n\
                    print(List{1, 2, 3}:map(function(x) return x * 2 end))\n\
                    print(require('pl.stringx').split('a,b', ','):join('|'))\n";
    let run = dir.same(args(&["-e", penlight]));
    assert_eq!(run, expect(0, "{2,4,6}\na|b\n", ""));
    let lfs = "local lfs = require 'lfs'\n\
               print(type(lfs.attributes), lfs.attributes('.', 'mode'))\n\
               print(package.searchpath('lfs', package.cpath))\n";
    let run = dir.same(args(&["-e", lfs]));
    assert_eq!(
        run,
        expect(
            0,
            "function\tdirectory\n/usr/lib/x86_64-linux-gnu/lua/5.4/lfs.so\n",
            ""
        )
    );
}

/// Penlight's `app.lua()` rebuilds the interpreter's command line from the lowest negative
/// index of `arg`; a program runs it again to start a child interpreter.
#[test]
fn penlight_app_reruns_the_interpreter() {
    if missing(&[LUA54, PENLIGHT]) {
        return;
    }
    let dir = TempDir::new("compat-app");
    dir.write(
        "app.lua",
        "local lua = require('pl.app').lua()\n\
         print(lua)\n\
         local child = io.popen(lua .. [[ -e \"print(_VERSION, #arg)\"]])\n\
         io.write(child:read('a'))\n\
         print(child:close())\n",
    );
    let run = dir.same(args(&["-W", "app.lua"]));
    assert_eq!(run, expect(0, "<lua> -W\nLua 5.4\t3\ntrue\texit\t0\n", ""));
}

/// Ctrl-C while Lua code runs: `interrupted!` with a traceback, the state closed (finalizers
/// run), exit status 1.
#[test]
fn sigint_interrupts_running_lua_code() {
    assert_interrupted(&[]);
}

/// The same under `hotlua run --watch`, whose watcher threads must not take the signal.
#[test]
fn sigint_interrupts_running_lua_code_while_watching() {
    assert_interrupted(&["run", "--watch", "."]);
}

fn assert_interrupted(before: &[&str]) {
    let dir = TempDir::new("sigint");
    let code = "local t = setmetatable({}, {__gc = function() io.stderr:write('gc ran\\n') end})\n\
                io.stderr:write('looping\\n')\n\
                while true do end";
    let mut child = dir
        .command(HOTLUA)
        .args(before)
        .args(["-e", code])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    assert_eq!(first, "looping\n");
    std::thread::sleep(Duration::from_millis(100));
    send_sigint(child.id());
    let status = wait_at_most(&mut child, Duration::from_secs(10));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(1), "{rest}");
    assert!(
        rest.starts_with("lua: interrupted!\nstack traceback:\n"),
        "{rest}"
    );
    assert!(rest.contains("(command line):3: in main chunk\n"), "{rest}");
    assert!(rest.ends_with("gc ran\n"), "{rest}");
}

/// Ctrl-C while no Lua code runs (the REPL waiting for a line) ends the process the default
/// way, as lua.c does.
#[test]
fn sigint_outside_lua_code_ends_the_process() {
    use std::os::unix::process::ExitStatusExt;
    let dir = TempDir::new("sigint-repl");
    let mut child = dir
        .command(HOTLUA)
        .arg("-i")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut version = String::new();
    stdout.read_line(&mut version).unwrap();
    assert!(version.starts_with("Lua 5.4."), "{version}");
    std::thread::sleep(Duration::from_millis(100));
    send_sigint(child.id());
    let status = wait_at_most(&mut child, Duration::from_secs(10));
    assert_eq!(status.signal(), Some(2), "{status:?}");
}

fn send_sigint(pid: u32) {
    let kill = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
}

fn wait_at_most(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the interpreter did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The check of the official test suite's gc.lua ("everything collected"): after a full
/// collection the heap is back within 1 KB of where it was, under plain `hotlua` and under
/// `hotlua run`; and the `hotlua` module's bookkeeping keeps no Lua memory alive between the
/// program's calls: a thousand calls leave less than half a kilobyte more than none.
#[test]
fn memory_returns_to_its_start_after_a_collection() {
    let dir = TempDir::new("compat-gc-count");
    let script = "local function left_after(calls)\n\
           collectgarbage(); collectgarbage()\n\
           local m = collectgarbage('count')\n\
           do\n\
             local a = setmetatable({}, { __mode = 'kv' })\n\
             a[string.rep('a', 2^22)] = 25\n\
             a[string.rep('b', 2^22)] = {}\n\
             a[{}] = 14\n\
             collectgarbage()\n\
             local k = next(a)\n\
             a[k] = nil\n\
             k = nil\n\
             for i = 1, calls do HOTLUA.poll(); HOTLUA.now(); HOTLUA.sleep(0) end\n\
           end\n\
           collectgarbage()\n\
           return collectgarbage('count') - m\n\
         end\n\
         left_after(0) -- the first run makes what Lua creates once (string buffers' metatable)\n\
         local none = left_after(0)\n\
         assert(none <= 1, none .. ' KB left after the collection')\n\
         if HOTLUA.poll then\n\
           local many = left_after(1000)\n\
           assert(many - none < 0.5, (many - none) .. ' KB more after 1000 calls')\n\
         end\n\
         print('collected')\n";
    dir.write("plain.lua", &format!("HOTLUA = {{}}\n{script}"));
    dir.write(
        "with_hotlua.lua",
        &format!("HOTLUA = require 'hotlua'\n{script}"),
    );
    assert_eq!(dir.hotlua(&["plain.lua"]), expect(0, "collected\n", ""));
    assert_eq!(
        dir.hotlua(&["run", "plain.lua"]),
        expect(0, "collected\n", "")
    );
    assert_eq!(
        dir.hotlua(&["run", "-w", "with_hotlua.lua"]),
        expect(0, "collected\n", "")
    );
}

/// An error raised by a module's top level reaches the caller of `require` as lua5.4 delivers
/// it, also under `hotlua run`, which records every module's load-time values: the same
/// message, one traceback, no extra frame.
#[test]
fn module_errors_through_require_read_the_same_under_hotlua_run() {
    if missing(&[LUA54]) {
        return;
    }
    let dir = TempDir::new("compat-require-error");
    dir.write("bad.lua", "local x = 1\nerror('top level failed')\n");
    dir.write("syntax.lua", "local x = = 1\n");
    dir.write(
        "main.lua",
        "package.path = './?.lua'\n\
         local ok, e = pcall(require, 'bad') print(ok, e)\n\
         local t = {}\n\
         package.preload.tbl = function() error(t) end\n\
         print(select(2, pcall(require, 'tbl')) == t)\n\
         require(arg[1])\n",
    );
    for module in ["bad", "syntax"] {
        let reference = dir.run_case(LUA, args(&["main.lua", module]));
        let hotlua = dir.run_case(HOTLUA, args(&["run", "main.lua", module]));
        assert_eq!(
            hotlua, reference,
            "hotlua run (left) and {LUA} (right) differ"
        );
        assert_eq!(reference.code, Some(1));
    }
}
