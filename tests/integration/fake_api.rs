//! A local HTTP server that checks each request a cloud client sends against a script of
//! documented requests, and answers with the documented responses: the contract tests of the
//! providers that have no emulator (GCP and Azure disk snapshots). Not a mock of offsite's own
//! traits: the real adapters, SDK clients and HTTP stacks talk to it over loopback TCP.
//!
//! Each [`Step`] names the method, the path, query pairs that must be there (`*`: any value),
//! body fields that must be there with these values (a subset; `"*"`: present with any value),
//! the `Authorization` header where the client sends one, and the answer. `{base}` in an
//! answer's headers or body is the server's own URL (ARM's operation URLs are absolute).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// One expected request and its answer.
#[derive(Debug, Clone)]
pub struct Step {
    /// The reference page the request and answer follow.
    pub doc: &'static str,
    pub method: &'static str,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Value>,
    pub auth: Option<String>,
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub answer: Value,
}

impl Step {
    /// A request without query, body or auth checks, answered 200 with `answer`.
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
            body: None,
            auth: None,
            status: 200,
            headers: vec![],
            answer,
        }
    }

    pub fn query(mut self, k: &'static str, v: impl Into<String>) -> Step {
        self.query.push((k, v.into()));
        self
    }

    pub fn body(mut self, b: Value) -> Step {
        self.body = Some(b);
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
}

#[derive(Default)]
struct State {
    steps: VecDeque<Step>,
    served: Vec<String>,
    errors: Vec<String>,
}

/// The server; stops accepting when dropped (its thread ends with the test process).
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

    /// Asserts every step was served in order and every request matched its step.
    #[track_caller]
    pub fn finish(&self) {
        let s = self.state.lock().unwrap();
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
        let (status, headers, body) = answer(&req, state, base);
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

fn answer(req: &Request, state: &Mutex<State>, base: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = state.lock().unwrap();
    let seen = format!("{} {}", req.method, req.path);
    s.served.push(seen.clone());
    let Some(step) = s.steps.pop_front() else {
        s.errors.push(format!("{seen}: no request was expected"));
        return (500, vec![], "{}".into());
    };
    let mut wrong = Vec::new();
    if req.method != step.method || req.path != step.path {
        wrong.push(format!("expected {} {}", step.method, step.path));
    }
    for (k, v) in &step.query {
        match req.query.iter().find(|(n, _)| n == k) {
            Some((_, got)) if v == "*" || got == v => {}
            got => wrong.push(format!(
                "query {k}: expected {v:?}, got {:?}",
                got.map(|g| &g.1)
            )),
        }
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
    if let Some(expected) = &step.body {
        match serde_json::from_slice::<Value>(&req.body) {
            Ok(got) => {
                if let Err(e) = subset(expected, &got, "body") {
                    wrong.push(e);
                }
            }
            Err(e) => wrong.push(format!("body is not JSON: {e}")),
        }
    }
    if !wrong.is_empty() {
        s.errors
            .push(format!("{seen} ({}): {}", step.doc, wrong.join("; ")));
    }
    let fill = |t: &str| t.replace("{base}", base);
    (
        step.status,
        step.headers
            .iter()
            .map(|(k, v)| (k.to_string(), fill(v)))
            .collect(),
        fill(&step.answer.to_string()),
    )
}

/// `expected` is in `got`: every key of an object with an equal (or `"*"`: any) value; arrays
/// and scalars equal.
fn subset(expected: &Value, got: &Value, at: &str) -> Result<(), String> {
    match (expected, got) {
        (Value::String(s), _) if s == "*" => Ok(()),
        (Value::Object(e), Value::Object(g)) => {
            for (k, v) in e {
                match g.get(k) {
                    Some(gv) => subset(v, gv, &format!("{at}.{k}"))?,
                    None => return Err(format!("{at}.{k} is missing (got {got})")),
                }
            }
            Ok(())
        }
        (e, g) if e == g => Ok(()),
        (e, g) => Err(format!("{at}: expected {e}, got {g}")),
    }
}
