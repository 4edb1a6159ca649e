//! `hotlua run`: the interpreter plus `require "hotlua"`, file watching, and the production
//! controls: `--audit`, SIGHUP and `--control`, whose work runs at the program's safe points.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use hotlua::{DataPolicy, Options, Reloader, Report, Trigger};
use mlua::{Function, Result};
use serde_json::{json, Value};

use crate::call::hotlua_error;
use crate::cli::RunOptions;
use crate::control::{self, Batch, Control, Job, Request, Response};
use crate::hangup::Hangup;
use crate::lua_args::LuaArgs;
use crate::{interpreter, signal};

/// The attempts `GET /status` shows.
const RECENT_ATTEMPTS: usize = 10;

/// The last attempts, as the audit log writes them (borrowed only briefly: a reload adds one).
type Recent = RefCell<VecDeque<hotlua::Attempt>>;

/// Runs `args` like `lua5.4`, with the `hotlua` module installed before any Lua code runs and
/// the folders of `options` watched.
pub fn run(options: &RunOptions, args: &LuaArgs) -> Result<ExitCode> {
    // Refused before anything runs: a wrong address or a missing token.
    let control = match &options.control {
        Some(addr) => Some(start_control(options, addr).map_err(mlua::Error::external)?),
        None => None,
    };
    let hangup = Hangup::install().map_err(|err| hotlua_error("cannot handle SIGHUP", err))?;
    interpreter::execute(args, |lua| {
        let reloader = hotlua::Reloader::new(lua)
            .map_err(|err| hotlua_error("cannot set up hot reload", err))?;
        let api = reloader
            .install()
            .map_err(|err| hotlua_error("cannot install the `hotlua` Lua module", err))?;
        reloader.set_json_log(options.json);
        let recent = Rc::new(RefCell::new(VecDeque::new()));
        let audit = match &options.audit {
            Some(file) => Some(open_audit(file).map_err(mlua::Error::external)?),
            None => None,
        };
        let kept = recent.clone();
        reloader.on_attempt(move |attempt| {
            if let Some(mut file) = audit.as_ref() {
                // One `write` per line: appends from several processes do not interleave.
                let line = format!("{}\n", attempt.to_json());
                if let Err(err) = file.write_all(line.as_bytes()) {
                    eprintln!("hotlua: cannot write the audit log: {err}");
                }
            }
            let mut kept = kept.borrow_mut();
            if kept.len() == RECENT_ATTEMPTS {
                kept.pop_front();
            }
            kept.push_back(attempt.clone());
        });
        let json = options.json;
        reloader.set_safe_point(move |reloader| {
            if hangup.take() {
                reload_changed(reloader, json);
            }
            if let Some(warning) = hangup.takeover_warning_due() {
                eprintln!("{warning}");
            }
            if let Some(control) = &control {
                run_jobs(reloader, control, &recent, json);
            }
        });
        // SIGHUP and the control endpoint need safe points even without a watched folder.
        let dirs = watch_dirs(options, args);
        if !dirs.is_empty() {
            signal::with_sigint_kept_here(|| reloader.watch(&dirs))
                .map_err(|err| mlua::Error::external(err.to_string()))?;
        }
        // The REPL reloads what changed before each line, as `hotlua.poll()` would.
        Ok(Some(api.get::<Function>("poll")?))
    })
}

fn start_control(options: &RunOptions, addr: &str) -> std::result::Result<Control, String> {
    let addr = control::Addr::parse(addr).map_err(|e| format!("--control: {e}"))?;
    let token = control::read_token(options.control_token_file.as_deref())?;
    control::start(control::Config {
        addr,
        token,
        allow_remote: options.control_allow_remote,
    })
}

fn open_audit(file: &Path) -> std::result::Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| format!("cannot open the audit log {}: {e}", file.display()))
}

/// SIGHUP: reloads, as one batch, every loaded module whose file changed since it was loaded.
fn reload_changed(reloader: &Reloader, json: bool) {
    let changed = reloader.changed_modules();
    if changed.is_empty() {
        eprintln!("hotlua: SIGHUP: no loaded module changed");
        return;
    }
    let names: Vec<&str> = changed.iter().map(String::as_str).collect();
    let result = reloader.with_trigger(Trigger::Signal, |r| r.reload(&names, &Options::default()));
    log(&result, json);
}

/// Prints a reload's line on stderr, as the watcher does.
fn log(result: &hotlua::Result<Report>, json: bool) {
    match result {
        Ok(report) if json => eprintln!("{}", report.to_json()),
        Ok(report) => eprintln!("{}", report.summary()),
        Err(error) if json => eprintln!("{}", json!({ "ok": false, "error": error.to_string() })),
        Err(error) => eprintln!("reload failed, old code kept: {error}"),
    }
}

/// Runs the queued control requests.
fn run_jobs(reloader: &Reloader, control: &Control, recent: &Recent, json: bool) {
    for job in control.pending() {
        if job.abandoned() {
            continue;
        }
        let response = run_job(reloader, &job, recent, json);
        job.answer(response);
    }
}

fn run_job(reloader: &Reloader, job: &Job, recent: &Recent, json: bool) -> Response {
    let trigger = Trigger::Control {
        peer: job.peer.clone(),
    };
    let (result, rollback) = match &job.request {
        Request::Status => return status(reloader, recent),
        Request::Reload(batch) | Request::Check(batch) => {
            let options = match options(batch.data.as_deref(), batch.timeout) {
                Ok(options) => options,
                Err(message) => return Response::error(400, message),
            };
            if let Some(response) = refuse_unloaded(reloader, &batch.modules) {
                return response;
            }
            let names: Vec<&str> = batch.modules.iter().map(String::as_str).collect();
            let result = match &job.request {
                Request::Reload(Batch { .. }) => {
                    reloader.with_trigger(trigger, |r| r.reload(&names, &options))
                }
                _ => reloader.check(&names, &options),
            };
            (result, false)
        }
        Request::Rollback(body) => {
            let options = match options(body.data.as_deref(), body.timeout) {
                Ok(options) => options,
                Err(message) => return Response::error(400, message),
            };
            if let Some(response) = refuse_unloaded(reloader, std::slice::from_ref(&body.module)) {
                return response;
            }
            let result = reloader.with_trigger(trigger, |r| r.rollback(&body.module, &options));
            (result, true)
        }
    };
    if !matches!(job.request, Request::Check(_)) {
        log(&result, json);
    }
    match result {
        Ok(report) => Response {
            status: 200,
            body: json!({
                "ok": true,
                "summary": report.summary(),
                "report": serde_json::to_value(&report).unwrap_or(Value::Null),
            }),
        },
        Err(error) => {
            let status = match &error {
                hotlua::Error::Request(_) if rollback => 409,
                hotlua::Error::Request(_) => 400,
                hotlua::Error::NotFound { .. } => 404,
                hotlua::Error::Reentrant { .. } | hotlua::Error::Vetoed { .. } => 409,
                _ => 422,
            };
            Response {
                status,
                body: json!({
                    "ok": false,
                    "error": error.to_string(),
                    "module": error.module(),
                    "file": error.file().map(|f| f.display().to_string()),
                    "line": error.line(),
                }),
            }
        }
    }
}

/// 404 for a module the program has not loaded: the endpoint reloads running code only.
fn refuse_unloaded(reloader: &Reloader, modules: &[String]) -> Option<Response> {
    let missing: Vec<&str> = modules
        .iter()
        .filter(|name| !reloader.is_loaded(name))
        .map(String::as_str)
        .collect();
    (!missing.is_empty())
        .then(|| Response::error(404, format!("not loaded: {}", missing.join(", "))))
}

fn options(data: Option<&str>, timeout: Option<f64>) -> std::result::Result<Options, String> {
    let mut options = Options::default();
    if let Some(data) = data {
        options.data = Some(DataPolicy::from_name(data).ok_or_else(|| {
            format!("unknown data policy '{data}' (expected keep, overwrite or merge3)")
        })?);
    }
    if let Some(seconds) = timeout {
        if seconds.is_nan() || seconds <= 0.0 {
            return Err(format!(
                "timeout must be a positive number of seconds, got {seconds}"
            ));
        }
        options =
            options.with_timeout(Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX));
    }
    Ok(options)
}

/// `GET /status`: the loaded modules with their sources, and the last attempts.
fn status(reloader: &Reloader, recent: &Recent) -> Response {
    Response {
        status: 200,
        body: json!({
            "ok": true,
            "pid": std::process::id(),
            "modules": reloader.sources(),
            "last_attempts": *recent.borrow(),
        }),
    }
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
