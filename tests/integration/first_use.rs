//! What a new user hit in issue 30: one location counted twice, device targets for restore,
//! durations that could be misread, a pasted identity echoed, inputs validated before a byte
//! moves. Each test runs the real binary on the local disk.

use crate::common::*;

const NAME: &str = "app-backup-20261126_020000.tar.gz";

/// A policy of two local destinations at `a` and `b` (URLs as written) and `rest` at the top.
fn two_destinations(sb: &Sandbox, a: &str, b: &str, rest: &str) -> std::path::PathBuf {
    let p = sb.path("policy.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"app\"\n{rest}\n[encryption]\nrecipients = [\"{}\"]\n\n\
             [[destination]]\nname = \"one\"\nurl = \"{a}\"\n\n\
             [[destination]]\nname = \"two\"\nurl = \"{b}\"\n\n\
             [placement]\ncopies = 2\nmedia = 1\noffsite = 0\n",
            sb.recipient
        ),
    )
    .unwrap();
    p
}

#[test]
fn one_location_spelled_two_ways_is_refused_naming_both() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 1);
    let x = sb.url("x");
    let dir = sb.path("").display().to_string();
    let dir = dir.trim_end_matches('/');
    for other in [
        format!("{x}/"),
        format!("file://{dir}/./x"),
        format!("file://{dir}//x"),
    ] {
        let o = sb
            .cmd()
            .arg("push")
            .arg(&src)
            .args(["-r", &sb.recipient, "--to", &x, "--to", &other])
            .output()
            .unwrap();
        assert_code(&o, 2);
        let e = stderr(&o);
        assert!(e.contains("are one location"), "{other}: {e}");
        assert!(e.contains(&x) && e.contains(&other), "{other}: {e}");
        assert!(!sb.path("x").exists(), "{other}: nothing is written");
    }
    // Two places stay two places.
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &x, "--to", &sb.url("xy")])
        .output()
        .unwrap();
    assert_code(&o, 0);

    // A policy: plan and push refuse it alike, naming both destinations.
    for other in [format!("{x}/"), format!("file://{dir}/./x")] {
        let p = two_destinations(&sb, &x, &other, "");
        for args in [vec!["plan"], vec!["push", src.to_str().unwrap()]] {
            let o = policy_run(sb.cmd(), &args, &p);
            assert_code(&o, 2);
            let e = stderr(&o);
            assert!(
                e.contains("destinations `one`") && e.contains("and `two`"),
                "{args:?} {other}: {e}"
            );
            assert!(e.contains("are one location"), "{e}");
        }
    }
}
