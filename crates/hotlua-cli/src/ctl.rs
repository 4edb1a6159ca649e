//! `hotlua ctl`: the client of `hotlua run --control`. One request per call; prints the
//! summary line (or the JSON answer with `--json`); exits 1 when the request failed (a reload
//! refused, a module not loaded) and 2 when the endpoint could not be reached.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::control::{read_token, Addr};

/// How long to wait for an answer: longer than the endpoint waits for a safe point.
const ANSWER_TIME: Duration = Duration::from_secs(60);

/// Control a program started with `hotlua run --control ADDR`
///
/// Prints the one-line summary of the reload (or the JSON answer with --json) and exits with
/// status 0 when it succeeded, 1 when it failed (the program keeps its old code), 2 when the
/// endpoint could not be reached.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The endpoint: `unix:PATH`, `127.0.0.1:PORT` or `[::1]:PORT`.
    #[arg(long, value_name = "ADDR")]
    connect: String,

    /// The bearer token (first line of FILE, closed to other users as for `hotlua run`);
    /// default: the variable HOTLUA_CONTROL_TOKEN.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// Print the endpoint's JSON answer instead of the summary.
    #[arg(long)]
    json: bool,

    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Reload modules, as one batch.
    Reload(BatchArgs),
    /// Plan the reload of modules and report it, changing nothing.
    Check(BatchArgs),
    /// Reinstate the source a module ran before its last reload.
    Rollback {
        module: String,
        #[command(flatten)]
        options: ReloadOptions,
    },
    /// The loaded modules with the SHA-256 of their live source, and the last attempts.
    Status,
    /// Whether the program answers, and how long ago it last reached a safe point.
    Health,
}

#[derive(Debug, Args)]
struct BatchArgs {
    /// The modules, as `require` names them.
    #[arg(required = true)]
    modules: Vec<String>,
    #[command(flatten)]
    options: ReloadOptions,
}

#[derive(Debug, Args)]
struct ReloadOptions {
    /// The data policy: keep, overwrite or merge3.
    #[arg(long)]
    data: Option<String>,
    /// Seconds each new top level may run.
    #[arg(long)]
    timeout: Option<f64>,
}

impl ReloadOptions {
    fn add_to(&self, body: &mut Value) {
        if let Some(data) = &self.data {
            body["data"] = json!(data);
        }
        if let Some(timeout) = self.timeout {
            body["timeout"] = json!(timeout);
        }
    }
}

pub fn main(args: &CtlArgs) -> ExitCode {
    let (method, path, body) = match &args.action {
        Action::Reload(batch) | Action::Check(batch) => {
            let mut body = json!({ "modules": batch.modules });
            batch.options.add_to(&mut body);
            let path = match args.action {
                Action::Reload(_) => "/reload",
                _ => "/check",
            };
            ("POST", path, Some(body))
        }
        Action::Rollback { module, options } => {
            let mut body = json!({ "module": module });
            options.add_to(&mut body);
            ("POST", "/rollback", Some(body))
        }
        Action::Status => ("GET", "/status", None),
        Action::Health => ("GET", "/health", None),
    };
    let answer = read_token(args.token_file.as_deref())
        .and_then(|token| request(&args.connect, token.as_deref(), method, path, body));
    let (status, answer) = match answer {
        Ok(answer) => answer,
        Err(message) => {
            eprintln!("hotlua ctl: {message}");
            return ExitCode::from(2);
        }
    };
    let ok = (200..300).contains(&status);
    if args.json {
        println!("{answer}");
    } else if !ok {
        let error = answer["error"].as_str().unwrap_or("request failed");
        eprintln!("hotlua ctl: {status}: {error}");
    } else if let Some(summary) = answer["summary"].as_str() {
        println!("{summary}");
    } else if let Some(modules) = answer["modules"].as_array() {
        for module in modules {
            println!(
                "{} {} {}",
                module["module"].as_str().unwrap_or("?"),
                module["sha256"].as_str().unwrap_or("-"),
                module["file"].as_str().unwrap_or("?"),
            );
        }
    } else {
        println!(
            "ok: pid {}, last safe point {} ms ago",
            answer["pid"], answer["ms_since_safe_point"]
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Sends one request and returns the status and the JSON answer.
fn request(
    addr: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: hotlua\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    head.push_str(&body);
    let connect_error = |e: std::io::Error| format!("cannot connect to {addr}: {e}");
    let answer = match Addr::parse(addr)? {
        Addr::Unix(path) => {
            let mut stream = UnixStream::connect(path).map_err(connect_error)?;
            stream.set_read_timeout(Some(ANSWER_TIME)).ok();
            exchange(&mut stream, head.as_bytes())
        }
        Addr::Tcp(socket) => {
            let mut stream = TcpStream::connect_timeout(&socket, Duration::from_secs(5))
                .map_err(connect_error)?;
            stream.set_read_timeout(Some(ANSWER_TIME)).ok();
            exchange(&mut stream, head.as_bytes())
        }
    }
    .map_err(|e| format!("{addr}: {e}"))?;
    parse_answer(&answer)
}

fn exchange(stream: &mut (impl Read + Write), request: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(request)?;
    let mut answer = Vec::new();
    stream.take(16 << 20).read_to_end(&mut answer)?;
    Ok(answer)
}

fn parse_answer(answer: &[u8]) -> Result<(u16, Value), String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(answer) {
        Ok(httparse::Status::Complete(head)) => head,
        _ => return Err("the endpoint's answer is not HTTP".into()),
    };
    let status = response.code.unwrap_or(0);
    let body = serde_json::from_slice(&answer[head..])
        .map_err(|e| format!("the endpoint's answer ({status}) is not JSON: {e}"))?;
    Ok((status, body))
}
