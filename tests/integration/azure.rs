//! The Azure adapter on Azurite: the conformance suite, push/ls/verify/restore end to end,
//! resume after SIGKILL from the uncommitted block list, shared-key errors; and the
//! immutability-policy and legal-hold requests (which Azurite does not implement) checked
//! against a local HTTP server for their documented REST shape.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use offsite_azure::{AzureConfig, AzureStore};
use offsite_storage::conformance::Fixture;
use offsite_storage::{Location, Storage, StorageExt};

use crate::common::*;
use crate::proxy::Proxy;

/// Azurite's published development account and key (Azurite README); not a secret.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn connection_string(endpoint: &str) -> String {
    format!("DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};")
}

pub async fn store(container: &str, prefix: &str) -> AzureStore {
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let url = format!("az://{AZURITE_ACCOUNT}/{container}/{prefix}");
    let cs = connection_string(&endpoint);
    let cfg = AzureConfig::from_location_with(&Location::parse(&url).unwrap(), |k| {
        (k == "AZURE_STORAGE_CONNECTION_STRING").then(|| cs.clone())
    })
    .unwrap();
    let s = AzureStore::open(cfg, &url).unwrap();
    s.create_container().await.expect("create container");
    s
}

impl Sandbox {
    fn az_cmd(&self, endpoint: &str) -> assert_cmd::Command {
        let mut c = self.cmd();
        c.env(
            "AZURE_STORAGE_CONNECTION_STRING",
            connection_string(endpoint),
        );
        c
    }
}

mod conformance {
    use super::*;

    async fn setup() -> Fixture {
        Fixture::new(Arc::new(store("conformance", "suite").await))
    }

    offsite_storage::conformance_suite!(setup);
}

#[tokio::test(flavor = "multi_thread")]
async fn push_ls_verify_restore_on_azurite() {
    let sb = Sandbox::new();
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let container = bucket("rt");
    let s = store(&container, "app").await;
    let url = format!("az://{AZURITE_ACCOUNT}/{container}/app?storage-class=Cool");
    let src = sb.archive(NAME, 20 << 20, 5);
    let o = sb
        .az_cmd(&endpoint)
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        s.head(&format!("{NAME}.age"))
            .await
            .unwrap()
            .storage_class
            .as_deref(),
        Some("Cool")
    );
    let o = sb.az_cmd(&endpoint).args(["ls", &url]).output().unwrap();
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("complete     app-backup-20261126_020000.tar.gz"),
        "{}",
        stdout(&o)
    );
    let o = sb
        .az_cmd(&endpoint)
        .args(["verify", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("only --deep proves the bytes"),
        "{}",
        stdout(&o)
    );
    let o = sb
        .az_cmd(&endpoint)
        .args(["verify", "--deep", &url, "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = sb
        .az_cmd(&endpoint)
        .args(["restore", &url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_azure_push_killed_mid_upload_reuses_the_staged_blocks() {
    let sb = Sandbox::new();
    let container = bucket("resume");
    let s = store(&container, "app").await;
    let proxy = Proxy::start(&emulator("OFFSITE_TEST_AZURITE").replace("/devstoreaccount1", ""));
    proxy
        .throttle
        .store(8 << 20, std::sync::atomic::Ordering::Relaxed);
    let endpoint = format!("{}/{AZURITE_ACCOUNT}", proxy.endpoint);
    let url = format!("az://{AZURITE_ACCOUNT}/{container}/app?block-size-mib=4");
    let src = sb.archive(NAME, 40 << 20, 8);
    let mut child = sb
        .std_cmd()
        .env(
            "AZURE_STORAGE_CONNECTION_STRING",
            connection_string(&endpoint),
        )
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while proxy.forwarded() < (20 << 20) {
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
        "nothing visible before the block list"
    );
    proxy
        .throttle
        .store(0, std::sync::atomic::Ordering::Relaxed);
    let o = sb
        .az_cmd(&endpoint)
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
        .az_cmd(&endpoint)
        .args(["restore", &url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_errors_name_the_container_and_the_auth_method() {
    let sb = Sandbox::new();
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let src = sb.archive(NAME, 1000, 5);
    let url = format!("az://{AZURITE_ACCOUNT}/no-such-container/app");
    let o = sb
        .az_cmd(&endpoint)
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("container \"no-such-container\" does not exist"),
        "{}",
        stderr(&o)
    );

    let container = bucket("auth");
    store(&container, "app").await;
    let wrong = format!("DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey=d3Jvbmcta2V5LXdyb25nLWtleQ==;BlobEndpoint={endpoint};");
    let url = format!("az://{AZURITE_ACCOUNT}/{container}/app");
    let o = sb
        .cmd()
        .env("AZURE_STORAGE_CONNECTION_STRING", &wrong)
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 1);
    // Azure answers a bad signature with AuthenticationFailed (401-class), Azurite with
    // AuthorizationFailure (403); either way the message names the method that was tried.
    assert!(stderr(&o).contains("shared key"), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("d3Jvbmcta2V5"),
        "the key must never be printed"
    );
}

/// Follows https://learn.microsoft.com/rest/api/storageservices/set-blob-immutability-policy
/// (`PUT ?comp=immutabilityPolicies` with `x-ms-immutability-policy-until-date` and
/// `x-ms-immutability-policy-mode: Unlocked|Locked`) and
/// https://learn.microsoft.com/rest/api/storageservices/set-blob-legal-hold (`PUT
/// ?comp=legalhold` with `x-ms-legal-hold: true`), both signed with Shared Key.
#[tokio::test(flavor = "multi_thread")]
async fn immutability_and_legal_hold_requests_match_the_rest_reference_on_a_local_server() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!(
        "http://{}/{AZURITE_ACCOUNT}",
        listener.local_addr().unwrap()
    );
    let seen = Arc::new(std::sync::Mutex::new(
        Vec::<(String, Vec<(String, String)>)>::new(),
    ));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
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
            seen2
                .lock()
                .unwrap()
                .push((line.trim().to_string(), headers));
            write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nx-ms-request-id: 1\r\nConnection: close\r\n\r\n").unwrap();
        }
    });
    let url = format!("az://{AZURITE_ACCOUNT}/backups/app");
    let cs = connection_string(&endpoint);
    let cfg = AzureConfig::from_location_with(&Location::parse(&url).unwrap(), |k| {
        (k == "AZURE_STORAGE_CONNECTION_STRING").then(|| cs.clone())
    })
    .unwrap();
    let s = AzureStore::open(cfg, &url).unwrap();
    let until = chrono::DateTime::parse_from_rfc3339("2026-12-03T02:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    s.set_immutability(
        "x.age",
        &offsite_storage::Retention {
            mode: offsite_storage::LockMode::Governance,
            retain_until: until,
        },
    )
    .await
    .unwrap();
    s.set_legal_hold("x.age", true).await.unwrap();
    let seen = seen.lock().unwrap();
    let header = |i: usize, name: &str| {
        seen[i]
            .1
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert!(
        seen[0]
            .0
            .starts_with("PUT /devstoreaccount1/backups/app%2Fx.age?comp=immutabilityPolicies"),
        "{}",
        seen[0].0
    );
    assert_eq!(
        header(0, "x-ms-immutability-policy-until-date").as_deref(),
        Some("Thu, 03 Dec 2026 02:00:00 GMT")
    );
    // The reference spells the values Unlocked / Locked; the SDK sends them lower-case, which
    // the service accepts.
    assert_eq!(
        header(0, "x-ms-immutability-policy-mode")
            .map(|m| m.to_ascii_lowercase())
            .as_deref(),
        Some("unlocked")
    );
    assert!(header(0, "authorization")
        .unwrap()
        .starts_with("SharedKey devstoreaccount1:"));
    assert!(
        seen[1]
            .0
            .starts_with("PUT /devstoreaccount1/backups/app%2Fx.age?comp=legalhold"),
        "{}",
        seen[1].0
    );
    assert_eq!(header(1, "x-ms-legal-hold").as_deref(), Some("true"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archived_blob_is_explained_and_rehydration_can_be_started() {
    let sb = Sandbox::new();
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let container = bucket("archive");
    let s = store(&container, "app").await;
    let url = format!("az://{AZURITE_ACCOUNT}/{container}/app?storage-class=Archive");
    let src = sb.archive(NAME, 10_000, 5);
    let o = sb
        .az_cmd(&endpoint)
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        s.head(&format!("{NAME}.age"))
            .await
            .unwrap()
            .storage_class
            .as_deref(),
        Some("Archive")
    );
    let o = sb
        .az_cmd(&endpoint)
        .args(["restore", &url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("must be rehydrated first"),
        "{}",
        stderr(&o)
    );
    let o = sb
        .az_cmd(&endpoint)
        .args(["restore", &url, "--latest", "-o", "back", "--thaw", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(stderr(&o).contains("thaw requested"), "{}", stderr(&o));
    let _ = s.get_bytes(&format!("{NAME}.manifest.json")).await.unwrap();
}
