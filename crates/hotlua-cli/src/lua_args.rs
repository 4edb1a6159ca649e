//! The command line of `lua.c` (the `lua5.4` program): `[options] [script [args]]`.
//!
//! Options are read left to right until the first argument that is not one: that is the
//! script, and everything after it belongs to the script. `-e` and `-l` take the next
//! argument (or the rest of their own, as in `-eprint(1)`), which must not start with `-`.

use std::ffi::{OsStr, OsString};

use crate::bytes::{os_bytes, os_string};

/// One `-e`, `-l` or `-W`, run in command-line order after `LUA_INIT`.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `-e stat`: run `stat` as a chunk named `(command line)`.
    Execute(OsString),
    /// `-l mod` or `-l g=mod`: `g = require(mod)`.
    Require(OsString),
    /// `-W`: turn warnings on.
    WarningsOn,
}

/// The script to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Its index in the whole command line (`argv`); `arg[0]` is this argument.
    pub index: usize,
    /// `-` without a `--` before it: read the script from standard input.
    pub stdin: bool,
}

/// A parsed `lua.c` command line.
#[derive(Debug, Clone, PartialEq)]
pub struct LuaArgs {
    /// The whole command line of the process, program name first: the `arg` table holds all
    /// of it (negative indices for what precedes the script).
    pub argv: Vec<OsString>,
    pub actions: Vec<Action>,
    pub script: Option<Script>,
    /// `-i`: the REPL after the script.
    pub interactive: bool,
    /// `-v` (and `-i`): print the version line first.
    pub version: bool,
    /// `-E`: ignore `LUA_INIT`, `LUA_PATH` and `LUA_CPATH`.
    pub ignore_env: bool,
}

/// A command line `lua.c` rejects: it prints its usage text and exits with status 1.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageError {
    /// The offending argument.
    pub option: OsString,
}

impl LuaArgs {
    /// Parses `argv[first..]` the way `lua.c`'s `collectargs` does; `argv[..first]` (the
    /// program name, and `run` with its own options) is only kept for the `arg` table.
    pub fn parse(argv: Vec<OsString>, first: usize) -> Result<LuaArgs, UsageError> {
        let mut args = LuaArgs {
            argv,
            actions: Vec::new(),
            script: None,
            interactive: false,
            version: false,
            ignore_env: false,
        };
        let mut i = first;
        while i < args.argv.len() {
            let arg = os_bytes(&args.argv[i]).into_owned();
            let bad = || UsageError {
                option: args.argv[i].clone(),
            };
            let Some(rest) = arg.strip_prefix(b"-") else {
                args.script = Some(Script {
                    index: i,
                    stdin: false,
                });
                break;
            };
            let (option, attached) = match rest.split_first() {
                None => {
                    args.script = Some(Script {
                        index: i,
                        stdin: true,
                    });
                    break;
                }
                Some((&option, attached)) => (option, attached),
            };
            match option {
                b'-' if attached.is_empty() => {
                    // `--`: the next argument, whatever it is, is the script.
                    if i + 1 < args.argv.len() {
                        args.script = Some(Script {
                            index: i + 1,
                            stdin: false,
                        });
                    }
                    break;
                }
                b'E' | b'W' | b'i' | b'v' if !attached.is_empty() => return Err(bad()),
                b'E' => args.ignore_env = true,
                b'W' => args.actions.push(Action::WarningsOn),
                b'i' => {
                    args.interactive = true;
                    args.version = true;
                }
                b'v' => args.version = true,
                b'e' | b'l' => {
                    let value = if attached.is_empty() {
                        let next = args.argv.get(i + 1).filter(|next| !starts_with_dash(next));
                        let value = next.ok_or_else(bad)?.clone();
                        i += 1;
                        value
                    } else {
                        os_string(attached)
                    };
                    args.actions.push(if option == b'e' {
                        Action::Execute(value)
                    } else {
                        Action::Require(value)
                    });
                }
                _ => return Err(bad()),
            }
            i += 1;
        }
        Ok(args)
    }

    /// `-e` given: with no script, lua.c then neither reads standard input nor starts the REPL.
    pub fn executes_statements(&self) -> bool {
        self.actions
            .iter()
            .any(|action| matches!(action, Action::Execute(_)))
    }
}

impl UsageError {
    /// `lua.c`'s `print_usage`, under the program name `lua`.
    pub fn message(&self) -> Vec<u8> {
        let option = os_bytes(&self.option);
        let mut text = b"lua: ".to_vec();
        if matches!(option.get(1), Some(b'e' | b'l')) {
            text.extend_from_slice(b"'");
            text.extend_from_slice(&option);
            text.extend_from_slice(b"' needs argument\n");
        } else {
            text.extend_from_slice(b"unrecognized option '");
            text.extend_from_slice(&option);
            text.extend_from_slice(b"'\n");
        }
        text.extend_from_slice(USAGE.trim_end().as_bytes());
        text
    }
}

/// lua.c's option list, as `lua.c` prints it after a bad option and `hotlua --help` shows it.
#[macro_export]
macro_rules! lua_options {
    () => {
        "  -e stat   execute string 'stat'
  -i        enter interactive mode after executing 'script'
  -l mod    require library 'mod' into global 'mod'
  -l g=mod  require library 'mod' into global 'g'
  -v        show version information
  -E        ignore environment variables
  -W        turn warnings on
  --        stop handling options
  -         stop handling options and execute stdin
"
    };
}

/// What `lua.c` prints after a bad option.
const USAGE: &str = concat!(
    "usage: lua [options] [script [args]]\nAvailable options are:\n",
    lua_options!()
);

fn starts_with_dash(arg: &OsStr) -> bool {
    os_bytes(arg).first() == Some(&b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<LuaArgs, UsageError> {
        let argv = std::iter::once("lua").chain(args.iter().copied());
        LuaArgs::parse(argv.map(OsString::from).collect(), 1)
    }

    fn bad(option: &str) -> Result<LuaArgs, UsageError> {
        Err(UsageError {
            option: option.into(),
        })
    }

    #[test]
    fn options_in_order_then_script_and_its_arguments() {
        let args = parse(&["-W", "-e", "x=1", "-lmod", "-l", "g=m", "-E", "s.lua", "-e"]).unwrap();
        assert_eq!(
            args.actions,
            [
                Action::WarningsOn,
                Action::Execute("x=1".into()),
                Action::Require("mod".into()),
                Action::Require("g=m".into()),
            ]
        );
        assert!(args.ignore_env && !args.interactive && !args.version);
        assert_eq!(
            args.script,
            Some(Script {
                index: 8,
                stdin: false
            })
        );
        assert!(args.executes_statements());
    }

    #[test]
    fn dash_is_stdin_unless_after_double_dash() {
        let stdin = parse(&["-i", "-", "a"]).unwrap();
        assert_eq!(
            stdin.script,
            Some(Script {
                index: 2,
                stdin: true
            })
        );
        assert!(stdin.interactive && stdin.version);
        let file = parse(&["--", "-"]).unwrap();
        assert_eq!(
            file.script,
            Some(Script {
                index: 2,
                stdin: false
            })
        );
        assert_eq!(parse(&["--"]).unwrap().script, None);
        assert_eq!(parse(&["-v"]).unwrap().script, None);
    }

    #[test]
    fn bad_options_name_the_argument() {
        assert_eq!(parse(&["-x"]), bad("-x"));
        assert_eq!(parse(&["-vx"]), bad("-vx"));
        assert_eq!(parse(&["--x"]), bad("--x"));
        assert_eq!(parse(&["-e"]), bad("-e"));
        assert_eq!(parse(&["-l", "-v"]), bad("-l"));
        let text = String::from_utf8(
            UsageError {
                option: "-e".into(),
            }
            .message(),
        )
        .unwrap();
        assert!(text.starts_with("lua: '-e' needs argument\nusage: lua [options]"));
        let text = String::from_utf8(
            UsageError {
                option: "-x".into(),
            }
            .message(),
        )
        .unwrap();
        assert!(text.starts_with("lua: unrecognized option '-x'\n"));
    }
}
