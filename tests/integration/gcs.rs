//! The GCS adapter: the conformance suite on the emulator (gcp-storage-emulator behind the
//! project's launcher, tests/emulators/gcs_emulator.py), push/ls/verify/restore end to end,
//! resume after SIGKILL, bucket creation, retention and its extension; and the bucket insert,
//! retention and hold requests checked against a local HTTP server for their documented JSON
//! API shape.

use std::sync::Arc;

use futures::TryStreamExt;
use offsite_gcs::{GcsConfig, GcsStore};
use offsite_storage::conformance::Fixture;
use offsite_storage::{
    CreateOptions, ErrorKind, Location, LockMode, Retention, Storage, StorageExt,
};

use crate::common::*;
use crate::proxy::{kill_mid_upload, rerun_resumed, Proxy, RecordingServer};

/// A store on the emulator whose bucket has been created (in project `test`) with `options`.
pub async fn store_with(bucket: &str, prefix: &str, mut options: CreateOptions) -> GcsStore {
    let endpoint = emulator("OFFSITE_TEST_GCS");
    let url = format!("gs://{bucket}/{prefix}?endpoint={endpoint}");
    let cfg = GcsConfig::from_location(&Location::parse(&url).unwrap()).unwrap();
    let s = GcsStore::open(cfg, &url).await.expect("open");
    options.project = Some("test".into());
    s.create_location(&options).await.expect("create bucket");
    s
}

pub async fn store(bucket: &str, prefix: &str) -> GcsStore {
    store_with(bucket, prefix, CreateOptions::default()).await
}

fn locked() -> CreateOptions {
    let mut o = CreateOptions::default();
    o.object_lock = true;
    o
}

/// A store on a local recording server (answering `body` to everything).
async fn recorded_store(server: &RecordingServer) -> GcsStore {
    let url = format!("gs://bkt/app?endpoint={}", server.endpoint);
    GcsStore::open(
        GcsConfig::from_location(&Location::parse(&url).unwrap()).unwrap(),
        &url,
    )
    .await
    .unwrap()
}

fn utc(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

mod conformance {
    use super::*;

    async fn setup() -> Fixture {
        Fixture::new(Arc::new(store("conformance", "suite").await))
    }

    /// The cases the GCS emulator (behind the project's launcher) fails: none.
    const EXCLUDED: &[offsite_storage::conformance::Exclusion] = &[];

    offsite_storage::conformance_suite!(setup, except = EXCLUDED);

    #[tokio::test(flavor = "multi_thread")]
    async fn storage_class_reads_back() {
        let s = store("conformance", "class").await;
        offsite_storage::conformance::storage_class_reads_back(&s, "NEARLINE").await;
    }
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
    let s = store_with(&name, "app", locked()).await;
    let endpoint = emulator("OFFSITE_TEST_GCS");
    let url = format!("gs://{name}/app?endpoint={endpoint}&lock=governance&lock-days=2");
    let src = sb.archive(NAME, 100_000, 5);
    let o = sb.push_via(sb.cmd(), &src, &url);
    assert_code(&o, 0);
    let versions: Vec<_> = s.list_versions("").try_collect().await.unwrap();
    for key in [format!("{NAME}.age"), format!("{NAME}.manifest.json")] {
        let r = s
            .head(&key)
            .await
            .unwrap()
            .retention
            .unwrap_or_else(|| panic!("{key} not retained"));
        assert_eq!(r.mode, LockMode::Governance);
        let e = s.delete(&key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
        // Deleting the generation itself is refused the same way.
        let v = versions
            .iter()
            .find(|v| v.key == key && v.latest)
            .unwrap_or_else(|| panic!("{key} in {versions:?}"));
        let e = s.delete_version(&key, &v.version).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    }
}

/// The conformance case for retention extension, on a bucket created with object retention
/// (the launcher refuses to shorten a lock or delete a locked object, as GCS does).
#[tokio::test(flavor = "multi_thread")]
async fn retention_is_extended_never_shortened_on_a_gcs_bucket_with_object_retention() {
    let s = store_with(&bucket("extend"), "suite", locked()).await;
    offsite_storage::conformance::retention_is_extended_never_shortened(&s).await;
}

/// `create` on GCS: a bucket with object retention is created, then found; object retention
/// asked of a bucket made without it is refused with the way out; versioning is turned on for
/// an existing bucket; with no project an existing bucket is still reported as existing.
#[tokio::test(flavor = "multi_thread")]
async fn create_location_on_gcs_makes_retention_buckets_and_refuses_to_pretend() {
    let endpoint = emulator("OFFSITE_TEST_GCS");
    let open = |name: String| {
        let url = format!("gs://{name}/app?endpoint={endpoint}");
        async move {
            let cfg = GcsConfig::from_location(&Location::parse(&url).unwrap()).unwrap();
            GcsStore::open(cfg, &url).await.unwrap()
        }
    };
    let with_project = |mut o: CreateOptions| {
        o.project = Some("test".into());
        o
    };
    let s = open(bucket("mk")).await;
    assert!(
        s.create_location(&with_project(locked())).await.unwrap(),
        "created"
    );
    assert!(
        !s.create_location(&with_project(locked())).await.unwrap(),
        "exists"
    );
    assert!(
        !s.create_location(&locked()).await.unwrap(),
        "exists, found without a project"
    );

    let plain = open(bucket("mkplain")).await;
    assert!(plain
        .create_location(&with_project(CreateOptions::default()))
        .await
        .unwrap());
    let e = plain
        .create_location(&with_project(locked()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
    assert!(
        e.to_string()
            .contains("create a new bucket with --object-lock"),
        "{e}"
    );
    let mut versioned = CreateOptions::default();
    versioned.versioning = true;
    assert!(
        !plain
            .create_location(&with_project(versioned))
            .await
            .unwrap(),
        "versioning turned on"
    );
}

/// Follows https://cloud.google.com/storage/docs/json_api/v1/buckets/insert: `POST
/// /storage/v1/b?project=P`, with `enableObjectRetention=true` for object retention, and a body
/// `{"name": BUCKET, "versioning": {"enabled": true}}`.
#[tokio::test(flavor = "multi_thread")]
async fn bucket_insert_requests_match_the_json_api_reference_on_a_local_server() {
    let server = RecordingServer::start(r#"{"name":"bkt"}"#);
    let s = recorded_store(&server).await;
    let mut o = CreateOptions::default();
    o.versioning = true;
    o.object_lock = true;
    o.project = Some("my-project".into());
    assert!(s.create_location(&o).await.unwrap(), "created");
    let seen = server.requests.lock().unwrap();
    assert_eq!(seen.len(), 1, "one request");
    assert!(
        seen[0]
            .line
            .starts_with("POST /storage/v1/b?project=my-project&enableObjectRetention=true "),
        "{}",
        seen[0].line
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&seen[0].body).unwrap(),
        serde_json::json!({"name": "bkt", "versioning": {"enabled": true}})
    );
}

/// Follows https://cloud.google.com/storage/docs/object-lock and the JSON API's objects/get and
/// objects/patch: the object's retention is read (`GET /storage/v1/b/BUCKET/o/OBJECT`) and, only
/// when the new date is later, set with `PATCH` and `{"retention": {"mode", "retainUntilTime"}}`;
/// a `Locked` retention is sent back `Locked` (it can be extended, never weakened).
#[tokio::test(flavor = "multi_thread")]
async fn extend_retention_requests_match_the_json_api_reference_on_a_local_server() {
    let server = RecordingServer::start(
        r#"{"name":"app/x","bucket":"bkt","size":"1","generation":"1","retention":{"mode":"Unlocked","retainUntilTime":"2026-12-03T02:00:00Z"}}"#,
    );
    let s = recorded_store(&server).await;
    let gov = |t| Retention {
        mode: LockMode::Governance,
        retain_until: utc(t),
    };
    let kept = s
        .extend_retention("x", gov("2026-12-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(kept, gov("2026-12-03T02:00:00Z"), "the longer lock stays");
    {
        let seen = server.requests.lock().unwrap();
        assert_eq!(seen.len(), 1, "a shorter ask sends no change");
        assert!(
            seen[0].line.starts_with("GET /storage/v1/b/bkt/o/app%2Fx "),
            "{}",
            seen[0].line
        );
    }
    let longer = s
        .extend_retention("x", gov("2026-12-10T02:00:00Z"))
        .await
        .unwrap();
    assert_eq!(longer, gov("2026-12-10T02:00:00Z"));
    {
        let seen = server.requests.lock().unwrap();
        assert_eq!(seen.len(), 3, "read, then one PATCH");
        assert!(
            seen[2]
                .line
                .starts_with("PATCH /storage/v1/b/bkt/o/app%2Fx "),
            "{}",
            seen[2].line
        );
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&seen[2].body).unwrap(),
            serde_json::json!({"retention": {"mode": "Unlocked", "retainUntilTime": "2026-12-10T02:00:00Z"}})
        );
    }

    let server = RecordingServer::start(
        r#"{"name":"app/x","bucket":"bkt","size":"1","generation":"1","retention":{"mode":"Locked","retainUntilTime":"2026-12-03T02:00:00Z"}}"#,
    );
    let s = recorded_store(&server).await;
    let r = s
        .extend_retention("x", gov("2026-12-10T02:00:00Z"))
        .await
        .unwrap();
    assert_eq!(r.mode, LockMode::Compliance, "compliance stays compliance");
    let seen = server.requests.lock().unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&seen[1].body).unwrap()["retention"]["mode"],
        "Locked"
    );
}

/// Follows https://cloud.google.com/storage/docs/json_api/v1/objects/patch and
/// https://cloud.google.com/storage/docs/object-lock#set-retention: retention is set with
/// `PATCH /storage/v1/b/BUCKET/o/OBJECT` and a body `{"retention": {"mode": "Unlocked"|"Locked",
/// "retainUntilTime": RFC 3339}}`; a temporary hold with `{"temporaryHold": true}`.
#[tokio::test(flavor = "multi_thread")]
async fn retention_and_hold_requests_match_the_json_api_reference_on_a_local_server() {
    let server =
        RecordingServer::start(r#"{"name":"app/x","bucket":"bkt","size":"1","generation":"1"}"#);
    let s = recorded_store(&server).await;
    s.set_retention(
        "x",
        &Retention {
            mode: LockMode::Compliance,
            retain_until: utc("2026-12-03T02:00:00Z"),
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

/// A store that cannot be opened for want of credentials is a failure (exit 1) for ls, verify
/// and restore, not a usage error: the command line was right.
#[test]
fn missing_gcs_credentials_are_exit_1_not_a_usage_error() {
    let sb = Sandbox::new();
    for args in [
        vec!["ls", "gs://offsite-no-such/x"],
        vec!["verify", "gs://offsite-no-such/x"],
        vec!["restore", "gs://offsite-no-such/x", "--latest", "-o", "out"],
    ] {
        let o = sb
            .cmd()
            .env_remove("STORAGE_EMULATOR_HOST")
            .env(
                "GOOGLE_APPLICATION_CREDENTIALS",
                sb.path("no-such-key.json"),
            )
            .args(&args)
            .output()
            .unwrap();
        assert_code(&o, 1);
        assert!(
            stderr(&o).contains("no Google credentials found"),
            "{}",
            stderr(&o)
        );
    }
}
