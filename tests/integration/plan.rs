//! `offsite plan`: a policy file validated, its destinations shown, its placement judged;
//! exit 0 valid and satisfiable, 2 invalid, 3 valid but a rule cannot be met.

use crate::common::*;

/// A preset with its recipients file, signing key and trusted signers pointed into the
/// sandbox (a key made here, and trusted).
fn preset(sb: &Sandbox, name: &str) -> std::path::PathBuf {
    let rfile = sb.path("recipients.txt");
    std::fs::write(&rfile, format!("{}\n", sb.recipient)).unwrap();
    let key = sb.path("signing.key");
    if !key.exists() {
        let o = sb
            .cmd()
            .args(["keygen", "--signing", "--comment", "host-a", "-o"])
            .arg(&key)
            .output()
            .unwrap();
        assert_code(&o, 0);
        let body = stdout(&o).split_whitespace().nth(1).unwrap().to_string();
        std::fs::write(
            sb.path("allowed_signers"),
            format!("host-a ssh-ed25519 {body}\n"),
        )
        .unwrap();
    }
    let text =
        std::fs::read_to_string(crate::examples::root().join(format!("policies/presets/{name}")))
            .unwrap()
            .replace("/etc/offsite/recipients.txt", &rfile.display().to_string())
            .replace("/etc/offsite/signing.key", &key.display().to_string())
            .replace(
                "/etc/offsite/allowed_signers",
                &sb.path("allowed_signers").display().to_string(),
            );
    let p = sb.path(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn every_preset_plans_valid_and_satisfiable() {
    let sb = Sandbox::new();
    for name in ["local.toml", "3-2-1.toml", "3-2-1-1-0.toml", "gfs.toml"] {
        let p = preset(&sb, name);
        let o = policy_run(sb.cmd(), &["plan"], &p);
        assert_code(&o, 0);
        assert!(
            stdout(&o).contains("the policy is valid and its placement can be met."),
            "{name}: {}",
            stdout(&o)
        );
    }
    // 3-2-1-1-0 shows the lock and the credentials source stays out of the URL.
    let p = preset(&sb, "3-2-1-1-0.toml");
    let o = sb
        .cmd()
        .args(["--json", "plan"])
        .env("OFFSITE_POLICY", &p)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["destinations"][1]["lock"], "compliance");
    assert_eq!(
        v["destinations"][1]["url"],
        "s3://acme-locked?region=us-east-1&lock=compliance&lock-days=14"
    );
    assert_eq!(v["placement"]["immutable"]["possible"], 1);
    assert!(!stdout(&o).contains("DR_AZURE_CONNECTION="));
}

#[test]
fn a_rule_that_cannot_be_met_is_named_with_exit_3() {
    let sb = Sandbox::new();
    let p = preset(&sb, "3-2-1-1-0.toml");
    let text: String = std::fs::read_to_string(&p)
        .unwrap()
        .replace("copies = 3", "copies = 4")
        .lines()
        .filter(|l| !l.starts_with("lock"))
        .map(|l| format!("{l}\n"))
        .collect();
    // Told at the line of [placement], the rules they break.
    let line = 1 + text
        .lines()
        .position(|l| l.trim() == "[placement]")
        .unwrap();
    std::fs::write(&p, text).unwrap();
    let o = policy_run(sb.cmd(), &["plan"], &p);
    assert_code(&o, 3);
    let e = stderr(&o);
    let at = format!("{}:{line}", p.display());
    assert!(
        e.contains(&format!(
            "error: {at}: placement wants 4 copies; the policy has 3 destinations"
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "error: {at}: immutable = 1 but no destination has a lock"
        )),
        "{e}"
    );
}

#[test]
fn an_invalid_policy_is_exit_2_with_line_column_and_the_fix() {
    let sb = Sandbox::new();
    let p = preset(&sb, "gfs.toml");
    let good = std::fs::read_to_string(&p).unwrap();
    let case = |text: String| {
        std::fs::write(&p, text).unwrap();
        let o = policy_run(sb.cmd(), &["plan"], &p);
        assert_code(&o, 2);
        stderr(&o)
    };
    let line = good
        .lines()
        .position(|l| l.starts_with("keep-daily"))
        .unwrap()
        + 1;
    let e = case(good.replace("keep-daily", "keep-dayly"));
    assert_eq!(
        e.trim(),
        format!(
            "error: {}:{line}:1: unknown key `keep-dayly`, did you mean `keep-daily`?",
            p.display()
        )
    );
    let e = case(good.replace("keep-daily = 14", "keep-daily = \"fourteen\""));
    assert!(e.contains("not a keep rule"), "{e}");
    let e = case(good.replace("rpo = \"2h\"", "rpo = \"2 hours\""));
    assert!(e.contains("is not a duration"), "{e}");
    // An identity is refused and never echoed.
    let key = std::fs::read_to_string(&sb.key).unwrap();
    let secret = key
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_string();
    let e = case(good.replace(
        "recipients-file =",
        &format!("recipients = [\"{secret}\"]\nrecipients-file ="),
    ));
    assert!(e.contains("holds a secret key"), "{e}");
    assert!(!e.contains(&secret[15..30]), "{e}");
    let e = case(good.replace("s3://acme-db-backups", "ftp://acme-db-backups"));
    assert!(e.contains("is not a location URL"), "{e}");
    let o = sb
        .cmd()
        .args(["plan", "--policy", "/nonexistent/p.toml"])
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(stderr(&o).contains("cannot read the policy /nonexistent/p.toml"));
}

#[test]
fn plan_shows_each_snapshots_section_with_its_regions_retention() {
    let sb = Sandbox::new();
    let p = sb.snapshot_policy(
        "x",
        "[retention]\nkeep-daily = 7",
        "[[snapshots]]\nprovider = \"aws\"\nregion = \"us-east-1\"\nselect = \"backup=db\"\n\
         copy-to = [\"eu-west-1\", { region = \"us-west-2\", retention = { keep-weekly = 8 } }]\n",
    );
    let o = policy_run(sb.cmd(), &["plan"], &p);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("snapshots: aws us-east-1: volumes tagged backup=db; retention keep-daily 7; copy-to eu-west-1 (keep-daily 7), us-west-2 (keep-weekly 8)"),
        "{}",
        stdout(&o)
    );
}

/// A policy of snapshots alone (the helper writes no destination): plan shows no placement to
/// meet, and the archive commands refuse it, naming the commands that read it.
#[test]
fn a_policy_of_snapshots_alone_plans_and_the_archive_commands_refuse_it() {
    let sb = Sandbox::new();
    let p = sb.snapshot_policy(
        "x",
        "",
        "[[snapshots]]\nprovider = \"aws\"\nregion = \"us-east-1\"\nselect = \"backup=db\"\n",
    );
    let o = policy_run(sb.cmd(), &["plan"], &p);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("this policy makes volume snapshots only")
            && stdout(&o).contains("the policy is valid.")
            && !stdout(&o).contains("placement:"),
        "{}",
        stdout(&o)
    );
    let o = policy_run(sb.cmd(), &["--json", "plan"], &p);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["placement"].is_null() && v["encryption"].is_null(), "{v}");
    let o = policy_run(sb.cmd(), &["plan", "--check-access"], &p);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("no [[destination]] for --check-access"),
        "{}",
        stderr(&o)
    );
    // Through OFFSITE_POLICY as through --policy.
    let o = sb
        .cmd()
        .arg("ls")
        .env("OFFSITE_POLICY", &p)
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("`offsite ls` works on archives"),
        "{}",
        stderr(&o)
    );
    let src = sb.archive("app-backup-20261201_000000.tar.gz", 100, 1);
    for args in [
        vec!["push".to_string(), src.display().to_string()],
        vec!["ls".into()],
        vec!["verify".into()],
        vec!["restore".into(), "--latest".into(), "-o".into(), "-".into()],
        vec!["prune".into()],
        vec!["drill".into(), "-i".into(), sb.key.display().to_string()],
        vec!["replicate".into()],
    ] {
        let o = sb
            .cmd()
            .args(&args)
            .arg("--policy")
            .arg(&p)
            .output()
            .unwrap();
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains(&format!("`offsite {}` works on archives", args[0]))
                && stderr(&o).contains("offsite snapshot create|list|prune --policy"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}
