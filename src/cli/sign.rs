//! `offsite sign`: sign the manifests of a policy's existing unsigned archives, each after
//! checking its stored bytes against its manifest, so that turning signing on keeps history.

use anyhow::Result;
use clap::Args;

use super::restore::identities;
use super::{IdentityArgs, InventoryArgs, PolicyArgs};
use crate::engine::sign::{self, Outcome, SignReport, SignRequest};
use crate::report::{exit, outln, usage, Output};

/// Arguments of `offsite sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    identity: IdentityArgs,
    /// Check and report what would be signed; write nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    inventory: InventoryArgs,
}

pub(super) async fn run(args: SignArgs, out: Output) -> Result<u8> {
    let (policy, place) = args.policy.required("sign")?;
    crate::policy::need_archives(&policy, "sign")?;
    let Some(key) = crate::policy::signing_key(&policy)? else {
        return Err(usage(format!(
            "the policy {:?} has no signing key: add `[signing]` with `key-file = \"FILE\"` naming this host's signing key (make one with `offsite keygen --signing -o FILE`)",
            policy.name
        )));
    };
    let identities = match &args.identity.identity {
        Some(p) => Some(identities(p)?),
        None => None,
    };
    let locations = place.open().await?;
    let request = SignRequest {
        locations: &locations,
        names: place.named.iter().map(|(name, _)| name.clone()).collect(),
        key: &key,
        identities,
        dry_run: args.dry_run,
        // Every unsigned archive is a candidate, whoever is trusted: sign checks the bytes.
        options: args.inventory.options(crate::engine::inventory::Judge::new(
            Default::default(),
            crate::engine::inventory::Clock::at(chrono::Utc::now()),
        )),
    };
    let report = sign::run(&request).await;
    let code = exit::of_checks(
        report.count(Outcome::Damaged) > 0,
        report.count(Outcome::Failed) > 0,
    );
    if out.json {
        out.print_report(Some(&policy.name), &report, code)?;
    } else {
        print(&report)?;
    }
    for c in report
        .copies
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Damaged | Outcome::Failed))
    {
        eprintln!("error: {} {}: {}", c.destination, c.archive, c.detail);
    }
    Ok(code)
}

/// A line per archive and destination, then the count.
fn print(report: &SignReport) -> Result<()> {
    for c in &report.copies {
        let word = match c.outcome {
            Outcome::Signed => "signed",
            Outcome::WouldSign => "would-sign",
            Outcome::AlreadySigned => "already-signed",
            Outcome::Skipped => "skipped",
            Outcome::Damaged => "NOT-SIGNED",
            Outcome::Failed => "FAILED",
        };
        outln!(
            "{word:<14} {:<12} {} {}  {}",
            c.destination,
            c.url,
            c.archive,
            c.detail
        )?;
    }
    let (done, verb) = if report.dry_run {
        (report.count(Outcome::WouldSign), "would sign")
    } else {
        (report.count(Outcome::Signed), "signed")
    };
    let already = report.count(Outcome::AlreadySigned);
    let incomplete = report.count(Outcome::Skipped);
    let damaged = report.count(Outcome::Damaged);
    let failed = report.count(Outcome::Failed);
    outln!(
        "{verb} {done}, skipped {} ({already} already signed, {incomplete} incomplete, {damaged} damaged, {failed} failed){}",
        already + incomplete + damaged + failed,
        if report.dry_run { "; dry run: nothing written" } else { "" }
    )
}
