//! `offsite push`: encrypt an archive and store it at every destination.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use offsite_policies::encryption::{self, Recipient};

use crate::archive::validate_name;
use crate::engine::push::{self, PushRequest, Source, Status};
use crate::report::{exit, human_bytes, outln, time, usage, Output};

/// Arguments of `offsite push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The archive file, or `-` for standard input (then --name is required).
    #[arg(value_name = "FILE|-")]
    source: String,
    /// A destination URL; repeat for several: file:///var/backups/app (or /var/backups/app),
    /// s3://bucket/prefix?region=eu-west-1, gs://bucket/prefix, az://account/container/prefix,
    /// memory://name. Options go in the query (storage-class, lock, endpoint...; README.md).
    #[arg(long = "to", value_name = "URL", required = true)]
    to: Vec<String>,
    /// An age recipient: an `age1...` key, or an `ssh-ed25519` / `ssh-rsa` public key line.
    #[arg(short = 'r', long = "recipient", value_name = "KEY")]
    recipients: Vec<String>,
    /// A file of recipients, one per line (`#` comments allowed), as `age -R` reads.
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    recipients_files: Vec<PathBuf>,
    /// Store the archive as it is, unencrypted. An explicit choice: push refuses to run without
    /// recipients otherwise.
    #[arg(long, conflicts_with_all = ["recipients", "recipients_files"])]
    no_encrypt: bool,
    /// The archive's name (default: the file's name; required for stdin).
    #[arg(long)]
    name: Option<String>,
    /// A sub-prefix under every destination URL.
    #[arg(long)]
    prefix: Option<String>,
    /// Replace a different archive stored under the same name, at every destination (never a
    /// locked one). Without it, a different archive at any destination stops the whole push.
    #[arg(long)]
    overwrite: bool,
    /// Send the stream from memory to every destination without writing a spool first (for a
    /// stdin stream larger than the local disk). Nothing can then be resumed: a destination
    /// that fails, or a killed push, means pushing again. A name already stored anywhere is
    /// refused unless --overwrite (the stream cannot be compared before it is read).
    #[arg(long)]
    no_spool: bool,
}

pub(super) async fn run(args: PushArgs, out: Output) -> Result<u8> {
    let mut recipients: Vec<Recipient> = Vec::new();
    for r in &args.recipients {
        recipients.push(Recipient::parse(r, "--recipient").map_err(|e| usage(e.to_string()))?);
    }
    for f in &args.recipients_files {
        recipients.extend(encryption::read_recipients_file(f).map_err(|e| usage(e.to_string()))?);
    }
    let recipients = encryption::dedup(recipients);
    if recipients.is_empty() && !args.no_encrypt {
        return Err(usage(
            "no recipients: push encrypts by default; give --recipient KEY or --recipients-file FILE \
             (offsite keygen makes a key), or --no-encrypt to store the archive unencrypted on purpose",
        ));
    }

    let (source, name, len) = if args.source == "-" {
        let name = args.name.clone().ok_or_else(|| {
            usage("reading standard input needs --name NAME (the archive's name on the stores)")
        })?;
        (Source::Stdin, name, None)
    } else {
        let path = PathBuf::from(&args.source);
        let file = std::fs::File::open(&path).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "it does not exist; check the path the backup job wrote".to_string()
                }
                std::io::ErrorKind::PermissionDenied => {
                    "permission denied; run offsite as a user that can read it".to_string()
                }
                _ => e.to_string(),
            };
            usage(format!("cannot read the source {}: {why}", path.display()))
        })?;
        let md = file.metadata()?;
        if md.is_dir() {
            return Err(usage(format!(
                "the source {} is a directory; offsite pushes archive files (make one with tar first)",
                path.display()
            )));
        }
        let name = match &args.name {
            Some(n) => n.clone(),
            None => path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| {
                    usage(format!(
                        "{} has no usable file name; give --name",
                        path.display()
                    ))
                })?
                .to_string(),
        };
        (Source::File(file, path), name, Some(md.len()))
    };
    validate_name(&name, !recipients.is_empty()).map_err(usage)?;
    let destinations = super::open_all(&args.to, args.prefix.as_deref()).await?;
    {
        let mut seen = std::collections::HashSet::new();
        for d in &destinations {
            // file:///x and file:///x/ are one directory.
            let id = d
                .local_root()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| d.url().to_string());
            if !seen.insert(id) {
                return Err(usage(format!("destination {} is given twice", d.url())));
            }
        }
    }

    let progress = out.progress(len, &name);
    let request = PushRequest {
        source,
        name,
        recipients,
        destinations,
        overwrite: args.overwrite,
        progress: progress.clone(),
    };
    let report = if args.no_spool {
        push::unspooled::run(request).await
    } else {
        push::run(request).await
    };
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    let report = report?;
    let total = report.destinations.len();
    let held = report.stored_count();
    let code = if held == total {
        exit::OK
    } else if held == 0 {
        exit::FAILED
    } else {
        exit::PARTIAL
    };
    // An empty archive is stored (it may be what the job meant), but never without a word: it
    // is most often a backup job that failed before writing.
    let empty = report.plaintext.as_ref().is_some_and(|d| d.size == 0);
    let warnings: Vec<String> = empty
        .then(|| {
            format!(
                "{} is empty (0 bytes); it was stored as it is, but check the job that wrote it",
                report.archive
            )
        })
        .into_iter()
        .collect();
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if out.json {
        let mut v = serde_json::to_value(&report)?;
        v["exit"] = code.into();
        v["warnings"] = warnings.into();
        out.print_json(&v)?;
    } else {
        let size = report
            .plaintext
            .as_ref()
            .map(|d| human_bytes(d.size))
            .unwrap_or_default();
        let how = if report.encrypted {
            "encrypted with age"
        } else {
            "unencrypted"
        };
        outln!(
            "{} ({size}, created {}, {how}){}",
            report.archive,
            time(&report.created),
            if report.resumed {
                ", resumed from the spool of an earlier run"
            } else {
                ""
            }
        )?;
        for d in &report.destinations {
            let word = match d.status {
                Status::Stored => "stored",
                Status::AlreadyStored => "already stored",
                Status::Refused => "REFUSED",
                Status::Failed => "FAILED",
            };
            outln!("  {word:<15} {}  {}", d.url, d.key)?;
            if let Some(m) = &d.message {
                outln!("  {:<15} {m}", "")?;
            }
            if let Some((reused, total)) = d.resumed_parts {
                outln!(
                    "  {:<15} resumed the earlier upload: {reused} of {total} parts were already on the server",
                    ""
                )?;
            }
        }
        outln!("{held} of {total} destinations hold the archive.")?;
    }
    for d in report
        .destinations
        .iter()
        .filter(|d| matches!(d.status, Status::Failed | Status::Refused))
    {
        eprintln!(
            "error: {}: {}",
            d.url,
            d.message.as_deref().unwrap_or("failed")
        );
    }
    Ok(code)
}
