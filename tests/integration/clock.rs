//! Honest time (issue 28), end to end: push refuses a creation time ahead of its clock by more
//! than `clock-tolerance` before reading a byte; readers call an archive future-dated when its
//! creation time runs ahead of their clock, of the store's write time or of its push time, and
//! then never choose it, count it or delete it. On file://, S3 (SeaweedFS) and Azurite, with
//! names dated ahead by less than, exactly and more than the tolerance, an edited `created`, and
//! a host whose clock runs fast (Debian's `faketime`).

use chrono::{Duration, Utc};
use offsite_storage::{PutOptions, Storage, StorageExt};

use crate::common::*;

fn name_at(t: chrono::DateTime<Utc>) -> String {
    format!("app-backup-{}.tar.gz", t.format("%Y%m%d_%H%M%S"))
}

/// `offsite ARGS` under `faketime SPEC` (an absolute time, frozen, or `+2d`: a clock that
/// runs that far ahead; the monotonic clock is left alone, so timers run), with the sandbox's
/// environment.
fn faked(sb: &Sandbox, spec: &str, args: &[&str]) -> std::process::Output {
    let mut c = std::process::Command::new("faketime");
    if spec.starts_with('+') {
        c.arg("-f");
    }
    c.arg(spec)
        .arg(assert_cmd::cargo::cargo_bin("offsite"))
        .args(args)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("OFFSITE_CACHE_DIR", sb.path("cache"))
        .envs(NO_METADATA_PROBES)
        .env_remove("OFFSITE_IDENTITY_FILE")
        .env_remove("OFFSITE_POLICY")
        .current_dir(sb.path(""));
    c.output()
        .expect("faketime is required (tests/run installs it)")
}

fn policy(sb: &Sandbox, url: &str) -> std::path::PathBuf {
    let p = sb.path("clock-policy.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"app\"\nclock-tolerance = \"1h\"\n[encryption]\nrecipients = [\"{}\"]\n[retention]\nkeep-last = 1\n[[destination]]\nname = \"here\"\nurl = \"{url}\"\n",
            sb.recipient
        ),
    )
    .unwrap();
    p
}

#[test]
fn push_refuses_a_name_ahead_of_its_clock_beyond_the_tolerance_and_reads_nothing() {
    let sb = Sandbox::new();
    // A frozen clock: exactly at the tolerance is accepted, a second past it is not.
    let frozen = "2026-12-07 12:00:00";
    let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
        .unwrap()
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    let p = policy(&sb, &sb.url("a"));
    for (ahead, want) in [
        (Duration::minutes(30), 0),
        (Duration::hours(1), 0),
        (Duration::hours(1) + Duration::seconds(1), 2),
        (Duration::days(2), 2),
    ] {
        let name = name_at(at + ahead);
        sb.archive(&name, 1000, 3);
        let o = faked(
            &sb,
            frozen,
            &["push", &name, "--policy", p.to_str().unwrap()],
        );
        assert_eq!(code(&o), want, "{name}: {}", stderr(&o));
        let there = sb.path("a").join(format!("{name}.manifest.json")).exists();
        assert_eq!(there, want == 0, "{name}");
        if want == 2 {
            let e = stderr(&o);
            assert!(
                e.contains(
                    "more than 1h (clock-tolerance) after this host's clock (2026-12-07T12:00:00Z)"
                ) && e.contains("read from its name")
                    && e.contains("Fix this host's clock, or the name"),
                "{e}"
            );
        }
    }
    // Nothing was spooled for the refused ones either.
    let spools = sb.path("cache").join("spool");
    let left: Vec<_> = std::fs::read_dir(&spools)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

/// After `older` and `planted` were pushed to `url`: ls calls the planted one future-dated,
/// restore --latest passes over it (on stderr) for the older one, status exits 4 naming it,
/// and prune leaves it.
fn readers_see_future_dated(
    sb: &Sandbox,
    cmd: impl Fn() -> assert_cmd::Command,
    url: &str,
    older: &str,
    planted: &str,
) {
    let o = cmd().args(["ls", "--json", url]).output().unwrap();
    assert_code(&o, 0);
    let v = ls_lines(&o.stdout);
    let of = |n: &str| {
        v["archives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["archive"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} not listed: {v}"))
    };
    assert_eq!(of(planted)["state"], "future-dated", "{v}");
    assert!(
        of(planted)["future_dated"]
            .as_str()
            .is_some_and(|r| r.contains("clock-tolerance")),
        "{v}"
    );
    assert_eq!(of(older)["state"], "complete", "{v}");
    let back = sb.path("back");
    let _ = std::fs::remove_file(&back);
    let o = cmd()
        .args(["restore", url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&back), sha256_file(&sb.path(older)));
    assert!(
        stderr(&o).contains(&format!("passed over {planted}")) || !planted_is_newer(older, planted),
        "{}",
        stderr(&o)
    );
    let p = policy(sb, url);
    let o = cmd().args(["status", "--policy"]).arg(&p).output().unwrap();
    assert_code(&o, 4);
    assert!(
        stderr(&o).contains(&format!("{planted} at here: future-dated")),
        "{}",
        stderr(&o)
    );
    let o = cmd()
        .args(["prune", "--dry-run", "--policy"])
        .arg(&p)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains(&format!("leave  future-dated at here: {planted}")),
        "{}",
        stdout(&o)
    );
    let o = cmd().args(["prune", "--policy"]).arg(&p).output().unwrap();
    assert_code(&o, 0);
    let o = cmd().args(["ls", url]).output().unwrap();
    assert!(
        stdout(&o).contains(planted),
        "prune deleted it: {}",
        stdout(&o)
    );
}

/// Whether a name's timestamp sorts after another's: restore only passes over a planted
/// archive that is newer by name.
fn planted_is_newer(older: &str, planted: &str) -> bool {
    planted > older
}

/// Rewrites the manifest of `name` under `prefix` at `store` with `created` moved `ahead`.
async fn edit_created(store: &dyn Storage, prefix: &str, name: &str, ahead: Duration) {
    let key = if prefix.is_empty() {
        format!("{name}.manifest.json")
    } else {
        format!("{prefix}/{name}.manifest.json")
    };
    let bytes = store.get_bytes(&key).await.unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let created: chrono::DateTime<Utc> = m["created"].as_str().unwrap().parse().unwrap();
    m["created"] = serde_json::Value::from((created + ahead).to_rfc3339());
    store
        .put_bytes(
            &key,
            serde_json::to_vec_pretty(&m).unwrap().into(),
            PutOptions::default(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_edited_created_and_a_fast_host_clock_are_future_dated_on_file() {
    let sb = Sandbox::new();
    let now = Utc::now();
    let older = name_at(now - Duration::days(2));
    let edited = name_at(now - Duration::days(1));
    for (n, seed) in [(&older, 1), (&edited, 2)] {
        sb.archive(n, 5000, seed);
        assert_code(&sb.push(&sb.path(n), &["a"]), 0);
    }
    // Someone who can write to the destination moves `created` three days ahead.
    let local = offsite_storage::LocalStore::new(sb.path("a"));
    edit_created(&local, "", &edited, Duration::days(3)).await;
    readers_see_future_dated(&sb, || sb.cmd(), &sb.url("a"), &older, &edited);

    // A host whose clock runs two days fast pushes an archive named by its clock: its push
    // accepts it, every reader with a right clock calls it future-dated, and the store's write
    // time keeps it so even after time has caught up.
    let sb = Sandbox::new();
    let older = name_at(now - Duration::days(1));
    sb.archive(&older, 4000, 5);
    assert_code(&sb.push(&sb.path(&older), &["b"]), 0);
    let fast = name_at(now + Duration::days(2));
    sb.archive(&fast, 4000, 6);
    let o = faked(
        &sb,
        "+2d",
        &["push", &fast, "-r", &sb.recipient, "--to", &sb.url("b")],
    );
    assert_code(&o, 0);
    readers_see_future_dated(&sb, || sb.cmd(), &sb.url("b"), &older, &fast);
    let o = faked(&sb, "+3d", &["ls", &sb.url("b")]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains(&format!("{fast} is future-dated"))
            && stdout(&o).contains("the time the store wrote its manifest"),
        "three days on, the store's clock still says so: {}",
        stdout(&o)
    );
    // A host 30 minutes fast is within the tolerance: its archive is normal at once.
    let mild = name_at(now + Duration::minutes(30));
    sb.archive(&mild, 100, 7);
    let o = faked(
        &sb,
        "+30m",
        &["push", &mild, "-r", &sb.recipient, "--to", &sb.url("b")],
    );
    assert_code(&o, 0);
    let o = sb.cmd().args(["ls", &sb.url("b")]).output().unwrap();
    let line = stdout(&o)
        .lines()
        .find(|l| l.contains(&mild))
        .unwrap()
        .to_string();
    assert!(line.contains("complete"), "{line}");
}

/// On a cloud store: names 30 minutes ahead pushed, two hours ahead refused with nothing
/// written, an edited `created` future-dated for every reader.
async fn on_a_store(
    sb: &Sandbox,
    cmd: impl Fn() -> assert_cmd::Command,
    url: &str,
    store: &dyn Storage,
    prefix: &str,
) {
    let now = Utc::now();
    let older = name_at(now - Duration::days(2));
    let soon = name_at(now + Duration::minutes(30));
    for (n, seed) in [(&older, 1), (&soon, 2)] {
        sb.archive(n, 3000, seed);
        let o = sb.push_via(cmd(), &sb.path(n), url);
        assert_code(&o, 0);
    }
    let ahead = name_at(now + Duration::hours(2));
    sb.archive(&ahead, 3000, 3);
    let o = sb.push_via(cmd(), &sb.path(&ahead), url);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("clock-tolerance"), "{}", stderr(&o));
    let keys: Vec<String> = store
        .list_all(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert!(!keys.iter().any(|k| k.contains(&ahead)), "{keys:?}");
    // The archive 30 minutes ahead is moved three days further by a bucket writer.
    edit_created(store, prefix, &soon, Duration::days(3)).await;
    readers_see_future_dated(sb, cmd, url, &older, &soon);
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn names_ahead_and_an_edited_created_on_seaweedfs() {
    let sb = Sandbox::new();
    let name = bucket("clock");
    let store = crate::s3::store("OFFSITE_TEST_SEAWEEDFS", &name, "app", false).await;
    let url = format!(
        "s3://{name}/app?endpoint={}",
        emulator("OFFSITE_TEST_SEAWEEDFS")
    );
    // The test's store is rooted at the URL's prefix: its keys are the names.
    on_a_store(&sb, || sb.s3_cmd(), &url, &store, "").await;
}

#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread")]
async fn names_ahead_and_an_edited_created_on_azurite() {
    let sb = Sandbox::new();
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let container = format!("clock{}", rand_u32());
    let store = crate::azure::store(&container, "app").await;
    let url = format!("az://{}/{container}/app", crate::azure::AZURITE_ACCOUNT);
    on_a_store(&sb, || sb.az_cmd(&endpoint), &url, &store, "").await;
}
