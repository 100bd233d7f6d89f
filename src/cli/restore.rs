//! `offsite restore`: an archive back from the first healthy copy.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{ArgGroup, Args};

use super::IdentityArgs;
use crate::archive::parse_time_arg;
use crate::engine::identity::Identities;
use crate::engine::restore::{self, Selector, Target};
use crate::report::{exit, usage, Output};

/// Arguments of `offsite restore`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["archive", "latest", "at"])))]
pub struct RestoreArgs {
    /// Locations, in the order to try them; the first healthy copy wins.
    #[arg(value_name = "URL")]
    urls: Vec<String>,
    #[command(flatten)]
    policy: super::PolicyArgs,
    /// The archive's name.
    #[arg(long, value_name = "NAME")]
    archive: Option<String>,
    /// The newest complete archive.
    #[arg(long)]
    latest: bool,
    /// The newest archive created at or before TIME (RFC 3339, or YYYY-MM-DD[THH:MM] in UTC).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Where to write the archive: a file, an existing directory (the archive is written into
    /// it under its name), or `-` for standard output.
    #[arg(short, long, value_name = "PATH|-")]
    output: String,
    /// Replace PATH if it exists.
    #[arg(long)]
    force: bool,
    /// When a copy is in an archive tier (S3 GLACIER / DEEP_ARCHIVE, Azure Archive), ask the
    /// provider to bring it back (S3 RestoreObject; Azure rehydration to Hot) so that a later
    /// run can read it. GCS reads every class directly and needs no thaw.
    #[arg(long)]
    thaw: bool,
    /// How many days a thawed S3 copy stays readable (Azure keeps a rehydrated blob in Hot).
    #[arg(long, value_name = "DAYS", default_value_t = 3, requires = "thaw")]
    thaw_days: u32,
    #[command(flatten)]
    identity: IdentityArgs,
    /// A sub-prefix under every URL.
    #[arg(long)]
    prefix: Option<String>,
}

pub(super) async fn run(args: RestoreArgs, out: Output) -> Result<u8> {
    let selector = match (&args.archive, args.latest, &args.at) {
        (Some(n), _, _) => Selector::Name(n.clone()),
        (_, true, _) => Selector::Latest,
        (_, _, Some(t)) => {
            Selector::At(parse_time_arg(t).map_err(|e| usage(format!("--at: {e}")))?)
        }
        _ => unreachable!("clap requires one of --archive, --latest, --at"),
    };
    let target = if args.output == "-" {
        if out.json {
            return Err(usage(
                "--json cannot share standard output with -o -; write to a file",
            ));
        }
        Target::Stdout
    } else {
        Target::File {
            path: PathBuf::from(&args.output),
            force: args.force,
        }
    };
    let identities = match &args.identity.identity {
        Some(p) => Some(Arc::new(
            Identities::load(p).map_err(|e| usage(format!("{e:#}")))?,
        )),
        None => None,
    };
    // A policy's destinations are tried in the order it lists them, replicas included.
    let locations = args
        .policy
        .resolve("restore", &args.urls, args.prefix.as_deref())?
        .open()
        .await?;
    let pb = out.progress(None, "restore");
    let thaw = args.thaw.then_some(args.thaw_days);
    let res = restore::run(
        &locations,
        &selector,
        &target,
        identities,
        thaw,
        crate::report::observer(&pb),
    )
    .await;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let report = res?;
    let fell_back = report.attempts.iter().any(|a| a.result == "failed");
    if out.json {
        let mut v = serde_json::to_value(&report)?;
        v["exit"] = exit::OK.into();
        out.print_json(&v)?;
    } else {
        for a in report.attempts.iter().filter(|a| a.result != "restored") {
            eprintln!("warning: {} {}: {}", a.result, a.url, a.detail);
        }
        let dest = match &report.output {
            None => "standard output".to_string(),
            Some(path) => path.display().to_string(),
        };
        eprintln!(
            "restored {} from {} to {dest}: {} bytes, SHA-256 {} verified{}",
            report.archive,
            report.from.as_deref().unwrap_or("?"),
            report.size.unwrap_or(0),
            report.sha256.as_deref().unwrap_or(""),
            if fell_back {
                " (after falling back past a bad copy)"
            } else {
                ""
            }
        );
    }
    Ok(exit::OK)
}
