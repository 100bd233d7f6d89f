//! `offsite verify` and `offsite ls`.

use crate::common::*;

fn verify(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    sb.cmd().arg("verify").args(args).output().unwrap()
}

#[test]
fn quick_and_deep_verify_of_good_copies() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100_000, 1);
    assert_code(&sb.push(&src, &["a", "b"]), 0);
    let o = verify(&sb, &[&sb.url("a"), &sb.url("b")]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("2 of 2 copies checked good."),
        "{}",
        stdout(&o)
    );

    let o = sb
        .cmd()
        .args(["verify", "--deep", &sb.url("a"), "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.path("a").join(format!("{NAME}.verified.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["result"], "ok");
    assert_eq!(rec["depth"], "deep");
}

#[test]
fn deep_verify_needs_the_identity() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    let o = verify(&sb, &["--deep", &sb.url("a")]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("needs the identity"), "{}", stderr(&o));
}

#[test]
fn a_flipped_byte_is_corrupt_in_quick_and_deep_verify() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100_000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    let obj = sb.path("a").join(format!("{NAME}.age"));
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[5000] ^= 0x80;
    std::fs::write(&obj, bytes).unwrap();

    let o = verify(&sb, &[&sb.url("a")]);
    assert_code(&o, 4);
    assert!(stdout(&o).contains("CORRUPT"), "{}", stdout(&o));
    assert!(stdout(&o).contains("damaged on disk"), "{}", stdout(&o));

    let o = sb
        .cmd()
        .args(["verify", "--deep", &sb.url("a"), "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 4);
    assert!(stdout(&o).contains("CORRUPT"), "{}", stdout(&o));
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.path("a").join(format!("{NAME}.verified.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["result"], "failed");
}

#[test]
fn truncated_missing_and_malformed_are_reported() {
    let sb = Sandbox::new();
    for (i, n) in ["app-20261101.tar", "app-20261102.tar", "app-20261103.tar"]
        .iter()
        .enumerate()
    {
        let src = sb.archive(n, 10_000, i as u64);
        assert_code(&sb.push(&src, &["a"]), 0);
    }
    let dir = sb.path("a");
    let obj = dir.join("app-20261101.tar.age");
    let len = std::fs::metadata(&obj).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&obj)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    std::fs::remove_file(dir.join("app-20261102.tar.age")).unwrap();
    std::fs::write(
        dir.join("app-20261103.tar.manifest.json"),
        b"{\"format\": 1, \"archive\": ",
    )
    .unwrap();

    let o = sb
        .cmd()
        .args(["--json", "verify", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 4);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let copies = v["copies"].as_array().unwrap();
    let find = |name: &str| {
        copies
            .iter()
            .find(|c| c["archive"] == name)
            .unwrap_or_else(|| panic!("{name} in {v}"))
    };
    assert_eq!(find("app-20261101.tar")["verdict"], "corrupt");
    assert!(find("app-20261101.tar")["detail"]
        .as_str()
        .unwrap()
        .contains("truncated"));
    assert_eq!(find("app-20261102.tar")["verdict"], "missing");
    assert_eq!(find("app-20261103.tar")["verdict"], "corrupt");
    assert!(find("app-20261103.tar")["detail"]
        .as_str()
        .unwrap()
        .contains("manifest is unreadable"));

    // A malformed manifest blocks a re-push unless --overwrite.
    let src = sb.path("app-20261103.tar");
    let o = sb.push(&src, &["a"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("is unreadable"), "{}", stderr(&o));
}

#[test]
fn verify_of_an_empty_or_missing_location_is_not_ok() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.path("empty")).unwrap();
    let o = verify(&sb, &[&sb.url("empty")]);
    assert_code(&o, 4);
    assert!(stdout(&o).contains("no archives here"), "{}", stdout(&o));
    let o = verify(&sb, &[&sb.url("nowhere")]);
    assert_code(&o, 4);
    let o = verify(&sb, &["--archive", "nope", &sb.url("empty")]);
    assert_code(&o, 4);
    assert!(
        stdout(&o).contains("no archive named \"nope\""),
        "{}",
        stdout(&o)
    );
}

#[test]
fn ls_lists_archives_with_state() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 10_000, 1);
    assert_code(&sb.push(&src, &["a"]), 0);
    std::fs::write(sb.path("a/half-upload.tar.age"), b"partial").unwrap();
    let o = sb.cmd().args(["ls", &sb.url("a")]).output().unwrap();
    assert_code(&o, 0);
    let s = stdout(&o);
    assert!(s.contains("2026-11-26T02:00:00Z     9.8 KiB"), "{s}");
    assert!(
        s.contains("complete     app-backup-20261126_020000.tar.gz"),
        "{s}"
    );
    assert!(s.contains("incomplete   half-upload.tar"), "{s}");
    let o = sb
        .cmd()
        .args(["--json", "ls", &sb.url("a")])
        .output()
        .unwrap();
    let v = ls_lines(&o.stdout);
    let archives = v["archives"].as_array().unwrap();
    assert_eq!(archives.len(), 2);
    let series: Vec<_> = archives.iter().map(|a| a["series"].clone()).collect();
    assert!(series.contains(&"app-backup-*.tar.gz".into()), "{series:?}");
    assert!(series.contains(&"half-upload.tar".into()), "{series:?}");
    let o = sb
        .cmd()
        .args(["ls", &sb.url("missing-dir")])
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("push creates the directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_location_with_only_incomplete_uploads_is_missing() {
    let sb = Sandbox::new();
    std::fs::create_dir(sb.path("a")).unwrap();
    std::fs::write(sb.path("a/half.tar.age"), b"partial").unwrap();
    let o = verify(&sb, &[&sb.url("a")]);
    assert_code(&o, 4);
    assert!(
        stdout(&o).contains("no complete copy here"),
        "{}",
        stdout(&o)
    );
}

/// A truncated copy is one line, and its advice works: the same push again repairs it.
#[test]
fn a_truncated_copy_is_said_once_and_pushing_it_again_repairs_it() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 100_000, 4);
    assert_code(&sb.push(&src, &["a"]), 0);
    let data = sb.path(&format!("a/{NAME}.age"));
    let f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    f.set_len(50_000).unwrap();
    drop(f);
    let o = verify(&sb, &[&sb.url("a")]);
    assert_code(&o, 4);
    let out = stdout(&o);
    let problems: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("CORRUPT") || l.starts_with("MISSING"))
        .collect();
    assert_eq!(problems.len(), 1, "{out}");
    assert!(
        problems[0].contains("truncated or replaced")
            && problems[0].contains("push the same archive again"),
        "{out}"
    );
    // The advice, followed: the same push, no --overwrite.
    assert_code(&sb.push(&src, &["a"]), 0);
    assert_code(&verify(&sb, &[&sb.url("a")]), 0);
}
