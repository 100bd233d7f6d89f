//! `offsite prune` end to end: a month of archives with invented creation times (in their
//! names) pushed by policy, pruned by per-destination retention; each rail refuses with exit 5
//! and deletes nothing; orphaned data is cleaned; on moto's Object Lock bucket locked copies
//! stay and the locks of archives kept as weeklies are extended.

use std::path::{Path, PathBuf};

use crate::common::*;

/// `YYYYmmdd_HHMMSS` of a time `hours` before now (UTC), by `date`.
fn stamp(hours_ago: u32) -> String {
    let o = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("{hours_ago} hours ago"),
            "+%Y%m%d_%H%M%S",
        ])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn write_policy(sb: &Sandbox, body: &str) -> PathBuf {
    let p = sb.path("policy.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"app\"\nprefix = \"app\"\nrpo = \"26h\"\n[encryption]\nrecipients = [\"{}\"]\n{body}",
            sb.recipient
        ),
    )
    .unwrap();
    p
}

/// Pushes one small archive a day, `days` of them, the newest `newest_hours` hours old.
fn push_month(
    sb: &Sandbox,
    policy: &Path,
    days: u32,
    newest_hours: u32,
    cmd: impl Fn() -> assert_cmd::Command,
) -> Vec<String> {
    let mut names = Vec::new();
    for d in 0..days {
        let name = format!("app-backup-{}.tar.gz", stamp(newest_hours + d * 24));
        let file = sb.archive(&name, 2_000, u64::from(d));
        let o = cmd()
            .arg("push")
            .arg(&file)
            .arg("--policy")
            .arg(policy)
            .output()
            .unwrap();
        assert_code(&o, 0);
        std::fs::remove_file(&file).unwrap();
        names.push(name);
    }
    names
}

fn manifests(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| {
                let n = e.ok()?.file_name().to_string_lossy().to_string();
                n.strip_suffix(".manifest.json").map(str::to_string)
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn data_objects(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".age")
        })
        .count()
}

#[test]
fn a_month_on_local_disks_is_pruned_by_each_destinations_rules_and_the_rails_refuse() {
    let sb = Sandbox::new();
    let p = write_policy(
        &sb,
        &format!(
            "[[destination]]\nname = \"local\"\nurl = \"{}\"\nretention = {{ keep-last = 3 }}\n\
             [[destination]]\nname = \"usb\"\nurl = \"{}\"\n\
             [retention]\nkeep-daily = 7\nkeep-weekly = 3\nmin-age = \"1h\"\n",
            sb.url("local"),
            sb.url("usb")
        ),
    );
    let names = push_month(&sb, &p, 30, 2, || sb.cmd());
    let (local, usb) = (sb.path("local/app"), sb.path("usb/app"));
    assert_eq!(manifests(&local).len(), 30);

    // An orphan: data a killed push left, two days ago.
    let orphan = local.join("app-backup-20200101_000000.tar.gz.age");
    std::fs::write(&orphan, b"never committed").unwrap();
    let touched = std::process::Command::new("touch")
        .args(["-d", "2 days ago"])
        .arg(&orphan)
        .status()
        .unwrap();
    assert!(touched.success());

    // Local spools: one of a push not run again for 8 days, one of a push from today.
    let spools = sb.path("cache/spool");
    for (dir, age) in [
        ("old-push-0a1b2c", "8 days ago"),
        ("new-push-3d4e5f", "1 hour ago"),
    ] {
        std::fs::create_dir_all(spools.join(dir)).unwrap();
        for f in ["data.spool", "journal.json"] {
            let path = spools.join(dir).join(f);
            std::fs::write(&path, b"x").unwrap();
            assert!(std::process::Command::new("touch")
                .args(["-d", age])
                .arg(&path)
                .status()
                .unwrap()
                .success());
        }
    }

    // The dry run: the plan, nothing changed.
    let o = policy_run(sb.cmd(), &["--json", "prune", "--dry-run"], &p);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plan = v["plan"].as_array().unwrap();
    let keep = |dest: &str| -> Vec<String> {
        let mut k: Vec<String> = plan
            .iter()
            .filter(|i| i["destination"] == dest && i["action"] == "keep")
            .map(|i| i["archive"].as_str().unwrap().to_string())
            .collect();
        k.sort();
        k
    };
    let mut newest3: Vec<String> = names[..3].to_vec();
    newest3.sort();
    assert_eq!(keep("local"), newest3);
    let usb_keep = keep("usb");
    // Seven dailies, and up to three weeklies of which the newest is also a daily.
    assert!((7..=9).contains(&usb_keep.len()), "{usb_keep:?}");
    for n in &names[..7] {
        assert!(usb_keep.contains(n), "{n} is one of the 7 newest days");
    }
    let newest = plan
        .iter()
        .find(|i| i["destination"] == "usb" && i["archive"] == names[0].as_str())
        .unwrap();
    let reasons = newest["reasons"].to_string();
    assert!(
        reasons.contains("daily") && reasons.contains("weekly"),
        "{reasons}"
    );
    assert_eq!(
        v["orphans"].as_array().unwrap().len(),
        1,
        "{}",
        v["orphans"]
    );
    assert_eq!(manifests(&local).len(), 30);
    assert!(orphan.exists());

    // max-delete: more deletions than allowed refuse the whole plan (exit 5), nothing goes.
    let o = policy_run(sb.cmd(), &["prune", "--max-delete", "5"], &p);
    assert_code(&o, 5);
    assert!(
        stderr(&o).contains("error: refused: max-delete 5: the plan deletes 27 archives at local"),
        "{}",
        stderr(&o)
    );
    assert_eq!(manifests(&local).len(), 30);
    assert_eq!(manifests(&usb).len(), 30);

    // The real run: what remains is exactly the plan's keep set, data and manifest alike.
    let o = policy_run(sb.cmd(), &["prune"], &p);
    assert_code(&o, 0);
    let strip = |v: Vec<String>| -> Vec<String> { v };
    assert_eq!(strip(manifests(&local)), newest3);
    assert_eq!(manifests(&usb), usb_keep);
    assert_eq!(data_objects(&local), 3);
    assert_eq!(data_objects(&usb), usb_keep.len());
    assert!(!orphan.exists(), "the orphan is cleaned");
    assert!(
        !spools.join("old-push-0a1b2c").exists(),
        "the stale spool is swept"
    );
    assert!(
        spools.join("new-push-3d4e5f").join("data.spool").exists(),
        "a recent spool stays"
    );
    // Status still holds for the newest archive (placement default: 1 copy).
    let o = policy_run(sb.cmd(), &["status"], &p);
    assert_code(&o, 0);
    // Run again: nothing left to delete.
    let o = policy_run(sb.cmd(), &["--json", "prune"], &p);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["done"].as_array().unwrap().is_empty(), "{}", v["done"]);
}

#[test]
fn prune_deletes_nothing_when_backups_have_stopped_unless_forced() {
    let sb = Sandbox::new();
    let p = write_policy(
        &sb,
        &format!(
            "[[destination]]\nname = \"local\"\nurl = \"{}\"\n[retention]\nkeep-last = 2\n",
            sb.url("local")
        ),
    );
    // The newest archive is three days old: rpo 26h is not met.
    push_month(&sb, &p, 5, 72, || sb.cmd());
    let o = policy_run(sb.cmd(), &["prune"], &p);
    assert_code(&o, 5);
    assert!(
        stderr(&o).contains("backups seem to have stopped, so prune deletes nothing"),
        "{}",
        stderr(&o)
    );
    assert_eq!(manifests(&sb.path("local/app")).len(), 5);
    let o = policy_run(sb.cmd(), &["prune", "--force"], &p);
    assert_code(&o, 0);
    assert_eq!(manifests(&sb.path("local/app")).len(), 2);
    // The newest complete archive is never deleted, even by max-age.
    let p = write_policy(
        &sb,
        &format!(
            "[[destination]]\nname = \"local\"\nurl = \"{}\"\n[retention]\nmax-age = \"1d\"\n",
            sb.url("local")
        ),
    );
    let o = policy_run(sb.cmd(), &["prune", "--force"], &p);
    assert_code(&o, 0);
    let left = manifests(&sb.path("local/app"));
    assert_eq!(left.len(), 1, "{left:?}");
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn locked_copies_on_moto_stay_and_weekly_keeps_get_longer_locks() {
    locked_copies_stay_and_weekly_keeps_get_longer_locks("OFFSITE_TEST_MOTO").await;
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn locked_copies_on_seaweedfs_stay_and_weekly_keeps_get_longer_locks() {
    locked_copies_stay_and_weekly_keeps_get_longer_locks("OFFSITE_TEST_SEAWEEDFS").await;
}

#[cfg(feature = "s3")]
async fn locked_copies_stay_and_weekly_keeps_get_longer_locks(server: &str) {
    use offsite_storage::Storage as _;
    let sb = Sandbox::new();
    let name = bucket("prune");
    let store = crate::s3::store(server, &name, "app", true).await;
    let moto = emulator(server);
    let p = write_policy(
        &sb,
        &format!(
            "[[destination]]\nname = \"vault\"\nurl = \"s3://{name}?region=us-east-1&endpoint={moto}\"\nlock = \"governance\"\nlock-days = 1\n\
             [retention]\nkeep-last = 2\nkeep-weekly = 2\nmin-age = \"0h\"\n"
        ),
    );
    let cmd = || sb.s3_cmd();
    // Ten days of archives; the oldest three were pushed without a lock (a policy change), so
    // prune can delete them; the rest are locked for a day from the push.
    let names = push_month(&sb, &p, 7, 2, cmd);
    let locked_text = std::fs::read_to_string(&p).unwrap();
    let unlocked = write_policy(
        &sb,
        &format!(
            "[[destination]]\nname = \"vault\"\nurl = \"s3://{name}?region=us-east-1&endpoint={moto}\"\n"
        ),
    );
    let mut old = Vec::new();
    for d in 7..10u32 {
        let n = format!("app-backup-{}.tar.gz", stamp(2 + d * 24));
        let f = sb.archive(&n, 2_000, u64::from(d));
        let o = cmd()
            .arg("push")
            .arg(&f)
            .arg("--policy")
            .arg(&unlocked)
            .output()
            .unwrap();
        assert_code(&o, 0);
        old.push(n);
    }
    std::fs::write(&p, locked_text).unwrap();
    // A multipart upload a killed push left (min-age 0h: anything started before now is old).
    let mp = store.multipart().unwrap();
    let upload = mp
        .create_upload(
            "app-backup-20200101_000000.tar.gz.age",
            &offsite_storage::PutOptions::default(),
        )
        .await
        .unwrap();
    let started = futures::TryStreamExt::try_collect::<Vec<_>>(store.list_uploads(""))
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.id == upload)
        .and_then(|u| u.started);
    let o = policy_run(cmd(), &["--json", "prune"], &p);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plan = v["plan"].as_array().unwrap();
    let action = |n: &str| -> String {
        plan.iter()
            .find(|i| i["archive"] == n)
            .unwrap_or_else(|| panic!("{n} not in the plan: {}", v["plan"]))["action"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Locked copies the rules would delete are kept, and say so.
    for n in &names[2..] {
        let item = plan.iter().find(|i| i["archive"] == n.as_str()).unwrap();
        assert_eq!(item["action"], "keep", "{item}");
    }
    let locked_kept = plan
        .iter()
        .filter(|i| {
            i["reasons"]
                .to_string()
                .contains("never deleted while locked")
        })
        .count();
    assert!(locked_kept >= 3, "{}", v["plan"]);
    // The unlocked old ones that no rule keeps are gone, every version of data and manifest.
    let done = v["done"].as_array().unwrap();
    for n in &old {
        if action(n) == "delete" {
            assert!(
                done.iter().any(|d| d["name"] == n.as_str()
                    && d["action"] == "deleted"
                    && d["ok"] == true),
                "{n}: {}",
                v["done"]
            );
            let e = store.head(&format!("{n}.manifest.json")).await.unwrap_err();
            assert!(e.is_not_found(), "{e}");
            let versions: Vec<_> =
                futures::TryStreamExt::try_collect::<Vec<_>>(store.list_versions(""))
                    .await
                    .unwrap();
            assert!(
                versions.iter().all(|x| x.key != format!("{n}.age")),
                "{n}: versions left {versions:?}"
            );
        }
    }
    // An upload is aborted only when it started more than a day ago (min-age 0h does not
    // lower that: a large push can run for hours); younger ones are left to finish. moto dates
    // its uploads in the past, SeaweedFS now: each must get the right treatment.
    let open: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list_uploads(""))
        .await
        .unwrap();
    let old_enough = started.is_some_and(|t| t < chrono::Utc::now() - chrono::Duration::days(1));
    assert_eq!(
        done.iter()
            .any(|d| d["action"] == "aborted" && d["ok"] == true),
        old_enough,
        "{started:?}: {}",
        v["done"]
    );
    assert_eq!(open.iter().any(|u| u.id == upload), !old_enough, "{open:?}");
    // The newest archive is kept as a weekly: its data and manifest locks now run two weeks
    // from its creation, longer than the one day the push gave them.
    let newest = &names[0];
    let extended = done
        .iter()
        .find(|d| d["name"] == newest.as_str() && d["action"] == "extended")
        .unwrap_or_else(|| panic!("no extension of {newest}: {}", v["done"]));
    assert_eq!(extended["ok"], true, "{extended}");
    for key in [format!("{newest}.age"), format!("{newest}.manifest.json")] {
        let r = store.head(&key).await.unwrap().retention.unwrap();
        let days = (r.retain_until - chrono::Utc::now()).num_days();
        assert!(
            (12..=14).contains(&days),
            "{key}: lock runs {days} more days"
        );
    }
}

#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread")]
async fn prune_on_azurite_deletes_manifest_and_data_of_what_the_rules_drop() {
    use offsite_storage::Storage as _;
    let sb = Sandbox::new();
    let container = bucket("prune");
    let store = crate::azure::store(&container, "app").await;
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let p = write_policy(
        &sb,
        &format!(
            "[[destination]]\nname = \"azure\"\nurl = \"az://devstoreaccount1/{container}?endpoint={endpoint}\"\n\
             [retention]\nkeep-last = 2\n"
        ),
    );
    let cmd = || {
        let mut c = sb.cmd();
        c.env(
            "AZURE_STORAGE_CONNECTION_STRING",
            crate::azure::connection_string(&endpoint),
        );
        c
    };
    let names = push_month(&sb, &p, 5, 2, cmd);
    let o = policy_run(cmd(), &["--json", "prune"], &p);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["done"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["action"] == "deleted" && d["ok"] == true)
            .count(),
        3,
        "{}",
        v["done"]
    );
    for (i, n) in names.iter().enumerate() {
        for key in [format!("{n}.age"), format!("{n}.manifest.json")] {
            let there = store.head(&key).await.is_ok();
            assert_eq!(there, i < 2, "{key}");
        }
    }
    let o = policy_run(cmd(), &["ls"], &p);
    assert_code(&o, 0);
    assert_eq!(stdout(&o).matches("complete").count(), 2, "{}", stdout(&o));
}

/// DESIGN.md "Locks": a plain DeleteObject on an Object Lock bucket only adds a delete marker;
/// the locked data stays, still counts in status, and restores.
#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn a_locked_copy_under_a_delete_marker_counts_in_status_and_restores_on_moto() {
    let sb = Sandbox::new();
    let name = bucket("marker");
    let _store = crate::s3::store("OFFSITE_TEST_MOTO", &name, "app", true).await;
    let moto = emulator("OFFSITE_TEST_MOTO");
    let p = write_policy(
        &sb,
        &format!(
            "[[destination]]\nname = \"vault\"\nurl = \"s3://{name}?region=us-east-1&endpoint={moto}\"\nlock = \"governance\"\nlock-days = 2\n\
             [placement]\ncopies = 1\nimmutable = 1\n"
        ),
    );
    let cmd = || sb.s3_cmd();
    let archive = format!("app-backup-{}.tar.gz", stamp(1));
    let file = sb.archive(&archive, 30_000, 9);
    let o = cmd()
        .arg("push")
        .arg(&file)
        .arg("--policy")
        .arg(&p)
        .output()
        .unwrap();
    assert_code(&o, 0);
    // Someone deletes both objects without a version id, with boto3 (moto's own venv).
    let script = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='{moto}', region_name='us-east-1', aws_access_key_id='x', aws_secret_access_key='y')\n\
         for k in ['app/{archive}.manifest.json', 'app/{archive}.age']:\n    r = s3.delete_object(Bucket='{name}', Key=k)\n    assert r.get('DeleteMarker'), r\n"
    );
    moto_python(&script);
    let o = policy_run(cmd(), &["ls"], &p);
    assert!(
        !stdout(&o).contains("complete"),
        "the live listing shows nothing: {}",
        stdout(&o)
    );
    let o = policy_run(cmd(), &["--json", "status"], &p);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["destinations"][0]["complete"], 1, "{v}");
    assert_eq!(v["destinations"][0]["locked"], 1, "{v}");
    assert_eq!(v["series"][0]["placement"]["met"], true, "{v}");
    let o = cmd()
        .args(["--json", "restore", "--policy"])
        .arg(&p)
        .args(["--latest", "-o", "back.tar.gz", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back.tar.gz")), sha256_file(&file));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["attempts"]
            .to_string()
            .contains("from a locked version under a delete marker"),
        "{v}"
    );
}
