//! The push engine, in stages that hand values on:
//!
//! 1. **job** (`job`): the archive's keys at every destination, its creation time and locks,
//!    and the work directory, locked until the push returns.
//! 2. **survey** ([`plan::Survey`]): what every destination holds under the archive's name.
//! 3. **spool state** (`resume`): a complete spool of an earlier run, reused, or the source,
//!    read fresh (hashed first when the plan needs its digest).
//! 4. **plan** ([`plan`]): a step per destination, every one decided before a byte moves (for
//!    standard input that meets a manifest: once the spool has given its digest).
//! 5. **send** (`send`): the spool written once (`produce`), and one `send_one` per
//!    destination that prepares, transfers by the route its store allows (`transfer`) and
//!    commits ([`crate::engine::commit`]) as soon as its own copy is done.
//! 6. **journal** (`journal`): settled, removed with the spool once every copy counts.
//! 7. **report**: a [`PushReport`] with a line per destination.
//!
//! [`unspooled`] is the `--no-spool` variant: the same job, survey, plan, commit and report,
//! with the stream sent from memory instead of a spool.

mod contest;
mod job;
mod journal;
pub mod plan;
mod produce;
mod report;
mod resume;
mod send;
mod transfer;
pub mod unspooled;

use std::fs::File;
use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use offsite_policies::encryption::Recipient;
use offsite_storage::Checksum;
use serde::Serialize;

pub use self::job::refuse_future;
use self::job::{Job, WorkDir};
use self::plan::{Action, Plan, Step, Survey};
pub use self::produce::hash_file;
use self::report::{report, Outcome};
use self::resume::SpoolState;
use self::send::{Sent, Spool};
use crate::archive::{ArchiveKeys, CreatedFrom, Digest, Manifest};
pub use crate::engine::commit::Annotations;
use crate::engine::commit::{self, ArchiveFacts, Finished};
use crate::engine::leftovers::{self, Swept};
use crate::engine::spool::{self, Journal};
use crate::registry::Opened;

/// What to push from.
pub enum Source {
    /// An opened file and its path.
    File(File, PathBuf),
    /// Standard input.
    Stdin,
}

/// One push.
pub struct PushRequest {
    /// The bytes.
    pub source: Source,
    /// The archive's name.
    pub name: String,
    /// age recipients; empty for an explicit `--no-encrypt` push.
    pub recipients: Vec<Recipient>,
    /// Where to.
    pub destinations: Vec<Opened>,
    /// Replace a different archive of the same name.
    pub overwrite: bool,
    /// A progress bar over source bytes, on a terminal.
    pub progress: crate::engine::progress::Progress,
    /// The policy's name and the job's metadata, for the manifests, and the key that signs
    /// them (`None`: unsigned).
    pub annotations: Annotations,
    /// The plaintext's size and SHA-256 when the caller has already checked the source (`push
    /// --checksums`): used for the plan instead of hashing the source again, and a source that
    /// reads differently while it is encrypted fails the push before any copy is committed.
    pub expect_plaintext: Option<Digest>,
    /// `--no-spool`: send the stream from memory (see [`unspooled`]).
    pub no_spool: bool,
    /// The clock the push runs by (the CLI passes the system clock) and the policy's
    /// `clock-tolerance`.
    pub clock: crate::engine::inventory::Clock,
}

/// What happened at one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Written and committed now.
    Stored,
    /// The same archive (same plaintext SHA-256) was already there.
    AlreadyStored,
    /// A different archive of that name is there; not replaced.
    Refused,
    /// The copy could not be written; nothing that looks complete was left.
    Failed,
}

/// The report for one destination.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationReport {
    /// The destination URL.
    pub url: String,
    /// What happened.
    pub status: Status,
    /// The data object's key.
    pub key: String,
    /// What went wrong, or why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The checksum the provider reports, when it computes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_checksum: Option<Checksum>,
    /// Size and SHA-256 of the bytes stored here (the copy already there, or the one sent now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<Digest>,
    /// For a resumed multipart upload: parts found already on the server, of all parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_parts: Option<(u32, u32)>,
    /// The copy's retention lock, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<DateTime<Utc>>,
    /// How long storing this copy took and its throughput, for a copy stored now (as its
    /// manifest records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<crate::archive::PushTiming>,
}

impl DestinationReport {
    fn new(dest: &Opened, keys: &ArchiveKeys, status: Status) -> DestinationReport {
        DestinationReport {
            url: dest.url().to_string(),
            status,
            key: keys.object.clone(),
            message: None,
            provider_checksum: None,
            stored: None,
            resumed_parts: None,
            retain_until: None,
            push: None,
        }
    }

    fn failed(dest: &Opened, keys: &ArchiveKeys, message: String) -> DestinationReport {
        DestinationReport::skipped(dest, keys, Status::Failed, message)
    }

    fn skipped(
        dest: &Opened,
        keys: &ArchiveKeys,
        status: Status,
        message: String,
    ) -> DestinationReport {
        DestinationReport {
            message: Some(message),
            ..DestinationReport::new(dest, keys, status)
        }
    }
}

/// The report for a whole push.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// The archive.
    pub archive: String,
    /// Its creation time.
    pub created: DateTime<Utc>,
    /// Where that came from.
    pub created_from: CreatedFrom,
    /// Whether it was encrypted.
    pub encrypted: bool,
    /// The plaintext digest (absent when reading the source failed).
    pub plaintext: Option<Digest>,
    /// The stored bytes' digest: the spool's when bytes were sent, else that of the copies
    /// already there (absent when they differ: each encryption gives other ciphertext).
    pub stored: Option<Digest>,
    /// Whether a complete spool from an earlier run was sent again instead of re-encrypting.
    pub resumed: bool,
    /// Per destination, in the order given.
    pub destinations: Vec<DestinationReport>,
    /// The spool kept for a rerun when a destination failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_spool: Option<KeptSpool>,
    /// What killed writes had left at the destinations more than a day ago, removed now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swept: Vec<Swept>,
}

/// A complete spool a push keeps under the cache directory for a rerun of the same push
/// (same archive name, same destinations), which sends these bytes again instead of
/// re-encrypting, and continues the uploads it recorded.
#[derive(Debug, Clone, Serialize)]
pub struct KeptSpool {
    /// The spool file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// What a push stopped by a signal left in the cache: the complete spool a rerun resumes
/// from, if it had one; an incomplete one is removed (it cannot be continued), and its journal
/// stays so that the rerun aborts the uploads it started.
pub fn stopped(name: &str, destination_urls: &[String]) -> Option<KeptSpool> {
    let work = spool::work_dir(name, destination_urls);
    let journal = Journal::load(&work)?;
    let size = std::fs::metadata(&journal.spool).ok()?.len();
    if journal.complete {
        return Some(KeptSpool {
            path: journal.spool,
            size,
        });
    }
    if journal.spool.starts_with(&work) {
        let _ = std::fs::remove_file(&journal.spool);
    }
    None
}

impl PushReport {
    /// Destinations that hold the archive now.
    pub fn stored_count(&self) -> usize {
        self.destinations
            .iter()
            .filter(|d| matches!(d.status, Status::Stored | Status::AlreadyStored))
            .count()
    }
}

/// Commits one destination's copy (the same for a spooled and an unspooled push), and
/// reports it.
async fn commit_one(facts: &ArchiveFacts, done: Finished<'_>) -> DestinationReport {
    let (dest, keys) = (done.dest, done.keys);
    match commit::commit(facts, done).await {
        Ok(c) => DestinationReport {
            stored: Some(facts.stored.clone()),
            provider_checksum: c.provider_checksum,
            retain_until: c.retain_until,
            push: c.push,
            ..DestinationReport::new(dest, keys, Status::Stored)
        },
        Err(commit::NotCommitted::Contested(theirs)) => {
            settle_contest(dest, keys, &theirs, &facts.plaintext).await
        }
        Err(e) => DestinationReport::failed(dest, keys, e.to_string()),
    }
}

/// Another push committed under this name first: the same plaintext is already stored, any
/// other is this push's loss.
/// Only a whole copy is "already stored": its data object there at the size its manifest
/// records.
async fn settle_contest(
    dest: &Opened,
    keys: &ArchiveKeys,
    theirs: &Manifest,
    ours: &Digest,
) -> DestinationReport {
    if theirs.plaintext.sha256 == ours.sha256 {
        let object = offsite_storage::join_key(
            crate::registry::key_prefix(&dest.location),
            &theirs.stored.key,
        );
        let whole = matches!(dest.store.head(&object).await, Ok(h) if h.size == theirs.stored.size);
        if !whole {
            return DestinationReport::failed(
                dest,
                keys,
                "another push committed the same archive here at the same moment, but its data is not whole yet; push again".into(),
            );
        }
        let mut r = DestinationReport::new(dest, keys, Status::AlreadyStored);
        r.message = Some("another push stored the same archive here at the same moment".into());
        return r;
    }
    let name = keys.manifest.rsplit('/').next().unwrap_or_default();
    let name = name
        .strip_suffix(crate::archive::MANIFEST_SUFFIX)
        .unwrap_or(name);
    DestinationReport::failed(dest, keys, contest::lost(name, dest, theirs, &ours.sha256))
}

/// Runs one push. Per-destination failures are in the report; an `Err` means nothing could
/// be attempted (the source could not be read, the spool could not be written, another push
/// of the same archive to the same destinations is running).
///
/// At the end it removes what killed writes left at the destinations more than a day ago
/// (temporary files, open uploads), and reports it.
pub async fn run(req: PushRequest) -> Result<PushReport> {
    let destinations = req.destinations.clone();
    let now = req.clock.now;
    let mut report = push(req).await?;
    report.swept = leftovers::sweep(&destinations, now).await;
    Ok(report)
}

async fn push(req: PushRequest) -> Result<PushReport> {
    let no_spool = req.no_spool;
    job::refuse_future(&req.name, &req.source, req.clock)?;
    let (job, source) = Job::new(req);
    if no_spool {
        return unspooled::run(job, source).await;
    }
    let work = WorkDir::lock(&job)?;
    let survey = Survey::read(&job.destinations, &job.keys).await;
    let state = SpoolState::find(&job, &work, source, &survey).await?;
    let created = state.created(&job);
    let plan = match job.plan(&survey, created, state.plaintext()) {
        Plan::Decided(steps) if !steps.iter().any(|s| s.action.uploads()) => {
            return Ok(nothing_to_send(&job, &work, state, created, steps).await);
        }
        plan => plan,
    };
    let (spool, producer) = Spool::open(&job, &work, state, created)?;
    let Sent {
        digests,
        steps,
        results,
    } = spool.send(&job, &survey, created, producer, plan).await;
    let (plaintext, stored) = match digests {
        Ok(digests) => digests,
        Err(e) => {
            spool.journal.discard_incomplete();
            return Err(e);
        }
    };
    let sent: Vec<(usize, Status)> = results.iter().map(|(i, r)| (*i, r.status)).collect();
    let outcome = Outcome {
        plaintext: Some(plaintext),
        sent: Some(stored),
        resumed: spool.resumed,
        results,
    };
    let mut report = report(&job, created, steps, outcome);
    report.kept_spool = spool
        .journal
        .settle(&job.urls(), &sent, &report.destinations);
    Ok(report)
}

/// Every destination is decided without sending: a reused spool whose archive every
/// destination holds already has no further use.
async fn nothing_to_send(
    job: &Job,
    work: &WorkDir,
    state: SpoolState,
    created: job::Created,
    steps: Vec<Step>,
) -> PushReport {
    if let SpoolState::Reused(r) = &state {
        if steps.iter().all(|s| matches!(s.action, Action::Keep(_))) {
            journal::discard_earlier(&r.journal, work.path(), job).await;
        }
    }
    let outcome = Outcome::nothing_sent(state.plaintext().cloned());
    report(job, created, steps, outcome)
}
