//! What a new user meets first: the README's commands tried with the mistakes people make
//! (issue 10, "What a new user hit"). Each test runs the real binary on the local disk.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::common::*;

const NAME: &str = "app-backup-20261126_020000.tar.gz";

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn keygen_creates_the_missing_folders_private() {
    let sb = Sandbox::new();
    let key = sb.path("home/.config/offsite/key.txt");
    let o = sb.cmd().arg("keygen").arg("-o").arg(&key).output().unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with("age1"), "{}", stdout(&o));
    assert_eq!(mode(&key), 0o600);
    for dir in ["home", "home/.config", "home/.config/offsite"] {
        assert_eq!(mode(&sb.path(dir)), 0o700, "{dir}");
    }
}

/// Runs `offsite ARGS` with its standard output a pipe whose reader is already gone.
fn with_closed_stdout(sb: &Sandbox, args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = sb
        .std_cmd()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap(), err)
}

#[test]
fn a_closed_pipe_ends_the_program_quietly() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    let url = sb.url("a");
    for args in [
        vec!["ls", url.as_str()],
        vec!["--json", "ls", url.as_str()],
        vec!["verify", url.as_str()],
        vec!["man"],
        vec!["completions", "bash"],
    ] {
        let (status, err) = with_closed_stdout(&sb, &args);
        assert_eq!(status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?} said: {err}");
    }
}

#[test]
fn there_is_a_man_page_for_every_page_the_main_page_names() {
    let sb = Sandbox::new();
    let o = sb.cmd().arg("man").output().unwrap();
    assert_code(&o, 0);
    let main = stdout(&o);
    let dir = sb.path("man1");
    let o = sb.cmd().args(["man", "--dir"]).arg(&dir).output().unwrap();
    assert_code(&o, 0);
    let mut named = 0;
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
        if main.contains(&format!("offsite\\-{cmd}(1)")) {
            named += 1;
        }
        let page = std::fs::read_to_string(dir.join(format!("offsite-{cmd}.1")))
            .unwrap_or_else(|e| panic!("offsite-{cmd}.1: {e}"));
        assert!(page.contains(&format!(".TH offsite-{cmd} 1")), "{page}");
        // `offsite man CMD` prints the same page.
        let o = sb.cmd().args(["man", cmd]).output().unwrap();
        assert_code(&o, 0);
        assert_eq!(stdout(&o), page, "{cmd}");
    }
    assert_eq!(named, 8, "offsite(1) names every subcommand's page: {main}");
    let push = std::fs::read_to_string(dir.join("offsite-push.1")).unwrap();
    assert!(push.contains("recipients\\-file"), "{push}");
    let o = sb.cmd().args(["man", "nosuch"]).output().unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("pages exist for push, ls"),
        "{}",
        stderr(&o)
    );
}

/// Every page `man --dir` writes, nested ones (offsite-snapshot-create.1) included, is what
/// `offsite man NAME` prints, and a nested one is also named by its words (`snapshot create`).
#[test]
fn man_prints_every_page_nested_ones_too() {
    let sb = Sandbox::new();
    let dir = sb.path("man1");
    let o = sb.cmd().args(["man", "--dir"]).arg(&dir).output().unwrap();
    assert_code(&o, 0);
    let mut nested = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let file = e.unwrap().file_name().to_string_lossy().into_owned();
        let Some(name) = file
            .strip_suffix(".1")
            .and_then(|f| f.strip_prefix("offsite-"))
        else {
            continue;
        };
        let page = std::fs::read_to_string(dir.join(&file)).unwrap();
        let o = sb.cmd().args(["man", name]).output().unwrap();
        assert_code(&o, 0);
        assert_eq!(stdout(&o), page, "offsite man {name}");
        if let Some((parent, child)) = name.split_once('-').filter(|(p, _)| *p == "snapshot") {
            nested += 1;
            let o = sb.cmd().args(["man", parent, child]).output().unwrap();
            assert_code(&o, 0);
            assert_eq!(stdout(&o), page, "offsite man {parent} {child}");
        }
    }
    assert_eq!(
        nested, 5,
        "create, list, restore, delete and prune under snapshot"
    );
    // The page that points to them, and the one the issue could not print.
    let snapshot = std::fs::read_to_string(dir.join("offsite-snapshot.1")).unwrap();
    assert!(
        snapshot.contains("offsite\\-snapshot\\-create(1)"),
        "{snapshot}"
    );
    let o = sb.cmd().args(["man", "snapshot-create"]).output().unwrap();
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains(".TH offsite-snapshot-create 1"),
        "{}",
        stdout(&o)
    );
    let o = sb
        .cmd()
        .args(["man", "snapshot", "nosuch"])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(stderr(&o).contains("snapshot-create"), "{}", stderr(&o));
}

#[test]
fn help_names_every_kind_of_location_and_what_thaw_thaws() {
    let sb = Sandbox::new();
    for (cmd, wants) in [
        (
            "push",
            &["file://", "s3://", "gs://", "az://", "memory://"][..],
        ),
        (
            "ls",
            &["file://", "s3://", "gs://", "az://", "memory://"][..],
        ),
        ("restore", &["S3 GLACIER", "Azure", "GCS"][..]),
    ] {
        let o = sb.cmd().args([cmd, "--help"]).output().unwrap();
        assert_code(&o, 0);
        for w in wants {
            assert!(
                stdout(&o).contains(w),
                "{cmd} --help lacks {w}: {}",
                stdout(&o)
            );
        }
    }
}

#[test]
fn logs_carry_colour_only_on_a_terminal() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 1);
    // -v logs at info, and NO_COLOR is unset: the pipe alone must turn colour off.
    let o = sb
        .cmd()
        .env_remove("NO_COLOR")
        .arg("-v")
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let e = stderr(&o);
    assert!(e.contains("committed"), "a log line: {e}");
    assert!(!e.contains('\u{1b}'), "no escape codes into a pipe: {e:?}");
}

#[test]
fn an_empty_source_is_stored_with_a_warning() {
    let sb = Sandbox::new();
    let src = sb.path(NAME);
    std::fs::write(&src, b"").unwrap();
    let o = sb
        .cmd()
        .args(["--json", "push"])
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("is empty (0 bytes)") && stderr(&o).contains("check the job"),
        "{}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["warnings"][0].as_str().unwrap().contains("empty"), "{v}");
    // A non-empty archive has no warning.
    let src = sb.archive("db-backup-20261126_020000.tar.gz", 10, 1);
    let o = sb.push(&src, &["a"]);
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
}

#[test]
fn ls_and_verify_call_a_copy_of_the_wrong_size_what_it_is() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 10_000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    let obj = sb.path("a").join(format!("{NAME}.age"));
    let len = std::fs::metadata(&obj).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&obj)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let o = sb.cmd().args(["ls", &sb.url("a")]).output().unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).contains("wrong-size"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("complete "), "{}", stdout(&o));
    let o = sb
        .cmd()
        .args(["--json", "ls", &sb.url("a")])
        .output()
        .unwrap();
    let v = ls_lines(&o.stdout);
    assert_eq!(v["archives"][0]["state"], "wrong-size");
    let o = sb.cmd().args(["verify", &sb.url("a")]).output().unwrap();
    assert_code(&o, 4);
    assert!(
        stdout(&o).contains(&format!(
            "is {} bytes but its manifest records {len} (truncated or replaced)",
            len - 7
        )),
        "{}",
        stdout(&o)
    );
}

#[test]
fn verify_counts_copies_not_locations() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    std::fs::create_dir(sb.path("empty")).unwrap();
    let o = sb
        .cmd()
        .args(["verify", &sb.url("a"), &sb.url("empty"), &sb.url("gone")])
        .output()
        .unwrap();
    assert_code(&o, 4);
    assert!(
        stdout(&o).contains("1 of 1 copies checked good; 2 of 3 locations had no copy to check."),
        "{}",
        stdout(&o)
    );
    let o = sb
        .cmd()
        .args(["--json", "verify", &sb.url("a"), &sb.url("empty")])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["copies"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["locations"][0]["verdict"], "missing", "{v}");
    assert_eq!(v["exit"], 4);
}

#[test]
fn restore_into_a_directory_writes_the_archive_under_its_name() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 5000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    std::fs::create_dir(sb.path("out")).unwrap();
    let restore = |extra: &[&str]| {
        sb.cmd()
            .args(["restore", &sb.url("a"), "--latest", "-o", "out", "-i"])
            .arg(&sb.key)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = restore(&[]);
    assert_code(&o, 0);
    let got = sb.path("out").join(NAME);
    assert_eq!(sha256_file(&got), sha256_file(&src));
    assert!(
        stderr(&o).contains(&format!("to out/{NAME}")),
        "{}",
        stderr(&o)
    );
    // Again: the file inside is what is not overwritten, and --force replaces it.
    let o = restore(&[]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains(&format!("out/{NAME} already exists")),
        "{}",
        stderr(&o)
    );
    let o = restore(&["--force"]);
    assert_code(&o, 0);
    assert_eq!(sha256_file(&got), sha256_file(&src));
}
