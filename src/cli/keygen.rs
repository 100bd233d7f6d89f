//! `offsite keygen`: a new age X25519 identity, or with `--signing` an OpenSSH Ed25519
//! signing key.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use age::secrecy::ExposeSecret;
use anyhow::Context;
use clap::Args;

use crate::report::{dataln, usage, Output};

/// Arguments of `offsite keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity (with --signing, the signing key) to FILE (created with mode 0600, its
    /// missing folders with 0700; never overwritten) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Make an SSH signing key instead: an unencrypted OpenSSH Ed25519 private key written to
    /// -o FILE (required: a private signing key is never printed), and its public line
    /// `ssh-ed25519 AAAA... COMMENT` printed for the hosts that will trust it. This prepares
    /// the key: offsite does not sign manifests with it yet.
    #[arg(long)]
    signing: bool,
    /// The comment ending the signing key's public line (default: offsite@HOSTNAME).
    #[arg(long, value_name = "TEXT", requires = "signing")]
    comment: Option<String>,
    /// Print the recipient (age1... public key) of each identity in the file given with -i,
    /// one a line, as `age-keygen -y` does; nothing is created.
    #[arg(
        short = 'y',
        requires = "identity",
        conflicts_with_all = ["output", "signing"]
    )]
    recipient: bool,
    /// The identity file whose recipients -y prints.
    #[arg(short, long, value_name = "FILE", requires = "recipient")]
    identity: Option<PathBuf>,
}

pub(super) fn run(args: KeygenArgs, out: Output) -> anyhow::Result<u8> {
    if args.signing {
        return signing(args, out);
    }
    if let (true, Some(path)) = (args.recipient, &args.identity) {
        return recipients_of(path, out);
    }
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let text = format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        id.to_string().expose_secret()
    );
    match &args.output {
        Some(path) => {
            write_new(path, text.as_bytes())?;
            if out.json {
                #[derive(serde::Serialize)]
                struct Json<'a> {
                    recipient: &'a str,
                    identity_file: &'a std::path::Path,
                }
                let json = Json {
                    recipient: &public,
                    identity_file: path,
                };
                out.print_json(&serde_json::to_value(json)?)?;
            } else {
                eprintln!("Identity written to {} (mode 0600). Keep a copy somewhere safe and off this machine:", path.display());
                eprintln!("without it no archive encrypted to this key can be restored.");
                dataln!("{public}")?;
            }
        }
        None => {
            if out.json {
                return Err(usage(
                    "keygen --json needs -o FILE: the secret key is not printed into JSON",
                ));
            }
            // The key itself, exactly: what was asked for, printed under --quiet too.
            use std::io::Write as _;
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .map_err(crate::report::stdout_failed)?;
            eprintln!("Public key: {public}");
        }
    }
    Ok(0)
}

/// `keygen --signing -o FILE`: an Ed25519 key for signing manifests.
fn signing(args: KeygenArgs, out: Output) -> anyhow::Result<u8> {
    let Some(path) = &args.output else {
        return Err(usage(
            "keygen --signing needs -o FILE: a private signing key is never printed to stdout",
        ));
    };
    let comment =
        match args.comment {
            Some(c) if c.chars().any(char::is_control) => return Err(usage(
                "--comment: one line of text without control characters (it ends the public line)",
            )),
            Some(c) => c,
            None => format!("offsite@{}", hostname()),
        };
    let key = offsite_policies::signing::SigningKey::generate(&comment);
    write_new(path, key.to_openssh().expose_secret().as_bytes())?;
    let public = key.public_line();
    if out.json {
        #[derive(serde::Serialize)]
        struct Json<'a> {
            public_key: &'a str,
            key_file: &'a std::path::Path,
        }
        let json = Json {
            public_key: &public,
            key_file: path,
        };
        out.print_json(&serde_json::to_value(json)?)?;
    } else {
        eprintln!(
            "Signing key written to {} (mode 0600); it stays on this host. Its public line, for the trusted signers of every host that reads these archives:",
            path.display()
        );
        dataln!("{public}")?;
    }
    Ok(0)
}

/// This machine's name, for the default comment of a signing key.
fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty() && !s.chars().any(|c| c.is_control() || c.is_whitespace()))
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.trim().is_empty())
        })
        .unwrap_or_else(|| "localhost".to_string())
}

/// Creates `path` with mode 0600 (its missing folders with 0700) and writes `bytes`; never
/// overwrites: an existing file is a usage error.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    // `-o ~/.config/offsite/key.txt` on a fresh machine: make the folders, private.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => usage(format!(
                "{} already exists; offsite never overwrites a key file (move it away or choose another path)",
                path.display()
            )),
            _ => anyhow::Error::new(e).context(format!("cannot create {}", path.display())),
        })?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.sync_all()?;
    Ok(())
}

/// `keygen -y -i FILE`: the recipients of an existing identity file, on stdout.
fn recipients_of(path: &std::path::Path, out: Output) -> anyhow::Result<u8> {
    let ids = super::restore::identities(path)?;
    if !ids.publics.iter().all(|p| p.starts_with("age1")) {
        return Err(usage(format!(
            "{} holds an SSH private key: its recipient is its public line, in the .pub file beside it or printed by ssh-keygen -y -f {}",
            path.display(),
            path.display()
        )));
    }
    if out.json {
        out.print_json(&serde_json::json!({ "recipients": ids.publics }))?;
    } else {
        for public in &ids.publics {
            dataln!("{public}")?;
        }
    }
    Ok(0)
}
