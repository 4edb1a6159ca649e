//! `hotlua`: a drop-in `lua5.4` that also hot-reloads Lua modules (`hotlua run`).

mod bytes;
mod call;
mod cli;
mod control;
mod ctl;
mod hangup;
mod interpreter;
mod lua_args;
mod paths;
mod repl;
mod run;
mod signal;
mod warn;

use std::process::ExitCode;

/// hotlua's own allocations survive a heap full of the program's garbage, as lua5.4 does.
#[global_allocator]
static ALLOCATOR: hotlua::Reserve = hotlua::Reserve;

fn main() -> ExitCode {
    let result = match cli::parse(std::env::args_os().collect()) {
        Ok(cli::Invocation::Lua(args)) => interpreter::execute(&args, |_| Ok(None)),
        Ok(cli::Invocation::Run(options, args)) => run::run(&options, &args),
        Ok(cli::Invocation::Completions(shell)) => {
            cli::write_completions(shell, &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Ok(cli::Invocation::Ctl(args)) => Ok(ctl::main(&args)),
        Err(usage) => {
            call::report(None, &usage.message());
            Ok(ExitCode::FAILURE)
        }
    };
    result.unwrap_or_else(|err| {
        eprintln!("hotlua: {err}");
        ExitCode::FAILURE
    })
}
