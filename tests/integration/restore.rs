//! `offsite restore`: selection, fallback past bad copies, wrong keys, stdout.

use crate::common::*;

fn restore(sb: &Sandbox, urls: &[&str], select: &[&str], out: &str) -> std::process::Output {
    let mut c = sb.cmd();
    c.arg("restore");
    for u in urls {
        c.arg(sb.url(u));
    }
    c.args(select).args(["-o", out, "-i"]).arg(&sb.key);
    c.output().unwrap()
}

#[test]
fn restore_by_name_latest_and_at() {
    let sb = Sandbox::new();
    let older = sb.archive("app-backup-20261120_020000.tar.gz", 1000, 1);
    let newer = sb.archive("app-backup-20261125_020000.tar.gz", 2000, 2);
    assert_code(&sb.push(&older, &["a"]), 0);
    assert_code(&sb.push(&newer, &["a"]), 0);

    let o = restore(&sb, &["a"], &["--latest"], "latest.tgz");
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read(sb.path("latest.tgz")).unwrap(),
        std::fs::read(&newer).unwrap()
    );

    let o = restore(&sb, &["a"], &["--at", "2026-11-21T00:00"], "at.tgz");
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read(sb.path("at.tgz")).unwrap(),
        std::fs::read(&older).unwrap()
    );

    let o = restore(
        &sb,
        &["a"],
        &["--archive", "app-backup-20261120_020000.tar.gz"],
        "byname.tgz",
    );
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read(sb.path("byname.tgz")).unwrap(),
        std::fs::read(&older).unwrap()
    );

    // Never overwrites without --force.
    let o = restore(&sb, &["a"], &["--latest"], "latest.tgz");
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("already exists; restore never overwrites a file unless --force"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn at_earlier_than_every_archive_says_which_is_oldest() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    let o = restore(&sb, &["a"], &["--at", "2026-01-01"], "x");
    assert_code(&o, 2);
    assert_eq!(
        stderr(&o).trim(),
        format!("error: --at 2026-01-01T23:59:59Z is earlier than every archive; the oldest is {NAME} created 2026-11-26T02:00:00Z")
    );
    let o = restore(&sb, &["a"], &["--at", "last tuesday"], "x");
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("is not a time: write RFC 3339"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_flipped_byte_falls_back_to_the_next_copy() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 300_000, 1);
    assert_code(&sb.push(&src, &["a", "b"]), 0);
    let obj = sb.path("a").join(format!("{NAME}.age"));
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[200_000] ^= 0x01;
    std::fs::write(&obj, bytes).unwrap();

    let o = restore(&sb, &["a", "b"], &["--archive", NAME], "out.tgz");
    assert_code(&o, 0);
    assert!(stderr(&o).contains("warning: failed"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("flipped or missing bytes"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("after falling back past a bad copy"),
        "{}",
        stderr(&o)
    );
    assert_eq!(sha256_file(&sb.path("out.tgz")), sha256_file(&src));

    // With only the damaged copy: no healthy copy, and no partial file left behind.
    let o = restore(&sb, &["a"], &["--archive", NAME], "out2.tgz");
    assert_code(&o, 1);
    assert!(stderr(&o).contains("no healthy copy of"), "{}", stderr(&o));
    assert!(!sb.path("out2.tgz").exists());
    assert_eq!(
        visible_files(sb.dir.path())
            .iter()
            .filter(|n| n.contains("out2"))
            .count(),
        0
    );
    let hidden = std::fs::read_dir(sb.dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("offsite-restore")
        })
        .count();
    assert_eq!(hidden, 0, "temporary restore file removed");
}

#[test]
fn a_truncated_copy_is_caught_before_download() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 300_000, 1);
    assert_code(&sb.push(&src, &["a", "b"]), 0);
    let obj = sb.path("a").join(format!("{NAME}.age"));
    let bytes = std::fs::read(&obj).unwrap();
    std::fs::write(&obj, &bytes[..bytes.len() - 1000]).unwrap();
    let o = restore(&sb, &["a", "b"], &["--latest"], "out.tgz");
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("(truncated or replaced)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(sha256_file(&sb.path("out.tgz")), sha256_file(&src));
}

#[test]
fn the_wrong_identity_names_the_recipients() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    let other = sb.path("other.txt");
    assert_code(
        &sb.cmd()
            .arg("keygen")
            .arg("-o")
            .arg(&other)
            .output()
            .unwrap(),
        0,
    );
    let o = sb
        .cmd()
        .args(["restore", &sb.url("a"), "--latest", "-o", "x", "-i"])
        .arg(&other)
        .output()
        .unwrap();
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(e.contains("can decrypt"), "{e}");
    assert!(
        e.contains(&format!("it was encrypted for: {}", sb.recipient)),
        "{e}"
    );
    assert!(e.contains("the identity file holds: age1"), "{e}");
    assert!(!sb.path("x").exists());
}

#[test]
fn an_identity_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    std::fs::set_permissions(&sb.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Through the environment, as an unattended job would.
    let o = sb
        .cmd()
        .env("OFFSITE_IDENTITY_FILE", &sb.key)
        .args(["restore", &sb.url("a"), "--latest", "-o", "x"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("is readable by others (mode 0644); run: chmod 600"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn restore_without_identity_is_a_usage_error() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    let o = sb
        .cmd()
        .args(["restore", &sb.url("a"), "--latest", "-o", "x"])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("give --identity FILE or set OFFSITE_IDENTITY_FILE"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn restore_to_stdout_pipes_the_archive() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 700_000, 4);
    assert_code(&sb.push(&src, &["a"]), 0);
    let o = restore(&sb, &["a"], &["--latest"], "-");
    assert_code(&o, 0);
    assert_eq!(o.stdout, std::fs::read(&src).unwrap());
}

#[test]
fn a_copy_without_manifest_is_never_restored() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    std::fs::remove_file(sb.path("a").join(format!("{NAME}.manifest.json"))).unwrap();
    let o = restore(&sb, &["a"], &["--archive", NAME], "x");
    assert_code(&o, 1);
    assert!(stderr(&o).contains("incomplete"), "{}", stderr(&o));
    let o = sb.cmd().args(["ls", &sb.url("a")]).output().unwrap();
    assert!(stdout(&o).contains("incomplete"), "{}", stdout(&o));
}

#[test]
fn restore_to_stdout_falls_back_while_nothing_was_written() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100_000, 4);
    assert_code(&sb.push(&src, &["a", "b"]), 0);
    let obj = sb.path("a").join(format!("{NAME}.age"));
    let bytes = std::fs::read(&obj).unwrap();
    std::fs::write(&obj, &bytes[..bytes.len() - 10]).unwrap();
    let o = restore(&sb, &["a", "b"], &["--archive", NAME], "-");
    assert_code(&o, 0);
    assert_eq!(o.stdout, std::fs::read(&src).unwrap());
    assert!(
        stderr(&o).contains("truncated or replaced"),
        "{}",
        stderr(&o)
    );
}
