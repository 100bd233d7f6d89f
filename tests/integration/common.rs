//! Shared fixtures: a sandbox directory with a cache dir, a key pair, sample archives.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The SDKs' credential chains probe the metadata service (AWS IMDS, GCE metadata and Azure
/// managed identity all live on 169.254.169.254) when no credentials are set. No test may send
/// traffic there: every offsite a test starts gets these (tests/emulators/README.md).
pub const NO_METADATA_PROBES: [(&str, &str); 2] = [
    ("AWS_EC2_METADATA_DISABLED", "true"),
    // Loopback, where nothing listens on the discard port: a probe fails at once.
    ("GCE_METADATA_HOST", "127.0.0.1:9"),
];
/// Set, these make azure_identity use a managed identity endpoint; tests never do.
pub const NO_MANAGED_IDENTITY: [&str; 3] = ["IDENTITY_ENDPOINT", "MSI_ENDPOINT", "IMDS_ENDPOINT"];

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub recipient: String,
    pub key: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key.txt");
        let out = Command::cargo_bin("offsite")
            .unwrap()
            .envs(NO_METADATA_PROBES)
            .args(["keygen", "-o"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let recipient = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(recipient.starts_with("age1"), "{recipient}");
        Sandbox {
            dir,
            recipient,
            key,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn url(&self, rel: &str) -> String {
        format!("file://{}", self.path(rel).display())
    }

    /// The offsite command with a private cache dir and no inherited identity.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("offsite").unwrap();
        c.env("OFFSITE_CACHE_DIR", self.path("cache"))
            .envs(NO_METADATA_PROBES)
            .env_remove("OFFSITE_IDENTITY_FILE")
            .env_remove("OFFSITE_POLICY")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path());
        for v in NO_MANAGED_IDENTITY {
            c.env_remove(v);
        }
        c
    }

    /// The same, as a std command (for stdin pipes and kills).
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("offsite"));
        c.env("OFFSITE_CACHE_DIR", self.path("cache"))
            .envs(NO_METADATA_PROBES)
            .env_remove("OFFSITE_IDENTITY_FILE")
            .env_remove("OFFSITE_POLICY")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path());
        for v in NO_MANAGED_IDENTITY {
            c.env_remove(v);
        }
        c
    }

    /// Writes `len` pseudo-random bytes to `name` in the sandbox.
    pub fn archive(&self, name: &str, len: usize, seed: u64) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, offsite_storage::conformance::pattern(len, seed)).unwrap();
        p
    }

    /// `push FILE -r RECIPIENT --to URL` through `cmd` (which carries the provider's
    /// environment).
    pub fn push_via(&self, mut cmd: Command, file: &Path, url: &str) -> std::process::Output {
        cmd.arg("push")
            .arg(file)
            .args(["-r", &self.recipient, "--to", url])
            .output()
            .unwrap()
    }

    pub fn push(&self, file: &Path, dests: &[&str]) -> std::process::Output {
        let mut c = self.cmd();
        c.arg("push").arg(file).args(["-r", &self.recipient]);
        for d in dests {
            c.args(["--to", &self.url(d)]);
        }
        c.output().unwrap()
    }
}

/// `cmd ARGS... --policy POLICY`, run to completion.
pub fn policy_run(mut cmd: Command, args: &[&str], policy: &Path) -> std::process::Output {
    cmd.args(args).arg("--policy").arg(policy).output().unwrap()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn code(o: &std::process::Output) -> i32 {
    o.status.code().expect("exited normally")
}

/// Asserts an exit code and prints both streams when it is wrong.
#[track_caller]
pub fn assert_code(o: &std::process::Output, want: i32) {
    assert_eq!(
        code(o),
        want,
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

pub const NAME: &str = "app-backup-20261126_020000.tar.gz";

pub fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(p).unwrap()))
}

pub fn manifest(dir: &Path, name: &str) -> serde_json::Value {
    let p = dir.join(format!("{name}.manifest.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// Visible (non-hidden) files in a directory, sorted.
pub fn visible_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

/// An emulator endpoint started by tests/run; fails (never skips) when it is not there.
pub fn emulator(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: this test needs the emulators that tests/run starts (run tests/run, or eval \"$(tests/emulators/start.sh DIR)\")")
    })
}

/// Runs a Python script in moto's own venv (boto3 there talks to the emulators) and returns
/// its stdout, trimmed; a failing script fails the test with its stderr.
pub fn moto_python(script: &str) -> String {
    let out = std::process::Command::new(emulator("OFFSITE_TEST_MOTO_PYTHON"))
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Static credentials for the loopback emulators (test values, not secrets).
pub const S3S_ACCESS: &str = "offsite-test";
pub const S3S_SECRET: &str = "offsite-test-secret";

/// A bucket name unique to one test.
pub fn bucket(tag: &str) -> String {
    format!("t-{tag}-{:08x}", rand_u32())
}

/// A random number for names that must not collide between tests and runs.
pub fn rand_u32() -> u32 {
    rand::random()
}

/// A 1 MiB tmpfs mounted at `path` (created), unmounted when dropped: a disk that fills up.
/// Mounting needs root, as the suite runs (README "Tests").
pub struct SmallDisk(PathBuf);

impl SmallDisk {
    pub fn mount(path: PathBuf) -> SmallDisk {
        std::fs::create_dir_all(&path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            mounted.success(),
            "this test needs to mount a 1 MiB tmpfs (run as root)"
        );
        SmallDisk(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The emulators' test credentials (S3 servers and Azurite; not secrets), for a command that
/// pushes to several clouds at once.
#[cfg(all(feature = "s3", feature = "azure"))]
pub fn emulator_credentials() -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", S3S_ACCESS.into()),
        ("AWS_SECRET_ACCESS_KEY", S3S_SECRET.into()),
        ("AWS_REGION", "us-east-1".into()),
        (
            "AZURE_STORAGE_CONNECTION_STRING",
            crate::azure::connection_string(&emulator("OFFSITE_TEST_AZURITE")),
        ),
    ]
}

impl Sandbox {
    /// Writes `policy.toml` in the sandbox: a policy named `name` with the top-level lines
    /// `top` (such as `rpo = "26h"` or a `[retention]` table), then `rest` (its `[[snapshots]]`
    /// sections, and any destinations); returns its path.
    pub fn snapshot_policy(&self, name: &str, top: &str, rest: &str) -> PathBuf {
        let p = self.path("policy.toml");
        std::fs::write(&p, format!("version = 1\nname = \"{name}\"\n{top}\n{rest}")).unwrap();
        p
    }
}

/// `ls --json` output, JSON Lines, checked and grouped: every line one object with a `type`,
/// the last one the `summary` (with `exit`) or, for a command that stopped, an `error` with
/// `exit`. Returns `{"archives": [...], "leftovers": [...], "errors": [...], "end": LAST}`,
/// each list in the order printed.
pub fn ls_lines(out: &[u8]) -> serde_json::Value {
    let text = std::str::from_utf8(out).unwrap();
    let mut groups = serde_json::json!({"archives": [], "leftovers": [], "errors": []});
    let mut last = serde_json::Value::Null;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object a line ({e}): {line:?}\n{text}"));
        let group = match v["type"].as_str() {
            Some("archive") => "archives",
            Some("leftover") => "leftovers",
            Some("error") => "errors",
            Some("summary") => "summary",
            other => panic!("a line of type {other:?}: {line}"),
        };
        if group != "summary" {
            groups[group].as_array_mut().unwrap().push(v.clone());
        }
        last = v;
    }
    assert!(
        matches!(last["type"].as_str(), Some("summary" | "error")) && last["exit"].is_u64(),
        "the last line is the summary or the error, with exit: {text}"
    );
    groups["end"] = last;
    groups
}
