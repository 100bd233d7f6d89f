//! Interoperability with the real `age` CLI and SSH keys: what offsite stores is readable with
//! stock tools, and the manifest's digests are the ones those tools compute.

use std::process::Command as Std;

use crate::common::*;

fn have(tool: &str) -> bool {
    Std::new(tool).arg("--version").output().is_ok()
        || Std::new("which")
            .arg(tool)
            .status()
            .is_ok_and(|s| s.success())
}

#[test]
fn age_cli_decrypts_what_offsite_stored() {
    assert!(
        have("age"),
        "the age CLI is required (tests/run installs the Debian package)"
    );
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1_234_567, 9);
    assert_code(&sb.push(&src, &["a"]), 0);
    let obj = sb.path("a").join(format!("{NAME}.age"));
    let out = Std::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&sb.key)
        .arg("-o")
        .arg(sb.path("plain"))
        .arg(&obj)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(sb.path("plain")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    let m = manifest(&sb.path("a"), NAME);
    assert_eq!(m["plaintext"]["sha256"], sha256_file(&sb.path("plain")));
}

#[test]
fn offsite_restores_what_age_cli_encrypted_to_an_ssh_key() {
    assert!(have("ssh-keygen"), "ssh-keygen is required");
    let sb = Sandbox::new();
    let key = sb.path("id_ed25519");
    let st = Std::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let src = sb.archive(NAME, 500_000, 2);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", pubkey.trim(), "--to", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let m = manifest(&sb.path("a"), NAME);
    assert!(m["encryption"]["recipients"][0]
        .as_str()
        .unwrap()
        .starts_with("ssh-ed25519 "));
    // offsite restores with the SSH private key...
    let o = sb
        .cmd()
        .args(["restore", &sb.url("a"), "--latest", "-o", "r1", "-i"])
        .arg(&key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("r1")), sha256_file(&src));
    // ...and so does the age CLI.
    let out = Std::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key)
        .arg("-o")
        .arg(sb.path("r2"))
        .arg(sb.path("a").join(format!("{NAME}.age")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha256_file(&sb.path("r2")), sha256_file(&src));
}

#[test]
fn recipients_file_with_several_keys_lets_each_identity_restore() {
    let sb = Sandbox::new();
    let second = sb.path("second.txt");
    let o = sb
        .cmd()
        .arg("keygen")
        .arg("-o")
        .arg(&second)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let r2 = stdout(&o).trim().to_string();
    std::fs::write(
        sb.path("recipients.txt"),
        format!("# ops team\n{}\n\n{r2}\n", sb.recipient),
    )
    .unwrap();
    let src = sb.archive(NAME, 10_000, 1);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-R", "recipients.txt", "--to", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = sb
        .cmd()
        .args(["restore", &sb.url("a"), "--latest", "-o", "r", "-i"])
        .arg(&second)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("r")), sha256_file(&src));
}

/// No lock-in: a copy on a store is fetched with a stock client (`fetch(key, out)` writes the
/// object at `key` under the location to `out`), decrypted with stock `age`, and both SHA-256s
/// are the manifest's (as README's "Without offsite" shows).
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn fetch_decrypt_and_check(sb: &Sandbox, fetch: impl Fn(&str, &std::path::Path)) {
    fetch(&format!("{NAME}.age"), &sb.path("fetched.age"));
    fetch(
        &format!("{NAME}.manifest.json"),
        &sb.path("fetched.manifest.json"),
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sb.path("fetched.manifest.json")).unwrap()).unwrap();
    assert_eq!(m["stored"]["sha256"], sha256_file(&sb.path("fetched.age")));
    let o = Std::new("age")
        .args(["-d", "-i"])
        .arg(&sb.key)
        .arg("-o")
        .arg(sb.path("fetched.plain"))
        .arg(sb.path("fetched.age"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        m["plaintext"]["sha256"],
        sha256_file(&sb.path("fetched.plain"))
    );
}

/// `curl -sS --fail -o OUT ARGS...`.
#[cfg(any(feature = "s3", feature = "gcs", feature = "azure"))]
fn curl(args: &[String], out: &std::path::Path) {
    let o = Std::new("curl")
        .args(["-sS", "--fail", "-o"])
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn an_s3_copy_is_readable_with_curl_and_age() {
    let sb = Sandbox::new();
    let name = bucket("lockin");
    let _store = crate::s3::store("OFFSITE_TEST_S3S", &name, "app", false).await;
    let ep = emulator("OFFSITE_TEST_S3S");
    let src = sb.archive(NAME, 7 << 20, 4);
    let url = format!("s3://{name}/app?endpoint={ep}");
    let o = sb
        .cmd()
        .env("AWS_ACCESS_KEY_ID", S3S_ACCESS)
        .env("AWS_SECRET_ACCESS_KEY", S3S_SECRET)
        .env("AWS_REGION", "us-east-1")
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let signed = |key: &str| {
        // curl signs the request; S3 also wants the (empty) payload's SHA-256 in a header.
        vec![
            "-H".to_string(),
            "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .to_string(),
            "--aws-sigv4".to_string(),
            "aws:amz:us-east-1:s3".to_string(),
            "--user".to_string(),
            format!("{S3S_ACCESS}:{S3S_SECRET}"),
            format!("{ep}/{name}/app/{key}"),
        ]
    };
    fetch_decrypt_and_check(&sb, |key, out| curl(&signed(key), out));
}

#[cfg(feature = "gcs")]
#[tokio::test(flavor = "multi_thread")]
async fn a_gcs_copy_is_readable_with_curl_and_age() {
    let sb = Sandbox::new();
    let name = bucket("lockin");
    let _store = crate::gcs::store(&name, "app").await;
    let ep = emulator("OFFSITE_TEST_GCS");
    let src = sb.archive(NAME, 3 << 20, 5);
    let url = format!("gs://{name}/app?endpoint={ep}");
    assert_code(&sb.push_via(sb.cmd(), &src, &url), 0);
    let media = |key: &str| {
        vec![format!(
            "{ep}/download/storage/v1/b/{name}/o/app%2F{}?alt=media",
            key.replace('/', "%2F")
        )]
    };
    fetch_decrypt_and_check(&sb, |key, out| curl(&media(key), out));
}

/// Azure with stock curl: a SAS (what `az storage blob generate-sas` or the portal hands out)
/// in the query of a plain GET, as README's "Without offsite" shows.
#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread")]
async fn an_azure_copy_is_readable_with_curl_and_age() {
    use crate::azure::{account_sas, AZURITE_ACCOUNT};
    let sb = Sandbox::new();
    let container = bucket("lockin");
    let _store = crate::azure::store(&container, "app").await;
    let ep = emulator("OFFSITE_TEST_AZURITE");
    let src = sb.archive(NAME, 5 << 20, 6);
    let url = format!("az://{AZURITE_ACCOUNT}/{container}/app?endpoint={ep}");
    let o = sb
        .cmd()
        .env(
            "AZURE_STORAGE_CONNECTION_STRING",
            crate::azure::connection_string(&ep),
        )
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let sas = account_sas(chrono::Utc::now() + chrono::Duration::hours(1));
    let get = |key: &str| vec![format!("{ep}/{container}/app/{key}?{sas}")];
    fetch_decrypt_and_check(&sb, |key, out| curl(&get(key), out));
}

/// Azure with Microsoft's own Python client, `azure-storage-blob` (pinned in
/// tests/emulators/install.sh), from the account's connection string.
#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread")]
async fn an_azure_copy_is_readable_with_the_azure_storage_blob_package_and_age() {
    use crate::azure::AZURITE_ACCOUNT;
    let sb = Sandbox::new();
    let container = bucket("lockin");
    let _store = crate::azure::store(&container, "app").await;
    let ep = emulator("OFFSITE_TEST_AZURITE");
    let src = sb.archive(NAME, 9 << 20, 7);
    let url = format!("az://{AZURITE_ACCOUNT}/{container}/app?endpoint={ep}");
    let conn = crate::azure::connection_string(&ep);
    let o = sb
        .cmd()
        .env("AZURE_STORAGE_CONNECTION_STRING", &conn)
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let python = emulator("OFFSITE_TEST_AZURE_PYTHON");
    let script = "import sys\n\
        from azure.storage.blob import BlobServiceClient\n\
        conn, container, blob, out = sys.argv[1:]\n\
        client = BlobServiceClient.from_connection_string(conn).get_blob_client(container, blob)\n\
        with open(out, 'wb') as f:\n    client.download_blob().readinto(f)\n";
    fetch_decrypt_and_check(&sb, |key, out| {
        let o = Std::new(&python)
            .args(["-c", script, &conn, &container, &format!("app/{key}")])
            .arg(out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "azure-storage-blob: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    });
}
