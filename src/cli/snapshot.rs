//! `offsite snapshot`: volume snapshots (EBS, GCP persistent disks, Azure managed disks) under
//! a policy's retention and copy-to rules: create, list, restore, delete, prune.

use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use offsite_policies::policy::{Policy, SnapshotProvider};
use offsite_policies::retention::Options;
use offsite_policies::snapshot_status::volume_key;
use offsite_storage::{Snapshot, SnapshotState};
use serde::Serialize;

use crate::engine::progress::Progress;
use crate::engine::snapshot::{
    self as engine, CopyOutcome, CopyTo, CreateRequest, CreateRow, DeleteRow, Deletion, Job,
    ListScope, Listing, NewVolume, PruneReport, PruneRequest, SnapshotPlace, SnapshotRow, Subject,
};
use crate::metrics::{Metrics, MetricsArgs};
use crate::report::{exit, outln, time, Output};

/// Arguments of `offsite snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    command: SnapshotCommand,
}

#[derive(Debug, Subcommand)]
enum SnapshotCommand {
    /// Snapshot volumes (--volume, --instance, or a policy's) and copy them to other regions.
    ///
    /// Each snapshot is tagged with the policy (and a named section), the tool, the volume and
    /// the time, and a client token that makes a rerun find it instead of making another.
    Create(CreateArgs),
    /// List offsite's snapshots in a region, or a policy's in every region it names.
    ///
    /// By policy, the snapshots that carry its tag but that no section holds (a section renamed)
    /// are listed apart.
    List(ListArgs),
    /// Make a new volume from a snapshot: the restore drill for volumes.
    Restore(RestoreArgs),
    /// Delete snapshots by id.
    Delete(DeleteArgs),
    /// Delete the snapshots a policy's retention no longer keeps, in every region, behind rails.
    Prune(PruneArgs),
}

/// The provider, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Provider {
    /// EBS (AWS_REGION, AWS_PROFILE, the AWS default credential chain).
    Aws,
    /// GCP persistent disks (Application Default Credentials).
    Gcp,
    /// Azure managed disks (the azure_identity credential chain).
    Azure,
}

impl From<Provider> for SnapshotProvider {
    fn from(p: Provider) -> Self {
        match p {
            Provider::Aws => SnapshotProvider::Aws,
            Provider::Gcp => SnapshotProvider::Gcp,
            Provider::Azure => SnapshotProvider::Azure,
        }
    }
}

/// The provider and region (and GCP project, Azure resource group) a command works in, without
/// a policy.
#[derive(Debug, Clone, Args)]
struct PlaceArgs {
    /// The cloud whose volumes are snapshotted.
    #[arg(long, value_enum)]
    provider: Option<Provider>,
    /// The region (EBS, Azure) or storage location (GCP) [default: AWS_REGION or the
    /// profile's; Azure: the disk's location; GCP: the disk's region].
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// GCP: the project to list in [default: the volume's, else GOOGLE_CLOUD_PROJECT].
    #[arg(long, value_name = "PROJECT")]
    project: Option<String>,
    /// Azure: the resource group to list in and make snapshots in, as
    /// /subscriptions/S/resourceGroups/RG [default: the disk's].
    #[arg(long, value_name = "ID")]
    resource_group: Option<String>,
}

impl PlaceArgs {
    fn place(&self, first_id: Option<&str>) -> Result<SnapshotPlace> {
        let Some(p) = self.provider else {
            return Err(crate::report::usage(
                "give --provider aws|gcp|azure (with --region), or --policy FILE",
            ));
        };
        Ok(SnapshotPlace {
            provider: p.into(),
            region: self.region.clone(),
            project: self
                .project
                .clone()
                .or_else(|| first_id.and_then(engine::gcp_project))
                .or_else(|| std::env::var("GOOGLE_CLOUD_PROJECT").ok()),
            resource_group: self
                .resource_group
                .clone()
                .or_else(|| first_id.and_then(engine::azure_resource_group)),
        })
    }

    fn given(&self) -> bool {
        self.provider.is_some()
            || self.region.is_some()
            || self.project.is_some()
            || self.resource_group.is_some()
    }
}

/// The policy whose `[[snapshots]]` sections a command works on.
#[derive(Debug, Clone, Args)]
struct SnapshotPolicy {
    /// A policy file: its [[snapshots]] sections (provider, region, volumes, copy-to,
    /// retention). Without --provider, the OFFSITE_POLICY environment variable names it.
    #[arg(long, value_name = "FILE")]
    policy: Option<std::path::PathBuf>,
}

/// Arguments of `offsite snapshot create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    at: PlaceArgs,
    /// A volume to snapshot: `vol-0abc`, `projects/P/zones/Z/disks/D`, an ARM disk id
    /// (repeatable).
    #[arg(long = "volume", value_name = "ID")]
    volumes: Vec<String>,
    /// EBS: snapshot every volume of this instance together, crash-consistent across them
    /// (CreateSnapshots; repeatable).
    #[arg(long = "instance", value_name = "ID")]
    instances: Vec<String>,
    /// Copy each snapshot to this region once it is complete (EBS CopySnapshot, Azure
    /// CopyStart; repeatable).
    #[arg(long = "copy-to", value_name = "REGION")]
    copy_to: Vec<String>,
    /// EBS: encrypt the copies with this KMS key of the target region.
    #[arg(long, value_name = "KEY")]
    kms_key: Option<String>,
    /// An extra tag or label on every snapshot (repeatable; not an offsite-* key).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    #[command(flatten)]
    policy: SnapshotPolicy,
    /// What makes a rerun find the snapshots of the first run instead of making new ones
    /// [default: the UTC hour, YYYYMMDDHH]. Give a new one to snapshot again within an hour.
    #[arg(long, value_name = "TEXT")]
    token: Option<String>,
    /// Wait for every snapshot and copy to complete, with a progress display on a terminal.
    #[arg(long)]
    wait: bool,
    /// Give up waiting after this many minutes (the provider goes on).
    #[arg(long, value_name = "MINUTES", default_value_t = 240)]
    timeout: u64,
    #[command(flatten)]
    metrics: MetricsArgs,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        // The engine's own tags say which policy, section and run a snapshot belongs to:
        // set by hand they would hand it to another section's retention, or hide it.
        Some((k, _)) if k.starts_with("offsite-") || k.starts_with("offsite_") => Err(format!(
            "{k} is one of offsite's own tags (policy, section, volume, time, token): choose another key"
        )),
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// Arguments of `offsite snapshot list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    at: PlaceArgs,
    #[command(flatten)]
    policy: SnapshotPolicy,
    /// Only the snapshots of this volume.
    #[arg(long, value_name = "ID")]
    volume: Option<String>,
    /// Every snapshot of the account in the region, not only those offsite made.
    #[arg(long)]
    all: bool,
}

/// Arguments of `offsite snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot: `snap-0abc`, `projects/P/global/snapshots/N`, an ARM snapshot id.
    snapshot: String,
    #[command(flatten)]
    at: PlaceArgs,
    /// The new volume's name (an EBS Name tag; the GCP or Azure disk name).
    #[arg(long, value_name = "NAME")]
    to_volume: String,
    /// The availability zone (EBS, GCP: required) or Azure zone (optional).
    #[arg(long, value_name = "ZONE")]
    zone: Option<String>,
    /// The volume type: gp3, pd-balanced, Premium_LRS... [default: the provider's].
    #[arg(long, value_name = "TYPE")]
    volume_type: Option<String>,
    /// Wait for the volume to be made.
    #[arg(long)]
    wait: bool,
}

/// Arguments of `offsite snapshot delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Snapshot ids.
    #[arg(required = true)]
    snapshots: Vec<String>,
    #[command(flatten)]
    at: PlaceArgs,
}

/// Arguments of `offsite snapshot prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    policy: SnapshotPolicy,
    /// Print the plan and delete nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Delete nothing in a region where the plan would delete more than N snapshots
    /// [default: the retention's max-delete, else no cap].
    #[arg(long, value_name = "N")]
    max_delete: Option<u32>,
    /// Prune even when a volume's newest completed snapshot is older than the policy's rpo.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    metrics: MetricsArgs,
}

pub(super) async fn run(args: SnapshotArgs, out: Output) -> Result<u8> {
    match args.command {
        SnapshotCommand::Create(a) => {
            Metrics::around("snapshot-create", &a.metrics, async |m| {
                create(&a, out, m).await
            })
            .await
        }
        SnapshotCommand::List(a) => list(&a, out).await,
        SnapshotCommand::Restore(a) => restore(&a, out).await,
        SnapshotCommand::Delete(a) => delete(&a, out).await,
        SnapshotCommand::Prune(a) => {
            Metrics::around("snapshot-prune", &a.metrics, async |m| {
                prune(&a, out, m).await
            })
            .await
        }
    }
}

/// The policy, when one is given or named by OFFSITE_POLICY and the command line names no
/// provider.
fn policy_of(p: &SnapshotPolicy, at: &PlaceArgs, what_else: bool) -> Result<Option<Policy>> {
    if p.policy.is_some() && (at.given() || what_else) {
        return Err(crate::report::usage(
            "give --policy FILE, or --provider with volumes or snapshots, not both",
        ));
    }
    crate::policy::resolve(p.policy.as_deref(), at.given() || what_else, false)
}

/// The jobs of a policy: one per `[[snapshots]]` section.
fn policy_jobs(p: &Policy) -> Result<Vec<Job>> {
    if p.snapshots.is_empty() {
        return Err(crate::report::usage(format!(
            "policy {} has no [[snapshots]] section: add one (provider, region, volumes)",
            p.name
        )));
    }
    Ok(p.snapshots.iter().map(Job::of).collect())
}

/// The one job the command line describes without a policy.
fn adhoc_job(a: &CreateArgs) -> Result<Job> {
    if a.volumes.is_empty() && a.instances.is_empty() {
        return Err(crate::report::usage(
            "nothing to snapshot: give --volume ID (or --instance ID) with --provider, or --policy FILE",
        ));
    }
    let place = a.at.place(a.volumes.first().map(String::as_str))?;
    if !a.instances.is_empty() && place.provider != SnapshotProvider::Aws {
        return Err(crate::report::usage(
            "--instance snapshots an EBS instance's volumes together: it is for --provider aws",
        ));
    }
    if place.provider == SnapshotProvider::Gcp && !a.copy_to.is_empty() {
        return Err(crate::report::usage(
            "GCP standard snapshots cannot be copied between regions: each is stored where it is made; give --region with the storage location it must live in (a region, or a multi-region such as us) instead of --copy-to",
        ));
    }
    let mut subjects: Vec<Subject> = a.volumes.iter().cloned().map(Subject::Volume).collect();
    subjects.extend(a.instances.iter().cloned().map(Subject::Instance));
    Ok(Job {
        place,
        subjects,
        select: None,
        section: None,
        copy_to: a
            .copy_to
            .iter()
            .map(|r| CopyTo {
                region: r.clone(),
                kms_key: a.kms_key.clone(),
            })
            .collect(),
    })
}

/// The JSON document of `snapshot create`.
#[derive(Serialize)]
struct CreateDoc<'a> {
    policy: &'a str,
    time: DateTime<Utc>,
    snapshots: Vec<&'a CreateRow>,
    exit: u8,
}

async fn create(a: &CreateArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let now = Utc::now();
    let adhoc = !a.volumes.is_empty() || !a.instances.is_empty() || !a.copy_to.is_empty();
    let policy = policy_of(&a.policy, &a.at, adhoc)?;
    let policy_name = policy.as_ref().map_or("adhoc", |p| p.name.as_str());
    m.set_policy(policy_name);
    let jobs = match &policy {
        Some(p) => policy_jobs(p)?,
        None => vec![adhoc_job(a)?],
    };
    let req = CreateRequest {
        policy: policy_name.to_string(),
        jobs,
        base: a
            .token
            .clone()
            .unwrap_or_else(|| engine::default_token_base(now)),
        now,
        tags: a.tags.clone(),
        wait: a.wait,
        timeout: Duration::from_secs(a.timeout.saturating_mul(60)),
    };
    // A bar per wait on a terminal, cleared when the engine lets it go.
    let bars = |what: &str| -> Progress { crate::report::observer(&out.progress(Some(100), what)) };
    let rows = engine::create(&req, &bars, &mut |row| print_create_row(row, out.json)).await?;
    let failed: usize = rows.iter().map(CreateRow::failures).sum();
    let copy_failed: usize = rows.iter().map(CreateRow::copy_failures).sum();
    for row in &rows {
        if let CreateRow::Snapshot(s) = row {
            newest_metric(m, s);
        }
    }
    let code = if failed > 0 {
        exit::FAILED
    } else if copy_failed > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    };
    m.set(
        "offsite_snapshot_failures",
        &[],
        (failed + copy_failed) as f64,
    );
    if out.json {
        let doc = CreateDoc {
            policy: policy_name,
            time: now,
            snapshots: rows.iter().filter(|r| r.in_json()).collect(),
            exit: code,
        };
        out.print_json(&serde_json::to_value(doc)?)?;
    }
    Ok(code)
}

/// The time of a snapshot a run made or found, as the newest of its volume there.
fn newest_metric(m: &mut Metrics, s: &SnapshotRow) {
    let series = volume_key(s.provider, &s.snapshot.series());
    let mut labels = vec![
        ("provider", s.provider.as_str()),
        ("region", s.snapshot.region.as_str()),
        ("volume", series.as_str()),
    ];
    labels.extend(s.section.as_deref().map(|n| ("section", n)));
    m.time(
        "offsite_snapshot_newest_timestamp_seconds",
        &labels,
        s.snapshot.created,
    );
}

/// A row of `create` as it settles: errors and warnings on stderr, the snapshot and its copies
/// on stdout (unless `--json`).
fn print_create_row(row: &CreateRow, json: bool) -> Result<()> {
    match row {
        CreateRow::Unreachable { provider, failure } => {
            eprintln!("error: {provider} snapshots: {}", failure.0)
        }
        CreateRow::NothingSelected { select, region } => eprintln!(
            "warning: no volume in {region} carries the tag {select}: nothing to snapshot"
        ),
        CreateRow::SelectFailed {
            select, failure, ..
        } => eprintln!(
            "error: cannot list the volumes tagged {select}: {}",
            failure.0
        ),
        CreateRow::CreateFailed {
            volume, failure, ..
        } => eprintln!("error: snapshot of {volume}: {}", failure.0),
        CreateRow::Snapshot(s) => print_snapshot_row(s, json)?,
    }
    Ok(())
}

fn print_snapshot_row(s: &SnapshotRow, json: bool) -> Result<()> {
    let snap = &s.snapshot;
    if let Some(e) = &s.wait_failed {
        eprintln!("error: waiting for {}: {e}", snap.id);
    }
    if let SnapshotState::Failed(why) = &snap.state {
        eprintln!(
            "error: snapshot {} of {} failed at the provider: {why}",
            snap.id,
            snap.series()
        );
    }
    if !json {
        outln!(
            "{} {} {} {} {}{}",
            snap.region,
            snap.series(),
            snap.id,
            snap.state.as_str(),
            if s.reused {
                "found (same token)"
            } else {
                "created"
            },
            snap.progress.map(|p| format!(" {p}%")).unwrap_or_default()
        )?;
    }
    for copy in &s.copies {
        let region = &copy.region;
        match &copy.outcome {
            CopyOutcome::Made(c) => {
                if let SnapshotState::Failed(why) = &c.state {
                    eprintln!(
                        "error: copy {} of {} to {region} failed at the provider: {why}",
                        c.id, snap.id
                    );
                }
                if !json {
                    let (series, state) = (c.series(), c.state.as_str());
                    outln!("{region} {series} {} {state} copy of {}", c.id, snap.id)?;
                }
            }
            CopyOutcome::Failed(e) => eprintln!("error: copy of {} to {region}: {e}", snap.id),
        }
    }
    Ok(())
}

async fn list(a: &ListArgs, out: Output) -> Result<u8> {
    let policy = policy_of(&a.policy, &a.at, false)?;
    let scope = match &policy {
        Some(p) => ListScope::Policy(p),
        None => ListScope::Place {
            place: a.at.place(a.volume.as_deref())?,
            all: a.all,
        },
    };
    let listing = engine::list(&scope, a.volume.as_deref()).await?;
    if out.json {
        out.print_json(&serde_json::to_value(&listing)?)?;
        return Ok(exit::OK);
    }
    print_listing(&listing)?;
    Ok(exit::OK)
}

fn print_listing(listing: &Listing) -> Result<()> {
    outln!(
        "{:<14} {:<28} {:<40} {:<21} {:<10} {:>6}",
        "REGION",
        "VOLUME",
        "SNAPSHOT",
        "CREATED",
        "STATE",
        "GIB"
    )?;
    for row in &listing.snapshots {
        let s = &row.snapshot;
        outln!(
            "{:<14} {:<28} {:<40} {:<21} {:<10} {:>6}",
            row.region,
            s.series(),
            s.id,
            time(&s.created),
            match (&s.state, s.progress) {
                (SnapshotState::Pending, Some(p)) => format!("pending {p}%"),
                (st, _) => st.as_str().to_string(),
            },
            s.size_gib.map_or("-".into(), |g| g.to_string())
        )?;
    }
    let unclaimed = listing.unclaimed.as_deref().unwrap_or_default();
    if !unclaimed.is_empty() {
        outln!(
            "{} snapshot(s) carry the policy's tag but no section holds them (a section renamed, or named since): no retention reaches them; delete them with `offsite snapshot delete`, or give the section its old name back:",
            unclaimed.len()
        )?;
        for row in unclaimed {
            let s: &Snapshot = &row.snapshot;
            outln!(
                "{:<14} {:<28} {:<40} {:<21} section {}",
                row.region,
                s.series(),
                s.id,
                time(&s.created),
                s.tag(offsite_storage::tags::SECTION).unwrap_or("(none)")
            )?;
        }
    }
    Ok(())
}

async fn restore(a: &RestoreArgs, out: Output) -> Result<u8> {
    let req = NewVolume {
        place: a.at.place(Some(&a.snapshot))?,
        snapshot: a.snapshot.clone(),
        name: a.to_volume.clone(),
        zone: a.zone.clone(),
        volume_type: a.volume_type.clone(),
        wait: a.wait,
    };
    let r = engine::restore(&req).await?;
    if out.json {
        out.print_json(&serde_json::to_value(&r)?)?;
    } else {
        outln!(
            "volume {} from {} ({}) in {}: {}",
            r.volume.id,
            r.snapshot.id,
            time(&r.snapshot.created),
            r.volume.zone.as_deref().unwrap_or(&r.region),
            r.volume.state
        )?;
    }
    Ok(exit::OK)
}

/// The JSON document of `snapshot delete`.
#[derive(Serialize)]
struct DeleteDoc<'a> {
    deleted: &'a [DeleteRow],
}

async fn delete(a: &DeleteArgs, out: Output) -> Result<u8> {
    let place = a.at.place(a.snapshots.first().map(String::as_str))?;
    let rows = engine::delete(&place, &a.snapshots).await?;
    let mut failed = 0;
    for r in &rows {
        match &r.outcome {
            Deletion::Failed(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
            _ if !out.json => outln!("deleted {}", r.snapshot)?,
            _ => {}
        }
    }
    if out.json {
        out.print_json(&serde_json::to_value(DeleteDoc { deleted: &rows })?)?;
    }
    Ok(if failed > 0 { exit::FAILED } else { exit::OK })
}

/// The JSON document of `snapshot prune`.
#[derive(Serialize)]
struct PruneDoc<'a> {
    policy: &'a str,
    dry_run: bool,
    plans: &'a [engine::RegionPlan],
    deleted: &'a [DeleteRow],
    refused: bool,
    exit: u8,
}

async fn prune(a: &PruneArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let Some(policy) = crate::policy::resolve(a.policy.policy.as_deref(), false, false)? else {
        return Err(crate::report::usage(
            "snapshot prune works by policy: give --policy FILE or set OFFSITE_POLICY",
        ));
    };
    m.set_policy(&policy.name);
    if policy.snapshots.is_empty() {
        return Err(crate::report::usage(format!(
            "policy {} has no [[snapshots]] section: nothing to prune",
            policy.name
        )));
    }
    let report = engine::prune(PruneRequest {
        policy: &policy,
        now: Utc::now(),
        options: Options {
            force: a.force,
            max_delete: a.max_delete,
        },
        dry_run: a.dry_run,
    })
    .await?;
    let refused = report.refused();
    m.set("offsite_snapshot_prune_kept", &[], report.kept() as f64);
    m.set(
        "offsite_snapshot_prune_planned",
        &[],
        report.planned() as f64,
    );
    m.set(
        "offsite_snapshot_prune_deleted",
        &[],
        report.deleted_now() as f64,
    );
    m.flag("offsite_prune_refused", &[], refused);
    let code = if refused {
        exit::REFUSED
    } else if report.failed() > 0 {
        exit::FAILED
    } else {
        exit::OK
    };
    for d in &report.deleted {
        if let Deletion::Failed(e) = &d.outcome {
            eprintln!("error: {e}");
        }
    }
    if out.json {
        out.print_json(&serde_json::to_value(PruneDoc {
            policy: &policy.name,
            dry_run: a.dry_run,
            plans: &report.plans,
            deleted: &report.deleted,
            refused,
            exit: code,
        })?)?;
    } else {
        print_prune(&report, a.dry_run)?;
    }
    for r in report.refusals() {
        eprintln!("error: refused: {r}");
    }
    Ok(code)
}

fn print_prune(report: &PruneReport, dry_run: bool) -> Result<()> {
    let refused = report.refused();
    for p in &report.plans {
        for d in &p.plan.items {
            outln!(
                "{:<14} {:<28} {:<40} {:<21} {:<6} {}",
                p.region,
                match &p.name {
                    Some(n) => format!("{n}: {}", d.volume),
                    None => d.volume.clone(),
                },
                d.id,
                time(&d.created),
                if d.keep {
                    "keep"
                } else if refused || dry_run {
                    "would delete"
                } else {
                    "delete"
                },
                d.reasons.join(", ")
            )?;
        }
    }
    let (planned, kept) = (report.planned(), report.kept());
    if refused {
        outln!("refused: nothing deleted.")?;
    } else if dry_run {
        outln!("dry run: {planned} snapshot(s) would be deleted, {kept} kept.")?;
    } else {
        let (deleted, failed) = (report.deleted_now(), report.failed());
        outln!("{deleted} snapshot(s) deleted, {kept} kept, {failed} failed.")?;
    }
    Ok(())
}
