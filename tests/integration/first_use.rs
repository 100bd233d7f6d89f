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

    // A policy: plan, push and status refuse it alike, naming both destinations.
    for other in [format!("{x}/"), format!("file://{dir}/./x")] {
        let p = two_destinations(&sb, &x, &other, "");
        for args in [
            vec!["plan"],
            vec!["push", src.to_str().unwrap()],
            vec!["status"],
        ] {
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

/// `restore --latest -i KEY -o OUT` from `a`, with `extra` arguments.
fn restore_to(sb: &Sandbox, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    sb.cmd()
        .args(["restore", &sb.url("a"), "--latest", "-i"])
        .arg(&sb.key)
        .arg("-o")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn restore_writes_into_devices_and_fifos_in_place_and_refuses_other_special_files() {
    use std::os::unix::fs::FileTypeExt;
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 300_000, 2);
    assert_code(&sb.push(&src, &["a"]), 0);

    // /dev/null needs no --force and stays a device, with or without --force.
    for extra in [&[][..], &["--force"][..]] {
        let o = restore_to(&sb, std::path::Path::new("/dev/null"), extra);
        assert_code(&o, 0);
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
    }
    // A character device of our own (the null device again) is written, not replaced.
    let dev = sb.path("null");
    let made = std::process::Command::new("mknod")
        .arg(&dev)
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    if made.success() {
        assert_code(&restore_to(&sb, &dev, &["--force"]), 0);
        let kind = std::fs::symlink_metadata(&dev).unwrap().file_type();
        assert!(kind.is_char_device(), "{kind:?}");
    }

    // A FIFO receives the archive and stays a FIFO.
    let fifo = sb.path("pipe");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    for extra in [&[][..], &["--force"][..]] {
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        let o = restore_to(&sb, &fifo, extra);
        assert_code(&o, 0);
        let got = reader.join().unwrap();
        assert_eq!(got, std::fs::read(&src).unwrap());
        let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
        assert!(kind.is_fifo(), "{kind:?}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(sb.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("offsite-restore"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file beside a FIFO");

    // A socket is neither: refused before a byte is read, and left alone.
    let sock = sb.path("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let o = restore_to(&sb, &sock, extra);
        assert_code(&o, 2);
        assert!(stderr(&o).contains("is a socket"), "{}", stderr(&o));
        assert!(std::fs::symlink_metadata(&sock)
            .unwrap()
            .file_type()
            .is_socket());
    }
}

#[test]
fn restore_to_standard_output_on_a_terminal_is_refused() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 3);
    assert_code(&sb.push(&src, &["a"]), 0);
    let bin = assert_cmd::cargo::cargo_bin("offsite");
    let line = format!(
        "{} restore {} --latest -o - -i {}",
        bin.display(),
        sb.url("a"),
        sb.key.display()
    );
    let o = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("OFFSITE_CACHE_DIR", sb.path("cache"))
        .env_remove("OFFSITE_POLICY")
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    let all = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(all.contains("onto this terminal"), "{all}");
    // Redirected, it writes.
    let o = sb
        .cmd()
        .args(["restore", &sb.url("a"), "--latest", "-o", "-", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(o.stdout, std::fs::read(&src).unwrap());
}

/// A policy of one local destination `a`, with `top` among the top-level keys and `tail` at
/// the end (a `[retention]` table, say).
fn one_destination(sb: &Sandbox, top: &str, tail: &str) -> std::path::PathBuf {
    let p = sb.path("policy.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"app\"\n{top}\n[encryption]\nrecipients = [\"{}\"]\n\n\
             [[destination]]\nname = \"local\"\nurl = \"{}\"\n\n{tail}\n",
            sb.recipient,
            sb.url("a")
        ),
    )
    .unwrap();
    p
}

#[test]
fn durations_cannot_be_misread() {
    let sb = Sandbox::new();
    let plan = |top: &str, tail: &str| {
        let p = one_destination(&sb, top, tail);
        policy_run(sb.cmd(), &["plan"], &p)
    };
    // A bare m where minutes are plausible: refused with both readings.
    for (top, tail) in [
        ("rpo = \"30m\"", ""),
        ("verify-every = \"30m\"", ""),
        ("clock-tolerance = \"5m\"", ""),
        ("", "[retention]\nkeep-daily = 7\nmin-age = \"30m\""),
    ] {
        let o = plan(top, tail);
        assert_code(&o, 2);
        let e = stderr(&o);
        let n = if top.contains("5m") { "5" } else { "30" };
        assert!(
            e.contains(&format!(
                "{n}m could be {n} minutes or {n} months; write {n}min or {n}mo"
            )),
            "{top}{tail}: {e}"
        );
    }
    // No time for rpo or verify-every is refused; min-age 0h is fine.
    for top in ["rpo = \"0d\"", "verify-every = \"0h\""] {
        let o = plan(top, "");
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains("no time can never be met"),
            "{top}: {}",
            stderr(&o)
        );
    }
    let o = plan("", "[retention]\nkeep-daily = 7\nmin-age = \"0h\"");
    assert_code(&o, 0);
    // min-age above max-age cannot be followed.
    let o = plan("", "[retention]\nmax-age = \"1d\"\nmin-age = \"2d\"");
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("min-age = \"2d\" (2 days) is longer than max-age = \"1d\" (1 day)"),
        "{}",
        stderr(&o)
    );
    // Retention keeps restic's m; plan says every duration in words.
    let o = plan(
        "rpo = \"30min\"\nrto = \"45min\"\nverify-every = \"1w\"",
        "[retention]\nkeep-within = \"6m\"\nmax-age = \"1y\"\nmin-age = \"90min\"",
    );
    assert_code(&o, 0);
    let out = stdout(&o);
    for want in [
        "rpo 30min (30 minutes), rto 45min (45 minutes), verify-every 1w (1 week), clock-tolerance 1h (1 hour)",
        "keep-within 6mo (6 months), max-age 1y (1 year), min-age 90min (90 minutes)",
    ] {
        assert!(out.contains(want), "{want}: {out}");
    }

    // Minutes are minutes: an archive two weeks old misses an rpo of 30 minutes.
    let src = sb.archive(NAME, 1000, 4);
    assert_code(&sb.push(&src, &["a"]), 0);
    let p = one_destination(&sb, "rpo = \"30min\"", "");
    let o = policy_run(sb.cmd(), &["status"], &p);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("rpo"), "{}", stderr(&o));
}

#[test]
fn an_identity_pasted_in_place_of_its_file_is_refused_and_never_echoed() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 5);
    assert_code(&sb.push(&src, &["a"]), 0);
    let key = std::fs::read_to_string(&sb.key).unwrap();
    let secret = key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_string();
    let url = sb.url("a");
    for given in [secret.clone(), secret.to_ascii_lowercase()] {
        let body = &given[16..40];
        for args in [
            vec![
                "restore",
                url.as_str(),
                "--latest",
                "-o",
                "out",
                "-i",
                &given,
            ],
            vec!["verify", url.as_str(), "--deep", "-i", &given],
        ] {
            let o = sb.cmd().args(&args).output().unwrap();
            assert_code(&o, 2);
            let (out, err) = (stdout(&o), stderr(&o));
            assert!(!err.contains(body) && !out.contains(body), "{err}{out}");
            assert!(err.contains("a key itself, not the file"), "{err}");
        }
        // Through the environment too.
        let o = sb
            .cmd()
            .args(["restore", &url, "--latest", "-o", "out"])
            .env("OFFSITE_IDENTITY_FILE", &given)
            .output()
            .unwrap();
        assert_code(&o, 2);
        assert!(!stderr(&o).contains(body), "{}", stderr(&o));
        assert!(!sb.path("out").exists());
    }
}

#[test]
fn latest_says_which_newer_names_it_passed_over_and_why() {
    let sb = Sandbox::new();
    let names = [
        "app-backup-20261124_020000.tar.gz",
        "app-backup-20261125_020000.tar.gz",
        "app-backup-20261126_020000.tar.gz",
    ];
    for (i, n) in names.iter().enumerate() {
        let src = sb.archive(n, 5000, i as u64);
        assert_code(&sb.push(&src, &["a"]), 0);
    }
    let a = sb.path("a");
    // The newest has data but no manifest; the one before it a truncated data object.
    std::fs::remove_file(a.join(format!("{}.manifest.json", names[2]))).unwrap();
    let data = a.join(format!("{}.age", names[1]));
    let bytes = std::fs::read(&data).unwrap();
    std::fs::write(&data, &bytes[..bytes.len() / 2]).unwrap();
    let url = sb.url("a");
    for select in [vec!["--latest"], vec!["--at", "2026-11-27"]] {
        let _ = std::fs::remove_file(sb.path("out"));
        let o = sb
            .cmd()
            .args(["restore", &url])
            .args(&select)
            .args(["-o", "out", "-i"])
            .arg(&sb.key)
            .output()
            .unwrap();
        assert_code(&o, 0);
        let e = stderr(&o);
        assert!(e.contains(&format!("restored {}", names[0])), "{e}");
        assert!(
            e.contains(&format!(
                "warning: passed over {} (at {url}: data but no manifest: an upload not committed",
                names[2]
            )),
            "{e}"
        );
        assert!(
            e.contains(&format!(
                "warning: passed over {} (at {url}: damaged: its data object is not the size its manifest records (truncated or replaced)): no whole copy of it anywhere",
                names[1]
            )),
            "{e}"
        );
    }
}

#[test]
fn wrong_inputs_are_refused_before_a_byte_is_read() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 6);
    let push_to = |url: &str| {
        sb.cmd()
            .arg("push")
            .arg(&src)
            .args(["-r", &sb.recipient, "--to", url])
            .output()
            .unwrap()
    };
    for (url, want) in [
        (
            "s3://acme-backups/app?storage-class=GLACEIR&endpoint=http://127.0.0.1:9",
            "storage-class=\"GLACEIR\" is not an S3 storage class",
        ),
        (
            "s3://acme-backups/app?storage-class=glacier_ir&endpoint=http://127.0.0.1:9",
            "write storage-class=GLACIER_IR",
        ),
        (
            "gs://acme-backups/app?storage-class=GLACIER&endpoint=http://127.0.0.1:9",
            "is not a GCS storage class",
        ),
        (
            "az://devstoreaccount1/backups?storage-class=hot&endpoint=http://127.0.0.1:9/devstoreaccount1",
            "write storage-class=Hot",
        ),
        (
            "az://acmebackups/dr?endpoint=http://127.0.0.1:9/acmebackups",
            "\"dr\" is not a valid Azure container name",
        ),
        (
            "az://Acme_Backups/backups?endpoint=http://127.0.0.1:9/x",
            "not a valid Azure storage account name",
        ),
    ] {
        let o = push_to(url);
        assert_code(&o, 2);
        assert!(stderr(&o).contains(want), "{url}: {}", stderr(&o));
    }
    // file:// refuses what it would ignore, as s3:// does.
    let o = push_to(&format!("{}?region=eu-west-1", sb.url("a")));
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("unknown parameter \"region\" in a file:// location"),
        "{}",
        stderr(&o)
    );
    assert!(!sb.path("a").exists());

    // A control character in a name would forge rows in `ls`.
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &sb.url("a")])
        .args(["--name", "evil\nfake-row-20261126.tar.gz"])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("contains a control character"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("evil\n"), "the newline is escaped");

    // The same at plan, from a policy: exit 2, the destination named.
    for (line, want) in [
        (
            "url = \"s3://acme-backups\"\nstorage-class = \"GLACEIR\"",
            "is not an S3 storage class",
        ),
        (
            "url = \"az://acmebackups/dr\"",
            "is not a valid Azure container name",
        ),
        (
            &format!("url = \"{}?regoin=x\"", sb.url("b")) as &str,
            "unknown parameter \"regoin\"",
        ),
    ] {
        let p = sb.path("policy.toml");
        std::fs::write(
            &p,
            format!(
                "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{}\"]\n[[destination]]\nname = \"far\"\n{line}\n",
                sb.recipient
            ),
        )
        .unwrap();
        let o = policy_run(sb.cmd(), &["plan"], &p);
        assert_code(&o, 2);
        let e = stderr(&o);
        assert!(
            e.contains("destination `far`") && e.contains(want),
            "{line}: {e}"
        );
    }
    // Type errors in words, with the key and its line; copies = 0 is exit 2 with its line.
    let p = sb.path("policy.toml");
    for (placement, want) in [
        (
            "copies = \"3\"",
            "policy.toml:7:10: copies must be a whole number, at least 1 (not the text \"3\": write copies = 3, without quotes)",
        ),
        (
            "copies = 0",
            "policy.toml:7: copies = 0: a policy keeps at least one copy of each archive; write copies = 1 or more",
        ),
    ] {
        std::fs::write(
            &p,
            format!(
                "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{}\"]\n\n[placement]\n{placement}\n[[destination]]\nname = \"a\"\nurl = \"{}\"\n",
                sb.recipient,
                sb.url("a")
            ),
        )
        .unwrap();
        let o = policy_run(sb.cmd(), &["plan"], &p);
        assert_code(&o, 2);
        assert!(stderr(&o).contains(want), "{placement}: {}", stderr(&o));
    }
}

#[test]
fn a_name_too_long_for_a_destination_is_refused_with_the_limit() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 7);
    let push_named = |name: &str| {
        sb.cmd()
            .arg("push")
            .arg(&src)
            .args(["-r", &sb.recipient, "--to", &sb.url("a"), "--name", name])
            .output()
            .unwrap()
    };
    // The longest name a local directory takes is stored; one byte more is refused.
    let fits = format!("{}.tar", "x".repeat(211 - 4));
    let o = push_named(&fits);
    assert_code(&o, 0);
    // And it lists, verifies and restores (into a directory, under its own name).
    std::fs::create_dir(sb.path("out")).unwrap();
    let o = sb
        .cmd()
        .args([
            "restore",
            &sb.url("a"),
            "--archive",
            &fits,
            "-o",
            "out",
            "-i",
        ])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read(sb.path("out").join(&fits)).unwrap(),
        std::fs::read(&src).unwrap()
    );
    let long = format!("{}.tar", "x".repeat(212 - 4));
    let o = push_named(&long);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("the archive name is 212 bytes, and")
            && stderr(&o).contains("takes names of at most 211 bytes"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn quiet_leaves_errors_only() {
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1000, 8);
    let url = sb.url("a");
    // push, ls-free commands: nothing on stdout, nothing on stderr, the work done.
    let o = sb
        .cmd()
        .args(["-q", "push"])
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!((stdout(&o), stderr(&o)), (String::new(), String::new()));
    assert!(sb.path("a").join(format!("{NAME}.manifest.json")).exists());
    for args in [
        vec!["verify", url.as_str()],
        vec!["--quiet", "restore", url.as_str(), "--latest", "-o", "out"],
    ] {
        let mut c = sb.cmd();
        if args[0] != "--quiet" {
            c.arg("-q");
        }
        let o = c.args(&args).arg("-i").arg(&sb.key).output().unwrap();
        assert_code(&o, 0);
        assert_eq!(
            (stdout(&o), stderr(&o)),
            (String::new(), String::new()),
            "{args:?}"
        );
    }
    assert_eq!(
        std::fs::read(sb.path("out")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    // Prune's per-archive lines follow it.
    let p = one_destination(&sb, "", "[retention]\nkeep-last = 1\nmin-age = \"0h\"");
    let o = policy_run(sb.cmd(), &["-q", "prune", "--dry-run"], &p);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), "");
    // Errors still show; what was asked for (a recipient, --json) is still printed.
    let o = sb
        .cmd()
        .args(["-q", "restore", &url, "--latest", "-o", "out", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    let o = sb
        .cmd()
        .args(["-q", "keygen", "-o"])
        .arg(sb.path("k2"))
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with("age1"), "{}", stdout(&o));
    let o = sb
        .cmd()
        .args(["-q", "--json", "verify", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let _: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // -q and -v contradict each other.
    let o = sb
        .cmd()
        .args(["-q", "-v", "verify", &url])
        .output()
        .unwrap();
    assert_code(&o, 2);
}
