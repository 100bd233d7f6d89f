//! The GCS adapter: the conformance suite on the emulator (gcp-storage-emulator behind the
//! project's launcher, tests/emulators/gcs_emulator.py), push/ls/verify/restore end to end,
//! resume after SIGKILL, retention; and the retention and hold requests checked against a
//! local HTTP server for their documented JSON API shape.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use offsite_gcs::{GcsConfig, GcsStore};
use offsite_storage::conformance::Fixture;
use offsite_storage::{ErrorKind, Location, Storage, StorageExt};

use crate::common::*;
use crate::proxy::Proxy;

pub async fn store(bucket: &str, prefix: &str) -> GcsStore {
    let endpoint = emulator("OFFSITE_TEST_GCS");
    let url = format!("gs://{bucket}/{prefix}?endpoint={endpoint}");
    let cfg = GcsConfig::from_location(&Location::parse(&url).unwrap()).unwrap();
    let s = GcsStore::open(cfg, &url).await.expect("open");
    s.create_bucket("test").await.expect("create bucket");
    s
}

mod conformance {
    use super::*;

    async fn setup() -> Fixture {
        Fixture::new(Arc::new(store("conformance", "suite").await))
    }

    offsite_storage::conformance_suite!(setup);
}

#[tokio::test(flavor = "multi_thread")]
async fn push_ls_verify_restore_on_gcs() {
    let sb = Sandbox::new();
    let name = bucket("rt");
    let s = store(&name, "app").await;
    let url = format!(
        "gs://{name}/app?endpoint={}&storage-class=NEARLINE",
        emulator("OFFSITE_TEST_GCS")
    );
    let src = sb.archive(NAME, 20 << 20, 5);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let head = s.head(&format!("{NAME}.age")).await.unwrap();
    assert_eq!(head.storage_class.as_deref(), Some("NEARLINE"));
    let m: serde_json::Value =
        serde_json::from_slice(&s.get_bytes(&format!("{NAME}.manifest.json")).await.unwrap())
            .unwrap();
    assert_eq!(
        m["stored"]["provider-checksum"]["algorithm"], "crc32c",
        "{m}"
    );
    assert_eq!(m["plaintext"]["sha256"], sha256_file(&src));

    let o = sb.cmd().args(["ls", &url]).output().unwrap();
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("complete     app-backup-20261126_020000.tar.gz"),
        "{}",
        stdout(&o)
    );
    let o = sb.cmd().args(["verify", &url]).output().unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).contains("crc32c"), "{}", stdout(&o));
    let o = sb
        .cmd()
        .args(["verify", "--deep", &url, "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = sb
        .cmd()
        .args(["restore", &url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));

    // Bytes changed at rest (same size): quick verify sees the CRC32C differ.
    let key = format!("{NAME}.age");
    let size = s.head(&key).await.unwrap().size as usize;
    s.put_bytes(
        &key,
        offsite_storage::conformance::pattern(size, 77),
        Default::default(),
    )
    .await
    .unwrap();
    let o = sb.cmd().args(["verify", &url]).output().unwrap();
    assert_code(&o, 4);
    assert!(stdout(&o).contains("CORRUPT"), "{}", stdout(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gcs_push_killed_mid_upload_resumes_from_the_persisted_offset() {
    let sb = Sandbox::new();
    let name = bucket("resume");
    let s = store(&name, "app").await;
    let proxy = Proxy::start(&emulator("OFFSITE_TEST_GCS"));
    proxy
        .throttle
        .store(8 << 20, std::sync::atomic::Ordering::Relaxed);
    let url = format!("gs://{name}/app?endpoint={}", proxy.endpoint);
    let src = sb.archive(NAME, 40 << 20, 8);
    let mut child = sb
        .std_cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Chunks are 8 MiB and sent one after another: past 18 MiB, two are persisted.
    let start = Instant::now();
    while proxy.forwarded() < (18 << 20) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "upload did not progress"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        s.head(&format!("{NAME}.age")).await.is_err(),
        "nothing visible before the last chunk"
    );
    proxy
        .throttle
        .store(0, std::sync::atomic::Ordering::Relaxed);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("resumed from the spool of an earlier run"),
        "{out}"
    );
    let line = out
        .lines()
        .find(|l| l.contains("parts were already on the server"))
        .unwrap_or_else(|| panic!("{out}"));
    let reused: u32 = line
        .split("upload: ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reused >= 2, "{line}");
    let o = sb
        .cmd()
        .args(["restore", &url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));
}

#[tokio::test(flavor = "multi_thread")]
async fn object_retention_on_gcs_covers_data_and_manifest_and_refuses_deletes() {
    let sb = Sandbox::new();
    let name = bucket("lock");
    // A bucket with object retention enabled (the launcher enforces it like GCS).
    let endpoint = emulator("OFFSITE_TEST_GCS");
    let http = reqwest_free_post(
        &format!("{endpoint}/storage/v1/b?project=test&enableObjectRetention=true"),
        &format!("{{\"name\":\"{name}\"}}"),
    );
    assert!(
        http.starts_with("HTTP/1.1 200") || http.starts_with("HTTP/1.0 200"),
        "{http}"
    );
    let url = format!("gs://{name}/app?endpoint={endpoint}&lock=governance&lock-days=2");
    let src = sb.archive(NAME, 100_000, 5);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let s = store(&name, "app").await;
    for key in [format!("{NAME}.age"), format!("{NAME}.manifest.json")] {
        let r = s
            .head(&key)
            .await
            .unwrap()
            .retention
            .unwrap_or_else(|| panic!("{key} not retained"));
        assert_eq!(r.mode, offsite_storage::LockMode::Governance);
        let e = s.delete(&key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    }
}

/// A minimal HTTP POST over a TCP socket (the tests have no HTTP client of their own).
fn reqwest_free_post(url: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "POST /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Follows https://cloud.google.com/storage/docs/json_api/v1/objects/patch and
/// https://cloud.google.com/storage/docs/object-lock#set-retention: retention is set with
/// `PATCH /storage/v1/b/BUCKET/o/OBJECT` and a body `{"retention": {"mode": "Unlocked"|"Locked",
/// "retainUntilTime": RFC 3339}}`; a temporary hold with `{"temporaryHold": true}`.
#[tokio::test(flavor = "multi_thread")]
async fn retention_and_hold_requests_match_the_json_api_reference_on_a_local_server() {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::<(
        String,
        String,
        serde_json::Value,
    )>::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap_or("").to_string(),
                parts.next().unwrap_or("").to_string(),
            );
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let json: serde_json::Value =
                serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            seen2.lock().unwrap().push((method, path, json));
            let resp = r#"{"name":"app/x","bucket":"bkt","size":"1","generation":"1"}"#;
            write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{resp}", resp.len()).unwrap();
        }
    });
    let url = format!("gs://bkt/app?endpoint={endpoint}");
    let s = GcsStore::open(
        GcsConfig::from_location(&Location::parse(&url).unwrap()).unwrap(),
        &url,
    )
    .await
    .unwrap();
    let until = chrono::DateTime::parse_from_rfc3339("2026-12-03T02:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    s.set_retention(
        "x",
        &offsite_storage::Retention {
            mode: offsite_storage::LockMode::Compliance,
            retain_until: until,
        },
    )
    .await
    .unwrap();
    s.set_hold("x", true).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, "PATCH");
    assert_eq!(seen[0].1, "/storage/v1/b/bkt/o/app%2Fx");
    assert_eq!(
        seen[0].2,
        serde_json::json!({"retention": {"mode": "Locked", "retainUntilTime": "2026-12-03T02:00:00Z"}})
    );
    assert_eq!(seen[1].0, "PATCH");
    assert_eq!(seen[1].2, serde_json::json!({"temporaryHold": true}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hold_on_gcs_keeps_data_and_manifest_and_missing_buckets_are_named() {
    let sb = Sandbox::new();
    let name = bucket("hold");
    let s = store(&name, "app").await;
    let url = format!(
        "gs://{name}/app?endpoint={}&legal-hold=true",
        emulator("OFFSITE_TEST_GCS")
    );
    let src = sb.archive(NAME, 10_000, 5);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    for key in [format!("{NAME}.age"), format!("{NAME}.manifest.json")] {
        assert!(s.head(&key).await.unwrap().legal_hold, "{key} held");
        let e = s.delete(&key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    }
    let url = format!(
        "gs://no-such-bucket-here/app?endpoint={}",
        emulator("OFFSITE_TEST_GCS")
    );
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("bucket \"no-such-bucket-here\" does not exist"),
        "{}",
        stderr(&o)
    );
}
