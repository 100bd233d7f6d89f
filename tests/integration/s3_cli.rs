//! push, ls, verify and restore on s3:// end to end, against moto and s3s-fs; resume after
//! SIGKILL; Object Lock; storage classes and Glacier; error messages.

use offsite_storage::{ErrorKind, Storage};

use crate::common::*;
use crate::proxy::{kill_mid_upload, rerun_resumed, Proxy};

/// A bucket on an emulator and the URL offsite takes for it.
struct Bucket {
    url: String,
    store: offsite_s3::S3Store,
}

async fn bucket_on(var: &str, tag: &str, object_lock: bool, query: &str) -> Bucket {
    let name = bucket(tag);
    let store = crate::s3::store(var, &name, "app", object_lock).await;
    let endpoint = emulator(var);
    let sep = if query.is_empty() { "" } else { "&" };
    Bucket {
        url: format!("s3://{name}/app?endpoint={endpoint}{sep}{query}"),
        store,
    }
}

impl Sandbox {
    /// The offsite command with the S3 emulators' test credentials.
    pub(crate) fn s3_cmd(&self) -> assert_cmd::Command {
        let mut c = self.cmd();
        c.env("AWS_ACCESS_KEY_ID", S3S_ACCESS)
            .env("AWS_SECRET_ACCESS_KEY", S3S_SECRET)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL");
        c
    }

    fn s3_std_cmd(&self) -> std::process::Command {
        let mut c = self.std_cmd();
        c.env("AWS_ACCESS_KEY_ID", S3S_ACCESS)
            .env("AWS_SECRET_ACCESS_KEY", S3S_SECRET)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL");
        c
    }
}

async fn round_trip(var: &str) {
    let sb = Sandbox::new();
    let b = bucket_on(var, "rt", false, "").await;
    let src = sb.archive(NAME, 12 << 20, 5);
    let o = sb
        .s3_cmd()
        .arg("push")
        .arg(&src)
        .args([
            "-r",
            &sb.recipient,
            "--to",
            &b.url,
            "--to",
            &sb.url("local"),
        ])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let m: serde_json::Value = serde_json::from_slice(
        &futures::executor::block_on(offsite_storage::StorageExt::get_bytes(
            &b.store,
            &format!("{NAME}.manifest.json"),
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(m["plaintext"]["sha256"], sha256_file(&src));
    assert!(
        m["stored"]["provider-checksum"]["algorithm"]
            .as_str()
            .unwrap()
            .starts_with("sha256"),
        "{m}"
    );

    let o = sb.s3_cmd().args(["ls", &b.url]).output().unwrap();
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("complete     app-backup-20261126_020000.tar.gz"),
        "{}",
        stdout(&o)
    );

    let o = sb.s3_cmd().args(["verify", &b.url]).output().unwrap();
    assert_code(&o, 0);
    // The listed ETag is the committed one (moto, SeaweedFS), or, where the listing shows no
    // ETag (s3s-fs), a HEAD compares the checksum.
    assert!(
        stdout(&o).contains("as listed are the committed object's: unchanged since it was pushed")
            || stdout(&o).contains("size and the provider's checksum"),
        "{}",
        stdout(&o)
    );
    let o = sb
        .s3_cmd()
        .args(["verify", "--deep", &b.url, "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);

    let o = sb
        .s3_cmd()
        .args(["restore", &b.url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));
}

#[tokio::test(flavor = "multi_thread")]
async fn push_ls_verify_restore_on_moto() {
    round_trip("OFFSITE_TEST_MOTO").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_ls_verify_restore_on_s3s_fs() {
    round_trip("OFFSITE_TEST_S3S").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn push_ls_verify_restore_on_seaweedfs() {
    round_trip("OFFSITE_TEST_SEAWEEDFS").await;
}

/// Object Lock on a production server, through a multipart push: data and manifest locked
/// alike, deletes refused (AccessDenied there, Locked here), the manifest naming the date.
#[tokio::test(flavor = "multi_thread")]
async fn object_lock_on_seaweedfs_covers_a_multipart_push() {
    let sb = Sandbox::new();
    let b = bucket_on(
        "OFFSITE_TEST_SEAWEEDFS",
        "lock",
        true,
        "lock=compliance&lock-days=2&part-size-mib=5",
    )
    .await;
    let src = sb.archive(NAME, 12 << 20, 6);
    let o = sb.push_via(sb.s3_cmd(), &src, &b.url);
    assert_code(&o, 0);
    for key in [format!("{NAME}.age"), format!("{NAME}.manifest.json")] {
        let h = b.store.head(&key).await.unwrap();
        let r = h.retention.unwrap_or_else(|| panic!("{key} has no lock"));
        assert_eq!(r.mode, offsite_storage::LockMode::Compliance);
        let e = b.store.delete(&key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
    }
    let o = sb
        .s3_cmd()
        .args(["verify", "--deep", &b.url, "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
}

/// `--no-spool` sends a multipart upload from memory; the copy verifies (deep) and restores.
#[tokio::test(flavor = "multi_thread")]
async fn no_spool_push_to_s3_is_multipart_from_memory_and_restores() {
    let sb = Sandbox::new();
    let b = bucket_on("OFFSITE_TEST_S3S", "nospool", false, "").await;
    let data = offsite_storage::conformance::pattern(13 << 20, 6);
    let o = sb
        .s3_cmd()
        .args([
            "push",
            "-",
            "--no-spool",
            "--name",
            NAME,
            "-r",
            &sb.recipient,
            "--to",
            &b.url,
        ])
        .write_stdin(data.to_vec())
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).contains("not resumable"), "{}", stdout(&o));
    let head = b.store.head(&format!("{NAME}.age")).await.unwrap();
    assert!(head.size > 13 << 20);
    let o = sb
        .s3_cmd()
        .args(["verify", "--deep", &b.url, "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = sb
        .s3_cmd()
        .args(["restore", &b.url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(std::fs::read(sb.path("back")).unwrap(), data.to_vec());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_s3_copy_is_caught_by_quick_verify_and_restore_falls_back() {
    let sb = Sandbox::new();
    let b = bucket_on("OFFSITE_TEST_MOTO", "damaged", false, "").await;
    let src = sb.archive(NAME, 300_000, 5);
    let o = sb
        .s3_cmd()
        .arg("push")
        .arg(&src)
        .args([
            "-r",
            &sb.recipient,
            "--to",
            &b.url,
            "--to",
            &sb.url("local"),
        ])
        .output()
        .unwrap();
    assert_code(&o, 0);
    // Replace the object with other bytes of the same size, as bit rot or a bad actor would.
    let key = format!("{NAME}.age");
    let size = b.store.head(&key).await.unwrap().size as usize;
    offsite_storage::StorageExt::put_bytes(
        &b.store,
        &key,
        offsite_storage::conformance::pattern(size, 99),
        Default::default(),
    )
    .await
    .unwrap();
    let o = sb.s3_cmd().args(["verify", &b.url]).output().unwrap();
    assert_code(&o, 4);
    assert!(stdout(&o).contains("CORRUPT"), "{}", stdout(&o));
    let o = sb
        .s3_cmd()
        .args([
            "restore",
            &b.url,
            &sb.url("local"),
            "--latest",
            "-o",
            "back",
            "-i",
        ])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(stderr(&o).contains("warning: failed"), "{}", stderr(&o));
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_killed_mid_upload_resumes_and_sends_only_missing_parts() {
    let sb = Sandbox::new();
    let name = bucket("resume");
    let store = crate::s3::store("OFFSITE_TEST_S3S", &name, "app", false).await;
    let proxy = Proxy::start(&emulator("OFFSITE_TEST_S3S"));
    let url = format!(
        "s3://{name}/app?endpoint={}&part-size-mib=5",
        proxy.endpoint
    );
    let src = sb.archive(NAME, 40 << 20, 8);
    let mut push = sb.s3_std_cmd();
    push.arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url]);
    // Three parts are in flight at once: the first ones complete after about 15 MiB.
    kill_mid_upload(&proxy, push, 26 << 20);
    assert!(
        store.head(&format!("{NAME}.age")).await.is_err(),
        "no object before completion"
    );
    assert!(
        store.head(&format!("{NAME}.manifest.json")).await.is_err(),
        "no manifest"
    );
    let mut again = sb.s3_cmd();
    again
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url]);
    let (reused, resent) = rerun_resumed(&proxy, again);
    assert!(reused >= 1, "{reused} parts reused");
    // Only the missing parts crossed the wire again.
    assert!(
        resent < (40 << 20) - (u64::from(reused) * (5 << 20)) + (4 << 20),
        "resent {resent} bytes, {reused} parts reused"
    );
    let o = sb
        .s3_cmd()
        .args(["restore", &url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_dying_mid_upload_leaves_no_object_that_looks_complete() {
    let sb = Sandbox::new();
    let name = bucket("dying");
    let store = crate::s3::store("OFFSITE_TEST_S3S", &name, "app", false).await;
    let proxy = Proxy::start(&emulator("OFFSITE_TEST_S3S"));
    proxy
        .cut_after
        .store(7 << 20, std::sync::atomic::Ordering::Relaxed);
    let url = format!(
        "s3://{name}/app?endpoint={}&part-size-mib=5",
        proxy.endpoint
    );
    let src = sb.archive(NAME, 20 << 20, 8);
    let o = sb
        .s3_cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url, "--to", &sb.url("local")])
        .output()
        .unwrap();
    assert_code(&o, 3);
    assert!(stderr(&o).contains(&url), "{}", stderr(&o));
    assert!(store.head(&format!("{NAME}.age")).await.is_err());
    assert!(store.head(&format!("{NAME}.manifest.json")).await.is_err());
    assert!(sb
        .path("local")
        .join(format!("{NAME}.manifest.json"))
        .exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn object_lock_covers_data_and_manifest_and_deletes_are_refused() {
    let sb = Sandbox::new();
    // One part (PutObject): moto ignores lock headers on CreateMultipartUpload, which AWS honours.
    let b = bucket_on(
        "OFFSITE_TEST_MOTO",
        "lock",
        true,
        "lock=governance&lock-days=3",
    )
    .await;
    let src = sb.archive(NAME, 100_000, 5);
    let o = sb.push_via(sb.s3_cmd(), &src, &b.url);
    assert_code(&o, 0);
    let mut untils = Vec::new();
    for key in [format!("{NAME}.age"), format!("{NAME}.manifest.json")] {
        let h = b.store.head(&key).await.unwrap();
        let r = h.retention.unwrap_or_else(|| panic!("{key} has no lock"));
        untils.push(r.retain_until);
        assert_eq!(r.mode, offsite_storage::LockMode::Governance);
        let days = (r.retain_until - chrono::Utc::now()).num_hours();
        assert!((70..=73).contains(&days), "{key}: {days} hours");
        let e = b.store.delete(&key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
        assert!(e.to_string().contains("lock until"), "{e}");
        b.store.head(&key).await.expect("still there");
    }
    assert_eq!(
        untils[0], untils[1],
        "one retain-until for data and manifest"
    );
    let m: serde_json::Value = serde_json::from_slice(
        &offsite_storage::StorageExt::get_bytes(&b.store, &format!("{NAME}.manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(m["retain-until"].is_string(), "{m}");
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_class_is_set_on_data_and_glacier_restore_explains_and_thaws() {
    let sb = Sandbox::new();
    let ia = bucket_on(
        "OFFSITE_TEST_MOTO",
        "ia",
        false,
        "storage-class=STANDARD_IA",
    )
    .await;
    let src = sb.archive(NAME, 50_000, 5);
    let o = sb.push_via(sb.s3_cmd(), &src, &ia.url);
    assert_code(&o, 0);
    assert_eq!(
        ia.store
            .head(&format!("{NAME}.age"))
            .await
            .unwrap()
            .storage_class
            .as_deref(),
        Some("STANDARD_IA")
    );
    assert_ne!(
        ia.store
            .head(&format!("{NAME}.manifest.json"))
            .await
            .unwrap()
            .storage_class
            .as_deref(),
        Some("STANDARD_IA")
    );

    let g = bucket_on(
        "OFFSITE_TEST_MOTO",
        "glacier",
        false,
        "storage-class=GLACIER",
    )
    .await;
    let o = sb.push_via(sb.s3_cmd(), &src, &g.url);
    assert_code(&o, 0);
    let o = sb
        .s3_cmd()
        .args(["restore", &g.url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("archive storage class"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--thaw"), "{}", stderr(&o));
    let o = sb
        .s3_cmd()
        .args(["restore", &g.url, "--latest", "-o", "back", "--thaw", "-i"])
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
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_errors_name_the_bucket_and_the_fix() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 5);
    let endpoint = emulator("OFFSITE_TEST_S3S");
    // moto answers NoSuchBucket as S3 does (s3s-fs creates buckets on the fly).
    let moto = emulator("OFFSITE_TEST_MOTO");
    let url = format!("s3://no-such-bucket-here/app?endpoint={moto}");
    let _ = endpoint;
    let o = sb.push_via(sb.s3_cmd(), &src, &url);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("bucket \"no-such-bucket-here\" does not exist in region us-east-1"),
        "{}",
        stderr(&o)
    );

    let b = bucket_on("OFFSITE_TEST_S3S", "creds", false, "").await;
    let o = sb
        .s3_cmd()
        .env("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &b.url])
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("credentials were not accepted"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("wrong-secret"),
        "the secret must never be printed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legal_hold_keeps_data_and_manifest() {
    let sb = Sandbox::new();
    let b = bucket_on("OFFSITE_TEST_MOTO", "hold", true, "legal-hold=true").await;
    let src = sb.archive(NAME, 10_000, 5);
    let o = sb.push_via(sb.s3_cmd(), &src, &b.url);
    assert_code(&o, 0);
    for key in [format!("{NAME}.age"), format!("{NAME}.manifest.json")] {
        assert!(b.store.head(&key).await.unwrap().legal_hold, "{key} held");
        let e = b.store.delete(&key).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
        assert!(e.to_string().contains("legal hold"), "{e}");
    }
}

/// `offsite create --object-lock` makes a bucket that a `lock=` push can use; run again it
/// says the bucket exists.
#[tokio::test(flavor = "multi_thread")]
async fn create_command_makes_an_object_lock_bucket_for_locked_pushes() {
    let sb = Sandbox::new();
    let name = bucket("cli-mk");
    let endpoint = emulator("OFFSITE_TEST_MOTO");
    let url = format!("s3://{name}/app?endpoint={endpoint}");
    let o = sb
        .s3_cmd()
        .args(["create", "--object-lock", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with("created s3://"), "{}", stdout(&o));
    let o = sb.s3_cmd().args(["create", &url]).output().unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).contains("exists already"), "{}", stdout(&o));
    let src = sb.archive(NAME, 1000, 2);
    let locked = format!("{url}&lock=governance&lock-days=1");
    let o = sb.push_via(sb.s3_cmd(), &src, &locked);
    assert_code(&o, 0);
}

/// Restore with a wrong secret says the location could not be read and why, not merely that
/// there is no archive (which would make the user believe the backups are gone).
#[tokio::test(flavor = "multi_thread")]
async fn restore_with_a_wrong_secret_names_the_cause_per_location() {
    let sb = Sandbox::new();
    let b = bucket_on("OFFSITE_TEST_S3S", "wrongkey", false, "").await;
    let src = sb.archive(NAME, 1000, 3);
    assert_code(&sb.push_via(sb.s3_cmd(), &src, &b.url), 0);
    std::fs::create_dir(sb.path("empty")).unwrap();
    let o = sb
        .s3_cmd()
        .env("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .args([
            "restore",
            &b.url,
            &sb.url("empty"),
            "--latest",
            "-o",
            "x",
            "-i",
        ])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(e.contains("1 of 2 location(s) could not be read"), "{e}");
    assert!(e.contains("the AWS credentials were not accepted"), "{e}");
    // The SDK's words once, not again as a raw chain after ours.
    assert_eq!(e.matches("SignatureDoesNotMatch").count(), 1, "{e}");
    assert!(
        !e.contains("service error") && !e.contains("Error {"),
        "{e}"
    );
    assert!(e.contains("no archives there"), "{e}");
    assert!(!e.contains("not-the-secret"), "{e}");
}

/// No AWS credentials at all: `Unauthenticated` with the chain's guidance, at once (no
/// retries, no SDK dump of every provider tried).
#[tokio::test(flavor = "multi_thread")]
async fn no_aws_credentials_is_unauthenticated_at_once() {
    let sb = Sandbox::new();
    let b = bucket_on("OFFSITE_TEST_S3S", "nocreds", false, "").await;
    let o = sb
        .cmd()
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", sb.path("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", sb.path("none"))
        .args(["ls", &b.url])
        .output()
        .unwrap();
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(e.contains("no usable AWS credentials"), "{e}");
    assert!(e.contains("set AWS_ACCESS_KEY_ID"), "{e}");
    assert!(!e.contains("retrying") && !e.contains("Attempted:"), "{e}");
}
