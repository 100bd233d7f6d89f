//! `offsite keygen`: a new age X25519 identity.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use age::secrecy::ExposeSecret;
use anyhow::Context;
use clap::Args;

use crate::report::{out, outln, usage, Output};

/// Arguments of `offsite keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity to FILE (created with mode 0600, its missing folders with 0700; never
    /// overwritten) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(super) fn run(args: KeygenArgs, out: Output) -> anyhow::Result<u8> {
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let created = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let text = format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        id.to_string().expose_secret()
    );
    match &args.output {
        Some(path) => {
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
            f.write_all(text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            f.sync_all()?;
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
                outln!("{public}")?;
            }
        }
        None => {
            if out.json {
                return Err(usage(
                    "keygen --json needs -o FILE: the secret key is not printed into JSON",
                ));
            }
            out!("{text}")?;
            eprintln!("Public key: {public}");
        }
    }
    Ok(0)
}
