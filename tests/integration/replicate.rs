//! `offsite replicate` end to end on the emulators: S3 to S3 across two regions on moto
//! (server-side: the bytes never pass through the client, as a proxy in front of moto
//! counts), S3 to GCS and to Azure (streamed, each with its own manifest), a killed streamed
//! copy resumed from its journal, shards that together cover each key once, the deletion
//! guards, a corrupted destination copy found and replaced with --checksum, and replication
//! by policy counted by status.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use offsite_storage::{PutOptions, Storage, StorageExt};

use crate::common::*;
use crate::proxy::{kill_mid_upload, Proxy};

const OLD: &str = "app-backup-20261101_020000.tar.gz";
const NEW: &str = "app-backup-20261126_020000.tar.gz";

/// The offsite command with every emulator's test credentials.
fn cmd(sb: &Sandbox) -> assert_cmd::Command {
    let mut c = sb.s3_cmd();
    c.env(
        "AZURE_STORAGE_CONNECTION_STRING",
        crate::azure::connection_string(&emulator("OFFSITE_TEST_AZURITE")),
    )
    .env_remove("STORAGE_EMULATOR_HOST");
    c
}

fn std_cmd(sb: &Sandbox) -> std::process::Command {
    let mut c = sb.std_cmd();
    c.env("AWS_ACCESS_KEY_ID", S3S_ACCESS)
        .env("AWS_SECRET_ACCESS_KEY", S3S_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    c
}

/// A bucket in `region` on the S3 server at `endpoint`, and its URL (prefix `app`).
async fn s3_bucket(
    endpoint: &str,
    region: &str,
    lock: bool,
    query: &str,
) -> (String, offsite_s3::S3Store) {
    let name = bucket("rep");
    let url = format!("s3://{name}/app?region={region}&endpoint={endpoint}{query}");
    let cfg = offsite_s3::S3Config::from_location(&offsite_storage::Location::parse(&url).unwrap())
        .unwrap();
    let s =
        offsite_s3::S3Store::open_with_static_credentials(cfg, &url, S3S_ACCESS, S3S_SECRET).await;
    s.create_bucket(lock).await.expect("create bucket");
    (url, s)
}

fn replicate(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    cmd(sb).arg("replicate").args(args).output().unwrap()
}

/// The `--json` lines of a run: items by key, and the summaries.
fn json_lines(
    o: &std::process::Output,
) -> (BTreeMap<String, serde_json::Value>, Vec<serde_json::Value>) {
    let mut items = BTreeMap::new();
    let mut sums = Vec::new();
    for l in stdout(o).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        match v["type"].as_str() {
            Some("item") => {
                items.insert(v["key"].as_str().unwrap().to_string(), v);
            }
            Some("summary") => sums.push(v),
            _ => panic!("{l}"),
        }
    }
    (items, sums)
}

fn restored_sha(sb: &Sandbox, url: &str, name: &str) -> String {
    let out = sb.path(&format!("restored-{}", rand_u32()));
    let o = cmd(sb)
        .args(["restore", url, "--archive", name, "-i"])
        .arg(&sb.key)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_code(&o, 0);
    sha256_file(&out)
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_to_s3_across_two_regions_on_moto_is_server_side_and_incremental() {
    let sb = Sandbox::new();
    // Both URLs through one proxy in front of moto: one service, so copies are server-side,
    // and the proxy counts every byte the client sends.
    let proxy = Proxy::start(&emulator("OFFSITE_TEST_MOTO"));
    let (src, src_store) = s3_bucket(&proxy.endpoint, "us-east-1", false, "").await;
    let (dst, dst_store) = s3_bucket(
        &proxy.endpoint,
        "eu-west-1",
        false,
        "&storage-class=STANDARD_IA",
    )
    .await;
    let big = sb.archive(NEW, 12 << 20, 1);
    let small = sb.archive(OLD, 40_000, 2);
    for f in [&big, &small] {
        assert_code(&sb.push_via(cmd(&sb), f, &src), 0);
    }
    src_store
        .put_bytes("notes/readme.txt", "plain".into(), PutOptions::default())
        .await
        .unwrap();
    // Data without a manifest: a push that never committed.
    src_store
        .put_bytes(
            "app-backup-20261120_020000.tar.gz.age",
            vec![7u8; 100].into(),
            PutOptions::default(),
        )
        .await
        .unwrap();

    // A dry run reports the route the run takes: every copy server-side here.
    let o = replicate(&sb, &[&src, &dst, "--dry-run"]);
    assert_code(&o, 0);
    let text = stdout(&o);
    assert!(text.contains("would copy 3 ("), "{text}");
    assert!(text.contains(", 3 server-side)"), "{text}");
    assert!(!text.contains("streamed"), "{text}");

    let before = proxy.forwarded();
    let o = replicate(&sb, &[&src, &dst]);
    assert_code(&o, 0);
    let sent = proxy.forwarded() - before;
    let text = stdout(&o);
    assert!(text.contains(&format!("copied         {NEW}")), "{text}");
    assert!(text.contains("server-side"), "{text}");
    assert!(!text.contains("streamed"), "{text}");
    assert!(
        text.contains("not-replicated app-backup-20261120_020000.tar.gz"),
        "{text}"
    );
    assert!(text.contains("copied 3 ("), "{text}");
    // 12 MiB moved between the buckets; the client sent requests only.
    assert!(
        sent < 512 << 10,
        "the client sent {sent} bytes: not a server-side copy"
    );

    // The replica is complete, checks good and restores the same bytes.
    let o = cmd(&sb)
        .args(["verify", &dst, "--deep", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(restored_sha(&sb, &dst, NEW), sha256_file(&big));
    assert_eq!(
        dst_store.get_bytes("notes/readme.txt").await.unwrap(),
        bytes::Bytes::from("plain")
    );
    assert!(dst_store
        .head("app-backup-20261120_020000.tar.gz.age")
        .await
        .unwrap_err()
        .is_not_found());
    // Its own manifest: the destination's storage class, its ETag.
    let m: serde_json::Value = serde_json::from_slice(
        &dst_store
            .get_bytes(&format!("{NEW}.manifest.json"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(m["stored"]["storage-class"], "STANDARD_IA");
    let head = dst_store.head(&format!("{NEW}.age")).await.unwrap();
    assert_eq!(head.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(
        m["stored"]["etag"].as_str().map(|e| e.trim_matches('"')),
        head.etag.as_deref().map(|e| e.trim_matches('"'))
    );

    // Nothing changed: nothing copied.
    let o = replicate(&sb, &[&src, &dst, "--json"]);
    assert_code(&o, 0);
    let (items, sums) = json_lines(&o);
    assert_eq!(sums[0]["copied"], 0, "{items:?}");
    assert_eq!(sums[0]["skipped"], 3);
    assert_eq!(sums[0]["not_replicated"], 1);
    assert_eq!(items[NEW]["action"], "skipped");
    assert_eq!(items[NEW]["reason"], "same archive (same SHA-256 and size)");
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_to_gcs_and_azure_streams_and_writes_each_destinations_own_manifest() {
    let sb = Sandbox::new();
    let (src, _s) = s3_bucket(&emulator("OFFSITE_TEST_S3S"), "us-east-1", false, "").await;
    let gb = bucket("rep");
    let gcs = crate::gcs::store(&gb, "app").await;
    let gurl = format!("gs://{gb}/app?endpoint={}", emulator("OFFSITE_TEST_GCS"));
    let container = bucket("rep");
    let az = crate::azure::store(&container, "app").await;
    let aurl = format!("az://devstoreaccount1/{container}/app");
    let file = sb.archive(NEW, 9 << 20, 3);
    assert_code(&sb.push_via(cmd(&sb), &file, &src), 0);

    let o = replicate(&sb, &[&src, &gurl, &aurl, "--jobs", "4"]);
    assert_code(&o, 0);
    let text = stdout(&o);
    assert_eq!(
        text.matches("streamed, checked by sha256").count(),
        2,
        "{text}"
    );
    for url in [&gurl, &aurl] {
        let o = cmd(&sb).args(["verify", url]).output().unwrap();
        assert_code(&o, 0);
        assert_eq!(restored_sha(&sb, url, NEW), sha256_file(&file));
    }
    // Each manifest records its own provider's checksum, not the source's.
    let key = format!("{NEW}.manifest.json");
    let gm: serde_json::Value =
        serde_json::from_slice(&gcs.get_bytes(&key).await.unwrap()).unwrap();
    let am: serde_json::Value = serde_json::from_slice(&az.get_bytes(&key).await.unwrap()).unwrap();
    let s3m: serde_json::Value =
        serde_json::from_slice(&_s.get_bytes(&key).await.unwrap()).unwrap();
    assert_ne!(
        gm["stored"]["provider-checksum"], s3m["stored"]["provider-checksum"],
        "{gm}"
    );
    assert_eq!(gm["stored"]["sha256"], s3m["stored"]["sha256"]);
    assert_eq!(am["plaintext"], s3m["plaintext"]);

    let o = replicate(&sb, &[&src, &gurl, &aurl]);
    assert_code(&o, 0);
    assert_eq!(
        stdout(&o).matches("copied 0 (").count(),
        2,
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_killed_streamed_replication_resumes_from_its_journal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sb = Sandbox::new();
    let s3s = emulator("OFFSITE_TEST_S3S");
    // The destination through a proxy: another endpoint, so the copy streams.
    let proxy = Proxy::start(&s3s);
    let (src, _s) = rt.block_on(s3_bucket(&s3s, "us-east-1", false, ""));
    let (dst, dst_store) = rt.block_on(s3_bucket(
        &proxy.endpoint,
        "us-east-1",
        false,
        "&part-size-mib=5",
    ));
    let file = sb.archive(NEW, 30 << 20, 4);
    assert_code(&sb.push_via(cmd(&sb), &file, &src), 0);

    let mut first = std_cmd(&sb);
    first.args(["replicate", &src, &dst]);
    kill_mid_upload(&proxy, first, 16 << 20);
    assert!(
        rt.block_on(dst_store.head(&format!("{NEW}.manifest.json")))
            .unwrap_err()
            .is_not_found(),
        "a killed copy never looks complete"
    );
    let before = proxy.forwarded();
    let o = replicate(&sb, &[&src, &dst]);
    assert_code(&o, 0);
    let text = stdout(&o);
    assert!(text.contains("parts were already on the server"), "{text}");
    assert!(text.contains("1 resumed"), "{text}");
    let resent = proxy.forwarded() - before;
    assert!(resent < 24 << 20, "the rerun sent {resent} bytes of 30 MiB");
    proxy.throttle.store(0, Ordering::Relaxed);
    let o = cmd(&sb)
        .args(["verify", &dst, "--deep", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
}

/// A source directory with archives pushed by offsite and plain objects beside them.
fn file_source(sb: &Sandbox, archives: u32, plain: u32) -> Vec<String> {
    let mut names = Vec::new();
    for i in 0..archives {
        let name = format!("app-backup-202611{:02}_020000.tar.gz", i + 1);
        let f = sb.archive(&name, 5_000 + i as usize, u64::from(i));
        assert_code(&sb.push(&f, &["src"]), 0);
        names.push(name);
    }
    for i in 0..plain {
        let p = sb.path(&format!("src/docs/note-{i}.txt"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("note {i}")).unwrap();
        names.push(format!("docs/note-{i}.txt"));
    }
    names
}

#[test]
fn shards_together_cover_every_key_exactly_once() {
    let sb = Sandbox::new();
    let mut want = file_source(&sb, 7, 6);
    want.sort();
    let (src, dst) = (sb.url("src"), sb.url("dst"));
    let mut seen: Vec<String> = Vec::new();
    for i in 0..3 {
        let o = replicate(&sb, &[&src, &dst, "--shard", &format!("{i}/3"), "--json"]);
        assert_code(&o, 0);
        let (items, _) = json_lines(&o);
        for (k, v) in items {
            assert_eq!(v["action"], "copied", "{v}");
            seen.push(k);
        }
    }
    seen.sort();
    assert_eq!(seen, want, "each key in exactly one shard");
    let o = replicate(&sb, &[&src, &dst, "--json"]);
    let (_, sums) = json_lines(&o);
    assert_eq!(sums[0]["copied"], 0);
    assert_eq!(sums[0]["skipped"], 13);
    let o = replicate(&sb, &[&src, &dst, "--shard", "3/3"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("I/N with 0 <= I < N"), "{}", stderr(&o));
}

#[test]
fn deletions_only_with_delete_and_behind_every_guard() {
    let sb = Sandbox::new();
    let names = file_source(&sb, 3, 2);
    let (src, dst) = (sb.url("src"), sb.url("dst"));
    assert_code(&replicate(&sb, &[&src, &dst]), 0);
    // Two archives and a note leave the source: five keys would go at the destination.
    for n in &names[..2] {
        std::fs::remove_file(sb.path(&format!("src/{n}.age"))).unwrap();
        std::fs::remove_file(sb.path(&format!("src/{n}.manifest.json"))).unwrap();
    }
    std::fs::remove_file(sb.path("src/docs/note-0.txt")).unwrap();
    let before = visible_files(&sb.path("dst"));

    // Without --delete: kept, and said so.
    let o = replicate(&sb, &[&src, &dst, "--json"]);
    assert_code(&o, 0);
    let (items, _) = json_lines(&o);
    assert_eq!(
        items[&names[0]]["reason"],
        "only at the destination (kept without --delete)"
    );
    // More than --max-delete: nothing goes, exit 5.
    let o = replicate(&sb, &[&src, &dst, "--delete", "--max-delete", "4"]);
    assert_code(&o, 5);
    assert!(
        stdout(&o).contains("more than --max-delete 4"),
        "{}",
        stdout(&o)
    );
    assert_eq!(visible_files(&sb.path("dst")), before);
    // A source that lists nothing never empties its destination.
    let empty = sb.url("empty");
    std::fs::create_dir_all(sb.path("empty")).unwrap();
    let o = replicate(&sb, &[&empty, &dst, "--delete"]);
    assert_code(&o, 5);
    assert!(
        stdout(&o).contains("the source lists nothing"),
        "{}",
        stdout(&o)
    );
    // A source that fails to list: exit 1, nothing deleted.
    let o = replicate(&sb, &[&sb.url("missing"), &dst, "--delete"]);
    assert_code(&o, 1);
    assert_eq!(visible_files(&sb.path("dst")), before);
    // A dry run says what would go; then it goes.
    let o = replicate(&sb, &[&src, &dst, "--delete", "--dry-run", "--json"]);
    assert_code(&o, 0);
    let (items, sums) = json_lines(&o);
    assert_eq!(sums[0]["deleted"], 5);
    assert_eq!(
        items[&format!("{}.manifest.json", names[0])]["action"],
        "would-delete"
    );
    assert_eq!(visible_files(&sb.path("dst")), before);
    let o = replicate(&sb, &[&src, &dst, "--delete", "--max-delete", "5"]);
    assert_code(&o, 0);
    assert!(!sb.path(&format!("dst/{}.age", names[0])).exists());
    assert!(sb.path(&format!("dst/{}.age", names[2])).exists());
    assert!(!sb.path("dst/docs/note-0.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_destination_copy_is_never_deleted() {
    let sb = Sandbox::new();
    let moto = emulator("OFFSITE_TEST_MOTO");
    let (src, src_store) = s3_bucket(&moto, "us-east-1", false, "").await;
    let (dst, dst_store) =
        s3_bucket(&moto, "us-west-2", true, "&lock=governance&lock-days=2").await;
    // Named today, so its lock (creation + 2 days) holds now.
    let name = format!(
        "app-backup-{}.tar.gz",
        chrono::Utc::now().format("%Y%m%d_%H%M%S")
    );
    let f = sb.archive(&name, 30_000, 9);
    assert_code(&sb.push_via(cmd(&sb), &f, &src), 0);
    let o = replicate(&sb, &[&src, &dst]);
    assert_code(&o, 0);
    let head = dst_store.head(&format!("{name}.age")).await.unwrap();
    assert!(
        head.retention.is_some(),
        "the replica carries its destination's lock"
    );
    for k in [format!("{name}.age"), format!("{name}.manifest.json")] {
        src_store.delete(&k).await.unwrap();
    }
    src_store
        .put_bytes("keep.txt", "x".into(), PutOptions::default())
        .await
        .unwrap();
    let o = replicate(&sb, &[&src, &dst, "--delete", "--json"]);
    assert_code(&o, 0);
    let (items, _) = json_lines(&o);
    let m = &items[&format!("{name}.manifest.json")];
    assert_eq!(m["action"], "kept", "{m}");
    assert!(m["reason"]
        .as_str()
        .unwrap()
        .contains("locked at the destination until"));
    assert!(dst_store.head(&format!("{name}.age")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_destination_copy_is_found_and_recopied_with_checksum() {
    let sb = Sandbox::new();
    let moto = emulator("OFFSITE_TEST_MOTO");
    let (src, _s) = s3_bucket(&moto, "us-east-1", false, "").await;
    let (dst, dst_store) = s3_bucket(&moto, "eu-central-1", false, "").await;
    let file = sb.archive(NEW, 200_000, 5);
    assert_code(&sb.push_via(cmd(&sb), &file, &src), 0);
    assert_code(&replicate(&sb, &[&src, &dst]), 0);
    // Same size, other bytes: the listing cannot tell.
    let key = format!("{NEW}.age");
    let size = dst_store.head(&key).await.unwrap().size as usize;
    dst_store
        .put_bytes(&key, vec![0u8; size].into(), PutOptions::default())
        .await
        .unwrap();
    let o = replicate(&sb, &[&src, &dst, "--json"]);
    let (items, _) = json_lines(&o);
    assert_eq!(
        items[NEW]["action"], "skipped",
        "size and manifests agree: trusted without --checksum"
    );
    let o = replicate(&sb, &[&src, &dst, "--checksum", "--json"]);
    assert_code(&o, 0);
    let (items, _) = json_lines(&o);
    assert_eq!(items[NEW]["action"], "copied", "{:?}", items[NEW]);
    assert_eq!(
        items[NEW]["reason"],
        "the destination's data does not match its SHA-256 (--checksum)"
    );
    let o = cmd(&sb)
        .args(["verify", &dst, "--deep", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = replicate(&sb, &[&src, &dst, "--checksum", "--json"]);
    let (items, _) = json_lines(&o);
    assert_eq!(items[NEW]["reason"], "same archive, data checked");
}

#[test]
fn replication_by_policy_fills_the_replica_that_status_and_restore_count() {
    let sb = Sandbox::new();
    let policy = sb.path("policy.toml");
    std::fs::write(
        &policy,
        format!(
            r#"version = 1
name = "app"
prefix = "app"
[encryption]
recipients = ["{}"]
[[destination]]
name = "primary"
url = "{}"
[[destination]]
name = "west"
url = "{}"
offsite = true
[placement]
copies = 2
media = 1
offsite = 1
[replication]
from = "primary"
to = ["west"]
"#,
            sb.recipient,
            sb.url("primary"),
            sb.url("west")
        ),
    )
    .unwrap();
    let name = format!(
        "app-backup-{}.tar.gz",
        chrono::Utc::now().format("%Y%m%d_%H%M%S")
    );
    let f = sb.archive(&name, 20_000, 1);
    let o = policy_run(cmd(&sb), &["push", f.to_str().unwrap()], &policy);
    assert_code(&o, 0);
    std::fs::create_dir_all(sb.path("west/app")).unwrap();
    // Before replication the replica holds nothing: placement is short.
    let o = policy_run(cmd(&sb), &["status"], &policy);
    assert_code(&o, 3);
    let metrics = sb.path("replicate.prom");
    let o = policy_run(
        cmd(&sb),
        &["replicate", "--metrics-file", metrics.to_str().unwrap()],
        &policy,
    );
    assert_code(&o, 0);
    assert!(stdout(&o).contains("-> west: copied 1"), "{}", stdout(&o));
    let prom = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        prom.contains(
            r#"offsite_replicate_copied{command="replicate",policy="app",destination="west"} 1"#
        ),
        "{prom}"
    );
    let o = policy_run(cmd(&sb), &["status"], &policy);
    assert_code(&o, 0);
    // The primary's copy lost: restore by policy finds the replica.
    std::fs::remove_file(sb.path(&format!("primary/app/{name}.age"))).unwrap();
    let out = sb.path("back");
    let o = cmd(&sb)
        .args(["restore", "--latest", "--policy"])
        .arg(&policy)
        .arg("-i")
        .arg(&sb.key)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&out), sha256_file(&f));
    // A policy without [replication] says what to add.
    std::fs::write(
        &policy,
        std::fs::read_to_string(&policy)
            .unwrap()
            .replace("[replication]\nfrom = \"primary\"\nto = [\"west\"]\n", ""),
    )
    .unwrap();
    let o = policy_run(cmd(&sb), &["replicate"], &policy);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("has no [replication] section"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gcs_to_gcs_and_azure_to_azure_copy_inside_the_provider() {
    let sb = Sandbox::new();
    let file = sb.archive(NEW, 6 << 20, 8);
    // GCS: two buckets behind one proxy, so the client's bytes can be counted.
    let proxy = Proxy::start(&emulator("OFFSITE_TEST_GCS"));
    let (a, b) = (bucket("rep"), bucket("rep"));
    crate::gcs::store(&a, "app").await;
    crate::gcs::store(&b, "app").await;
    let (src, dst) = (
        format!("gs://{a}/app?endpoint={}", proxy.endpoint),
        format!("gs://{b}/app?endpoint={}", proxy.endpoint),
    );
    assert_code(&sb.push_via(cmd(&sb), &file, &src), 0);
    let before = proxy.forwarded();
    let o = replicate(&sb, &[&src, &dst]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("server-side"), "{}", stdout(&o));
    let sent = proxy.forwarded() - before;
    assert!(
        sent < 512 << 10,
        "the client sent {sent} bytes: not a rewrite"
    );
    assert_code(&cmd(&sb).args(["verify", &dst]).output().unwrap(), 0);
    assert_eq!(restored_sha(&sb, &dst, NEW), sha256_file(&file));

    // Azure: two containers of one account.
    let (c, d) = (bucket("rep"), bucket("rep"));
    crate::azure::store(&c, "app").await;
    crate::azure::store(&d, "app").await;
    let (src, dst) = (
        format!("az://devstoreaccount1/{c}/app"),
        format!("az://devstoreaccount1/{d}/app"),
    );
    assert_code(&sb.push_via(cmd(&sb), &file, &src), 0);
    let o = replicate(&sb, &[&src, &dst]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("server-side"), "{}", stdout(&o));
    assert_code(&cmd(&sb).args(["verify", &dst]).output().unwrap(), 0);
    assert_eq!(restored_sha(&sb, &dst, NEW), sha256_file(&file));
}
