//! The spool state: a complete spool of an earlier run of this push is sent again when the
//! source is the same bytes for the same recipients (age draws a new key for every encryption,
//! so only the spool's ciphertext can be resumed); anything else of an earlier run is
//! discarded, and the source is read into a fresh spool.

use anyhow::{bail, Result};

use super::job::{Created, Job, WorkDir};
use super::journal::discard_earlier;
use super::plan::Survey;
use super::produce::{hash_file, hash_stdin};
use super::Source;
use crate::archive::Digest;
use crate::engine::spool::Journal;

/// Where this push's bytes come from.
pub(super) enum SpoolState {
    /// A complete spool of an earlier run, for the same plaintext and recipients.
    Reused(Reused),
    /// The source, to be read into a new spool.
    Fresh(Fresh),
}

/// A complete spool of an earlier run.
pub(super) struct Reused {
    /// Its journal.
    pub(super) journal: Journal,
    /// The plaintext's digest (the source was hashed, or checked, to match it).
    pub(super) plaintext: Digest,
    /// The spool's digest.
    pub(super) stored: Digest,
}

/// A source still to be read.
pub(super) struct Fresh {
    /// The bytes.
    pub(super) source: Source,
    /// The plaintext's digest when it is known before spooling: checked by the caller, or
    /// hashed because the plan needs it (a file is then read twice). Standard input is known
    /// only once spooled.
    pub(super) plaintext: Option<Digest>,
}

impl SpoolState {
    /// Looks for a spool to reuse, and hashes a file source first when the plan needs its
    /// digest.
    pub(super) async fn find(
        job: &Job,
        work: &WorkDir,
        source: Source,
        survey: &Survey,
    ) -> Result<SpoolState> {
        let fresh = match reuse(job, work, source).await? {
            SpoolState::Reused(r) => return Ok(SpoolState::Reused(r)),
            SpoolState::Fresh(f) => f,
        };
        let plaintext = fresh.plaintext.or_else(|| job.expect_plaintext.clone());
        match fresh.source {
            Source::File(f, path) if plaintext.is_none() && job.needs_digest(survey) => {
                let (digest, source) = hash_file(f, path, job.progress.clone()).await?;
                job.rewind_progress();
                Ok(SpoolState::Fresh(Fresh {
                    source,
                    plaintext: Some(digest),
                }))
            }
            source => Ok(SpoolState::Fresh(Fresh { source, plaintext })),
        }
    }

    /// The plaintext's digest, when known by now.
    pub(super) fn plaintext(&self) -> Option<&Digest> {
        match self {
            SpoolState::Reused(r) => Some(&r.plaintext),
            SpoolState::Fresh(f) => f.plaintext.as_ref(),
        }
    }

    /// The archive's creation time: the one the journal recorded when resuming (a stdin push
    /// keeps its time), else from the name or the file.
    pub(super) fn created(&self, job: &Job) -> Created {
        match self {
            SpoolState::Reused(r) => Created {
                at: r.journal.created,
                from: r.journal.created_from,
            },
            SpoolState::Fresh(_) => job.created_now,
        }
    }
}

/// The earlier run's complete spool when the source is the same bytes, else the source (and
/// its digest, when it was hashed to compare).
async fn reuse(job: &Job, work: &WorkDir, source: Source) -> Result<SpoolState> {
    let fresh = |source| {
        Ok(SpoolState::Fresh(Fresh {
            source,
            plaintext: None,
        }))
    };
    let Some(journal) = Journal::load(work.path()) else {
        return fresh(source);
    };
    let Some(stored) = complete_for(&journal, job) else {
        discard_earlier(&journal, work.path(), job).await;
        return fresh(source);
    };
    let (digest, source) = match (&job.expect_plaintext, source) {
        (Some(d), source) => (d.clone(), Some(source)),
        (None, Source::File(f, path)) => {
            let (d, source) = hash_file(f, path, job.progress.clone()).await?;
            (d, Some(source))
        }
        (None, Source::Stdin) => (hash_stdin(job.progress.clone()).await?, None),
    };
    if Some(&digest) == journal.plaintext.as_ref() {
        tracing::info!(spool = %journal.spool.display(), "resuming from a complete spool");
        return Ok(SpoolState::Reused(Reused {
            journal,
            plaintext: digest,
            stored,
        }));
    }
    discard_earlier(&journal, work.path(), job).await;
    let Some(source) = source else {
        bail!(
            "standard input differs from the interrupted push of {:?}, whose spool was discarded; run the push again",
            job.name
        );
    };
    job.rewind_progress();
    Ok(SpoolState::Fresh(Fresh {
        source,
        plaintext: Some(digest),
    }))
}

/// The spool's digest when the journal's spool is complete, whole on disk, and encrypted as
/// this push would encrypt it.
fn complete_for(j: &Journal, job: &Job) -> Option<Digest> {
    let same =
        j.complete && j.encrypted == job.encrypted() && j.recipients == job.recipient_strings;
    let stored = j.stored.clone().filter(|_| same)?;
    std::fs::metadata(&j.spool)
        .is_ok_and(|m| m.len() == stored.size)
        .then_some(stored)
}
