//! `offsite snapshot`: volume snapshots (EBS, GCP persistent disks, Azure managed disks) under
//! a policy's retention and copy-to rules: create, list, restore, delete, prune.

use std::time::Duration;

use anyhow::Result;
use chrono::Utc;
use clap::{Args, Subcommand, ValueEnum};
use offsite_policies::policy::{Policy, SnapshotProvider};
use offsite_policies::retention::Options;
use offsite_storage::{RestoreVolume, Snapshot, SnapshotState};
use serde_json::json;

use crate::engine::snapshot::{self as engine, Subject, Target};
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

/// Where, without a policy.
#[derive(Debug, Clone, Args)]
struct Where {
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

impl Where {
    fn target(&self, first_id: Option<&str>) -> Result<Target> {
        let Some(p) = self.provider else {
            return Err(crate::report::usage(
                "give --provider aws|gcp|azure (with --region), or --policy FILE",
            ));
        };
        Ok(Target {
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
    at: Where,
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
    at: Where,
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
    at: Where,
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
    at: Where,
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

/// One job of `create`: a target, what to snapshot there, where to copy.
struct Job {
    target: Target,
    subjects: Vec<Subject>,
    /// A policy's `select = "key=value"`: volumes found when the job runs.
    select: Option<String>,
    copy_to: Vec<(String, Option<String>)>,
    /// The policy section's name, tagged on its snapshots.
    section: Option<String>,
}

/// The policy, when one is given or named by OFFSITE_POLICY and the command line names no
/// provider.
fn policy_of(p: &SnapshotPolicy, at: &Where, what_else: bool) -> Result<Option<Policy>> {
    if p.policy.is_some() && (at.given() || what_else) {
        return Err(crate::report::usage(
            "give --policy FILE, or --provider with volumes or snapshots, not both",
        ));
    }
    match crate::policy::chosen(p.policy.as_deref(), at.given() || what_else) {
        Some(path) => Ok(Some(crate::policy::load(&path)?)),
        None => Ok(None),
    }
}

async fn create(a: &CreateArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let now = Utc::now();
    let adhoc = !a.volumes.is_empty() || !a.instances.is_empty() || !a.copy_to.is_empty();
    let policy = policy_of(&a.policy, &a.at, adhoc)?;
    let policy_name = policy
        .as_ref()
        .map_or("adhoc", |p| p.name.as_str())
        .to_string();
    m.set_policy(&policy_name);
    let mut jobs = Vec::new();
    match &policy {
        Some(p) => {
            if p.snapshots.is_empty() {
                return Err(crate::report::usage(format!(
                    "policy {} has no [[snapshots]] section: add one (provider, region, volumes)",
                    p.name
                )));
            }
            for s in &p.snapshots {
                let target = Target::of(s);
                let mut subjects: Vec<Subject> =
                    s.volumes.iter().cloned().map(Subject::Volume).collect();
                subjects.extend(s.instances.iter().cloned().map(Subject::Instance));
                jobs.push(Job {
                    target,
                    subjects,
                    select: s.select.clone(),
                    section: s.name.clone(),
                    copy_to: s
                        .copy_to
                        .iter()
                        .map(|c| (c.region.clone(), c.kms_key.clone()))
                        .collect(),
                });
            }
        }
        None => {
            if a.volumes.is_empty() && a.instances.is_empty() {
                return Err(crate::report::usage(
                    "nothing to snapshot: give --volume ID (or --instance ID) with --provider, or --policy FILE",
                ));
            }
            let first = a.volumes.first().map(String::as_str);
            let target = a.at.target(first)?;
            if !a.instances.is_empty() && target.provider != SnapshotProvider::Aws {
                return Err(crate::report::usage(
                    "--instance snapshots an EBS instance's volumes together: it is for --provider aws",
                ));
            }
            if target.provider == SnapshotProvider::Gcp && !a.copy_to.is_empty() {
                return Err(crate::report::usage(
                    "GCP standard snapshots cannot be copied between regions: each is stored where it is made; give --region with the storage location it must live in (a region, or a multi-region such as us) instead of --copy-to",
                ));
            }
            let mut subjects: Vec<Subject> =
                a.volumes.iter().cloned().map(Subject::Volume).collect();
            subjects.extend(a.instances.iter().cloned().map(Subject::Instance));
            jobs.push(Job {
                target,
                subjects,
                select: None,
                section: None,
                copy_to: a
                    .copy_to
                    .iter()
                    .map(|r| (r.clone(), a.kms_key.clone()))
                    .collect(),
            });
        }
    }
    let base = a
        .token
        .clone()
        .unwrap_or_else(|| engine::default_token_base(now));
    let timeout = Duration::from_secs(a.timeout.saturating_mul(60));
    let mut rows: Vec<serde_json::Value> = Vec::new();
    let (mut failed, mut copy_failed) = (0usize, 0usize);
    // A section whose provider cannot be reached or will not take the credentials fails alone
    // (exit 1): the other sections still get their snapshots. A wrong region or id is exit 2.
    for job in &jobs {
        let home = match engine::open(&job.target).await {
            Ok(h) => h,
            Err(e) if e.downcast_ref::<crate::report::UsageError>().is_some() => return Err(e),
            Err(e) => {
                failed += 1;
                eprintln!("error: {} snapshots: {e:#}", job.target.provider.as_str());
                rows.push(json!({"provider": job.target.provider.as_str(), "ok": false, "error": format!("{e:#}")}));
                continue;
            }
        };
        // Each copy-to region is opened once for the job, not once per snapshot.
        let mut dests = Vec::new();
        for (region, kms) in &job.copy_to {
            engine::same_region(home.region(), region)?;
            let dest = match engine::open(&job.target.in_region(region)).await {
                Ok(d) => Ok(d),
                Err(e) if e.downcast_ref::<crate::report::UsageError>().is_some() => return Err(e),
                Err(e) => Err(format!("{e:#}")),
            };
            dests.push((region, kms.as_deref(), dest));
        }
        let mut subjects = job.subjects.clone();
        if let Some(sel) = &job.select {
            let (k, v) = sel.split_once('=').expect("checked at parse");
            match home.volumes(k, v).await {
                Ok(found) if found.is_empty() => eprintln!(
                    "warning: no volume in {} carries the tag {sel}: nothing to snapshot",
                    home.region()
                ),
                Ok(found) => subjects.extend(found.into_iter().map(|v| Subject::Volume(v.id))),
                Err(e) => {
                    failed += 1;
                    eprintln!("error: cannot list the volumes tagged {sel}: {e}");
                    rows.push(json!({"select": sel, "region": home.region(), "ok": false, "error": e.to_string()}));
                    continue;
                }
            }
        }
        for subject in &subjects {
            let maker = engine::Maker {
                policy: &policy_name,
                section: job.section.as_deref(),
            };
            let made = match engine::create(home.as_ref(), maker, subject, &base, now, &a.tags)
                .await
            {
                Ok(v) => v,
                Err(e) => {
                    failed += 1;
                    eprintln!("error: snapshot of {}: {e}", subject.id());
                    rows.push(json!({"volume": subject.id(), "region": home.region(), "ok": false, "error": e.to_string()}));
                    continue;
                }
            };
            for (mut snap, reused) in made {
                // A copy starts from a completed snapshot: copy-to waits for it.
                let must_wait = a.wait || !job.copy_to.is_empty();
                let unfinished = snap.state == SnapshotState::Pending || snap.operation.is_some();
                if must_wait && unfinished {
                    match engine::wait(home.as_ref(), &snap, out, timeout).await {
                        Ok(s) => snap = s,
                        Err(e) => {
                            failed += 1;
                            eprintln!("error: waiting for {}: {e}", snap.id);
                        }
                    }
                }
                let ok = !matches!(snap.state, SnapshotState::Failed(_));
                if !ok {
                    failed += 1;
                    if let SnapshotState::Failed(why) = &snap.state {
                        eprintln!(
                            "error: snapshot {} of {} failed at the provider: {why}",
                            snap.id,
                            snap.series()
                        );
                    }
                }
                if !out.json {
                    outln!(
                        "{} {} {} {} {}{}",
                        snap.region,
                        snap.series(),
                        snap.id,
                        snap.state.as_str(),
                        if reused {
                            "found (same token)"
                        } else {
                            "created"
                        },
                        snap.progress.map(|p| format!(" {p}%")).unwrap_or_default()
                    )?;
                }
                let mut copies = Vec::new();
                for (region, kms, dest) in &dests {
                    let res = match dest {
                        Ok(d) => copy_one(d.as_ref(), &snap, *kms, a.wait, out, timeout).await,
                        Err(e) => Err(anyhow::anyhow!("{e}")),
                    };
                    match res {
                        Ok(c) => {
                            if let SnapshotState::Failed(why) = &c.state {
                                copy_failed += 1;
                                eprintln!("error: copy {} of {} to {region} failed at the provider: {why}", c.id, snap.id);
                            }
                            if !out.json {
                                outln!(
                                    "{region} {} {} {} copy of {}",
                                    c.series(),
                                    c.id,
                                    c.state.as_str(),
                                    snap.id
                                )?;
                            }
                            copies.push(json!({"region": region, "snapshot": c, "ok": !matches!(c.state, SnapshotState::Failed(_))}));
                        }
                        Err(e) => {
                            copy_failed += 1;
                            eprintln!("error: copy of {} to {region}: {e:#}", snap.id);
                            copies.push(
                                json!({"region": region, "ok": false, "error": format!("{e:#}")}),
                            );
                        }
                    }
                }
                let series = engine::volume_key(job.target.provider, &snap.series());
                let mut labels = vec![
                    ("provider", job.target.provider.as_str()),
                    ("region", snap.region.as_str()),
                    ("volume", series.as_str()),
                ];
                labels.extend(job.section.as_deref().map(|n| ("section", n)));
                m.time(
                    "offsite_snapshot_newest_timestamp_seconds",
                    &labels,
                    snap.created,
                );
                rows.push(json!({"section": job.section, "volume": snap.series(), "region": snap.region, "snapshot": snap, "reused": reused, "ok": ok, "copies": copies}));
            }
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
        out.print_json(
            &json!({"policy": policy_name, "time": now, "snapshots": rows, "exit": code}),
        )?;
    }
    Ok(code)
}

/// Copies one completed snapshot to a region (the source must be complete: a pending one is
/// waited for first by the caller).
async fn copy_one(
    dest: &dyn offsite_storage::Snapshots,
    snap: &Snapshot,
    kms: Option<&str>,
    wait: bool,
    out: Output,
    timeout: Duration,
) -> Result<Snapshot> {
    if snap.state != SnapshotState::Completed {
        anyhow::bail!("the snapshot is {}, and only a completed snapshot can be copied; run again with --wait", snap.state.as_str());
    }
    let mut c = engine::copy(dest, snap, kms).await?.snapshot;
    if wait && (c.state == SnapshotState::Pending || c.operation.is_some()) {
        c = engine::wait(dest, &c, out, timeout).await?;
    }
    Ok(c)
}

async fn list(a: &ListArgs, out: Output) -> Result<u8> {
    let policy = policy_of(&a.policy, &a.at, false)?;
    let mut rows: Vec<(String, Snapshot)> = Vec::new();
    let mut unclaimed: Vec<(String, Snapshot)> = Vec::new();
    match &policy {
        Some(p) => {
            for s in &p.snapshots {
                for h in engine::holdings(p, s).await? {
                    rows.extend(h.snapshots.into_iter().map(|s| (h.region.clone(), s)));
                }
            }
            let claimed = rows.iter().map(|(_, s)| s.id.clone()).collect();
            unclaimed = engine::unclaimed(p, &claimed).await?;
        }
        None => {
            let target = a.at.target(a.volume.as_deref())?;
            let snaps = engine::open(&target).await?;
            let filter = if a.all {
                vec![]
            } else {
                vec![(
                    offsite_storage::tags::TOOL.to_string(),
                    offsite_storage::tags::TOOL_VALUE.to_string(),
                )]
            };
            let found = snaps
                .list(&filter)
                .await
                .map_err(crate::report::store_error)?;
            rows.extend(found.into_iter().map(|s| (snaps.region().to_string(), s)));
        }
    }
    for r in [&mut rows, &mut unclaimed] {
        if let Some(v) = &a.volume {
            r.retain(|(_, s)| s.series() == *v || s.volume.as_deref() == Some(v.as_str()));
        }
        r.sort_by(|a, b| (&a.0, a.1.series(), b.1.created).cmp(&(&b.0, b.1.series(), a.1.created)));
    }
    if out.json {
        let doc = match policy {
            Some(_) => json!({
                "snapshots": rows.iter().map(|(_, s)| s).collect::<Vec<_>>(),
                "unclaimed": unclaimed.iter().map(|(_, s)| s).collect::<Vec<_>>(),
            }),
            None => json!({"snapshots": rows.iter().map(|(_, s)| s).collect::<Vec<_>>()}),
        };
        out.print_json(&doc)?;
        return Ok(exit::OK);
    }
    outln!(
        "{:<14} {:<28} {:<40} {:<21} {:<10} {:>6}",
        "REGION",
        "VOLUME",
        "SNAPSHOT",
        "CREATED",
        "STATE",
        "GIB"
    )?;
    for (region, s) in &rows {
        outln!(
            "{:<14} {:<28} {:<40} {:<21} {:<10} {:>6}",
            region,
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
    if !unclaimed.is_empty() {
        outln!(
            "{} snapshot(s) carry the policy's tag but no section holds them (a section renamed, or named since): no retention reaches them; delete them with `offsite snapshot delete`, or give the section its old name back:",
            unclaimed.len()
        )?;
        for (region, s) in &unclaimed {
            outln!(
                "{:<14} {:<28} {:<40} {:<21} section {}",
                region,
                s.series(),
                s.id,
                time(&s.created),
                s.tag(offsite_storage::tags::SECTION).unwrap_or("(none)")
            )?;
        }
    }
    Ok(exit::OK)
}

async fn restore(a: &RestoreArgs, out: Output) -> Result<u8> {
    let target = a.at.target(Some(&a.snapshot))?;
    let snaps = engine::open(&target).await?;
    let snap = snaps
        .get(&a.snapshot)
        .await
        .map_err(crate::report::store_error)?;
    if snap.state != SnapshotState::Completed {
        anyhow::bail!(
            "snapshot {} is {}: only a completed snapshot can be restored{}",
            snap.id,
            snap.state.as_str(),
            if snap.state == SnapshotState::Pending {
                "; wait for it (offsite snapshot list shows its progress)"
            } else {
                ""
            }
        );
    }
    let spec = RestoreVolume {
        name: a.to_volume.clone(),
        zone: a.zone.clone(),
        volume_type: a.volume_type.clone(),
        token: engine::token(&["restore", &snap.id, &a.to_volume]),
        tags: [
            (
                offsite_storage::tags::TOOL.to_string(),
                offsite_storage::tags::TOOL_VALUE.to_string(),
            ),
            (offsite_storage::tags::SOURCE.to_string(), snap.id.clone()),
        ]
        .into_iter()
        .collect(),
    };
    let mut vol = snaps
        .restore(&snap, &spec)
        .await
        .map_err(crate::report::store_error)?;
    if a.wait {
        vol = wait_volume(snaps.as_ref(), vol).await?;
    }
    if out.json {
        out.print_json(&json!({"snapshot": snap, "volume": vol}))?;
    } else {
        outln!(
            "volume {} from {} ({}) in {}: {}",
            vol.id,
            snap.id,
            time(&snap.created),
            vol.zone.as_deref().unwrap_or(snaps.region()),
            vol.state
        )?;
    }
    Ok(exit::OK)
}

/// Polls a new volume until the provider says it is usable.
async fn wait_volume(
    snaps: &dyn offsite_storage::Snapshots,
    mut vol: offsite_storage::Volume,
) -> Result<offsite_storage::Volume> {
    let ready = |s: &str| {
        matches!(
            s.to_ascii_lowercase().as_str(),
            "available" | "ready" | "succeeded" | "unattached" | "in-use"
        )
    };
    let started = std::time::Instant::now();
    while !ready(&vol.state) {
        if vol.state.eq_ignore_ascii_case("error") || vol.state.eq_ignore_ascii_case("failed") {
            anyhow::bail!(
                "volume {} failed at the provider (state {})",
                vol.id,
                vol.state
            );
        }
        if started.elapsed() > Duration::from_secs(3600) {
            anyhow::bail!("volume {} still {} after an hour", vol.id, vol.state);
        }
        tokio::time::sleep(engine::poll_interval()).await;
        vol = snaps
            .volume(&vol.id)
            .await
            .map_err(crate::report::store_error)?;
    }
    Ok(vol)
}

async fn delete(a: &DeleteArgs, out: Output) -> Result<u8> {
    let target = a.at.target(a.snapshots.first().map(String::as_str))?;
    let snaps = engine::open(&target).await?;
    let mut failed = 0;
    let mut rows = Vec::new();
    for id in &a.snapshots {
        match snaps.delete(id).await {
            Ok(()) => {
                if !out.json {
                    outln!("deleted {id}")?;
                }
                rows.push(json!({"snapshot": id, "ok": true}));
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
                rows.push(json!({"snapshot": id, "ok": false, "error": e.to_string()}));
            }
        }
    }
    if out.json {
        out.print_json(&json!({"deleted": rows}))?;
    }
    Ok(if failed > 0 { exit::FAILED } else { exit::OK })
}

async fn prune(a: &PruneArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let Some(path) = crate::policy::chosen(a.policy.policy.as_deref(), false) else {
        return Err(crate::report::usage(
            "snapshot prune works by policy: give --policy FILE or set OFFSITE_POLICY",
        ));
    };
    let policy = crate::policy::load(&path)?;
    m.set_policy(&policy.name);
    if policy.snapshots.is_empty() {
        return Err(crate::report::usage(format!(
            "policy {} has no [[snapshots]] section: nothing to prune",
            policy.name
        )));
    }
    let now = Utc::now();
    let options = Options {
        force: a.force,
        max_delete: a.max_delete,
    };
    // Every region of every section is read before anything is deleted.
    let mut plans = Vec::new();
    for (i, s) in policy.snapshots.iter().enumerate() {
        let holdings = engine::holdings(&policy, s).await?;
        let every: Vec<&Snapshot> = holdings.iter().flat_map(|h| h.snapshots.iter()).collect();
        for h in &holdings {
            let rule = match h.copy {
                None => s.retention_here(&policy),
                Some(c) => s.retention_of(&s.copy_to[c], &policy),
            };
            let items = engine::items(s, &h.snapshots, &every);
            let plan = offsite_policies::snapshots::plan(
                &format!(
                    "{}{} {}",
                    s.name
                        .as_ref()
                        .map(|n| format!("{n}: "))
                        .unwrap_or_default(),
                    h.provider,
                    h.region
                ),
                rule,
                &items,
                now,
                policy.rpo,
                options,
            );
            plans.push((i, h.snaps.clone(), h.region.clone(), plan));
        }
    }
    let refusals: Vec<&String> = plans.iter().flat_map(|(_, _, _, p)| &p.refusals).collect();
    let refused = !refusals.is_empty();
    let mut deleted = 0usize;
    let mut failed = 0usize;
    let mut done = Vec::new();
    if !refused && !a.dry_run {
        // Through the adapters that listed them: nothing is opened twice.
        for (_, snaps, region, plan) in &plans {
            for d in plan.deletions() {
                match snaps.delete(&d.id).await {
                    Ok(()) => {
                        deleted += 1;
                        done.push(json!({"region": region, "snapshot": d.id, "ok": true}));
                    }
                    Err(e) if e.is_not_found() => {
                        done.push(json!({"region": region, "snapshot": d.id, "ok": true, "detail": "already gone"}));
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: {e}");
                        done.push(json!({"region": region, "snapshot": d.id, "ok": false, "error": e.to_string()}));
                    }
                }
            }
        }
    }
    let planned: usize = plans.iter().map(|(_, _, _, p)| p.deletions().count()).sum();
    let kept: usize = plans
        .iter()
        .map(|(_, _, _, p)| p.items.len())
        .sum::<usize>()
        - planned;
    m.set("offsite_snapshot_prune_kept", &[], kept as f64);
    m.set("offsite_snapshot_prune_planned", &[], planned as f64);
    m.set("offsite_snapshot_prune_deleted", &[], deleted as f64);
    m.flag("offsite_prune_refused", &[], refused);
    let code = if refused {
        exit::REFUSED
    } else if failed > 0 {
        exit::FAILED
    } else {
        exit::OK
    };
    if out.json {
        out.print_json(&json!({
            "policy": policy.name,
            "dry_run": a.dry_run,
            "plans": plans.iter().map(|(i, _, r, p)| json!({"section": i + 1, "name": policy.snapshots[*i].name, "region": r, "items": p.items, "refusals": p.refusals})).collect::<Vec<_>>(),
            "deleted": done,
            "refused": refused,
            "exit": code,
        }))?;
    } else {
        for (i, _, region, plan) in &plans {
            let name = policy.snapshots[*i].name.as_deref();
            for d in &plan.items {
                outln!(
                    "{:<14} {:<28} {:<40} {:<21} {:<6} {}",
                    region,
                    match name {
                        Some(n) => format!("{n}: {}", d.volume),
                        None => d.volume.clone(),
                    },
                    d.id,
                    time(&d.created),
                    if d.keep {
                        "keep"
                    } else if refused || a.dry_run {
                        "would delete"
                    } else {
                        "delete"
                    },
                    d.reasons.join(", ")
                )?;
            }
        }
        if refused {
            outln!("refused: nothing deleted.")?;
        } else if a.dry_run {
            outln!("dry run: {planned} snapshot(s) would be deleted, {kept} kept.")?;
        } else {
            outln!("{deleted} snapshot(s) deleted, {kept} kept, {failed} failed.")?;
        }
    }
    for r in refusals {
        eprintln!("error: refused: {r}");
    }
    Ok(code)
}
