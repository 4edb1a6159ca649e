//! `hotlua`: run a Lua 5.4 program like `lua5.4` does, and hot-reload its modules.

mod cli;
mod run;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hotlua: {err:#}");
            ExitCode::FAILURE
        }
    }
}
