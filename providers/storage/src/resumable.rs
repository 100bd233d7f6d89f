//! Resumable uploads: one object sent to a multipart store (S3 parts, Azure blocks) or a
//! sequential session (GCS) from a [`RangedSource`], with the state a rerun needs recorded as an
//! [`UploadRecord`] before any byte is sent.
//!
//! This is the upload path for everything that must survive the process: push reads its parts
//! from a spool that is still being written; replication reads them from another store's
//! object ([`ObjectSource`]). A rerun given the record lists what the provider already holds,
//! checks each part against the source's bytes (SHA-256 per part; for a session, the persisted
//! offset, with the whole-object digests rebuilt from the source), and sends only the rest.
//!
//! The result carries the provider's receipt and the checksums computed here over the same
//! bytes and part boundaries, in the forms the provider may report, so the caller can compare
//! them before it counts the object as a copy.
//!
//! Memory: every part or chunk is read whole (S3 and Azure parts of the store's part size, GCS
//! chunks), and at most the store's `concurrency` are in flight. An [`InFlightBudget`] shared by
//! several uploads bounds their sum.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::multipart::{composite_sha256, part_size_for, Multipart, Part, PartReceipt};
use crate::retry::RetryPolicy;
use crate::sequential::{ObjectDigest, Sequential, SessionState};
use crate::storage::Storage;
use crate::types::{Checksum, GetRange, PutOptions, Receipt};

/// Parts in flight per upload when the store does not say.
pub const DEFAULT_CONCURRENCY: usize = 3;

/// How much of a source is there to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Bytes that can be read now, from offset 0.
    pub len: u64,
    /// Whether that is all there will ever be.
    pub complete: bool,
}

/// Bytes an upload reads by range: a file still being written, or a complete object.
///
/// Bytes once available never change: an upload may read a range twice (a part checked on
/// resume, a chunk sent again) and relies on getting the same bytes.
#[async_trait]
pub trait RangedSource: Send + Sync {
    /// Waits until at least `want` bytes are available or the source is complete, and says how
    /// much there is. An error means the source will never complete.
    async fn extent(&self, want: u64) -> Result<Extent>;
    /// Reads `len` bytes at `offset`, inside what [`RangedSource::extent`] has reported.
    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes>;
}

/// What a rerun needs to continue an upload, to be kept (in push's journal) from before the
/// first byte is sent until the object is committed.
///
/// The serialized form is `{"id": ..., "part-size": ...}` for a multipart upload and
/// `{"session": ...}` for a session. A GCS session URL authorizes uploads by itself: keep the
/// record in a file private to the user; its `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UploadRecord {
    /// A multipart upload (S3 upload id, Azure's uncommitted block list under the key).
    Parts {
        /// The provider's upload id.
        id: String,
        /// The part size chosen when it started; parts are cut at its multiples.
        #[serde(rename = "part-size")]
        part_size: u64,
    },
    /// A sequential session (GCS resumable upload URL).
    Session {
        /// The session id; for GCS a URL that is a credential in itself.
        session: String,
    },
}

impl std::fmt::Debug for UploadRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadRecord::Parts { id, part_size } => f
                .debug_struct("Parts")
                .field("id", id)
                .field("part_size", part_size)
                .finish(),
            UploadRecord::Session { .. } => f
                .debug_struct("Session")
                .field("session", &"<redacted>")
                .finish(),
        }
    }
}

impl UploadRecord {
    /// Discards the upload this record names (its parts hold bytes that will not be sent
    /// again, and providers bill for them). A record that does not fit the store is ignored.
    pub async fn abort(&self, store: &dyn Storage, key: &str) -> Result<()> {
        match self {
            UploadRecord::Parts { id, .. } => match store.multipart() {
                Some(mp) => mp.abort_upload(key, id).await,
                None => Ok(()),
            },
            UploadRecord::Session { session } => match store.sequential() {
                Some(seq) => seq.cancel_session(key, session).await,
                None => Ok(()),
            },
        }
    }
}

/// A budget of bytes in memory shared by several uploads (push to many destinations), so that
/// their parts in flight together stay under one bound whatever the fan-out.
#[derive(Debug, Clone)]
pub struct InFlightBudget {
    permits: Arc<Semaphore>,
    total_mib: u32,
}

impl InFlightBudget {
    /// A budget of `bytes` (rounded up to whole MiB, at least 1 MiB).
    pub fn new(bytes: u64) -> Self {
        let total_mib = bytes.div_ceil(MIB).clamp(1, u64::from(u32::MAX >> 4)) as u32;
        InFlightBudget {
            permits: Arc::new(Semaphore::new(total_mib as usize)),
            total_mib,
        }
    }

    /// Takes room for `len` bytes; a part larger than the whole budget takes all of it.
    async fn take(&self, len: usize) -> OwnedSemaphorePermit {
        let mib = (len as u64)
            .div_ceil(MIB)
            .clamp(1, u64::from(self.total_mib)) as u32;
        Arc::clone(&self.permits)
            .acquire_many_owned(mib)
            .await
            .expect("the budget's semaphore is never closed")
    }
}

const MIB: u64 = 1 << 20;

/// What [`upload`] produced.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// What the provider answered.
    pub receipt: Receipt,
    /// Checksums computed here over the same bytes and part boundaries, in the forms the
    /// provider may report (the S3 composite, GCS CRC32C and MD5, Azure's MD5 of a single
    /// request), for the caller to compare with the receipt.
    pub computed: Vec<Checksum>,
    /// For a resumed upload: the parts (or chunks) found on the server, and of how many.
    pub resumed: Option<(u32, u32)>,
}

/// One resumable upload: where to, what to continue, and the rules to send by.
pub struct Upload<'a> {
    /// The store; it must have [`Storage::multipart`] or [`Storage::sequential`].
    pub store: &'a dyn Storage,
    /// The object's key.
    pub key: &'a str,
    /// The placement options (and `size_hint`, which sets the part size).
    pub options: &'a PutOptions,
    /// What an earlier run recorded, to continue.
    pub prior: Option<UploadRecord>,
    /// Shared memory budget, if any.
    pub budget: Option<&'a InFlightBudget>,
    /// Retries of single requests.
    pub retry: RetryPolicy,
}

/// Sends `source` to the store, resuming `prior` when the provider still has it, calling
/// `record` with the state to keep before the first byte goes out. A single-request upload
/// (smaller than one part) records nothing.
///
/// On an error the upload is left on the provider for a rerun to continue; call
/// [`UploadRecord::abort`] when it never will be (the source changed or was lost).
pub async fn upload(
    up: Upload<'_>,
    source: &dyn RangedSource,
    record: &(dyn Fn(&UploadRecord) + Send + Sync),
) -> Result<Uploaded> {
    if let Some(mp) = up.store.multipart() {
        let resuming = up.prior.is_some();
        match upload_parts(&up, mp.clone(), source, record).await {
            // The recorded upload listed, then vanished under the parts or the completion:
            // the run that was killed had completed it (or a lifecycle rule aborted it) while
            // this one was starting. S3 answers NoSuchUpload; s3s-fs answers AccessDenied for
            // an upload id it no longer knows. Start over, once; a real permission problem
            // fails the fresh upload the same way and is reported then.
            Err(e)
                if resuming
                    && matches!(e.kind(), ErrorKind::NotFound | ErrorKind::PermissionDenied) =>
            {
                tracing::warn!(error = %e, "the earlier upload could not be continued; starting it over");
                let fresh = Upload { prior: None, ..up };
                upload_parts(&fresh, mp, source, record).await
            }
            other => other,
        }
    } else if let Some(seq) = up.store.sequential() {
        upload_session(&up, seq, source, record).await
    } else {
        Err(Error::new(
            ErrorKind::Unsupported,
            up.store.provider(),
            Operation::Put,
            "this store has no resumable uploads; write through Storage::writer",
        )
        .with_key(up.key))
    }
}

async fn upload_parts(
    up: &Upload<'_>,
    mp: Arc<dyn Multipart>,
    source: &dyn RangedSource,
    record: &(dyn Fn(&UploadRecord) + Send + Sync),
) -> Result<Uploaded> {
    let (key, options, retry) = (up.key, up.options, &up.retry);
    let limits = mp.limits();
    let caps = up.store.capabilities();
    let preferred = caps.part_size.unwrap_or(limits.min_part_size);
    let mut existing: HashMap<u32, PartReceipt> = HashMap::new();
    let mut resumable = None;
    if let Some(UploadRecord::Parts { id, part_size }) = &up.prior {
        match retry.run(|| mp.list_parts(key, id)).await {
            Ok(parts) => {
                existing = parts.into_iter().map(|x| (x.number, x)).collect();
                resumable = Some((id.clone(), *part_size));
            }
            // Gone (completed, aborted, expired): start over. Anything else stops here, so
            // that the recorded upload is neither orphaned nor duplicated.
            Err(e) if e.is_not_found() => {
                tracing::warn!(error = %e, "the earlier upload is gone; starting it over")
            }
            Err(e) => return Err(e),
        }
    }
    // A recorded upload whose parts are too small for the object (its size was unknown when it
    // started) would fail at the part limit again: start over with parts that fit.
    if let Some((id, part_size)) = &resumable {
        let now = source.extent(0).await?;
        if now.complete && now.len.div_ceil((*part_size).max(1)) > u64::from(limits.max_parts) {
            let _ = mp.abort_upload(key, id).await;
            resumable = None;
            existing.clear();
        }
    }
    let resuming = resumable.is_some();
    let (id, part_size) = match resumable {
        Some(r) => r,
        None => {
            let part_size = part_size_for(options.size_hint, preferred, limits);
            // An object that fits in one part goes in one request: no upload to track.
            let ext = source.extent(part_size + 1).await?;
            if ext.complete && ext.len <= part_size {
                let _room = match up.budget {
                    Some(b) => Some(b.take(ext.len as usize).await),
                    None => None,
                };
                let data = source.read_at(0, ext.len as usize).await?;
                let part = Part::new(1, data);
                let receipt = retry
                    .run(|| mp.put_whole(key, part.clone(), options))
                    .await?;
                // One request: the object's MD5 is computed here for stores that report one
                // (Azure); the SHA-256 is the caller's, over the same bytes.
                return Ok(Uploaded {
                    receipt,
                    computed: vec![md5_of(&part.data)],
                    resumed: None,
                });
            }
            let id = retry.run(|| mp.create_upload(key, options)).await?;
            record(&UploadRecord::Parts {
                id: id.clone(),
                part_size,
            });
            (id, part_size)
        }
    };
    let concurrency = caps.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1);
    let sent = send_parts(
        up,
        &mp,
        source,
        &id,
        part_size,
        &existing,
        limits.max_parts,
        concurrency,
    )
    .await?;
    let (parts, reused) = sent;
    let total = parts.len() as u32;
    // From the source's bytes (each part hashed as it was read; a reused part only when its
    // SHA-256 matched), so it is ours, not the server's.
    let composite = Checksum::Sha256Composite {
        hex: hex::encode(composite_sha256(&parts)),
        parts: total,
    };
    let receipt = mp.complete_upload(key, &id, parts, options).await?;
    Ok(Uploaded {
        receipt,
        computed: vec![composite],
        resumed: resuming.then_some((reused, total)),
    })
}

type PartFuture<'f> = futures::future::BoxFuture<'f, Result<PartReceipt>>;

#[allow(clippy::too_many_arguments)]
async fn send_parts(
    up: &Upload<'_>,
    mp: &Arc<dyn Multipart>,
    source: &dyn RangedSource,
    id: &str,
    part_size: u64,
    existing: &HashMap<u32, PartReceipt>,
    max_parts: u32,
    concurrency: usize,
) -> Result<(Vec<PartReceipt>, u32)> {
    let ps = part_size.max(1);
    let mut in_flight: FuturesUnordered<PartFuture<'_>> = FuturesUnordered::new();
    let mut done = Vec::new();
    let mut reused = 0u32;
    let mut number = 1u32;
    loop {
        let start = u64::from(number - 1) * ps;
        // Wait for the source while the parts in flight go on.
        let ext = {
            let wait = source.extent(start + ps);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    ext = &mut wait => break ext?,
                    Some(r) = in_flight.next(), if !in_flight.is_empty() => done.push(r?),
                }
            }
        };
        let end = if ext.complete {
            ext.len.min(start + ps)
        } else {
            start + ps
        };
        if end <= start && number > 1 {
            break;
        }
        if number > max_parts {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                up.store.provider(),
                Operation::Put,
                format!(
                    "the object needs more than {max_parts} parts of {ps} bytes (its size was not known when the upload started)"
                ),
            )
            .with_key(up.key)
            .with_hint("run it again: the next run picks parts that fit the size it then knows"));
        }
        let len = (end - start) as usize;
        while in_flight.len() >= concurrency {
            if let Some(r) = in_flight.next().await {
                done.push(r?);
            }
        }
        let room = match up.budget {
            Some(b) => {
                let take = b.take(len);
                tokio::pin!(take);
                loop {
                    tokio::select! {
                        room = &mut take => break Some(room),
                        Some(r) = in_flight.next(), if !in_flight.is_empty() => done.push(r?),
                    }
                }
            }
            None => None,
        };
        let data = source.read_at(start, len).await?;
        let part = Part::new(number, data);
        match existing.get(&number) {
            Some(x) if x.sha256 == part.sha256 && x.size == len as u64 => {
                done.push(x.clone());
                reused += 1;
            }
            _ => {
                let (mp, key, retry) = (Arc::clone(mp), up.key, up.retry.clone());
                in_flight.push(Box::pin(async move {
                    let _room = room;
                    retry.run(|| mp.upload_part(key, id, part.clone())).await
                }));
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

/// The base64 MD5 of one request's bytes, as Azure reports it for a single-shot blob.
fn md5_of(data: &[u8]) -> Checksum {
    use base64::Engine as _;
    use md5::Digest as _;
    Checksum::Md5(base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data)))
}

/// Hashes the source's first `len` bytes into a fresh digest (a resumed session's digest must
/// cover what the server already has).
async fn digest_prefix(
    seq: &Arc<dyn Sequential>,
    source: &dyn RangedSource,
    len: u64,
) -> Result<Box<dyn ObjectDigest>> {
    let mut d = seq.digest();
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(8 * MIB) as usize;
        let data = source.read_at(off, n).await?;
        d.update(&data);
        off += n as u64;
    }
    Ok(d)
}

async fn upload_session(
    up: &Upload<'_>,
    seq: Arc<dyn Sequential>,
    source: &dyn RangedSource,
    record: &(dyn Fn(&UploadRecord) + Send + Sync),
) -> Result<Uploaded> {
    let (key, retry) = (up.key, &up.retry);
    let chunk = seq.chunk_size().max(seq.granularity()).max(1);
    let mut resumed_from = None;
    let mut session = None;
    if let Some(UploadRecord::Session { session: s }) = &up.prior {
        match seq.session_state(key, s).await {
            Ok(SessionState::Complete(r)) => {
                // Finished before the kill: hash what it holds here, for the caller to compare.
                let computed = digest_prefix(&seq, source, r.size).await?.finish();
                return Ok(Uploaded {
                    receipt: r,
                    computed,
                    resumed: Some((1, 1)),
                });
            }
            Ok(SessionState::Persisted(n)) => {
                resumed_from = Some(n);
                session = Some(s.clone());
            }
            Err(e) => {
                tracing::warn!(error = %e, "the earlier upload session cannot be resumed; starting it over")
            }
        }
    }
    let session = match session {
        Some(s) => s,
        None => {
            let s = retry.run(|| seq.start_session(key, up.options)).await?;
            record(&UploadRecord::Session { session: s.clone() });
            s
        }
    };
    let (receipt, computed) =
        send_chunks(up, &seq, &session, source, chunk, resumed_from.unwrap_or(0)).await?;
    let total = receipt.size.div_ceil(chunk).max(1) as u32;
    Ok(Uploaded {
        receipt,
        computed,
        resumed: resumed_from.map(|n| ((n / chunk) as u32, total)),
    })
}

/// The chunk at `offset`: its bytes and whether it is the last one.
async fn read_chunk(
    source: &dyn RangedSource,
    offset: u64,
    chunk: u64,
) -> Result<(Bytes, Option<u64>)> {
    let ext = source.extent(offset + chunk + 1).await?;
    let is_last = ext.complete && ext.len - offset <= chunk;
    let end = if is_last { ext.len } else { offset + chunk };
    let data = source.read_at(offset, (end - offset) as usize).await?;
    Ok((data, is_last.then_some(ext.len)))
}

/// Sends chunks in order. The next chunk is read while the current one is on the wire, so the
/// disk (or the source store) and the network work at the same time.
async fn send_chunks(
    up: &Upload<'_>,
    seq: &Arc<dyn Sequential>,
    session: &str,
    source: &dyn RangedSource,
    chunk: u64,
    start: u64,
) -> Result<(Receipt, Vec<Checksum>)> {
    let (key, retry) = (up.key, &up.retry);
    let mut offset = start;
    let mut digest = digest_prefix(seq, source, offset).await?;
    let mut failures = 0u32;
    let mut ahead: Option<(u64, Bytes, Option<u64>)> = None;
    loop {
        let (data, total) = match ahead.take() {
            Some((at, data, total)) if at == offset => (data, total),
            _ => read_chunk(source, offset, chunk).await?,
        };
        let end = offset + data.len() as u64;
        let last = total.map(|t| {
            let mut d = digest.fork();
            d.update(&data);
            (t, d.finish())
        });
        let computed = last.as_ref().map(|(_, c)| c.clone());
        let _room = match up.budget {
            Some(b) => Some(b.take(data.len() * 2).await),
            None => None,
        };
        let send = seq.put_chunk(key, session, offset, data.clone(), last);
        let (sent, next) = if total.is_none() {
            let (sent, next) = tokio::join!(send, read_chunk(source, end, chunk));
            (sent, Some(next))
        } else {
            (send.await, None)
        };
        match sent {
            Ok(SessionState::Complete(r)) => {
                let computed = match computed {
                    Some(c) => c,
                    None => digest_prefix(seq, source, r.size).await?.finish(),
                };
                return Ok((r, computed));
            }
            Ok(SessionState::Persisted(n)) if n == end && total.is_none() => {
                digest.update(&data);
                offset = n;
                failures = 0;
                if let Some(next) = next {
                    let (d, t) = next?;
                    ahead = Some((end, d, t));
                }
            }
            Ok(SessionState::Persisted(n)) => {
                // The server kept less than was sent: continue from what it has, a bounded
                // number of times without progress.
                failures += 1;
                if failures >= retry.max_attempts {
                    return Err(Error::new(
                        ErrorKind::Transient,
                        up.store.provider(),
                        Operation::Put,
                        format!("the server keeps persisting less than was sent (at byte {n})"),
                    )
                    .with_key(key)
                    .with_hint("run it again: the session is kept and continues from there"));
                }
                offset = n;
                digest = digest_prefix(seq, source, offset).await?;
            }
            Err(e) if e.is_retryable() && failures + 1 < retry.max_attempts => {
                failures += 1;
                tokio::time::sleep(retry.delay(failures)).await;
                match retry.run(|| seq.session_state(key, session)).await? {
                    SessionState::Complete(r) => {
                        let computed = digest_prefix(seq, source, r.size).await?.finish();
                        return Ok((r, computed));
                    }
                    SessionState::Persisted(n) => {
                        offset = n;
                        digest = digest_prefix(seq, source, offset).await?;
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// A complete object in a store, read by range: the source of a streamed copy between stores
/// (replication), resumable like a push because the object's bytes do not change. Give the
/// size from a `head` and check the copy's checksum against the source's before counting it.
#[derive(Debug, Clone)]
pub struct ObjectSource {
    store: Arc<dyn Storage>,
    key: String,
    size: u64,
    retry: RetryPolicy,
}

impl ObjectSource {
    /// The object `key` of `size` bytes in `store`.
    pub fn new(store: Arc<dyn Storage>, key: impl Into<String>, size: u64) -> Self {
        ObjectSource {
            store,
            key: key.into(),
            size,
            retry: RetryPolicy::default(),
        }
    }
}

#[async_trait]
impl RangedSource for ObjectSource {
    async fn extent(&self, _want: u64) -> Result<Extent> {
        Ok(Extent {
            len: self.size,
            complete: true,
        })
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let range = GetRange::Bounded(offset..offset + len as u64);
        self.retry
            .run(|| async {
                let got = self.store.get(&self.key, Some(range.clone())).await?;
                let mut buf = bytes::BytesMut::with_capacity(len);
                let mut stream = got.stream;
                while let Some(chunk) = stream.next().await {
                    buf.extend_from_slice(&chunk?);
                }
                if buf.len() != len {
                    return Err(Error::new(
                        ErrorKind::Transient,
                        self.store.provider(),
                        Operation::Get,
                        format!(
                            "a ranged read at {offset} returned {} bytes, not {len}",
                            buf.len()
                        ),
                    )
                    .with_key(self.key.clone()));
                }
                Ok(buf.freeze())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemoryStore, StorageExt};
    use std::sync::Mutex;

    fn data(n: usize) -> Bytes {
        (0..n)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>()
            .into()
    }

    async fn source_with(bytes: Bytes) -> ObjectSource {
        let src: Arc<dyn Storage> = Arc::new(MemoryStore::new());
        src.put_bytes("a", bytes.clone(), PutOptions::default())
            .await
            .unwrap();
        ObjectSource::new(src, "a", bytes.len() as u64)
    }

    fn up<'a>(store: &'a dyn Storage, options: &'a PutOptions) -> Upload<'a> {
        Upload {
            store,
            key: "b",
            options,
            prior: None,
            budget: None,
            retry: RetryPolicy::none(),
        }
    }

    #[tokio::test]
    async fn copies_in_parts_and_computes_the_composite() {
        let bytes = data(10_000);
        let source = source_with(bytes.clone()).await;
        let dst = MemoryStore::new().with_part_size(4096);
        let options = PutOptions::default();
        let recorded = Mutex::new(Vec::new());
        let budget = InFlightBudget::new(1);
        let mut u = up(&dst, &options);
        u.budget = Some(&budget);
        let done = upload(u, &source, &|r| recorded.lock().unwrap().push(r.clone()))
            .await
            .unwrap();
        assert_eq!(dst.get_bytes("b").await.unwrap(), bytes);
        assert_eq!(done.receipt.size, 10_000);
        assert!(matches!(
            done.computed.as_slice(),
            [Checksum::Sha256Composite { parts: 3, .. }]
        ));
        assert!(matches!(
            recorded.lock().unwrap().as_slice(),
            [UploadRecord::Parts {
                part_size: 4096,
                ..
            }]
        ));
    }

    #[tokio::test]
    async fn a_rerun_sends_only_the_parts_the_store_lacks() {
        let bytes = data(12_288);
        let source = source_with(bytes.clone()).await;
        let dst = MemoryStore::new().with_part_size(4096);
        let options = PutOptions::default();
        // An earlier run: the upload started and part 1 arrived; part 2 arrived corrupted.
        let mp = dst.multipart().unwrap();
        let id = mp.create_upload("b", &options).await.unwrap();
        mp.upload_part("b", &id, Part::new(1, bytes.slice(0..4096)))
            .await
            .unwrap();
        mp.upload_part("b", &id, Part::new(2, data(4096)))
            .await
            .unwrap();
        let mut u = up(&dst, &options);
        u.prior = Some(UploadRecord::Parts {
            id,
            part_size: 4096,
        });
        let done = upload(u, &source, &|_| {
            panic!("a resumed upload records nothing new")
        })
        .await
        .unwrap();
        assert_eq!(done.resumed, Some((1, 3)));
        assert_eq!(dst.get_bytes("b").await.unwrap(), bytes);
    }

    #[tokio::test]
    async fn a_small_object_goes_in_one_request_with_its_md5() {
        let source = source_with(Bytes::from_static(b"hello")).await;
        let dst = MemoryStore::new();
        let options = PutOptions::default();
        let done = upload(up(&dst, &options), &source, &|_| {
            panic!("nothing to record for one request")
        })
        .await
        .unwrap();
        assert_eq!(
            done.computed,
            vec![Checksum::Md5("XUFAKrxLKna5cZ2REBfFkg==".into())]
        );
    }

    #[test]
    fn records_keep_their_journal_form_and_hide_sessions() {
        let parts: UploadRecord =
            serde_json::from_str(r#"{"id":"u1","part-size":8388608}"#).unwrap();
        assert_eq!(
            parts,
            UploadRecord::Parts {
                id: "u1".into(),
                part_size: 8 << 20
            }
        );
        let s = UploadRecord::Session {
            session: "https://x/upload?upload_id=SECRET".into(),
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"session":"https://x/upload?upload_id=SECRET"}"#
        );
        assert!(!format!("{s:?}").contains("SECRET"));
    }
}
