//! Production control of `hotlua run`: `--audit`, SIGHUP, `--control` with `hotlua ctl`, and
//! the endpoint's limits under abuse and load. Loopback and Unix sockets only.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempDir, HOTLUA};

const V1: &str = "local M = {}\nfunction M.f() return 1 end\nreturn M\n";
const V2: &str = "local M = {}\nfunction M.f() return 2 end\nreturn M\n";

/// A program that ticks at 60 Hz until the file `stop` appears, writes the worst delay of a
/// tick beyond its 1/60 s into `worst`, and prints `f` each time `m.f()` changes.
const TICKER: &str = r#"
local hotlua = require "hotlua"
local m = require "m"
local last, worst = nil, 0
local period = 1 / 60
local next_tick = hotlua.now() + period
while not io.open("stop") do
  if m.f() ~= last then last = m.f(); print("f", last); io.stdout:flush() end
  hotlua.sleep(math.max(0, next_tick - hotlua.now()))
  local late = hotlua.now() - next_tick
  if late > worst then worst = late end
  next_tick = next_tick + period
  if late > period then next_tick = hotlua.now() + period end
end
local out = assert(io.open("worst", "w")); out:write(worst); out:close()
"#;

/// A running `hotlua run` of [`TICKER`], stopped when dropped.
struct Server {
    dir: TempDir,
    child: Option<Child>,
}

impl Server {
    /// Starts `hotlua run ARGS main.lua` in a folder holding `files` too, readable by this
    /// user only (as a token file must be).
    fn start(test: &str, args: &[&str], files: &[(&str, &str)]) -> Server {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new(test);
        dir.write("m.lua", V1).write("main.lua", TICKER);
        for (name, text) in files {
            dir.write(name, text);
            let private = std::fs::Permissions::from_mode(0o600);
            std::fs::set_permissions(dir.0.join(name), private).unwrap();
        }
        let child = dir
            .command(HOTLUA)
            .arg("run")
            .args(args)
            .arg("main.lua")
            .env_remove("HOTLUA_CONTROL_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Server {
            dir,
            child: Some(child),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    fn socket(&self) -> String {
        format!("unix:{}", self.path("s.sock").display())
    }

    /// Waits for the program's first safe point: `/status` answers (`/health` would answer
    /// before the program has loaded its modules).
    fn wait_ready(&self, addr: &str, token: Option<&str>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _)) = http(addr, "GET", "/status", token, "") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the endpoint at {addr} never answered");
    }

    /// Stops the program and returns its exit status, stdout and stderr.
    fn stop(&mut self) -> (Option<i32>, String, String) {
        // A few ticks first, so the last reload's line is printed.
        std::thread::sleep(Duration::from_millis(150));
        std::fs::write(self.path("stop"), "").unwrap();
        let output = self.child.take().unwrap().wait_with_output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends one raw request (`bytes`) and returns the answer's status and body.
fn raw(addr: &str, bytes: &[u8]) -> std::io::Result<(u16, String)> {
    fn exchange(mut stream: impl Read + Write, bytes: &[u8]) -> std::io::Result<String> {
        stream.write_all(bytes)?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }
    let answer = match addr.strip_prefix("unix:") {
        Some(path) => exchange(UnixStream::connect(path)?, bytes)?,
        None => exchange(TcpStream::connect(addr)?, bytes)?,
    };
    let status = answer
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Ok((status, body))
}

fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(addr, request.as_bytes())
}

fn ctl(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(HOTLUA)
        .arg("ctl")
        .args(args)
        .current_dir(dir)
        .env_remove("HOTLUA_CONTROL_TOKEN")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn sha256(text: &str) -> String {
    hotlua::sha256_hex(text.as_bytes())
}

#[test]
fn ctl_checks_reloads_rolls_back_and_reports_status_over_a_unix_socket() {
    let mut server = Server::start(
        "ctl-unix",
        &["--control", "unix:s.sock", "--audit", "audit.log"],
        &[],
    );
    let addr = server.socket();
    server.wait_ready(&addr, None);
    let dir = server.dir.0.clone();
    std::fs::write(dir.join("m.lua"), V2).unwrap();

    let (code, out, err) = ctl(&dir, &["--connect", &addr, "check", "m"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("checked m in "), "{out}");
    let (code, out, err) = ctl(&dir, &["--connect", &addr, "reload", "m"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("reloaded m in ") && out.contains(&sha256(V2)[..12]),
        "{out}"
    );

    let (code, out, _) = ctl(&dir, &["--connect", &addr, "status"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with(&format!("m {} ", sha256(V2))), "{out}");
    let (code, out, _) = ctl(&dir, &["--connect", &addr, "--json", "status"]);
    assert_eq!(code, Some(0));
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["modules"][0]["previous_sha256"], sha256(V1));
    assert_eq!(status["last_attempts"][0]["trigger"], "control");

    // A broken file: the reload fails with 422 and a non-zero exit; the old code runs on.
    std::fs::write(dir.join("m.lua"), "local M = {}\nfunction M.f( return M\n").unwrap();
    let (code, _, err) = ctl(&dir, &["--connect", &addr, "reload", "m"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("422") && err.contains("failed to load"),
        "{err}"
    );

    let (code, out, err) = ctl(&dir, &["--connect", &addr, "rollback", "m"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("rolled back m in ") && out.contains(&sha256(V1)[..12]),
        "{out}"
    );

    let (code, _, err) = ctl(&dir, &["--connect", &addr, "reload", "nope"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("404") && err.contains("not loaded: nope"),
        "{err}"
    );
    let (code, _, err) = ctl(&dir, &["--connect", "unix:missing.sock", "status"]);
    assert_eq!(code, Some(2), "{err}");

    let (code, out, err) = server.stop();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "f\t1\nf\t2\nf\t1\n", "{err}");
    let audit = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // reload, failed reload, rollback: checks and refused requests are no attempts.
    assert_eq!(lines.len(), 3, "{audit}");
    assert_eq!(lines[0]["result"], "ok");
    assert_eq!(lines[0]["modules"][0]["old_sha256"], sha256(V1));
    assert_eq!(lines[0]["modules"][0]["new_sha256"], sha256(V2));
    assert_eq!(lines[1]["result"], "failed");
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("failed to load"));
    assert_eq!(lines[2]["action"], "rollback");
    assert_eq!(lines[2]["peer"], "unix");
    assert!(lines[2]["duration_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn sighup_reloads_the_changed_modules_at_the_next_safe_point() {
    let mut server = Server::start("sighup", &["--audit", "audit.log"], &[]);
    // Wait for the first tick's output, then change the file and send SIGHUP.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(server.path("m.lua"), V2).unwrap();
    let kill = |pid: u32| {
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    kill(server.pid());
    std::thread::sleep(Duration::from_millis(500));
    // Nothing changed since: a second SIGHUP reloads nothing.
    kill(server.pid());
    std::thread::sleep(Duration::from_millis(300));
    let audit = server.path("audit.log");
    let (code, out, err) = server.stop();
    assert_eq!((code, out.as_str()), (Some(0), "f\t1\nf\t2\n"), "{err}");
    assert!(err.contains("reloaded m in"), "{err}");
    assert!(err.contains("SIGHUP: no loaded module changed"), "{err}");
    assert!(!err.contains("SIGHUP no longer reloads"), "{err}");
    let audit = std::fs::read_to_string(audit).unwrap_or_default();
    assert!(audit.contains(r#""trigger":"signal""#), "{audit}");
}

/// Whether `require "luv"` works in `hotlua run`. When it does not, prints one line naming
/// the Debian package and returns false, or fails when `CI` is set (CI installs it).
fn luv_installed(dir: &TempDir) -> bool {
    let run = dir.hotlua(&["run", "-e", "require 'luv'"]);
    if run.code == Some(0) {
        return true;
    }
    let missing = "`require \"luv\"` fails (Debian: apt-get install lua-luv)";
    assert!(
        std::env::var_os("CI").is_none(),
        "{missing}: {}",
        run.stderr
    );
    println!("skipped: {missing}");
    false
}

#[test]
fn sighup_taken_over_by_the_program_is_said_once_at_a_safe_point() {
    let dir = TempDir::new("sighup-luv");
    if !luv_installed(&dir) {
        return;
    }
    dir.write(
        "main.lua",
        r#"
local hotlua = require "hotlua"
local uv = require "luv"
for _ = 1, 5 do hotlua.poll() end
print "luv takes SIGHUP"; io.stdout:flush(); io.stderr:flush()
local hup = uv.new_signal()
hup:start("sighup", function() end)
-- Safe points check at most every 0.1 s.
hotlua.sleep(0.25)
hup:close()
uv.run "nowait"
hotlua.sleep(0.25)
"#,
    );
    let run = dir.hotlua(&["run", "main.lua"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.stdout, "luv takes SIGHUP\n");
    // Taken by luv's handler, then reset to the default by libuv when the handle closed: a
    // second change, said once more.
    let warnings: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "{}", run.stderr);
    assert!(
        warnings[0]
            .starts_with("hotlua: SIGHUP no longer reloads: the program installed its own handler"),
        "{}",
        run.stderr
    );
    assert!(
        warnings[1].contains("SIGHUP no longer reloads")
            && warnings[1].contains("now ends the program"),
        "{}",
        run.stderr
    );
}

#[test]
fn tcp_needs_a_token_and_a_loopback_address() {
    let dir = TempDir::new("tcp-refusals");
    dir.write("main.lua", "print 'ran'");
    let run = |args: &[&str], env: Option<&str>| {
        let mut command = dir.command(HOTLUA);
        command.arg("run").args(args).arg("main.lua");
        command.env_remove("HOTLUA_CONTROL_TOKEN");
        if let Some(token) = env {
            command.env("HOTLUA_CONTROL_TOKEN", token);
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--control", "127.0.0.1:0"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("needs a token"), "{err}");
    // Never actually bound: refused before listening.
    let (code, err) = run(&["--control", "0.0.0.0:0"], Some("secret"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("not a loopback address") && err.contains("--control-allow-remote"),
        "{err}"
    );
    let (code, err) = run(&["--control", "localhost:80"], Some("secret"));
    assert_eq!(code, Some(1));
    assert!(err.contains("is not unix:PATH or IP:PORT"), "{err}");
    // With a token, loopback TCP runs.
    let (code, err) = run(&["--control", "127.0.0.1:0"], Some("secret"));
    assert_eq!(code, Some(0), "{err}");
}

/// A free loopback port (a race with other programs is possible but harmless in tests).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn abuse_wrong_token_oversized_body_slow_client_unknown_module() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Server::start(
        "abuse",
        &["--control", &addr, "--control-token-file", "token"],
        &[("token", "s3cret\n")],
    );
    server.wait_ready(&addr, Some("s3cret"));

    // Wrong and missing tokens: 401, and a line on stderr.
    let (status, _) = http(&addr, "GET", "/status", Some("guess"), "").unwrap();
    assert_eq!(status, 401);
    let (status, _) = http(&addr, "POST", "/reload", None, r#"{"modules":["m"]}"#).unwrap();
    assert_eq!(status, 401);
    // ctl with the token file works, and sees the 404 of a module not loaded.
    let token = server.path("token");
    let token = token.to_str().unwrap();
    let (code, _, err) = ctl(
        &server.dir.0,
        &["--connect", &addr, "--token-file", token, "reload", "nope"],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("404"), "{err}");
    let (status, body) = http(
        &addr,
        "POST",
        "/rollback",
        Some("s3cret"),
        r#"{"module":"m"}"#,
    )
    .unwrap();
    assert_eq!(status, 409, "{body}");
    let (status, _) = http(
        &addr,
        "POST",
        "/reload",
        Some("s3cret"),
        r#"{"modules":["m"],"eval":"x"}"#,
    )
    .unwrap();
    assert_eq!(status, 400);
    let (status, _) = http(&addr, "GET", "/nothing", Some("s3cret"), "").unwrap();
    assert_eq!(status, 404);

    // Oversized body: refused from its Content-Length, before it is read.
    let huge = "x".repeat(200 * 1024);
    let (status, _) = http(&addr, "POST", "/reload", Some("s3cret"), &huge).unwrap();
    assert_eq!(status, 413);
    // Too many headers.
    let headers: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    let request = format!("GET /health HTTP/1.1\r\n{headers}\r\n");
    assert_eq!(raw(&addr, request.as_bytes()).unwrap().0, 431);

    // A slow client: sends half a request and waits; it gets 408 within the read time.
    let started = Instant::now();
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost:").unwrap();
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    let waited = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    // Meanwhile, and after, the endpoint serves others.
    let (status, _) = http(&addr, "GET", "/health", Some("s3cret"), "").unwrap();
    assert_eq!(status, 200);

    let (code, _, err) = server.stop();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(err.matches("hotlua: control: refused").count(), 2, "{err}");
    assert!(
        err.contains("wrong token") && err.contains("missing token"),
        "{err}"
    );
}

/// Not a timed assertion: a benchmark that prints the worst delay of a 60 Hz tick while 1,000
/// control requests (status, check and reload, from 4 clients) are served.
#[test]
fn load_1000_requests_at_a_60_hz_ticker() {
    let mut server = Server::start("load", &["--control", "unix:s.sock"], &[]);
    let addr = server.socket();
    server.wait_ready(&addr, None);
    let started = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for i in 0..250 {
                    let (method, path, body) = match (client + i) % 3 {
                        0 => ("GET", "/status", ""),
                        1 => ("POST", "/check", r#"{"modules":["m"]}"#),
                        _ => ("POST", "/reload", r#"{"modules":["m"]}"#),
                    };
                    statuses.push(http(&addr, method, path, None, body).map_or(0, |(s, _)| s));
                }
                statuses
            })
        })
        .collect();
    let statuses: Vec<u16> = clients
        .into_iter()
        .flat_map(|client| client.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    let worst_file = server.path("worst");
    let (code, _, err) = server.stop();
    assert_eq!(code, Some(0), "{err}");
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    assert_eq!(ok + busy, 1000, "unexpected statuses: {statuses:?}");
    assert!(ok > 0);
    let worst: f64 = std::fs::read_to_string(worst_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    println!(
        "1000 control requests in {:.2} s ({ok} answered 200, {busy} 503 queue full); worst tick delay {:.1} ms",
        elapsed.as_secs_f64(),
        worst * 1e3
    );
}

/// examples/fleet/rollout.sh on a small fleet: the hotfix goes live everywhere; with a bad
/// deploy on one server, every other one rolls back and the script fails.
#[test]
fn fleet_recipe_rolls_out_and_rolls_back() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fleet/rollout.sh"
    );
    let run = |fail_at: &str| {
        let output = Command::new("bash")
            .arg(script)
            .env("N", "3")
            .env("FAIL_AT", fail_at)
            .env("HOTLUA", HOTLUA)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, out) = run("");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("hotfix live on 3 servers"), "{out}");
    let (code, out) = run("2");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("server 2: hotlua ctl: 422"), "{out}");
    assert!(out.contains("rolled back 2 servers"), "{out}");
}

/// Writes `token` into `file` with permission bits `mode`.
fn write_token(file: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(file, "s3cret\n").unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn token_file_open_to_other_users_is_refused_by_run_and_ctl() {
    let dir = TempDir::new("token-mode");
    dir.write("main.lua", "print 'ran'");
    let token = dir.0.join("token");
    let run = || {
        let output = dir
            .command(HOTLUA)
            .args(["run", "--control", "127.0.0.1:0", "--control-token-file"])
            .arg(&token)
            .arg("main.lua")
            .env_remove("HOTLUA_CONTROL_TOKEN")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for (mode, what) in [
        (0o644, "readable"),
        (0o602, "writable"),
        (0o604, "readable"),
    ] {
        write_token(&token, mode);
        let (code, err) = run();
        assert_eq!(code, Some(1), "mode {mode:o}: {err}");
        assert!(
            err.contains(&format!("{what} by other users"))
                && err.contains(&token.display().to_string())
                && err.contains("chmod o-rwx"),
            "mode {mode:o}: {err}"
        );
        let (code, _, err) = ctl(
            &dir.0,
            &[
                "--connect",
                "127.0.0.1:1",
                "--token-file",
                token.to_str().unwrap(),
                "status",
            ],
        );
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(&format!("{what} by other users")), "{err}");
    }
    // This user, or a group it shares the token with, is fine.
    for mode in [0o600, 0o400, 0o640] {
        write_token(&token, mode);
        let (code, err) = run();
        assert_eq!(code, Some(0), "mode {mode:o}: {err}");
    }
}

#[test]
fn content_length_with_a_sign_or_conflicting_values_gets_400() {
    let server = Server::start("content-length", &["--control", "unix:s.sock"], &[]);
    let addr = server.socket();
    server.wait_ready(&addr, None);
    let ask = |headers: &str, body: &str| {
        let request = format!("GET /health HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}");
        raw(&addr, request.as_bytes()).unwrap()
    };
    for (headers, body) in [
        ("Content-Length: +2\r\n", "{}"),
        ("Content-Length: 0\r\nContent-Length: 5\r\n", "hello"),
        ("Content-Length: 5\r\ncontent-length: 2\r\n", "hello"),
        ("Content-Length: 2, 2\r\n", "{}"),
        ("Content-Length: -0\r\n", ""),
        ("Content-Length: \r\n", ""),
        ("Content-Length: 0x2\r\n", "{}"),
    ] {
        let (status, answer) = ask(headers, body);
        assert_eq!(status, 400, "{headers:?}: {answer}");
        assert!(answer.contains("Content-Length"), "{headers:?}: {answer}");
    }
    // The same length twice is one length (RFC 9112, 6.3); spaces around it are no sign.
    for headers in [
        "Content-Length: 2\r\nContent-Length: 2\r\n",
        "Content-Length:   2  \r\n",
    ] {
        let (status, answer) = ask(headers, "{}");
        assert_eq!(status, 200, "{headers:?}: {answer}");
    }
}

/// A TCP connection to `to` from the loopback address `source` (such as 127.0.0.2): another
/// peer, as far as the endpoint can tell.
fn connect_from(source: std::net::Ipv4Addr, to: std::net::SocketAddrV4) -> TcpStream {
    use std::os::fd::FromRawFd;
    let address = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let (local, remote) = (address(source, 0), address(*to.ip(), to.port()));
    let size = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `socket` returns a descriptor this function owns until `from_raw_fd` takes it;
    // `bind` and `connect` read `size` bytes of live `sockaddr_in` values.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let bound = libc::bind(fd, (&raw const local).cast(), size);
        assert_eq!(
            bound,
            0,
            "bind {source}: {}",
            std::io::Error::last_os_error()
        );
        let connected = libc::connect(fd, (&raw const remote).cast(), size);
        assert_eq!(
            connected,
            0,
            "connect {to}: {}",
            std::io::Error::last_os_error()
        );
        stream
    }
}

#[test]
fn a_peer_holding_every_connection_it_may_does_not_lock_out_another() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = Server::start(
        "per-peer",
        &["--control", &addr, "--control-token-file", "token"],
        &[("token", "s3cret\n")],
    );
    server.wait_ready(&addr, Some("s3cret"));
    let target = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
    // The first peer opens as many connections as the whole endpoint serves and sends nothing.
    // (Not from 127.0.0.1, whose last connection, `wait_ready`'s, may still be counted.)
    let held: Vec<TcpStream> = (0..32)
        .map(|_| connect_from(std::net::Ipv4Addr::new(127, 0, 0, 3), target))
        .collect();
    // Accepted after all of them (one accepting thread, in order), another peer is served.
    let mut other = connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2), target);
    other
        .write_all(b"GET /health HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    other.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The first peer got its share (answered 408 when its read time ran out) and 429 for
    // the rest, at once.
    let statuses: Vec<String> = held
        .into_iter()
        .map(|mut stream| {
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            answer.get(9..12).unwrap_or("").to_owned()
        })
        .collect();
    let refused = statuses.iter().filter(|s| *s == "429").count();
    let timed_out = statuses.iter().filter(|s| *s == "408").count();
    assert_eq!((timed_out, refused), (8, 24), "{statuses:?}");
}
