//! Interoperability with the real `age` CLI and SSH keys: what offsite stores is readable with
//! stock tools, and the manifest's digests are the ones those tools compute.

use std::process::Command as Std;

use crate::common::*;

fn have(tool: &str) -> bool {
    Std::new(tool).arg("--version").output().is_ok()
        || Std::new("which")
            .arg(tool)
            .status()
            .is_ok_and(|s| s.success())
}

#[test]
fn age_cli_decrypts_what_offsite_stored() {
    assert!(
        have("age"),
        "the age CLI is required (tests/run installs the Debian package)"
    );
    let sb = Sandbox::new();
    let src = sb.archive(NAME, 1_234_567, 9);
    assert_code(&sb.push(&src, &["a"]), 0);
    let obj = sb.path("a").join(format!("{NAME}.age"));
    let out = Std::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&sb.key)
        .arg("-o")
        .arg(sb.path("plain"))
        .arg(&obj)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(sb.path("plain")).unwrap(),
        std::fs::read(&src).unwrap()
    );
    let m = manifest(&sb.path("a"), NAME);
    assert_eq!(m["plaintext"]["sha256"], sha256_file(&sb.path("plain")));
}

#[test]
fn offsite_restores_what_age_cli_encrypted_to_an_ssh_key() {
    assert!(have("ssh-keygen"), "ssh-keygen is required");
    let sb = Sandbox::new();
    let key = sb.path("id_ed25519");
    let st = Std::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let src = sb.archive(NAME, 500_000, 2);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-r", pubkey.trim(), "--to", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let m = manifest(&sb.path("a"), NAME);
    assert!(m["encryption"]["recipients"][0]
        .as_str()
        .unwrap()
        .starts_with("ssh-ed25519 "));
    // offsite restores with the SSH private key...
    let o = sb
        .cmd()
        .args(["restore", &sb.url("a"), "--latest", "-o", "r1", "-i"])
        .arg(&key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("r1")), sha256_file(&src));
    // ...and so does the age CLI.
    let out = Std::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key)
        .arg("-o")
        .arg(sb.path("r2"))
        .arg(sb.path("a").join(format!("{NAME}.age")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha256_file(&sb.path("r2")), sha256_file(&src));
}

#[test]
fn recipients_file_with_several_keys_lets_each_identity_restore() {
    let sb = Sandbox::new();
    let second = sb.path("second.txt");
    let o = sb
        .cmd()
        .arg("keygen")
        .arg("-o")
        .arg(&second)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let r2 = stdout(&o).trim().to_string();
    std::fs::write(
        sb.path("recipients.txt"),
        format!("# ops team\n{}\n\n{r2}\n", sb.recipient),
    )
    .unwrap();
    let src = sb.archive(NAME, 10_000, 1);
    let o = sb
        .cmd()
        .arg("push")
        .arg(&src)
        .args(["-R", "recipients.txt", "--to", &sb.url("a")])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = sb
        .cmd()
        .args(["restore", &sb.url("a"), "--latest", "-o", "r", "-i"])
        .arg(&second)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(sha256_file(&sb.path("r")), sha256_file(&src));
}
