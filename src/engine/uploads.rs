//! Resumable uploads from the spool: multipart (S3: parts in parallel, resumed by listing the
//! parts the provider holds) and sequential sessions (GCS: chunks in order, resumed from the
//! offset the provider has persisted). Each records its upload id or session in the journal
//! before sending anything, so that a push killed at any point after can resume.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use offsite_storage::{PutOptions, Receipt, Sequential, SessionState};
use serde::{Deserialize, Serialize};

use super::spool::{Journal, Progress};
use crate::archive::Digest;
use crate::registry::Opened;

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
) -> Result<(Receipt, Option<(u32, u32)>)> {
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
                return Ok((receipt, None));
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
    )
    .await;
    match result {
        Ok((parts, reused)) => {
            let total = parts.len() as u32;
            let receipt = mp.complete_upload(key, &state.id, parts, &options).await?;
            Ok((receipt, resuming.then_some((reused, total))))
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

async fn send_parts(
    mp: &Arc<dyn offsite_storage::Multipart>,
    key: &str,
    spool: &Path,
    rx: &mut tokio::sync::watch::Receiver<Progress>,
    state: &UploadState,
    existing: &std::collections::HashMap<u32, offsite_storage::PartReceipt>,
    max_parts: u32,
) -> Result<(Vec<offsite_storage::PartReceipt>, u32)> {
    use futures::StreamExt;
    use std::os::unix::fs::FileExt;

    // Parts held in memory: this many in flight plus the one being read. With 6 MiB parts
    // that is about 24 MiB per destination, whatever the archive size.
    const IN_FLIGHT: usize = 3;
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
                while in_flight.len() >= IN_FLIGHT {
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

impl SessionRecord {
    pub(super) fn url(&self) -> &str {
        &self.session
    }
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
) -> Result<(Receipt, Option<(u32, u32)>)> {
    let chunk = seq.chunk_size().max(seq.granularity());
    let retry = offsite_storage::RetryPolicy::default();
    let mut resumed_from = None;
    let mut record = None;
    if let Some(p) = prior {
        match seq.session_state(key, &p.session).await {
            Ok(SessionState::Complete(r)) => return Ok((r, Some((1, 1)))),
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
        Ok(receipt) => {
            let total = (receipt.size.div_ceil(chunk)).max(1) as u32;
            let reused = resumed_from.map(|n| (n / chunk) as u32);
            Ok((receipt, reused.map(|r| (r, total))))
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
) -> Result<Receipt> {
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
        match seq
            .put_chunk(key, session, offset, data.clone().into(), last)
            .await
        {
            Ok(SessionState::Complete(r)) => return Ok(r),
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
                    SessionState::Complete(r) => return Ok(r),
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
