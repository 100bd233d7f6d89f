//! Two hosts, one name (issue 29): two pushes of different archives under the same name to the
//! same destination at the same moment, each with its own cache (two machines). Exactly one
//! stores its archive; the other exits 1 with "another push stored a different archive under
//! NAME at DEST"; neither exits 0 for bytes that are not there; what `ls` calls complete passes
//! `verify --deep` and restores the winner's bytes. Dozens of rounds with random delays on
//! every store here that honours create-only writes under concurrency: file://, SeaweedFS (for
//! single-request uploads), the GCS emulator and Azurite (tests/emulators/README.md has the
//! table).

use std::process::Stdio;
use std::time::Duration;

use rand::Rng;

use crate::common::*;

const ROUNDS: usize = 25;

/// One round: host A and host B push `a` and `b` (same name, different bytes) to `url` at
/// once, B after a random delay. Returns which one won, and whether they met in the commit.
fn round(
    sb: &Sandbox,
    cmd: &dyn Fn(&str) -> std::process::Command,
    url: &str,
    n: usize,
) -> (usize, bool) {
    let name = format!("app-backup-20261201_{:06}.tar.gz", n);
    let a = sb.path(&format!("a/{name}"));
    let b = sb.path(&format!("b/{name}"));
    for (p, seed) in [(&a, 2 * n as u64), (&b, 2 * n as u64 + 1)] {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            p,
            offsite_storage::conformance::pattern(20_000 + n * 97, seed),
        )
        .unwrap();
    }
    let delay = rand::thread_rng().gen_range(0..12);
    let spawn = |host: &str, file: &std::path::Path| {
        cmd(host)
            .arg("push")
            .arg(file)
            .args(["-r", &sb.recipient, "--to", url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn("host-a", &a);
    std::thread::sleep(Duration::from_millis(delay));
    let second = spawn("host-b", &b);
    let outs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    let codes: Vec<i32> = outs.iter().map(code).collect();
    let won: Vec<usize> = (0..2).filter(|i| codes[*i] == 0).collect();
    assert_eq!(
        won.len(),
        1,
        "round {n} (delay {delay} ms): exit codes {codes:?}\nA: {}\nB: {}",
        stderr(&outs[0]),
        stderr(&outs[1])
    );
    let (winner, loser) = (won[0], 1 - won[0]);
    assert_eq!(codes[loser], 1, "round {n}: {}", stderr(&outs[loser]));
    // Met during its own commit, or (when it started after the winner's commit) at its
    // survey, as any different archive already there.
    let said = format!("{}{}", stdout(&outs[loser]), stderr(&outs[loser]));
    let raced = said.contains(&format!(
        "another push stored a different archive under {name} at {url}"
    ));
    assert!(
        raced
            || said.contains(&format!(
                "a different archive named \"{name}\" is already stored here"
            )),
        "round {n}: {said}"
    );
    // What is there is the winner's, whole.
    let o = cmd("reader")
        .args(["verify", "--deep", url, "--archive", &name, "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "round {n}: {}{}", stdout(&o), stderr(&o));
    let back = sb.path("back");
    let _ = std::fs::remove_file(&back);
    let o = cmd("reader")
        .args(["restore", url, "--archive", &name, "-o"])
        .arg(&back)
        .arg("-i")
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "round {n}: {}", stderr(&o));
    let want = if winner == 0 { &a } else { &b };
    assert_eq!(sha256_file(&back), sha256_file(want), "round {n}");
    (winner, raced)
}

/// Runs the rounds; some must have met in the commit itself, or the race was never run.
fn race(sb: &Sandbox, cmd: &dyn Fn(&str) -> std::process::Command, url: &str) {
    let (mut wins, mut raced) = ([0usize; 2], 0);
    for n in 0..ROUNDS {
        let (w, r) = round(sb, cmd, url, n);
        wins[w] += 1;
        raced += usize::from(r);
    }
    println!(
        "race at {url}: host A won {} rounds, host B {}; {raced} of {ROUNDS} decided in the commit itself",
        wins[0], wins[1]
    );
    assert!(raced > 0, "no round overlapped: the race was never run");
}

/// The offsite command of one host: its own cache directory.
fn host(sb: &Sandbox, host: &str) -> std::process::Command {
    let mut c = sb.std_cmd();
    c.env("OFFSITE_CACHE_DIR", sb.path(&format!("cache-{host}")));
    c
}

#[test]
fn two_hosts_one_name_on_file_exactly_one_commits() {
    let sb = Sandbox::new();
    race(&sb, &|h| host(&sb, h), &sb.url("dest"));
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_one_name_on_seaweedfs_exactly_one_commits() {
    let sb = Sandbox::new();
    let name = bucket("race");
    let _store = crate::s3::store("OFFSITE_TEST_SEAWEEDFS", &name, "app", false).await;
    let url = format!(
        "s3://{name}/app?endpoint={}",
        emulator("OFFSITE_TEST_SEAWEEDFS")
    );
    tokio::task::spawn_blocking(move || {
        let cmd = |h: &str| {
            let mut c = host(&sb, h);
            c.env("AWS_ACCESS_KEY_ID", S3S_ACCESS)
                .env("AWS_SECRET_ACCESS_KEY", S3S_SECRET)
                .env("AWS_REGION", "us-east-1")
                .env_remove("AWS_PROFILE")
                .env_remove("AWS_ENDPOINT_URL");
            c
        };
        race(&sb, &cmd, &url)
    })
    .await
    .unwrap();
}

#[cfg(feature = "gcs")]
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_one_name_on_the_gcs_emulator_exactly_one_commits() {
    let sb = Sandbox::new();
    let name = bucket("race");
    let _store = crate::gcs::store(&name, "app").await;
    let url = format!("gs://{name}/app?endpoint={}", emulator("OFFSITE_TEST_GCS"));
    tokio::task::spawn_blocking(move || race(&sb, &|h| host(&sb, h), &url))
        .await
        .unwrap();
}

#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_one_name_on_azurite_exactly_one_commits() {
    let sb = Sandbox::new();
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let container = format!("race{}", rand_u32());
    let _store = crate::azure::store(&container, "app").await;
    let url = format!("az://{}/{container}/app", crate::azure::AZURITE_ACCOUNT);
    tokio::task::spawn_blocking(move || {
        let cmd = |h: &str| {
            let mut c = host(&sb, h);
            c.env(
                "AZURE_STORAGE_CONNECTION_STRING",
                crate::azure::connection_string(&endpoint),
            );
            c
        };
        race(&sb, &cmd, &url)
    })
    .await
    .unwrap();
}

/// Two `--overwrite` pushes of different archives over one that is there, at once, for
/// dozens of rounds on file:// (where an overwrite renames over the data unconditionally, and
/// only a read-back can tell): they never interleave into a mixed archive. Whatever `ls` calls
/// complete is whole and is the archive of a push that exited 0 (the later, when both did one
/// after the other).
#[test]
fn two_overwrites_at_once_never_leave_a_mixed_archive() {
    let sb = Sandbox::new();
    let url = sb.url("dest");
    let (mut committed, mut neither) = (0, 0);
    for n in 0..ROUNDS {
        let name = format!("app-backup-20261202_{:06}.tar.gz", n);
        let orig = sb.path(&format!("o/{name}"));
        std::fs::create_dir_all(orig.parent().unwrap()).unwrap();
        std::fs::write(
            &orig,
            offsite_storage::conformance::pattern(30_000, 1000 + n as u64),
        )
        .unwrap();
        assert_code(
            &host(&sb, "origin")
                .arg("push")
                .arg(&orig)
                .args(["-r", &sb.recipient, "--to", &url])
                .output()
                .unwrap(),
            0,
        );
        let files: Vec<std::path::PathBuf> = (0..2)
            .map(|h| {
                let p = sb.path(&format!("h{h}/{name}"));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                // The same size as each other: only the bytes tell them apart.
                std::fs::write(
                    &p,
                    offsite_storage::conformance::pattern(30_000, 2000 + 2 * n as u64 + h),
                )
                .unwrap();
                p
            })
            .collect();
        let kids: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(h, f)| {
                if h == 1 {
                    std::thread::sleep(Duration::from_millis(rand::thread_rng().gen_range(0..8)));
                }
                host(&sb, &format!("host-{h}"))
                    .arg("push")
                    .arg(f)
                    .args(["-r", &sb.recipient, "--to", &url, "--overwrite"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outs: Vec<_> = kids
            .into_iter()
            .map(|k| k.wait_with_output().unwrap())
            .collect();
        let won: Vec<usize> = (0..2).filter(|h| code(&outs[*h]) == 0).collect();
        let o = host(&sb, "reader")
            .args(["ls", "--json", &url])
            .output()
            .unwrap();
        let v = ls_lines(&o.stdout);
        let complete = v["archives"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["archive"] == name.as_str() && a["state"] == "complete");
        match (won.first(), complete) {
            (Some(_), true) => {
                committed += 1;
                let back = sb.path("back");
                let _ = std::fs::remove_file(&back);
                let o = host(&sb, "reader")
                    .args(["restore", &url, "--archive", &name, "-o"])
                    .arg(&back)
                    .arg("-i")
                    .arg(&sb.key)
                    .output()
                    .unwrap();
                assert_eq!(code(&o), 0, "round {n}: {}", stderr(&o));
                let got = sha256_file(&back);
                assert!(
                    won.iter().any(|w| sha256_file(&files[*w]) == got),
                    "round {n}: the archive there is none of the pushes that exited 0"
                );
            }
            // The other overwrite removed the committed one's manifest to replace it, then
            // failed: an overwrite that fails leaves nothing complete (README, push), never a
            // mixed archive.
            (Some(_), false) if won.len() == 1 => neither += 1,
            (Some(_), false) => {
                panic!("round {n}: both pushes exited 0 but nothing complete is there")
            }
            (None, true) => panic!("round {n}: neither push committed, yet {name} looks complete"),
            (None, false) => neither += 1,
        }
    }
    println!(
        "overwrites on file://: {committed} rounds committed one, {neither} committed neither"
    );
}
