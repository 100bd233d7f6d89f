//! No secret in any output (issue 10): known secret values are planted (an AWS secret key and
//! session token, the Azure account key, a SAS token, a GCS resumable session URL, the age
//! identity), every command runs with `-v` and with `RUST_LOG=trace` against moto, s3s-fs, the
//! GCS emulator and Azurite, on success and on failure paths (wrong key, wrong identity, server
//! down, bad URL), and stdout, stderr, `--json`, every manifest and `verified.json` on every
//! store are searched for each value: zero hits. The journal keeps the one secret it must (the
//! GCS session URL, to resume), in a 0600 file.

use std::os::unix::fs::PermissionsExt;

use futures::TryStreamExt;
use offsite_storage::{Storage, StorageExt};

use crate::azure::{AZURITE_ACCOUNT, AZURITE_KEY};
use crate::common::*;
use crate::proxy::{kill_mid_upload, Proxy};

/// Planted values. moto accepts any credentials, so the AWS pair is made up and known here.
const AWS_SECRET: &str = "PlantedAwsSecretKey0123456789abcdefGHIJ+/";
const AWS_TOKEN: &str = "PlantedAwsSessionToken9876543210zyxwvuSTUV==";
const SAS_SIGNATURE: &str = "PlantedSasSignature4242ABCDEF";

/// One command's run, kept for the search.
struct Run {
    what: String,
    text: String,
}

/// The variants every command runs in: `-v`, and `RUST_LOG=trace` (everything every crate
/// logs, the SDKs' HTTP layers included).
const LOUD: [(&str, Option<&str>); 2] = [("-v", None), ("trace", Some("trace"))];

struct Campaign {
    sb: Sandbox,
    runs: Vec<Run>,
    secrets: Vec<(&'static str, String)>,
}

impl Campaign {
    fn new() -> Campaign {
        let sb = Sandbox::new();
        let key = std::fs::read_to_string(&sb.key).unwrap();
        let identity = key
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .unwrap()
            .to_string();
        let secrets = vec![
            ("AWS secret key", AWS_SECRET.to_string()),
            ("AWS session token", AWS_TOKEN.to_string()),
            ("Azure account key", AZURITE_KEY.to_string()),
            ("SAS signature", SAS_SIGNATURE.to_string()),
            ("age identity (lowercase)", identity.to_lowercase()),
            ("age identity", identity),
        ];
        Campaign {
            sb,
            runs: Vec::new(),
            secrets,
        }
    }

    /// The offsite command with every planted credential in its environment.
    fn cmd(&self, verbosity: &str, rust_log: Option<&str>) -> assert_cmd::Command {
        let mut c = self.sb.cmd();
        c.env("AWS_ACCESS_KEY_ID", "AKIAPLANTEDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
            .env("AWS_SESSION_TOKEN", AWS_TOKEN)
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env(
                "AZURE_STORAGE_CONNECTION_STRING",
                format!(
                    "DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={};",
                    emulator("OFFSITE_TEST_AZURITE")
                ),
            );
        if verbosity == "-v" {
            c.arg("-v");
        }
        if let Some(l) = rust_log {
            c.env("RUST_LOG", l);
        }
        c
    }

    /// Runs `args` in both loud variants, with `edit` applied to the command, and keeps the
    /// output. Returns the exit codes.
    fn run_with(&mut self, args: &[&str], edit: impl Fn(&mut assert_cmd::Command)) -> Vec<i32> {
        let mut codes = Vec::new();
        for (v, log) in LOUD {
            let mut c = self.cmd(v, log);
            edit(&mut c);
            let o = c.args(args).output().unwrap();
            codes.push(code(&o));
            self.runs.push(Run {
                what: format!("{v} RUST_LOG={log:?} {args:?}"),
                text: format!("{}\n{}", stdout(&o), stderr(&o)),
            });
        }
        codes
    }

    fn run(&mut self, args: &[&str]) -> Vec<i32> {
        self.run_with(args, |_| {})
    }

    /// Every command on one location, on the success path.
    fn every_command(&mut self, url: &str, src: &str) {
        let key = self.sb.key.display().to_string();
        assert_eq!(self.run(&["create", url]), [0, 0], "{url}");
        for c in self.run(&["push", src, "-r", &self.sb.recipient.clone(), "--to", url]) {
            assert_eq!(c, 0, "push to {url}");
        }
        assert_eq!(self.run(&["ls", url]), [0, 0]);
        assert_eq!(self.run(&["--json", "ls", url]), [0, 0]);
        assert_eq!(self.run(&["verify", url]), [0, 0]);
        assert_eq!(self.run(&["verify", "--deep", url, "-i", &key]), [0, 0]);
        assert_eq!(
            self.run(&["--json", "verify", "--deep", url, "-i", &key]),
            [0, 0]
        );
        let out = self.sb.path("restored").display().to_string();
        assert_eq!(
            self.run(&["restore", url, "--latest", "-o", &out, "--force", "-i", &key]),
            [0, 0]
        );
        assert_eq!(
            self.run(&["--json", "restore", url, "--latest", "-o", &out, "--force", "-i", &key]),
            [0, 0]
        );
    }

    /// Failure paths on one location: the wrong identity, for restore and deep verify.
    fn wrong_identity(&mut self, url: &str, other_key: &str) {
        for c in self.run(&["restore", url, "--latest", "-o", "-", "-i", other_key]) {
            assert_ne!(c, 0);
        }
        for c in self.run(&["verify", "--deep", url, "-i", other_key]) {
            assert_ne!(c, 0);
        }
    }

    /// Reads every JSON object (manifests, verification records) a store holds into the search.
    async fn stored_json(&mut self, what: &str, store: &dyn Storage) {
        let listed: Vec<_> = store.list("").try_collect().await.unwrap();
        let mut n = 0;
        for m in listed.iter().filter(|m| m.key.ends_with(".json")) {
            let bytes = store.get_bytes(&m.key).await.unwrap();
            n += 1;
            self.runs.push(Run {
                what: format!("{what}: {}", m.key),
                text: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        assert!(
            n >= 2,
            "{what}: a manifest and a verification record: {listed:?}"
        );
    }

    /// The search: zero hits for every secret in everything kept.
    fn assert_clean(&self, min_traced: usize) {
        let mut hits = Vec::new();
        for r in &self.runs {
            for (name, value) in &self.secrets {
                if r.text.contains(value.as_str()) {
                    let at = r.text.find(value.as_str()).unwrap();
                    let b = r.text.as_bytes();
                    let ctx =
                        String::from_utf8_lossy(&b[at.saturating_sub(200)..(at + 60).min(b.len())]);
                    hits.push(format!("{name} in {}: ...{ctx}", r.what));
                }
            }
        }
        assert!(hits.is_empty(), "secrets leaked:\n{}", hits.join("\n\n"));
        // The search saw real output: trace runs log the SDKs' requests.
        let traced: usize = self
            .runs
            .iter()
            .filter(|r| r.what.contains("trace"))
            .map(|r| r.text.len())
            .sum();
        assert!(
            traced > min_traced,
            "trace output was searched ({traced} bytes)"
        );
    }
}

fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread")]
async fn no_planted_secret_reaches_any_output_of_any_command_on_any_store() {
    let mut c = Campaign::new();
    let src = c.sb.archive(NAME, 300_000, 7).display().to_string();
    let other = c.sb.path("other-key.txt");
    let o =
        c.sb.cmd()
            .arg("keygen")
            .arg("-o")
            .arg(&other)
            .output()
            .unwrap();
    assert_code(&o, 0);
    let other = other.display().to_string();

    // Success paths, every command, on every store.
    let moto = bucket("secrets");
    let moto_url = format!("s3://{moto}/app?endpoint={}", emulator("OFFSITE_TEST_MOTO"));
    let gcs = bucket("secrets");
    let gcs_url = format!("gs://{gcs}/app?endpoint={}", emulator("OFFSITE_TEST_GCS"));
    let az_url = format!(
        "az://{AZURITE_ACCOUNT}/{}/app?endpoint={}",
        bucket("secrets"),
        emulator("OFFSITE_TEST_AZURITE")
    );
    let moto_store = crate::s3::store("OFFSITE_TEST_MOTO", &moto, "", false).await;
    let local_url = c.sb.url("local");
    for url in [&moto_url, &az_url, &local_url] {
        c.every_command(url, &src);
        c.wrong_identity(url, &other);
    }
    // GCS create needs a project; the emulator takes any.
    let gcs_store = crate::gcs::store(&gcs, "app").await;
    for code in c.run(&[
        "push",
        &src,
        "-r",
        &c.sb.recipient.clone(),
        "--to",
        &gcs_url,
    ]) {
        assert_eq!(code, 0);
    }
    let key = c.sb.key.display().to_string();
    assert_eq!(c.run(&["ls", &gcs_url]), [0, 0]);
    assert_eq!(c.run(&["verify", "--deep", &gcs_url, "-i", &key]), [0, 0]);
    let out = c.sb.path("restored").display().to_string();
    assert_eq!(
        c.run(&["restore", &gcs_url, "--latest", "-o", &out, "--force", "-i", &key]),
        [0, 0]
    );
    c.wrong_identity(&gcs_url, &other);

    // Failure paths: each server down, a wrong S3 secret (s3s-fs checks signatures), a SAS
    // on a dead endpoint, and bad URLs.
    let port = dead_port();
    let name = "app-backup-20261127_020000.tar.gz";
    let src2 = c.sb.archive(name, 1000, 8).display().to_string();
    let rcpt = c.sb.recipient.clone();
    for url in [
        format!("s3://{moto}/app?endpoint=http://127.0.0.1:{port}"),
        format!("gs://{gcs}/app?endpoint=http://127.0.0.1:{port}"),
        format!(
            "az://{AZURITE_ACCOUNT}/cont/app?endpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
        ),
    ] {
        for code in c.run(&["push", &src2, "-r", &rcpt, "--to", &url]) {
            assert_ne!(code, 0, "{url}");
        }
        for code in c.run(&["ls", &url]) {
            assert_eq!(code, 1, "{url}");
        }
        for code in c.run(&["restore", &url, "--latest", "-o", "-", "-i", &key]) {
            assert_eq!(code, 1, "{url}");
        }
    }
    let s3s = bucket("secrets");
    let _s3s_store = crate::s3::store("OFFSITE_TEST_S3S", &s3s, "app", false).await;
    let s3s_url = format!("s3://{s3s}/app?endpoint={}", emulator("OFFSITE_TEST_S3S"));
    for code in c.run(&["push", &src2, "-r", &rcpt, "--to", &s3s_url]) {
        assert_eq!(code, 1, "a wrong secret is refused");
    }
    for code in c.run(&["verify", &s3s_url]) {
        assert_ne!(code, 0);
    }
    let sas_url = format!(
        "az://{AZURITE_ACCOUNT}/cont/app?endpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    );
    for code in c.run_with(&["push", &src2, "-r", &rcpt, "--to", &sas_url], |cmd| {
        cmd.env_remove("AZURE_STORAGE_CONNECTION_STRING").env(
            "AZURE_STORAGE_SAS_TOKEN",
            format!("sv=2025-01-05&sp=rwdl&sig={SAS_SIGNATURE}"),
        );
    }) {
        assert_eq!(code, 1);
    }
    for url in ["s3://Bad_Bucket/x", "backups", "gs://", "az://acct"] {
        for code in c.run(&["ls", url]) {
            assert_eq!(code, 2, "{url}");
        }
    }
    // A lowercase identity given as a recipient is refused without being echoed.
    let lower = c.secrets[4].1.clone();
    for code in c.run(&["push", &src2, "-r", &lower, "--to", &local_url]) {
        assert_eq!(code, 2);
    }

    // Everything the stores hold in JSON: manifests and verification records.
    c.stored_json("moto", &moto_store).await;
    c.stored_json("gcs", &gcs_store).await;
    c.stored_json(
        "local",
        &offsite_storage::LocalStore::new(c.sb.path("local")),
    )
    .await;
    c.assert_clean(1_000_000);
}

/// The GCS resumable session URL authorizes uploads to its object. A push killed mid-upload
/// keeps it in the journal (mode 0600, so that the rerun can continue); the rerun, logging at
/// trace, and everything it reports never show it.
#[tokio::test(flavor = "multi_thread")]
async fn the_gcs_session_url_stays_in_the_private_journal() {
    let mut c = Campaign::new();
    let name = bucket("session");
    let _store = crate::gcs::store(&name, "app").await;
    let proxy = Proxy::start(&emulator("OFFSITE_TEST_GCS"));
    let url = format!("gs://{name}/app?endpoint={}", proxy.endpoint);
    let src = c.sb.archive(NAME, 20 << 20, 9);
    let mut push = c.sb.std_cmd();
    push.arg("push")
        .arg(&src)
        .args(["-r", &c.sb.recipient, "--to", &url]);
    kill_mid_upload(&proxy, push, 9 << 20);

    let spool = c.sb.path("cache/spool");
    let work = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("journal.json").exists())
        .expect("a journal was kept");
    let journal_path = work.join("journal.json");
    assert_eq!(
        std::fs::metadata(&journal_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let journal: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&journal_path).unwrap()).unwrap();
    let session = journal["destinations"]
        .as_object()
        .unwrap()
        .values()
        .find_map(|d| d["upload"]["session"].as_str())
        .unwrap_or_else(|| panic!("a GCS session in {journal}"))
        .to_string();
    let upload_id = session
        .split("upload_id=")
        .nth(1)
        .unwrap_or_else(|| panic!("an upload id in the session URL"))
        .split('&')
        .next()
        .unwrap()
        .to_string();
    c.secrets.push(("GCS session URL", session));
    c.secrets.push(("GCS upload id", upload_id));

    // The rerun resumes through the session, logging everything.
    let o = c
        .cmd("trace", Some("trace"))
        .args(["--json", "push"])
        .arg(&src)
        .args(["-r", &c.sb.recipient, "--to", &url])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).contains("\"resumed\": true"), "{}", stdout(&o));
    c.runs.push(Run {
        what: "resumed push at trace".into(),
        text: format!("{}\n{}", stdout(&o), stderr(&o)),
    });
    assert!(!journal_path.exists(), "the journal is gone after success");
    c.run(&["ls", &url]);
    let key = c.sb.key.display().to_string();
    c.run(&["verify", "--deep", &url, "-i", &key]);
    // reqwest logs little even at trace; the SDK-based stores above log far more.
    c.assert_clean(5_000);
}
