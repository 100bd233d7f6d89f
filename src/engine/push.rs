//! The push pipeline: read the source once, hash it, encrypt it, hash the ciphertext, write it
//! to the spool, and stream the spool to every destination at once; then check each receipt
//! and commit each copy by writing its manifest.
//!
//! Two threads share the CPU work: one reads, hashes the plaintext and encrypts; the other
//! hashes the ciphertext and writes the spool. Destinations read the spool as it grows, each at
//! its own pace, so a slow destination never holds the others back and memory stays flat: the
//! disk is the buffer.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use offsite_policies::encryption::Recipient;
use offsite_storage::{Checksum, ObjectWriter, PutOptions, Receipt, StorageExt};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::inventory::read_manifest;
use super::spool::{self, Journal, Progress, ProgressTx, SpoolTail};
use super::uploads;
use crate::archive::{
    time_from_name, tool_version, ArchiveKeys, CreatedFrom, Digest, Encryption, Manifest, Stored,
    MANIFEST_FORMAT,
};
use crate::registry::{key_prefix, Opened};

/// Bytes per block between the pipeline's threads and per spool read.
const BLOCK: usize = 1 << 20;
/// Blocks in flight between the encrypting thread and the spool writer.
const BLOCKS_IN_FLIGHT: usize = 4;

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
    pub progress: Option<ProgressBar>,
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
    /// For a resumed multipart upload: parts found already on the server, of all parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_parts: Option<(u32, u32)>,
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
    /// The stored bytes' digest.
    pub stored: Option<Digest>,
    /// Whether a complete spool from an earlier run was sent again instead of re-encrypting.
    pub resumed: bool,
    /// Per destination, in the order given.
    pub destinations: Vec<DestinationReport>,
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

enum Plan {
    /// Upload to it.
    Active,
    /// A manifest is there but its data object is gone or the wrong size: upload, and commit
    /// only if the archive is the one the manifest describes.
    Repair(Box<Manifest>),
    /// A complete copy is there: compare digests once the source is hashed.
    Deferred(Box<Manifest>),
    /// Decided already.
    Done(Status, String),
}

impl Plan {
    fn uploads(&self) -> bool {
        matches!(self, Plan::Active | Plan::Repair(_))
    }

    fn repairs(&self) -> Option<&Manifest> {
        match self {
            Plan::Repair(m) => Some(m),
            _ => None,
        }
    }
}

/// The time an archive was made: from its name, else the file's mtime, else now.
pub fn creation_time(name: &str, source: &Source) -> (DateTime<Utc>, CreatedFrom) {
    if let Some(t) = time_from_name(name) {
        return (t, CreatedFrom::Name);
    }
    if let Source::File(f, _) = source {
        if let Ok(m) = f.metadata().and_then(|m| m.modified()) {
            return (DateTime::<Utc>::from(m), CreatedFrom::Mtime);
        }
    }
    (Utc::now(), CreatedFrom::PushTime)
}

/// Runs one push. Per-destination failures are in the report; an `Err` means nothing could
/// be attempted (the source could not be read, the spool could not be written, another push
/// of the same archive to the same destinations is running).
pub async fn run(req: PushRequest) -> Result<PushReport> {
    let encrypted = !req.recipients.is_empty();
    let (created, created_from) = creation_time(&req.name, &req.source);
    let keys: Vec<ArchiveKeys> = req
        .destinations
        .iter()
        .map(|d| ArchiveKeys::new(key_prefix(&d.location), &req.name, encrypted))
        .collect();
    let urls: Vec<String> = req
        .destinations
        .iter()
        .map(|d| d.url().to_string())
        .collect();
    let work = spool::work_dir(&req.name, &urls);
    // One push of an archive to a set of destinations at a time on this machine: a second one
    // would discard the first one's spool and uploads under it.
    let _lock = spool::lock_work_dir(&work, &req.name)?;

    // What is there already?
    let mut plans = Vec::new();
    for (dest, k) in req.destinations.iter().zip(&keys) {
        plans.push(plan(dest, k, req.overwrite).await);
    }
    let recipient_strings: Vec<String> = {
        let mut v: Vec<String> = req.recipients.iter().map(|r| r.to_string()).collect();
        v.sort();
        v
    };
    let active: Vec<usize> = (0..plans.len()).filter(|&i| plans[i].uploads()).collect();
    let pb = req.progress.clone();
    // age adds 16 bytes per 64 KiB chunk and a header: an upper bound of the stored size, so
    // that multipart part sizes are chosen for the ciphertext, not the plaintext.
    let stored_bound = match &req.source {
        Source::File(f, _) => f.metadata().ok().map(|m| {
            let n = m.len();
            if encrypted {
                n + (n / 65_536 + 1) * 16 + (64 << 10)
            } else {
                n
            }
        }),
        Source::Stdin => None,
    };
    let mut source = Some(req.source);

    // A complete spool from an earlier run of this push can be sent again, if the source is
    // the same bytes and the recipients are the same.
    let mut reusable_journal = None;
    let mut hashed_source = None;
    if let Some(j) = Journal::load(&work) {
        let reusable = j.complete
            && j.encrypted == encrypted
            && j.recipients == recipient_strings
            && j.stored.as_ref().is_some_and(|s| {
                std::fs::metadata(&j.spool)
                    .map(|m| m.len() == s.size)
                    .unwrap_or(false)
            })
            && !active.is_empty();
        if reusable {
            let (digest, rewound) = hash_source(source.take().expect("source"), pb.clone()).await?;
            source = rewound;
            if Some(&digest) == j.plaintext.as_ref() {
                tracing::info!(spool = %j.spool.display(), "resuming from a complete spool");
                reusable_journal = Some(j);
            } else {
                discard(&j, &work, &req.destinations, &keys).await;
                if source.is_none() {
                    anyhow::bail!(
                        "standard input differs from the interrupted push of {:?}, whose spool was discarded; run the push again",
                        req.name
                    );
                }
                if let Some(pb) = &pb {
                    pb.set_position(0);
                }
            }
            hashed_source = Some(digest);
        } else {
            discard(&j, &work, &req.destinations, &keys).await;
        }
    }

    let mut reports: Vec<Option<DestinationReport>> = vec![None; plans.len()];
    let (plaintext, stored, journal) = if active.is_empty() {
        // Nothing to upload: only the digest decides whether the copies there are this archive.
        let digest = match hashed_source {
            Some(d) => d,
            None => {
                hash_source(source.take().expect("source"), pb.clone())
                    .await?
                    .0
            }
        };
        (Some(digest.clone()), Some(digest), None)
    } else {
        let mut journal = match reusable_journal.take() {
            Some(j) => j,
            None => Journal {
                format: 1,
                archive: req.name.clone(),
                spool: PathBuf::new(),
                complete: false,
                recipients: recipient_strings.clone(),
                encrypted,
                created,
                created_from,
                plaintext: None,
                stored: None,
                destinations: BTreeMap::new(),
            },
        };
        let is_resume = journal.complete;
        let mut spool_file = None;
        if !is_resume {
            let sp = work.join("data.spool");
            spool_file = Some(spool::create_spool(&sp)?);
            journal.spool = sp;
            journal.save(&work)?;
        }
        let initial = match (&journal.stored, is_resume) {
            (Some(s), true) => Progress::Done(s.size),
            _ => Progress::Writing(0),
        };
        let (tx, rx) = spool::progress_channel(initial);
        let tx = Arc::new(tx);
        // The digests, once the spool is complete: each destination commits as soon as its own
        // upload is done, without waiting for the slower ones.
        let (digests_tx, digests_rx) =
            tokio::sync::watch::channel(match (&journal.plaintext, &journal.stored, is_resume) {
                (Some(p), Some(s), true) => Some((p.clone(), s.clone())),
                _ => None,
            });
        let priors: BTreeMap<String, serde_json::Value> = journal
            .destinations
            .iter()
            .filter_map(|(url, d)| Some((url.clone(), d.upload.clone()?)))
            .collect();
        let shared = uploads::JournalHandle {
            journal: Arc::new(std::sync::Mutex::new(journal.clone())),
            work: work.clone(),
        };
        let facts = Arc::new(CommitFacts {
            name: req.name.clone(),
            created,
            created_from,
            recipients: req.recipients.clone(),
        });

        let mut uploads = Vec::new();
        let mut linked = false;
        for &i in &active {
            let dest = req.destinations[i].clone();
            let keys_i = keys[i].clone();
            let key = keys_i.object.clone();
            // The first local destination on the spool's file system takes the spool by hard
            // link: the bytes are written once, and a full destination disk fails only itself.
            // Only one: hard-linked copies would be one file, not two copies.
            let link = match local_dir(&dest, &key) {
                Ok(Some(dir)) if !linked && same_device(&dir, &work) => {
                    linked = true;
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    reports[i] = Some(failed(&dest, &keys_i, format!("{e:#}")));
                    continue;
                }
            };
            let multipart = if link { None } else { dest.store.multipart() };
            let sequential = if link || multipart.is_some() {
                None
            } else {
                dest.store.sequential()
            };
            let tail = if link || multipart.is_some() || sequential.is_some() {
                None
            } else {
                Some(SpoolTail::open(&journal.spool, rx.clone(), BLOCK)?)
            };
            let rx = rx.clone();
            let spool_path = journal.spool.clone();
            let mut options = PutOptions::default();
            options.size_hint = journal.stored.as_ref().map(|s| s.size).or(stored_bound);
            options.storage_class = dest.options.storage_class.clone();
            options.retention = dest.options.retention(created);
            options.legal_hold = dest.options.legal_hold;
            let prior = priors.get(dest.url()).cloned();
            let shared = shared.clone();
            let mut digests_rx = digests_rx.clone();
            let facts = facts.clone();
            let expect = plans[i].repairs().map(|m| m.plaintext.sha256.clone());
            uploads.push(async move {
                let res = match (tail, multipart, sequential) {
                    (Some(tail), _, _) => {
                        upload(&dest, &key, tail, options).await.map(|r| (r, None))
                    }
                    (None, Some(mp), _) => {
                        let prior = prior.and_then(|v| serde_json::from_value(v).ok());
                        uploads::upload_parts(
                            &dest,
                            &key,
                            mp,
                            &spool_path,
                            rx,
                            options,
                            prior,
                            &shared,
                        )
                        .await
                    }
                    (None, None, Some(seq)) => {
                        let prior = prior.and_then(|v| serde_json::from_value(v).ok());
                        uploads::upload_session(
                            &dest,
                            &key,
                            seq,
                            &spool_path,
                            rx,
                            options,
                            prior,
                            &shared,
                        )
                        .await
                    }
                    (None, None, None) => link_spool(&dest, &key, &spool_path, rx)
                        .await
                        .map(|r| (r, None)),
                };
                let report = match res {
                    Ok((receipt, resumed_parts)) => match wait_digests(&mut digests_rx).await {
                        Ok((plaintext, stored)) => {
                            let mut r = commit(
                                &dest,
                                &keys_i,
                                &facts,
                                receipt,
                                &plaintext,
                                &stored,
                                expect.as_deref(),
                            )
                            .await;
                            r.resumed_parts = resumed_parts;
                            r
                        }
                        Err(e) => failed(&dest, &keys_i, format!("{e:#}")),
                    },
                    Err(e) => failed(&dest, &keys_i, format!("{e:#}")),
                };
                (i, report)
            });
        }
        let producer = async {
            if is_resume {
                return Ok((
                    journal.plaintext.clone().expect("complete"),
                    journal.stored.clone().expect("complete"),
                ));
            }
            let file = spool_file.take().expect("spool file");
            let res = produce(
                source.take().expect("source"),
                req.recipients.clone(),
                file,
                tx.clone(),
                pb.clone(),
            )
            .await;
            match &res {
                Ok((p, s)) => {
                    // Recorded before anyone is told: a kill from here on can resume.
                    shared.mark_complete(p, s);
                    digests_tx.send_replace(Some((p.clone(), s.clone())));
                    tx.send_replace(Progress::Done(s.size));
                }
                Err(e) => {
                    tx.send_replace(Progress::Failed(format!("{e:#}")));
                }
            }
            res
        };
        let (produced, results) = futures::join!(producer, futures::future::join_all(uploads));
        let mut journal = shared.journal.lock().expect("journal lock").clone();
        let (plaintext, stored) = match produced {
            Ok(p) => p,
            Err(e) => {
                // An incomplete spool cannot be continued: drop it; the uploads that read it
                // aborted themselves.
                let _ = std::fs::remove_file(&journal.spool);
                let _ = std::fs::remove_file(Journal::path(&work));
                return Err(e);
            }
        };
        journal.complete = true;
        journal.plaintext = Some(plaintext.clone());
        journal.stored = Some(stored.clone());
        for (i, report) in results {
            let entry = journal
                .destinations
                .entry(req.destinations[i].url().to_string())
                .or_default();
            entry.state = if report.status == Status::Stored {
                "stored"
            } else {
                "failed"
            }
            .into();
            if report.status == Status::Stored {
                entry.upload = None;
            }
            reports[i] = Some(report);
        }
        (Some(plaintext), Some(stored), Some((journal, is_resume)))
    };
    let resumed = journal.as_ref().is_some_and(|(_, r)| *r);

    // Destinations that already had a manifest: the same archive, or a different one?
    for (i, plan) in plans.into_iter().enumerate() {
        let dest = &req.destinations[i];
        match plan {
            Plan::Active | Plan::Repair(_) => {}
            Plan::Done(status, message) => {
                reports[i] = Some(DestinationReport {
                    url: dest.url().to_string(),
                    status,
                    key: keys[i].object.clone(),
                    message: Some(message),
                    provider_checksum: None,
                    resumed_parts: None,
                });
            }
            Plan::Deferred(m) => {
                reports[i] = Some(judge_existing(
                    dest,
                    &m,
                    plaintext.as_ref(),
                    &recipient_strings,
                ));
            }
        }
    }
    let reports: Vec<DestinationReport> = reports
        .into_iter()
        .map(|r| r.expect("every destination reported"))
        .collect();

    if let Some((journal, _)) = journal {
        let all_ok = reports.iter().all(|r| r.status != Status::Failed);
        if all_ok {
            let _ = std::fs::remove_file(&journal.spool);
            let _ = std::fs::remove_file(Journal::path(&work));
        } else {
            // Keep the spool and its journal: a rerun sends the same ciphertext again.
            if let Err(e) = journal.save(&work) {
                tracing::warn!(error = %e, "could not record the push journal; a rerun will re-encrypt");
            }
        }
    }
    spool::release_work_dir(&work);

    Ok(PushReport {
        archive: req.name,
        created,
        created_from,
        encrypted,
        plaintext,
        stored,
        resumed,
        destinations: reports,
    })
}

/// What is at a destination before the push, and what to do about it.
async fn plan(dest: &Opened, k: &ArchiveKeys, overwrite: bool) -> Plan {
    let manifest = match read_manifest(dest.store.as_ref(), &k.manifest).await {
        Err(e) => return Plan::Done(Status::Failed, format!("cannot read {}: {e}", k.manifest)),
        Ok(m) => m,
    };
    match manifest {
        None => Plan::Active,
        Some(_) if overwrite => {
            // The old manifest goes first: while the new data replaces the old, no manifest
            // may describe bytes that are no longer there.
            match dest.store.delete(&k.manifest).await {
                Ok(()) => Plan::Active,
                Err(e) if e.is_not_found() => Plan::Active,
                Err(e) if e.kind() == offsite_storage::ErrorKind::Locked => Plan::Done(
                    Status::Refused,
                    format!("the copy here is locked and cannot be replaced: {e}"),
                ),
                Err(e) => Plan::Done(Status::Failed, format!("cannot remove the old manifest {}: {e}", k.manifest)),
            }
        }
        Some(Err(bad)) => Plan::Done(
            Status::Refused,
            format!("the manifest {} is unreadable ({bad}); inspect that copy, or pass --overwrite to replace it", k.manifest),
        ),
        Some(Ok(m)) => {
            // A manifest alone is not a copy: the data must be there, whole.
            let object_key = offsite_storage::join_key(key_prefix(&dest.location), &m.stored.key);
            match dest.store.head(&object_key).await {
                Ok(meta) if meta.size == m.stored.size => Plan::Deferred(Box::new(m)),
                Ok(_) => Plan::Repair(Box::new(m)),
                Err(e) if e.is_not_found() => Plan::Repair(Box::new(m)),
                Err(e) => Plan::Done(Status::Failed, format!("cannot check {object_key}: {e}")),
            }
        }
    }
}

/// The verdict on a destination that already held a complete copy under this name.
fn judge_existing(
    dest: &Opened,
    m: &Manifest,
    plaintext: Option<&Digest>,
    recipients: &[String],
) -> DestinationReport {
    let same =
        plaintext.is_some_and(|p| p.sha256 == m.plaintext.sha256 && p.size == m.plaintext.size);
    let mut theirs: Vec<String> = m
        .encryption
        .as_ref()
        .map(|e| e.recipients.clone())
        .unwrap_or_default();
    theirs.sort();
    let short: String = m.plaintext.sha256.chars().take(16).collect();
    let (status, message) = if !same {
        (
            Status::Refused,
            Some(format!(
                "a different archive named {:?} is already stored here (pushed {}, plaintext SHA-256 {short}...); pass --overwrite to replace it, or push under another --name",
                m.archive,
                m.pushed.format("%Y-%m-%dT%H:%M:%SZ"),
            )),
        )
    } else if theirs != recipients {
        (
            Status::Refused,
            Some(format!(
                "this archive is already stored here, but {}; pass --overwrite to store it again for the recipients given now",
                if theirs.is_empty() { "unencrypted".to_string() } else { format!("encrypted for {}", theirs.join(", ")) }
            )),
        )
    } else {
        (Status::AlreadyStored, None)
    };
    DestinationReport {
        url: dest.url().to_string(),
        status,
        key: m.stored.key.clone(),
        message,
        provider_checksum: m.stored.provider_checksum.clone(),
        resumed_parts: None,
    }
}

/// Waits for the spool's digests.
async fn wait_digests(
    rx: &mut tokio::sync::watch::Receiver<Option<(Digest, Digest)>>,
) -> Result<(Digest, Digest)> {
    loop {
        if let Some(d) = rx.borrow_and_update().clone() {
            return Ok(d);
        }
        if rx.changed().await.is_err() {
            anyhow::bail!("the spool was not completed");
        }
    }
}

/// What every manifest of this push shares.
struct CommitFacts {
    name: String,
    created: DateTime<Utc>,
    created_from: CreatedFrom,
    recipients: Vec<Recipient>,
}

/// Removes an unusable spool and its journal, and aborts the uploads it recorded (their parts
/// hold ciphertext that will never be sent again, and the provider bills for them).
async fn discard(
    j: &Journal,
    work: &std::path::Path,
    destinations: &[Opened],
    keys: &[ArchiveKeys],
) {
    for (url, d) in &j.destinations {
        let Some(record) = d.upload.clone() else {
            continue;
        };
        let Some(i) = destinations.iter().position(|x| x.url() == url) else {
            continue;
        };
        let store = &destinations[i].store;
        let key = &keys[i].object;
        let res = if let (Some(mp), Ok(u)) = (
            store.multipart(),
            serde_json::from_value::<uploads::UploadState>(record.clone()),
        ) {
            mp.abort_upload(key, &u.id).await
        } else if let (Some(seq), Ok(s)) = (
            store.sequential(),
            serde_json::from_value::<uploads::SessionRecord>(record),
        ) {
            seq.cancel_session(key, s.url()).await
        } else {
            Ok(())
        };
        if let Err(e) = res {
            tracing::warn!(error = %e, %url, "could not abort the earlier run's upload");
        }
    }
    if j.spool.starts_with(work) {
        let _ = std::fs::remove_file(&j.spool);
    }
    let _ = std::fs::remove_file(Journal::path(work));
}

/// The directory a local destination writes `key` into, created now; `None` for remote stores.
fn local_dir(dest: &Opened, key: &str) -> Result<Option<PathBuf>> {
    let Some(local) = &dest.local else {
        return Ok(None);
    };
    let path = local.path_for(key)?;
    let dir = path.parent().map(PathBuf::from).unwrap_or_default();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(Some(dir))
}

fn same_device(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev(),
        _ => false,
    }
}

fn failed(dest: &Opened, keys: &ArchiveKeys, message: String) -> DestinationReport {
    DestinationReport {
        url: dest.url().to_string(),
        status: Status::Failed,
        key: keys.object.clone(),
        message: Some(message),
        provider_checksum: None,
        resumed_parts: None,
    }
}

/// Streams the spool into one destination's writer.
async fn upload(
    dest: &Opened,
    key: &str,
    mut tail: SpoolTail,
    options: PutOptions,
) -> Result<Receipt> {
    let mut writer: Box<dyn ObjectWriter> = dest.store.writer(key, options).await?;
    loop {
        match tail.next().await {
            Ok(Some(chunk)) => {
                if let Err(e) = writer.write(chunk).await {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            }
            Ok(None) => break,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e);
            }
        }
    }
    Ok(writer.finish().await?)
}

/// A local destination on the spool's file system: once the spool is complete, hard-link it
/// into place as this copy.
async fn link_spool(
    dest: &Opened,
    key: &str,
    spool: &std::path::Path,
    mut rx: tokio::sync::watch::Receiver<Progress>,
) -> Result<Receipt> {
    loop {
        let state = rx.borrow_and_update().clone();
        match state {
            Progress::Done(_) => break,
            Progress::Failed(why) => return Err(anyhow!("the spool was not completed: {why}")),
            Progress::Writing(_) => {
                if rx.changed().await.is_err() {
                    return Err(anyhow!("the spool producer stopped without finishing"));
                }
            }
        }
    }
    let local = dest
        .local
        .as_ref()
        .expect("only local destinations link the spool");
    Ok(local.link_from(spool, key).await?)
}

/// Checks a finished upload against the spool's digest and writes its manifest. `expect` is
/// the plaintext SHA-256 a repaired copy must have.
async fn commit(
    dest: &Opened,
    keys: &ArchiveKeys,
    facts: &CommitFacts,
    receipt: Receipt,
    plaintext: &Digest,
    stored: &Digest,
    expect: Option<&str>,
) -> DestinationReport {
    let (name, created, created_from, recipients) = (
        &facts.name,
        facts.created,
        facts.created_from,
        &facts.recipients,
    );
    if expect.is_some_and(|e| e != plaintext.sha256) {
        let removed = dest.store.delete(&keys.object).await;
        return DestinationReport {
            status: Status::Refused,
            message: Some(format!(
                "a different archive of this name was stored here and its data is gone; its manifest stays, and the data just sent was {}; pass --overwrite to replace that copy",
                if removed.is_ok() { "removed" } else { "left without a manifest (it does not count)" }
            )),
            ..failed(dest, keys, String::new())
        };
    }
    let mismatch = if receipt.size != stored.size {
        Some(format!(
            "stored {} bytes, but the spool has {}",
            receipt.size, stored.size
        ))
    } else {
        match &receipt.checksum {
            Some(Checksum::Sha256(h)) if *h != stored.sha256 => Some(format!(
                "the store reports SHA-256 {h}, the spool has {}",
                stored.sha256
            )),
            _ => None,
        }
    };
    if let Some(why) = mismatch {
        // Never leave an object that could be mistaken for this archive: it has no manifest,
        // and it is removed too where the store allows.
        let removed = match dest.store.delete(&keys.object).await {
            Ok(()) => "it was removed",
            Err(_) => "it has no manifest, so it does not count",
        };
        return failed(
            dest,
            keys,
            format!("the upload did not arrive intact ({why}); {removed}; push again"),
        );
    }
    let retention = dest.options.retention(created);
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        archive: name.clone(),
        created,
        created_from,
        plaintext: plaintext.clone(),
        stored: Stored {
            key: keys
                .object
                .rsplit('/')
                .next()
                .unwrap_or(&keys.object)
                .to_string(),
            size: stored.size,
            sha256: stored.sha256.clone(),
            provider_checksum: receipt.checksum.clone(),
            storage_class: dest.options.storage_class.clone(),
        },
        encryption: (!recipients.is_empty()).then(|| Encryption {
            scheme: "age".into(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
        }),
        policy: None,
        retain_until: retention.map(|r| r.retain_until),
        pushed: Utc::now(),
        tool: tool_version(),
    };
    let bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
    // The manifest carries the same lock as its data: an immutable copy must keep counting.
    let mut manifest_options = PutOptions::default();
    manifest_options.retention = retention;
    manifest_options.legal_hold = dest.options.legal_hold;
    manifest_options.legal_hold = dest.options.legal_hold;
    match dest.store.put_bytes(&keys.manifest, bytes.into(), manifest_options).await {
        Ok(_) => DestinationReport {
            url: dest.url().to_string(),
            status: Status::Stored,
            key: keys.object.clone(),
            message: None,
            provider_checksum: receipt.checksum,
            resumed_parts: None,
        },
        Err(e) => failed(dest, keys, format!("the data was stored but its manifest could not be written, so the copy does not count: {e}")),
    }
}

fn open_reader(source: Source) -> Box<dyn Read + Send> {
    match source {
        Source::File(f, _) => Box::new(f),
        Source::Stdin => Box::new(std::io::stdin()),
    }
}

/// Hashes the whole source; gives a file back rewound (stdin cannot be read again).
async fn hash_source(source: Source, pb: Option<ProgressBar>) -> Result<(Digest, Option<Source>)> {
    use std::io::{Seek, SeekFrom};
    let what = source_name(&source);
    tokio::task::spawn_blocking(move || -> std::io::Result<(Digest, Option<Source>)> {
        let inc = |n| {
            if let Some(pb) = &pb {
                pb.inc(n)
            }
        };
        match source {
            Source::File(mut f, p) => {
                let d = spool::digest_reader(&mut f, inc)?;
                f.seek(SeekFrom::Start(0))?;
                Ok((d, Some(Source::File(f, p))))
            }
            Source::Stdin => Ok((spool::digest_reader(std::io::stdin(), inc)?, None)),
        }
    })
    .await?
    .with_context(|| format!("cannot read {what}"))
}

fn source_name(source: &Source) -> String {
    match source {
        Source::File(_, p) => p.display().to_string(),
        Source::Stdin => "standard input".into(),
    }
}

/// Reads, hashes and encrypts on one thread; hashes and writes the spool on another.
async fn produce(
    source: Source,
    recipients: Vec<Recipient>,
    spool: File,
    progress: Arc<ProgressTx>,
    pb: Option<ProgressBar>,
) -> Result<(Digest, Digest)> {
    let what = source_name(&source);
    let encrypted = !recipients.is_empty();
    let (tx, rx) = sync_channel::<Vec<u8>>(BLOCKS_IN_FLIGHT);
    let reader = tokio::task::spawn_blocking(move || {
        read_and_encrypt(open_reader(source), &recipients, tx, pb)
    });
    let writer = tokio::task::spawn_blocking(move || write_spool(rx, spool, &progress, encrypted));
    let (r, w) = futures::join!(reader, writer);
    let r = r.context("the reading thread panicked")?;
    let w = w.context("the spool thread panicked")?;
    match (r, w) {
        (Ok(plain), Ok(stored)) => {
            let stored = if encrypted { stored } else { plain.clone() };
            Ok((plain, stored))
        }
        // The spool failing (disk full) closes the channel under the reader: report the cause.
        (_, Err(e)) => Err(anyhow::Error::new(e).context("cannot write the spool")),
        (Err(e), Ok(_)) => Err(anyhow::Error::new(e).context(format!("cannot read {what}"))),
    }
}

/// Sends blocks of [`BLOCK`] bytes to the spool thread.
struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        self.tx.send(block).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the spool writer stopped")
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn read_and_encrypt(
    mut source: Box<dyn Read + Send>,
    recipients: &[Recipient],
    tx: SyncSender<Vec<u8>>,
    pb: Option<ProgressBar>,
) -> std::io::Result<Digest> {
    let sink = ChannelWriter {
        tx,
        buf: Vec::with_capacity(BLOCK),
    };
    enum Out {
        Age(age::stream::StreamWriter<ChannelWriter>),
        Plain(ChannelWriter),
    }
    let mut out = if recipients.is_empty() {
        Out::Plain(sink)
    } else {
        let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_age())).map_err(
            |e| std::io::Error::other(format!("cannot encrypt to these recipients: {e}")),
        )?;
        Out::Age(enc.wrap_output(sink)?)
    };
    let mut h = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        size += n as u64;
        match &mut out {
            Out::Age(w) => w.write_all(&buf[..n])?,
            Out::Plain(w) => w.write_all(&buf[..n])?,
        }
        if let Some(pb) = &pb {
            pb.inc(n as u64);
        }
    }
    let mut sink = match out {
        Out::Age(w) => w.finish()?,
        Out::Plain(w) => w,
    };
    sink.send()?;
    Ok(Digest {
        size,
        sha256: hex::encode(h.finalize()),
    })
}

fn write_spool(
    rx: Receiver<Vec<u8>>,
    mut file: File,
    progress: &ProgressTx,
    hash: bool,
) -> std::io::Result<Digest> {
    // Write-back runs beside the writing: a helper thread flushes what is written so far every
    // SYNC_EVERY bytes, so that the final fsync has little left to wait for.
    const SYNC_EVERY: u64 = 64 << 20;
    let (sync_tx, sync_rx) = sync_channel::<()>(1);
    let syncer = {
        let f = file.try_clone()?;
        std::thread::spawn(move || {
            for () in sync_rx {
                let _ = f.sync_data();
            }
        })
    };
    let mut h = hash.then(Sha256::new);
    let mut size = 0u64;
    let mut since_sync = 0u64;
    for block in rx {
        if let Some(h) = &mut h {
            h.update(&block);
        }
        file.write_all(&block)?;
        size += block.len() as u64;
        since_sync += block.len() as u64;
        if since_sync >= SYNC_EVERY {
            // Never waits: a flush already queued covers this one too.
            let _ = sync_tx.try_send(());
            since_sync = 0;
        }
        progress.send_replace(Progress::Writing(size));
    }
    drop(sync_tx);
    let _ = syncer.join();
    file.sync_all()?;
    Ok(Digest {
        size,
        sha256: h.map(|h| hex::encode(h.finalize())).unwrap_or_default(),
    })
}
