//! The spool and its journal (DESIGN.md, "Resume, retries and the spool").
//!
//! age draws a fresh file key for every encryption, so only stable ciphertext can be resumed.
//! Push therefore writes the encrypted stream once, to a spool file on local disk, and every
//! destination reads its bytes from the spool, while it is being written and afterwards. The
//! spool is the local destination's own copy when one is being written (it is renamed into
//! place at the end), else a file under the cache directory, removed on success.
//!
//! The journal, always under the cache directory and keyed by archive name and destination
//! set, records where the spool is, whether it completed (with the plaintext and ciphertext
//! digests, since a resuming push cannot decrypt the spool and stdin cannot be read twice), and
//! per destination what has been done. A rerun finds a complete spool through it and sends the
//! same ciphertext again instead of re-encrypting; an incomplete spool is discarded.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::archive::{CreatedFrom, Digest};

/// Journal format version.
pub const JOURNAL_FORMAT: u32 = 1;

/// The per-push working directory in the cache: archive name plus a hash of the destinations.
pub fn work_dir(name: &str, destination_urls: &[String]) -> PathBuf {
    let mut urls = destination_urls.to_vec();
    urls.sort();
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    for u in &urls {
        h.update([0]);
        h.update(u.as_bytes());
    }
    let tag = hex::encode(&h.finalize()[..6]);
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    crate::engine::cache_dir::spools().join(format!("{safe}-{tag}"))
}

/// Creates a spool directory and its missing parents with mode 0700, and makes an existing one
/// 0700: a spool holds the archive (encrypted, but its name and size are the user's business)
/// and the journal holds upload sessions.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .with_context(|| format!("cannot create the spool directory {}", dir.display()))
}

/// Holds the work directory's lock for as long as it lives.
pub struct WorkLock {
    _file: File,
}

/// Takes the work directory's lock, or fails at once when another push of the same archive to
/// the same destinations holds it on this machine.
pub fn lock_work_dir(work: &Path, name: &str) -> Result<WorkLock> {
    private_dir(work)?;
    let path = work.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(WorkLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "another push of {name:?} to these destinations is running on this machine (it holds {}); wait for it to finish, or stop it",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Removes the work directory when nothing is left in it but the lock (called while holding
/// it, at the end of a push).
pub fn release_work_dir(work: &Path) {
    let only_lock = std::fs::read_dir(work)
        .map(|rd| rd.filter_map(|e| e.ok()).all(|e| e.file_name() == "lock"))
        .unwrap_or(false);
    if only_lock {
        let _ = std::fs::remove_file(work.join("lock"));
        let _ = std::fs::remove_dir(work);
    }
}

/// Creates a fresh spool file, private to the user. An old file of that name is unlinked
/// first, never truncated: it may be hard-linked as a committed local copy.
pub fn create_spool(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e)
                .with_context(|| format!("cannot remove the old spool {}", path.display()))
        }
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the spool {}", path.display()))
}

/// Where one destination's copy stands, as the journal records it (`"uploading"`, `"stored"`,
/// `"failed"` on disk, as journals have always spelled it).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DestinationState {
    /// A resumable upload was started; its record is beside.
    Uploading,
    /// Committed by the run that wrote the journal.
    Stored,
    /// Failed in the run that wrote the journal; a rerun sends it again.
    Failed,
    /// Nothing recorded yet (also what a state this version does not know reads as).
    #[default]
    #[serde(other)]
    Pending,
}

/// What the journal records of one destination.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct DestinationJournal {
    /// Where the copy stands.
    pub state: DestinationState,
    /// The resumable upload's state (upload id and part size, or session URL), when it has
    /// one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<offsite_storage::UploadRecord>,
}

/// The journal beside a push's spool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct Journal {
    /// The journal format version (1).
    pub format: u32,
    /// The archive.
    pub archive: String,
    /// Where the spool file is now.
    pub spool: PathBuf,
    /// Whether the spool holds the whole stream.
    pub complete: bool,
    /// The recipients the spool was encrypted for (empty: not encrypted).
    pub recipients: Vec<String>,
    /// Whether the spool is age ciphertext.
    pub encrypted: bool,
    /// The archive's creation time.
    pub created: DateTime<Utc>,
    /// Where the creation time came from.
    pub created_from: CreatedFrom,
    /// Plaintext digest, once complete.
    pub plaintext: Option<Digest>,
    /// Spool (stored bytes) digest, once complete.
    pub stored: Option<Digest>,
    /// Per destination URL.
    pub destinations: BTreeMap<String, DestinationJournal>,
}

impl Journal {
    /// The journal's file in a work directory.
    pub fn path(work_dir: &Path) -> PathBuf {
        work_dir.join("journal.json")
    }

    /// Reads a journal; `None` when there is none or it cannot be used (then it is ignored).
    pub fn load(work_dir: &Path) -> Option<Journal> {
        let bytes = std::fs::read(Self::path(work_dir)).ok()?;
        match serde_json::from_slice::<Journal>(&bytes) {
            Ok(j) if j.format == JOURNAL_FORMAT => Some(j),
            _ => {
                tracing::warn!(dir = %work_dir.display(), "ignoring an unreadable push journal");
                None
            }
        }
    }

    /// Writes the journal atomically (temp file, fsync, rename).
    pub fn save(&self, work_dir: &Path) -> Result<()> {
        private_dir(work_dir)?;
        let tmp = work_dir.join(".journal.json.tmp");
        let bytes = serde_json::to_vec_pretty(self)?;
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::OpenOptionsExt;
            // Private: it may hold a resumable session URL, which authenticates uploads.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all_at(&bytes, 0)?;
            f.sync_all()?;
            std::fs::rename(&tmp, Self::path(work_dir))
        };
        write().with_context(|| format!("cannot write the push journal in {}", work_dir.display()))
    }
}

/// How far the spool has been written, shared with every destination's reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Bytes written so far; more are coming.
    Writing(u64),
    /// The spool is complete and fsynced with this many bytes.
    Done(u64),
    /// Producing the spool failed; readers stop.
    Failed(String),
}

/// The producer's handle on the progress every reader watches.
pub type ProgressTx = watch::Sender<Progress>;

/// A new progress channel.
pub fn progress_channel(initial: Progress) -> (ProgressTx, watch::Receiver<Progress>) {
    watch::channel(initial)
}

/// Reads a spool from the start while it is being written, in chunks, waiting for the producer
/// when it catches up. It holds its own file handle, so the spool may be renamed meanwhile.
pub struct SpoolTail {
    file: Arc<File>,
    offset: u64,
    rx: watch::Receiver<Progress>,
    chunk: u64,
}

impl SpoolTail {
    /// Opens `path` for tailing.
    pub fn open(path: &Path, rx: watch::Receiver<Progress>, chunk: usize) -> Result<SpoolTail> {
        let file = File::open(path)
            .with_context(|| format!("cannot open the spool {}", path.display()))?;
        Ok(SpoolTail {
            file: Arc::new(file),
            offset: 0,
            rx,
            chunk: chunk as u64,
        })
    }

    /// The next chunk, `None` at the end of a complete spool.
    pub async fn next(&mut self) -> Result<Option<Bytes>> {
        loop {
            let state = self.rx.borrow_and_update().clone();
            let (available, done) = match state {
                Progress::Writing(n) => (n, false),
                Progress::Done(n) => (n, true),
                Progress::Failed(why) => bail!("the spool was not completed: {why}"),
            };
            if self.offset < available {
                let len = (available - self.offset).min(self.chunk) as usize;
                let file = Arc::clone(&self.file);
                let offset = self.offset;
                let buf = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                    let mut buf = vec![0u8; len];
                    file.read_exact_at(&mut buf, offset)?;
                    Ok(buf)
                })
                .await
                .context("spool reader task failed")?
                .context("cannot read the spool")?;
                self.offset += len as u64;
                return Ok(Some(Bytes::from(buf)));
            }
            if done {
                return Ok(None);
            }
            if self.rx.changed().await.is_err() {
                bail!("the spool producer stopped without finishing");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_keeps_a_session_url_but_debug_never_shows_it() {
        let mut destinations = BTreeMap::new();
        destinations.insert(
            "gs://b/app".to_string(),
            DestinationJournal {
                state: DestinationState::Uploading,
                upload: Some(offsite_storage::UploadRecord::Session {
                    session: "https://storage.googleapis.com/upload?upload_id=SECRETSESSION".into(),
                }),
            },
        );
        let j = Journal {
            format: JOURNAL_FORMAT,
            archive: "a".into(),
            spool: PathBuf::from("/tmp/x"),
            complete: false,
            recipients: vec![],
            encrypted: true,
            created: Utc::now(),
            created_from: CreatedFrom::PushTime,
            plaintext: None,
            stored: None,
            destinations,
        };
        assert!(!format!("{j:?}").contains("SECRETSESSION"));
        // The file keeps it (mode 0600): a rerun needs it to resume.
        let dir = tempfile::tempdir().unwrap();
        j.save(dir.path()).unwrap();
        let path = Journal::path(dir.path());
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("SECRETSESSION"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "private to the user: {mode:o}");
        assert_eq!(Journal::load(dir.path()), Some(j));
    }

    #[test]
    fn journal_states_keep_their_spelling_on_disk() {
        for (state, text) in [
            (DestinationState::Uploading, "\"uploading\""),
            (DestinationState::Stored, "\"stored\""),
            (DestinationState::Failed, "\"failed\""),
        ] {
            assert_eq!(serde_json::to_string(&state).unwrap(), text);
            assert_eq!(
                serde_json::from_str::<DestinationState>(text).unwrap(),
                state
            );
        }
        let old: DestinationJournal = serde_json::from_str(r#"{"state":""}"#).unwrap();
        assert_eq!(old.state, DestinationState::Pending);
    }

    proptest::proptest! {
        #[test]
        fn loading_any_bytes_as_a_journal_never_panics(
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(Journal::path(dir.path()), &b).unwrap();
            let _ = Journal::load(dir.path());
        }
    }
}
