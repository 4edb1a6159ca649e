//! The HTTP/1.1 wire of the control endpoint: reading one bounded request, writing one
//! answer, over TCP or a Unix socket.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::{Response, MAX_BODY, MAX_HEAD, MAX_HEADERS, READ_TIME};

/// A connection: TCP or Unix.
pub(super) trait Stream: Read + Write + Send + 'static {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    fn shutdown_write(&self);
}

impl Stream for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl Stream for UnixStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_write_timeout(self, timeout)
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

/// After the answer, reads (and drops) what the client still sends, for a bounded time and
/// size: closing with unread data would reset the connection, and the client could lose the
/// answer (a 413 sent before the body was read).
pub(super) fn linger(stream: &mut impl Stream) {
    stream.shutdown_write();
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut left = 4 * MAX_BODY;
    let mut chunk = [0u8; 4096];
    while left > 0 {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() || stream.set_read_timeout(Some(wait)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// One request as read: what routing and authentication need.
pub(super) struct HttpRequest {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) authorization: Option<String>,
    pub(super) body: Vec<u8>,
}

/// Reads one request within [`READ_TIME`] and the size limits.
pub(super) fn read_request(stream: &mut impl Stream) -> Result<HttpRequest, Response> {
    let deadline = Instant::now() + READ_TIME;
    let timed_out = || Response::error(408, "request not received in time");
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let read = |stream: &mut dyn Stream, chunk: &mut [u8]| -> Result<usize, Response> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(chunk) {
            Ok(0) => Err(Response::error(400, "connection closed mid-request")),
            Ok(n) => Ok(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(timed_out())
            }
            Err(e) => Err(Response::error(400, e.to_string())),
        }
    };
    loop {
        let n = read(stream, &mut chunk)?;
        buffer.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buffer) {
            Ok(httparse::Status::Complete(head)) => {
                let mut length = None;
                let mut authorization = None;
                for header in parsed.headers.iter() {
                    let value = String::from_utf8_lossy(header.value).into_owned();
                    if header.name.eq_ignore_ascii_case("content-length") {
                        let this = content_length(&value)?;
                        if length.is_some_and(|length| length != this) {
                            return Err(Response::error(400, "conflicting Content-Length headers"));
                        }
                        length = Some(this);
                    } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(Response::error(411, "send a Content-Length, not chunks"));
                    } else if header.name.eq_ignore_ascii_case("authorization") {
                        authorization = Some(value);
                    }
                }
                let length = length.unwrap_or(0);
                if length > MAX_BODY {
                    return Err(Response::error(
                        413,
                        format!("body of {length} bytes; at most {MAX_BODY}"),
                    ));
                }
                let method = parsed.method.unwrap_or("").to_owned();
                let path = parsed.path.unwrap_or("").to_owned();
                let mut body = buffer[head..].to_vec();
                while body.len() < length {
                    let n = read(stream, &mut chunk)?;
                    body.extend_from_slice(&chunk[..n]);
                }
                body.truncate(length);
                return Ok(HttpRequest {
                    method,
                    path,
                    authorization,
                    body,
                });
            }
            Ok(httparse::Status::Partial) if buffer.len() > MAX_HEAD => {
                return Err(Response::error(431, "request head too large"))
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Response::error(
                    431,
                    format!("more than {MAX_HEADERS} headers"),
                ))
            }
            Err(e) => return Err(Response::error(400, format!("bad request: {e}"))),
        }
    }
}

/// A `Content-Length` value: decimal digits only (RFC 9110, 8.6). Rust's `usize` parser also
/// takes a `+` sign, which a proxy in front may read differently: a smuggling risk.
fn content_length(value: &str) -> Result<usize, Response> {
    let digits = value.trim();
    let bad = || Response::error(400, format!("bad Content-Length '{value}'"));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits.parse().map_err(|_| bad())
}

pub(super) fn respond(stream: &mut impl Write, response: &Response) {
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let body = format!("{}\n", response.body);
    let mut text = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        body.len()
    );
    if response.status == 401 {
        text.push_str("WWW-Authenticate: Bearer\r\n");
    }
    text.push_str("\r\n");
    text.push_str(&body);
    let _ = stream.write_all(text.as_bytes());
    let _ = stream.flush();
}
