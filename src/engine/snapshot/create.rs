//! `snapshot create` carried out: for each job, open the provider, find the volumes, start (or
//! find, by token) their snapshots, wait where asked or where a copy needs a completed source,
//! and copy them to the other regions. Each snapshot settles into a [`CreateRow`], told to the
//! caller as it settles and returned with the others.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use offsite_policies::policy::{SnapshotProvider, Snapshots as Section};
use offsite_storage::{Snapshot, SnapshotState, Snapshots};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::{
    open, same_region, start, start_copy, wait, Bars, Failure, Maker, SnapshotPlace, Subject,
};

/// A region a job's snapshots are copied to.
#[derive(Debug, Clone)]
pub struct CopyTo {
    /// The region.
    pub region: String,
    /// EBS: the KMS key of that region the copies are encrypted with.
    pub kms_key: Option<String>,
}

/// One job of `create`: a place, what to snapshot there, where to copy.
#[derive(Debug, Clone)]
pub struct Job {
    /// Where the snapshots are made.
    pub place: SnapshotPlace,
    /// The volumes and instances named.
    pub subjects: Vec<Subject>,
    /// A policy's `select = "key=value"`: volumes found when the job runs.
    pub select: Option<String>,
    /// The regions each snapshot is copied to.
    pub copy_to: Vec<CopyTo>,
    /// The policy section's name, tagged on its snapshots.
    pub section: Option<String>,
}

impl Job {
    /// The job of a policy's `[[snapshots]]` section.
    pub fn of(s: &Section) -> Job {
        let mut subjects: Vec<Subject> = s.volumes.iter().cloned().map(Subject::Volume).collect();
        subjects.extend(s.instances.iter().cloned().map(Subject::Instance));
        Job {
            place: SnapshotPlace::of(s),
            subjects,
            select: s.select.clone(),
            section: s.name.clone(),
            copy_to: s
                .copy_to
                .iter()
                .map(|c| CopyTo {
                    region: c.region.clone(),
                    kms_key: c.kms_key.clone(),
                })
                .collect(),
        }
    }
}

/// What `snapshot create` is asked to do.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The policy's name, `adhoc` without one.
    pub policy: String,
    /// The jobs, in order.
    pub jobs: Vec<Job>,
    /// The token base: a rerun with the same one finds what the first run made.
    pub base: String,
    /// The run's time, tagged on every snapshot.
    pub now: DateTime<Utc>,
    /// Extra tags for every snapshot.
    pub tags: Vec<(String, String)>,
    /// Wait for every snapshot and copy to complete.
    pub wait: bool,
    /// How long to wait for one.
    pub timeout: Duration,
}

/// How one snapshot (or what stood in for it) of a `create` run came out.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum CreateRow {
    /// The provider could not be reached or would not take the credentials: the job's
    /// snapshots were not made (the other jobs go on).
    Unreachable {
        /// `aws`, `gcp`, `azure`.
        provider: &'static str,
        /// Why.
        #[serde(flatten)]
        failure: Failure,
    },
    /// No volume carries the job's `select` tag: a warning, no row of the JSON document.
    NothingSelected {
        /// `key=value`.
        select: String,
        /// Where it was looked for.
        region: String,
    },
    /// The volumes carrying the job's `select` tag could not be listed.
    SelectFailed {
        /// `key=value`.
        select: String,
        /// Where.
        region: String,
        /// Why.
        #[serde(flatten)]
        failure: Failure,
    },
    /// The provider would not start the snapshot of a volume or instance.
    CreateFailed {
        /// The volume or instance.
        volume: String,
        /// Where.
        region: String,
        /// Why.
        #[serde(flatten)]
        failure: Failure,
    },
    /// A snapshot started or found, and its copies.
    Snapshot(Box<SnapshotRow>),
}

impl CreateRow {
    /// Whether the JSON document has a row for it (a warning has none).
    pub fn in_json(&self) -> bool {
        !matches!(self, CreateRow::NothingSelected { .. })
    }

    /// The failures it counts toward exit 1: its own, and a snapshot's wait and state.
    pub fn failures(&self) -> usize {
        match self {
            CreateRow::NothingSelected { .. } => 0,
            CreateRow::Snapshot(s) => usize::from(s.wait_failed.is_some()) + usize::from(!s.ok),
            _ => 1,
        }
    }

    /// The copies that failed (exit 3 when nothing else did).
    pub fn copy_failures(&self) -> usize {
        match self {
            CreateRow::Snapshot(s) => s.copies.iter().filter(|c| !c.outcome.ok()).count(),
            _ => 0,
        }
    }
}

/// A snapshot that a job started (or found by its token), as it stands after the wait.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotRow {
    /// The policy section's name.
    pub section: Option<String>,
    /// The volume it is a series of.
    pub volume: String,
    /// Its region.
    pub region: String,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// An earlier run with the token made it.
    pub reused: bool,
    /// The provider did not fail it.
    pub ok: bool,
    /// Its copies, one per copy-to region.
    pub copies: Vec<CopyRow>,
    /// Its provider.
    #[serde(skip)]
    pub provider: SnapshotProvider,
    /// Waiting for it failed: why.
    #[serde(skip)]
    pub wait_failed: Option<String>,
}

/// A snapshot's copy to one region.
#[derive(Debug, Clone, Serialize)]
pub struct CopyRow {
    /// The region.
    pub region: String,
    /// How it came out.
    #[serde(flatten)]
    pub outcome: CopyOutcome,
}

/// How a copy came out.
#[derive(Debug, Clone)]
pub enum CopyOutcome {
    /// Started, found, or complete (or failed by the provider: see its state).
    Made(Snapshot),
    /// Not started, or waiting for it failed: why.
    Failed(String),
}

impl CopyOutcome {
    /// Neither failed here nor by the provider.
    pub fn ok(&self) -> bool {
        matches!(self, CopyOutcome::Made(c) if !matches!(c.state, SnapshotState::Failed(_)))
    }
}

impl Serialize for CopyOutcome {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            CopyOutcome::Made(c) => m.serialize_entry("snapshot", c)?,
            CopyOutcome::Failed(e) => m.serialize_entry("error", e)?,
        }
        m.serialize_entry("ok", &self.ok())?;
        m.end()
    }
}

/// A copy-to region of a job, opened once for the job (or why it could not be).
struct Destination<'a> {
    to: &'a CopyTo,
    adapter: Result<Arc<dyn Snapshots>, String>,
}

/// Runs `req`: every job in order, each row told to `on_row` as it settles. A section whose
/// provider cannot be reached or will not take the credentials fails alone (a row): the other
/// sections still get their snapshots. A wrong region, id or option is a usage error that
/// stops the run; so is an error `on_row` returns.
pub async fn create(
    req: &CreateRequest,
    bars: Bars<'_>,
    on_row: &mut (dyn FnMut(&CreateRow) -> Result<()> + Send),
) -> Result<Vec<CreateRow>> {
    let mut rows = Vec::new();
    let mut emit = |row: CreateRow| -> Result<()> {
        on_row(&row)?;
        rows.push(row);
        Ok(())
    };
    for job in &req.jobs {
        run_job(req, job, bars, &mut emit).await?;
    }
    Ok(rows)
}

type Emit<'a> = &'a mut (dyn FnMut(CreateRow) -> Result<()> + Send);

/// One job: its place opened, its copy-to regions opened, its subjects snapshotted.
async fn run_job(req: &CreateRequest, job: &Job, bars: Bars<'_>, emit: Emit<'_>) -> Result<()> {
    let home = match open(&job.place).await {
        Ok(h) => h,
        Err(e) if is_usage(&e) => return Err(e),
        Err(e) => {
            return emit(CreateRow::Unreachable {
                provider: job.place.provider.as_str(),
                failure: Failure(format!("{e:#}")),
            })
        }
    };
    // Each copy-to region is opened once for the job, not once per snapshot.
    let mut dests = Vec::new();
    for to in &job.copy_to {
        same_region(home.region(), &to.region)?;
        let adapter = match open(&job.place.in_region(&to.region)).await {
            Ok(d) => Ok(d),
            Err(e) if is_usage(&e) => return Err(e),
            Err(e) => Err(format!("{e:#}")),
        };
        dests.push(Destination { to, adapter });
    }
    let Some(subjects) = subjects(home.as_ref(), job, emit).await? else {
        return Ok(());
    };
    for subject in &subjects {
        let maker = Maker {
            policy: &req.policy,
            section: job.section.as_deref(),
        };
        let made = match start(home.as_ref(), maker, subject, &req.base, req.now, &req.tags).await {
            Ok(v) => v,
            Err(e) => {
                emit(CreateRow::CreateFailed {
                    volume: subject.id().to_string(),
                    region: home.region().to_string(),
                    failure: Failure(e.to_string()),
                })?;
                continue;
            }
        };
        for (snap, reused) in made {
            let row = settle(req, job, home.as_ref(), &dests, snap, reused, bars).await;
            emit(CreateRow::Snapshot(Box::new(row)))?;
        }
    }
    Ok(())
}

fn is_usage(e: &anyhow::Error) -> bool {
    e.downcast_ref::<crate::error::UsageError>().is_some()
}

/// The job's subjects: those it names, and the volumes its `select` finds now. `None` when
/// the volumes could not be listed (told as a row).
async fn subjects(home: &dyn Snapshots, job: &Job, emit: Emit<'_>) -> Result<Option<Vec<Subject>>> {
    let mut subjects = job.subjects.clone();
    let Some(sel) = &job.select else {
        return Ok(Some(subjects));
    };
    let (k, v) = sel.split_once('=').expect("checked at parse");
    let (select, region) = (sel.clone(), home.region().to_string());
    match home.volumes(k, v).await {
        Ok(found) if found.is_empty() => emit(CreateRow::NothingSelected { select, region })?,
        Ok(found) => subjects.extend(found.into_iter().map(|v| Subject::Volume(v.id))),
        Err(e) => {
            emit(CreateRow::SelectFailed {
                select,
                region,
                failure: Failure(e.to_string()),
            })?;
            return Ok(None);
        }
    }
    Ok(Some(subjects))
}

/// A started snapshot, waited for where asked (or where a copy needs it complete), and copied.
async fn settle(
    req: &CreateRequest,
    job: &Job,
    home: &dyn Snapshots,
    dests: &[Destination<'_>],
    mut snap: Snapshot,
    reused: bool,
    bars: Bars<'_>,
) -> SnapshotRow {
    // A copy starts from a completed snapshot: copy-to waits for it.
    let must_wait = req.wait || !job.copy_to.is_empty();
    let unfinished = snap.state == SnapshotState::Pending || snap.operation.is_some();
    let mut wait_failed = None;
    if must_wait && unfinished {
        match wait(home, &snap, bars, req.timeout).await {
            Ok(s) => snap = s,
            Err(e) => wait_failed = Some(e.to_string()),
        }
    }
    let mut copies = Vec::new();
    for d in dests {
        let outcome = match &d.adapter {
            Ok(a) => {
                let kms = d.to.kms_key.as_deref();
                match copy_one(a.as_ref(), &snap, kms, req.wait, bars, req.timeout).await {
                    Ok(c) => CopyOutcome::Made(c),
                    Err(e) => CopyOutcome::Failed(format!("{e:#}")),
                }
            }
            Err(e) => CopyOutcome::Failed(e.clone()),
        };
        copies.push(CopyRow {
            region: d.to.region.clone(),
            outcome,
        });
    }
    SnapshotRow {
        section: job.section.clone(),
        volume: snap.series(),
        region: snap.region.clone(),
        reused,
        ok: !matches!(snap.state, SnapshotState::Failed(_)),
        copies,
        provider: job.place.provider,
        wait_failed,
        snapshot: snap,
    }
}

/// Copies one completed snapshot to a region (the source must be complete: a pending one is
/// waited for first by the caller).
async fn copy_one(
    dest: &dyn Snapshots,
    snap: &Snapshot,
    kms: Option<&str>,
    wait_for_it: bool,
    bars: Bars<'_>,
    timeout: Duration,
) -> Result<Snapshot> {
    if snap.state != SnapshotState::Completed {
        anyhow::bail!("the snapshot is {}, and only a completed snapshot can be copied; run again with --wait", snap.state.as_str());
    }
    let mut c = start_copy(dest, snap, kms).await?.snapshot;
    if wait_for_it && (c.state == SnapshotState::Pending || c.operation.is_some()) {
        c = wait(dest, &c, bars, timeout).await?;
    }
    Ok(c)
}
