//! Fault campaigns with real servers (issue 10): a destination answering 500 then
//! recovering, a server (s3s-fs, SeaweedFS) killed mid-upload and restarted on its data, the
//! spool's disk full, an Azure SAS expiring mid-push (the one expiry the emulators enforce).

use std::sync::atomic::Ordering;

use offsite_storage::Storage;

use crate::azure::AZURITE_ACCOUNT;
use crate::common::*;
use crate::proxy::Proxy;

fn cmd(sb: &Sandbox) -> assert_cmd::Command {
    let mut c = sb.cmd();
    c.envs(emulator_credentials());
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn destinations_answering_500_are_retried_and_then_recover() {
    let sb = Sandbox::new();
    let s3 = bucket("fivehundred");
    let _s3 = crate::s3::store("OFFSITE_TEST_S3S", &s3, "app", false).await;
    let gcs = bucket("fivehundred");
    let _gcs = crate::gcs::store(&gcs, "app").await;
    let container = bucket("fivehundred");
    let _az = crate::azure::store(&container, "app").await;
    let proxies = [
        Proxy::start(&emulator("OFFSITE_TEST_S3S")),
        Proxy::start(&emulator("OFFSITE_TEST_GCS")),
        Proxy::start(
            emulator("OFFSITE_TEST_AZURITE").trim_end_matches(&format!("/{AZURITE_ACCOUNT}")),
        ),
    ];
    let urls = [
        format!("s3://{s3}/app?endpoint={}", proxies[0].endpoint),
        format!("gs://{gcs}/app?endpoint={}", proxies[1].endpoint),
        format!(
            "az://{AZURITE_ACCOUNT}/{container}/app?endpoint={}/{AZURITE_ACCOUNT}",
            proxies[2].endpoint
        ),
    ];
    let push = |name: &str| {
        let src = sb.path(name);
        let mut c = cmd(&sb);
        c.arg("push").arg(&src).args(["-r", &sb.recipient]);
        for u in &urls {
            c.args(["--to", u]);
        }
        c.output().unwrap()
    };

    // Two 500s in a row at every server: retried, and the push succeeds everywhere.
    sb.archive(NAME, 9 << 20, 1);
    for p in &proxies {
        p.fail_next.store(2, Ordering::Relaxed);
    }
    let o = push(NAME);
    assert_code(&o, 0);
    for p in &proxies {
        assert_eq!(p.failed.load(Ordering::Relaxed), 2, "both 500s were met");
    }
    assert!(stderr(&o).contains("retrying"), "{}", stderr(&o));

    // A server that keeps failing: given up within the retry budget, stored nowhere, and
    // the error says what the server said.
    let second = "app-backup-20261127_020000.tar.gz";
    sb.archive(second, 3 << 20, 2);
    for p in &proxies {
        p.fail_next.store(1_000, Ordering::Relaxed);
    }
    let started = std::time::Instant::now();
    let o = push(second);
    assert_code(&o, 1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "gave up within the stated retry budget"
    );
    let e = stderr(&o);
    assert!(e.contains("InternalError") || e.contains("500"), "{e}");
    for u in &urls {
        assert!(e.contains(u.as_str()), "each destination named: {e}");
    }

    // The servers recover: the rerun stores it, and both archives restore from each.
    for p in &proxies {
        p.fail_next.store(0, Ordering::Relaxed);
    }
    let o = push(second);
    assert_code(&o, 0);
    for name in [NAME, second] {
        for u in &urls {
            let o = cmd(&sb)
                .args([
                    "restore",
                    u,
                    "--archive",
                    name,
                    "-o",
                    "back",
                    "--force",
                    "-i",
                ])
                .arg(&sb.key)
                .output()
                .unwrap();
            assert_code(&o, 0);
            assert_eq!(sha256_file(&sb.path("back")), sha256_file(&sb.path(name)));
        }
    }
}

#[test]
fn a_full_spool_disk_fails_the_push_cleanly_and_names_the_cache_dir() {
    let sb = Sandbox::new();
    let mnt = sb.path("smallcache");
    let _disk = SmallDisk::mount(mnt.clone());
    let src = sb.archive(NAME, 3 << 20, 1);
    let o = sb
        .cmd()
        .env("OFFSITE_CACHE_DIR", &mnt)
        .arg("push")
        .arg(&src)
        .args([
            "-r",
            &sb.recipient,
            "--to",
            &sb.url("a"),
            "--to",
            "memory://m",
        ])
        .output()
        .unwrap();
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(e.contains("No space left on device"), "{e}");
    assert!(
        e.contains("spool") && e.contains("OFFSITE_CACHE_DIR"),
        "says where and what to change: {e}"
    );
    assert!(
        visible_files(&sb.path("a")).is_empty(),
        "nothing at the destination: {:?}",
        visible_files(&sb.path("a"))
    );
    // The partial spool is gone, so the small disk is free again.
    let left: u64 = walk_sizes(&mnt);
    assert!(left < 64 << 10, "{left} bytes left in the cache");
    // With room again, the same push succeeds.
    let o = sb.push(&src, &["a"]);
    assert_code(&o, 0);
}

fn walk_sizes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk_sizes(&p)
                    } else {
                        p.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// An S3 server of the test's own, to be SIGKILLed mid-upload and started again on its data.
trait Server {
    /// Starts it (again, on the same port and data) and returns its endpoint.
    fn start(&mut self) -> String;
    /// SIGKILLs it and waits until it is gone.
    fn kill(&mut self);
}

/// s3s-fs on a port of its own over a folder.
struct S3sFs {
    port: u16,
    data: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl Server for S3sFs {
    fn start(&mut self) -> String {
        let bin = std::env::var("OFFSITE_TEST_S3S_BIN")
            .expect("OFFSITE_TEST_S3S_BIN from tests/emulators/start.sh");
        let mut child = std::process::Command::new(bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", S3S_ACCESS, "--secret-key", S3S_SECRET])
            .arg(&self.data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return format!("http://127.0.0.1:{}", self.port);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("s3s-fs did not start on {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

/// A SeaweedFS `weed server` of its own, by tests/emulators/seaweedfs.sh, which keeps its ports
/// in its folder so it comes back where it was.
struct Seaweed {
    dir: std::path::PathBuf,
    pid: Option<String>,
}

impl Server for Seaweed {
    fn start(&mut self) -> String {
        let script = std::env::var("OFFSITE_TEST_SEAWEEDFS_SCRIPT")
            .expect("OFFSITE_TEST_SEAWEEDFS_SCRIPT from tests/emulators/start.sh");
        let o = std::process::Command::new(script)
            .arg(&self.dir)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap();
        assert!(o.status.success(), "seaweedfs.sh failed");
        let out = String::from_utf8(o.stdout).unwrap();
        let (pid, port) = out.trim().split_once(' ').expect("PID PORT");
        self.pid = Some(pid.to_string());
        format!("http://127.0.0.1:{port}")
    }

    fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            let ok = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .unwrap();
            assert!(ok.success());
            let proc = std::path::Path::new("/proc").join(&pid);
            for _ in 0..200 {
                // Gone, or a zombie waiting for init to reap it: either way its ports are free.
                match std::fs::read_to_string(proc.join("stat")) {
                    Err(_) => return,
                    Ok(s)
                        if s.rsplit(')')
                            .next()
                            .is_some_and(|r| r.trim_start().starts_with('Z')) =>
                    {
                        return;
                    }
                    Ok(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
                }
            }
            panic!("seaweedfs {pid} did not die");
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server dies (SIGKILL) with a multipart upload half sent: that push fails as a network
/// failure and leaves no manifest; the server comes back on its data and the rerun completes the
/// archive, continuing the upload where the server can say which parts it holds.
async fn killed_mid_upload_and_restarted(sb: &Sandbox, server: &mut dyn Server, lists_parts: bool) {
    let endpoint = server.start();
    let name = bucket("restart");
    let store = {
        let url = format!("s3://{name}/app?region=us-east-1&endpoint={endpoint}");
        let cfg =
            offsite_s3::S3Config::from_location(&offsite_storage::Location::parse(&url).unwrap())
                .unwrap();
        let s =
            offsite_s3::S3Store::open_with_static_credentials(cfg, &url, S3S_ACCESS, S3S_SECRET)
                .await;
        s.create_bucket(false).await.expect("create bucket");
        s
    };
    let proxy = Proxy::start(&endpoint);
    proxy.throttle.store(8 << 20, Ordering::Relaxed);
    let url = format!(
        "s3://{name}/app?endpoint={}&part-size-mib=5",
        proxy.endpoint
    );
    // 7 parts of 5 MiB, a few in flight: killed past 22 MiB, the first ones are whole on the
    // server and the rest are not.
    let src = sb.archive(NAME, 32 << 20, 3);
    let child = sb
        .std_cmd()
        .envs(emulator_credentials())
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url, "--to", &sb.url("local")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while proxy.forwarded() < 22 << 20 {
        assert!(t0.elapsed().as_secs() < 60, "the upload did not progress");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.kill(); // the server dies, SIGKILL, mid-upload
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 3);

    // Back on the same data: the rerun finishes the archive.
    assert_eq!(server.start(), endpoint);
    assert!(store.head(&format!("{NAME}.manifest.json")).await.is_err());
    proxy.throttle.store(0, Ordering::Relaxed);
    let o = cmd(sb)
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url, "--to", &sb.url("local")])
        .output()
        .unwrap();
    assert_code(&o, 0);
    // "resumed the earlier upload: N of M parts were already on the server"
    let reused = stdout(&o)
        .split_once("resumed the earlier upload: ")
        .and_then(|(_, r)| r.split_once(' '))
        .map(|(n, _)| n.parse::<u32>().unwrap());
    assert_eq!(reused.unwrap_or(0) > 0, lists_parts, "{}", stdout(&o));
    let o = cmd(sb)
        .args(["verify", &url, "--deep", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = cmd(sb)
        .args(["restore", &url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));
}

#[tokio::test(flavor = "multi_thread")]
async fn s3s_fs_killed_mid_upload_and_restarted_is_resumed_on_the_rerun() {
    let sb = Sandbox::new();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let data = sb.path("s3s-data");
    std::fs::create_dir(&data).unwrap();
    let mut server = S3sFs {
        port,
        data,
        child: None,
    };
    killed_mid_upload_and_restarted(&sb, &mut server, true).await;
}

/// SeaweedFS 4.48 lists parts without their checksums, so the rerun sends the parts again
/// rather than trust bytes it cannot check (tests/integration/s3.rs pins that).
#[tokio::test(flavor = "multi_thread")]
async fn seaweedfs_killed_mid_upload_and_restarted_completes_on_the_rerun() {
    let sb = Sandbox::new();
    let mut server = Seaweed {
        dir: sb.path("seaweedfs"),
        pid: None,
    };
    killed_mid_upload_and_restarted(&sb, &mut server, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_azure_sas_that_expires_mid_push_fails_clearly_and_a_new_one_resumes() {
    let sb = Sandbox::new();
    let container = bucket("sas");
    let _az = crate::azure::store(&container, "app").await;
    let proxy = Proxy::start(
        emulator("OFFSITE_TEST_AZURITE").trim_end_matches(&format!("/{AZURITE_ACCOUNT}")),
    );
    let url = format!(
        "az://{AZURITE_ACCOUNT}/{container}/app?endpoint={}/{AZURITE_ACCOUNT}",
        proxy.endpoint
    );
    let sas_push = |sas: String| {
        let mut c = sb.cmd();
        c.env_remove("AZURE_STORAGE_CONNECTION_STRING")
            .env_remove("AZURE_STORAGE_KEY")
            .env("AZURE_STORAGE_SAS_TOKEN", sas);
        c
    };
    // A SAS that works: proven first, so that the failure below is the expiry and only that.
    let probe = sb.archive("probe-20261001_000000.tar", 1000, 1);
    let o = sas_push(crate::azure::account_sas(
        chrono::Utc::now() + chrono::Duration::hours(1),
    ))
    .arg("push")
    .arg(&probe)
    .args(["-r", &sb.recipient, "--to", &url])
    .output()
    .unwrap();
    assert_code(&o, 0);

    // The proxy throttles each connection, and the Azure adapter stages up to four blocks at
    // once: 24 MiB at 512 KiB/s per connection takes about twelve seconds; the SAS expires
    // after two or three (its expiry is whole seconds). At 4 MiB/s per connection the upload
    // could finish before the expiry on a fast machine.
    let src = sb.archive(NAME, 24 << 20, 4);
    proxy.throttle.store(512 << 10, Ordering::Relaxed);
    let o = sas_push(crate::azure::account_sas(
        chrono::Utc::now() + chrono::Duration::seconds(3),
    ))
    .arg("push")
    .arg(&src)
    .args(["-r", &sb.recipient, "--to", &url, "--to", &sb.url("local")])
    .output()
    .unwrap();
    assert_code(&o, 3);
    let e = stderr(&o);
    assert!(
        e.contains("authentication with") || e.contains("credentials were refused"),
        "the expiry is named as an auth failure: {e}"
    );
    assert!(e.contains("SAS"), "the SAS is named as the way in: {e}");
    let o = cmd(&sb).args(["--json", "ls", &url]).output().unwrap();
    let v = ls_lines(&o.stdout);
    assert!(
        !v["archives"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["archive"] == NAME && a["state"] == "complete"),
        "nothing that looks complete: {v}"
    );

    // A fresh SAS: the rerun continues from the staged blocks.
    proxy.throttle.store(0, Ordering::Relaxed);
    let o = sas_push(crate::azure::account_sas(
        chrono::Utc::now() + chrono::Duration::hours(1),
    ))
    .arg("push")
    .arg(&src)
    .args(["-r", &sb.recipient, "--to", &url, "--to", &sb.url("local")])
    .output()
    .unwrap();
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("parts were already on the server"),
        "{}",
        stdout(&o)
    );
    let o = cmd(&sb)
        .args(["restore", &url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));
}
