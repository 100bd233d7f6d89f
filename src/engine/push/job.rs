//! The job stage: what one push is, worked out once from the request: the archive's keys at
//! every destination, the recipients as manifests record them, the creation time, the locks,
//! and (for a spooled push) the work directory, locked for as long as the push runs.

use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{DateTime, Utc};
use offsite_policies::encryption::Recipient;
use offsite_storage::Retention;

use super::{plan, PushRequest, Source};
use crate::archive::{time_from_name, ArchiveKeys, CreatedFrom, Digest};
use crate::engine::commit::{Annotations, ArchiveFacts};
use crate::engine::inventory::Clock;
use crate::engine::progress::Progress;
use crate::engine::spool::{self, WorkLock};
use crate::registry::Opened;

/// When the archive was made, and how that was learned.
#[derive(Debug, Clone, Copy)]
pub(super) struct Created {
    /// The time.
    pub(super) at: DateTime<Utc>,
    /// Where it came from.
    pub(super) from: CreatedFrom,
}

/// One push, everything but its bytes.
pub(super) struct Job {
    /// The archive's name.
    pub(super) name: String,
    /// Who can decrypt it; empty when stored unencrypted.
    pub(super) recipients: Vec<Recipient>,
    /// The same, as the journal and the manifests record them: strings, sorted.
    pub(super) recipient_strings: Vec<String>,
    /// Where to, in the order given.
    pub(super) destinations: Vec<Opened>,
    /// The archive's keys at each destination.
    pub(super) keys: Vec<ArchiveKeys>,
    /// Replace a different archive of the same name.
    pub(super) overwrite: bool,
    /// Told the source bytes read.
    pub(super) progress: Progress,
    /// What every manifest records beside the archive's own facts.
    pub(super) annotations: Annotations,
    /// The plaintext digest the caller has already checked, if any.
    pub(super) expect_plaintext: Option<Digest>,
    /// The creation time of a push that starts now (a resumed one keeps its journal's).
    pub(super) created_now: Created,
    /// An upper bound of the stored size, when the source is a file.
    pub(super) stored_bound: Option<u64>,
    /// The clock the push runs by: the time it started and the tolerance.
    pub(super) clock: Clock,
    /// When it started, for the time since on the same clock.
    started: std::time::Instant,
}

impl Job {
    /// The job and the bytes of a request.
    pub(super) fn new(req: PushRequest) -> (Job, Source) {
        let PushRequest {
            source,
            name,
            recipients,
            destinations,
            overwrite,
            progress,
            annotations,
            expect_plaintext,
            no_spool: _,
            clock,
        } = req;
        let encrypted = !recipients.is_empty();
        let job = Job {
            keys: plan::archive_keys(&destinations, &name, encrypted),
            recipient_strings: plan::sorted_recipients(&recipients),
            created_now: creation_time(&name, &source, clock.now),
            clock,
            started: std::time::Instant::now(),
            stored_bound: stored_bound(&source, encrypted),
            name,
            recipients,
            destinations,
            overwrite,
            progress,
            annotations,
            expect_plaintext,
        };
        (job, source)
    }

    /// Whether the archive is encrypted.
    pub(super) fn encrypted(&self) -> bool {
        !self.recipients.is_empty()
    }

    /// The destinations' URLs.
    pub(super) fn urls(&self) -> Vec<String> {
        self.destinations
            .iter()
            .map(|d| d.url().to_string())
            .collect()
    }

    /// The lock each destination's copy gets, computed once from the creation time, for the
    /// data and the manifest alike.
    pub(super) fn retentions(&self, created: Created) -> Vec<Option<Retention>> {
        let now = self.clock.now;
        self.destinations
            .iter()
            .map(|d| d.options.retention_at(created.at, now))
            .collect()
    }

    /// Whether deciding the plan needs the plaintext digest: a destination holds a manifest of
    /// this name, and `--overwrite` is off.
    pub(super) fn needs_digest(&self, survey: &plan::Survey) -> bool {
        !self.overwrite && survey.holding_a_manifest().is_some()
    }

    /// The plan for the digest known so far.
    pub(super) fn steps(
        &self,
        survey: &plan::Survey,
        created: Created,
        plaintext: Option<&Digest>,
    ) -> Vec<plan::Step> {
        survey.steps(
            plaintext,
            &self.recipient_strings,
            self.overwrite,
            &self.retentions(created),
        )
    }

    /// The plan of a spooled push, gated when the digest it needs is not known yet.
    pub(super) fn plan(
        &self,
        survey: &plan::Survey,
        created: Created,
        plaintext: Option<&Digest>,
    ) -> plan::Plan {
        if self.needs_digest(survey) && plaintext.is_none() {
            return plan::Plan::Gated;
        }
        plan::Plan::Decided(self.steps(survey, created, plaintext))
    }

    /// What every manifest of the archive records.
    pub(super) fn facts(
        &self,
        created: Created,
        plaintext: Digest,
        stored: Digest,
    ) -> ArchiveFacts {
        ArchiveFacts {
            name: self.name.clone(),
            created: created.at,
            created_from: created.from,
            recipients: self.recipients.clone(),
            plaintext,
            stored,
            pushed: self.now(),
            annotations: self.annotations.clone(),
        }
    }

    /// How long the push has run.
    pub(super) fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Now on the push's clock: its start plus the time since.
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now + chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default()
    }

    /// Back to the start of the progress bar: the source is read again.
    pub(super) fn rewind_progress(&self) {
        if let Some(pb) = &self.progress {
            pb.set_position(0);
        }
    }
}

/// Refuses an archive whose creation time (from `name`, else `source`'s modification time)
/// runs ahead of `clock` by more than its tolerance: readers would call it future-dated. Only
/// the name and the file's metadata are read, so the CLI calls it before anything else.
pub fn refuse_future(
    name: &str,
    source: &Source,
    clock: Clock,
) -> Result<(), crate::error::UsageError> {
    let created = creation_time(name, source, clock.now);
    let Some(f) =
        offsite_policies::clock::future_dated(created.at, clock.now, None, None, clock.tolerance)
    else {
        return Ok(());
    };
    let from = match created.from {
        CreatedFrom::Name => "read from its name",
        CreatedFrom::Mtime => "read from the file's modification time",
        CreatedFrom::PushTime | CreatedFrom::Other => "the push time",
    };
    Err(crate::error::UsageError(format!(
        "{name}: {f}, {from}; readers would call it future-dated and never count it, so nothing was pushed. Fix this host's clock, or the name (--name with the real time)"
    )))
}

/// The time an archive was made: from its name, else the file's mtime, else now.
fn creation_time(name: &str, source: &Source, now: DateTime<Utc>) -> Created {
    if let Some(at) = time_from_name(name) {
        return Created {
            at,
            from: CreatedFrom::Name,
        };
    }
    if let Source::File(f, _) = source {
        if let Ok(m) = f.metadata().and_then(|m| m.modified()) {
            return Created {
                at: DateTime::<Utc>::from(m),
                from: CreatedFrom::Mtime,
            };
        }
    }
    Created {
        at: now,
        from: CreatedFrom::PushTime,
    }
}

/// An upper bound of the stored size, so that multipart part sizes are chosen for the
/// ciphertext, not the plaintext: age adds 16 bytes per 64 KiB chunk and a header.
fn stored_bound(source: &Source, encrypted: bool) -> Option<u64> {
    match source {
        Source::File(f, _) => f.metadata().ok().map(|m| {
            let n = m.len();
            if encrypted {
                n + (n / 65_536 + 1) * 16 + (64 << 10)
            } else {
                n
            }
        }),
        Source::Stdin => None,
    }
}

/// A spooled push's work directory in the cache, locked while this lives: one push of an
/// archive to a set of destinations at a time on this machine (a second one would discard the
/// first one's spool and the uploads under it). Dropping it releases the lock, and removes the
/// directory when nothing but the lock is left in it, on every return, errors included.
pub(super) struct WorkDir {
    path: PathBuf,
    _lock: WorkLock,
}

impl WorkDir {
    /// Takes the job's work directory, or fails at once when another push holds it.
    pub(super) fn lock(job: &Job) -> Result<WorkDir> {
        let path = spool::work_dir(&job.name, &job.urls());
        let lock = spool::lock_work_dir(&path, &job.name)?;
        Ok(WorkDir { path, _lock: lock })
    }

    /// The directory.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        // While the lock is still held: the file handle closes after this.
        spool::release_work_dir(&self.path);
    }
}
