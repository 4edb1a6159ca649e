//! The command line.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run Lua 5.4 programs and hot-reload their modules while they run, keeping their state.
#[derive(Debug, Parser)]
#[command(name = "hotlua", version, arg_required_else_help = true, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const AFTER_HELP: &str = "\
Example: hotlua run -w game.lua

Reloads happen only while the script calls `hotlua.poll()` or `hotlua.sleep(seconds)` from its
main loop; see `hotlua run --help`.";

#[derive(Debug, Subcommand)]
pub enum Command {
    Run(RunArgs),
}

/// Run SCRIPT like `lua5.4 SCRIPT [ARGS]...`, with `require "hotlua"` available
///
/// The script gets what `lua5.4` gives it: every standard library (`debug` included),
/// C modules through `package.cpath`, the `arg` table (`arg[0]` = SCRIPT, `arg[1]`... =
/// ARGS, `arg[-1]` = this program) and ARGS as `...`. A first line starting with `#` is
/// skipped. An uncaught error prints `lua: MESSAGE` and a stack traceback on stderr and
/// exits with status 1; `os.exit` works as in Lua; `__gc` finalizers run at exit.
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
/// Each reload prints one line on stderr: a summary, or a JSON report with --json.
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// Watch DIR and its subfolders for changed `.lua` files of loaded modules (repeatable);
    /// they reload when the script calls `hotlua.poll()` or `hotlua.sleep(seconds)`.
    #[arg(long = "watch", value_name = "DIR")]
    pub watch: Vec<PathBuf>,

    /// Watch the folder that holds SCRIPT, like `--watch <that folder>`.
    #[arg(short = 'w')]
    pub watch_script_dir: bool,

    /// Print each watch reload as a one-line JSON report instead of the summary line.
    #[arg(long)]
    pub json: bool,

    /// The Lua file to run (`-`: standard input); everything after it goes to the script.
    #[arg(value_name = "SCRIPT")]
    pub script: OsString,

    /// Arguments for the script: `arg[1]`, `arg[2]`, ... and `...` of its main chunk.
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<OsString>,
}
