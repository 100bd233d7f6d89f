//! A local HTTP server that checks each request a cloud client sends against a script of
//! documented requests, and answers with the documented responses: the contract tests of the
//! providers that have no emulator (GCP and Azure disk snapshots). Not a mock of offsite's own
//! traits: the real adapters, SDK clients and HTTP stacks talk to it over loopback TCP.
//!
//! Each [`Step`] names the method, the path, the query, the body, the `Authorization` header
//! where the client sends one, and the answer. `{base}` in an answer's headers or body is the
//! server's own URL (ARM's operation URLs are absolute).
//!
//! Requests are compared exactly: the query's pairs as a multiset (every pair the client sends
//! is named, none missing, none extra; a value `*` stands for one the test cannot know, such as
//! a random request id), a JSON body as a JSON value (every key and element; a string `"*"`
//! stands for a value the test cannot know, such as the time of the run), any other body byte
//! for byte, and a step without a body expects none. The expectations are checked when the
//! server is dropped, so a test that forgets [`FakeApi::finish`] still fails on a request that
//! broke the contract, one that never came, or one nobody expected.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The body a step expects.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body (or an empty one).
    Empty,
    /// A JSON document, compared as a JSON value (`"*"`: any value there).
    Json(Value),
    /// Anything else, byte for byte.
    Bytes(Vec<u8>),
}

/// One expected request and its answer.
#[derive(Debug, Clone)]
pub struct Step {
    /// The reference page the request and answer follow.
    pub doc: &'static str,
    pub method: &'static str,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Body,
    pub auth: Option<String>,
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub answer: Value,
    /// The request must come at least this long after the one before it (a `Retry-After`).
    pub after: Option<Duration>,
    /// Close the connection instead of answering (a connection reset).
    pub reset: bool,
}

impl Step {
    /// A request without a query or a body and without an auth check, answered 200 with
    /// `answer`.
    pub fn new(
        doc: &'static str,
        method: &'static str,
        path: impl Into<String>,
        answer: Value,
    ) -> Step {
        Step {
            doc,
            method,
            path: path.into(),
            query: vec![],
            body: Body::Empty,
            auth: None,
            status: 200,
            headers: vec![],
            answer,
            after: None,
            reset: false,
        }
    }

    pub fn query(mut self, k: &'static str, v: impl Into<String>) -> Step {
        self.query.push((k, v.into()));
        self
    }

    pub fn body(mut self, b: Value) -> Step {
        self.body = Body::Json(b);
        self
    }

    #[allow(dead_code)]
    pub fn raw_body(mut self, b: impl Into<Vec<u8>>) -> Step {
        self.body = Body::Bytes(b.into());
        self
    }

    pub fn auth(mut self, a: impl Into<String>) -> Step {
        self.auth = Some(a.into());
        self
    }

    pub fn status(mut self, s: u16) -> Step {
        self.status = s;
        self
    }

    pub fn header(mut self, k: &'static str, v: impl Into<String>) -> Step {
        self.headers.push((k, v.into()));
        self
    }

    /// The request must come at least `d` after the previous one.
    #[allow(dead_code)]
    pub fn not_sooner_than(mut self, d: Duration) -> Step {
        self.after = Some(d);
        self
    }

    /// The server reads the request, then closes the connection without an answer.
    #[allow(dead_code)]
    pub fn reset(mut self) -> Step {
        self.reset = true;
        self
    }
}

#[derive(Default)]
struct State {
    steps: VecDeque<Step>,
    served: Vec<String>,
    errors: Vec<String>,
    last: Option<Instant>,
}

/// The server; checks its expectations when dropped (see the module docs). Its thread ends
/// with the test process.
pub struct FakeApi {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    pub fn start(steps: Vec<Step>) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State {
            steps: steps.into(),
            ..State::default()
        }));
        let (st, base) = (state.clone(), url.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (st, base) = (st.clone(), base.clone());
                std::thread::spawn(move || serve(conn, &st, &base));
            }
        });
        FakeApi { url, state }
    }

    /// Asserts every step was served in order and every request matched its step (dropping
    /// the server asserts the same).
    #[track_caller]
    pub fn finish(&self) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        assert!(
            s.errors.is_empty(),
            "requests that broke the contract:\n{}\nserved:\n{}",
            s.errors.join("\n"),
            s.served.join("\n")
        );
        assert!(
            s.steps.is_empty(),
            "expected requests never came:\n{}\nserved:\n{}",
            s.steps
                .iter()
                .map(|x| format!("{} {} ({})", x.method, x.path, x.doc))
                .collect::<Vec<_>>()
                .join("\n"),
            s.served.join("\n")
        );
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        // A test already failing says why; a second panic would abort the process.
        if !std::thread::panicking() {
            self.finish();
        }
    }
}

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned();
    Some(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn serve(conn: TcpStream, state: &Mutex<State>, base: &str) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    while let Some(req) = read_request(&mut reader) {
        let Some((status, headers, body)) = answer(&req, state, base) else {
            return;
        };
        let mut out = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        if conn.write_all(out.as_bytes()).is_err() || conn.write_all(body.as_bytes()).is_err() {
            return;
        }
    }
}

/// An answer: status, headers and body.
type Answer = (u16, Vec<(String, String)>, String);

/// The answer to `req`; `None` to close the connection instead.
fn answer(req: &Request, state: &Mutex<State>, base: &str) -> Option<Answer> {
    let mut s = state.lock().unwrap();
    let seen = format!("{} {}", req.method, req.path);
    s.served.push(seen.clone());
    let previous = s.last.replace(Instant::now());
    let Some(step) = s.steps.pop_front() else {
        s.errors.push(format!("{seen}: no request was expected"));
        return Some((500, vec![], "{}".into()));
    };
    let mut wrong = Vec::new();
    if let (Some(after), Some(previous)) = (step.after, previous) {
        let gap = previous.elapsed();
        if gap < after {
            wrong.push(format!(
                "came {gap:?} after the request before it; expected at least {after:?}"
            ));
        }
    }
    if req.method != step.method || req.path != step.path {
        wrong.push(format!("expected {} {}", step.method, step.path));
    }
    if let Err(e) = same_query(&step.query, &req.query) {
        wrong.push(e);
    }
    let auth = req
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.clone());
    if let Some(a) = &step.auth {
        if auth.as_deref() != Some(a.as_str()) {
            wrong.push(format!("authorization: expected {a:?}, got {auth:?}"));
        }
    }
    if let Err(e) = same_body(&step.body, &req.body) {
        wrong.push(e);
    }
    if !wrong.is_empty() {
        s.errors
            .push(format!("{seen} ({}): {}", step.doc, wrong.join("; ")));
    }
    if step.reset {
        return None;
    }
    let fill = |t: &str| t.replace("{base}", base);
    Some((
        step.status,
        step.headers
            .iter()
            .map(|(k, v)| (k.to_string(), fill(v)))
            .collect(),
        fill(&step.answer.to_string()),
    ))
}

/// The query's pairs as a multiset: each expected pair matched by one pair the client sent
/// (`*`: any value), and nothing left over on either side.
fn same_query(expected: &[(&'static str, String)], got: &[(String, String)]) -> Result<(), String> {
    let mut left: Vec<&(String, String)> = got.iter().collect();
    let mut missing = Vec::new();
    // Exact pairs first, so that a `*` does not take the pair an exact one needs.
    let (exact, any): (Vec<_>, Vec<_>) = expected.iter().partition(|(_, v)| v != "*");
    for (k, v) in exact.into_iter().chain(any) {
        match left
            .iter()
            .position(|(n, g)| n == k && (v == "*" || g == v))
        {
            Some(i) => {
                left.remove(i);
            }
            None => missing.push(format!("{k}={v}")),
        }
    }
    if missing.is_empty() && left.is_empty() {
        return Ok(());
    }
    Err(format!(
        "query: expected {expected:?}, got {got:?} (missing {missing:?}, unexpected {:?})",
        left.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
    ))
}

fn same_body(expected: &Body, got: &[u8]) -> Result<(), String> {
    match expected {
        Body::Empty if got.is_empty() => Ok(()),
        Body::Empty => Err(format!(
            "body: expected none, got {:?}",
            String::from_utf8_lossy(got)
        )),
        Body::Bytes(b) if b == got => Ok(()),
        Body::Bytes(b) => Err(format!(
            "body: expected {:?}, got {:?}",
            String::from_utf8_lossy(b),
            String::from_utf8_lossy(got)
        )),
        Body::Json(e) => match serde_json::from_slice::<Value>(got) {
            Ok(g) => same_json(e, &g, "body"),
            Err(err) => Err(format!(
                "body is not JSON ({err}): {:?}",
                String::from_utf8_lossy(got)
            )),
        },
    }
}

/// `got` is `expected`: objects with the same keys, arrays of the same length, scalars equal;
/// the string `"*"` in `expected` matches any value.
fn same_json(expected: &Value, got: &Value, at: &str) -> Result<(), String> {
    match (expected, got) {
        (Value::String(s), _) if s == "*" => Ok(()),
        (Value::Object(e), Value::Object(g)) => {
            for (k, v) in e {
                match g.get(k) {
                    Some(gv) => same_json(v, gv, &format!("{at}.{k}"))?,
                    None => return Err(format!("{at}.{k} is missing (got {got})")),
                }
            }
            match g.keys().find(|k| !e.contains_key(*k)) {
                Some(k) => Err(format!("{at}.{k} is not expected (got {got})")),
                None => Ok(()),
            }
        }
        (Value::Array(e), Value::Array(g)) if e.len() == g.len() => {
            for (i, (ev, gv)) in e.iter().zip(g).enumerate() {
                same_json(ev, gv, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (e, g) if e == g => Ok(()),
        (e, g) => Err(format!("{at}: expected {e}, got {g}")),
    }
}

#[test]
fn fake_api_compares_queries_as_multisets_and_bodies_exactly() {
    let q = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let want = vec![("a", "1".to_string()), ("id", "*".to_string())];
    assert!(same_query(&want, &q(&[("id", "x"), ("a", "1")])).is_ok());
    assert!(same_query(&want, &q(&[("a", "1")])).is_err(), "missing");
    assert!(
        same_query(&want, &q(&[("a", "1"), ("id", "x"), ("p", "1")])).is_err(),
        "extra"
    );
    assert!(
        same_query(&want, &q(&[("a", "1"), ("id", "x"), ("a", "1")])).is_err(),
        "repeated"
    );
    assert!(same_query(&want, &q(&[("a", "2"), ("id", "x")])).is_err());
    let body = Body::Json(serde_json::json!({"a": [1, {"t": "*"}], "b": "x"}));
    assert!(same_body(&body, br#"{"b":"x","a":[1,{"t":"now"}]}"#).is_ok());
    assert!(same_body(&body, br#"{"b":"x","a":[1,{"t":"now"}],"c":1}"#).is_err());
    assert!(same_body(&body, br#"{"b":"x","a":[1,{"t":"now","u":2}]}"#).is_err());
    assert!(same_body(&body, br#"{"b":"x","a":[1,{"t":"now"},3]}"#).is_err());
    assert!(same_body(&body, br#"{"a":[1,{"t":"now"}]}"#).is_err());
    assert!(same_body(&Body::Empty, b"").is_ok());
    assert!(same_body(&Body::Empty, b"{}").is_err());
    assert!(same_body(&Body::Bytes(b"ab".to_vec()), b"ab").is_ok());
    assert!(same_body(&Body::Bytes(b"ab".to_vec()), b"abc").is_err());
}

#[test]
fn fake_api_that_is_dropped_with_a_step_unserved_fails_the_test() {
    let api = FakeApi::start(vec![Step::new("doc", "GET", "/x", Value::Null)]);
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(api)));
    let msg = dropped.expect_err("dropping with a step unserved panics");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("expected requests never came") && msg.contains("GET /x"),
        "{msg}"
    );
}

#[test]
fn fake_api_that_is_dropped_after_an_unexpected_request_fails_the_test() {
    let api = FakeApi::start(vec![]);
    let mut c = TcpStream::connect(api.url.trim_start_matches("http://")).unwrap();
    c.write_all(b"GET /nobody HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        .unwrap();
    let mut status = String::new();
    BufReader::new(c).read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 500"), "{status}");
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(api)));
    let msg = dropped.expect_err("dropping after an unexpected request panics");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("GET /nobody: no request was expected"),
        "{msg}"
    );
}
