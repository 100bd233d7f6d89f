//! `offsite status`: whether a policy's rules hold over what its destinations store, as a
//! monitoring probe (exit codes per README) and as Prometheus metrics.

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use offsite_policies::placement::slots;
use offsite_policies::policy::Policy;
use offsite_policies::status::{age_words, judge, DestinationStatus, SeriesStatus, Status};
use serde::Serialize;

use super::{InventoryArgs, PolicyArgs};
use crate::engine::inventory::read_inventory;
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
    pub(super) metrics: MetricsArgs,
}

/// The `[[snapshots]]` sections read and judged: their rows, their unmet rules, and the
/// sections that could not be read (`[[snapshots]] name (provider)`, error).
#[derive(Default)]
struct Snapshots {
    rows: Vec<VolumeStatus>,
    unmet: Vec<String>,
    unreadable: Vec<(String, String)>,
}

/// Snapshots beside archives: every region of every `[[snapshots]]` section.
async fn snapshots(policy: &Policy, now: DateTime<Utc>) -> Snapshots {
    let mut out = Snapshots::default();
    for (i, s) in policy.snapshots.iter().enumerate() {
        match crate::engine::snapshot::section_regions(policy, s).await {
            Ok(h) => {
                let (rows, unmet) = offsite_policies::snapshot_status::judge(policy, s, &h, now);
                out.rows.extend(rows);
                out.unmet.extend(unmet);
            }
            Err(e) => out.unreadable.push((
                format!(
                    "[[snapshots]] {} ({})",
                    s.name.clone().unwrap_or_else(|| format!("#{}", i + 1)),
                    s.provider.as_str()
                ),
                format!("{e:#}"),
            )),
        }
    }
    out
}

/// What `status` read and judged.
struct Found<'a> {
    policy: &'a Policy,
    /// The destinations' (name, url), in the policy's order.
    named: &'a [(String, String)],
    status: Status,
    /// The destinations that could not be read: (name, error).
    unreadable: Vec<(String, String)>,
    snaps: Snapshots,
    now: DateTime<Utc>,
}

impl Found<'_> {
    /// The exit status: unreadable, then damaged, then a rule not met.
    fn code(&self) -> u8 {
        if !self.unreadable.is_empty() || !self.snaps.unreadable.is_empty() {
            exit::FAILED
        } else if !self.status.damage.is_empty() {
            exit::DAMAGED
        } else if !self.status.unmet.is_empty() || !self.snaps.unmet.is_empty() {
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
    let (inv, reads) = read_inventory(policy, &locations, args.inventory.options()).await;
    let now = Utc::now();
    let unreadable = reads
        .iter()
        .zip(&place.named)
        .filter_map(|(r, (name, _))| r.entries.as_ref().err().map(|e| (name.clone(), e.clone())))
        .collect();
    let f = Found {
        policy,
        named: &place.named,
        status: judge(policy, &slots(policy), &inv, now),
        unreadable,
        snaps: snapshots(policy, now).await,
        now,
    };
    let (status, snaps) = (&f.status, &f.snaps);
    let code = f.code();
    metrics_of(m, policy, status, &f.unreadable, snaps.unmet.len(), now);
    snapshot_metrics(m, &snaps.rows, now);
    if out.json {
        out.print_json(&serde_json::to_value(json(&f, code))?)?;
    } else {
        let unmet = snaps.unmet.len();
        print_text(policy, status, f.named, now, &snaps.rows, unmet)?;
    }
    for (n, e) in &f.unreadable {
        eprintln!("error: cannot read destination {n}: {e}");
    }
    for (n, e) in &snaps.unreadable {
        eprintln!("error: cannot read the snapshots of {n}: {e}");
    }
    for d in &status.damage {
        eprintln!("error: damaged: {d}");
    }
    for u in status.unmet.iter().chain(&snaps.unmet) {
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
    verify_every: Option<String>,
    series: &'a [SeriesStatus],
    destinations: Vec<JsonDestination<'a>>,
    unreadable: Vec<Unreadable<'a>>,
    damage: &'a [String],
    unmet: Vec<&'a String>,
    snapshots: &'a [VolumeStatus],
    exit: u8,
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
    let (policy, status, snaps) = (f.policy, &f.status, &f.snaps);
    let unreadable = &f.unreadable;
    let destinations = status
        .destinations
        .iter()
        .zip(f.named)
        .map(|(d, (_, url))| JsonDestination {
            status: d,
            url,
            readable: !unreadable.iter().any(|(n, _)| n == &d.name),
        })
        .collect();
    let unreadable = unreadable
        .iter()
        .map(|(n, e)| Unreadable::Destination {
            destination: n,
            error: e,
        })
        .chain(snaps.unreadable.iter().map(|(n, e)| Unreadable::Snapshots {
            snapshots: n,
            error: e,
        }))
        .collect();
    Json {
        policy: &policy.name,
        time: f.now,
        rpo: policy.rpo.map(|s| s.to_string()),
        verify_every: policy.verify_every.map(|s| s.to_string()),
        series: &status.series,
        destinations,
        unreadable,
        damage: &status.damage,
        unmet: status.unmet.iter().chain(&snaps.unmet).collect(),
        snapshots: &snaps.rows,
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
        "policy {}: {} destination(s), {} series; rpo {rpo}, verify-every {}",
        policy.name,
        named.len(),
        status.series.len(),
        policy
            .verify_every
            .map_or("not set".into(), |s| s.to_string())
    )?;
    print_series(status, now)?;
    print_destinations(status)?;
    print_snapshots(snapshots, now)?;
    verdict(policy, status, snapshots_unmet)
}

/// The series table: each series' newest complete archive, its age, placement and rpo.
fn print_series(status: &Status, now: DateTime<Utc>) -> Result<()> {
    if !status.series.is_empty() {
        outln!(
            "{:<28} {:<40} {:>9} {:<10} {:<5}",
            "SERIES",
            "NEWEST COMPLETE",
            "AGE",
            "PLACEMENT",
            "RPO"
        )?;
    }
    for s in &status.series {
        let placement = match &s.placement {
            Some(v) if v.met => format!("met ({})", v.copies),
            Some(v) => format!("NOT MET ({})", v.copies),
            None => "-".into(),
        };
        outln!(
            "{:<28} {:<40} {:>9} {:<10} {:<5}",
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
            }
        )?;
    }
    Ok(())
}

/// The destination table: counts, locks and the last proof at each destination.
fn print_destinations(status: &Status) -> Result<()> {
    outln!(
        "{:<12} {:>8} {:>7} {:>10} {:>6} {:<21} {:<21}",
        "DESTINATION",
        "COMPLETE",
        "DAMAGED",
        "INCOMPLETE",
        "LOCKED",
        "LOCKED UNTIL",
        "LAST PROVEN"
    )?;
    for d in &status.destinations {
        outln!(
            "{:<12} {:>8} {:>7} {:>10} {:>6} {:<21} {:<21}",
            d.name,
            d.complete,
            d.damaged,
            d.incomplete,
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

fn metrics_of(
    m: &mut Metrics,
    policy: &Policy,
    status: &Status,
    unreadable: &[(String, String)],
    snapshots_unmet: usize,
    now: DateTime<Utc>,
) {
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
        m.set("offsite_placement_older_unmet", &l, s.older_unmet as f64);
    }
    for d in &status.destinations {
        let l = [("destination", d.name.as_str())];
        m.flag(
            "offsite_destination_up",
            &l,
            !unreadable.iter().any(|(n, _)| n == &d.name),
        );
        m.set("offsite_archives_complete", &l, d.complete as f64);
        m.set("offsite_copies_damaged", &l, d.damaged as f64);
        m.set("offsite_uploads_incomplete", &l, d.incomplete as f64);
        m.set("offsite_copies_locked", &l, d.locked as f64);
        if let Some(t) = d.locked_until {
            m.time("offsite_locked_until_timestamp_seconds", &l, t);
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
