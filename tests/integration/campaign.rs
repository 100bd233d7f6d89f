//! The crash campaign (issue 10): pushes to file://, S3 (s3s-fs and SeaweedFS), GCS and Azure
//! at once,
//! killed with SIGKILL at seeded random moments: 30 kills of pushes still running, over
//! several archives (at most six kills each, then a push that finishes and the next archive),
//! landing during encryption, upload and commit. After every kill each location holds only
//! complete copies and uploads that never committed, and every copy `ls` calls complete passes
//! `verify --deep`; then a rerun finishes, restore gives the bytes back from every location,
//! and no spool or journal is left.
//!
//! `OFFSITE_CAMPAIGN_SEED` replays a run; the seed is printed either way.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::azure::AZURITE_ACCOUNT;
use crate::common::*;

const KILLS: usize = 30;
/// Kills spent on one archive before the campaign lets a push of it finish and moves on to
/// the next archive (kills after the last commit of an archive do no work).
const KILLS_PER_ARCHIVE: usize = 6;
/// Several S3 parts and two GCS chunks, small enough for 30 runs.
const SIZE: usize = 9 << 20;

fn archive_name(i: usize) -> String {
    format!(
        "app-backup-202611{:02}_{:02}0000.tar.gz",
        1 + i / 24,
        i % 24
    )
}

struct Setup {
    sb: Sandbox,
    urls: Vec<String>,
    /// (location, archive) copies already proven by deep verify: proven once is enough, the
    /// kills after cannot touch a committed copy but only add others.
    proven: std::cell::RefCell<std::collections::HashSet<(String, String)>>,
}

impl Setup {
    fn cmd(&self) -> std::process::Command {
        let mut c = self.sb.std_cmd();
        c.envs(emulator_credentials()).env_remove("AWS_PROFILE");
        c
    }

    fn push(&self, name: &str) -> std::process::Command {
        let mut c = self.cmd();
        c.arg("push")
            .arg(self.sb.path(name))
            .args(["-r", &self.sb.recipient]);
        for u in &self.urls {
            c.args(["--to", u]);
        }
        c
    }

    fn output(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().unwrap()
    }

    /// After a kill: only complete copies and uncommitted uploads, and every complete copy
    /// passes deep verify. Returns how many locations hold `name` complete.
    fn check_after_kill(&self, name: &str, kill: usize) -> usize {
        let key = self.sb.key.display().to_string();
        let mut complete = 0;
        for url in &self.urls {
            let o = self.output(&["--json", "ls", url]);
            if code(&o) != 0 {
                // Nothing created yet at a local location that the push makes on first use.
                assert!(
                    url.starts_with("file://"),
                    "kill {kill}: ls {url}: {}",
                    stderr(&o)
                );
                continue;
            }
            let v = ls_lines(&o.stdout);
            let mut here = false;
            for a in v["archives"].as_array().unwrap() {
                let state = a["state"].as_str().unwrap();
                assert!(
                    state == "complete" || state == "incomplete",
                    "kill {kill}: {url} holds {} as {state}",
                    a["archive"]
                );
                here |= state == "complete" && a["archive"] == name;
            }
            complete += usize::from(here);
            let proven = (url.clone(), name.to_string());
            if here && self.proven.borrow_mut().insert(proven) {
                let o = self.output(&["verify", "--deep", url, "--archive", name, "-i", &key]);
                assert_eq!(
                    code(&o),
                    0,
                    "kill {kill}: a copy ls calls complete fails deep verify at {url}:\n{}{}",
                    stdout(&o),
                    stderr(&o)
                );
            }
        }
        complete
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_killed_at_random_moments_leave_only_complete_copies_or_none() {
    let seed = std::env::var("OFFSITE_CAMPAIGN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0ff5_17e5_eed0_0001u64);
    println!("crash campaign seed {seed} (OFFSITE_CAMPAIGN_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);

    let sb = Sandbox::new();
    let s3 = bucket("crash");
    let _s3 = crate::s3::store("OFFSITE_TEST_S3S", &s3, "app", false).await;
    let weed = bucket("crash");
    let _weed = crate::s3::store("OFFSITE_TEST_SEAWEEDFS", &weed, "app", false).await;
    let gcs = bucket("crash");
    let _gcs = crate::gcs::store(&gcs, "app").await;
    let container = bucket("crash");
    let _az = crate::azure::store(&container, "app").await;
    let urls = vec![
        sb.url("local"),
        format!("s3://{s3}/app?endpoint={}", emulator("OFFSITE_TEST_S3S")),
        format!(
            "s3://{weed}/app?endpoint={}",
            emulator("OFFSITE_TEST_SEAWEEDFS")
        ),
        format!("gs://{gcs}/app?endpoint={}", emulator("OFFSITE_TEST_GCS")),
        format!(
            "az://{AZURITE_ACCOUNT}/{container}/app?endpoint={}",
            emulator("OFFSITE_TEST_AZURITE")
        ),
    ];
    let setup = Setup {
        sb,
        urls,
        proven: Default::default(),
    };

    // How long one whole push takes here, so that kills spread over all of it.
    setup.sb.archive("probe-20261001_000000.tar", SIZE, 99);
    let start = Instant::now();
    let st = setup.push("probe-20261001_000000.tar").status().unwrap();
    assert!(st.success(), "the probe push");
    let whole = start.elapsed();
    println!("one push to the five stores takes {whole:?}");

    let key = setup.sb.key.display().to_string();
    // Kills before any copy of the archive was complete, and after one or more were.
    let (mut early, mut late) = (0, 0);
    let (mut kills, mut archive, mut on_this) = (0, 0, 0);
    let mut names = Vec::new();
    setup.sb.archive(&archive_name(0), SIZE, 100);
    names.push(archive_name(0));
    while kills < KILLS {
        let name = archive_name(archive);
        // Over three quarters of a first push: reruns resume and finish sooner, and a kill
        // after the last commit does no harm but proves nothing.
        let span = whole.as_millis() as u64 * 3 / 4;
        let delay = Duration::from_millis(rng.gen_range(0..span.max(1)));
        let mut child = setup
            .push(&name)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        on_this += 1;
        let held = setup.check_after_kill(&name, kills);
        println!(
            "kill {kills:2}: {name} after {delay:?}{}: complete at {held} of {}",
            if finished { " (it had finished)" } else { "" },
            setup.urls.len()
        );
        if !finished {
            kills += 1;
            if held == 0 {
                early += 1;
            } else {
                late += 1;
            }
        }
        if held == setup.urls.len() || on_this == KILLS_PER_ARCHIVE {
            // A rerun finishes what the kills left, and the next archive takes the kills.
            let o = setup.push(&name).output().unwrap();
            assert_code(&o, 0);
            archive += 1;
            on_this = 0;
            setup
                .sb
                .archive(&archive_name(archive), SIZE, 100 + archive as u64);
            names.push(archive_name(archive));
        }
    }
    assert!(
        early > 0 && late > 0,
        "kills landed both before and after commits ({early} early, {late} late)"
    );

    // Every archive: a rerun finishes (already stored everywhere, or stored now), and gives
    // the bytes back: each archive from one location in turn, the last from every location.
    for (i, name) in names.iter().enumerate() {
        let o = setup.push(name).output().unwrap();
        assert_code(&o, 0);
        let want = sha256_file(&setup.sb.path(name));
        let from: Vec<&String> = if i + 1 == names.len() {
            setup.urls.iter().collect()
        } else {
            vec![&setup.urls[i % setup.urls.len()]]
        };
        for url in from {
            let out = setup.sb.path("restored");
            let o = setup.output(&[
                "restore",
                url,
                "--archive",
                name,
                "-o",
                &out.display().to_string(),
                "--force",
                "-i",
                &key,
            ]);
            assert_code(&o, 0);
            assert_eq!(sha256_file(&out), want, "{name} from {url}");
        }
    }
    let left: Vec<_> = walk(&setup.sb.path("cache/spool"))
        .into_iter()
        .filter(|p| !p.ends_with("lock"))
        .collect();
    assert!(
        left.is_empty(),
        "no spool or journal after success: {left:?}"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
