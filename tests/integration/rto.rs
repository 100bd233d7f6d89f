//! Recovery time end to end (README "Recovery time"): push records how long it took in the
//! (signed) manifest, a drill records how long each destination's restore took, `status`
//! estimates each destination's restore time and judges the policy's `rto` (not judged before a
//! drill measured anything, met, missed: exit 3), and `plan` names the destinations whose
//! storage class can never meet it: on local disk, and on moto (S3 GLACIER, DEEP_ARCHIVE) and
//! Azurite (Archive tier) with the metrics read by Debian's promtool.

use std::path::{Path, PathBuf};

use crate::common::*;

/// A policy on local disk with `rto`, signed by a key of its own and trusting it.
fn local_policy(sb: &Sandbox, rto: &str) -> PathBuf {
    let key = sb.path("signing.key");
    if !key.exists() {
        let o = sb
            .cmd()
            .args(["keygen", "--signing", "--comment", "host-a", "-o"])
            .arg(&key)
            .output()
            .unwrap();
        assert_code(&o, 0);
        std::fs::write(sb.path("trusted.pub"), stdout(&o)).unwrap();
    }
    let trusted = std::fs::read_to_string(sb.path("trusted.pub")).unwrap();
    let p = sb.path("policy.toml");
    std::fs::write(
        &p,
        format!(
            r#"version = 1
name = "app"
prefix = "app"
rto = "{rto}"
[signing]
key-file = "{key}"
trusted = ["{trusted}"]
[encryption]
recipients = ["{r}"]
[[destination]]
name = "local"
url = "{url}"
"#,
            key = key.display(),
            trusted = trusted.trim(),
            r = sb.recipient,
            url = sb.url("local"),
        ),
    )
    .unwrap();
    p
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", stdout(o), stderr(o)))
}

/// The signed text of a signed manifest (or record) envelope, parsed.
fn signed_text(path: &Path) -> serde_json::Value {
    let env: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    serde_json::from_str(env["signed"].as_str().expect("a signed envelope")).unwrap()
}

#[test]
fn rto_on_local_disk_is_not_judged_before_a_drill_then_met_and_missed() {
    let sb = Sandbox::new();
    let p = local_policy(&sb, "30min");
    let file = sb.archive(NAME, 200_000, 1);
    let o = policy_run(sb.cmd(), &["push", file.to_str().unwrap()], &p);
    assert_code(&o, 0);
    assert!(stdout(&o).contains(" stored in "), "{}", stdout(&o));
    // The push's duration and throughput, inside the signed format-1 manifest.
    let dir = sb.path("local/app");
    let m = signed_text(&dir.join(format!("{NAME}.manifest.json")));
    assert!(m["push"]["seconds"].as_f64().unwrap() > 0.0, "{m}");
    assert!(m["push"]["bytes_per_second"].as_f64().unwrap() > 0.0, "{m}");

    // Before a drill: said, not failed.
    let o = policy_run(sb.cmd(), &["status"], &p);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("rto 30min, verify-every not set"), "{out}");
    assert!(
        out.contains("note: rto 30min: not judged for app-backup-*.tar.gz yet: no drill has measured a restore at local; run offsite drill"),
        "{out}"
    );
    assert!(out.contains("not judged"), "{out}");
    let v = json(&policy_run(sb.cmd(), &["--json", "status"], &p));
    assert_eq!(v["rto"], "30min");
    assert_eq!(v["series"][0]["rto_met"], serde_json::Value::Null);
    assert_eq!(v["series"][0]["restore"][0]["rto"], "unmeasured");
    assert_eq!(v["unjudged"].as_array().unwrap().len(), 1, "{v}");

    // The drill measures the restore, says it in human units, and records it (signed).
    let o = sb
        .cmd()
        .args(["drill", "--policy"])
        .arg(&p)
        .arg("--identity")
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let line = stdout(&o)
        .lines()
        .find(|l| l.starts_with("proven"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("; restored in ") && line.ends_with("/s"),
        "{line}"
    );
    let record_path = dir.join(format!("{NAME}.verified.json"));
    let record = signed_text(&record_path);
    let stored = m["stored"]["size"].as_u64().unwrap();
    assert_eq!(
        record["restore"]["bytes"].as_u64(),
        Some(stored),
        "{record}"
    );
    assert!(record["restore"]["seconds"].as_f64().unwrap() > 0.0);
    assert!(record["restore"]["bytes_per_second"].as_f64().unwrap() > 0.0);

    // Met: a 200 kB archive restores from local disk well within 30 minutes.
    let o = policy_run(sb.cmd(), &["--json", "status"], &p);
    assert_code(&o, 0);
    let v = json(&o);
    assert_eq!(v["series"][0]["rto_met"], true, "{v}");
    let e = &v["series"][0]["restore"][0];
    assert_eq!(e["destination"], "local");
    assert_eq!(e["rto"], "within");
    assert!(e["estimate_seconds"].as_f64().unwrap() > 0.0, "{e}");
    assert_eq!(v["destinations"][0]["restore_measured"]["bytes"], stored);
    let o = policy_run(sb.cmd(), &["status"], &p);
    let out = stdout(&o);
    assert!(out.contains("RESTORE FROM"), "{out}");
    let row = out
        .lines()
        .find(|l| l.starts_with("local ") && l.contains("within"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(row.contains("/s"), "{row}");
    assert!(!out.contains("not judged"), "{out}");

    // Missed: the same record, had the drill taken two hours. A record the trusted key did not
    // sign counts for nothing, so the host re-signs it as a drill would have.
    let mut slow = record.clone();
    slow["restore"]["seconds"] = 7200.0.into();
    slow["restore"]["bytes_per_second"] = (stored as f64 / 7200.0).into();
    std::fs::write(&record_path, serde_json::to_vec_pretty(&slow).unwrap()).unwrap();
    let o = policy_run(sb.cmd(), &["status"], &p);
    // Unsigned now: ignored, so not judged again, and nothing fails on a forged record.
    assert_code(&o, 0);
    assert!(stdout(&o).contains("not judged"), "{}", stdout(&o));
    // With a policy that trusts no keys, the plain record counts: two hours is over 30min.
    let text = std::fs::read_to_string(&p).unwrap();
    let unsigned: String = text
        .lines()
        .filter(|l| !l.starts_with("trusted = "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&p, unsigned).unwrap();
    let o = policy_run(sb.cmd(), &["status"], &p);
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains(&format!(
            "error: not met: rto 30min: no destination holding {NAME}, the newest of app-backup-*.tar.gz, can restore it within 30 minutes: local about 2h 0m by its last drill"
        )),
        "{}",
        stderr(&o)
    );
    let row = stdout(&o)
        .lines()
        .find(|l| l.starts_with("app-backup-*.tar.gz"))
        .unwrap_or_default()
        .to_string();
    assert!(row.ends_with("MISSED"), "{row}");
}

#[test]
fn rto_is_a_policy_key_that_refuses_a_bare_m_and_plan_prints_it_in_words() {
    let sb = Sandbox::new();
    let p = local_policy(&sb, "30m");
    let o = policy_run(sb.cmd(), &["plan"], &p);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("30m could be 30 minutes or 30 months; write 30min or 30mo"),
        "{}",
        stderr(&o)
    );
    let p = local_policy(&sb, "0h");
    let o = policy_run(sb.cmd(), &["plan"], &p);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("no time can never be met"),
        "{}",
        stderr(&o)
    );
    let p = local_policy(&sb, "1h30min");
    let o = policy_run(sb.cmd(), &["plan"], &p);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("rto 1h30min (1 hour 30 minutes)"),
        "{}",
        stdout(&o)
    );
    let v = json(&policy_run(sb.cmd(), &["--json", "plan"], &p));
    assert_eq!(v["rto"], "1h30min");
    assert_eq!(v["rto_problem"], serde_json::Value::Null);
}

#[cfg(all(feature = "s3", feature = "gcs", feature = "azure"))]
mod clouds {
    use super::*;
    use crate::jobs::prometheus_bin;

    /// A policy over local disk (when `local`), two moto buckets (GLACIER, DEEP_ARCHIVE) and
    /// an Azurite container (Archive tier).
    fn cold_policy(sb: &Sandbox, rto: &str, local: bool, b: &Buckets) -> PathBuf {
        let moto = emulator("OFFSITE_TEST_MOTO");
        let local = if local {
            format!(
                "[[destination]]\nname = \"local\"\nurl = \"{}\"\n",
                sb.url("local")
            )
        } else {
            String::new()
        };
        let p = sb.path(&format!("policy-{rto}.toml"));
        std::fs::write(
            &p,
            format!(
                r#"version = 1
name = "cold"
prefix = "app"
rto = "{rto}"
[encryption]
recipients = ["{r}"]
{local}
[[destination]]
name = "glacier"
url = "s3://{g}?region=us-east-1&endpoint={moto}"
storage-class = "GLACIER"
[[destination]]
name = "deep"
url = "s3://{d}?region=us-east-1&endpoint={moto}"
storage-class = "DEEP_ARCHIVE"
[[destination]]
name = "vault"
url = "az://{account}/{v}"
storage-class = "Archive"
"#,
                r = sb.recipient,
                g = b.glacier,
                d = b.deep,
                v = b.vault,
                account = crate::azure::AZURITE_ACCOUNT,
            ),
        )
        .unwrap();
        p
    }

    struct Buckets {
        glacier: String,
        deep: String,
        vault: String,
    }

    fn cmd(sb: &Sandbox) -> assert_cmd::Command {
        let mut c = sb.cmd();
        c.envs(emulator_credentials())
            .env_remove("AWS_ENDPOINT_URL");
        c
    }

    fn promtool(file: &Path) -> String {
        let text = std::fs::read_to_string(file).unwrap();
        let check = std::process::Command::new(prometheus_bin("promtool"))
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(file).unwrap())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "promtool on {}: {}{}\n{text}",
            file.display(),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        text
    }

    /// The value of the sample of `family` whose labels include each of `labels`.
    fn sample(text: &str, family: &str, labels: &[&str]) -> Option<f64> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .find(|l| labels.iter().all(|x| l.contains(x)))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn archive_classes_on_moto_and_azurite_can_never_meet_a_short_rto_and_local_disk_can() {
        let sb = Sandbox::new();
        let b = Buckets {
            glacier: bucket("glacier"),
            deep: bucket("deep"),
            vault: bucket("vault"),
        };
        let _g = crate::s3::store("OFFSITE_TEST_MOTO", &b.glacier, "app", false).await;
        let _d = crate::s3::store("OFFSITE_TEST_MOTO", &b.deep, "app", false).await;
        let _v = crate::azure::store(&b.vault, "app").await;
        let metrics = sb.path("textfile");
        std::fs::create_dir_all(&metrics).unwrap();

        // plan: local can meet 6h; GLACIER thaws first (5 hours); DEEP_ARCHIVE and Archive never.
        let p = cold_policy(&sb, "6h", true, &b);
        let o = policy_run(cmd(&sb), &["plan"], &p);
        assert_code(&o, 0);
        let out = stdout(&o);
        for want in [
            "restore: S3 GLACIER needs up to 5 hours to thaw first",
            "restore: can never restore within rto 6h (6 hours): S3 DEEP_ARCHIVE needs up to 12 hours to thaw",
            "restore: can never restore within rto 6h (6 hours): Azure Archive needs up to 15 hours to thaw",
        ] {
            assert!(out.contains(want), "{want}\n{out}");
        }
        let v = json(&policy_run(cmd(&sb), &["--json", "plan"], &p));
        assert_eq!(v["destinations"][1]["thaw"]["hours"], 5);
        assert_eq!(v["destinations"][1]["rto_never"], false);
        assert_eq!(v["destinations"][2]["rto_never"], true);

        // Push to all four, with the push's time per destination in the metrics.
        let file = sb.archive(NAME, 150_000, 2);
        let o = cmd(&sb)
            .args(["push"])
            .arg(&file)
            .arg("--policy")
            .arg(&p)
            .arg("--metrics-file")
            .arg(metrics.join("offsite-push.prom"))
            .output()
            .unwrap();
        assert_code(&o, 0);
        let push = promtool(&metrics.join("offsite-push.prom"));
        for d in ["local", "glacier", "deep", "vault"] {
            let l = format!("destination=\"{d}\"");
            assert!(
                sample(&push, "offsite_push_seconds", &[&l]).unwrap() > 0.0,
                "{push}"
            );
            assert!(sample(&push, "offsite_push_bytes_per_second", &[&l]).unwrap() > 0.0);
        }

        // Before a drill: local and GLACIER could make it, unmeasured: not judged.
        let o = policy_run(cmd(&sb), &["status"], &p);
        assert_code(&o, 0);
        assert!(
            stdout(&o).contains("note: rto 6h: not judged"),
            "{}",
            stdout(&o)
        );

        // The drill proves local (the archive classes cannot be read without a thaw: exit 1).
        let o = cmd(&sb)
            .args(["drill", "--policy"])
            .arg(&p)
            .arg("--identity")
            .arg(&sb.key)
            .arg("--metrics-file")
            .arg(metrics.join("offsite-drill.prom"))
            .output()
            .unwrap();
        assert_code(&o, 1);
        assert!(stdout(&o).contains("; restored in "), "{}", stdout(&o));
        let drill = promtool(&metrics.join("offsite-drill.prom"));
        assert!(
            sample(
                &drill,
                "offsite_restore_seconds",
                &["destination=\"local\""]
            )
            .unwrap()
                > 0.0
        );
        assert_eq!(
            sample(&drill, "offsite_restore_seconds", &["destination=\"deep\""]),
            None
        );

        // Met through local; the archive classes say why they never could.
        let status_file = metrics.join("offsite-status.prom");
        let o = cmd(&sb)
            .args(["status", "--policy"])
            .arg(&p)
            .arg("--metrics-file")
            .arg(&status_file)
            .output()
            .unwrap();
        assert_code(&o, 0);
        let out = stdout(&o);
        let row = |d: &str| {
            out.lines()
                .find(|l| l.starts_with(&format!("{d} ")) && l.contains("app-backup-*"))
                .unwrap_or_else(|| panic!("{d}: {out}"))
                .to_string()
        };
        assert!(row("local").ends_with("within"), "{out}");
        assert!(row("glacier").ends_with("not measured"), "{out}");
        assert!(
            row("deep").contains("12h") && row("deep").ends_with("NEVER"),
            "{out}"
        );
        assert!(
            row("vault").contains("15h") && row("vault").ends_with("NEVER"),
            "{out}"
        );
        let status = promtool(&status_file);
        let series = "series=\"app-backup-*.tar.gz\"";
        assert_eq!(sample(&status, "offsite_rto_met", &[series]), Some(1.0));
        assert_eq!(
            sample(&status, "offsite_rto_seconds", &[]),
            Some(6.0 * 3600.0)
        );
        assert!(
            sample(
                &status,
                "offsite_restore_estimate_seconds",
                &[series, "destination=\"local\""]
            )
            .unwrap()
                > 0.0
        );
        assert!(sample(
            &status,
            "offsite_restore_seconds",
            &["destination=\"local\""]
        )
        .is_some());

        // Without local disk, no destination can ever restore within 4h: plan and status say
        // so, each archive class named with its hours, and both exit 3 (no drill needed).
        let p = cold_policy(&sb, "4h", false, &b);
        let o = policy_run(cmd(&sb), &["plan"], &p);
        assert_code(&o, 3);
        assert!(
            stderr(&o).contains("error: rto 4h: no destination can ever restore within 4 hours: glacier: S3 GLACIER needs up to 5 hours to thaw; deep: S3 DEEP_ARCHIVE needs up to 12 hours to thaw; vault: Azure Archive needs up to 15 hours to thaw"),
            "{}",
            stderr(&o)
        );
        let status_file = metrics.join("offsite-status-cold.prom");
        let o = cmd(&sb)
            .args(["status", "--policy"])
            .arg(&p)
            .arg("--metrics-file")
            .arg(&status_file)
            .output()
            .unwrap();
        assert_code(&o, 3);
        assert!(
            stderr(&o).contains(&format!("error: not met: rto 4h: no destination holding {NAME}, the newest of app-backup-*.tar.gz, can restore it within 4 hours: glacier: S3 GLACIER needs up to 5 hours to thaw; deep: S3 DEEP_ARCHIVE needs up to 12 hours to thaw; vault: Azure Archive needs up to 15 hours to thaw")),
            "{}",
            stderr(&o)
        );
        let status = promtool(&status_file);
        assert_eq!(sample(&status, "offsite_rto_met", &[series]), Some(0.0));
    }
}
