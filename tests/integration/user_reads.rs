//! What a user reads (issue 30): times as archive names write them, one size format, a push
//! header with nothing missing, prune saying it keeps everything. The real binary, local disk.

use crate::common::*;

const NAME: &str = "app-backup-20261126_020000.tar.gz";

/// A policy of one local destination `a`, `tail` at the end (a `[retention]` table, say).
fn policy(sb: &Sandbox, tail: &str) -> std::path::PathBuf {
    let p = sb.path("policy.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"app\"\n\n[encryption]\nrecipients = [\"{}\"]\n\n\
             [[destination]]\nname = \"local\"\nurl = \"{}\"\n\n{tail}\n",
            sb.recipient,
            sb.url("a")
        ),
    )
    .unwrap();
    p
}

#[test]
fn at_takes_the_time_as_archive_names_write_it() {
    let sb = Sandbox::new();
    let url = sb.url("a");
    for (name, seed) in [
        ("app-20261204_020000.tar", 1),
        ("app-20261205_020000.tar", 2),
        ("app-20261206_020000.tar", 3),
    ] {
        assert_code(&sb.push(&sb.archive(name, 100, seed), &["a"]), 0);
    }
    for (at, want) in [
        ("20261205", "app-20261205_020000.tar"),
        ("20261205_020000", "app-20261205_020000.tar"),
        ("20261205_015959", "app-20261204_020000.tar"),
        ("20261205T0200", "app-20261205_020000.tar"),
    ] {
        let out = sb.path(&format!("out-{at}"));
        let o = sb
            .cmd()
            .args(["restore", &url, "--at", at, "-o"])
            .arg(&out)
            .arg("-i")
            .arg(&sb.key)
            .output()
            .unwrap();
        assert_code(&o, 0);
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(sb.path(want)).unwrap(),
            "--at {at}"
        );
    }
    // A malformed one is a usage error naming every form.
    let o = sb
        .cmd()
        .args(["restore", &url, "--at", "2026125", "-o", "x", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(stderr(&o).contains("YYYYMMDD[_HHMMSS]"), "{}", stderr(&o));
}

#[test]
fn push_header_never_shows_an_empty_size() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 1);
    // A destination under a regular file fails before a byte is read: the size is unknown.
    let blocked = format!("{}/sub", sb.url(NAME));
    for extra in [&[][..], &["--no-spool"][..]] {
        let o = sb
            .cmd()
            .arg("push")
            .arg(&src)
            .args(["-r", &sb.recipient, "--to", &blocked])
            .args(extra)
            .output()
            .unwrap();
        assert_code(&o, 1);
        let head = stdout(&o).lines().next().unwrap_or_default().to_string();
        assert_eq!(
            head,
            format!("{NAME} (created 2026-11-26T02:00:00Z, encrypted with age)"),
            "{extra:?}"
        );
    }
    let o = sb.push(&src, &["a"]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).starts_with(&format!(
            "{NAME} (1000 B, created 2026-11-26T02:00:00Z, encrypted with age)"
        )),
        "{}",
        stdout(&o)
    );
}

#[test]
fn restore_and_drill_write_sizes_as_push_does() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1_500_000, 2);
    let o = sb.push(&src, &["a"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("(1.4 MiB, created"), "{}", stdout(&o));
    let o = sb
        .cmd()
        .args(["restore", &sb.url("a"), "--latest", "-o", "out", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(stderr(&o).contains(": 1.4 MiB, SHA-256 "), "{}", stderr(&o));
    assert!(!stderr(&o).contains("bytes"), "{}", stderr(&o));
    let p = policy(&sb, "");
    let o = policy_run(sb.cmd(), &["drill", "-i", sb.key.to_str().unwrap()], &p);
    assert_code(&o, 0);
    assert!(
        stdout(&o)
            .contains("downloaded 1.4 MiB, SHA-256 matches; decrypted 1.4 MiB, SHA-256 matches"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains(" bytes"), "{}", stdout(&o));
}

#[test]
fn prune_without_retention_says_it_keeps_everything() {
    let sb = Sandbox::new();
    assert_code(&sb.push(&sb.archive(NAME, 100, 3), &["a"]), 0);
    let p = policy(&sb, "");
    for args in [&["prune", "--dry-run"][..], &["prune"][..]] {
        let o = policy_run(sb.cmd(), args, &p);
        assert_code(&o, 0);
        assert!(
            stdout(&o).contains(
                "no retention at any destination of policy \"app\": every archive is kept"
            ),
            "{args:?}: {}",
            stdout(&o)
        );
    }
    assert!(sb.path("a").join(format!("{NAME}.manifest.json")).exists());
    // With a retention, no such line.
    let p = policy(&sb, "[retention]\nkeep-last = 1\nmin-age = \"0h\"");
    let o = policy_run(sb.cmd(), &["prune", "--dry-run"], &p);
    assert_code(&o, 0);
    assert!(!stdout(&o).contains("no retention"), "{}", stdout(&o));
}

#[test]
fn recipient_errors_are_in_words_and_keygen_prints_a_files_recipient() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100, 4);
    for bad in [
        "ssh-ed25519",
        "ssh-ed25519 AAAAbad",
        "ssh-rsa AAAAB3NzaC1yc2E",
    ] {
        let o = sb
            .cmd()
            .arg("push")
            .arg(&src)
            .args(["-r", bad, "--to", &sb.url("a")])
            .output()
            .unwrap();
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains("not a whole SSH public key line"),
            "{bad}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("Invalid("), "{bad}: {}", stderr(&o));
    }
    // keygen -y -i FILE: the recipient of an existing identity, as age-keygen -y.
    let o = sb
        .cmd()
        .args(["keygen", "-y", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o), format!("{}\n", sb.recipient));
    let o = sb
        .cmd()
        .args(["--json", "keygen", "-y", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["recipients"][0], sb.recipient.as_str());
    // Nothing to read, or a key that is no identity: usage errors, the key never echoed.
    let o = sb.cmd().args(["keygen", "-y"]).output().unwrap();
    assert_code(&o, 2);
    std::fs::write(sb.path("pub.txt"), format!("{}\n", sb.recipient)).unwrap();
    let o = sb
        .cmd()
        .args(["keygen", "-y", "-i", "pub.txt"])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(stderr(&o).contains("not an age identity"), "{}", stderr(&o));
}

/// The mode of `path`'s permission bits.
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// One documented mode: every file a push or a replicate makes on a `file://` store, and the
/// restored plaintext (also over an existing 0644 file with --force), is 0600.
#[test]
fn stored_copies_and_restored_files_are_mode_0600() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 5000, 4);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_code(&sb.push(&src, &["a"]), 0);
    let o = sb
        .cmd()
        .args(["replicate", &sb.url("a"), &sb.url("b")])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let mut files = 0;
    for dir in ["a", "b"] {
        for e in std::fs::read_dir(sb.path(dir)).unwrap() {
            let p = e.unwrap().path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            files += 1;
        }
    }
    assert!(files >= 4, "data and manifest at both: {files}");
    let out = sb.path("out");
    std::fs::write(&out, b"old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    for force in [false, true] {
        let target = if force { "out" } else { "fresh" };
        let mut c = sb.cmd();
        c.args(["restore", &sb.url("a"), "--latest", "-o", target, "-i"])
            .arg(&sb.key);
        if force {
            c.arg("--force");
        }
        let o = c.output().unwrap();
        assert_code(&o, 0);
        assert_eq!(mode(&sb.path(target)), 0o600, "{target}");
        assert_eq!(
            std::fs::read(sb.path(target)).unwrap(),
            std::fs::read(&src).unwrap()
        );
    }
}

/// Retries without `-v`: one short line each on stderr, naming the location, the attempt and
/// why, on a real refused connection; `-q` leaves them out; `-vv` is offsite's own detail
/// (every log line from an offsite crate), never the SDK's.
#[test]
fn retries_are_one_short_line_each_and_sdk_logs_need_rust_log() {
    let sb = Sandbox::new();
    // A port nothing listens on: every connection is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("s3://bkt/app?endpoint=http://127.0.0.1:{port}&region=us-east-1");
    let run = |flags: &[&str]| {
        let o = sb
            .cmd()
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .args(flags)
            .args(["ls", &url])
            .output()
            .unwrap();
        assert_code(&o, 1);
        stderr(&o)
    };
    let e = run(&[]);
    let retries: Vec<&str> = e.lines().filter(|l| l.starts_with("retrying")).collect();
    assert_eq!(
        retries,
        (2..=6)
            .map(|n| format!("retrying s3://bkt/app ({n} of 6): connection refused"))
            .collect::<Vec<_>>(),
        "{e}"
    );
    assert!(!e.contains("WARN") && !e.contains("attempt="), "{e}");
    let last = e.lines().last().unwrap();
    assert!(last.starts_with("error: cannot list s3://bkt/app"), "{e}");

    let e = run(&["-q"]);
    assert!(!e.contains("retrying"), "{e}");
    assert!(e.starts_with("error: "), "{e}");

    let e = run(&["-vv"]);
    assert_eq!(
        e.lines().filter(|l| l.starts_with("retrying")).count(),
        5,
        "{e}"
    );
    let mut logged = 0;
    for l in e.lines() {
        let words: Vec<&str> = l.split_whitespace().collect();
        if words.len() > 2 && ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&words[1]) {
            logged += 1;
            assert!(words[2].starts_with("offsite"), "an SDK's line at -vv: {l}");
        }
    }
    assert!(
        logged >= 5,
        "offsite's own debug lines, one per retry at least: {e}"
    );
}

/// `ls --json` is JSON Lines as README says: an `archive` line each, a `summary` line last with
/// `exit`; a destination that cannot be listed is an `error` line (exit 1); a command that
/// stops before listing prints one `error` line with `exit`.
#[test]
fn ls_json_is_one_object_a_line_with_exit_in_every_form() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 3000, 5);
    assert_code(&sb.push(&src, &["a"]), 0);
    let url = sb.url("a");
    let o = sb.cmd().args(["--json", "ls", &url]).output().unwrap();
    assert_code(&o, 0);
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", stdout(&o));
    assert_eq!(lines[0]["type"], "archive");
    assert_eq!(lines[0]["url"], url.as_str());
    assert_eq!(lines[0]["archive"], NAME);
    assert_eq!(lines[0]["state"], "complete");
    assert_eq!(
        lines[1],
        serde_json::json!({"type": "summary", "locations": 1, "archives": 1, "errors": 0, "exit": 0})
    );

    // By policy, with a destination that cannot be listed (a file where a directory should be).
    std::fs::write(sb.path("notadir"), b"x").unwrap();
    let p = sb.path("two.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"app\"\n\n[encryption]\nrecipients = [\"{}\"]\n\n\
             [[destination]]\nname = \"local\"\nurl = \"{url}\"\n\n\
             [[destination]]\nname = \"broken\"\nurl = \"{}\"\n\n[placement]\ncopies = 1\n",
            sb.recipient,
            sb.url("notadir")
        ),
    )
    .unwrap();
    let o = policy_run(sb.cmd(), &["--json", "ls"], &p);
    assert_code(&o, 1);
    let v = ls_lines(&o.stdout);
    assert_eq!(v["archives"][0]["destination"], "local", "{v}");
    assert_eq!(v["errors"][0]["destination"], "broken", "{v}");
    assert!(
        v["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("notadir"),
        "{v}"
    );
    assert_eq!(
        v["end"],
        serde_json::json!({"type": "summary", "policy": "app", "locations": 2, "archives": 1, "errors": 1, "exit": 1})
    );

    // Stopped before listing: one error line, with the exit status, and the error on stderr.
    let o = sb
        .cmd()
        .args(["--json", "ls", &format!("{url}?bogus=1")])
        .output()
        .unwrap();
    assert_code(&o, 2);
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["exit"], 2);
    assert!(v["error"].as_str().unwrap().contains("bogus"), "{v}");
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
}
