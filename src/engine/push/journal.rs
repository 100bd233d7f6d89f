//! The journal of a spooled push, written from here only: created with a fresh spool, told
//! each resumable upload as it starts and the spool's digests once it is complete, and settled
//! at the end (removed with the spool when every copy is committed, else kept for a rerun).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use offsite_storage::UploadRecord;

use super::job::{Created, Job};
use super::{transfer, DestinationReport, KeptSpool, Status};
use crate::archive::Digest;
use crate::engine::spool::{DestinationState, Journal, JOURNAL_FORMAT};

/// The journal, shared by the uploads that record their ids in it as they start.
#[derive(Clone)]
pub(super) struct JournalHandle {
    journal: Arc<Mutex<Journal>>,
    work: std::path::PathBuf,
    /// Whether an earlier run of this push left it (this run resumes).
    resumed: bool,
}

impl JournalHandle {
    /// The journal of a reused spool, as the earlier run left it.
    pub(super) fn reused(journal: Journal, work: &Path) -> JournalHandle {
        JournalHandle {
            journal: Arc::new(Mutex::new(journal)),
            work: work.to_path_buf(),
            resumed: true,
        }
    }

    /// Whether this run resumes an earlier one of the same push: data without a manifest at
    /// its keys is then most likely that run's own upload.
    pub(super) fn resumed(&self) -> bool {
        self.resumed
    }

    /// A new journal for a fresh spool at `spool`, written now.
    pub(super) fn fresh(
        job: &Job,
        created: Created,
        spool: &Path,
        work: &Path,
    ) -> Result<JournalHandle> {
        let journal = Journal {
            format: JOURNAL_FORMAT,
            archive: job.name.clone(),
            spool: spool.to_path_buf(),
            complete: false,
            recipients: job.recipient_strings.clone(),
            encrypted: job.encrypted(),
            created: created.at,
            created_from: created.from,
            plaintext: None,
            stored: None,
            destinations: BTreeMap::new(),
        };
        journal.save(work)?;
        Ok(JournalHandle {
            resumed: false,
            ..JournalHandle::reused(journal, work)
        })
    }

    /// The upload each destination's URL recorded in an earlier run.
    pub(super) fn prior(&self, url: &str) -> Option<UploadRecord> {
        let j = self.journal.lock().expect("journal lock");
        j.destinations.get(url).and_then(|d| d.upload.clone())
    }

    /// Where the spool is.
    pub(super) fn spool(&self) -> std::path::PathBuf {
        self.journal.lock().expect("journal lock").spool.clone()
    }

    /// Records the complete spool's digests: from here on a killed push can resume.
    pub(super) fn mark_complete(&self, plaintext: &Digest, stored: &Digest) {
        let mut j = self.journal.lock().expect("journal lock");
        j.complete = true;
        j.plaintext = Some(plaintext.clone());
        j.stored = Some(stored.clone());
        if let Err(e) = j.save(&self.work) {
            tracing::warn!(error = %e, "could not record the complete spool; a rerun will re-encrypt");
        }
    }

    /// Records a resumable upload as it starts.
    pub(super) fn record_upload(&self, url: &str, record: &UploadRecord) {
        let mut j = self.journal.lock().expect("journal lock");
        let entry = j.destinations.entry(url.to_string()).or_default();
        entry.state = DestinationState::Uploading;
        entry.upload = Some(record.clone());
        if let Err(e) = j.save(&self.work) {
            tracing::warn!(error = %e, "could not record the upload id; a rerun will start this upload over");
        }
    }

    /// An incomplete spool cannot be continued: drops it and the journal (the transfers that
    /// read it aborted themselves).
    pub(super) fn discard_incomplete(&self) {
        let j = self.journal.lock().expect("journal lock");
        let _ = std::fs::remove_file(&j.spool);
        let _ = std::fs::remove_file(Journal::path(&self.work));
    }

    /// The end of a push whose spool completed: every copy committed (or none was wanted)
    /// leaves nothing behind; else the spool and its journal, with what each destination
    /// reached, stay for a rerun to send the same ciphertext again.
    pub(super) fn settle(
        &self,
        urls: &[String],
        sent: &[(usize, Status)],
        report: &[DestinationReport],
    ) -> Option<KeptSpool> {
        let mut journal = self.journal.lock().expect("journal lock").clone();
        for (i, status) in sent {
            let entry = journal.destinations.entry(urls[*i].clone()).or_default();
            entry.state = if *status == Status::Stored {
                entry.upload = None;
                DestinationState::Stored
            } else {
                DestinationState::Failed
            };
        }
        if sent.is_empty() || report.iter().all(|r| r.status != Status::Failed) {
            let _ = std::fs::remove_file(&journal.spool);
            let _ = std::fs::remove_file(Journal::path(&self.work));
            return None;
        }
        if let Err(e) = journal.save(&self.work) {
            tracing::warn!(error = %e, "could not record the push journal; a rerun will re-encrypt");
            return None;
        }
        let size = std::fs::metadata(&journal.spool).ok()?.len();
        Some(KeptSpool {
            path: journal.spool,
            size,
        })
    }
}

/// Removes an unusable spool of an earlier run and its journal, and aborts the uploads it
/// recorded (their parts hold ciphertext that will never be sent again, and the provider bills
/// for them).
pub(super) async fn discard_earlier(j: &Journal, work: &Path, job: &Job) {
    for (url, d) in &j.destinations {
        let Some(record) = d.upload.clone() else {
            continue;
        };
        if let Some(i) = job.destinations.iter().position(|x| x.url() == url) {
            transfer::abort_recorded(&job.destinations[i], &job.keys[i].object, record).await;
        }
    }
    if j.spool.starts_with(work) {
        let _ = std::fs::remove_file(&j.spool);
    }
    let _ = std::fs::remove_file(Journal::path(work));
}
