//! `offsite status`: whether a policy's rules hold over what its destinations store, as a
//! monitoring probe (exit codes per README) and as Prometheus metrics.

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use offsite_policies::policy::Policy;
use offsite_policies::status::{age_words, DestinationStatus, SeriesStatus, Status};
use serde::Serialize;

use super::{InventoryArgs, PolicyArgs};
use crate::engine::status::StatusReport;
use crate::metrics::{Metrics, MetricsArgs};
use crate::report::{exit, outln, time, Output};
use offsite_policies::snapshot_status::VolumeStatus;

/// Arguments of `offsite status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    inventory: InventoryArgs,
    #[command(flatten)]
    trust: super::TrustArgs,
    #[command(flatten)]
    pub(super) metrics: MetricsArgs,
}

/// What `status` read and judged, with the policy and its destinations' (name, url).
struct Found<'a> {
    policy: &'a Policy,
    /// The destinations' (name, url), in the policy's order.
    named: &'a [(String, String)],
    report: StatusReport,
}

impl Found<'_> {
    /// The exit status: unreadable, then damaged, then a rule not met.
    fn code(&self) -> u8 {
        let r = &self.report;
        if !r.unreadable.is_empty() || !r.snapshots.unreadable.is_empty() {
            exit::FAILED
        } else if !r.status.damage.is_empty() {
            exit::DAMAGED
        } else if !r.status.unmet.is_empty() || !r.snapshots.unmet.is_empty() {
            exit::PARTIAL
        } else {
            exit::OK
        }
    }
}

pub(super) async fn run(args: &StatusArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let (policy, place) = args.policy.required("status")?;
    let policy = &policy;
    m.set_policy(&policy.name);
    let locations = place.open().await?;
    let options = args.inventory.options(args.trust.judge(Some(policy))?);
    let signatures_checked = options.judge.signers.configured();
    let f = Found {
        policy,
        named: &place.named,
        report: crate::engine::status::run(policy, &locations, options).await,
    };
    let r = &f.report;
    let (status, snaps, now) = (&r.status, &r.snapshots, r.now);
    let code = f.code();
    metrics_of(m, policy, r);
    snapshot_metrics(m, &snaps.rows, now);
    if out.json {
        out.print_json(&serde_json::to_value(json(&f, code))?)?;
    } else {
        let unmet = snaps.unmet.len();
        print_text(policy, status, f.named, now, &snaps.rows, unmet)?;
        for (dest, l) in &r.leftovers {
            outln!(
                "left behind at {dest}: {}; the next push or prune there removes it",
                super::ls::leftover_words(l)
            )?;
        }
        if !signatures_checked && policy.has_archives() {
            outln!("note: archives are not signed (no trusted keys under [signing]): anyone who can write to a destination and knows the recipient can plant an archive that status counts and restore --latest returns; see README, Signing.")?;
        }
    }
    for u in &r.unreadable {
        eprintln!("error: cannot read destination {}: {}", u.name, u.error);
    }
    for u in &snaps.unreadable {
        eprintln!(
            "error: cannot read the snapshots of {}: {}",
            u.name, u.error
        );
    }
    for d in &status.damage {
        eprintln!("error: damaged: {d}");
    }
    for u in &status.unmet {
        eprintln!("error: not met: {u}");
    }
    for u in &snaps.unmet {
        eprintln!("error: not met: {u}");
    }
    Ok(code)
}

/// `--json`.
#[derive(Serialize)]
struct Json<'a> {
    policy: &'a str,
    time: DateTime<Utc>,
    rpo: Option<String>,
    rto: Option<String>,
    verify_every: Option<String>,
    series: &'a [SeriesStatus],
    destinations: Vec<JsonDestination<'a>>,
    unreadable: Vec<Unreadable<'a>>,
    damage: &'a [String],
    unmet: Vec<String>,
    /// Rules that could not be judged yet (an rto before a drill measured a restore).
    unjudged: &'a [String],
    snapshots: &'a [VolumeStatus],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    leftovers: Vec<JsonLeftover<'a>>,
    exit: u8,
}

/// What a killed write left at a destination.
#[derive(Serialize)]
struct JsonLeftover<'a> {
    destination: &'a str,
    #[serde(flatten)]
    leftover: &'a crate::engine::leftovers::Leftover,
}

/// A destination's verdict, its URL, and whether it could be read.
#[derive(Serialize)]
struct JsonDestination<'a> {
    #[serde(flatten)]
    status: &'a DestinationStatus,
    url: &'a str,
    readable: bool,
}

/// What could not be read: a destination, or a `[[snapshots]]` section.
#[derive(Serialize)]
#[serde(untagged)]
enum Unreadable<'a> {
    Destination {
        destination: &'a str,
        error: &'a str,
    },
    Snapshots {
        snapshots: &'a str,
        error: &'a str,
    },
}

fn json<'a>(f: &'a Found, code: u8) -> Json<'a> {
    let (policy, r) = (f.policy, &f.report);
    let (status, snaps) = (&r.status, &r.snapshots);
    let destinations = status
        .destinations
        .iter()
        .zip(f.named)
        .map(|(d, (_, url))| JsonDestination {
            status: d,
            url,
            readable: r.readable(&d.name),
        })
        .collect();
    let unreadable = r
        .unreadable
        .iter()
        .map(|u| Unreadable::Destination {
            destination: &u.name,
            error: &u.error,
        })
        .chain(snaps.unreadable.iter().map(|u| Unreadable::Snapshots {
            snapshots: &u.name,
            error: &u.error,
        }))
        .collect();
    Json {
        policy: &policy.name,
        time: r.now,
        rpo: policy.rpo.map(|s| s.to_string()),
        rto: policy.rto.map(|s| s.to_string()),
        verify_every: policy.verify_every.map(|s| s.to_string()),
        series: &status.series,
        destinations,
        unreadable,
        damage: &status.damage,
        unmet: status
            .unmet
            .iter()
            .cloned()
            .chain(snaps.unmet.iter().map(|u| u.to_string()))
            .collect(),
        unjudged: &status.unjudged,
        snapshots: &snaps.rows,
        leftovers: r
            .leftovers
            .iter()
            .map(|(d, l)| JsonLeftover {
                destination: d,
                leftover: l,
            })
            .collect(),
        exit: code,
    }
}

fn print_text(
    policy: &Policy,
    status: &Status,
    named: &[(String, String)],
    now: DateTime<Utc>,
    snapshots: &[VolumeStatus],
    snapshots_unmet: usize,
) -> Result<()> {
    let rpo = policy.rpo.map_or("not set".into(), |s| s.to_string());
    if !policy.has_archives() {
        outln!(
            "policy {}: volume snapshots only ({} [[snapshots]] section(s)); rpo {rpo}",
            policy.name,
            policy.snapshots.len(),
        )?;
        return print_snapshots(snapshots, now)
            .and_then(|()| verdict(policy, status, snapshots_unmet));
    }
    outln!(
        "policy {}: {} destination(s), {} series; rpo {rpo}, rto {}, verify-every {}",
        policy.name,
        named.len(),
        status.series.len(),
        policy.rto.map_or("not set".into(), |s| s.to_string()),
        policy
            .verify_every
            .map_or("not set".into(), |s| s.to_string())
    )?;
    print_series(status, now)?;
    print_destinations(status)?;
    print_restore(status)?;
    print_snapshots(snapshots, now)?;
    for u in &status.unjudged {
        outln!("note: {u}")?;
    }
    verdict(policy, status, snapshots_unmet)
}

/// The series table: each series' newest complete archive, its age, placement, rpo and rto.
fn print_series(status: &Status, now: DateTime<Utc>) -> Result<()> {
    if !status.series.is_empty() {
        outln!(
            "{:<28} {:<40} {:>9} {:<10} {:<5} {}",
            "SERIES",
            "NEWEST COMPLETE",
            "AGE",
            "PLACEMENT",
            "RPO",
            "RTO"
        )?;
    }
    for s in &status.series {
        let placement = match &s.placement {
            Some(v) if v.met => format!("met ({})", v.copies),
            Some(v) => format!("NOT MET ({})", v.copies),
            None => "-".into(),
        };
        // Not judged (said in a note) where estimates exist but none decides.
        let rto = match s.rto_met {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None if s.restore.iter().any(|e| e.rto.is_some()) => "not judged",
            None => "-",
        };
        outln!(
            "{:<28} {:<40} {:>9} {:<10} {:<5} {}",
            s.series,
            s.newest.as_deref().unwrap_or("-"),
            s.newest_created
                .map(|t| age_words(now - t))
                .unwrap_or_else(|| "-".into()),
            placement,
            match s.fresh {
                Some(true) => "ok",
                Some(false) => "LATE",
                None => "-",
            },
            rto
        )?;
    }
    Ok(())
}

/// The destination table: counts, locks and the last proof at each destination.
fn print_destinations(status: &Status) -> Result<()> {
    outln!(
        "{:<12} {:>8} {:>7} {:>10} {:>9} {:>6} {:<21} {:<21}",
        "DESTINATION",
        "COMPLETE",
        "DAMAGED",
        "INCOMPLETE",
        "UNTRUSTED",
        "LOCKED",
        "LOCKED UNTIL",
        "LAST PROVEN"
    )?;
    for d in &status.destinations {
        outln!(
            "{:<12} {:>8} {:>7} {:>10} {:>9} {:>6} {:<21} {:<21}",
            d.name,
            d.complete,
            d.damaged,
            d.incomplete,
            d.untrusted,
            d.locked,
            d.locked_until
                .map(|t| time(&t))
                .unwrap_or_else(|| "-".into()),
            match (d.last_proven, d.proven) {
                (Some(t), Some(false)) => format!("{} (too old)", time(&t)),
                (Some(t), _) => time(&t),
                (None, _) => "never".into(),
            }
        )?;
    }
    Ok(())
}

/// The restore table: per series and destination holding its newest archive, the estimated
/// restore time, the throughput the destination's newest drill measured, the thaw time of an
/// archive class, and how the estimate stands against rto.
fn print_restore(status: &Status) -> Result<()> {
    use offsite_policies::rto::{duration_words, Reach};
    if status.series.iter().all(|s| s.restore.is_empty()) {
        return Ok(());
    }
    outln!(
        "{:<12} {:<28} {:>10} {:>14} {:>6} {}",
        "RESTORE FROM",
        "SERIES",
        "ESTIMATE",
        "MEASURED",
        "THAW",
        "RTO"
    )?;
    for s in &status.series {
        for e in &s.restore {
            let measured = status
                .destinations
                .iter()
                .find(|d| d.name == e.destination)
                .and_then(|d| d.restore_measured);
            outln!(
                "{:<12} {:<28} {:>10} {:>14} {:>6} {}",
                e.destination,
                s.series,
                e.estimate
                    .map(|d| format!("~{}", duration_words(d)))
                    .unwrap_or_else(|| "-".into()),
                measured
                    .map(|m| crate::units::rate(m.bytes_per_second()))
                    .unwrap_or_else(|| "never".into()),
                e.thaw
                    .map(|t| format!("{}h", t.hours))
                    .unwrap_or_else(|| "-".into()),
                match e.rto {
                    Some(Reach::Within) => "within",
                    Some(Reach::Over) => "OVER",
                    Some(Reach::Never) => "NEVER",
                    Some(Reach::Unmeasured) => "not measured",
                    None => "-",
                }
            )?;
        }
    }
    Ok(())
}

/// The last line: every rule holds, or how many do not.
fn verdict(policy: &Policy, status: &Status, snapshots_unmet: usize) -> Result<()> {
    if status.ok() && snapshots_unmet == 0 {
        outln!("every rule of policy {} holds.", policy.name)?;
    } else {
        outln!(
            "{} rule(s) not met, {} damaged copy(ies).",
            status.unmet.len() + snapshots_unmet,
            status.damage.len()
        )?;
    }
    Ok(())
}

fn print_snapshots(rows: &[VolumeStatus], now: DateTime<Utc>) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    outln!(
        "{:<20} {:<28} {:<40} {:>9} {:<5} {:>9} {:>7} {:>6}",
        "SNAPSHOTS IN",
        "VOLUME",
        "NEWEST COMPLETED",
        "AGE",
        "RPO",
        "COMPLETED",
        "PENDING",
        "FAILED"
    )?;
    for r in rows {
        outln!(
            "{:<20} {:<28} {:<40} {:>9} {:<5} {:>9} {:>7} {:>6}",
            format!(
                "{} {}{}",
                r.provider,
                r.region,
                if r.copy { " (copy)" } else { "" }
            ),
            match &r.section {
                Some(n) => format!("{n}: {}", r.volume),
                None => r.volume.clone(),
            },
            r.newest.as_deref().unwrap_or("-"),
            r.newest_created
                .map(|t| age_words(now - t))
                .unwrap_or_else(|| "-".into()),
            match r.fresh {
                _ if r.retired => "retired",
                Some(true) => "ok",
                Some(false) => "LATE",
                None => "-",
            },
            r.completed,
            r.pending,
            r.failed
        )?;
    }
    Ok(())
}

fn snapshot_metrics(m: &mut Metrics, rows: &[VolumeStatus], now: DateTime<Utc>) {
    // A named section's series carry `section`, so two sections sharing a region stay apart.
    type Place<'a> = (&'a str, &'a str, Option<&'a str>);
    let mut per_region: std::collections::BTreeMap<Place, (usize, usize, usize)> =
        Default::default();
    for r in rows {
        let mut l = vec![
            ("provider", r.provider),
            ("region", r.region.as_str()),
            ("volume", r.volume.as_str()),
        ];
        l.extend(r.section.as_deref().map(|n| ("section", n)));
        // A retired volume is not due: no age for an alert to fire on, a flag instead.
        if r.retired {
            m.flag("offsite_snapshot_retired", &l, true);
        } else if let Some(t) = r.newest_created {
            m.time("offsite_snapshot_newest_timestamp_seconds", &l, t);
            m.set(
                "offsite_snapshot_newest_age_seconds",
                &l,
                (now - t).num_milliseconds() as f64 / 1000.0,
            );
        }
        if let Some(f) = r.fresh {
            m.flag("offsite_snapshot_rpo_met", &l, f);
        }
        let e = per_region
            .entry((r.provider, r.region.as_str(), r.section.as_deref()))
            .or_default();
        e.0 += r.completed;
        e.1 += r.pending;
        e.2 += r.failed;
    }
    for ((provider, region, section), (c, p, f)) in per_region {
        let mut l = vec![("provider", provider), ("region", region)];
        l.extend(section.map(|n| ("section", n)));
        m.set("offsite_snapshots_completed", &l, c as f64);
        m.set("offsite_snapshots_pending", &l, p as f64);
        m.set("offsite_snapshots_failed", &l, f as f64);
    }
}

fn metrics_of(m: &mut Metrics, policy: &Policy, r: &StatusReport) {
    let (status, now) = (&r.status, r.now);
    let snapshots_unmet = r.snapshots.unmet.len();
    let all_placed = !status.series.is_empty()
        && status
            .series
            .iter()
            .all(|s| s.placement.as_ref().is_some_and(|v| v.met) && s.older_unmet == 0);
    // A policy of snapshots alone places no archives: no placement to report as unmet.
    if policy.has_archives() {
        m.flag("offsite_placement_met", &[], all_placed);
    }
    m.set(
        "offsite_rules_unmet",
        &[],
        (status.unmet.len() + snapshots_unmet) as f64,
    );
    if let Some(rpo) = policy.rpo {
        m.set("offsite_rpo_seconds", &[], span_seconds(rpo, now));
    }
    if let Some(rto) = policy.rto {
        m.set("offsite_rto_seconds", &[], span_seconds(rto, now));
    }
    if let Some(every) = policy.verify_every {
        m.set(
            "offsite_verify_every_seconds",
            &[],
            span_seconds(every, now),
        );
    }
    for s in &status.series {
        let l = [("series", s.series.as_str())];
        if let Some(t) = s.newest_created {
            m.time("offsite_newest_archive_timestamp_seconds", &l, t);
            m.set(
                "offsite_newest_archive_age_seconds",
                &l,
                (now - t).num_milliseconds() as f64 / 1000.0,
            );
        }
        if let Some(v) = &s.placement {
            m.set("offsite_placement_copies", &l, f64::from(v.copies));
        }
        if let Some(f) = s.fresh {
            m.flag("offsite_rpo_met", &l, f);
        }
        if let Some(f) = s.rto_met {
            m.flag("offsite_rto_met", &l, f);
        }
        for e in &s.restore {
            if let Some(d) = e.estimate {
                let l = [
                    ("series", s.series.as_str()),
                    ("destination", e.destination.as_str()),
                ];
                m.set("offsite_restore_estimate_seconds", &l, d.as_secs_f64());
            }
        }
        m.set("offsite_placement_older_unmet", &l, s.older_unmet as f64);
    }
    for d in &status.destinations {
        let l = [("destination", d.name.as_str())];
        m.flag("offsite_destination_up", &l, r.readable(&d.name));
        m.set("offsite_archives_complete", &l, d.complete as f64);
        m.set("offsite_copies_damaged", &l, d.damaged as f64);
        m.set("offsite_uploads_incomplete", &l, d.incomplete as f64);
        m.set("offsite_archives_untrusted", &l, d.untrusted as f64);
        m.set("offsite_archives_future_dated", &l, d.future_dated as f64);
        m.set("offsite_copies_locked", &l, d.locked as f64);
        if let Some(t) = d.locked_until {
            m.time("offsite_locked_until_timestamp_seconds", &l, t);
        }
        if let Some(r) = d.restore_measured {
            m.set("offsite_restore_seconds", &l, r.took.as_secs_f64());
            m.set("offsite_restore_bytes", &l, r.bytes as f64);
            if let Some(bps) = r.bytes_per_second() {
                m.set("offsite_restore_bytes_per_second", &l, bps);
            }
        }
        if let Some(t) = d.last_proven {
            m.time("offsite_last_proof_timestamp_seconds", &l, t);
            m.set(
                "offsite_last_proof_age_seconds",
                &l,
                (now - t).num_milliseconds() as f64 / 1000.0,
            );
        }
    }
}

/// A span in seconds, measured back from `now` (months and years have calendar lengths).
fn span_seconds(span: offsite_policies::duration::Span, now: DateTime<Utc>) -> f64 {
    (now - span.before(now)).num_seconds() as f64
}
