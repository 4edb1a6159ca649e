//! `hotlua run --control ADDR`: a small HTTP/1.1 + JSON endpoint to reload, check, roll back
//! and inspect the running program from outside.
//!
//! The server threads never touch Lua. They parse and authenticate each request, answer
//! `GET /health` themselves, and queue everything else as a [`Job`]; the Lua thread runs the
//! queue at the program's next safe point (`hotlua.poll`, `hotlua.sleep`) and sends each answer
//! back. No endpoint evaluates code: a request names modules, whose files are read as a reload
//! always reads them.
//!
//! Everything a client controls is bounded: the request head ([`MAX_HEAD`] bytes,
//! [`MAX_HEADERS`] headers), the body ([`MAX_BODY`]), the time to send them ([`READ_TIME`]),
//! the connections served at once ([`MAX_CONNECTIONS`], [`MAX_CONNECTIONS_PER_PEER`] of them
//! from one TCP peer) and the queue ([`QUEUE`]). One request per connection
//! (`Connection: close`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

mod http;
mod token;

pub use token::read_token;

use serde::Deserialize;
use serde_json::{json, Value};

use self::http::{linger, read_request, respond, Stream};

/// The largest request head (request line and headers), in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// The most headers a request may have.
pub const MAX_HEADERS: usize = 32;
/// The largest request body, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// The time a client has to send its whole request.
pub const READ_TIME: Duration = Duration::from_secs(2);
/// Requests waiting for a safe point; more get 503.
pub const QUEUE: usize = 64;
/// Connections served at once; more get 503.
pub const MAX_CONNECTIONS: usize = 32;
/// Connections served at once from one TCP peer (see [`peer_key`]); more get 429, so that one
/// client holding connections open cannot take all [`MAX_CONNECTIONS`] from the others.
pub const MAX_CONNECTIONS_PER_PEER: usize = 8;
/// How long a request waits for the program to reach a safe point before it gets 503 (and is
/// dropped from the queue).
pub const SAFE_POINT_WAIT: Duration = Duration::from_secs(30);

/// Where the endpoint listens.
#[derive(Debug, Clone)]
pub enum Addr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Addr {
    /// `unix:PATH`, `127.0.0.1:PORT`, `[::1]:PORT`.
    pub fn parse(text: &str) -> Result<Addr, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path, as in unix:/run/game.sock".into());
            }
            return Ok(Addr::Unix(PathBuf::from(path)));
        }
        text.parse().map(Addr::Tcp).map_err(|_| {
            format!("'{text}' is not unix:PATH or IP:PORT (such as 127.0.0.1:7070 or [::1]:7070)")
        })
    }
}

/// The endpoint's settings, from the command line.
pub struct Config {
    pub addr: Addr,
    /// The bearer token every request must carry; required on TCP.
    pub token: Option<String>,
    pub allow_remote: bool,
}

/// The token from `--control-token-file FILE` (its first line) or `HOTLUA_CONTROL_TOKEN`.
///
/// What a queued request asks.
#[derive(Debug)]
pub enum Request {
    Reload(Batch),
    Check(Batch),
    Rollback(RollbackBody),
    Status,
}

/// The body of `POST /reload` and `POST /check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub modules: Vec<String>,
    pub data: Option<String>,
    pub timeout: Option<f64>,
}

/// The body of `POST /rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    pub module: String,
    pub data: Option<String>,
    pub timeout: Option<f64>,
}

/// An answer: the HTTP status and the JSON body.
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Response {
    pub fn error(status: u16, message: impl Into<String>) -> Response {
        Response {
            status,
            body: json!({ "ok": false, "error": message.into() }),
        }
    }
}

/// A request waiting for a safe point.
pub struct Job {
    pub request: Request,
    /// The client: `unix` or its IP address and port.
    pub peer: String,
    reply: SyncSender<Response>,
    /// Set when the client stopped waiting: the job is skipped.
    abandoned: Arc<AtomicBool>,
}

impl Job {
    /// Sends the answer to the waiting client.
    pub fn answer(self, response: Response) {
        let _ = self.reply.send(response);
    }

    pub fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::SeqCst)
    }
}

/// The running endpoint, held by the Lua thread.
pub struct Control {
    jobs: Receiver<Job>,
    shared: Arc<ServerState>,
    socket_file: Option<PathBuf>,
}

impl Control {
    /// The queued jobs, to run now (at a safe point).
    pub fn pending(&self) -> Vec<Job> {
        self.shared
            .safe_point
            .store(self.shared.millis(), Ordering::Relaxed);
        self.jobs.try_iter().collect()
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if let Some(file) = &self.socket_file {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// What the server threads share.
struct ServerState {
    token: Option<String>,
    queue: SyncSender<Job>,
    connections: Mutex<Connections>,
    epoch: Instant,
    /// Milliseconds since `epoch` at the last safe point.
    safe_point: AtomicU64,
}

impl ServerState {
    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A place for one more connection from `peer` (`None`: a Unix socket client, or a TCP
    /// one whose address is unknown), or the answer that refuses it.
    fn take_slot(self: &Arc<Self>, peer: Option<IpAddr>) -> Result<Slot, Response> {
        let mut connections = self.connections();
        if let Some(peer) = peer {
            if connections.per_peer.get(&peer) >= Some(&MAX_CONNECTIONS_PER_PEER) {
                return Err(Response::error(
                    429,
                    format!("too many connections from {peer} (at most {MAX_CONNECTIONS_PER_PEER} at once)"),
                ));
            }
        }
        if connections.total >= MAX_CONNECTIONS {
            return Err(Response::error(503, "too many connections"));
        }
        connections.total += 1;
        if let Some(peer) = peer {
            *connections.per_peer.entry(peer).or_default() += 1;
        }
        Ok(Slot {
            shared: self.clone(),
            peer,
        })
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, Connections> {
        // Nothing panics while holding the lock; were it poisoned, the counts would still be
        // better than refusing every connection from then on.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The connections being served: in all, and per TCP peer (peers with none are removed).
#[derive(Default)]
struct Connections {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// One connection's place among those served at once, given back when dropped.
struct Slot {
    shared: Arc<ServerState>,
    peer: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut connections = self.shared.connections();
        connections.total -= 1;
        if let Some(peer) = self.peer {
            if let Some(count) = connections.per_peer.get_mut(&peer) {
                *count -= 1;
                if *count == 0 {
                    connections.per_peer.remove(&peer);
                }
            }
        }
    }
}

/// Who a TCP client is for [`MAX_CONNECTIONS_PER_PEER`]: its IPv4 address (also when it comes
/// IPv4-mapped), or the /64 network of its IPv6 address, since one host is usually given a
/// whole /64 and could otherwise open each connection from another address.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(ip) => IpAddr::V6(Ipv6Addr::from(u128::from(ip) & !(u128::MAX >> 64))),
        v4 => v4,
    }
}

/// Binds the endpoint (refusing what the security model forbids) and starts serving.
pub fn start(config: Config) -> Result<Control, String> {
    let (queue, jobs) = mpsc::sync_channel(QUEUE);
    let shared = Arc::new(ServerState {
        token: config.token,
        queue,
        connections: Mutex::default(),
        epoch: Instant::now(),
        safe_point: AtomicU64::new(0),
    });
    let mut socket_file = None;
    match config.addr {
        Addr::Tcp(addr) => {
            if shared.token.is_none() {
                return Err(format!(
                    "--control {addr} needs a token: --control-token-file FILE or HOTLUA_CONTROL_TOKEN"
                ));
            }
            if !is_loopback(addr.ip()) && !config.allow_remote {
                return Err(format!(
                    "--control {addr} is not a loopback address; add --control-allow-remote to listen there (and put TLS in front)"
                ));
            }
            let listener =
                TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let shared = shared.clone();
            spawn("hotlua-control", move || {
                for stream in listener.incoming().flatten() {
                    let address = stream.peer_addr().ok();
                    let peer = address.map_or_else(|| "tcp".into(), |a| a.to_string());
                    serve(&shared, stream, peer, address.map(|a| peer_key(a.ip())));
                }
            });
        }
        Addr::Unix(path) => {
            let listener = bind_unix(&path)?;
            socket_file = Some(path);
            let shared = shared.clone();
            spawn("hotlua-control", move || {
                for stream in listener.incoming().flatten() {
                    // Only this user can connect (the socket is 0600): no per-peer limit.
                    serve(&shared, stream, "unix".into(), None);
                }
            });
        }
    }
    Ok(Control {
        jobs,
        shared,
        socket_file,
    })
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_loopback())
        }
    }
}

/// Binds a Unix socket readable and writable by this user only. A socket file left by a
/// process that is gone is replaced; one that answers is refused.
fn bind_unix(path: &PathBuf) -> Result<UnixListener, String> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(format!("{} exists and is not a socket", path.display()));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(format!("{} is in use by another process", path.display()));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    Ok(listener)
}

/// Starts a thread with SIGINT blocked in it, so that Ctrl-C keeps reaching the Lua thread.
fn spawn(name: &str, body: impl FnOnce() + Send + 'static) {
    crate::signal::with_sigint_kept_here(|| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(body)
            .expect("cannot start a thread")
    });
}

/// Serves one connection on its own thread, or refuses it when its peer (`key`, see
/// [`peer_key`]) or the endpoint has too many open.
fn serve(shared: &Arc<ServerState>, mut stream: impl Stream, peer: String, key: Option<IpAddr>) {
    let slot = match shared.take_slot(key) {
        Ok(slot) => slot,
        Err(refusal) => {
            let _ = stream.set_write_timeout(Some(READ_TIME));
            respond(&mut stream, &refusal);
            return;
        }
    };
    // If the thread does not start, the closure (and the slot in it) is dropped at once.
    let _ = std::thread::Builder::new()
        .name("hotlua-control-conn".into())
        .spawn(move || {
            let response = handle(&slot.shared, &mut stream, &peer);
            let _ = stream.set_write_timeout(Some(READ_TIME));
            respond(&mut stream, &response);
            linger(&mut stream);
        });
}

/// Reads, authenticates and routes one request.
fn handle(shared: &ServerState, stream: &mut impl Stream, peer: &str) -> Response {
    let request = match read_request(stream) {
        Ok(request) => request,
        Err(response) => return response,
    };
    if let Some(token) = &shared.token {
        let given = request
            .authorization
            .as_deref()
            .and_then(|value| value.strip_prefix("Bearer "));
        if !given.is_some_and(|given| same(given.trim().as_bytes(), token.as_bytes())) {
            let why = if given.is_some() { "wrong" } else { "missing" };
            eprintln!(
                "hotlua: control: refused {} {} from {peer}: {why} token",
                request.method, request.path
            );
            return Response::error(401, format!("{why} bearer token"));
        }
    }
    let parse = |body: &[u8]| -> Result<Request, Response> {
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            b"{}".as_slice()
        } else {
            body
        };
        let bad = |e: serde_json::Error| Response::error(400, format!("bad JSON body: {e}"));
        Ok(match request.path.as_str() {
            "/reload" => Request::Reload(serde_json::from_slice(body).map_err(bad)?),
            "/check" => Request::Check(serde_json::from_slice(body).map_err(bad)?),
            _ => Request::Rollback(serde_json::from_slice(body).map_err(bad)?),
        })
    };
    let queued = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/health") => {
            let age = shared
                .millis()
                .saturating_sub(shared.safe_point.load(Ordering::Relaxed));
            return Response {
                status: 200,
                body: json!({ "ok": true, "pid": std::process::id(), "ms_since_safe_point": age }),
            };
        }
        ("GET", "/status") => Request::Status,
        ("POST", "/reload" | "/check" | "/rollback") => match parse(&request.body) {
            Ok(queued) => queued,
            Err(response) => return response,
        },
        (_, "/health" | "/status" | "/reload" | "/check" | "/rollback") => {
            return Response::error(405, format!("{} not allowed here", request.method))
        }
        (_, path) => return Response::error(404, format!("no endpoint {path}")),
    };
    let (reply, answer) = mpsc::sync_channel(1);
    let abandoned = Arc::new(AtomicBool::new(false));
    let job = Job {
        request: queued,
        peer: peer.to_owned(),
        reply,
        abandoned: abandoned.clone(),
    };
    match shared.queue.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Response::error(503, format!("queue full ({QUEUE} requests waiting)"))
        }
        Err(TrySendError::Disconnected(_)) => {
            return Response::error(503, "the program is shutting down")
        }
    }
    answer.recv_timeout(SAFE_POINT_WAIT).unwrap_or_else(|_| {
        abandoned.store(true, Ordering::SeqCst);
        Response::error(
            503,
            format!(
                "the program reached no safe point (hotlua.poll or hotlua.sleep) within {} s; request dropped",
                SAFE_POINT_WAIT.as_secs()
            ),
        )
    })
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_an_ipv4_address_or_an_ipv6_64() {
        let key = |text: &str| peer_key(text.parse().unwrap()).to_string();
        assert_eq!(key("127.0.0.2"), "127.0.0.2");
        assert_eq!(key("::ffff:10.1.2.3"), "10.1.2.3");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::");
        assert_eq!(key("::1"), "::");
    }
}
