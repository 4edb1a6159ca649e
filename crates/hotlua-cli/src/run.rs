//! `hotlua run`: the interpreter plus `require "hotlua"` and file watching.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mlua::{Function, Result};

use crate::call::hotlua_error;
use crate::cli::RunOptions;
use crate::lua_args::LuaArgs;
use crate::{interpreter, signal};

/// Runs `args` like `lua5.4`, with the `hotlua` module installed before any Lua code runs and
/// the folders of `options` watched.
pub fn run(options: &RunOptions, args: &LuaArgs) -> Result<ExitCode> {
    interpreter::execute(args, |lua| {
        let reloader = hotlua::Reloader::new(lua)
            .map_err(|err| hotlua_error("cannot set up hot reload", err))?;
        let api = reloader
            .install()
            .map_err(|err| hotlua_error("cannot install the `hotlua` Lua module", err))?;
        reloader.set_json_log(options.json);
        let dirs = watch_dirs(options, args);
        if dirs.is_empty() {
            return Ok(None);
        }
        signal::with_sigint_kept_here(|| reloader.watch(&dirs))
            .map_err(|err| mlua::Error::external(err.to_string()))?;
        // The REPL reloads what changed before each line, as `hotlua.poll()` would.
        Ok(Some(api.get::<Function>("poll")?))
    })
}

/// The folders to watch: every `--watch DIR`, and with `-w` the folder of the script (the
/// current folder without a script file).
fn watch_dirs(options: &RunOptions, args: &LuaArgs) -> Vec<PathBuf> {
    let mut dirs = options.watch.clone();
    if options.watch_script_dir {
        let script = args
            .script
            .as_ref()
            .filter(|script| !script.stdin)
            .map(|script| Path::new(&args.argv[script.index]));
        let folder = script
            .and_then(Path::parent)
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        dirs.push(folder.to_path_buf());
    }
    dirs
}
