//! The Azure adapter on Azurite: the conformance suite, push/ls/verify/restore end to end,
//! resume after SIGKILL from the uncommitted block list, shared-key errors, container creation;
//! and the immutability-policy, legal-hold and retention-extension requests (which Azurite does
//! not implement) checked against a local HTTP server for their documented REST shape.

use std::sync::Arc;

use offsite_azure::{AzureConfig, AzureStore};
use offsite_storage::conformance::Fixture;
use offsite_storage::{
    CreateOptions, ErrorKind, Location, LockMode, Retention, Storage, StorageExt,
};

use crate::common::*;
use crate::proxy::{kill_mid_upload, rerun_resumed, Proxy, Recorded, RecordingServer};

/// Azurite's published development account and key (Azurite README); not a secret.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub fn connection_string(endpoint: &str) -> String {
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
    s.create_location(&CreateOptions::default())
        .await
        .expect("create container");
    s
}

/// HMAC-SHA256 (RFC 2104) over sha2, for signing a SAS the way the Azure docs describe.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let (mut ipad, mut opad) = ([0x36u8; 64], [0x5cu8; 64]);
    for i in 0..64 {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// An account SAS for Azurite's development account, valid until `expiry` (Create an account
/// SAS, REST reference: the string-to-sign of version 2020-12-06 and later).
pub fn account_sas(expiry: chrono::DateTime<chrono::Utc>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (sp, ss, srt, sv) = ("rwdlacup", "b", "sco", "2021-06-08");
    let se = expiry.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let to_sign = format!("{AZURITE_ACCOUNT}\n{sp}\n{ss}\n{srt}\n\n{se}\n\n\n{sv}\n\n");
    let key = b64.decode(AZURITE_KEY).unwrap();
    let sig = b64.encode(hmac_sha256(&key, to_sign.as_bytes()));
    let enc = |v: &str| {
        v.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    };
    format!(
        "sv={sv}&ss={ss}&srt={srt}&sp={sp}&se={}&sig={}",
        enc(&se),
        enc(&sig)
    )
}

impl Sandbox {
    pub(crate) fn az_cmd(&self, endpoint: &str) -> assert_cmd::Command {
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

    /// The cases Azurite fails: none.
    const EXCLUDED: &[offsite_storage::conformance::Exclusion] = &[];

    offsite_storage::conformance_suite!(setup, except = EXCLUDED);

    #[tokio::test(flavor = "multi_thread")]
    async fn storage_class_reads_back() {
        let s = store("conformance", "class").await;
        offsite_storage::conformance::storage_class_reads_back(&s, "Cool").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn push_ls_verify_restore_on_azurite() {
    let sb = Sandbox::new();
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let container = bucket("rt");
    let s = store(&container, "app").await;
    let url = format!("az://{AZURITE_ACCOUNT}/{container}/app?storage-class=Cool");
    let src = sb.archive(NAME, 20 << 20, 5);
    let o = sb.push_via(sb.az_cmd(&endpoint), &src, &url);
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
    let endpoint = format!("{}/{AZURITE_ACCOUNT}", proxy.endpoint);
    let url = format!("az://{AZURITE_ACCOUNT}/{container}/app?block-size-mib=4");
    let src = sb.archive(NAME, 40 << 20, 8);
    let mut push = sb.std_cmd();
    push.env(
        "AZURE_STORAGE_CONNECTION_STRING",
        connection_string(&endpoint),
    )
    .arg("push")
    .arg(&src)
    .args(["-r", &sb.recipient, "--to", &url]);
    kill_mid_upload(&proxy, push, 20 << 20);
    assert!(
        s.head(&format!("{NAME}.age")).await.is_err(),
        "nothing visible before the block list"
    );
    let mut again = sb.az_cmd(&endpoint);
    again
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url]);
    let (reused, _) = rerun_resumed(&proxy, again);
    assert!(reused >= 2, "{reused} blocks reused");
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
    let o = sb.push_via(sb.az_cmd(&endpoint), &src, &url);
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
    let server = RecordingServer::start("");
    let endpoint = format!("{}/{AZURITE_ACCOUNT}", server.endpoint);
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
    let seen = server.requests.lock().unwrap();
    assert!(
        seen[0]
            .line
            .starts_with("PUT /devstoreaccount1/backups/app%2Fx.age?comp=immutabilityPolicies"),
        "{}",
        seen[0].line
    );
    assert_eq!(
        seen[0].header("x-ms-immutability-policy-until-date"),
        Some("Thu, 03 Dec 2026 02:00:00 GMT")
    );
    // The reference spells the values Unlocked / Locked; the SDK sends them lower-case, which
    // the service accepts.
    assert_eq!(
        seen[0]
            .header("x-ms-immutability-policy-mode")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("unlocked")
    );
    assert!(seen[0]
        .header("authorization")
        .unwrap()
        .starts_with("SharedKey devstoreaccount1:"));
    assert!(
        seen[1]
            .line
            .starts_with("PUT /devstoreaccount1/backups/app%2Fx.age?comp=legalhold"),
        "{}",
        seen[1].line
    );
    assert_eq!(seen[1].header("x-ms-legal-hold"), Some("true"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_archived_blob_is_explained_and_rehydration_can_be_started() {
    let sb = Sandbox::new();
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let container = bucket("archive");
    let s = store(&container, "app").await;
    let url = format!("az://{AZURITE_ACCOUNT}/{container}/app?storage-class=Archive");
    let src = sb.archive(NAME, 10_000, 5);
    let o = sb.push_via(sb.az_cmd(&endpoint), &src, &url);
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
    // The thaw leads, with when to run again; it is not reported as a bad copy.
    assert!(
        stderr(&o).starts_with(&format!("thaw requested for {NAME} at ")),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("not restored yet"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("run this restore again"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("no healthy copy"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("error:"), "{}", stderr(&o));
    let _ = s.get_bytes(&format!("{NAME}.manifest.json")).await.unwrap();
}

#[test]
fn a_sas_token_never_reaches_an_error_message() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 5);
    // Nothing listens on this port: the SDK's error carries the request URL, SAS and all.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let url = format!(
        "az://{AZURITE_ACCOUNT}/cont/app?endpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    );
    let o = sb
        .cmd()
        .env(
            "AZURE_STORAGE_SAS_TOKEN",
            "sv=2025-01-05&sp=rwdl&sig=TOPSECRETSIGNATURE",
        )
        .env_remove("AZURE_STORAGE_CONNECTION_STRING")
        .env_remove("AZURE_STORAGE_KEY")
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 1);
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(!all.contains("TOPSECRETSIGNATURE"), "the SAS leaked: {all}");
    // The failure is named for what it is (the dead port), not only free of the SAS.
    assert!(
        all.contains("cannot connect") && all.contains("cannot reach the Azure endpoint"),
        "{all}"
    );
}

/// `create` on Azure: the container is created, then found; versioning and version-level
/// immutability, which Create Container cannot ask for, are refused with the `az` command that
/// turns them on, never dropped.
#[tokio::test(flavor = "multi_thread")]
async fn create_location_on_azurite_creates_containers_and_refuses_what_it_cannot_set() {
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let container = bucket("mk");
    let url = format!("az://{AZURITE_ACCOUNT}/{container}/app");
    let cs = connection_string(&endpoint);
    let cfg = AzureConfig::from_location_with(&Location::parse(&url).unwrap(), |k| {
        (k == "AZURE_STORAGE_CONNECTION_STRING").then(|| cs.clone())
    })
    .unwrap();
    let s = AzureStore::open(cfg, &url).unwrap();
    let plain = CreateOptions::default();
    assert!(s.create_location(&plain).await.unwrap(), "created");
    assert!(!s.create_location(&plain).await.unwrap(), "exists");
    let mut versioned = CreateOptions::default();
    versioned.versioning = true;
    let e = s.create_location(&versioned).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(
        e.to_string()
            .contains("az storage account blob-service-properties update --account-name devstoreaccount1 --enable-versioning true"),
        "{e}"
    );
    let mut locked = CreateOptions::default();
    locked.versioning = true;
    locked.object_lock = true;
    let e = s.create_location(&locked).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(
        e.to_string().contains(&format!(
            "az storage container-rm create --storage-account devstoreaccount1 --name {container} --enable-vlw"
        )),
        "{e}"
    );
}

/// A local server for one blob under an immutability policy: Get Blob Properties (`HEAD`)
/// answers with the policy's `x-ms-immutability-policy-until-date` and `-mode` headers; every
/// other request gets an empty 200. Records every request.
struct ImmutableBlobServer {
    endpoint: String,
    requests: Arc<std::sync::Mutex<Vec<Recorded>>>,
}

impl ImmutableBlobServer {
    fn start(until: &'static str, mode: &'static str) -> ImmutableBlobServer {
        let server = RecordingServer::answering(move |r| {
            let extra = if r.line.starts_with("HEAD ") {
                format!("x-ms-blob-type: BlockBlob\r\nx-ms-immutability-policy-until-date: {until}\r\nx-ms-immutability-policy-mode: {mode}\r\n")
            } else {
                String::new()
            };
            (extra, String::new())
        });
        ImmutableBlobServer {
            endpoint: server.endpoint,
            requests: server.requests,
        }
    }

    fn store(&self) -> AzureStore {
        let endpoint = format!("{}/{AZURITE_ACCOUNT}", self.endpoint);
        let url = format!("az://{AZURITE_ACCOUNT}/backups/app");
        let cs = connection_string(&endpoint);
        let cfg = AzureConfig::from_location_with(&Location::parse(&url).unwrap(), |k| {
            (k == "AZURE_STORAGE_CONNECTION_STRING").then(|| cs.clone())
        })
        .unwrap();
        AzureStore::open(cfg, &url).unwrap()
    }
}

/// Follows https://learn.microsoft.com/rest/api/storageservices/get-blob-properties (the policy
/// in force, in `x-ms-immutability-policy-until-date` and `x-ms-immutability-policy-mode`) and
/// https://learn.microsoft.com/rest/api/storageservices/set-blob-immutability-policy: extending
/// reads the policy and sends `PUT ?comp=immutabilityPolicies` only when the new date is later;
/// a Locked policy is sent back Locked.
#[tokio::test(flavor = "multi_thread")]
async fn extend_retention_requests_match_the_rest_reference_on_a_local_server() {
    let utc = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let gov = |t| Retention {
        mode: LockMode::Governance,
        retain_until: utc(t),
    };
    let server = ImmutableBlobServer::start("Thu, 03 Dec 2026 02:00:00 GMT", "unlocked");
    let s = server.store();
    let kept = s
        .extend_retention("x.age", gov("2026-12-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(kept, gov("2026-12-03T02:00:00Z"), "the longer policy stays");
    {
        let seen = server.requests.lock().unwrap();
        assert_eq!(seen.len(), 1, "a shorter ask sends no change");
        assert!(
            seen[0]
                .line
                .starts_with("HEAD /devstoreaccount1/backups/app%2Fx.age "),
            "{}",
            seen[0].line
        );
    }
    let longer = s
        .extend_retention("x.age", gov("2026-12-10T02:00:00Z"))
        .await
        .unwrap();
    assert_eq!(longer, gov("2026-12-10T02:00:00Z"));
    {
        let seen = server.requests.lock().unwrap();
        assert_eq!(seen.len(), 3, "read, then one PUT");
        assert!(
            seen[2]
                .line
                .starts_with("PUT /devstoreaccount1/backups/app%2Fx.age?comp=immutabilityPolicies"),
            "{}",
            seen[2].line
        );
        assert_eq!(
            seen[2].header("x-ms-immutability-policy-until-date"),
            Some("Thu, 10 Dec 2026 02:00:00 GMT")
        );
        assert_eq!(
            seen[2]
                .header("x-ms-immutability-policy-mode")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("unlocked")
        );
        assert!(seen[2]
            .header("authorization")
            .unwrap()
            .starts_with("SharedKey devstoreaccount1:"));
    }

    let server = ImmutableBlobServer::start("Thu, 03 Dec 2026 02:00:00 GMT", "locked");
    let s = server.store();
    let r = s
        .extend_retention("x.age", gov("2026-12-10T02:00:00Z"))
        .await
        .unwrap();
    assert_eq!(r.mode, LockMode::Compliance, "compliance stays compliance");
    let seen = server.requests.lock().unwrap();
    assert_eq!(
        seen[1]
            .header("x-ms-immutability-policy-mode")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("locked")
    );
}

/// Push itself, not only the explicit calls: a `lock=` and `legal-hold=true` destination sets
/// the version-level immutability policy and the legal hold through the upload's own requests
/// (Put Block List for the data, Put Blob for the manifest), as
/// https://learn.microsoft.com/rest/api/storageservices/put-block-list and
/// https://learn.microsoft.com/rest/api/storageservices/put-blob document them
/// (`x-ms-immutability-policy-until-date`, `x-ms-immutability-policy-mode`, `x-ms-legal-hold`).
/// Azurite answers 501 to those headers, so a local server that answers like the service
/// checks each request.
#[test]
fn push_sets_the_lock_and_hold_through_upload_and_commit_requests_on_a_local_server() {
    // The blocks' bytes, for Get Blob Properties of the committed blob (push reads its data
    // back after a create-only commit).
    let staged = std::sync::atomic::AtomicUsize::new(0);
    let server = RecordingServer::answering_with_status(move |r| {
        let method = r.line.split(' ').next().unwrap_or("");
        if method == "PUT" && r.line.contains("comp=block ") {
            staged.fetch_add(r.body.len(), std::sync::atomic::Ordering::SeqCst);
        }
        match method {
            "HEAD" if r.line.contains(".age") => (
                200,
                format!(
                    "ETag: \"0x8DD000000000001\"\r\nContent-Length: {}\r\nLast-Modified: Wed, 02 Dec 2026 18:00:00 GMT\r\n",
                    staged.load(std::sync::atomic::Ordering::SeqCst)
                ),
                String::new(),
            ),
            "PUT" => (
                201,
                "ETag: \"0x8DD000000000001\"\r\nLast-Modified: Wed, 02 Dec 2026 18:00:00 GMT\r\n"
                    .into(),
                String::new(),
            ),
            _ if r.line.contains("comp=list") => (
                200,
                "Content-Type: application/xml\r\n".into(),
                "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs /><NextMarker /></EnumerationResults>".into(),
            ),
            _ => (
                404,
                "x-ms-error-code: BlobNotFound\r\n".into(),
                String::new(),
            ),
        }
    });
    let sb = Sandbox::new();
    // Created yesterday (the name's timestamp): locked until seven days after that. (An older
    // archive's lock would run from the push instead, the lock never ending in the past.)
    let created = chrono::Utc::now() - chrono::Duration::days(1);
    let name = format!("app-backup-{}.tar.gz", created.format("%Y%m%d_%H%M%S"));
    let until = (created + chrono::Duration::days(7))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let src = sb.archive(&name, 10 << 20, 3);
    let url = format!(
        "az://{AZURITE_ACCOUNT}/backups/app?endpoint={}/{AZURITE_ACCOUNT}&lock=governance&lock-days=7&legal-hold=true",
        server.endpoint
    );
    let o = sb
        .az_cmd(&format!("{}/{AZURITE_ACCOUNT}", server.endpoint))
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    let seen = server.requests.lock().unwrap();
    let lines: Vec<_> = seen.iter().map(|r| r.line.clone()).collect();
    assert_code(&o, 0);
    let blocks = seen
        .iter()
        .filter(|r| r.line.starts_with("PUT ") && r.line.contains("comp=block "))
        .count();
    assert!(blocks >= 2, "the data went up in blocks: {lines:#?}");
    let commit = seen
        .iter()
        .find(|r| r.line.starts_with("PUT ") && r.line.contains("comp=blocklist"))
        .unwrap_or_else(|| panic!("a Put Block List: {lines:#?}"));
    let manifest = seen
        .iter()
        .find(|r| {
            r.line.starts_with(&format!(
                "PUT /{AZURITE_ACCOUNT}/backups/app%2F{name}.manifest.json"
            )) && !r.line.contains("comp=")
        })
        .unwrap_or_else(|| panic!("a Put Blob of the manifest: {lines:#?}"));
    for (what, r) in [("data commit", commit), ("manifest", manifest)] {
        assert_eq!(
            r.header("x-ms-immutability-policy-until-date"),
            Some(until.as_str()),
            "{what}: {:?}",
            r.headers
        );
        assert_eq!(
            r.header("x-ms-immutability-policy-mode")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("unlocked"),
            "{what}"
        );
        assert_eq!(r.header("x-ms-legal-hold"), Some("true"), "{what}");
        assert!(r
            .header("authorization")
            .unwrap()
            .starts_with("SharedKey devstoreaccount1:"));
    }
    // The blocks themselves carry no policy: it belongs to the committed blob.
    assert!(seen
        .iter()
        .filter(|r| r.line.contains("comp=block "))
        .all(|r| r.header("x-ms-immutability-policy-until-date").is_none()));
}

/// Two `azure-connection-string-env` variables that hold one account's connection string
/// point at one place: plan and push refuse the second destination as the first's location,
/// and neither message shows the key.
#[test]
fn two_connection_string_variables_for_one_account_are_one_location() {
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let sb = Sandbox::new();
    let src = sb.archive("app-20261126_020000.tar", 1000, 1);
    let policy = |second_env: &str, second_prefix: &str| {
        let p = sb.path("policy.toml");
        std::fs::write(
            &p,
            format!(
                "version = 1\nname = \"app\"\n\n[encryption]\nrecipients = [\"{}\"]\n\n\
                 [[destination]]\nname = \"dr-a\"\nurl = \"az://{AZURITE_ACCOUNT}/places/app\"\n\
                 azure-connection-string-env = \"DR_A\"\n\n\
                 [[destination]]\nname = \"dr-b\"\nurl = \"az://{AZURITE_ACCOUNT}/places/{second_prefix}\"\n\
                 azure-connection-string-env = \"{second_env}\"\n\n\
                 [placement]\ncopies = 2\nmedia = 1\noffsite = 0\n",
                sb.recipient
            ),
        )
        .unwrap();
        p
    };
    let cs = connection_string(&endpoint);
    let with_env = || {
        let mut c = sb.cmd();
        c.env("DR_A", &cs)
            .env("DR_B", &cs)
            .env_remove("AZURE_STORAGE_CONNECTION_STRING");
        c
    };
    let p = policy("DR_B", "app/");
    for args in [vec!["plan"], vec!["push", src.to_str().unwrap()]] {
        let o = policy_run(with_env(), &args, &p);
        assert_code(&o, 2);
        let e = stderr(&o);
        assert!(
            e.contains("destinations `dr-a`")
                && e.contains("and `dr-b`")
                && e.contains("are one location"),
            "{args:?}: {e}"
        );
        assert!(!e.contains(AZURITE_KEY), "{e}");
    }
    // Another prefix in the same container is another place.
    let p = policy("DR_B", "other");
    let o = policy_run(with_env(), &["plan"], &p);
    assert!(!stderr(&o).contains("are one location"), "{}", stderr(&o));
}

/// Every variable the Azure credential chains read, so that a test starts from none.
const AZURE_CREDENTIAL_VARS: [&str; 12] = [
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "OFFSITE_AZURE_ACCESS_TOKEN",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_AUTHORITY_HOST",
    "OFFSITE_AZURE_MANAGED_IDENTITY",
    "IDENTITY_ENDPOINT",
    "MSI_ENDPOINT",
];

/// `offsite ls` of an Azurite container with only the Entra ID chain to go on (no key, SAS or
/// connection string), with no `az` / `azd` on the PATH.
fn entra_ls(sb: &Sandbox, vars: &[(&str, String)]) -> std::process::Output {
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let url = format!("az://{AZURITE_ACCOUNT}/entra/app?endpoint={endpoint}");
    let empty_path = sb.path("no-tools");
    std::fs::create_dir_all(&empty_path).unwrap();
    let mut cmd = sb.cmd();
    for v in AZURE_CREDENTIAL_VARS {
        cmd.env_remove(v);
    }
    cmd.env("PATH", &empty_path)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .args(["ls", &url])
        .output()
        .unwrap()
}

/// Issue 30/31: with no credential at all, the error says which methods were tried, in words
/// and in the chain's order (the README promises it; the whole reason used to be "Credential").
#[test]
fn azure_without_credentials_names_every_method_it_tried() {
    let sb = Sandbox::new();
    let o = entra_ls(&sb, &[]);
    assert_code(&o, 1);
    let err = stderr(&o);
    let order = [
        "OFFSITE_AZURE_ACCESS_TOKEN is not set",
        "no workload identity (AZURE_FEDERATED_TOKEN_FILE is not set)",
        "no service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are not all set)",
        "no managed identity",
        "the az / azd developer login failed",
    ];
    let mut at = 0;
    for want in order {
        let found = err[at..]
            .find(want)
            .unwrap_or_else(|| panic!("{want:?} (in order) in: {err}"));
        at += found + want.len();
    }
    assert!(err.contains("az login"), "a way out: {err}");
}

/// One chain for blobs and disks: a service principal (which used to work for disk snapshots
/// only) is what a blob request asks for a token. The authority host here accepts the
/// connection and answers nothing (the SDK speaks only https to it), so the proof is the TLS
/// handshake arriving there, and the error naming the service principal as the method used.
#[test]
fn a_service_principal_is_used_for_blobs_too() {
    let sb = Sandbox::new();
    let authority = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = authority.local_addr().unwrap().port();
    let (tx, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        // Every attempt is taken and closed at once (the handshake fails, and the token
        // request with it); the first byte of the first one is kept.
        for conn in authority.incoming() {
            let mut first = [0u8; 1];
            if let Ok(mut conn) = conn {
                if conn.read_exact(&mut first).is_ok() {
                    let _ = tx.send(first[0]);
                }
            }
        }
    });
    let o = entra_ls(
        &sb,
        &[
            (
                "AZURE_TENANT_ID",
                "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            ),
            (
                "AZURE_CLIENT_ID",
                "c0ffee00-0000-4000-8000-000000000001".into(),
            ),
            ("AZURE_CLIENT_SECRET", "SPSECRETVALUE".into()),
            ("AZURE_AUTHORITY_HOST", format!("https://127.0.0.1:{port}")),
        ],
    );
    assert_code(&o, 1);
    // 0x16: a TLS handshake record, the start of the token request.
    assert_eq!(
        seen.try_recv().ok(),
        Some(0x16),
        "no token request reached the authority"
    );
    let err = stderr(&o);
    assert!(
        err.contains("the service principal in AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET failed"),
        "{err}"
    );
    assert!(!err.contains("SPSECRETVALUE"), "the secret leaked: {err}");
}
