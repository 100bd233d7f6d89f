//! Signing keys and SSH signatures against stock OpenSSH (Debian's openssh-client): what
//! `offsite keygen --signing` makes and the library signs, `ssh-keygen -Y verify` accepts, and
//! what `ssh-keygen -Y sign` makes, `TrustedSigners::verify` accepts; and push's signed
//! manifests (issue 27), which `ssh-keygen -Y verify` accepts and today's readers read as
//! unsigned ones (they do not check signatures yet).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command as Std, Stdio};

use offsite_policies::signing::{TrustedSigners, UntrustedReason, Verdict, NAMESPACE};

use crate::common::*;

const BYTES: &[u8] = b"{\"name\":\"app-backup-20261126_020000.tar.gz\",\"sha256\":\"ab12\"}\n";

fn ssh_keygen() -> Std {
    let mut c = Std::new("ssh-keygen");
    c.stdin(Stdio::null());
    c
}

/// `ssh-keygen -Y verify -f ALLOWED -I PRINCIPAL -n offsite-manifest -s SIG < BYTES`.
fn ssh_verify(allowed: &Path, principal: &str, sig: &Path, bytes: &Path) -> std::process::Output {
    ssh_keygen()
        .args(["-Y", "verify", "-f"])
        .arg(allowed)
        .args(["-I", principal, "-n", NAMESPACE, "-s"])
        .arg(sig)
        .stdin(std::fs::File::open(bytes).unwrap())
        .output()
        .expect("ssh-keygen is required (tests/run installs openssh-client)")
}

fn keygen_signing(sb: &Sandbox, key: &Path, comment: &str) -> String {
    let o = sb
        .cmd()
        .args(["keygen", "--signing", "--comment", comment, "-o"])
        .arg(key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    stdout(&o).trim().to_string()
}

#[test]
fn keygen_signing_key_signs_what_ssh_keygen_verifies() {
    let sb = Sandbox::new();
    let key = sb.path("keys/signing.key");
    let public = keygen_signing(&sb, &key, "host-a");
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    assert!(public.ends_with(" host-a"), "{public}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(sb.path("keys"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(
        text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"),
        "{}",
        text.lines().next().unwrap_or("")
    );
    // ssh-keygen reads the key as it is (no passphrase) and derives the same public key.
    let o = ssh_keygen().arg("-y").arg("-f").arg(&key).output().unwrap();
    assert!(o.status.success(), "ssh-keygen -y: {}", stderr(&o));
    assert_eq!(
        stdout(&o).split_whitespace().take(2).collect::<Vec<_>>(),
        public.split_whitespace().take(2).collect::<Vec<_>>()
    );

    let signing = offsite::signing::read_signing_key(&key).unwrap();
    assert_eq!(signing.public_line(), public);
    std::fs::write(sb.path("bytes"), BYTES).unwrap();
    std::fs::write(sb.path("bytes.sig"), signing.sign(BYTES)).unwrap();
    let body = public.split_whitespace().nth(1).unwrap();
    std::fs::write(
        sb.path("allowed_signers"),
        format!("host-a namespaces=\"{NAMESPACE}\" ssh-ed25519 {body}\n"),
    )
    .unwrap();
    let o = ssh_verify(
        &sb.path("allowed_signers"),
        "host-a",
        &sb.path("bytes.sig"),
        &sb.path("bytes"),
    );
    assert!(
        o.status.success(),
        "ssh-keygen -Y verify: {} {}",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("Good \"offsite-manifest\" signature for host-a"),
        "{}",
        stdout(&o)
    );
    // The same signature over other bytes: ssh-keygen refuses it too.
    std::fs::write(sb.path("other"), b"{\"name\":\"other\"}\n").unwrap();
    let o = ssh_verify(
        &sb.path("allowed_signers"),
        "host-a",
        &sb.path("bytes.sig"),
        &sb.path("other"),
    );
    assert!(!o.status.success(), "{}", stdout(&o));
}

#[test]
fn a_signature_ssh_keygen_made_verifies_with_the_trusted_signers() {
    let sb = Sandbox::new();
    let key = sb.path("id_ed25519");
    let st = ssh_keygen()
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "host-b", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    // offsite reads the key ssh-keygen made (mode 0600) and derives the same public line.
    let signing = offsite::signing::read_signing_key(&key).unwrap();
    assert_eq!(signing.public_line(), public.trim());

    std::fs::write(sb.path("bytes"), BYTES).unwrap();
    let sign = |namespace: &str| {
        let o = ssh_keygen()
            .args(["-Y", "sign", "-f"])
            .arg(&key)
            .args(["-n", namespace])
            .arg(sb.path("bytes"))
            .output()
            .unwrap();
        assert!(o.status.success(), "ssh-keygen -Y sign: {}", stderr(&o));
        let sig = std::fs::read_to_string(sb.path("bytes.sig")).unwrap();
        std::fs::remove_file(sb.path("bytes.sig")).unwrap();
        sig
    };
    let sig = sign(NAMESPACE);
    let body = public.split_whitespace().nth(1).unwrap();
    let allowed = format!(
        "# host-b, since it was set up\nhost-b valid-after=\"20200101Z\" ssh-ed25519 {body} host-b\n"
    );
    let trusted =
        TrustedSigners::parse(&[], "trusted", Some((&allowed, "allowed_signers"))).unwrap();
    let now = chrono::Utc::now();
    let fingerprint = signing.fingerprint();
    assert_eq!(
        trusted.verify(BYTES, Some(&sig), now),
        Verdict::Trusted {
            signer: "host-b".into(),
            fingerprint: fingerprint.clone()
        }
    );
    // The same key as a policy's `trusted` public line.
    let by_line = TrustedSigners::parse(&[public.trim().to_string()], "trusted", None).unwrap();
    assert!(matches!(
        by_line.verify(BYTES, Some(&sig), now),
        Verdict::Trusted { signer, .. } if signer == "host-b"
    ));
    // Not over other bytes; not in another namespace.
    assert_eq!(
        trusted.verify(b"other bytes", Some(&sig), now),
        Verdict::Untrusted {
            reason: UntrustedReason::BadSignature {
                signer: "host-b".into(),
                fingerprint
            }
        }
    );
    assert_eq!(
        trusted.verify(BYTES, Some(&sign("file")), now),
        Verdict::Untrusted {
            reason: UntrustedReason::WrongNamespace {
                namespace: "file".into()
            }
        }
    );
}

#[test]
fn a_signing_key_others_can_read_or_with_a_passphrase_is_refused() {
    let sb = Sandbox::new();
    let key = sb.path("signing.key");
    keygen_signing(&sb, &key, "host-a");
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = offsite::signing::read_signing_key(&key)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is readable by group or others"),
            "{mode:o}: {e}"
        );
        assert!(
            e.contains(&format!("chmod 600 {}", key.display())),
            "{mode:o}: {e}"
        );
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    offsite::signing::read_signing_key(&key).unwrap();

    let locked = sb.path("locked.key");
    let st = ssh_keygen()
        .args(["-q", "-t", "ed25519", "-N", "pass", "-C", "locked", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    assert!(st.success());
    let e = offsite::signing::read_signing_key(&locked)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "the signing key {} is protected by a passphrase",
            locked.display()
        )),
        "{e}"
    );
    let text = std::fs::read_to_string(&locked).unwrap();
    assert!(!e.contains(text.lines().nth(1).unwrap()), "{e}");

    let e = offsite::signing::read_signing_key(&sb.path("missing.key"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read the signing key") && e.contains("offsite keygen --signing"),
        "{e}"
    );
    // The public half is not a signing key.
    let public = sb.path("locked.key.pub");
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = offsite::signing::read_signing_key(&public)
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds a public key, not the private key"), "{e}");
}

#[test]
fn keygen_signing_needs_a_file_never_overwrites_and_speaks_json() {
    let sb = Sandbox::new();
    let o = sb.cmd().args(["keygen", "--signing"]).output().unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("keygen --signing needs -o FILE"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "nothing printed: {}", stdout(&o));
    let o = sb
        .cmd()
        .args(["keygen", "--comment", "x", "-o"])
        .arg(sb.path("k"))
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(!sb.path("k").exists());

    let key = sb.path("signing.key");
    let o = sb
        .cmd()
        .args(["--json", "keygen", "--signing", "-o"])
        .arg(&key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let public = v["public_key"].as_str().unwrap();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{v}");
    // The default comment names this host.
    assert!(
        public
            .split_whitespace()
            .nth(2)
            .unwrap()
            .starts_with("offsite@"),
        "{public}"
    );
    assert_eq!(v["key_file"], key.display().to_string());
    let before = std::fs::read(&key).unwrap();
    let o = sb
        .cmd()
        .args(["keygen", "--signing", "-o"])
        .arg(&key)
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("already exists; offsite never overwrites a key file"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);
    let o = sb.cmd().args(["keygen", "--help"]).output().unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).contains("--signing"), "{}", stdout(&o));
}

#[test]
fn validity_windows_end_where_ssh_keygen_ends_them() {
    let sb = Sandbox::new();
    let key = sb.path("signing.key");
    let public = keygen_signing(&sb, &key, "host-a");
    let signing = offsite::signing::read_signing_key(&key).unwrap();
    std::fs::write(sb.path("bytes"), BYTES).unwrap();
    std::fs::write(sb.path("bytes.sig"), signing.sign(BYTES)).unwrap();
    let allowed = format!(
        "host-a valid-after=\"20260101Z\",valid-before=\"20261126020000Z\" ssh-ed25519 {}\n",
        public.split_whitespace().nth(1).unwrap()
    );
    std::fs::write(sb.path("allowed_signers"), &allowed).unwrap();
    let trusted =
        TrustedSigners::parse(&[], "trusted", Some((&allowed, "allowed_signers"))).unwrap();
    let sig = std::fs::read_to_string(sb.path("bytes.sig")).unwrap();
    for (time, rfc3339, good) in [
        ("20261126020000Z", "2026-11-26T02:00:00Z", true),
        ("20261126020001Z", "2026-11-26T02:00:01Z", false),
        ("20260101000000Z", "2026-01-01T00:00:00Z", true),
        ("20251231235959Z", "2025-12-31T23:59:59Z", false),
    ] {
        let o = ssh_keygen()
            .args(["-Y", "verify", "-f"])
            .arg(sb.path("allowed_signers"))
            .args(["-I", "host-a", "-n", NAMESPACE, "-s"])
            .arg(sb.path("bytes.sig"))
            .arg(format!("-Overify-time={time}"))
            .stdin(std::fs::File::open(sb.path("bytes")).unwrap())
            .output()
            .unwrap();
        assert_eq!(
            o.status.success(),
            good,
            "ssh-keygen at {time}: {}",
            stderr(&o)
        );
        let at = chrono::DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&chrono::Utc);
        let verdict = trusted.verify(BYTES, Some(&sig), at);
        assert_eq!(
            matches!(verdict, Verdict::Trusted { .. }),
            good,
            "offsite at {time}: {verdict:?}"
        );
    }
}

// Push signs its manifests (issue 27): a format-2 envelope over the format-1 manifest's exact
// bytes. Readers do not check signatures yet; they read signed manifests as unsigned ones.

/// A signing key for `host-a` and an `allowed_signers` file trusting it in NAMESPACE.
fn host_a(sb: &Sandbox) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = sb.path("keys/signing.key");
    let public = keygen_signing(sb, &key, "host-a");
    let body = public.split_whitespace().nth(1).unwrap();
    let allowed = sb.path("allowed_signers");
    std::fs::write(
        &allowed,
        format!("host-a namespaces=\"{NAMESPACE}\" ssh-ed25519 {body}\n"),
    )
    .unwrap();
    (key, allowed)
}

/// The envelope's `signed` text and `signature`, written to files as `jq -j .signed` and
/// `jq -r .signature` would.
fn envelope_parts(
    sb: &Sandbox,
    m: &serde_json::Value,
    tag: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    assert_eq!(m["format"], 2, "{m}");
    let signed = m["signed"].as_str().expect("signed is a string");
    let signature = m["signature"].as_str().expect("signature is a string");
    assert!(
        signature.starts_with("-----BEGIN SSH SIGNATURE-----"),
        "{signature}"
    );
    let inner: serde_json::Value = serde_json::from_str(signed).unwrap();
    assert_eq!(inner["format"], 1, "{inner}");
    let (bytes, sig) = (
        sb.path(&format!("{tag}.bytes")),
        sb.path(&format!("{tag}.sig")),
    );
    std::fs::write(&bytes, signed).unwrap();
    std::fs::write(&sig, format!("{}\n", signature.trim_end())).unwrap();
    (bytes, sig)
}

/// `ls`, `verify --deep` and `restore --latest` read a signed archive as an unsigned one.
fn readers_work(sb: &Sandbox, url: &str, src: &Path) {
    let o = sb.cmd().args(["ls", url]).output().unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).contains("complete"), "{}", stdout(&o));
    let o = sb
        .cmd()
        .args(["verify", "--deep", url, "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let back = sb.path("back");
    let _ = std::fs::remove_file(&back);
    let o = sb
        .cmd()
        .args(["restore", url, "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&back), sha256_file(src));
}

#[test]
fn push_sign_with_writes_a_signed_envelope_ssh_keygen_verifies() {
    let sb = Sandbox::new();
    let (key, allowed) = host_a(&sb);
    let src = sb.archive(NAME, 100_000, 3);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &sb.url("a"), "--sign-with"])
        .arg(&key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let m = manifest(&sb.path("a"), NAME);
    assert_eq!(
        m.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["format", "signature", "signed"],
        "{m}"
    );
    let (bytes, sig) = envelope_parts(&sb, &m, "a");
    let inner: serde_json::Value = serde_json::from_slice(&std::fs::read(&bytes).unwrap()).unwrap();
    assert_eq!(inner["archive"], NAME);
    assert_eq!(inner["plaintext"]["sha256"], sha256_file(&src));
    let o = ssh_verify(&allowed, "host-a", &sig, &bytes);
    assert!(
        o.status.success(),
        "ssh-keygen -Y verify: {} {}",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("Good \"offsite-manifest\" signature for host-a"),
        "{}",
        stdout(&o)
    );
    readers_work(&sb, &sb.url("a"), &src);

    // Another archive's manifest, signed by the same key: its signature does not verify this
    // one's bytes, nor this one's signature those.
    let other_name = "app-backup-20261127_020000.tar.gz";
    let other = sb.archive(other_name, 1000, 4);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&other)
        .args(["-r", &sb.recipient, "--to", &sb.url("a")])
        .env("OFFSITE_SIGNING_KEY_FILE", &key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let (other_bytes, other_sig) = envelope_parts(&sb, &manifest(&sb.path("a"), other_name), "b");
    assert!(ssh_verify(&allowed, "host-a", &other_sig, &other_bytes)
        .status
        .success());
    let o = ssh_verify(&allowed, "host-a", &other_sig, &bytes);
    assert!(!o.status.success(), "{}", stdout(&o));
    let o = ssh_verify(&allowed, "host-a", &sig, &other_bytes);
    assert!(!o.status.success(), "{}", stdout(&o));
    // The library agrees: trusting the same allowed_signers, it refuses the other's signature.
    let trusted = TrustedSigners::parse(
        &[],
        "t",
        Some((
            &std::fs::read_to_string(&allowed).unwrap(),
            "allowed_signers",
        )),
    )
    .unwrap();
    let sig_text = std::fs::read_to_string(&other_sig).unwrap();
    assert!(matches!(
        trusted.verify(
            &std::fs::read(&bytes).unwrap(),
            Some(&sig_text),
            chrono::Utc::now()
        ),
        Verdict::Untrusted { .. }
    ));

    // Without a key, push writes the plain format-1 manifest as before.
    let plain = "app-backup-20261128_020000.tar.gz";
    let o = sb.push(&sb.archive(plain, 10, 5), &["a"]);
    assert_code(&o, 0);
    let m = manifest(&sb.path("a"), plain);
    assert_eq!(m["format"], 1, "{m}");
    assert!(m.get("signature").is_none(), "{m}");
    let o = sb.cmd().args(["ls", &sb.url("a")]).output().unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o).matches("complete").count(), 3, "{}", stdout(&o));
}

#[test]
fn a_policy_signing_key_file_signs_and_plan_names_it() {
    let sb = Sandbox::new();
    let (key, allowed) = host_a(&sb);
    let policy = sb.path("policy.toml");
    let write = |key: &Path| {
        std::fs::write(
            &policy,
            format!(
                "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{}\"]\n[[destination]]\nname = \"local\"\nurl = \"{}\"\n[signing]\nkey-file = \"{}\"\n",
                sb.recipient,
                sb.url("a"),
                key.display()
            ),
        )
        .unwrap()
    };
    write(&key);
    let o = policy_run(sb.cmd(), &["plan"], &policy);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains(&format!("signing: manifests signed with {}", key.display())),
        "{}",
        stdout(&o)
    );
    let src = sb.archive(NAME, 5000, 6);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let (bytes, sig) = envelope_parts(&sb, &manifest(&sb.path("a"), NAME), "p");
    let o = ssh_verify(&allowed, "host-a", &sig, &bytes);
    assert!(o.status.success(), "{} {}", stdout(&o), stderr(&o));
    readers_work(&sb, &sb.url("a"), &src);

    // --sign-with beside a policy is refused, as push's other URL-mode flags are.
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .arg("--policy")
        .arg(&policy)
        .arg("--sign-with")
        .arg(&key)
        .output()
        .unwrap();
    assert_code(&o, 2);
    // ... and so is OFFSITE_SIGNING_KEY_FILE beside OFFSITE_POLICY.
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .env("OFFSITE_POLICY", &policy)
        .env("OFFSITE_SIGNING_KEY_FILE", &key)
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(stderr(&o).contains("[signing]"), "{}", stderr(&o));

    // A key file that cannot be read fails plan and push alike, naming it.
    let missing = sb.path("keys/none.key");
    write(&missing);
    let o = policy_run(sb.cmd(), &["plan"], &policy);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains(&missing.display().to_string()),
        "{}",
        stderr(&o)
    );
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("offsite keygen --signing"),
        "{}",
        stderr(&o)
    );
}

/// A policy over `a` (and `b`, its replica-less second destination) signing with `key`, or
/// with no `[signing]` when `key` is `None`.
fn sign_policy(sb: &Sandbox, key: Option<&Path>) -> std::path::PathBuf {
    let policy = sb.path("sign-policy.toml");
    let signing = key
        .map(|k| format!("[signing]\nkey-file = \"{}\"\n", k.display()))
        .unwrap_or_default();
    std::fs::write(
        &policy,
        format!(
            "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{}\"]\n[[destination]]\nname = \"first\"\nurl = \"{}\"\n[[destination]]\nname = \"second\"\nurl = \"{}\"\n{signing}",
            sb.recipient,
            sb.url("a"),
            sb.url("b"),
        ),
    )
    .unwrap();
    policy
}

fn sign_run(sb: &Sandbox, policy: &Path, extra: &[&str]) -> std::process::Output {
    sb.cmd()
        .arg("sign")
        .arg("--policy")
        .arg(policy)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn sign_adopts_unsigned_history_after_checking_the_bytes() {
    let sb = Sandbox::new();
    let (key, allowed) = host_a(&sb);
    let src = sb.archive(NAME, 50_000, 7);
    assert_code(&sb.push(&src, &["a", "b"]), 0);
    let bad_name = "app-backup-20261127_020000.tar.gz";
    let bad = sb.archive(bad_name, 20_000, 8);
    assert_code(&sb.push(&bad, &["a"]), 0);
    let before = |dir: &str, name: &str| {
        std::fs::read(sb.path(dir).join(format!("{name}.manifest.json"))).unwrap()
    };
    let plain_a = before("a", NAME);
    let plain_bad = before("a", bad_name);

    // No [signing] in the policy: exit 2 naming what to add, nothing written.
    let o = sign_run(&sb, &sign_policy(&sb, None), &[]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("key-file"), "{}", stderr(&o));
    let policy = sign_policy(&sb, Some(&key));

    // A flipped byte in one data object: that archive is not signed, and the exit code is 4.
    let object = sb.path("a").join(format!("{bad_name}.age"));
    let mut data = std::fs::read(&object).unwrap();
    data[100] ^= 0x01;
    std::fs::write(&object, data).unwrap();

    // --dry-run checks and writes nothing.
    let o = sign_run(&sb, &policy, &["--dry-run"]);
    assert_code(&o, 4);
    assert!(
        stdout(&o).contains("would sign 2, skipped 1"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("would-sign"), "{}", stdout(&o));
    assert_eq!(before("a", NAME), plain_a);
    assert_eq!(before("a", bad_name), plain_bad);

    let o = sign_run(&sb, &policy, &[]);
    assert_code(&o, 4);
    assert!(stdout(&o).contains("signed 2, skipped 1"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("stored bytes do not match the manifest: not signed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(before("a", bad_name), plain_bad);
    for dir in ["a", "b"] {
        let m = manifest(&sb.path(dir), NAME);
        let (bytes, sig) = envelope_parts(&sb, &m, dir);
        // Exactly the bytes push stored, not a field changed.
        if dir == "a" {
            assert_eq!(std::fs::read(&bytes).unwrap(), plain_a);
        }
        let o = ssh_verify(&allowed, "host-a", &sig, &bytes);
        assert!(o.status.success(), "{} {}", stdout(&o), stderr(&o));
    }
    readers_work(&sb, &sb.url("b"), &src);

    // Again: the good copies are already signed, the damaged one still refused.
    let o = sign_run(&sb, &policy, &["--json"]);
    assert_code(&o, 4);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let outcomes: Vec<_> = v["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["archive"].as_str().unwrap().to_string(),
                c["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|(_, o)| o == "already-signed")
            .count(),
        2,
        "{v}"
    );
    assert!(
        outcomes.contains(&(bad_name.to_string(), "damaged".to_string())),
        "{v}"
    );
    assert_eq!(v["exit"], 4);

    // Repaired (the flipped byte restored): with -i the plaintext is checked too, then signed.
    let mut data = std::fs::read(&object).unwrap();
    data[100] ^= 0x01;
    std::fs::write(&object, data).unwrap();
    let o = sign_run(&sb, &policy, &["-i", sb.key.to_str().unwrap()]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("signed 1, skipped 2 (2 already signed"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("decrypted"), "{}", stdout(&o));
    let o = sign_run(&sb, &policy, &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("already signed"), "{}", stdout(&o));
    assert!(stdout(&o).contains("signed 0, skipped 3"), "{}", stdout(&o));
    readers_work(&sb, &sb.url("a"), &bad);
}

#[test]
fn push_refuses_a_signing_key_others_can_read_and_writes_nothing() {
    let sb = Sandbox::new();
    let (key, _) = host_a(&sb);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let src = sb.archive(NAME, 1000, 7);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &sb.url("a"), "--sign-with"])
        .arg(&key)
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains(&format!("chmod 600 {}", key.display())),
        "{}",
        stderr(&o)
    );
    assert!(!sb.path("a").exists() || visible_files(&sb.path("a")).is_empty());
    // Nothing spooled either: the key is read before the source.
    assert!(visible_files(&sb.path("cache/spool")).is_empty());
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn push_signs_manifests_on_seaweedfs() {
    let sb = Sandbox::new();
    let (key, allowed) = host_a(&sb);
    let name = bucket("sign");
    let store = crate::s3::store("OFFSITE_TEST_SEAWEEDFS", &name, "app", false).await;
    let url = format!(
        "s3://{name}/app?endpoint={}",
        emulator("OFFSITE_TEST_SEAWEEDFS")
    );
    let src = sb.archive(NAME, 200_000, 8);

    // A key others can read: exit 2, and nothing in the bucket.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = sb
        .s3_cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url, "--sign-with"])
        .arg(&key)
        .output()
        .unwrap();
    assert_code(&o, 2);
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    let listed = offsite_storage::StorageExt::list_all(&store, "")
        .await
        .unwrap();
    assert!(listed.is_empty(), "{listed:?}");

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = sb
        .s3_cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url, "--sign-with"])
        .arg(&key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let bytes = offsite_storage::StorageExt::get_bytes(&store, &format!("{NAME}.manifest.json"))
        .await
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let (signed, sig) = envelope_parts(&sb, &m, "s3");
    let o = ssh_verify(&allowed, "host-a", &sig, &signed);
    assert!(o.status.success(), "{} {}", stdout(&o), stderr(&o));
    for args in [
        vec!["ls", url.as_str()],
        vec!["verify", "--deep", url.as_str(), "-i"],
        vec!["restore", url.as_str(), "--latest", "-o", "back", "-i"],
    ] {
        let mut c = sb.s3_cmd();
        c.args(&args);
        if args.last() == Some(&"-i") {
            c.arg(&sb.key);
        }
        let o = c.output().unwrap();
        assert_code(&o, 0);
    }
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn sign_adopts_unsigned_history_on_seaweedfs() {
    let sb = Sandbox::new();
    let (key, allowed) = host_a(&sb);
    let name = bucket("adopt");
    let store = crate::s3::store("OFFSITE_TEST_SEAWEEDFS", &name, "app", false).await;
    let url = format!(
        "s3://{name}/app?endpoint={}",
        emulator("OFFSITE_TEST_SEAWEEDFS")
    );
    let src = sb.archive(NAME, 120_000, 9);
    let o = sb
        .s3_cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", &sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let manifest_key = format!("{NAME}.manifest.json");
    let unsigned = offsite_storage::StorageExt::get_bytes(&store, &manifest_key)
        .await
        .unwrap();
    let policy = sb.path("s3-sign.toml");
    std::fs::write(
        &policy,
        format!(
            "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{}\"]\n[[destination]]\nname = \"primary\"\nurl = \"{url}\"\n[signing]\nkey-file = \"{}\"\n",
            sb.recipient,
            key.display()
        ),
    )
    .unwrap();
    let sign = |extra: &[&str]| {
        sb.s3_cmd()
            .arg("sign")
            .arg("--policy")
            .arg(&policy)
            .args(extra)
            .output()
            .unwrap()
    };

    let o = sign(&[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("signed 1, skipped 0"), "{}", stdout(&o));
    let bytes = offsite_storage::StorageExt::get_bytes(&store, &manifest_key)
        .await
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(m["format"], 2, "{m}");
    // The signed text is the manifest push stored, byte for byte.
    assert_eq!(m["signed"].as_str().unwrap().as_bytes(), &unsigned[..]);
    let (signed, sig) = envelope_parts(&sb, &m, "s3");
    let o = ssh_verify(&allowed, "host-a", &sig, &signed);
    assert!(o.status.success(), "{} {}", stdout(&o), stderr(&o));

    // Again: nothing left to sign; and the archive still restores.
    let o = sign(&[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("already"), "{}", stdout(&o));
    let o = sb
        .s3_cmd()
        .args(["restore", url.as_str(), "--latest", "-o", "back", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("back")), sha256_file(&src));
}

// Writers that check what they sign and who reads it (issue 27): replicate copies only what a
// trusted key signed and signs each replica; verification records are signed and bound to
// their copy; a host whose key readers do not trust is refused before it writes.

/// A public line of a fresh key `comment`, its key file beside.
fn another_key(sb: &Sandbox, file: &str, comment: &str) -> (std::path::PathBuf, String) {
    let key = sb.path(file);
    let public = keygen_signing(sb, &key, comment);
    (key, public)
}

#[test]
fn replicate_copies_only_trusted_archives_and_signs_each_replica() {
    let sb = Sandbox::new();
    let (key_a, allowed) = host_a(&sb);
    let (replicator, rep_public) = another_key(&sb, "keys/replicator.key", "replicator");
    let (mallory, _) = another_key(&sb, "keys/mallory.key", "mallory");
    let trusted = sb.path("trusted");
    std::fs::write(
        &trusted,
        format!(
            "{}replicator ssh-ed25519 {}\n",
            std::fs::read_to_string(&allowed)
                .unwrap()
                .replace(&format!("namespaces=\"{NAMESPACE}\" "), ""),
            rep_public.split_whitespace().nth(1).unwrap()
        ),
    )
    .unwrap();
    let good = sb.archive(NAME, 30_000, 11);
    let signed_push = |file: &Path, key: &Path| {
        sb.cmd()
            .arg("push")
            .arg(file)
            .args(["-r", &sb.recipient, "--to", &sb.url("src"), "--sign-with"])
            .arg(key)
            .output()
            .unwrap()
    };
    assert_code(&signed_push(&good, &key_a), 0);
    let planted_name = "app-backup-20261127_020000.tar.gz";
    let planted = sb.archive(planted_name, 500, 12);
    assert_code(&sb.push_via(sb.cmd(), &planted, &sb.url("src")), 0);
    let forged_name = "app-backup-20261128_020000.tar.gz";
    assert_code(&signed_push(&sb.archive(forged_name, 400, 13), &mallory), 0);

    let replicate = |extra: &[&str]| {
        sb.cmd()
            .arg("replicate")
            .args([&sb.url("src"), &sb.url("dst"), "--trusted-file"])
            .arg(&trusted)
            .args(extra)
            .output()
            .unwrap()
    };
    // Trusting keys, replicate needs a key of its own, and a trusted one.
    let o = replicate(&[]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("no key to sign replicas"),
        "{}",
        stderr(&o)
    );
    let o = replicate(&["--sign-with", mallory.to_str().unwrap()]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("not among the trusted keys"),
        "{}",
        stderr(&o)
    );
    assert!(!sb.path("dst").exists() || visible_files(&sb.path("dst")).is_empty());

    let o = replicate(&["--sign-with", replicator.to_str().unwrap()]);
    assert_code(&o, 4);
    let text = stdout(&o);
    assert!(text.contains(&format!("copied         {NAME}")), "{text}");
    for name in [planted_name, forged_name] {
        assert!(
            text.contains(&format!(
                "untrusted      {name}: the source's manifest is untrusted"
            )),
            "{text}"
        );
        assert!(!sb
            .path("dst")
            .join(format!("{name}.manifest.json"))
            .exists());
    }
    assert!(text.contains("2 source archive(s) untrusted"), "{text}");

    // The replica's manifest is the replicator's signature over the same archive, which stock
    // ssh-keygen accepts for the principal `replicator`.
    let (bytes, sig) = envelope_parts(&sb, &manifest(&sb.path("dst"), NAME), "replica");
    let o = ssh_verify(&trusted, "replicator", &sig, &bytes);
    assert!(o.status.success(), "{} {}", stdout(&o), stderr(&o));
    let inner: serde_json::Value = serde_json::from_slice(&std::fs::read(&bytes).unwrap()).unwrap();
    assert_eq!(inner["plaintext"]["sha256"], sha256_file(&good));
    let o = sb
        .cmd()
        .args(["ls", "--json", &sb.url("dst"), "--trusted-file"])
        .arg(&trusted)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v = ls_lines(&o.stdout);
    assert_eq!(v["archives"][0]["signature"], "trusted", "{v}");
    assert_eq!(v["archives"][0]["signer"], "replicator", "{v}");
}

#[test]
fn a_drill_record_counts_only_when_a_trusted_key_signed_it_for_that_copy() {
    let sb = Sandbox::new();
    let (key, public) = another_key(&sb, "keys/host.key", "host-a");
    let policy = sb.path("p.toml");
    let write = |signing: &str| {
        std::fs::write(
            &policy,
            format!(
                "version = 1\nname = \"app\"\nverify-every = \"7d\"\n[encryption]\nrecipients = [\"{}\"]\n[[destination]]\nname = \"one\"\nurl = \"{}\"\n{signing}",
                sb.recipient,
                sb.url("a"),
            ),
        )
        .unwrap();
    };
    // A reader that trusts keys but has none to sign with cannot drill: its records would
    // not count.
    write(&format!("[signing]\ntrusted = [\"{public}\"]\n"));
    let o = policy_run(
        sb.cmd(),
        &["drill", "-i", sb.key.to_str().unwrap()],
        &policy,
    );
    assert_code(&o, 2);
    assert!(stderr(&o).contains("no key to sign with"), "{}", stderr(&o));

    write(&format!(
        "[signing]\nkey-file = \"{}\"\ntrusted = [\"{public}\"]\n",
        key.display()
    ));
    let name = "app-backup-20261201_020000.tar.gz";
    let src = sb.archive(name, 4000, 21);
    assert_code(
        &policy_run(sb.cmd(), &["push", src.to_str().unwrap()], &policy),
        0,
    );
    let o = policy_run(sb.cmd(), &["status"], &policy);
    assert_code(&o, 3);
    let o = policy_run(
        sb.cmd(),
        &["drill", "-i", sb.key.to_str().unwrap()],
        &policy,
    );
    assert_code(&o, 0);
    let record_path = sb.path("a").join(format!("{name}.verified.json"));
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    let inner: serde_json::Value =
        serde_json::from_str(record["signed"].as_str().unwrap()).unwrap();
    assert_eq!(inner["archive"], name);
    assert_eq!(inner["result"], "ok");
    let o = policy_run(sb.cmd(), &["status"], &policy);
    assert_code(&o, 0);

    // A bucket writer's forgeries: the record unsigned, or a signed record of another copy.
    std::fs::write(&record_path, inner.to_string()).unwrap();
    let o = policy_run(sb.cmd(), &["status"], &policy);
    assert_code(&o, 3);
    assert!(
        stderr(&o).contains("no deep verify or drill ever proved a copy at one"),
        "{}",
        stderr(&o)
    );
    let mut moved = inner.clone();
    moved["stored-sha256"] = serde_json::Value::from("00".repeat(32));
    let again = policy_run(
        sb.cmd(),
        &["drill", "-i", sb.key.to_str().unwrap()],
        &policy,
    );
    assert_code(&again, 0);
    assert_code(&policy_run(sb.cmd(), &["status"], &policy), 0);
    let resigned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    // Edit the signed text: the signature no longer covers it.
    let mut tampered = resigned.clone();
    tampered["signed"] = serde_json::Value::from(moved.to_string());
    std::fs::write(&record_path, tampered.to_string()).unwrap();
    let o = policy_run(sb.cmd(), &["status"], &policy);
    assert_code(&o, 3);
}

#[test]
fn a_host_whose_key_readers_do_not_trust_is_refused_before_it_writes() {
    let sb = Sandbox::new();
    let (key, _) = another_key(&sb, "keys/new.key", "new-host");
    let (_, other_public) = another_key(&sb, "keys/other.key", "host-a");
    let policy = sb.path("p.toml");
    std::fs::write(
        &policy,
        format!(
            "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{}\"]\n[[destination]]\nname = \"one\"\nurl = \"{}\"\n[signing]\nkey-file = \"{}\"\ntrusted = [\"{other_public}\"]\n",
            sb.recipient,
            sb.url("a"),
            key.display()
        ),
    )
    .unwrap();
    let src = sb.archive(NAME, 100, 1);
    for args in [vec!["push", src.to_str().unwrap()], vec!["plan"]] {
        let o = policy_run(sb.cmd(), &args, &policy);
        assert_code(&o, 2);
        let e = stderr(&o);
        assert!(
            e.contains("is not among policy `app`'s trusted keys"),
            "{e}"
        );
        assert!(e.contains("ssh-ed25519 AAAA"), "names the line to add: {e}");
        assert!(!e.contains("PRIVATE KEY"), "{e}");
    }
    assert!(!sb.path("a").exists() || visible_files(&sb.path("a")).is_empty());
}
