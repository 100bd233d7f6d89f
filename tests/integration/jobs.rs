//! The policy jobs end to end on real servers: push --policy across local disk, S3 (s3s-fs)
//! and GCS (gcp-storage-emulator) with the backup job's checksums and metadata; status as a
//! monitoring probe through each of its exit codes; drill recording the proof status reads;
//! restore --policy falling back in the policy's order; and the metrics read by the real
//! Prometheus parts a user runs (Debian's promtool, node_exporter's textfile collector and
//! Pushgateway, each on loopback).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Debian's Prometheus binaries (tests/emulators/install.sh unpacks them).
pub(crate) fn prometheus_bin(name: &str) -> PathBuf {
    let p = PathBuf::from(emulator("OFFSITE_TEST_PROMETHEUS_BIN")).join(name);
    assert!(
        p.exists(),
        "{} is missing: run tests/emulators/install.sh",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server this test started, killed (by its own PID) when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(bin: &Path, args: &[String], port: u16, log: PathBuf) -> Server {
        let child = std::process::Command::new(bin)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let s = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http("GET", s.port, "/", None).is_err() {
            assert!(Instant::now() < deadline, "{} did not start", bin.display());
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 request on loopback: (status, body).
fn http(method: &str, port: u16, path: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn now_name(series: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = chrono_like(t);
    format!("{series}-{t}.tar.gz")
}

/// `YYYYmmdd_HHMMSS` of a Unix time (UTC), without a date crate in the tests.
fn chrono_like(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}_{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A 3-2-1 policy over local disk, S3 on s3s-fs and GCS on the emulator.
fn policy(sb: &Sandbox, s3_bucket: &str, gcs_bucket: &str, s3_endpoint: &str) -> PathBuf {
    let text = format!(
        r#"version = 1
name = "app"
prefix = "app"
rpo = "26h"
verify-every = "7d"

[encryption]
recipients = ["{recipient}"]

[[destination]]
name = "local"
url = "{local}"

[[destination]]
name = "primary"
url = "s3://{s3_bucket}?region=us-east-1&endpoint={s3_endpoint}"

[[destination]]
name = "dr"
url = "gs://{gcs_bucket}?endpoint={gcs}"
storage-class = "NEARLINE"

[placement]
copies = 3
media = 2
offsite = 1
"#,
        recipient = sb.recipient,
        local = sb.url("local"),
        gcs = emulator("OFFSITE_TEST_GCS"),
    );
    let p = sb.path("policy.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The S3 credentials, and GCS through the URLs' endpoint only.
fn job_cmd(sb: &Sandbox) -> assert_cmd::Command {
    let mut c = sb.s3_cmd();
    c.env_remove("STORAGE_EMULATOR_HOST");
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn push_status_drill_and_restore_by_policy_across_file_s3_and_gcs_with_real_prometheus_parts()
{
    let sb = Sandbox::new();
    let s3b = bucket("jobs");
    let gcsb = bucket("jobs");
    let _s3 = crate::s3::store("OFFSITE_TEST_S3S", &s3b, "app", false).await;
    let _gcs = crate::gcs::store(&gcsb, "app").await;
    let p = policy(&sb, &s3b, &gcsb, &emulator("OFFSITE_TEST_S3S"));

    // The backup job's output: the archive, its checksums.sha256 and metadata.json.
    let name = now_name("app-backup");
    let file = sb.archive(&name, 300_000, 7);
    std::fs::write(
        sb.path("checksums.sha256"),
        format!("{}  {name}\n", sha256_file(&file)),
    )
    .unwrap();
    std::fs::write(
        sb.path("metadata.json"),
        r#"{"host":"db1","job":"nightly"}"#,
    )
    .unwrap();

    let metrics_dir = sb.path("textfile");
    std::fs::create_dir_all(&metrics_dir).unwrap();
    let o = job_cmd(&sb)
        .args(["--json", "push"])
        .arg(&file)
        .arg("--policy")
        .arg(&p)
        .args([
            "--checksums",
            "checksums.sha256",
            "--metadata",
            "metadata.json",
        ])
        .arg("--metrics-file")
        .arg(metrics_dir.join("offsite-push.prom"))
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["policy"], "app");
    assert_eq!(v["placement"]["met"], true, "{v}");
    assert_eq!(v["placement"]["copies"], 3);
    assert_eq!(v["placement"]["media"], 3);
    let names: Vec<&str> = v["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["local", "primary", "dr"]);
    let m = manifest(&sb.path("local/app"), &name);
    assert_eq!(m["policy"], "app");
    assert_eq!(m["metadata"]["host"], "db1");

    // Never proven: status names verify-every and exits 3.
    let o = policy_run(job_cmd(&sb), &["status"], &p);
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains("verify-every 7d: no deep verify or drill ever proved a copy at local"),
        "{}",
        stderr(&o)
    );

    // The drill proves every destination and records it; status then holds (exit 0).
    let o = job_cmd(&sb)
        .args(["drill", "--policy"])
        .arg(&p)
        .arg("--identity")
        .arg(&sb.key)
        .arg("--metrics-file")
        .arg(metrics_dir.join("offsite-drill.prom"))
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("3 of 3 destinations proven"),
        "{}",
        stdout(&o)
    );

    let pushgateway_port = free_port();
    let pushgateway = Server::start(
        &prometheus_bin("prometheus-pushgateway"),
        &[format!("--web.listen-address=127.0.0.1:{pushgateway_port}")],
        pushgateway_port,
        sb.path("pushgateway.log"),
    );
    let status_file = metrics_dir.join("offsite-status.prom");
    let o = job_cmd(&sb)
        .args(["--json", "status", "--policy"])
        .arg(&p)
        .arg("--metrics-file")
        .arg(&status_file)
        .args([
            "--pushgateway",
            &format!("http://127.0.0.1:{}", pushgateway.port),
        ])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["series"][0]["newest"], name.as_str());
    assert_eq!(v["series"][0]["placement"]["met"], true);
    assert_eq!(v["series"][0]["fresh"], true);
    for d in v["destinations"].as_array().unwrap() {
        assert_eq!(d["complete"], 1, "{d}");
        assert_eq!(d["proven"], true, "{d}");
    }

    // promtool accepts every file offsite wrote.
    let mut families = std::collections::BTreeSet::new();
    for f in [
        "offsite-push.prom",
        "offsite-drill.prom",
        "offsite-status.prom",
    ] {
        let text = std::fs::read_to_string(metrics_dir.join(f)).unwrap();
        let check = std::process::Command::new(prometheus_bin("promtool"))
            .args(["check", "metrics"])
            .stdin(std::fs::File::open(metrics_dir.join(f)).unwrap())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "promtool on {f}: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        for l in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            families.insert(l.split(' ').nth(2).unwrap().to_string());
        }
    }
    assert!(families.contains("offsite_last_success_timestamp_seconds"));
    assert!(families.contains("offsite_placement_met"));
    assert!(families.contains("offsite_last_proof_age_seconds"));
    assert!(!std::fs::read_dir(&metrics_dir).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));

    // node_exporter's textfile collector serves every offsite family back over HTTP.
    let ne_port = free_port();
    let ne = Server::start(
        &prometheus_bin("prometheus-node-exporter"),
        &[
            format!("--web.listen-address=127.0.0.1:{ne_port}"),
            "--collector.disable-defaults".into(),
            "--collector.textfile".into(),
            format!("--collector.textfile.directory={}", metrics_dir.display()),
        ],
        ne_port,
        sb.path("node_exporter.log"),
    );
    let (code, body) = http("GET", ne.port, "/metrics", None).unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("\nnode_textfile_scrape_error 0\n"),
        "the textfile collector found an error: {}\n{}",
        body.lines()
            .filter(|l| l.contains("textfile"))
            .collect::<Vec<_>>()
            .join("\n"),
        std::fs::read_to_string(&status_file).unwrap_or_default()
    );
    for f in &families {
        assert!(
            body.contains(&format!("\n{f}{{")),
            "node_exporter does not serve {f}"
        );
    }
    assert!(body.contains("offsite_placement_met{command=\"status\",policy=\"app\"} 1"));

    // Pushgateway holds the status run under job="offsite".
    let (code, body) = http("GET", pushgateway.port, "/metrics", None).unwrap();
    assert_eq!(code, 200);
    let line = body
        .lines()
        .find(|l| l.starts_with("offsite_placement_met{"))
        .unwrap_or_else(|| panic!("no offsite_placement_met in the Pushgateway: {body}"));
    assert!(
        line.contains("job=\"offsite\"") && line.contains("command=\"status\""),
        "{line}"
    );
    assert!(line.ends_with(" 1"), "{line}");

    // The local copy loses its data: restore --policy falls back to the next destination in
    // the policy's order, and status reports the damaged copy (exit 4).
    std::fs::remove_file(sb.path(&format!("local/app/{name}.age"))).unwrap();
    let o = job_cmd(&sb)
        .args(["restore", "--policy"])
        .arg(&p)
        .args(["--latest", "-o", "restored.tar.gz", "--identity"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("restored.tar.gz")), sha256_file(&file));
    assert!(stderr(&o).contains("from s3://"), "{}", stderr(&o));
    let o = policy_run(job_cmd(&sb), &["status"], &p);
    assert_code(&o, 4);
    assert!(
        stderr(&o).contains(&format!(
            "{name} at local: the manifest is there but its data is gone"
        )),
        "{}",
        stderr(&o)
    );
    // ls and verify --policy see all three destinations.
    let o = policy_run(job_cmd(&sb), &["verify"], &p);
    assert_code(&o, 4);
    assert!(
        stdout(&o).contains("2 of 3 copies checked good"),
        "{}",
        stdout(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_down_stores_the_rest_and_exits_3_naming_the_placement_then_status_exits_1() {
    let sb = Sandbox::new();
    let gcsb = bucket("down");
    let _gcs = crate::gcs::store(&gcsb, "app").await;
    // Nothing listens there: the S3 destination cannot be reached.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let p = policy(&sb, "never-there", &gcsb, &dead);
    let file = sb.archive(&now_name("app-backup"), 10_000, 1);
    let o = job_cmd(&sb)
        .arg("push")
        .arg(&file)
        .arg("--policy")
        .arg(&p)
        .output()
        .unwrap();
    assert_code(&o, 3);
    let out = stdout(&o);
    assert!(
        out.contains("2 of 3 destinations hold the archive."),
        "{out}"
    );
    assert!(
        out.contains("placement of policy app NOT met: copies 2/3"),
        "{out}"
    );
    assert!(
        stderr(&o).contains("error: placement not met: 2 copies of 3 wanted"),
        "{}",
        stderr(&o)
    );
    let o = policy_run(job_cmd(&sb), &["status"], &p);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("cannot read destination primary"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_source_that_does_not_match_its_checksums_is_stored_nowhere() {
    let sb = Sandbox::new();
    let name = "db-backup-20261126_020000.tar.gz";
    let file = sb.archive(name, 5_000, 2);
    std::fs::write(
        sb.path("checksums.sha256"),
        format!("{}  ./{name}\n", "0".repeat(64)),
    )
    .unwrap();
    let p = sb.path("p.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"db\"\n[encryption]\nrecipients = [\"{}\"]\n[[destination]]\nname = \"local\"\nurl = \"{}\"\n",
            sb.recipient,
            sb.url("local")
        ),
    )
    .unwrap();
    let o = sb
        .cmd()
        .arg("push")
        .arg(&file)
        .env("OFFSITE_POLICY", &p)
        .args(["--checksums", "checksums.sha256"])
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("the source does not match checksums.sha256"),
        "{}",
        stderr(&o)
    );
    assert!(!sb.path("local").exists() || visible_files(&sb.path("local")).is_empty());
    // A checksum file without the archive's line is a usage error that lists what it has.
    std::fs::write(
        sb.path("checksums.sha256"),
        format!("{}  other.tar.gz\n", "0".repeat(64)),
    )
    .unwrap();
    let o = sb
        .cmd()
        .arg("push")
        .arg(&file)
        .env("OFFSITE_POLICY", &p)
        .args(["--checksums", "checksums.sha256"])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o)
            .contains("has no line for db-backup-20261126_020000.tar.gz; it lists other.tar.gz"),
        "{}",
        stderr(&o)
    );
    // The matching line pushes (by OFFSITE_POLICY), and the archive restores by policy.
    std::fs::write(
        sb.path("checksums.sha256"),
        format!("{}  {name}\n", sha256_file(&file)),
    )
    .unwrap();
    let o = sb
        .cmd()
        .arg("push")
        .arg(&file)
        .env("OFFSITE_POLICY", &p)
        .args(["--checksums", "checksums.sha256"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = sb
        .cmd()
        .args(["restore", "--archive", name, "-o", "back.tar.gz", "-i"])
        .arg(&sb.key)
        .env("OFFSITE_POLICY", &p)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back.tar.gz")), sha256_file(&file));
}

#[test]
fn plan_creates_a_lock_bucket_with_object_lock_and_probes_access_on_moto() {
    let sb = Sandbox::new();
    let moto = emulator("OFFSITE_TEST_MOTO");
    let (vault, plain) = (bucket("vault"), bucket("plain"));
    let p = sb.path("policy.toml");
    std::fs::write(
        &p,
        format!(
            r#"version = 1
name = "db"
prefix = "db"
[encryption]
recipients = ["{r}"]
[[destination]]
name = "vault"
url = "s3://{vault}?region=us-east-1&endpoint={moto}"
lock = "governance"
lock-days = 1
[[destination]]
name = "plain"
url = "s3://{plain}?region=us-east-1&endpoint={moto}"
[placement]
copies = 2
immutable = 1
"#,
            r = sb.recipient
        ),
    )
    .unwrap();
    // Before --create: the buckets are missing, so the probe fails (exit 1) and names them.
    let o = policy_run(job_cmd(&sb), &["plan", "--check-access"], &p);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("destination vault could not be checked"),
        "{}",
        stderr(&o)
    );

    let o = policy_run(job_cmd(&sb), &["plan", "--create", "--check-access"], &p);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("create   created, with versioning and object lock"),
        "{out}"
    );
    assert!(
        out.contains("write    not probed: a locked destination"),
        "{out}"
    );
    assert!(out.contains("delete   ok"), "{out}");
    // The lock bucket takes locked copies: placement's immutable copy is met.
    let file = sb.archive("db-20261126_020000.sql.gz", 20_000, 3);
    let o = job_cmd(&sb)
        .args(["--json", "push"])
        .arg(&file)
        .arg("--policy")
        .arg(&p)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["placement"]["immutable"], 1, "{v}");
    assert!(v["destinations"][0]["retain_until"].is_string(), "{v}");
    // Again: nothing to create, and the probe left nothing behind.
    let o = policy_run(
        job_cmd(&sb),
        &["--json", "plan", "--create", "--check-access"],
        &p,
    );
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["access"][1]["create"], "exists already; nothing changed");
    let o = policy_run(job_cmd(&sb), &["ls"], &p);
    assert_code(&o, 0);
    assert!(
        !stdout(&o).contains("offsite-access-check"),
        "{}",
        stdout(&o)
    );
}
