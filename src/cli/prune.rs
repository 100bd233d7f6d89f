//! `offsite prune`: delete what a policy's retention no longer keeps, behind the rails of
//! `offsite_policies::retention::plan`, extend the locks of archives kept as weekly, monthly or
//! yearly, and clean what killed pushes leave (data without a manifest, stale local spools).

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use offsite_policies::policy::Policy;
use offsite_policies::retention::Refusal;
use serde::Serialize;

use super::{InventoryArgs, PolicyArgs};
use crate::engine::prune::{Done, Report, Request};
use crate::metrics::{Metrics, MetricsArgs};
use crate::report::{exit, human_bytes, outln, time, Output};

/// Arguments of `offsite prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Print the plan (keep or delete per archive, with the rules that keep it) and change
    /// nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Delete nothing when the plan would delete more than N archives at one destination
    /// [default: the retention's max-delete, else no cap].
    #[arg(long, value_name = "N")]
    max_delete: Option<u32>,
    /// Prune even when the newest complete archive is older than the policy's rpo (backups
    /// seem to have stopped; by default prune then deletes nothing).
    #[arg(long)]
    force: bool,
    /// Delete the untrusted archives (whole, but not signed by a trusted key) older than
    /// min-age, counted against max-delete; without it they are listed and left alone.
    #[arg(long)]
    delete_untrusted: bool,
    #[command(flatten)]
    inventory: InventoryArgs,
    #[command(flatten)]
    trust: super::TrustArgs,
    #[command(flatten)]
    pub(super) metrics: MetricsArgs,
}

/// `--json`: the plan, the orphans, the refusals and what was done.
#[derive(Serialize)]
struct Json<'a> {
    policy: &'a str,
    dry_run: bool,
    plan: Vec<JsonItem<'a>>,
    orphans: Vec<JsonOrphan<'a>>,
    untrusted: &'a [crate::engine::prune::UntrustedCopy],
    future_dated: &'a [crate::engine::prune::FutureDatedCopy],
    spools: &'a [crate::engine::prune::StaleSpool],
    refusals: &'a [Refusal],
    done: &'a [Done],
    exit: u8,
}

/// One archive of the plan in `--json`.
#[derive(Serialize)]
struct JsonItem<'a> {
    destination: &'a str,
    archive: &'a str,
    series: &'a str,
    created: DateTime<Utc>,
    action: &'static str,
    reasons: &'a [String],
    locked_until: Option<DateTime<Utc>>,
    extend_lock_to: Option<DateTime<Utc>>,
}

/// One orphan in `--json`.
#[derive(Serialize)]
struct JsonOrphan<'a> {
    destination: &'a str,
    key: &'a str,
    reason: String,
}

pub(super) async fn run(args: &PruneArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let (policy, place) = args.policy.required("prune")?;
    crate::policy::need_archives(&policy, "prune")?;
    let policy = &policy;
    m.set_policy(&policy.name);
    let locations = place.open().await?;
    let judge = args.trust.judge(Some(policy))?;
    let request = Request {
        dry_run: args.dry_run,
        force: args.force,
        max_delete: args.max_delete,
        now: judge.clock.now,
        inventory: args.inventory.options(judge),
        delete_untrusted: args.delete_untrusted,
    };
    let report = crate::engine::prune::run(policy, &locations, &request).await?;
    let code = if report.refused() {
        exit::REFUSED
    } else if report.failed() > 0 {
        exit::FAILED
    } else {
        exit::OK
    };
    metrics(m, &report);
    if out.json {
        out.print_json(&serde_json::to_value(json(
            policy,
            &report,
            args.dry_run,
            code,
        ))?)?;
    } else {
        print_text(policy, &report, args.dry_run)?;
    }
    for r in &report.plan.refusals {
        eprintln!("error: refused: {r}");
    }
    for d in report.done.iter().filter(|d| !d.ok) {
        eprintln!("error: {} {}: {}", d.destination, d.name, d.detail);
    }
    Ok(code)
}

fn metrics(m: &mut Metrics, report: &Report) {
    let deletes = report.plan.deletions().count();
    let kept = report.plan.items.len() - deletes;
    m.set("offsite_prune_archives_kept", &[], kept as f64);
    m.set(
        "offsite_prune_archives_deleted",
        &[],
        report.deleted() as f64,
    );
    m.set("offsite_prune_archives_planned", &[], deletes as f64);
    m.flag("offsite_prune_refused", &[], report.refused());
}

fn json<'a>(policy: &'a Policy, report: &'a Report, dry_run: bool, code: u8) -> Json<'a> {
    let dest = |i: usize| policy.destinations[i].name.as_str();
    Json {
        policy: &policy.name,
        dry_run,
        plan: report
            .plan
            .items
            .iter()
            .map(|i| JsonItem {
                destination: dest(i.destination),
                archive: &i.name,
                series: &i.series,
                created: i.created,
                action: if i.keep { "keep" } else { "delete" },
                reasons: &i.reasons,
                locked_until: i.locked_until,
                extend_lock_to: i.extend_lock_to,
            })
            .collect(),
        orphans: report
            .orphans
            .iter()
            .map(|o| JsonOrphan {
                destination: dest(o.destination),
                key: &o.key,
                reason: o.reason(),
            })
            .collect(),
        untrusted: &report.untrusted,
        future_dated: &report.future_dated,
        spools: &report.spools,
        refusals: &report.plan.refusals,
        done: &report.done,
        exit: code,
    }
}

/// The plan, what was done, and the closing line.
fn print_text(policy: &Policy, report: &Report, dry_run: bool) -> Result<()> {
    print_plan(policy, report, dry_run)?;
    for d in &report.done {
        outln!(
            "{:<10} {:<12} {}  {}",
            if d.ok { d.action.word() } else { "FAILED" },
            d.destination,
            d.name,
            d.detail
        )?;
    }
    if report.refused() {
        return Ok(());
    }
    if policy
        .destinations
        .iter()
        .all(|d| policy.retention_of(d).is_none())
    {
        // Otherwise the run would print only "deleted 0", as if the rules had kept it all.
        outln!(
            "no retention at any destination of policy {:?}: every archive is kept; add [retention] to the policy (or retention to a destination) for prune to delete old archives.",
            policy.name
        )?;
    }
    if dry_run {
        outln!(
            "dry run: would delete {} archive(s), {} orphan(s) and {} local spool(s); nothing changed.",
            report.plan.deletions().count() + report.untrusted.iter().filter(|u| u.delete).count(),
            report.orphans.len(),
            report.spools.len()
        )?;
    } else {
        outln!("deleted {} archive(s) or orphan(s).", report.deleted())?;
    }
    Ok(())
}

fn print_plan(policy: &Policy, report: &Report, dry_run: bool) -> Result<()> {
    let mut last: Option<(usize, &str)> = None;
    for i in &report.plan.items {
        let dest = &policy.destinations[i.destination];
        if last != Some((i.destination, i.series.as_str())) {
            let whose = if dest.retention.is_some() {
                "its own"
            } else {
                "the policy's"
            };
            outln!("== {} {} (retention: {whose})", dest.name, i.series)?;
            last = Some((i.destination, i.series.as_str()));
        }
        let mut why = i.reasons.join(", ");
        if let Some(t) = i.extend_lock_to {
            why.push_str(&format!("; lock extended to {}", time(&t)));
        }
        let action = if i.keep {
            "keep"
        } else if dry_run {
            "delete"
        } else {
            "DELETE"
        };
        outln!("  {action:<6} {}  {:<44} {}", time(&i.created), i.name, why)?;
    }
    for o in &report.orphans {
        outln!(
            "  {:<6} orphan at {}: {} ({})",
            "delete",
            policy.destinations[o.destination].name,
            o.key,
            o.reason()
        )?;
    }
    for s in &report.spools {
        outln!(
            "  {:<6} local spool {} ({}, {}; a push not run again since {})",
            "delete",
            s.name,
            s.path.display(),
            human_bytes(s.size),
            time(&s.last_used)
        )?;
    }
    for f in &report.future_dated {
        outln!(
            "  {:<6} future-dated at {}: {} ({}; never deleted, never counted)",
            "leave",
            f.destination,
            f.name,
            f.reason
        )?;
    }
    for u in &report.untrusted {
        let (action, what) = if u.delete {
            ("delete", "--delete-untrusted")
        } else {
            ("leave", "retention neither keeps nor deletes it; --delete-untrusted deletes it once older than min-age")
        };
        outln!(
            "  {action:<6} untrusted at {}: {} ({}; {what})",
            u.destination,
            u.name,
            u.reason
        )?;
    }
    Ok(())
}
