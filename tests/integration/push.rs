//! `offsite push`: placement, re-push rules, bad input, failures that leave nothing behind.

use std::io::Write;
use std::process::Stdio;

use crate::common::*;

#[test]
fn push_stores_object_and_manifest_at_every_destination() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 3_000_001, 1);
    let o = sb.push(&src, &["a", "b", "c"]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("3 of 3 destinations hold the archive."),
        "{}",
        stdout(&o)
    );
    for d in ["a", "b", "c"] {
        let dir = sb.path(d);
        assert_eq!(
            visible_files(&dir),
            [format!("{NAME}.age"), format!("{NAME}.manifest.json")]
        );
        let m = manifest(&dir, NAME);
        assert_eq!(m["plaintext"]["sha256"], sha256_file(&src));
        assert_eq!(m["plaintext"]["size"], 3_000_001);
        assert_eq!(
            m["stored"]["sha256"],
            sha256_file(&dir.join(format!("{NAME}.age")))
        );
        assert_eq!(m["created"], "2026-11-26T02:00:00Z");
        assert_eq!(m["created-from"], "name");
        assert_eq!(m["encryption"]["recipients"][0], sb.recipient.as_str());
        // No spool or temporary file is left behind, hidden or not.
        let all: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(all.len(), 2, "only the object and its manifest in {d}");
    }
    // Independent files (never hard links of one another), holding the same ciphertext:
    // one encryption, fanned out.
    use std::os::unix::fs::MetadataExt;
    let inode = |d: &str| {
        std::fs::metadata(sb.path(d).join(format!("{NAME}.age")))
            .unwrap()
            .ino()
    };
    assert!(inode("a") != inode("b") && inode("b") != inode("c") && inode("a") != inode("c"));
    assert_eq!(
        sha256_file(&sb.path("a").join(format!("{NAME}.age"))),
        sha256_file(&sb.path("c").join(format!("{NAME}.age")))
    );
    // The cache spool directory is cleaned up on success.
    assert!(visible_files(&sb.path("cache/spool")).is_empty());
}

#[test]
fn creation_time_falls_back_to_mtime() {
    let sb = Sandbox::new();
    let src = sb.archive("nightly.tar", 10, 1);
    let o = sb.push(&src, &["a"]);
    assert_code(&o, 0);
    assert_eq!(
        manifest(&sb.path("a"), "nightly.tar")["created-from"],
        "mtime"
    );
}

#[test]
fn prefix_adds_a_sub_directory() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100, 1);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args([
            "-r",
            &sb.recipient,
            "--to",
            &sb.url("a"),
            "--prefix",
            "app/db",
        ])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(sb.path("a/app/db").join(format!("{NAME}.age")).exists());
}

#[test]
fn repush_of_the_same_archive_is_already_stored_and_a_different_one_is_refused() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 5000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    let before = sha256_file(&sb.path("a").join(format!("{NAME}.age")));

    let o = sb.push(&src, &["a", "b"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("already stored"), "{}", stdout(&o));
    assert_eq!(
        sha256_file(&sb.path("a").join(format!("{NAME}.age"))),
        before,
        "not re-uploaded"
    );
    assert!(sb.path("b").join(format!("{NAME}.manifest.json")).exists());

    sb.archive(NAME, 5000, 2);
    let o = sb.push(&src, &["a"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("a different archive named"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));
    assert_eq!(
        sha256_file(&sb.path("a").join(format!("{NAME}.age"))),
        before,
        "untouched"
    );

    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &sb.url("a"), "--overwrite"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        manifest(&sb.path("a"), NAME)["plaintext"]["sha256"],
        sha256_file(&src)
    );
}

#[test]
fn push_refuses_without_recipients_unless_no_encrypt() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100, 1);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["--to", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("no recipients: push encrypts by default"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("--no-encrypt"), "{}", stderr(&o));
    assert!(!sb.path("a").exists());

    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["--to", &sb.url("a"), "--no-encrypt"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read(sb.path("a").join(NAME)).unwrap(),
        std::fs::read(&src).unwrap()
    );
    let m = manifest(&sb.path("a"), NAME);
    assert!(m["encryption"].is_null());
    assert_eq!(m["stored"]["sha256"], m["plaintext"]["sha256"]);
}

#[test]
fn bad_recipients_are_named() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100, 1);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["--to", &sb.url("a"), "-r", "age1bogus"])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("--recipient: \"age1bogus\" is not an age recipient"),
        "{}",
        stderr(&o)
    );
    let secret = std::fs::read_to_string(&sb.key).unwrap();
    let secret_line = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["--to", &sb.url("a"), "-r", secret_line])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("this is a secret key"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains(&secret_line[15..]),
        "the secret must not be echoed"
    );
}

#[test]
fn missing_source_and_directory_source_are_usage_errors() {
    let sb = Sandbox::new();
    let o = sb
        .cmd()
        .args([
            "push",
            "nope.tar.gz",
            "-r",
            &sb.recipient,
            "--to",
            &sb.url("a"),
        ])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert_eq!(
        stderr(&o).trim(),
        "error: cannot read the source nope.tar.gz: it does not exist; check the path the backup job wrote"
    );
    std::fs::create_dir(sb.path("d")).unwrap();
    let o = sb
        .cmd()
        .args(["push", "d", "-r", &sb.recipient, "--to", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("is a directory; offsite pushes archive files"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_destination_urls_are_usage_errors() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100, 1);
    for (url, want) in [
        ("backups", "use an absolute path"),
        ("file:relative", "use an absolute path"),
        ("ftp://host/x", "unknown scheme \"ftp\""),
        ("s3://UPPER/x", "not a valid bucket name"),
    ] {
        let o = sb.push_via(sb.cmd(), &src, url);
        assert_code(&o, 2);
        let e = stderr(&o);
        assert!(e.contains(want), "{url}: {e}");
        // Plain words, not the error type's jargon, and the URL named once.
        assert!(
            !e.contains("open failed") && !e.contains("invalid-config"),
            "{e}"
        );
        assert_eq!(e.matches(&format!("{url:?}")).count(), 1, "{e}");
    }
}

#[test]
fn an_unwritable_destination_fails_alone_and_leaves_nothing() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 200_000, 1);
    // A path below a regular file cannot be created, even by root.
    std::fs::write(sb.path("blocker"), b"x").unwrap();
    let o = sb.push(&src, &["blocker/sub", "good"]);
    assert_code(&o, 3);
    assert!(
        stdout(&o).contains("1 of 2 destinations hold the archive."),
        "{}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("blocker/sub"), "{}", stderr(&o));
    assert!(
        stderr(&o).to_lowercase().contains("not a directory"),
        "{}",
        stderr(&o)
    );
    assert!(sb
        .path("good")
        .join(format!("{NAME}.manifest.json"))
        .exists());

    let o = sb.push(&src, &["blocker/sub"]);
    assert_code(&o, 1);
}

#[test]
fn a_full_disk_fails_the_push_and_leaves_no_object_that_looks_complete() {
    let sb = Sandbox::new();
    let mnt = sb.path("small");
    let _disk = SmallDisk::mount(mnt.clone());
    let src = sb.archive(NAME, 3 << 20, 1);
    let o = sb.push(&src, &["small", "good"]);
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
    assert!(
        visible_files(&mnt).is_empty(),
        "nothing visible on the full disk: {:?}",
        visible_files(&mnt)
    );
    assert_eq!(
        std::fs::read_dir(&mnt).unwrap().count(),
        0,
        "no temporary files left either"
    );
    assert!(sb
        .path("good")
        .join(format!("{NAME}.manifest.json"))
        .exists());

    // The only destination full: stored nowhere, and the spool is gone.
    let o = sb.push(&src, &["small"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(&mnt).unwrap().count(), 0);
}

#[test]
fn stdin_push_needs_a_name_and_then_works() {
    let sb = Sandbox::new();
    let o = sb
        .cmd()
        .args(["push", "-", "-r", &sb.recipient, "--to", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(stderr(&o).contains("needs --name NAME"), "{}", stderr(&o));

    let data = offsite_storage::conformance::pattern(2_500_000, 7);
    let mut child = sb
        .std_cmd()
        .args([
            "push",
            "-",
            "--name",
            "db-2026-11-26T03:00:00Z.sql",
            "-r",
            &sb.recipient,
            "--to",
            &sb.url("a"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0);
    let m = manifest(&sb.path("a"), "db-2026-11-26T03:00:00Z.sql");
    assert_eq!(m["plaintext"]["size"], 2_500_000);
    assert_eq!(m["created"], "2026-11-26T03:00:00Z");
}

#[test]
fn a_killed_push_leaves_nothing_that_looks_complete_and_a_rerun_completes() {
    let sb = Sandbox::new();
    let (mut child, stdin) = push_from_stdin_in_progress(&sb, 4 << 20);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(stdin);
    assert!(
        visible_files(&sb.path("a")).is_empty(),
        "{:?}",
        visible_files(&sb.path("a"))
    );
    let o = sb.cmd().args(["ls", &sb.url("a")]).output().unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).contains("no archives"), "{}", stdout(&o));

    let src = sb.archive(NAME, 4 << 20, 3);
    assert_code(&sb.push(&src, &["a"]), 0);
    assert_eq!(visible_files(&sb.path("a")).len(), 2);
    let all = std::fs::read_dir(sb.path("a")).unwrap().count();
    assert_eq!(all, 2, "the dead run's spool was cleaned up");
}

#[test]
fn a_failed_destination_is_resumed_from_the_spool_without_re_encrypting() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1_000_000, 1);
    std::fs::write(sb.path("late"), b"not yet a directory").unwrap();
    let o = sb.push(&src, &["a", "late"]);
    assert_code(&o, 3);
    let first = sha256_file(&sb.path("a").join(format!("{NAME}.age")));
    // The spool kept for the rerun is private, folders included.
    use std::os::unix::fs::PermissionsExt;
    let spool = sb.path("cache/spool");
    let mut dirs = vec![spool.clone()];
    dirs.extend(
        std::fs::read_dir(&spool)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir()),
    );
    assert!(dirs.len() > 1, "a work directory is kept: {dirs:?}");
    for d in dirs {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }

    std::fs::remove_file(sb.path("late")).unwrap();
    let o = sb.push(&src, &["a", "late"]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("resumed from the spool of an earlier run"),
        "{}",
        stdout(&o)
    );
    // The same ciphertext: it was sent again, not encrypted again.
    assert_eq!(
        sha256_file(&sb.path("late").join(format!("{NAME}.age"))),
        first
    );
    assert!(
        visible_files(&sb.path("cache/spool")).is_empty(),
        "journal removed after success"
    );
}

#[test]
fn json_report_carries_each_destination() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100, 1);
    let o = sb
        .cmd()
        .arg("--json")
        .arg("push")
        .arg(&src)
        .args([
            "-r",
            &sb.recipient,
            "--to",
            &sb.url("a"),
            "--to",
            "memory://t",
        ])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit"], 0);
    assert_eq!(v["destinations"][0]["status"], "stored");
    assert_eq!(v["destinations"][1]["url"], "memory://t");
    assert_eq!(v["plaintext"]["size"], 100);
}

#[test]
fn help_man_and_completions_come_from_one_definition() {
    let sb = Sandbox::new();
    let o = sb.cmd().arg("--help").output().unwrap();
    assert_code(&o, 0);
    for cmd in [
        "push",
        "ls",
        "verify",
        "restore",
        "create",
        "keygen",
        "completions",
        "man",
    ] {
        assert!(stdout(&o).contains(cmd), "help lists {cmd}");
    }
    let o = sb.cmd().args(["completions", "bash"]).output().unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).contains("--recipients-file"));
    let o = sb.cmd().arg("man").output().unwrap();
    assert_code(&o, 0);
    let man = stdout(&o);
    assert!(man.contains(".TH offsite 1"), "a roff man page: {man}");
    assert!(man.contains(".SH NAME"), "{man}");
    // The same definition: every subcommand is in the man page too.
    for cmd in ["push", "ls", "verify", "restore", "create", "keygen"] {
        assert!(
            man.contains(&format!("offsite\\-{cmd}(1)")),
            "{cmd} in {man}"
        );
    }
    assert!(
        man.contains("Create the directory, bucket or container"),
        "{man}"
    );
}

#[test]
fn create_makes_a_local_location_once_and_refuses_what_it_cannot_hold() {
    let sb = Sandbox::new();
    let url = sb.url("new/dir");
    let o = sb.cmd().args(["create", &url]).output().unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with("created file://"), "{}", stdout(&o));
    assert!(sb.path("new/dir").is_dir());
    let o = sb.cmd().args(["--json", "create", &url]).output().unwrap();
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["created"], false);
    let o = sb
        .cmd()
        .args(["create", "--object-lock", &sb.url("locked")])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("cannot keep versions or hold locks"),
        "{}",
        stderr(&o)
    );
    assert!(!sb.path("locked").exists(), "nothing made when refused");
}

#[test]
fn keygen_never_overwrites_a_key() {
    let sb = Sandbox::new();
    let o = sb
        .cmd()
        .arg("keygen")
        .arg("-o")
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("already exists; offsite never overwrites a key file"),
        "{}",
        stderr(&o)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sb.key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_second_push_of_the_same_archive_waits_for_nobody_and_says_why() {
    let sb = Sandbox::new();
    let (mut first, stdin) = push_from_stdin_in_progress(&sb, 1 << 20);
    let src = sb.archive(NAME, 1000, 1);
    let o = sb.push(&src, &["a"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("another push of \"app-backup-20261126_020000.tar.gz\" to these destinations is running"), "{}", stderr(&o));
    drop(stdin);
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn a_manifest_whose_data_is_gone_is_repaired_not_reported_as_stored() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 50_000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    std::fs::remove_file(sb.path("a").join(format!("{NAME}.age"))).unwrap();
    let o = sb.push(&src, &["a"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("  stored "), "{}", stdout(&o));
    let o = sb.cmd().args(["verify", &sb.url("a")]).output().unwrap();
    assert_code(&o, 0);

    // The data of a *different* archive of that name is gone: its manifest is not replaced.
    std::fs::remove_file(sb.path("a").join(format!("{NAME}.age"))).unwrap();
    sb.archive(NAME, 50_000, 2);
    let o = sb.push(&src, &["a"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("a different archive named") && stderr(&o).contains("data object gone"),
        "{}",
        stderr(&o)
    );
    assert!(
        !sb.path("a").join(format!("{NAME}.age")).exists(),
        "nothing was sent: the plan refused before a byte moved"
    );
}

#[test]
fn the_same_archive_for_other_recipients_is_not_reported_as_stored() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    let other = sb.path("other.txt");
    let o = sb
        .cmd()
        .arg("keygen")
        .arg("-o")
        .arg(&other)
        .output()
        .unwrap();
    let r2 = stdout(&o).trim().to_string();
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &r2, "--to", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("already stored here, but encrypted for"),
        "{}",
        stderr(&o)
    );
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &r2, "--to", &sb.url("a"), "--overwrite"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        manifest(&sb.path("a"), NAME)["encryption"]["recipients"][0],
        r2.as_str()
    );
}

#[test]
fn unencrypted_names_ending_in_age_are_refused() {
    let sb = Sandbox::new();
    let src = sb.archive("db.sql.age", 10, 1);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["--no-encrypt", "--to", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("so the two can never share an object"),
        "{}",
        stderr(&o)
    );
}

/// A push of NAME to `a` from stdin, `len` bytes in and waiting for more (the stdin handle
/// keeps it waiting until dropped).
fn push_from_stdin_in_progress(
    sb: &Sandbox,
    len: usize,
) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = sb
        .std_cmd()
        .args([
            "push",
            "-",
            "--name",
            NAME,
            "-r",
            &sb.recipient,
            "--to",
            &sb.url("a"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&offsite_storage::conformance::pattern(len, 3))
        .unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    (child, stdin)
}

#[test]
fn a_different_archive_at_one_destination_stops_the_push_at_all_of_them() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 5000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    let before = sha256_file(&sb.path("a").join(format!("{NAME}.age")));

    // Another archive under the same name: refused at `a`, and not sent to `b` either, so
    // that one name never means two archives.
    sb.archive(NAME, 6000, 2);
    let o = sb.push(&src, &["b", "a"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("a different archive named"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains(&format!("is stored at {}", sb.url("a"))),
        "{}",
        stderr(&o)
    );
    assert!(
        visible_files(&sb.path("b")).is_empty(),
        "{:?}",
        visible_files(&sb.path("b"))
    );
    assert_eq!(
        sha256_file(&sb.path("a").join(format!("{NAME}.age"))),
        before
    );

    // The same from standard input: spooled first, decided, nothing sent.
    let mut child = sb
        .std_cmd()
        .args(["push", "-", "--name", NAME, "-r", &sb.recipient])
        .args(["--to", &sb.url("b"), "--to", &sb.url("a")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&src).unwrap())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 1);
    assert!(visible_files(&sb.path("b")).is_empty());
    assert!(
        !sb.path("cache").join("spool").exists()
            || std::fs::read_dir(sb.path("cache").join("spool"))
                .unwrap()
                .next()
                .is_none(),
        "no spool is left behind when nothing was to be sent"
    );

    // With --overwrite both get the new archive.
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args([
            "-r",
            &sb.recipient,
            "--to",
            &sb.url("b"),
            "--to",
            &sb.url("a"),
        ])
        .arg("--overwrite")
        .output()
        .unwrap();
    assert_code(&o, 0);
    for d in ["a", "b"] {
        assert_eq!(
            manifest(&sb.path(d), NAME)["plaintext"]["sha256"],
            sha256_file(&src)
        );
    }
}

#[test]
fn placement_options_a_local_directory_cannot_honour_are_refused_before_any_byte() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 5000, 1);
    for q in [
        "storage-class=GLACIER",
        "lock=compliance&lock-days=7",
        "legal-hold=true",
    ] {
        let url = format!("{}?{q}", sb.url("a"));
        let o = sb.push_via(sb.cmd(), &src, &url);
        assert_code(&o, 2);
        assert!(stderr(&o).contains("remove"), "{q}: {}", stderr(&o));
        assert!(
            !sb.path("a").exists() || visible_files(&sb.path("a")).is_empty(),
            "{q}"
        );
    }
}

#[test]
fn json_of_a_push_with_nothing_to_send_reports_the_stored_digest() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 5000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &sb.url("a"), "--json"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let stored = sha256_file(&sb.path("a").join(format!("{NAME}.age")));
    assert_eq!(v["stored"]["sha256"], stored, "{v}");
    assert_eq!(v["plaintext"]["sha256"], sha256_file(&src), "{v}");
    assert_eq!(v["destinations"][0]["status"], "already-stored");
    assert_eq!(v["destinations"][0]["stored"]["sha256"], stored);
}

#[test]
fn a_resumed_stdin_push_keeps_the_creation_time_of_its_first_run() {
    let sb = Sandbox::new();
    let data = offsite_storage::conformance::pattern(300_000, 5);
    let name = "nightly.sql";
    std::fs::write(sb.path("late"), b"not yet a directory").unwrap();
    let push = |expect: i32| {
        let mut child = sb
            .std_cmd()
            .args(["push", "-", "--name", name, "-r", &sb.recipient])
            .args(["--to", &sb.url("a"), "--to", &sb.url("late")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&data).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_code(&o, expect);
    };
    push(3);
    // No time in the name: the first run's push time is the archive's creation time.
    let first = manifest(&sb.path("a"), name)["created"].clone();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::remove_file(sb.path("late")).unwrap();
    push(0);
    assert_eq!(manifest(&sb.path("late"), name)["created"], first);
}

/// `push - --no-spool` with `-r` to the given destinations, fed `data` on stdin.
fn push_unspooled(
    sb: &Sandbox,
    data: &[u8],
    dests: &[&str],
    extra: &[&str],
) -> std::process::Output {
    let mut c = sb.cmd();
    c.args([
        "push",
        "-",
        "--no-spool",
        "--name",
        NAME,
        "-r",
        &sb.recipient,
    ]);
    c.args(extra);
    for d in dests {
        c.args(["--to", &sb.url(d)]);
    }
    c.write_stdin(data.to_vec()).output().unwrap()
}

#[test]
fn no_spool_streams_stdin_to_every_destination_and_says_it_cannot_resume() {
    let sb = Sandbox::new();
    let data = offsite_storage::conformance::pattern(3_000_000, 9);
    let o = push_unspooled(&sb, &data, &["a", "b"], &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("not resumable"), "{}", stdout(&o));
    assert!(
        visible_files(&sb.path("cache/spool")).is_empty(),
        "no spool or journal was written"
    );
    for d in ["a", "b"] {
        let m = manifest(&sb.path(d), NAME);
        assert_eq!(m["plaintext"]["size"], 3_000_000);
        let stored = sb.path(d).join(format!("{NAME}.age"));
        assert_eq!(m["stored"]["sha256"], sha256_file(&stored));
        let out = sb.path(&format!("restored-{d}"));
        let o = sb
            .cmd()
            .args(["restore", &sb.url(d), "--latest", "-o"])
            .arg(&out)
            .arg("-i")
            .arg(&sb.key)
            .output()
            .unwrap();
        assert_code(&o, 0);
        assert_eq!(std::fs::read(&out).unwrap(), data.to_vec());
    }
    // Once stored, the same name is refused before a byte is read: the stream cannot be
    // compared first.
    let o = push_unspooled(&sb, b"other bytes", &["a"], &[]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("--no-spool cannot tell"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        manifest(&sb.path("a"), NAME)["plaintext"]["size"],
        3_000_000
    );
    let o = push_unspooled(&sb, b"other bytes", &["a"], &["--overwrite"]);
    assert_code(&o, 0);
    assert_eq!(manifest(&sb.path("a"), NAME)["plaintext"]["size"], 11);
}

#[test]
fn no_spool_keeps_going_when_one_destination_fails() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("late"), b"not a directory").unwrap();
    let data = offsite_storage::conformance::pattern(2_500_000, 10);
    let o = push_unspooled(&sb, &data, &["a", "late"], &[]);
    assert_code(&o, 3);
    assert_eq!(
        manifest(&sb.path("a"), NAME)["plaintext"]["size"],
        2_500_000
    );
    assert!(stderr(&o).contains("late"), "{}", stderr(&o));
}

#[test]
fn credentials_in_a_url_or_a_secret_key_as_recipient_are_refused_without_echo() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100, 1);
    for (to, recipient) in [
        (
            "s3://AKIAEXAMPLE:wJalrSECRETkey@bucket/app",
            sb.recipient.clone(),
        ),
        (
            "s3://bucket/app?endpoint=http://user:passSECRET@127.0.0.1:9",
            sb.recipient.clone(),
        ),
        (&*sb.url("a"), "age-secret-key-1qqqqsecretqqqq".to_string()),
    ] {
        let o = sb
            .cmd()
            .args(["--json", "push"])
            .arg(&src)
            .args(["-r", &recipient, "--to", to])
            .output()
            .unwrap();
        assert_code(&o, 2);
        let all = format!("{}{}", stdout(&o), stderr(&o)).to_lowercase();
        assert!(
            !all.contains("wjalrsecretkey") && !all.contains("passsecret"),
            "{all}"
        );
        assert!(!all.contains("qqqqsecretqqqq"), "{all}");
    }
    assert!(!sb.path("a").exists(), "nothing was written");
}

#[test]
fn no_spool_reads_nothing_when_no_destination_can_take_the_stream() {
    let sb = Sandbox::new();
    std::fs::write(sb.path("late"), b"not a directory").unwrap();
    let mut c = sb.cmd();
    c.args([
        "--json",
        "push",
        "-",
        "--no-spool",
        "--name",
        NAME,
        "-r",
        &sb.recipient,
    ]);
    c.args(["--to", &sb.url("late")]);
    let o = c.write_stdin(vec![7u8; 100_000]).output().unwrap();
    assert_code(&o, 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["destinations"][0]["status"], "failed", "{v}");
    assert!(v["plaintext"].is_null(), "the stream was not read: {v}");
}
