//! `offsite drill`: the restore drill behind the zero of 3-2-1-1-0. The newest complete
//! archive at each of a policy's destinations is restored to nowhere (downloaded, hashed,
//! decrypted, hashed again) and the proof recorded beside its manifest, where `status` reads it,
//! with how long the restore took (what `status` estimates restore times and judges `rto` by).

use anyhow::Result;
use clap::Args;

use super::restore::identities;
use super::{IdentityArgs, InventoryArgs, PolicyArgs};
use crate::engine::drill::{self, DrillCopy, DrillReport, DrillRequest};
use crate::engine::verify::Verdict;
use crate::metrics::{Metrics, MetricsArgs};
use crate::report::{exit, outln, usage, Output};
use crate::units;

/// Arguments of `offsite drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    identity: IdentityArgs,
    #[command(flatten)]
    inventory: InventoryArgs,
    #[command(flatten)]
    trust: super::TrustArgs,
    #[command(flatten)]
    pub(super) metrics: MetricsArgs,
}

pub(super) async fn run(args: &DrillArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let (policy, place) = args.policy.required("drill")?;
    crate::policy::need_archives(&policy, "drill")?;
    let identities = match &args.identity.identity {
        Some(p) => Some(identities(p)?),
        None if crate::policy::unencrypted(&policy) => None,
        None => {
            return Err(usage(
                "a drill decrypts what it restores: give --identity FILE or set OFFSITE_IDENTITY_FILE (a Kubernetes Secret mounted as a file)",
            ))
        }
    };
    m.set_policy(&policy.name);
    let locations = place.open().await?;
    let pb = out.progress(None, "drill");
    let request = DrillRequest {
        locations: &locations,
        names: place.named.iter().map(|(name, _)| name.clone()).collect(),
        identities,
        options: args.inventory.options(args.trust.judge(Some(&policy))?),
        key: crate::policy::write_key(&policy)?.map(std::sync::Arc::new),
    };
    let report = drill::run(&request).await;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let code = exit::of_checks(report.failed > 0, report.unchecked > 0);
    measure(&report, m);
    if out.json {
        out.print_report(Some(&policy.name), &report, code)?;
    } else {
        print(&report)?;
    }
    for c in report
        .copies
        .iter()
        .filter(|c| c.copy.verdict != Verdict::Ok)
    {
        eprintln!("error: {}: {}", c.destination, c.copy.detail);
    }
    for c in &report.copies {
        if let Some(w) = &c.copy.warning {
            eprintln!("warning: {}: {w}", c.destination);
        }
    }
    Ok(code)
}

/// The drill's metrics: copies proven and failed, each destination's reachability, and how
/// long each proven restore took.
fn measure(report: &DrillReport, m: &mut Metrics) {
    m.set("offsite_drill_copies_proven", &[], report.proven as f64);
    m.set(
        "offsite_drill_copies_failed",
        &[],
        (report.failed + report.unchecked) as f64,
    );
    for c in &report.copies {
        let l = [("destination", c.destination.as_str())];
        m.flag(
            "offsite_destination_up",
            &l,
            c.copy.verdict != Verdict::Unchecked,
        );
        if let Some(r) = c.copy.restore {
            m.set("offsite_restore_seconds", &l, r.seconds);
            m.set("offsite_restore_bytes", &l, r.bytes as f64);
            if let Some(bps) = r.bytes_per_second {
                m.set("offsite_restore_bytes_per_second", &l, bps);
            }
        }
    }
}

/// A line per destination, then the count.
fn print(report: &DrillReport) -> Result<()> {
    for DrillCopy { destination, copy } in &report.copies {
        let word = match copy.verdict {
            Verdict::Ok => "proven",
            Verdict::Missing => "MISSING",
            Verdict::Corrupt => "CORRUPT",
            Verdict::Unchecked => "UNCHECKED",
            Verdict::Incomplete => "incomplete",
            Verdict::Untrusted => "UNTRUSTED",
        };
        // A proven copy says how long its restore took, which status estimates from.
        let timed = copy
            .restore
            .map(|r| {
                format!(
                    "; restored in {} at {}",
                    units::seconds(r.seconds),
                    units::rate(r.bytes_per_second)
                )
            })
            .unwrap_or_default();
        outln!(
            "{word:<10} {destination:<12} {} {}  {}{timed}",
            copy.url,
            copy.archive,
            copy.detail
        )?;
    }
    outln!(
        "{} of {} destinations proven by restoring their newest archive.",
        report.proven,
        report.copies.len()
    )
}
