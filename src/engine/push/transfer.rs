//! The transfer stage: one call per destination, [`transfer`], which picks the route from the
//! store's capabilities: a hard link of the spool (the first local destination on its file
//! system), resumable multipart parts (S3, Azure blocks), a resumable session (GCS), or a plain
//! stream into the store's writer. Every route reads the spool while it grows and returns what
//! the provider answered together with the checksums offsite computed for the same bytes, for
//! the commit stage to compare.
//!
//! The resumable routes record their upload id or session in the journal before sending
//! anything, so that a push killed at any point after can resume.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use offsite_storage::{
    Checksum, Multipart, ObjectWriter, PutOptions, Receipt, Sequential, SessionState,
};
use serde::{Deserialize, Serialize};

use crate::archive::Digest;
use crate::engine::spool::{Journal, Progress, SpoolTail};
use crate::registry::Opened;

/// Bytes per read of the spool for a plain stream.
const BLOCK: usize = 1 << 20;
/// Parts in flight per multipart upload when the store does not say.
const DEFAULT_IN_FLIGHT: usize = 3;

/// How the bytes reach one destination.
pub(super) enum Route {
    /// Hard-link the complete spool into a local destination.
    Link,
    /// Parts read from the spool, resumable by upload id.
    Parts(Arc<dyn Multipart>),
    /// Chunks in order through a resumable session.
    Session(Arc<dyn Sequential>),
    /// The store's own writer, fed from the spool.
    Stream,
}

impl Route {
    /// The route for `dest`; `link` when it takes the spool by hard link.
    pub(super) fn for_destination(dest: &Opened, link: bool) -> Route {
        if link {
            Route::Link
        } else if let Some(mp) = dest.store.multipart() {
            Route::Parts(mp)
        } else if let Some(seq) = dest.store.sequential() {
            Route::Session(seq)
        } else {
            Route::Stream
        }
    }
}

/// What a transfer produced: the provider's receipt, and the checksums offsite computed from
/// the spool in the forms the provider may report (beside the whole-object SHA-256 of the
/// spool, which the commit stage has already).
pub(super) struct Transferred {
    /// What the provider answered.
    pub(super) receipt: Receipt,
    /// Checksums computed here over the same bytes and part boundaries.
    pub(super) computed: Vec<Checksum>,
    /// For a resumed upload: parts found already on the server, of all parts.
    pub(super) resumed_parts: Option<(u32, u32)>,
}

/// Where a transfer reads from and records its progress.
pub(super) struct SpoolSource {
    /// The spool file.
    pub(super) path: PathBuf,
    /// How far it is written.
    pub(super) progress: tokio::sync::watch::Receiver<Progress>,
    /// The journal the resumable routes record their ids in.
    pub(super) journal: JournalHandle,
    /// What an earlier run recorded for this destination.
    pub(super) prior: Option<serde_json::Value>,
}

/// Sends the spool to `dest` at `key` by `route`.
pub(super) async fn transfer(
    dest: &Opened,
    key: &str,
    route: Route,
    source: SpoolSource,
    options: PutOptions,
) -> Result<Transferred> {
    let SpoolSource {
        path,
        progress,
        journal,
        prior,
    } = source;
    match route {
        Route::Link => Ok(plain(link_spool(dest, key, &path, progress).await?)),
        Route::Stream => {
            let tail = SpoolTail::open(&path, progress, BLOCK)?;
            Ok(plain(stream(dest, key, tail, options).await?))
        }
        Route::Parts(mp) => {
            let prior = prior.and_then(|v| serde_json::from_value(v).ok());
            upload_parts(dest, key, mp, &path, progress, options, prior, &journal).await
        }
        Route::Session(seq) => {
            let prior = prior.and_then(|v| serde_json::from_value(v).ok());
            upload_session(dest, key, seq, &path, progress, options, prior, &journal).await
        }
    }
}

fn plain(receipt: Receipt) -> Transferred {
    Transferred {
        receipt,
        computed: Vec::new(),
        resumed_parts: None,
    }
}

/// Aborts an upload an earlier run recorded (its parts hold ciphertext that will never be sent
/// again, and the provider bills for them).
pub(super) async fn abort_recorded(dest: &Opened, key: &str, record: serde_json::Value) {
    let store = &dest.store;
    let res = if let (Some(mp), Ok(u)) = (
        store.multipart(),
        serde_json::from_value::<UploadState>(record.clone()),
    ) {
        mp.abort_upload(key, &u.id).await
    } else if let (Some(seq), Ok(s)) = (
        store.sequential(),
        serde_json::from_value::<SessionRecord>(record),
    ) {
        seq.cancel_session(key, &s.session).await
    } else {
        Ok(())
    };
    if let Err(e) = res {
        tracing::warn!(error = %e, url = %dest.url(), "could not abort the earlier run's upload");
    }
}

/// The directory a local destination writes `key` into, created now; `None` for remote stores.
pub(super) fn local_dir(dest: &Opened, key: &str) -> Result<Option<PathBuf>> {
    let Some(local) = &dest.local else {
        return Ok(None);
    };
    let path = local.path_for(key)?;
    let dir = path.parent().map(PathBuf::from).unwrap_or_default();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(Some(dir))
}

/// Whether two paths are on one file system (so that one can be hard-linked into the other).
pub(super) fn same_device(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev(),
        _ => false,
    }
}

/// Streams the spool into one destination's writer.
async fn stream(
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

/// What the journal keeps of one multipart upload, so that a rerun can resume it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct UploadState {
    pub(super) id: String,
    part_size: u64,
}

/// The journal, shared by the uploads that record their ids in it as they start.
#[derive(Clone)]
pub(super) struct JournalHandle {
    pub(super) journal: Arc<std::sync::Mutex<Journal>>,
    pub(super) work: PathBuf,
}

impl JournalHandle {
    pub(super) fn mark_complete(&self, plaintext: &Digest, stored: &Digest) {
        let mut j = self.journal.lock().expect("journal lock");
        j.complete = true;
        j.plaintext = Some(plaintext.clone());
        j.stored = Some(stored.clone());
        if let Err(e) = j.save(&self.work) {
            tracing::warn!(error = %e, "could not record the complete spool; a rerun will re-encrypt");
        }
    }

    fn record_upload(&self, url: &str, state: impl Serialize) {
        let mut j = self.journal.lock().expect("journal lock");
        let entry = j.destinations.entry(url.to_string()).or_default();
        entry.state = "uploading".into();
        entry.upload = serde_json::to_value(state).ok();
        if let Err(e) = j.save(&self.work) {
            tracing::warn!(error = %e, "could not record the upload id; a rerun will start this upload over");
        }
    }
}

/// Uploads the spool to a multipart store part by part, each part read from the spool once it
/// is written. The upload id goes into the journal first, so that a push killed at any point
/// after can resume: the rerun lists the parts the provider holds, checks each against the
/// spool's bytes, and sends only the missing or different ones.
#[allow(clippy::too_many_arguments)]
pub(super) async fn upload_parts(
    dest: &Opened,
    key: &str,
    mp: Arc<dyn offsite_storage::Multipart>,
    spool: &Path,
    mut rx: tokio::sync::watch::Receiver<Progress>,
    options: PutOptions,
    prior: Option<UploadState>,
    journal: &JournalHandle,
) -> Result<Transferred> {
    use std::collections::HashMap;

    let limits = mp.limits();
    let preferred = dest
        .store
        .capabilities()
        .part_size
        .unwrap_or(limits.min_part_size);
    let mut existing: HashMap<u32, offsite_storage::PartReceipt> = HashMap::new();
    let mut resumable = None;
    if let Some(p) = prior {
        let retry = offsite_storage::RetryPolicy::default();
        match retry.run(|| mp.list_parts(key, &p.id)).await {
            Ok(parts) => {
                existing = parts.into_iter().map(|x| (x.number, x)).collect();
                resumable = Some(p);
            }
            // Gone (completed, aborted, expired): start over. Anything else stops here, so
            // that the recorded upload is neither orphaned nor duplicated.
            Err(e) if e.is_not_found() => {
                tracing::warn!(error = %e, "the earlier upload is gone; starting it over")
            }
            Err(e) => return Err(e.into()),
        }
    }
    // A recorded upload whose parts are too small for the archive (a stdin push, whose size
    // was unknown) would fail at the part limit again: start it over with parts that fit.
    if let (Some(p), Progress::Done(total)) = (&resumable, rx.borrow().clone()) {
        if total.div_ceil(p.part_size.max(1)) > u64::from(limits.max_parts) {
            let _ = mp.abort_upload(key, &p.id).await;
            resumable = None;
            existing.clear();
        }
    }
    let resuming = resumable.is_some();
    let retry = offsite_storage::RetryPolicy::default();
    let state = match resumable {
        Some(p) => p,
        None => {
            let part_size = offsite_storage::part_size_for(options.size_hint, preferred, limits);
            // An archive that fits in one part goes in one request: no upload to track.
            let (available, done) = wait_for(&mut rx, part_size + 1).await?;
            if done && available <= part_size {
                let data = read_spool(spool, 0, available as usize).await?;
                let part = offsite_storage::Part::new(1, data.into());
                let receipt = retry
                    .run(|| mp.put_whole(key, part.clone(), &options))
                    .await?;
                // One request: the object's SHA-256 is the spool's; its MD5 is computed here for
                // stores that report one (Azure).
                let md5 = {
                    use base64::Engine as _;
                    use md5::Digest as _;
                    Checksum::Md5(
                        base64::engine::general_purpose::STANDARD
                            .encode(md5::Md5::digest(&part.data)),
                    )
                };
                return Ok(Transferred {
                    receipt,
                    computed: vec![md5],
                    resumed_parts: None,
                });
            }
            let id = retry.run(|| mp.create_upload(key, &options)).await?;
            let s = UploadState { id, part_size };
            journal.record_upload(dest.url(), &s);
            s
        }
    };
    let result = send_parts(
        &mp,
        key,
        spool,
        &mut rx,
        &state,
        &existing,
        limits.max_parts,
        dest.store
            .capabilities()
            .concurrency
            .unwrap_or(DEFAULT_IN_FLIGHT),
    )
    .await;
    match result {
        Ok((parts, reused)) => {
            let total = parts.len() as u32;
            // Computed from the spool's bytes (each part hashed as it was read, a reused part
            // only when its SHA-256 matched), so it is ours, not the server's.
            let composite = Checksum::Sha256Composite {
                hex: hex::encode(offsite_storage::composite_sha256(&parts)),
                parts: total,
            };
            let receipt = mp.complete_upload(key, &state.id, parts, &options).await?;
            Ok(Transferred {
                receipt,
                computed: vec![composite],
                resumed_parts: resuming.then_some((reused, total)),
            })
        }
        Err(e) => {
            // Keep the upload for a rerun when the spool is complete (the journal has its id);
            // an incomplete spool can never be continued, so its upload is aborted.
            if matches!(*rx.borrow(), Progress::Failed(_)) {
                let _ = mp.abort_upload(key, &state.id).await;
            }
            Err(e)
        }
    }
}

/// Waits until the spool holds at least `want` bytes or is complete; returns the bytes
/// available and whether the spool is complete.
async fn wait_for(
    rx: &mut tokio::sync::watch::Receiver<Progress>,
    want: u64,
) -> Result<(u64, bool)> {
    loop {
        let p = rx.borrow_and_update().clone();
        match p {
            Progress::Writing(n) if n >= want => return Ok((n, false)),
            Progress::Done(n) => return Ok((n, true)),
            Progress::Failed(why) => anyhow::bail!("the spool was not completed: {why}"),
            Progress::Writing(_) => {
                if rx.changed().await.is_err() {
                    anyhow::bail!("the spool producer stopped without finishing");
                }
            }
        }
    }
}

async fn read_spool(spool: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let path = spool.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let f = File::open(&path)?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    })
    .await?
    .with_context(|| format!("cannot read the spool {}", spool.display()))
}

#[allow(clippy::too_many_arguments)]
async fn send_parts(
    mp: &Arc<dyn offsite_storage::Multipart>,
    key: &str,
    spool: &Path,
    rx: &mut tokio::sync::watch::Receiver<Progress>,
    state: &UploadState,
    existing: &std::collections::HashMap<u32, offsite_storage::PartReceipt>,
    max_parts: u32,
    in_flight_max: usize,
) -> Result<(Vec<offsite_storage::PartReceipt>, u32)> {
    use futures::StreamExt;
    use std::os::unix::fs::FileExt;

    // Parts held in memory: `in_flight_max` in flight plus the one being read (the store's
    // `concurrency=`). With 6 MiB parts and 3 in flight that is about 24 MiB per destination,
    // whatever the archive size.
    let file = Arc::new(
        File::open(spool).with_context(|| format!("cannot open the spool {}", spool.display()))?,
    );
    let ps = state.part_size.max(1);
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut done = Vec::new();
    let mut reused = 0u32;
    let mut number = 1u32;
    loop {
        let start = u64::from(number - 1) * ps;
        let end = loop {
            let p = rx.borrow_and_update().clone();
            match p {
                Progress::Writing(n) if n >= start + ps => break start + ps,
                Progress::Done(total) => break total.min(start + ps),
                Progress::Failed(why) => anyhow::bail!("the spool was not completed: {why}"),
                Progress::Writing(_) => {
                    // Let the parts in flight finish while waiting for the spool.
                    tokio::select! {
                        changed = rx.changed() => {
                            if changed.is_err() {
                                anyhow::bail!("the spool producer stopped without finishing");
                            }
                        }
                        Some(r) = in_flight.next(), if !in_flight.is_empty() => {
                            let r: Result<offsite_storage::PartReceipt> = r;
                            done.push(r?);
                        }
                    }
                }
            }
        };
        if end <= start && number > 1 {
            break;
        }
        if number > max_parts {
            anyhow::bail!(
                "the archive needs more than {max_parts} parts of {} bytes (its size was not known when the upload started); run the push again: the spool is kept and the next run picks parts that fit",
                ps
            );
        }
        let len = (end - start) as usize;
        let f = Arc::clone(&file);
        let data = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut buf = vec![0u8; len];
            f.read_exact_at(&mut buf, start)?;
            Ok(buf)
        })
        .await?
        .context("cannot read the spool")?;
        let part = offsite_storage::Part::new(number, data.into());
        match existing.get(&number) {
            Some(x) if x.sha256 == part.sha256 && x.size == len as u64 => {
                done.push(x.clone());
                reused += 1;
            }
            _ => {
                while in_flight.len() >= in_flight_max.max(1) {
                    if let Some(r) = in_flight.next().await {
                        done.push(r?);
                    }
                }
                let (mp, key, id) = (Arc::clone(mp), key.to_string(), state.id.clone());
                in_flight.push(async move {
                    let retry = offsite_storage::RetryPolicy::default();
                    Ok(retry
                        .run(|| mp.upload_part(&key, &id, part.clone()))
                        .await?)
                });
            }
        }
        if end < start + ps {
            break;
        }
        number += 1;
    }
    while let Some(r) = in_flight.next().await {
        done.push(r?);
    }
    done.sort_by_key(|p| p.number);
    Ok((done, reused))
}

/// What the journal keeps of one sequential session (its URL authenticates uploads to it, so
/// the journal file is private to the user).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) struct SessionRecord {
    session: String,
}

/// Hashes the spool's first `len` bytes into a fresh digest (when resuming a session, the
/// digest must cover what the server already has).
async fn digest_prefix(
    seq: &Arc<dyn Sequential>,
    spool: &Path,
    len: u64,
) -> Result<Box<dyn offsite_storage::ObjectDigest>> {
    let mut d = seq.digest();
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(8 << 20) as usize;
        let data = read_spool(spool, off, n).await?;
        d.update(&data);
        off += n as u64;
    }
    Ok(d)
}

/// Uploads the spool to a sequential session in chunks, each read from the spool once it is
/// written; the final chunk carries the total size and the whole-object digests, which the
/// provider checks before publishing the object.
#[allow(clippy::too_many_arguments)]
pub(super) async fn upload_session(
    dest: &Opened,
    key: &str,
    seq: Arc<dyn Sequential>,
    spool: &Path,
    mut rx: tokio::sync::watch::Receiver<Progress>,
    options: PutOptions,
    prior: Option<SessionRecord>,
    journal: &JournalHandle,
) -> Result<Transferred> {
    let chunk = seq.chunk_size().max(seq.granularity());
    let retry = offsite_storage::RetryPolicy::default();
    let mut resumed_from = None;
    let mut record = None;
    if let Some(p) = prior {
        match seq.session_state(key, &p.session).await {
            Ok(SessionState::Complete(r)) => {
                // Finished before the kill: hash what it holds here, for the commit to compare.
                let computed = digest_prefix(&seq, spool, r.size).await?.finish();
                return Ok(Transferred {
                    receipt: r,
                    computed,
                    resumed_parts: Some((1, 1)),
                });
            }
            Ok(SessionState::Persisted(n)) => {
                resumed_from = Some(n);
                record = Some(p);
            }
            Err(e) => {
                tracing::warn!(error = %e, "the earlier upload session cannot be resumed; starting it over")
            }
        }
    }
    let session = match record {
        Some(r) => r.session,
        None => {
            let s = retry.run(|| seq.start_session(key, &options)).await?;
            journal.record_upload(dest.url(), SessionRecord { session: s.clone() });
            s
        }
    };
    let result = send_chunks(
        &seq,
        key,
        &session,
        spool,
        &mut rx,
        chunk,
        resumed_from.unwrap_or(0),
    )
    .await;
    match result {
        Ok((receipt, computed)) => {
            let total = (receipt.size.div_ceil(chunk)).max(1) as u32;
            let reused = resumed_from.map(|n| (n / chunk) as u32);
            Ok(Transferred {
                receipt,
                computed,
                resumed_parts: reused.map(|r| (r, total)),
            })
        }
        Err(e) => {
            if matches!(*rx.borrow(), Progress::Failed(_)) {
                let _ = seq.cancel_session(key, &session).await;
            }
            Err(e)
        }
    }
}

async fn send_chunks(
    seq: &Arc<dyn Sequential>,
    key: &str,
    session: &str,
    spool: &Path,
    rx: &mut tokio::sync::watch::Receiver<Progress>,
    chunk: u64,
    start: u64,
) -> Result<(Receipt, Vec<Checksum>)> {
    let mut offset = start;
    let mut digest = digest_prefix(seq, spool, offset).await?;
    let mut failures = 0u32;
    let retry = offsite_storage::RetryPolicy::default();
    loop {
        let (available, done) = wait_for(rx, offset + chunk + 1).await?;
        let is_last = done && available - offset <= chunk;
        let end = if is_last { available } else { offset + chunk };
        let data = read_spool(spool, offset, (end - offset) as usize).await?;
        let last = is_last.then(|| {
            let mut d = digest.fork();
            d.update(&data);
            (available, d.finish())
        });
        let computed = last.as_ref().map(|(_, c)| c.clone());
        match seq
            .put_chunk(key, session, offset, data.clone().into(), last)
            .await
        {
            Ok(SessionState::Complete(r)) => {
                let computed = match computed {
                    Some(c) => c,
                    None => digest_prefix(seq, spool, r.size).await?.finish(),
                };
                return Ok((r, computed));
            }
            Ok(SessionState::Persisted(n)) if n == end && !is_last => {
                digest.update(&data);
                offset = n;
                failures = 0;
            }
            Ok(SessionState::Persisted(n)) => {
                // The server kept less than was sent: continue from what it has, a bounded
                // number of times without progress.
                failures += 1;
                if failures >= retry.max_attempts {
                    anyhow::bail!("the server keeps persisting less than was sent (at byte {n}); giving up, run the push again");
                }
                offset = n;
                digest = digest_prefix(seq, spool, offset).await?;
            }
            Err(e) if e.is_retryable() && failures + 1 < retry.max_attempts => {
                failures += 1;
                tokio::time::sleep(retry.delay(failures)).await;
                match retry.run(|| seq.session_state(key, session)).await? {
                    SessionState::Complete(r) => {
                        let computed = digest_prefix(seq, spool, r.size).await?.finish();
                        return Ok((r, computed));
                    }
                    SessionState::Persisted(n) => {
                        offset = n;
                        digest = digest_prefix(seq, spool, offset).await?;
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}
