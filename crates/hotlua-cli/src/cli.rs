//! The command line: `lua5.4`'s own (see `lua_args`), or `run` with reload options before it.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use crate::lua_args::{LuaArgs, UsageError};

/// What to do.
pub enum Invocation {
    /// `hotlua [options] [script [args]]`: exactly `lua5.4`.
    Lua(LuaArgs),
    /// `hotlua run [RUN OPTIONS] [options] [script [args]]`: `lua5.4` plus `require "hotlua"`
    /// and file watching.
    Run(RunOptions, LuaArgs),
    /// `hotlua completions SHELL`: print the shell's completion script.
    Completions(Shell),
    /// `hotlua ctl --connect ADDR ...`: the client of `hotlua run --control`.
    Ctl(crate::ctl::CtlArgs),
}

/// Parses the process's command line. `--help` and `--version` (which `lua5.4` rejects),
/// `run ...` and `completions ...` go to clap, which prints help and clap's own errors and
/// exits; anything else is `lua5.4`'s command line.
pub fn parse(argv: Vec<OsString>) -> Result<Invocation, UsageError> {
    let first = argv.get(1).and_then(|arg| arg.to_str());
    if !matches!(
        first,
        Some("run" | "completions" | "ctl" | "--help" | "--version")
    ) {
        return LuaArgs::parse(argv, 1).map(Invocation::Lua);
    }
    match Cli::parse_from(&argv).command {
        Command::Run(run) => {
            // The Lua command line is what clap left, at the end of `argv`.
            let first = argv.len() - run.lua_args.len();
            Ok(Invocation::Run(run.options, LuaArgs::parse(argv, first)?))
        }
        Command::Completions { shell } => Ok(Invocation::Completions(shell)),
        Command::Ctl(ctl) => Ok(Invocation::Ctl(ctl)),
    }
}

/// Writes the completion script of `shell` for the `hotlua` command line to `out`.
pub fn write_completions(shell: Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "hotlua", out);
}

/// Run Lua 5.4 programs like `lua5.4` does, and hot-reload their modules while they run,
/// keeping their state.
#[derive(Debug, Parser)]
#[command(
    name = "hotlua",
    version,
    override_usage = USAGE,
    after_help = AFTER_HELP,
    after_long_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const USAGE: &str = "\
hotlua [options] [script [args]]
       hotlua run [--watch DIR]... [-w] [--json] [--control ADDR] [--audit FILE] [options] [script [args]]
       hotlua ctl --connect ADDR reload|check|rollback|status|health ...
       hotlua completions bash|zsh|fish";

const AFTER_HELP: &str = concat!(
    "Without `run`, hotlua is a drop-in `lua5.4`: the same command line, `arg` table, LUA_INIT,
LUA_PATH, exit status, messages and Ctrl-C. Its options:
",
    crate::lua_options!(),
    "
`hotlua run` takes the same command line after its own options, and adds `require \"hotlua\"`
(reload, check, on_reload, poll, sleep) and file watching. A script named `run`: `hotlua ./run`.

Example: hotlua run -w game.lua

Reloads happen only while the script calls `hotlua.poll()` or `hotlua.sleep(seconds)` from its
main loop (and, in the REPL, before each line); see `hotlua run --help`.

Documentation, in hotlua's repository: docs/command-line.md (this command), docs/semantics.md
(what a reload keeps, the hotlua API, what a bad file gets), docs/hosts.md (Rust, LuaRocks,
the C module, LÖVE, Neovim, OpenResty, skynet), docs/production.md (--control, ctl, SIGHUP,
--audit), docs/performance.md, docs/internals.md."
);

#[derive(Debug, Subcommand)]
enum Command {
    Run(RunArgs),
    /// Print the shell completion script for hotlua
    ///
    /// bash: `hotlua completions bash > ~/.local/share/bash-completion/completions/hotlua`;
    /// zsh: `hotlua completions zsh > ~/.zfunc/_hotlua` (with `~/.zfunc` on `fpath`);
    /// fish: `hotlua completions fish > ~/.config/fish/completions/hotlua.fish`.
    /// Only a first argument that is exactly `completions` asks for them: a script named
    /// `completions` is `hotlua ./completions`.
    #[command(verbatim_doc_comment)]
    Completions {
        /// The shell: bash, zsh, fish (also elvish, powershell).
        shell: Shell,
    },
    Ctl(crate::ctl::CtlArgs),
}

/// Run a Lua program like `lua5.4 [options] [script [args]]`, with `require "hotlua"`
///
/// After its own options, `hotlua run` takes exactly `lua5.4`'s command line (`-e`, `-l`,
/// `-i`, `-v`, `-E`, `-W`, `--`, `-`, script and arguments): the first argument that is not
/// one of the options below starts it, and a `--` ends them explicitly (`hotlua run -w -- -e
/// 'x=1' game.lua`). The program gets what `lua5.4` gives it: every standard library, C
/// modules through `package.cpath`, the `arg` table (the script at 0, its arguments after, the
/// interpreter and every option before it at negative indices), LUA_INIT, and lua5.4's error
/// messages and exit status.
///
/// `require "hotlua"` returns the hotlua API: `hotlua.reload(name)`, `hotlua.check(name)`,
/// `hotlua.on_reload(fn)`, `hotlua.reloading`, `hotlua.poll()`, `hotlua.sleep(seconds)`.
///
/// With --watch DIR or -w, hotlua watches folders for changed `.lua` files, but a reload
/// only happens inside a call to `hotlua.poll()` (reload what changed, return at once) or
/// `hotlua.sleep(seconds)` (wait, reloading what changes meanwhile): the script's main
/// loop must call one of them, for example
///
///     local hotlua = require "hotlua"
///     while running do
///       update()
///       hotlua.sleep(0.1)
///     end
///
/// In the REPL (`-i`, or no script), changed modules reload before each line runs.
///
/// Each reload prints one line on stderr: a summary, or a JSON report with --json.
///
/// SIGHUP reloads, at the next safe point, every loaded module whose file changed since it
/// was loaded, as one batch (when the program installs its own SIGHUP handler, hotlua says
/// once on stderr that SIGHUP no longer reloads). With --control ADDR, `hotlua ctl --connect ADDR` (or any HTTP
/// client) reloads, checks, rolls back and inspects the running program.
///
/// More in hotlua's repository: docs/command-line.md, docs/semantics.md, docs/production.md.
#[derive(Debug, Args)]
#[command(
    verbatim_doc_comment,
    override_usage = "hotlua run [--watch DIR]... [-w] [--json] [--control ADDR] [--audit FILE] [options] [script [args]]"
)]
struct RunArgs {
    #[command(flatten)]
    options: RunOptions,

    /// `lua5.4`'s command line: options, then the script (`-`: standard input) and its
    /// arguments (`arg[1]`, `arg[2]`, ... and `...` of the main chunk).
    #[arg(
        value_name = "LUA COMMAND LINE",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    lua_args: Vec<OsString>,
}

/// The options of `hotlua run`.
#[derive(Debug, Args)]
pub struct RunOptions {
    /// Watch DIR and its subfolders for changed `.lua` files of loaded modules (repeatable);
    /// they reload when the script calls `hotlua.poll()` or `hotlua.sleep(seconds)`.
    #[arg(long = "watch", value_name = "DIR")]
    pub watch: Vec<PathBuf>,

    /// Watch the folder that holds the script (the current folder when there is no script
    /// file), like `--watch <that folder>`.
    #[arg(short = 'w')]
    pub watch_script_dir: bool,

    /// Print each watch reload as a one-line JSON report instead of the summary line.
    #[arg(long)]
    pub json: bool,

    /// Serve the control endpoint (HTTP/1.1 + JSON: POST /reload, /check, /rollback; GET
    /// /status, /health) on ADDR: `unix:PATH` (a socket only this user can open), or
    /// `127.0.0.1:PORT` / `[::1]:PORT`, which need a token. Requests run at the script's next
    /// `hotlua.poll()` or `hotlua.sleep()`.
    #[arg(long, value_name = "ADDR")]
    pub control: Option<String>,

    /// The bearer token clients must send (first line of FILE, which other users must not
    /// be able to read or write: `chmod o-rwx FILE`); default: the variable
    /// HOTLUA_CONTROL_TOKEN. Required for a TCP endpoint, optional on a Unix socket.
    #[arg(long, value_name = "FILE")]
    pub control_token_file: Option<PathBuf>,

    /// Allow --control on an address that is not loopback (put TLS in front of it).
    #[arg(long)]
    pub control_allow_remote: bool,

    /// Append one JSON line per reload or rollback attempt to FILE: time, trigger (api,
    /// watch, signal, control and its peer), modules with the SHA-256 of their old and new
    /// source, result, duration, error.
    #[arg(long, value_name = "FILE")]
    pub audit: Option<PathBuf>,
}
