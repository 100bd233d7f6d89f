//! Signing keys and SSH signatures against stock OpenSSH (Debian's openssh-client): what
//! `offsite keygen --signing` makes and the library signs, `ssh-keygen -Y verify` accepts, and
//! what `ssh-keygen -Y sign` makes, `TrustedSigners::verify` accepts. Manifests are not
//! signed yet (issue 27); these are the pieces push and the readers will use.

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
