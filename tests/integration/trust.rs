//! Readers check signatures (issue 27), end to end: where a key is trusted (`--trust`,
//! `--trusted-file`, a policy's `[signing] trusted` / `trusted-file`), an archive a bucket writer
//! planted (unsigned, signed by another key, a real signed manifest copied under a newer name, a
//! signed manifest with one field edited) is `untrusted` in `ls`, passed over by `restore
//! --latest`, refused by `restore --archive` unless `--allow-untrusted`, reported by `verify`,
//! `drill` and `status` (exit 4), counted as no copy by placement, listed by `prune` and deleted
//! only with `--delete-untrusted`. Validity windows, bad input, and the same core on SeaweedFS,
//! moto, the GCS emulator and Azurite (where the inventory cache keeps no verdict).

use std::path::{Path, PathBuf};

use offsite_policies::signing::NAMESPACE;
use serde_json::Value;

use crate::common::*;

/// `offsite keygen --signing --comment COMMENT -o KEY`: the public line it prints.
fn signing_key(sb: &Sandbox, key: &Path, comment: &str) -> String {
    let o = sb
        .cmd()
        .args(["keygen", "--signing", "--comment", comment, "-o"])
        .arg(key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let public = stdout(&o).trim().to_string();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    public
}

/// The `SHA256:...` fingerprint of a signing key file.
fn fingerprint(key: &Path) -> String {
    let fp = offsite::signing::read_signing_key(key)
        .unwrap()
        .fingerprint()
        .to_string();
    assert!(fp.starts_with("SHA256:"), "{fp}");
    fp
}

/// An archive name of the app-backup series at `stamp` (`YYYYMMDD_HHMMSS`).
fn named(stamp: &str) -> String {
    format!("app-backup-{stamp}.tar.gz")
}

/// `push FILE -r RECIPIENT --to URL [--sign-with KEY]` through `cmd`.
fn push(sb: &Sandbox, mut cmd: assert_cmd::Command, file: &Path, url: &str, key: Option<&Path>) {
    cmd.arg("push")
        .arg(file)
        .args(["-r", &sb.recipient, "--to", url]);
    if let Some(k) = key {
        cmd.arg("--sign-with").arg(k);
    }
    let o = cmd.output().unwrap();
    assert_code(&o, 0);
}

/// `ls URL --json [--trust LINE]`: the archives, by name (an incomplete upload as `NAME (data
/// only)`).
fn ls_json(
    mut cmd: assert_cmd::Command,
    url: &str,
    trust: &[&str],
) -> std::collections::BTreeMap<String, Value> {
    cmd.args(["--json", "ls", url]);
    for t in trust {
        cmd.args(["--trust", t]);
    }
    let o = cmd.output().unwrap();
    assert_code(&o, 0);
    let v = ls_lines(&o.stdout);
    let mut by_name = std::collections::BTreeMap::new();
    for a in v["archives"].as_array().unwrap() {
        let name = a["archive"].as_str().unwrap();
        // Data no manifest claims is listed apart, under the name its key suggests.
        let key = if a["state"] == "incomplete" {
            format!("{name} (data only)")
        } else {
            name.to_string()
        };
        assert!(by_name.insert(key, a.clone()).is_none(), "{v}");
    }
    by_name
}

/// The manifest object of `name` in the directory `dir`, as stored.
fn manifest_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.manifest.json"))
}

/// Rewrites the envelope of `name` with its `signed` text edited by `edit` and the signature
/// kept, as a bucket writer can; returns the edited text (checked to differ).
fn tamper(dir: &Path, name: &str, edit: impl FnOnce(&str) -> String) -> String {
    let p = manifest_path(dir, name);
    let mut env: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    assert_eq!(env["format"], 2, "{env}");
    let before = env["signed"].as_str().unwrap().to_string();
    let after = edit(&before);
    assert_ne!(before, after, "the edit of {name} changed nothing");
    env["signed"] = Value::String(after.clone());
    std::fs::write(&p, serde_json::to_vec_pretty(&env).unwrap()).unwrap();
    after
}

/// `text` with the first `from` after `anchor` replaced by `to` (both must be there).
fn replace_after(text: &str, anchor: &str, from: &str, to: &str) -> String {
    let a = text
        .find(anchor)
        .unwrap_or_else(|| panic!("{anchor} in {text}"));
    let i = a + text[a..]
        .find(from)
        .unwrap_or_else(|| panic!("{from} after {anchor} in {text}"));
    format!("{}{to}{}", &text[..i], &text[i + from.len()..])
}

/// The manifest a signed text holds, as offsite reads it.
fn inner(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The `warning: passed over NAME (at URL: untrusted: ...): ...` line for `name`.
fn passed_over_line<'a>(err: &'a str, name: &str) -> Option<&'a str> {
    err.lines()
        .find(|l| l.starts_with(&format!("warning: passed over {name} (at ")))
}

#[test]
fn planted_archives_are_untrusted_and_restore_latest_passes_over_them_on_local_disk() {
    let sb = Sandbox::new();
    let host_key = sb.path("keys/host-a.key");
    let host = signing_key(&sb, &host_key, "host-a");
    let host_fp = fingerprint(&host_key);
    let mallory_key = sb.path("keys/mallory.key");
    let mallory_public = signing_key(&sb, &mallory_key, "mallory");
    let mallory_fp = fingerprint(&mallory_key);
    assert_ne!(host_fp, mallory_fp);
    let dir = sb.path("a");
    let url = sb.url("a");

    // host-a pushes two signed archives.
    let a = named("20261120_020000");
    let b = named("20261121_020000");
    let a_src = sb.archive(&a, 40_000, 1);
    let b_src = sb.archive(&b, 50_000, 2);
    push(&sb, sb.cmd(), &a_src, &url, Some(&host_key));
    push(&sb, sb.cmd(), &b_src, &url, Some(&host_key));
    // A's envelope rewritten in another layout, the same signed text and signature: still
    // trusted below, so what tamper() writes is judged by the signed text alone.
    let p = manifest_path(&dir, &a);
    let env: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    std::fs::write(&p, serde_json::to_vec(&env).unwrap()).unwrap();

    // A bucket writer plants newer archives.
    // B's signed manifest copied under newer names: alone, and with B's data copied too.
    let copy_m = named("20261122_010000");
    let copy_md = named("20261122_020000");
    std::fs::copy(manifest_path(&dir, &b), manifest_path(&dir, &copy_m)).unwrap();
    std::fs::copy(manifest_path(&dir, &b), manifest_path(&dir, &copy_md)).unwrap();
    std::fs::copy(
        dir.join(format!("{b}.age")),
        dir.join(format!("{copy_md}.age")),
    )
    .unwrap();
    // Signed by mallory's key.
    let mallory = named("20261123_020000");
    let mallory_src = sb.archive(&mallory, 30_000, 3);
    push(&sb, sb.cmd(), &mallory_src, &url, Some(&mallory_key));
    // A signed manifest per field a reader acts on, that field edited, the signature kept.
    let other_recipient = {
        let o = sb
            .cmd()
            .args(["keygen", "-o"])
            .arg(sb.path("other-key.txt"))
            .output()
            .unwrap();
        assert_code(&o, 0);
        stdout(&o).trim().to_string()
    };
    type Edit = Box<dyn Fn(&str, &Path) -> String>;
    let fields: Vec<(&str, Edit)> = vec![
        (
            "archive",
            Box::new(|t: &str, _: &Path| {
                let m = inner(t);
                let name = m["archive"].as_str().unwrap();
                replace_after(t, "\"archive\"", name, "app-backup-20261121_020000.tar.gz")
            }),
        ),
        (
            "created",
            Box::new(|t: &str, _: &Path| {
                let m = inner(t);
                let c = m["created"].as_str().unwrap();
                replace_after(t, "\"created\"", c, "2026-11-24T12:00:00Z")
            }),
        ),
        (
            "pushed",
            Box::new(|t: &str, _: &Path| {
                let m = inner(t);
                let c = m["pushed"].as_str().unwrap();
                replace_after(t, "\"pushed\"", c, "2026-11-24T02:30:00Z")
            }),
        ),
        (
            "plaintext.sha256",
            Box::new(|t: &str, _: &Path| {
                let m = inner(t);
                let h = m["plaintext"]["sha256"].as_str().unwrap();
                replace_after(t, "\"plaintext\"", h, &sha256_hex(b"planted"))
            }),
        ),
        (
            "plaintext.size",
            Box::new(|t: &str, _: &Path| {
                let m = inner(t);
                let n = m["plaintext"]["size"].as_u64().unwrap();
                replace_after(
                    t,
                    "\"plaintext\"",
                    &format!("\"size\": {n}"),
                    &format!("\"size\": {}", n + 1),
                )
            }),
        ),
        (
            "stored.size",
            // The data object replaced by a longer one, the size edited to match.
            Box::new(|t: &str, object: &Path| {
                let m = inner(t);
                let n = m["stored"]["size"].as_u64().unwrap();
                let mut data = std::fs::read(object).unwrap();
                data.extend_from_slice(&[0u8; 16]);
                std::fs::write(object, &data).unwrap();
                replace_after(
                    t,
                    "\"stored\"",
                    &format!("\"size\": {n}"),
                    &format!("\"size\": {}", n + 16),
                )
            }),
        ),
        (
            "stored.sha256",
            // The data object replaced by other bytes of its size, the digest edited to match.
            Box::new(|t: &str, object: &Path| {
                let m = inner(t);
                let h = m["stored"]["sha256"].as_str().unwrap();
                let mut data = std::fs::read(object).unwrap();
                let last = data.len() - 1;
                data[last] ^= 0x01;
                std::fs::write(object, &data).unwrap();
                replace_after(t, "\"stored\"", h, &sha256_hex(&data))
            }),
        ),
        (
            "encryption.recipients",
            Box::new({
                let r = other_recipient.clone();
                move |t: &str, _: &Path| {
                    let m = inner(t);
                    let old = m["encryption"]["recipients"][0].as_str().unwrap();
                    replace_after(t, "\"recipients\"", old, &r)
                }
            }),
        ),
        (
            "policy",
            Box::new(|t: &str, _: &Path| {
                assert!(inner(t).get("policy").is_none(), "{t}");
                replace_after(
                    t,
                    "\"pushed\"",
                    "\"pushed\"",
                    "\"policy\": \"app\",\n  \"pushed\"",
                )
            }),
        ),
        (
            "retain-until",
            Box::new(|t: &str, _: &Path| {
                assert!(inner(t).get("retain-until").is_none(), "{t}");
                replace_after(
                    t,
                    "\"pushed\"",
                    "\"pushed\"",
                    "\"retain-until\": \"2027-11-24T02:00:00Z\",\n  \"pushed\"",
                )
            }),
        ),
    ];
    let mut tampered = Vec::new();
    for (i, (field, edit)) in fields.iter().enumerate() {
        let name = named(&format!("20261124_0200{i:02}"));
        let src = sb.archive(&name, 20_000, 10 + i as u64);
        push(&sb, sb.cmd(), &src, &url, Some(&host_key));
        let object = dir.join(format!("{name}.age"));
        let text = tamper(&dir, &name, |t| edit(t, &object));
        // The edit reached the field a reader acts on.
        let m = inner(&text);
        let changed = match *field {
            "archive" => m["archive"] == b.as_str(),
            "created" => m["created"] == "2026-11-24T12:00:00Z",
            "pushed" => m["pushed"] == "2026-11-24T02:30:00Z",
            "plaintext.sha256" => m["plaintext"]["sha256"] == sha256_hex(b"planted"),
            "plaintext.size" => m["plaintext"]["size"] == 20_001,
            "stored.size" => m["stored"]["size"] == std::fs::metadata(&object).unwrap().len(),
            "stored.sha256" => m["stored"]["sha256"] == sha256_file(&object),
            "encryption.recipients" => m["encryption"]["recipients"][0] == other_recipient.as_str(),
            "policy" => m["policy"] == "app",
            "retain-until" => m["retain-until"] == "2027-11-24T02:00:00Z",
            _ => unreachable!(),
        };
        assert!(changed, "{field}: {text}");
        tampered.push((field.to_string(), name));
    }
    // Unsigned, and the newest.
    let unsigned = named("20261125_020000");
    let unsigned_src = sb.archive(&unsigned, 25_000, 4);
    push(&sb, sb.cmd(), &unsigned_src, &url, None);

    let bad_signature =
        format!("the signature by host-a ({host_fp}) does not match the signed bytes");
    let copied =
        format!("its signed manifest is for another archive, {b} (copied under this name)");
    let mut planted: Vec<(String, String)> = vec![
        (copy_m.clone(), copied.clone()),
        (copy_md.clone(), copied.clone()),
        (
            mallory.clone(),
            format!("signed by a key that is not trusted ({mallory_fp})"),
        ),
        (unsigned.clone(), "unsigned".to_string()),
    ];
    planted.extend(
        tampered
            .iter()
            .map(|(_, name)| (name.clone(), bad_signature.clone())),
    );

    // B's data copied under the newer name is claimed by no manifest (the copied manifest
    // names B's object): an incomplete upload, with or without trusted keys.
    let orphan = format!("{copy_md} (data only)");

    // Without --trust: everything as before, every archive complete, the newest restored.
    let all = ls_json(sb.cmd(), &url, &[]);
    assert_eq!(all.len(), 2 + planted.len() + 1, "{all:?}");
    assert_eq!(all[&orphan]["state"], "incomplete", "{}", all[&orphan]);
    for (name, e) in all.iter().filter(|(n, _)| **n != orphan) {
        assert_eq!(e["state"], "complete", "{name}: {e}");
        assert!(e.get("untrusted").is_none(), "{name}: {e}");
    }
    assert_eq!(all[&a]["signature"], "signed");
    assert_eq!(all[&mallory]["signature"], "signed");
    assert_eq!(all[&unsigned]["signature"], "unsigned");
    let o = sb.cmd().args(["ls", &url]).output().unwrap();
    assert_code(&o, 0);
    assert!(!stdout(&o).contains("untrusted"), "{}", stdout(&o));
    let o = sb
        .cmd()
        .args(["restore", &url, "--latest", "-o", "latest-untrusting", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("passed over"), "{}", stderr(&o));
    assert_eq!(
        sha256_file(&sb.path("latest-untrusting")),
        sha256_file(&unsigned_src),
        "without trusted keys restore --latest returns the planted newest"
    );

    // With --trust: the planted ones are untrusted, each with its reason.
    let listed = ls_json(sb.cmd(), &url, &[&host]);
    assert_eq!(listed.len(), all.len(), "{listed:?}");
    assert_eq!(
        listed[&orphan]["state"], "incomplete",
        "{}",
        listed[&orphan]
    );
    for good in [&a, &b] {
        let e = &listed[good];
        assert_eq!(e["state"], "complete", "{e}");
        assert_eq!(e["signature"], "trusted", "{e}");
        assert_eq!(e["signer"], "host-a", "{e}");
        assert!(e.get("untrusted").is_none(), "{e}");
    }
    for (name, reason) in &planted {
        let e = &listed[name];
        assert_eq!(e["state"], "untrusted", "{name}: {e}");
        assert_eq!(e["signature"], "untrusted", "{name}: {e}");
        assert_eq!(e["untrusted"], reason.as_str(), "{name}: {e}");
        assert!(e.get("signer").is_none(), "{name}: {e}");
    }
    let o = sb
        .cmd()
        .args(["ls", &url, "--trust", &host])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let text = stdout(&o);
    for (name, reason) in &planted {
        assert!(
            text.lines()
                .any(|l| l.contains("untrusted") && l.ends_with(&format!(" {name}"))),
            "{name} listed as untrusted: {text}"
        );
        assert!(
            text.contains(&format!(
                "{name} is untrusted: {reason}; it counts as no copy, and restore --latest passes over it"
            )),
            "{name}: {text}"
        );
    }
    for good in [&a, &b] {
        assert!(
            text.lines()
                .any(|l| l.contains("complete") && l.ends_with(&format!(" {good}"))),
            "{text}"
        );
    }

    // restore --latest: the newest trusted one, B, each newer planted one passed over.
    let o = sb
        .cmd()
        .args([
            "restore", &url, "--latest", "-o", "latest", "--trust", &host, "-i",
        ])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("latest")), sha256_file(&b_src));
    let err = stderr(&o);
    for (name, reason) in &planted {
        let line = passed_over_line(&err, name).unwrap_or_else(|| panic!("{name}: {err}"));
        assert_eq!(
            line,
            format!(
                "warning: passed over {name} (at {url}: untrusted: {reason}): never chosen by --latest or --at"
            )
        );
    }
    assert!(passed_over_line(&err, &a).is_none() && passed_over_line(&err, &b).is_none());

    // restore --archive of a planted one: exit 1 naming the key; --allow-untrusted restores it.
    let o = sb
        .cmd()
        .args([
            "restore",
            &url,
            "--archive",
            &mallory,
            "-o",
            "m",
            "--trust",
            &host,
            "-i",
        ])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(&format!(
            "the copy is untrusted: signed by a key that is not trusted ({mallory_fp}); restore it only after checking it, with --allow-untrusted"
        )),
        "{}",
        stderr(&o)
    );
    assert!(!sb.path("m").exists());
    let o = sb
        .cmd()
        .args([
            "restore",
            &url,
            "--archive",
            &mallory,
            "-o",
            "m",
            "--trust",
            &host,
        ])
        .args(["--allow-untrusted", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("m")), sha256_file(&mallory_src));
    // --allow-untrusted is for one archive named, never for --latest.
    let o = sb
        .cmd()
        .args([
            "restore",
            &url,
            "--latest",
            "-o",
            "x",
            "--trust",
            &host,
            "--allow-untrusted",
            "-i",
        ])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(stderr(&o).contains("--archive"), "{}", stderr(&o));
    // A copied manifest by its new name: refused too, naming the archive it was signed for.
    let o = sb
        .cmd()
        .args([
            "restore",
            &url,
            "--archive",
            &copy_md,
            "-o",
            "c",
            "--trust",
            &host,
            "-i",
        ])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(stderr(&o).contains(&copied), "{}", stderr(&o));

    // verify: UNTRUSTED per planted copy, ok for the signed ones, exit 4.
    let o = sb
        .cmd()
        .args(["verify", &url, "--trust", &host])
        .output()
        .unwrap();
    assert_code(&o, 4);
    let out = stdout(&o);
    for (name, reason) in &planted {
        assert!(
            out.lines().any(|l| l.starts_with("UNTRUSTED")
                && l.contains(&format!(" {name} "))
                && l.contains(&format!("untrusted: {reason}; it counts as no copy"))),
            "{name}: {out}"
        );
    }
    for good in [&a, &b] {
        assert!(
            out.lines()
                .any(|l| l.starts_with("ok ") && l.contains(&format!(" {good} "))),
            "{good}: {out}"
        );
    }
    assert!(
        out.contains(&format!("2 of {} copies checked good.", 2 + planted.len())),
        "{out}"
    );
    // verify --json says the same.
    let o = sb
        .cmd()
        .args(["--json", "verify", &url, "--trust", &host])
        .output()
        .unwrap();
    assert_code(&o, 4);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit"], 4, "{v}");

    // A location holding only untrusted archives: nothing to restore, exit 1 naming them.
    let only = sb.path("only");
    std::fs::create_dir_all(&only).unwrap();
    for (name, _) in planted
        .iter()
        .filter(|(n, _)| *n == unsigned || *n == mallory)
    {
        for suffix in [".manifest.json", ".age"] {
            std::fs::copy(
                dir.join(format!("{name}{suffix}")),
                only.join(format!("{name}{suffix}")),
            )
            .unwrap();
        }
    }
    let only_url = sb.url("only");
    let o = sb
        .cmd()
        .args([
            "restore", &only_url, "--latest", "-o", "none", "--trust", &host, "-i",
        ])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("no trusted archive to restore: "), "{err}");
    assert!(
        err.contains(&format!("{unsigned} (at {only_url}: untrusted: unsigned)")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{mallory} (at {only_url}: untrusted: signed by a key that is not trusted ({mallory_fp}))"
        )),
        "{err}"
    );
    assert!(!sb.path("none").exists());
    // Trusting mallory's key too (--trust repeated) makes its archive the newest trusted one.
    let o = sb
        .cmd()
        .args([
            "restore", &only_url, "--latest", "-o", "mallory", "--trust", &host,
        ])
        .args(["--trust", &mallory_public, "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("mallory")), sha256_file(&mallory_src));
    assert!(
        stderr(&o).contains(&format!(
            "warning: passed over {unsigned} (at {only_url}: untrusted: unsigned)"
        )),
        "{}",
        stderr(&o)
    );
}

/// A policy over the local destinations `a` and `b` (copies = 2, keep-last = 10), signing with
/// `key` and trusting what `signing` adds under `[signing]`.
fn two_disk_policy(sb: &Sandbox, key: &Path, signing: &str) -> PathBuf {
    let p = sb.path("policy.toml");
    std::fs::write(
        &p,
        format!(
            "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{}\"]\n\
             [[destination]]\nname = \"a\"\nurl = \"{}\"\n\
             [[destination]]\nname = \"b\"\nurl = \"{}\"\n\
             [placement]\ncopies = 2\n[retention]\nkeep-last = 10\n\
             [signing]\nkey-file = \"{}\"\n{signing}",
            sb.recipient,
            sb.url("a"),
            sb.url("b"),
            key.display()
        ),
    )
    .unwrap();
    p
}

/// The value of the metric line `family{...LABEL...}` in a Prometheus text file.
fn metric(text: &str, family: &str, label: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{family}{{")) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
}

#[test]
fn by_policy_status_prune_and_drill_count_an_untrusted_copy_as_nothing() {
    let sb = Sandbox::new();
    let key = sb.path("keys/host-a.key");
    let host = signing_key(&sb, &key, "host-a");
    let trusting = two_disk_policy(&sb, &key, &format!("trusted = [\"{host}\"]\n"));

    // A and B pushed by the policy, signed, to both destinations.
    let a = named("20261120_020000");
    let b = named("20261121_020000");
    let a_src = sb.archive(&a, 30_000, 1);
    let b_src = sb.archive(&b, 30_000, 2);
    for src in [&a_src, &b_src] {
        let o = sb
            .cmd()
            .arg("push")
            .arg(src)
            .arg("--policy")
            .arg(&trusting)
            .output()
            .unwrap();
        assert_code(&o, 0);
    }
    let o = policy_run(sb.cmd(), &["status"], &trusting);
    assert_code(&o, 0);
    assert!(
        !stdout(&o).contains("note: archives are not signed"),
        "{}",
        stdout(&o)
    );

    // A bucket writer swaps B's manifest at b for an unsigned one of the same bytes, and
    // plants a newer unsigned archive at b.
    let b_at_b = manifest_path(&sb.path("b"), &b);
    let env: Value = serde_json::from_slice(&std::fs::read(&b_at_b).unwrap()).unwrap();
    std::fs::write(&b_at_b, env["signed"].as_str().unwrap()).unwrap();
    let p = named("20261122_020000");
    let p_src = sb.archive(&p, 10_000, 3);
    push(&sb, sb.cmd(), &p_src, &sb.url("b"), None);

    // status: exit 4 naming both, B's placement unmet (its copy at b counts for nothing), the
    // untrusted copies counted per destination in the metrics.
    let prom = sb.path("status.prom");
    let o = policy_run(
        sb.cmd(),
        &["status", "--metrics-file", prom.to_str().unwrap()],
        &trusting,
    );
    assert_code(&o, 4);
    let err = stderr(&o);
    for name in [&b, &p] {
        assert!(
            err.contains(&format!(
                "error: damaged: {name} at b: untrusted: its manifest is not signed by a trusted key, so it counts for nothing"
            )),
            "{name}: {err}"
        );
    }
    assert!(!err.contains(&format!("{a} at")), "{err}");
    assert!(
        err.contains(&format!(
            "error: not met: placement of {b} (newest of app-backup-*.tar.gz): 1 copy of 2 wanted"
        )),
        "{err}"
    );
    assert!(stdout(&o).contains("UNTRUSTED"), "{}", stdout(&o));
    let text = std::fs::read_to_string(&prom).unwrap();
    assert_eq!(
        metric(&text, "offsite_archives_untrusted", "destination=\"b\""),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "offsite_archives_untrusted", "destination=\"a\""),
        Some(0.0),
        "{text}"
    );
    let o = policy_run(sb.cmd(), &["--json", "status"], &trusting);
    assert_code(&o, 4);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let dests = v["destinations"].as_array().unwrap();
    assert_eq!(dests[1]["name"], "b", "{v}");
    assert_eq!(dests[1]["untrusted"], 2, "{v}");
    assert_eq!(dests[1]["complete"], 1, "{v}");
    assert_eq!(dests[0]["untrusted"], 0, "{v}");
    assert_eq!(v["series"][0]["newest"], b.as_str(), "{v}");
    assert_eq!(v["series"][0]["placement"]["met"], false, "{v}");
    assert_eq!(v["exit"], 4, "{v}");

    let untrusting = sb.path("untrusting.toml");
    std::fs::write(
        &untrusting,
        std::fs::read_to_string(&trusting)
            .unwrap()
            .replace(&format!("trusted = [\"{host}\"]\n"), ""),
    )
    .unwrap();
    // The same destinations without trusted keys: every copy counts, the planted P is the
    // newest (its placement unmet: it is only at b), nothing damaged, and a note says why.
    let o = policy_run(sb.cmd(), &["status"], &untrusting);
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains(&format!(
            "error: not met: placement of {p} (newest of app-backup-*.tar.gz): 1 copy of 2 wanted"
        )),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("damaged"), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("note: archives are not signed (no trusted keys under [signing])"),
        "{}",
        stdout(&o)
    );

    // drill: the planted newest at b is reported, exit 4.
    let o = sb
        .cmd()
        .args(["drill", "--policy"])
        .arg(&trusting)
        .arg("-i")
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 4);
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("UNTRUSTED") && l.contains(" b ") && l.contains(&p)),
        "{}",
        stdout(&o)
    );

    let files = |d: &str| visible_files(&sb.path(d));
    let (before_a, before_b) = (files("a"), files("b"));
    // prune --dry-run lists them and leaves them.
    let o = policy_run(sb.cmd(), &["prune", "--dry-run"], &trusting);
    assert_code(&o, 0);
    for name in [&b, &p] {
        assert!(
            stdout(&o).contains(&format!(
                "  leave  untrusted at b: {name} (unsigned; retention neither keeps nor deletes it; --delete-untrusted deletes it once older than min-age)"
            )),
            "{name}: {}",
            stdout(&o)
        );
    }
    assert!(
        stdout(&o).contains("would delete 0 archive(s)"),
        "{}",
        stdout(&o)
    );
    let o = policy_run(sb.cmd(), &["--json", "prune", "--dry-run"], &trusting);
    assert_code(&o, 0);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let listed: Vec<(&str, &str, bool)> = v["untrusted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["destination"].as_str().unwrap(),
                u["name"].as_str().unwrap(),
                u["delete"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [("b", b.as_str(), false), ("b", p.as_str(), false)],
        "{v}"
    );
    let o = policy_run(sb.cmd(), &["prune"], &trusting);
    assert_code(&o, 0);
    assert_eq!(
        (files("a"), files("b")),
        (before_a.clone(), before_b.clone())
    );

    // --delete-untrusted counts against max-delete: a cap of 0 (or 1) refuses, nothing goes.
    for cap in ["0", "1"] {
        let o = policy_run(
            sb.cmd(),
            &["prune", "--delete-untrusted", "--max-delete", cap],
            &trusting,
        );
        assert_code(&o, 5);
        assert!(
            stderr(&o).contains(&format!("error: refused: max-delete {cap}")),
            "{}",
            stderr(&o)
        );
        assert_eq!(
            (files("a"), files("b")),
            (before_a.clone(), before_b.clone())
        );
    }
    let o = policy_run(
        sb.cmd(),
        &["prune", "--delete-untrusted", "--dry-run"],
        &trusting,
    );
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("would delete 2 archive(s)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        (files("a"), files("b")),
        (before_a.clone(), before_b.clone())
    );
    let o = policy_run(
        sb.cmd(),
        &["prune", "--delete-untrusted", "--max-delete", "2"],
        &trusting,
    );
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("deleted 2 archive(s)"),
        "{}",
        stdout(&o)
    );
    // Only the untrusted copies at b went; B's trusted copy at a and A everywhere stay.
    assert_eq!(files("a"), before_a);
    let archives_at_b: Vec<String> = files("b")
        .into_iter()
        .filter(|f| !f.ends_with(".verified.json"))
        .collect();
    assert_eq!(
        archives_at_b,
        [format!("{a}.age"), format!("{a}.manifest.json")]
    );
    // Now nothing is untrusted: status only misses B's second copy (exit 3).
    let o = policy_run(sb.cmd(), &["status"], &trusting);
    assert_code(&o, 3);
    assert!(!stderr(&o).contains("untrusted"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "placement of {b} (newest of app-backup-*.tar.gz): 1 copy of 2 wanted"
        )),
        "{}",
        stderr(&o)
    );
    let o = sb
        .cmd()
        .args(["drill", "--policy"])
        .arg(&trusting)
        .arg("-i")
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
}

/// The time of a signed manifest's `pushed`, as reasons show it.
fn pushed_of(dir: &Path, name: &str) -> chrono::DateTime<chrono::Utc> {
    let env: Value =
        serde_json::from_slice(&std::fs::read(manifest_path(dir, name)).unwrap()).unwrap();
    let m = inner(env["signed"].as_str().unwrap());
    chrono::DateTime::parse_from_rfc3339(m["pushed"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn allowed_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y%m%d%H%M%SZ").to_string()
}

#[test]
fn a_retired_key_is_trusted_only_within_its_validity_at_the_signed_push_time() {
    let sb = Sandbox::new();
    let key = sb.path("keys/host-a.key");
    let public = signing_key(&sb, &key, "host-a");
    let fp = fingerprint(&key);
    let body = public.split_whitespace().nth(1).unwrap().to_string();
    let url = sb.url("a");
    let a = named("20261120_020000");
    let src = sb.archive(&a, 20_000, 1);
    push(&sb, sb.cmd(), &src, &url, Some(&key));
    let pushed = pushed_of(&sb.path("a"), &a);
    let now = chrono::Utc::now();
    let (past, future) = (
        now - chrono::Duration::days(1),
        now + chrono::Duration::days(365),
    );
    let allowed = sb.path("allowed_signers");
    let write = |options: &str| {
        std::fs::write(
            &allowed,
            format!("# host-a, retired\nhost-a {options} ssh-ed25519 {body} host-a\n"),
        )
        .unwrap()
    };
    let policy = sb.path("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{}\"]\n\
             [[destination]]\nname = \"a\"\nurl = \"{url}\"\n[signing]\ntrusted-file = \"{}\"\n",
            sb.recipient,
            allowed.display()
        ),
    )
    .unwrap();
    let ls_by_file = || {
        let o = sb
            .cmd()
            .args(["--json", "ls", &url, "--trusted-file"])
            .arg(&allowed)
            .output()
            .unwrap();
        assert_code(&o, 0);
        let v = ls_lines(&o.stdout);
        v["archives"][0].clone()
    };

    // Retired yesterday: an archive pushed now is untrusted, by file, by env and by policy.
    write(&format!("valid-before=\"{}\"", allowed_time(past)));
    let reason = format!(
        "signed by host-a ({fp}), whose key is not trusted at {} (valid until {})",
        rfc3339(pushed),
        rfc3339(past)
    );
    let e = ls_by_file();
    assert_eq!(e["state"], "untrusted", "{e}");
    assert_eq!(e["untrusted"], reason.as_str(), "{e}");
    let o = sb
        .cmd()
        .args(["ls", &url])
        .env("OFFSITE_TRUSTED_FILE", &allowed)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains(&format!("{a} is untrusted: {reason}")),
        "{}",
        stdout(&o)
    );
    let o = sb
        .cmd()
        .args(["restore", &url, "--latest", "-o", "back", "--trusted-file"])
        .arg(&allowed)
        .arg("-i")
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(&format!(
            "no trusted archive to restore: {a} (at {url}: untrusted: {reason})"
        )),
        "{}",
        stderr(&o)
    );
    let o = policy_run(sb.cmd(), &["status"], &policy);
    assert_code(&o, 4);
    assert!(
        stderr(&o).contains(&format!("error: damaged: {a} at a: untrusted")),
        "{}",
        stderr(&o)
    );
    // Not yet valid: the same, said the other way.
    write(&format!("valid-after=\"{}\"", allowed_time(future)));
    let e = ls_by_file();
    assert_eq!(e["state"], "untrusted", "{e}");
    assert_eq!(
        e["untrusted"],
        format!(
            "signed by host-a ({fp}), whose key is not trusted at {} (valid from {})",
            rfc3339(pushed),
            rfc3339(future)
        )
        .as_str(),
        "{e}"
    );

    // Valid until next year (and since yesterday): trusted, restored, status holds.
    write(&format!(
        "valid-after=\"{}\",valid-before=\"{}\"",
        allowed_time(past),
        allowed_time(future)
    ));
    let e = ls_by_file();
    assert_eq!(e["state"], "complete", "{e}");
    assert_eq!(e["signature"], "trusted", "{e}");
    assert_eq!(e["signer"], "host-a", "{e}");
    let o = sb
        .cmd()
        .args(["restore", &url, "--latest", "-o", "back", "--trusted-file"])
        .arg(&allowed)
        .arg("-i")
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));
    let o = policy_run(sb.cmd(), &["status"], &policy);
    assert_code(&o, 0);
    let o = policy_run(sb.cmd(), &["verify"], &policy);
    assert_code(&o, 0);
}

/// `ssh-keygen -Y sign -f KEY -n NAMESPACE FILE`: the armored signature it writes.
fn ssh_sign(key: &Path, namespace: &str, file: &Path) -> String {
    let o = std::process::Command::new("ssh-keygen")
        .args(["-Y", "sign", "-f"])
        .arg(key)
        .args(["-n", namespace])
        .arg(file)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ssh-keygen is required (tests/run installs openssh-client)");
    assert!(o.status.success(), "ssh-keygen -Y sign: {}", stderr(&o));
    let sig_file = PathBuf::from(format!("{}.sig", file.display()));
    let sig = std::fs::read_to_string(&sig_file).unwrap();
    std::fs::remove_file(&sig_file).unwrap();
    sig
}

#[test]
fn bad_trust_input_is_refused_naming_the_thing_and_the_fix_and_never_echoes_a_secret() {
    let sb = Sandbox::new();
    let key = sb.path("keys/host-a.key");
    let public = signing_key(&sb, &key, "host-a");
    let body = public.split_whitespace().nth(1).unwrap().to_string();
    let url = sb.url("a");
    let a = named("20261120_020000");
    push(&sb, sb.cmd(), &sb.archive(&a, 10_000, 1), &url, Some(&key));
    let ls = |args: &[&str]| sb.cmd().arg("ls").arg(&url).args(args).output().unwrap();

    // A trusted-file that is not there.
    let missing = sb.path("nowhere/allowed_signers");
    let o = ls(&["--trusted-file", missing.to_str().unwrap()]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains(&format!(
            "cannot read the trusted signers file {}",
            missing.display()
        )) && stderr(&o).contains("allowed_signers lines such as `host-a ssh-ed25519 AAAA...`"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));

    // Malformed lines, named by file and line.
    let allowed = sb.path("allowed_signers");
    let allowed_s = allowed.to_str().unwrap();
    for (text, want) in [
        (
            format!("# ours\nhost-a ssh-ed25519 {body}\n\nhost-b ssh-ed25519\n"),
            format!("{allowed_s}, line 4: no key; an allowed_signers line is `PRINCIPALS [OPTIONS] ssh-ed25519 AAAA...`"),
        ),
        (
            format!("ssh-ed25519 {body} host-a\n"),
            format!("{allowed_s}, line 1: no principals"),
        ),
        (
            format!("host-a valid-before=\"yesterday\" ssh-ed25519 {body}\n"),
            format!("{allowed_s}, line 1:"),
        ),
        (
            format!("host-a ssh-rsa {body}\n"),
            format!("{allowed_s}, line 1: a `ssh-rsa` key; offsite trusts ssh-ed25519 keys only"),
        ),
    ] {
        std::fs::write(&allowed, &text).unwrap();
        let o = ls(&["--trusted-file", allowed_s]);
        assert_code(&o, 2);
        assert!(stderr(&o).contains(&want), "{text}: {}", stderr(&o));
    }
    // A --trust line that is no key, and one cut short.
    let o = ls(&["--trust", "host-a"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("--trust (the first given): a key type and its base64 are needed"),
        "{}",
        stderr(&o)
    );
    let o = ls(&[
        "--trust",
        &public,
        "--trust",
        &format!("ssh-ed25519 {}", &body[..30]),
    ]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("--trust (the second given): the ssh-ed25519 key does not decode"),
        "{}",
        stderr(&o)
    );

    // Private keys where a public one belongs: refused, never shown.
    let private = std::fs::read_to_string(&key).unwrap();
    let age_secret = std::fs::read_to_string(&sb.key)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_string();
    let secret_parts = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 8)
            .map(str::to_string)
            .collect()
    };
    let never_echoed = |o: &std::process::Output, secret: &str| {
        for part in secret_parts(secret) {
            assert!(!stderr(o).contains(&part), "echoed a secret: {}", stderr(o));
            assert!(!stdout(o).contains(&part), "echoed a secret: {}", stdout(o));
        }
    };
    for (secret, what) in [(&private, "signing key"), (&age_secret, "age identity")] {
        let o = ls(&["--trust", secret]);
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains("--trust (the first given): this is a PRIVATE key (not shown)")
                && stderr(&o).contains("ssh-keygen -y -f KEY"),
            "{what}: {}",
            stderr(&o)
        );
        never_echoed(&o, secret);
        // Inside a trusted-file, after a good line.
        std::fs::write(&allowed, format!("host-a ssh-ed25519 {body}\n{secret}\n")).unwrap();
        let o = ls(&["--trusted-file", allowed_s]);
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains(&format!(
                "{allowed_s}, line 2: this is a PRIVATE key (not shown)"
            )),
            "{what}: {}",
            stderr(&o)
        );
        never_echoed(&o, secret);
    }
    // The whole private key file given as the trusted-file.
    let o = ls(&["--trusted-file", key.to_str().unwrap()]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("PRIVATE key (not shown)"),
        "{}",
        stderr(&o)
    );
    never_echoed(&o, &private);

    // A signature ssh-keygen made in another namespace, put into the envelope by hand:
    // untrusted, naming the namespace; made in offsite's namespace, trusted.
    let p = manifest_path(&sb.path("a"), &a);
    let mut env: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let signed_file = sb.path("signed.json");
    std::fs::write(&signed_file, env["signed"].as_str().unwrap()).unwrap();
    for (namespace, want) in [("other-namespace", None), (NAMESPACE, Some("trusted"))] {
        env["signature"] = Value::String(ssh_sign(&key, namespace, &signed_file));
        std::fs::write(&p, serde_json::to_vec_pretty(&env).unwrap()).unwrap();
        let e = &ls_json(sb.cmd(), &url, &[&public])[&a];
        match want {
            None => {
                assert_eq!(e["state"], "untrusted", "{e}");
                assert_eq!(
                    e["untrusted"],
                    format!("signed in the namespace \"{namespace}\", not \"{NAMESPACE}\"")
                        .as_str(),
                    "{e}"
                );
            }
            Some(w) => {
                assert_eq!(e["state"], "complete", "{e}");
                assert_eq!(e["signature"], w, "{e}");
            }
        }
    }

    // A policy's trusted entry that is not a key: exit 2 naming the entry, for every reader.
    let policy = sb.path("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{}\"]\n\
             [[destination]]\nname = \"a\"\nurl = \"{url}\"\n\
             [signing]\ntrusted = [\"{public}\", \"host-b\"]\n",
            sb.recipient
        ),
    )
    .unwrap();
    let readers: [&[&str]; 4] = [&["status"], &["ls"], &["verify"], &["prune", "--dry-run"]];
    for cmd in readers {
        let o = policy_run(sb.cmd(), cmd, &policy);
        assert_code(&o, 2);
        assert!(
            stderr(&o).contains("[signing] trusted, entry 2: a key type and its base64 are needed"),
            "{cmd:?}: {}",
            stderr(&o)
        );
    }
    let o = sb
        .cmd()
        .args(["drill", "--policy"])
        .arg(&policy)
        .arg("-i")
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("[signing] trusted, entry 2"),
        "{}",
        stderr(&o)
    );
}

/// The core on a remote store: host-a's signed archive, a planted newer unsigned one; `ls`
/// (whose inventory cache keeps manifests, never verdicts: with, without, then with --trust
/// again), `restore --latest` and `verify` follow the trusted keys given.
fn core_on(sb: &Sandbox, cmd: &dyn Fn() -> assert_cmd::Command, url: &str) {
    let key = sb.path("keys/host-a.key");
    let host = signing_key(sb, &key, "host-a");
    let a = named("20261120_020000");
    let p = named("20261121_020000");
    let a_src = sb.archive(&a, 150_000, 1);
    let p_src = sb.archive(&p, 60_000, 2);
    push(sb, cmd(), &a_src, url, Some(&key));
    push(sb, cmd(), &p_src, url, None);

    let judged = |trust: &[&str]| {
        let l = ls_json(cmd(), url, trust);
        assert_eq!(l.len(), 2, "{l:?}");
        (l[&a].clone(), l[&p].clone())
    };
    let trusting = |(a_e, p_e): (Value, Value)| {
        assert_eq!(a_e["state"], "complete", "{a_e}");
        assert_eq!(a_e["signature"], "trusted", "{a_e}");
        assert_eq!(a_e["signer"], "host-a", "{a_e}");
        assert_eq!(p_e["state"], "untrusted", "{p_e}");
        assert_eq!(p_e["signature"], "untrusted", "{p_e}");
        assert_eq!(p_e["untrusted"], "unsigned", "{p_e}");
    };
    trusting(judged(&[&host]));
    let cache = sb.path("cache/inventory");
    let cached: Vec<_> = std::fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("no inventory cache at {}: {e}", cache.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!cached.is_empty(), "the remote listing is cached");
    for f in &cached {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        assert!(
            !text.contains("untrusted"),
            "a verdict in the cache: {text}"
        );
    }
    let (a_e, p_e) = judged(&[]);
    assert_eq!(a_e["state"], "complete", "{a_e}");
    assert_eq!(a_e["signature"], "signed", "{a_e}");
    assert_eq!(p_e["state"], "complete", "{p_e}");
    assert_eq!(p_e["signature"], "unsigned", "{p_e}");
    assert!(p_e.get("untrusted").is_none(), "{p_e}");
    trusting(judged(&[&host]));
    let o = cmd().args(["ls", url, "--trust", &host]).output().unwrap();
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains(&format!(
            "{p} is untrusted: unsigned; it counts as no copy, and restore --latest passes over it"
        )),
        "{}",
        stdout(&o)
    );

    let o = cmd()
        .args([
            "restore", url, "--latest", "-o", "back", "--trust", &host, "-i",
        ])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&a_src));
    assert!(
        stderr(&o).contains(&format!(
            "warning: passed over {p} (at {url}: untrusted: unsigned)"
        )),
        "{}",
        stderr(&o)
    );

    let o = cmd()
        .args(["verify", url, "--trust", &host])
        .output()
        .unwrap();
    assert_code(&o, 4);
    assert!(
        stdout(&o).lines().any(|l| l.starts_with("UNTRUSTED")
            && l.contains(&format!(" {p} "))
            && l.contains("untrusted: unsigned; it counts as no copy")),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("ok ") && l.contains(&format!(" {a} "))),
        "{}",
        stdout(&o)
    );
    // Without trusted keys, both count, and --latest returns the planted one, as before.
    let o = cmd().args(["verify", url]).output().unwrap();
    assert_code(&o, 0);
    let o = cmd()
        .args(["restore", url, "--latest", "-o", "planted", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("planted")), sha256_file(&p_src));
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn a_planted_unsigned_archive_is_untrusted_on_seaweedfs() {
    let sb = Sandbox::new();
    let name = bucket("trust");
    let _store = crate::s3::store("OFFSITE_TEST_SEAWEEDFS", &name, "app", false).await;
    let url = format!(
        "s3://{name}/app?endpoint={}",
        emulator("OFFSITE_TEST_SEAWEEDFS")
    );
    core_on(&sb, &|| sb.s3_cmd(), &url);
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn a_planted_unsigned_archive_is_untrusted_on_moto() {
    let sb = Sandbox::new();
    let name = bucket("trust");
    let _store = crate::s3::store("OFFSITE_TEST_MOTO", &name, "app", false).await;
    let url = format!("s3://{name}/app?endpoint={}", emulator("OFFSITE_TEST_MOTO"));
    core_on(&sb, &|| sb.s3_cmd(), &url);
}

#[cfg(feature = "gcs")]
#[tokio::test(flavor = "multi_thread")]
async fn a_planted_unsigned_archive_is_untrusted_on_gcs() {
    let sb = Sandbox::new();
    let name = bucket("trust");
    let _store = crate::gcs::store(&name, "app").await;
    let url = format!("gs://{name}/app?endpoint={}", emulator("OFFSITE_TEST_GCS"));
    core_on(&sb, &|| sb.cmd(), &url);
}

#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread")]
async fn a_planted_unsigned_archive_is_untrusted_on_azurite() {
    let sb = Sandbox::new();
    let container = bucket("trust");
    let _store = crate::azure::store(&container, "app").await;
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let url = format!("az://{}/{container}/app", crate::azure::AZURITE_ACCOUNT);
    core_on(
        &sb,
        &|| {
            let mut c = sb.cmd();
            c.env(
                "AZURE_STORAGE_CONNECTION_STRING",
                crate::azure::connection_string(&endpoint),
            );
            c
        },
        &url,
    );
}
