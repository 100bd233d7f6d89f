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
