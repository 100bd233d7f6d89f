//! The GCS adapter: the conformance suite on the emulator (gcp-storage-emulator behind the
//! project's launcher, tests/emulators/gcs_emulator.py), push/ls/verify/restore end to end,
//! resume after SIGKILL, retention; and the retention and hold requests checked against a
//! local HTTP server for their documented JSON API shape.

use std::sync::Arc;

use offsite_gcs::{GcsConfig, GcsStore};
use offsite_storage::conformance::Fixture;
use offsite_storage::{ErrorKind, Location, Storage, StorageExt};

use crate::common::*;
use crate::proxy::{kill_mid_upload, rerun_resumed, Proxy, RecordingServer};

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
    let o = sb.push_via(sb.cmd(), &src, &url);
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
    let url = format!("gs://{name}/app?endpoint={}", proxy.endpoint);
    let src = sb.archive(NAME, 40 << 20, 8);
    let mut push = sb.std_cmd();
    push.arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url]);
    // Chunks are 8 MiB and go one after another: past 18 MiB, two are persisted.
    kill_mid_upload(&proxy, push, 18 << 20);
    assert!(
        s.head(&format!("{NAME}.age")).await.is_err(),
        "nothing visible before the last chunk"
    );
    let mut again = sb.cmd();
    again
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url]);
    let (reused, _) = rerun_resumed(&proxy, again);
    assert!(reused >= 2, "{reused} chunks reused");
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
    let o = sb.push_via(sb.cmd(), &src, &url);
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
    let server =
        RecordingServer::start(r#"{"name":"app/x","bucket":"bkt","size":"1","generation":"1"}"#);
    let url = format!("gs://bkt/app?endpoint={}", server.endpoint);
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
    let seen = server.requests.lock().unwrap();
    let json = |i: usize| serde_json::from_slice::<serde_json::Value>(&seen[i].body).unwrap();
    assert!(
        seen[0]
            .line
            .starts_with("PATCH /storage/v1/b/bkt/o/app%2Fx "),
        "{}",
        seen[0].line
    );
    assert_eq!(
        json(0),
        serde_json::json!({"retention": {"mode": "Locked", "retainUntilTime": "2026-12-03T02:00:00Z"}})
    );
    assert!(
        seen[1]
            .line
            .starts_with("PATCH /storage/v1/b/bkt/o/app%2Fx "),
        "{}",
        seen[1].line
    );
    assert_eq!(json(1), serde_json::json!({"temporaryHold": true}));
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
    let o = sb.push_via(sb.cmd(), &src, &url);
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
    let o = sb.push_via(sb.cmd(), &src, &url);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("bucket \"no-such-bucket-here\" does not exist"),
        "{}",
        stderr(&o)
    );
}
