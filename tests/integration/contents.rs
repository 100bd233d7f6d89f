//! Drills and deep verify that open a tar (plain, gzip, zstd, decided by the bytes), partial
//! restore (`--extract`, `--list`) and `restore --metadata`, end to end on file://, S3
//! (s3s-fs) and Azurite.

use std::io::Write;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

use crate::common::*;

const SITE: &str = "site-20261120_020000.tar.zst";
const BROKEN: &str = "app-20261126_020000.tar.gz";
const RANDOM: &str = "db-20261127_020000.tar.gz";

/// A tar of `files` (path, data); a path ending in `/` is a directory.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
        } else {
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
        }
        h.set_cksum();
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zst(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}

/// Data that does not compress, so that a cut falls inside a member.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    offsite_storage::conformance::pattern(len, seed).to_vec()
}

/// A site's tree: two files under src/patterns (one in a sub-directory), one beside it, a
/// README.
fn site_tar() -> Vec<u8> {
    tar_of(&[
        ("src/", b""),
        ("src/patterns/", b""),
        ("src/patterns/a.txt", b"pattern a"),
        ("src/patterns/deep/b.txt", b"pattern b"),
        ("src/other.txt", b"other"),
        ("README", b"readme"),
    ])
}

/// A tar with a raw header path (the builder refuses `..`, a hostile tool does not).
fn hostile_tar(path: &str, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut ok = tar::Header::new_gnu();
    ok.set_size(2);
    ok.set_mode(0o644);
    ok.set_cksum();
    b.append_data(&mut ok, "src/fine.txt", &b"ok"[..]).unwrap();
    let mut h = tar::Header::new_old();
    let name = &mut h.as_old_mut().name;
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    let data: &[u8] = if link.is_some() { b"" } else { b"evil" };
    h.set_size(data.len() as u64);
    if let Some(l) = link {
        let ln = &mut h.as_old_mut().linkname;
        ln[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

/// Where a scenario runs: the command with the provider's environment, and the URL.
struct Place<'a> {
    sb: &'a Sandbox,
    url: String,
    env: Vec<(&'static str, String)>,
}

impl Place<'_> {
    fn cmd(&self) -> Command {
        let mut c = self.sb.cmd();
        c.env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        c
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.sb.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn push(&self, file: &Path, extra: &[&str]) {
        let o = self
            .cmd()
            .arg("push")
            .arg(file)
            .args(["-r", &self.sb.recipient, "--to", &self.url])
            .args(extra)
            .output()
            .unwrap();
        assert_code(&o, 0);
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd()
            .args(args)
            .arg("-i")
            .arg(&self.sb.key)
            .output()
            .unwrap()
    }

    fn restore(&self, args: &[&str]) -> std::process::Output {
        self.cmd()
            .args(["restore", &self.url])
            .args(args)
            .arg("-i")
            .arg(&self.sb.key)
            .output()
            .unwrap()
    }

    fn policy(&self) -> PathBuf {
        let p = self.sb.path("policy.toml");
        std::fs::write(
            &p,
            format!(
                "version = 1\nname = \"app\"\n\n[encryption]\nrecipients = [\"{}\"]\n\n\
                 [[destination]]\nname = \"here\"\nurl = \"{}\"\n",
                self.sb.recipient, self.url
            ),
        )
        .unwrap();
        p
    }

    fn drill(&self) -> std::process::Output {
        let p = self.policy();
        self.cmd()
            .args(["--json", "drill", "--policy"])
            .arg(&p)
            .arg("-i")
            .arg(&self.sb.key)
            .output()
            .unwrap()
    }
}

/// The whole story at one place: a good tar.zst (with metadata) opened, listed, extracted in
/// part and its metadata read; a broken tar.gz whose hashes match failing drill and deep
/// verify; random bytes named .tar.gz a warning.
fn scenario(p: &Place<'_>) {
    let sb = p.sb;
    // A good zstd tar, with the backup job's metadata.
    let site = p.write(SITE, &zst(&site_tar()));
    let meta = sb.path("metadata.json");
    std::fs::write(&meta, br#"{"version": "4.2.0", "host": "web1"}"#).unwrap();
    p.push(&site, &["--metadata", meta.to_str().unwrap()]);

    let o = p.run(&["--json", "verify", "--deep", &p.url]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let c = &v["copies"][0]["contents"];
    assert_eq!(
        (
            c["opened"].as_bool(),
            c["format"].as_str(),
            c["members"].as_u64()
        ),
        (Some(true), Some("tar.zst"), Some(6)),
        "{v}"
    );
    assert_eq!(c["bytes"], 9 + 9 + 5 + 6, "{v}");

    // --metadata: read from the manifest, nothing downloaded, no -o.
    let o = p.restore(&["--archive", SITE, "--metadata"]);
    assert_code(&o, 0);
    let shown: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        shown,
        serde_json::json!({"version": "4.2.0", "host": "web1"})
    );
    assert!(
        stderr(&o).contains("the archive was not downloaded"),
        "{}",
        stderr(&o)
    );

    // --list: every member, nothing written, the hash verified.
    let before = visible_files(sb.dir.path());
    let o = p.restore(&["--archive", SITE, "--list"]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("file                9 src/patterns/deep/b.txt"),
        "{out}"
    );
    assert!(out.contains("dir                 0 src/patterns/"), "{out}");
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(
        stderr(&o).contains("verified; nothing was written"),
        "{}",
        stderr(&o)
    );
    assert_eq!(visible_files(sb.dir.path()), before);

    // --extract one directory: only it, at its path in the archive.
    let x = sb.path("x");
    let o = p.restore(&[
        "--archive",
        SITE,
        "-o",
        x.to_str().unwrap(),
        "--extract",
        "./src/patterns/",
    ]);
    assert_code(&o, 0);
    assert_eq!(
        std::fs::read(x.join("src/patterns/a.txt")).unwrap(),
        b"pattern a"
    );
    assert_eq!(
        std::fs::read(x.join("src/patterns/deep/b.txt")).unwrap(),
        b"pattern b"
    );
    assert!(!x.join("src/other.txt").exists());
    assert!(!x.join("README").exists());
    let left: Vec<_> = std::fs::read_dir(&x)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("src")],
        "no staging directory is left"
    );
    assert!(
        stderr(&o).contains("extracted 3 member(s)"),
        "{}",
        stderr(&o)
    );

    // A tar.gz cut short by the backup job: pushed as it is, so every hash matches.
    let good = gz(&tar_of(&[
        ("data/one", &noise(300_000, 1)),
        ("data/two", &noise(300_000, 2)),
    ]));
    let broken = p.write(BROKEN, &good[..good.len() * 2 / 3]);
    p.push(&broken, &[]);
    let o = p.drill();
    assert_code(&o, 4);
    let want = "the bytes match what was pushed, but it is not a readable tar.gz: ";
    assert!(stderr(&o).contains(want), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let copy = &v["copies"][0];
    assert_eq!(
        (copy["archive"].as_str(), copy["verdict"].as_str()),
        (Some(BROKEN), Some("corrupt")),
        "{v}"
    );
    assert_eq!(copy["contents"]["format"], "tar.gz", "{v}");
    let o = p.run(&["verify", "--deep", "--archive", BROKEN, &p.url]);
    assert_code(&o, 4);
    assert!(stdout(&o).contains(want), "{}", stdout(&o));
    // --extract of it: the same finding, nothing written.
    let y = sb.path("y");
    let o = p.restore(&[
        "--archive",
        BROKEN,
        "-o",
        y.to_str().unwrap(),
        "--extract",
        "data",
    ]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains(want), "{}", stderr(&o));
    assert!(!y.exists(), "nothing written");

    // Random bytes named .tar.gz: hashed, not opened, a warning.
    let mut bytes = noise(100_000, 7);
    bytes[0] = 0; // never gzip's or zstd's magic by chance
    let random = p.write(RANDOM, &bytes);
    p.push(&random, &[]);
    let o = p.drill();
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains(&format!(
            "warning: here: {RANDOM} is named like a tar.gz but its bytes are no tar"
        )),
        "{}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["copies"][0]["contents"]["opened"], false, "{v}");
    // --list of it: a clear usage error.
    let o = p.restore(&["--archive", RANDOM, "--list"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("is not a tar"), "{}", stderr(&o));
}

#[test]
fn contents_on_local_disk() {
    let sb = Sandbox::new();
    let p = Place {
        sb: &sb,
        url: sb.url("a"),
        env: Vec::new(),
    };
    scenario(&p);
    // The record beside the manifest says what the drill found inside.
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.path("a").join(format!("{RANDOM}.verified.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["contents"]["opened"], false, "{rec}");
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(sb.path("a").join(format!("{BROKEN}.verified.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["result"], "failed", "{rec}");
    assert_eq!(rec["contents"]["format"], "tar.gz", "{rec}");
    // --metadata never reads the data object: damaging it changes nothing.
    let obj = sb.path("a").join(format!("{SITE}.age"));
    let mut bytes = std::fs::read(&obj).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&obj, bytes).unwrap();
    let o = p.restore(&["--archive", SITE, "--metadata"]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("\"version\": \"4.2.0\""),
        "{}",
        stdout(&o)
    );
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn contents_on_s3() {
    let sb = Sandbox::new();
    let name = bucket("tar");
    let _store = crate::s3::store("OFFSITE_TEST_S3S", &name, "app", false).await;
    let p = Place {
        sb: &sb,
        url: format!("s3://{name}/app?endpoint={}", emulator("OFFSITE_TEST_S3S")),
        env: vec![
            ("AWS_ACCESS_KEY_ID", S3S_ACCESS.into()),
            ("AWS_SECRET_ACCESS_KEY", S3S_SECRET.into()),
            ("AWS_REGION", "us-east-1".into()),
        ],
    };
    scenario(&p);
}

#[cfg(feature = "azure")]
#[tokio::test(flavor = "multi_thread")]
async fn contents_on_azurite() {
    use crate::azure::AZURITE_ACCOUNT;
    let sb = Sandbox::new();
    let container = bucket("tar");
    let _store = crate::azure::store(&container, "app").await;
    let endpoint = emulator("OFFSITE_TEST_AZURITE");
    let p = Place {
        sb: &sb,
        url: format!("az://{AZURITE_ACCOUNT}/{container}/app?endpoint={endpoint}"),
        env: vec![(
            "AZURE_STORAGE_CONNECTION_STRING",
            crate::azure::connection_string(&endpoint),
        )],
    };
    scenario(&p);
}

/// A plain tar is opened too (by its `ustar` signature), and extracting from it refuses a
/// member that climbs out with `..` or a link that points out, naming it, writing nothing.
#[test]
fn plain_tars_open_and_unsafe_members_are_refused() {
    let sb = Sandbox::new();
    let p = Place {
        sb: &sb,
        url: sb.url("a"),
        env: Vec::new(),
    };
    let cases = [
        (
            "up-20261101.tar",
            hostile_tar("src/../../evil", tar::EntryType::Regular, None),
            "member src/../../evil has an absolute path or climbs with `..`",
        ),
        (
            "abs-20261102.tar",
            hostile_tar("/src/evil", tar::EntryType::Regular, None),
            "member /src/evil has an absolute path",
        ),
        (
            "sym-20261103.tar",
            hostile_tar("src/link", tar::EntryType::Symlink, Some("../../outside")),
            "member src/link is a symbolic link to ../../outside, which points outside",
        ),
        (
            "hard-20261104.tar",
            hostile_tar("src/hard", tar::EntryType::Link, Some("../etc/passwd")),
            "member src/hard is a hard link to ../etc/passwd, which is outside",
        ),
    ];
    for (name, bytes, refusal) in &cases {
        let f = p.write(name, bytes);
        p.push(&f, &[]);
        let o = p.run(&["--json", "verify", "--deep", "--archive", name, &p.url]);
        assert_code(&o, 0);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["copies"][0]["contents"]["format"], "tar", "{v}");
        assert_eq!(v["copies"][0]["contents"]["members"], 2, "{v}");

        let x = sb.path("x");
        let o = p.restore(&[
            "--archive",
            name,
            "-o",
            x.to_str().unwrap(),
            "--extract",
            "src",
        ]);
        assert_code(&o, 1);
        assert!(stderr(&o).contains(refusal), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("nothing was written under"),
            "{}",
            stderr(&o)
        );
        assert!(
            !x.exists(),
            "{name}: nothing written, not even the directory"
        );
        assert!(
            !sb.path("evil").exists() && !sb.dir.path().parent().unwrap().join("evil").exists()
        );
    }
    // The safe member alone is extracted from the same archive.
    let x = sb.path("x");
    let o = p.restore(&[
        "--archive",
        "up-20261101.tar",
        "-o",
        x.to_str().unwrap(),
        "--extract",
        "src/fine.txt",
    ]);
    assert_code(&o, 0);
    assert_eq!(std::fs::read(x.join("src/fine.txt")).unwrap(), b"ok");
}

#[test]
fn extract_names_what_matches_nothing_and_never_overwrites() {
    let sb = Sandbox::new();
    let p = Place {
        sb: &sb,
        url: sb.url("a"),
        env: Vec::new(),
    };
    let f = p.write(SITE, &zst(&site_tar()));
    p.push(&f, &[]);
    let x = sb.path("x");
    let xs = x.to_str().unwrap();
    let o = p.restore(&[
        "--latest",
        "-o",
        xs,
        "--extract",
        "src/patterns",
        "--extract",
        "src/nope",
    ]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains(
            "no member of site-20261120_020000.tar.zst is at src/nope; nothing was written under"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!x.exists());

    std::fs::create_dir_all(x.join("src")).unwrap();
    std::fs::write(x.join("src/other.txt"), b"mine").unwrap();
    let o = p.restore(&["--latest", "-o", xs, "--extract", "src"]);
    assert_code(&o, 2);
    assert!(
        stderr(&o).contains("src/other.txt exists"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(x.join("src/other.txt")).unwrap(), b"mine");
    assert!(!x.join("src/patterns").exists(), "nothing put in place");
    let o = p.restore(&["--latest", "-o", xs, "--extract", "src", "--force"]);
    assert_code(&o, 0);
    assert_eq!(std::fs::read(x.join("src/other.txt")).unwrap(), b"other");
    assert_eq!(
        std::fs::read(x.join("src/patterns/a.txt")).unwrap(),
        b"pattern a"
    );

    // --metadata of an archive pushed without it: said, exit 1.
    let o = p.restore(&["--latest", "--metadata"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("was pushed without --metadata"),
        "{}",
        stderr(&o)
    );
}
