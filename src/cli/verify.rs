//! `offsite verify`: check stored copies.

use anyhow::Result;
use clap::Args;

use super::restore::identities;
use super::{IdentityArgs, InventoryArgs};
use crate::engine::verify::{self, Verdict, VerifyReport, VerifyRequest};
use crate::report::{exit, outln, Output};

/// Arguments of `offsite verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Locations to check.
    #[arg(value_name = "URL")]
    urls: Vec<String>,
    #[command(flatten)]
    policy: super::PolicyArgs,
    /// Check only this archive (default: every archive at each location).
    #[arg(long, value_name = "NAME")]
    archive: Option<String>,
    /// Download, hash, decrypt and hash again; records the result beside the manifest.
    #[arg(long)]
    deep: bool,
    #[command(flatten)]
    identity: IdentityArgs,
    /// A sub-prefix under every URL.
    #[arg(long)]
    prefix: Option<String>,
    #[command(flatten)]
    inventory: InventoryArgs,
    #[command(flatten)]
    trust: super::TrustArgs,
    /// With --deep: sign the verification records with this SSH signing key, so that readers
    /// who trust it count them (with --policy, its `[signing] key-file` signs instead).
    #[arg(long, value_name = "FILE", env = "OFFSITE_SIGNING_KEY_FILE")]
    sign_with: Option<std::path::PathBuf>,
}

pub(super) async fn run(args: VerifyArgs, out: Output) -> Result<u8> {
    let place = args
        .policy
        .resolve("verify", &args.urls, args.prefix.as_deref())?;
    let options = args
        .inventory
        .options(args.trust.judge(place.policy.as_ref())?);
    let key = match (&place.policy, &args.sign_with) {
        _ if !args.deep => None,
        (Some(p), _) => crate::policy::signing_key(p)?,
        (None, Some(f)) => Some(crate::signing::read_signing_key(f)?),
        (None, None) => None,
    };
    let locations = place.open().await?;
    let identities = match (&args.identity.identity, args.deep) {
        (Some(p), true) => Some(identities(p)?),
        _ => None,
    };
    let request = VerifyRequest {
        locations: &locations,
        archive: args.archive,
        deep: args.deep,
        identities,
        options,
        key: key.map(std::sync::Arc::new),
    };
    let report = verify::run(&request).await?;
    let code = exit::of_checks(report.damaged(), report.unchecked());
    if out.json {
        out.print_report(None, &report, code)?;
    } else {
        print(&report, locations.len())?;
        let problems = report
            .all()
            .filter(|r| r.verdict.damaged() || r.verdict == Verdict::Unchecked);
        for r in problems {
            eprintln!("error: {} {}: {}", r.url, r.archive, r.detail);
        }
        for r in &report.copies {
            if let Some(w) = &r.warning {
                eprintln!("warning: {} {}: {w}", r.url, r.archive);
            }
        }
    }
    Ok(code)
}

/// A line per copy and per location finding, then the count.
fn print(report: &VerifyReport, locations: usize) -> Result<()> {
    for r in report.all() {
        let word = match r.verdict {
            Verdict::Ok => "ok",
            Verdict::Missing => "MISSING",
            Verdict::Corrupt => "CORRUPT",
            Verdict::Unchecked => "UNCHECKED",
            Verdict::Incomplete => "incomplete",
            Verdict::Untrusted => "UNTRUSTED",
        };
        outln!(
            "{word:<10} {} {}  ({} verify) {}",
            r.url,
            r.archive,
            r.depth,
            r.detail
        )?;
    }
    let copies = &report.copies;
    let good = copies.iter().filter(|r| r.verdict == Verdict::Ok).count();
    let counted = copies
        .iter()
        .filter(|r| r.verdict != Verdict::Incomplete)
        .count();
    let unusable = report
        .locations
        .iter()
        .map(|p| &p.url)
        .collect::<std::collections::BTreeSet<_>>();
    if unusable.is_empty() {
        outln!("{good} of {counted} copies checked good.")
    } else {
        outln!(
            "{good} of {counted} copies checked good; {} of {locations} locations had no copy to check.",
            unusable.len(),
        )
    }
}
