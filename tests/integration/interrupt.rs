//! Interrupted runs (issue 29): SIGINT and SIGTERM at random moments of push and restore stop
//! them cleanly (exit 130 / 143, nothing left where they wrote, a rerun completes); what
//! SIGKILL leaves (temporary files, restore partials, old spools) is shown and swept; a push
//! that fails keeps its spool and says so.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// A big enough archive that a debug build is still writing it when the signal comes.
const BIG: usize = 48 << 20;

#[derive(Clone, Copy, Debug)]
enum Sig {
    Int,
    Term,
}

impl Sig {
    fn name(self) -> &'static str {
        match self {
            Sig::Int => "INT",
            Sig::Term => "TERM",
        }
    }

    fn code(self) -> i32 {
        match self {
            Sig::Int => 130,
            Sig::Term => 143,
        }
    }

    fn of(round: usize) -> Sig {
        if round.is_multiple_of(2) {
            Sig::Int
        } else {
            Sig::Term
        }
    }
}

/// Sends `sig` to the child with the `kill` command (the workspace forbids `unsafe`).
fn send(child: &Child, sig: Sig) {
    let ok = Command::new("kill")
        .args(["-s", sig.name(), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -s {} failed", sig.name());
}

/// The hidden files in `dir` whose names start with `prefix`, recursively.
fn hidden_with(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push(p);
            }
        }
    }
    out
}

/// Waits (polling) until `ready` holds or the child has exited; true when `ready` held.
fn wait_for(child: &mut Child, ready: &dyn Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("neither ready nor exited after 120 s");
}

/// How a signalled run ended.
struct Ended {
    /// Whether the signal came while the run was still working (else it had finished).
    stopped: bool,
    out: std::process::Output,
}

/// Starts `cmd`, waits until `ready` holds (or for a random delay when `ready` is `None`),
/// waits a random 0-`jitter_ms` more, and sends `sig`.
fn signal_at(
    mut cmd: Command,
    sig: Sig,
    ready: Option<&dyn Fn() -> bool>,
    jitter_ms: u32,
) -> Ended {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut live = match ready {
        Some(ready) => wait_for(&mut child, ready),
        None => true,
    };
    std::thread::sleep(Duration::from_millis(u64::from(
        rand_u32() % (jitter_ms + 1),
    )));
    live &= child.try_wait().unwrap().is_none();
    if live {
        send(&child, sig);
    }
    let out = child.wait_with_output().unwrap();
    Ended { stopped: live, out }
}

/// Checks a signalled run: the exit status the signal asks for and the words that say what a
/// rerun does (or 0 when it finished before the signal).
#[track_caller]
fn check_stopped(e: &Ended, sig: Sig, what: &str) {
    let c = e.out.status.code();
    if c == Some(0) {
        return;
    }
    // A signal that comes before the program has started (exec, the runtime, the arguments:
    // under load that takes a while) ends it as it ends any process, before it has written a
    // byte or said a word; the callers still check that nothing was left behind.
    if e.out.status.signal() == Some(sig.code() - 128) && e.out.stderr.is_empty() {
        return;
    }
    assert_eq!(
        c,
        Some(sig.code()),
        "{what}: SIGTERM/SIGINT must exit {} (the signal came while it ran: {})\nstderr:\n{}",
        sig.code(),
        e.stopped,
        stderr(&e.out)
    );
    let err = stderr(&e.out);
    assert!(
        err.contains(&format!("stopped by SIG{}", sig.name())) && err.contains("again"),
        "{what}: says what was stopped and what a rerun does:\n{err}"
    );
}

fn push_cmd(sb: &Sandbox, mut c: Command, src: &Path, urls: &[String]) -> Command {
    c.arg("push").arg(src).args(["-r", &sb.recipient]);
    for u in urls {
        c.args(["--to", u]);
    }
    c
}

/// SIGINT and SIGTERM while a push writes to two file:// destinations (the first takes the
/// spool by hard link, the second is written through a temporary file): exit 130 / 143, no
/// `.offsite-tmp-*` at either, and a rerun stores the archive.
#[test]
fn push_to_file_stopped_by_a_signal_leaves_no_temporary_file_and_a_rerun_completes() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, BIG, 29);
    let (a, b) = (sb.path("a"), sb.path("b"));
    let urls = [sb.url("a"), sb.url("b")];
    let mut mid_write = 0;
    for round in 0..6 {
        let sig = Sig::of(round);
        let tmp_seen = || !hidden_with(&b, ".offsite-tmp-").is_empty();
        // Even rounds: once the second destination's temporary file exists; odd rounds: at a
        // random moment from the start.
        let ready: Option<&dyn Fn() -> bool> = (round.is_multiple_of(2)).then_some(&tmp_seen);
        let e = signal_at(
            push_cmd(&sb, sb.std_cmd(), &src, &urls),
            sig,
            ready,
            if round.is_multiple_of(2) { 150 } else { 3000 },
        );
        check_stopped(&e, sig, "push");
        if e.out.status.code() == Some(sig.code()) && round.is_multiple_of(2) {
            mid_write += 1;
        }
        for d in [&a, &b] {
            assert_eq!(
                hidden_with(d, ".offsite-tmp-"),
                Vec::<PathBuf>::new(),
                "round {round}: a temporary file was left at {}:\n{}",
                d.display(),
                stderr(&e.out)
            );
        }
        let o = push_cmd(&sb, sb.std_cmd(), &src, &urls).output().unwrap();
        assert_code(&o, 0);
        let o = sb
            .cmd()
            .args(["verify", "--deep", "-i"])
            .arg(&sb.key)
            .arg(&urls[1])
            .output()
            .unwrap();
        assert_code(&o, 0);
        for d in [&a, &b] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
    assert!(mid_write > 0, "no signal came while the copy was written");
}

/// SIGINT and SIGTERM at random moments of restores to a file and into a directory: exit 130
/// / 143, nothing at the target (no file, no hidden partial beside it), a rerun restores.
#[test]
fn restore_stopped_by_a_signal_leaves_nothing_where_o_pointed() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, BIG, 30);
    assert_code(&sb.push(&src, &["dest"]), 0);
    let want = sha256_file(&src);
    let mut mid_write = 0;
    for round in 0..8 {
        let sig = Sig::of(round);
        let into_dir = round % 4 >= 2;
        let outdir = sb.path(&format!("out{round}"));
        std::fs::create_dir_all(&outdir).unwrap();
        let (o_arg, target) = if into_dir {
            (outdir.clone(), outdir.join(NAME))
        } else {
            (
                outdir.join("restored.tar.gz"),
                outdir.join("restored.tar.gz"),
            )
        };
        let restore = || {
            let mut c = sb.std_cmd();
            c.args(["restore", "--archive", NAME, "-i"])
                .arg(&sb.key)
                .arg("-o")
                .arg(&o_arg)
                .arg(sb.url("dest"));
            c
        };
        let partial_seen = || !hidden_with(&outdir, ".").is_empty();
        let ready: Option<&dyn Fn() -> bool> = (round.is_multiple_of(2)).then_some(&partial_seen);
        let e = signal_at(
            restore(),
            sig,
            ready,
            if round.is_multiple_of(2) { 200 } else { 1500 },
        );
        check_stopped(&e, sig, "restore");
        if e.out.status.code() == Some(sig.code()) {
            mid_write += usize::from(round.is_multiple_of(2));
            assert!(
                !target.exists(),
                "round {round}: {} exists after the signal",
                target.display()
            );
            assert_eq!(
                hidden_with(&outdir, "."),
                Vec::<PathBuf>::new(),
                "round {round}: the partial file was left"
            );
        }
        if !target.exists() {
            assert_code(&restore().output().unwrap(), 0);
        }
        assert_eq!(sha256_file(&target), want);
    }
    assert!(mid_write > 0, "no signal came while the file was written");
}

/// The environment of the SeaweedFS emulator.
#[cfg(feature = "s3")]
fn seaweed_cmd(sb: &Sandbox) -> Command {
    let mut c = sb.std_cmd();
    c.env("AWS_ACCESS_KEY_ID", S3S_ACCESS)
        .env("AWS_SECRET_ACCESS_KEY", S3S_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL");
    c
}

/// Rounds of SIGINT / SIGTERM at random moments of a push to a cloud store (a fresh prefix
/// each round), each followed by a rerun that must complete and verify.
fn cloud_rounds(sb: &Sandbox, cmd: &dyn Fn() -> Command, url_of: &dyn Fn(usize) -> String) {
    let src = sb.archive(NAME, BIG, 31);
    let mut stopped = 0;
    for round in 0..6 {
        let url = url_of(round);
        let sig = Sig::of(round);
        let spool_seen = || !hidden_with(&sb.path("cache/spool"), "data.spool").is_empty();
        // From the moment the spool exists: soon after in half the rounds, anywhere in the
        // push (or after it) in the others.
        let e = signal_at(
            push_cmd(sb, cmd(), &src, std::slice::from_ref(&url)),
            sig,
            Some(&spool_seen),
            if round % 3 == 0 { 1500 } else { 150 },
        );
        check_stopped(&e, sig, "push");
        stopped += usize::from(e.out.status.code() == Some(sig.code()));
        let o = push_cmd(sb, cmd(), &src, std::slice::from_ref(&url))
            .output()
            .unwrap();
        assert_code(&o, 0);
        let o = cmd()
            .args(["verify", "--deep", "-i"])
            .arg(&sb.key)
            .arg(&url)
            .output()
            .unwrap();
        assert_code(&o, 0);
    }
    assert!(stopped > 0, "no signal came while the push ran");
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn push_to_seaweedfs_stopped_by_a_signal_exits_130_or_143_and_a_rerun_completes() {
    let sb = Sandbox::new();
    let name = bucket("sig");
    let _store = crate::s3::store("OFFSITE_TEST_SEAWEEDFS", &name, "app", false).await;
    tokio::task::spawn_blocking(move || {
        let url = |round: usize| {
            format!(
                "s3://{name}/app{round}?endpoint={}",
                emulator("OFFSITE_TEST_SEAWEEDFS")
            )
        };
        cloud_rounds(&sb, &|| seaweed_cmd(&sb), &url);
    })
    .await
    .unwrap();
}

#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread")]
async fn push_to_azurite_stopped_by_a_signal_exits_130_or_143_and_a_rerun_completes() {
    let sb = Sandbox::new();
    let container = bucket("sig");
    let _store = crate::azure::store(&container, "app").await;
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    tokio::task::spawn_blocking(move || {
        let url = |round: usize| {
            format!(
                "az://{}/{container}/app{round}",
                crate::azure::AZURITE_ACCOUNT
            )
        };
        let cmd = || {
            let mut c = sb.std_cmd();
            c.env(
                "AZURE_STORAGE_CONNECTION_STRING",
                crate::azure::connection_string(&endpoint),
            );
            c
        };
        cloud_rounds(&sb, &cmd, &url);
    })
    .await
    .unwrap();
}

/// Sets a file's (or directory's) modification time to `ago` ("2 days ago") with `touch -d`.
fn age(path: &Path, ago: &str) {
    let ok = Command::new("touch")
        .args(["-d", ago])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "touch -d {ago} {}", path.display());
}

/// A policy over one file:// destination `dest`, with `body` after it.
fn policy(sb: &Sandbox, body: &str) -> PathBuf {
    let p = sb.path("policy.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{}\"]\n[[destination]]\nname = \"disk\"\nurl = \"{}\"\n{body}",
            sb.recipient,
            sb.url("dest")
        ),
    )
    .unwrap();
    p
}

/// What SIGKILL leaves at a file:// destination: a temporary file. ls and status show one
/// older than a day for what it is (not a copy); the next push there removes it and leaves a
/// fresh one (a push running now may own it).
#[test]
fn stale_temporary_files_are_shown_by_ls_and_status_and_removed_by_the_next_push() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 10_000, 1);
    assert_code(&sb.push(&src, &["dest"]), 0);
    let old = sb.path("dest/.offsite-tmp-00000000000000aa-killed.tar.gz.age");
    let fresh = sb.path("dest/.offsite-tmp-00000000000000bb-running.tar.gz.age");
    std::fs::write(&old, vec![7u8; 4096]).unwrap();
    std::fs::write(&fresh, vec![7u8; 4096]).unwrap();
    age(&old, "2 days ago");

    let o = sb.cmd().arg("ls").arg(sb.url("dest")).output().unwrap();
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("temporary file .offsite-tmp-00000000000000aa-killed.tar.gz.age")
            && out.contains("not a copy"),
        "{out}"
    );
    assert!(
        !out.contains("running.tar.gz"),
        "a fresh one is no leftover:\n{out}"
    );
    let o = sb
        .cmd()
        .args(["ls", "--json"])
        .arg(sb.url("dest"))
        .output()
        .unwrap();
    let doc = ls_lines(&o.stdout);
    assert_eq!(doc["leftovers"][0]["kind"], "temporary", "{doc}");
    assert_eq!(doc["leftovers"][0]["size"], 4096, "{doc}");

    let p = policy(&sb, "");
    let o = policy_run(sb.cmd(), &["status"], &p);
    assert!(
        stdout(&o).contains("left behind at disk: temporary file .offsite-tmp-00000000000000aa"),
        "{}",
        stdout(&o)
    );

    let other = sb.archive("app-backup-20261127_020000.tar.gz", 10_000, 2);
    let o = sb.push(&other, &["dest"]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("removed at") && stdout(&o).contains("killed.tar.gz.age"),
        "{}",
        stdout(&o)
    );
    assert!(!old.exists(), "the day-old temporary file was not removed");
    assert!(fresh.exists(), "a fresh temporary file must be left alone");
    let o = sb.cmd().arg("ls").arg(sb.url("dest")).output().unwrap();
    assert!(!stdout(&o).contains("left behind"), "{}", stdout(&o));
}

/// prune removes day-old temporary files at its destinations and the spools of pushes not
/// run again for a week, and shows both on a dry run without touching them.
#[test]
fn prune_removes_old_temporary_files_and_week_old_spools_and_shows_them_in_dry_run() {
    let sb = Sandbox::new();
    let p = policy(&sb, "[retention]\nkeep-last = 5\n");
    let src = sb.archive(NAME, 10_000, 1);
    assert_code(
        &policy_run(sb.cmd(), &["push", src.to_str().unwrap()], &p),
        0,
    );
    let tmp = sb.path("dest/.offsite-tmp-00000000000000cc-killed.tar.gz.age");
    std::fs::write(&tmp, vec![1u8; 2048]).unwrap();
    age(&tmp, "2 days ago");
    let spool = sb.path("cache/spool/old-backup.tar.gz-0123456789ab");
    std::fs::create_dir_all(&spool).unwrap();
    for f in ["data.spool", "journal.json", "lock"] {
        std::fs::write(spool.join(f), b"x").unwrap();
        age(&spool.join(f), "8 days ago");
    }
    let recent = sb.path("cache/spool/new-backup.tar.gz-0123456789ab");
    std::fs::create_dir_all(&recent).unwrap();
    std::fs::write(recent.join("data.spool"), b"x").unwrap();
    age(&recent.join("data.spool"), "2 days ago");

    let o = policy_run(sb.cmd(), &["prune", "--dry-run"], &p);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("local spool old-backup.tar.gz-0123456789ab")
            && out.contains("1 local spool(s)"),
        "{out}"
    );
    assert!(out.contains("killed.tar.gz.age"), "{out}");
    assert!(!out.contains("new-backup"), "{out}");
    assert!(spool.exists() && tmp.exists(), "a dry run changes nothing");
    let o = policy_run(sb.cmd(), &["prune", "--dry-run", "--json"], &p);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        doc["spools"][0]["name"], "old-backup.tar.gz-0123456789ab",
        "{doc}"
    );

    let o = policy_run(sb.cmd(), &["prune"], &p);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(!spool.exists(), "the week-old spool is still there:\n{out}");
    assert!(
        !tmp.exists(),
        "the day-old temporary file is still there:\n{out}"
    );
    assert!(recent.exists(), "a spool used 2 days ago stays");
    assert!(
        out.contains("local spool") && out.contains("old-backup.tar.gz-0123456789ab"),
        "{out}"
    );
    // The archive itself is kept.
    assert!(sb.path(&format!("dest/{NAME}.age")).exists());
}

/// A restore finds the partial file a killed restore to the same target left, and removes it.
#[test]
fn restore_removes_the_partial_file_a_killed_restore_left() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100_000, 3);
    assert_code(&sb.push(&src, &["dest"]), 0);
    std::fs::create_dir_all(sb.path("out")).unwrap();
    let partial = sb.path("out/.restored.tar.gz.offsite-restore-deadbeef");
    std::fs::write(&partial, vec![0u8; 5000]).unwrap();
    let o = sb
        .cmd()
        .args(["restore", "--archive", NAME, "-i"])
        .arg(&sb.key)
        .arg("-o")
        .arg(sb.path("out/restored.tar.gz"))
        .arg(sb.url("dest"))
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(!partial.exists(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("removed") && stderr(&o).contains("offsite-restore-deadbeef"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        sha256_file(&sb.path("out/restored.tar.gz")),
        sha256_file(&src)
    );
}

/// A push whose destination fails keeps its spool and says where, how big, and that a rerun
/// resumes from it; the rerun does.
#[test]
fn a_failed_push_keeps_its_spool_and_says_a_rerun_resumes_from_it() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 3 << 20, 4);
    // A file where the second destination's directory should be: that copy fails.
    std::fs::write(sb.path("blocked"), b"not a directory").unwrap();
    let o = sb.push(&src, &["dest", "blocked/sub"]);
    assert_code(&o, 3);
    let err = stderr(&o);
    let spool = hidden_with(&sb.path("cache/spool"), "data.spool");
    assert_eq!(spool.len(), 1, "{err}");
    let size = std::fs::metadata(&spool[0]).unwrap().len();
    assert!(
        err.contains(&format!("the spool {}", spool[0].display()))
            && err.contains(&format!("{:.1} MiB", size as f64 / 1048576.0))
            && err.contains("running the same push again")
            && err.contains("resumes from it"),
        "{err}"
    );
    std::fs::remove_file(sb.path("blocked")).unwrap();
    let o = sb.push(&src, &["dest", "blocked/sub"]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("resumed from the spool of an earlier run"),
        "{}",
        stdout(&o)
    );
}
