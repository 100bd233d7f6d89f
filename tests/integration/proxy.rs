//! A TCP proxy in front of a real emulator, for faults with real parts (DESIGN.md "Testing"):
//! it can slow the upload direction down, or cut every connection after some bytes, like a
//! server dying mid-upload.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An HTTP answer the proxy gives instead of forwarding.
#[derive(Clone)]
pub struct Answer {
    /// `503 Slow Down`.
    pub status: &'static str,
    /// Extra header lines, each ending in `\r\n`.
    pub headers: &'static str,
    pub body: &'static str,
}

impl Answer {
    pub const INTERNAL_ERROR: Answer = Answer {
        status: "500 Internal Server Error",
        headers: "Content-Type: application/xml\r\n",
        body: "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>injected by the test proxy</Message></Error>",
    };
    /// What S3 answers a request rate it will not take
    /// (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html: SlowDown, 503).
    pub const S3_SLOW_DOWN: Answer = Answer {
        status: "503 Slow Down",
        headers: "Content-Type: application/xml\r\n",
        body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
    };
    /// GCS's rate limit (https://cloud.google.com/storage/docs/json_api/v1/status-codes#429).
    pub const GCS_TOO_MANY_REQUESTS: Answer = Answer {
        status: "429 Too Many Requests",
        headers: "Content-Type: application/json\r\n",
        body: "{\"error\":{\"code\":429,\"message\":\"The rate of requests exceeds the rate limit.\",\"errors\":[{\"reason\":\"rateLimitExceeded\",\"domain\":\"usageLimits\"}]}}",
    };
    /// Azure Storage's throttling answer
    /// (https://learn.microsoft.com/rest/api/storageservices/common-rest-api-error-codes: ServerBusy, 503).
    pub const AZURE_SERVER_BUSY: Answer = Answer {
        status: "503 Server Busy",
        headers: "Content-Type: application/xml\r\nx-ms-error-code: ServerBusy\r\nx-ms-request-id: 1\r\n",
        body: "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code><Message>Operations per second is over the account limit.</Message></Error>",
    };
}

pub struct Proxy {
    pub endpoint: String,
    /// Client-to-server bytes per second; 0 is unlimited.
    pub throttle: Arc<AtomicU64>,
    /// Cut connections once this many client-to-server bytes have passed in all; 0 is never.
    pub cut_after: Arc<AtomicU64>,
    /// The next this many connections are answered with [`Proxy::answer`] (after the request
    /// head, then closed) instead of forwarded: a server failing, then recovering.
    pub fail_next: Arc<AtomicU64>,
    /// When set, only connections whose request line contains this fail.
    pub fail_only: Arc<Mutex<Option<String>>>,
    /// What a failed connection is answered: `500 Internal Server Error` unless changed.
    pub answer: Arc<Mutex<Answer>>,
    /// How many connections were failed.
    pub failed: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy to `target` (`http://127.0.0.1:PORT`).
    pub fn start(target: &str) -> Proxy {
        let target = target.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let throttle = Arc::new(AtomicU64::new(0));
        let cut_after = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let fail_next = Arc::new(AtomicU64::new(0));
        let fail_only = Arc::new(Mutex::new(None::<String>));
        let answer = Arc::new(Mutex::new(Answer::INTERNAL_ERROR));
        let failed = Arc::new(AtomicU64::new(0));
        let (fail, fails) = (fail_next.clone(), failed.clone());
        let (only, answering) = (fail_only.clone(), answer.clone());
        let (t, c, f, s) = (
            throttle.clone(),
            cut_after.clone(),
            forwarded.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let limits: Limits = (t.clone(), c.clone(), f.clone());
                if fail.load(Ordering::Relaxed) == 0 {
                    forward(client, &target, Vec::new(), limits);
                    continue;
                }
                // Failing: read the request head to decide, then answer or forward it.
                let (fail, fails, only, answering) =
                    (fail.clone(), fails.clone(), only.clone(), answering.clone());
                let target = target.clone();
                std::thread::spawn(move || {
                    let Some(head) = read_head(&client) else {
                        return;
                    };
                    let line = String::from_utf8_lossy(&head);
                    let line = line.lines().next().unwrap_or_default();
                    let matches = only
                        .lock()
                        .unwrap()
                        .as_deref()
                        .is_none_or(|p| line.contains(p));
                    let failing = matches
                        && fail
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            })
                            .is_ok();
                    if failing {
                        fails.fetch_add(1, Ordering::Relaxed);
                        let a = answering.lock().unwrap().clone();
                        send_answer(client, &a);
                    } else {
                        forward(client, &target, head, limits);
                    }
                });
            }
        });
        Proxy {
            endpoint,
            throttle,
            cut_after,
            fail_next,
            fail_only,
            answer,
            failed,
            forwarded,
            stop,
        }
    }

    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

/// Reads a connection's first request head (and whatever of its body came with it).
fn read_head(mut client: &TcpStream) -> Option<Vec<u8>> {
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = client.set_read_timeout(None);
    Some(head)
}

/// Answers a request whose head was read, then closes, as a failing server does.
fn send_answer(mut client: TcpStream, a: &Answer) {
    let _ = write!(
        client,
        "HTTP/1.1 {}\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        a.status,
        a.headers,
        a.body.len(),
        a.body
    );
    let _ = client.shutdown(Shutdown::Both);
}

/// Connects to the server, sends what was already read from the client, and pipes the rest
/// both ways.
fn forward(client: TcpStream, target: &str, already: Vec<u8>, limits: Limits) {
    let Ok(mut server) = TcpStream::connect(target) else {
        return;
    };
    if !already.is_empty() {
        limits.2.fetch_add(already.len() as u64, Ordering::Relaxed);
        if server.write_all(&already).is_err() {
            return;
        }
    }
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || pipe(client, server, Some(limits)));
    std::thread::spawn(move || pipe(s2, c2, None));
}

type Limits = (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>);

fn pipe(mut from: TcpStream, mut to: TcpStream, limits: Option<Limits>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((throttle, cut, fwd)) = &limits {
            let total = fwd.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            let cut_at = cut.load(Ordering::Relaxed);
            if cut_at > 0 && total > cut_at {
                break;
            }
            let bps = throttle.load(Ordering::Relaxed);
            if bps > 0 {
                std::thread::sleep(Duration::from_secs_f64(n as f64 / bps as f64));
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// SIGKILLs `push` (going through `proxy`, slowed to 8 MiB/s) once `kill_after` bytes have
/// passed; returns when it is dead and its buffered bytes have drained.
pub fn kill_mid_upload(proxy: &Proxy, mut push: std::process::Command, kill_after: u64) {
    proxy.throttle.store(8 << 20, Ordering::Relaxed);
    let mut child = push
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while proxy.forwarded() < kill_after {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the upload did not progress"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    proxy.throttle.store(0, Ordering::Relaxed);
    // The dead client's socket buffers still drain through the proxy; wait until they have.
    let mut seen = proxy.forwarded();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = proxy.forwarded();
        if now == seen {
            break;
        }
        seen = now;
    }
}

/// Runs the push again and checks that it resumed: returns the parts it found on the server
/// and the bytes it sent through the proxy.
pub fn rerun_resumed(proxy: &Proxy, mut push: assert_cmd::Command) -> (u32, u64) {
    let before = proxy.forwarded();
    let o = push.output().unwrap();
    crate::common::assert_code(&o, 0);
    let out = crate::common::stdout(&o);
    assert!(
        out.contains("resumed from the spool of an earlier run"),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.contains("parts were already on the server"))
        .unwrap_or_else(|| panic!("{out}"));
    let reused = line
        .split("upload: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (reused, proxy.forwarded() - before)
}

/// One request as a [`RecordingServer`] saw it.
pub struct Recorded {
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A local HTTP server that records every request and answers each with `body` (JSON, 200):
/// for checking requests against a provider's documented REST shape where no emulator
/// implements the call.
pub struct RecordingServer {
    pub endpoint: String,
    pub requests: Arc<std::sync::Mutex<Vec<Recorded>>>,
}

impl RecordingServer {
    pub fn start(body: &'static str) -> RecordingServer {
        Self::answering(move |_| {
            (
                "Content-Type: application/json\r\n".to_string(),
                body.to_string(),
            )
        })
    }

    /// A server whose answer to each request (extra header lines, each ending in `\r\n`, and a
    /// body) `answer` decides; always 200.
    pub fn answering(
        answer: impl Fn(&Recorded) -> (String, String) + Send + 'static,
    ) -> RecordingServer {
        Self::answering_with_status(move |r| {
            let (extra, body) = answer(r);
            (200, extra, body)
        })
    }

    /// The same, with the status code decided per request too.
    pub fn answering_with_status(
        answer: impl Fn(&Recorded) -> (u16, String, String) + Send + 'static,
    ) -> RecordingServer {
        use std::io::BufRead;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.trim_end().split_once(':') {
                        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                let mut req_body = vec![0u8; len];
                reader.read_exact(&mut req_body).unwrap();
                let recorded = Recorded {
                    line: line.trim().to_string(),
                    headers,
                    body: req_body,
                };
                let (status, extra, body) = answer(&recorded);
                seen.lock().unwrap().push(recorded);
                let reason = match status {
                    200 => "OK",
                    201 => "Created",
                    404 => "Not Found",
                    _ => "Status",
                };
                // An answer to HEAD says the length of what GET would send, and sends nothing.
                let length = if extra.to_ascii_lowercase().contains("content-length:") {
                    String::new()
                } else {
                    format!("Content-Length: {}\r\n", body.len())
                };
                write!(
                    conn,
                    "HTTP/1.1 {status} {reason}\r\n{extra}{length}x-ms-request-id: 1\r\nConnection: close\r\n\r\n{body}"
                )
                .unwrap();
            }
        });
        RecordingServer { endpoint, requests }
    }
}
