//! The transfer stage: one call per destination, [`transfer`], which picks the route from the
//! store's capabilities: a hard link of the spool (the first local destination on its file
//! system), the contract crate's resumable [`upload`](offsite_storage::upload) (S3 parts, Azure
//! blocks, a GCS session), or a plain stream into the store's writer. Every route reads the
//! spool while it grows and returns what the provider answered together with the checksums
//! offsite computed for the same bytes, for the commit stage to compare.
//!
//! The resumable route records its upload id or session in the journal before sending
//! anything, so that a push killed at any point after can resume.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use offsite_storage::{
    Checksum, Error, ErrorKind, Extent, InFlightBudget, ObjectWriter, Operation, PutOptions,
    RangedSource, Receipt, RetryPolicy, Upload, UploadRecord,
};

use super::journal::JournalHandle;
use crate::engine::spool::{Progress, SpoolTail};
use crate::registry::Opened;

/// Bytes per read of the spool for a plain stream.
const BLOCK: usize = 1 << 20;

/// How the bytes reach one destination.
pub(super) enum Route {
    /// Hard-link the complete spool into a local destination.
    Link,
    /// The contract's resumable upload: multipart parts or a sequential session.
    Resumable,
    /// The store's own writer, fed from the spool.
    Stream,
}

impl Route {
    /// The route for `dest`; `link` when it takes the spool by hard link.
    pub(super) fn for_destination(dest: &Opened, link: bool) -> Route {
        if link {
            Route::Link
        } else if dest.store.multipart().is_some() || dest.store.sequential().is_some() {
            Route::Resumable
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
    /// The journal the resumable route records its upload in.
    pub(super) journal: JournalHandle,
    /// What an earlier run recorded for this destination.
    pub(super) prior: Option<UploadRecord>,
    /// The memory budget every destination's parts in flight share.
    pub(super) budget: InFlightBudget,
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
        budget,
    } = source;
    match route {
        Route::Link => Ok(plain(
            link_spool(dest, key, &path, progress, options.if_not_exists).await?,
        )),
        Route::Stream => {
            let tail = SpoolTail::open(&path, progress, BLOCK)?;
            Ok(plain(stream(dest, key, tail, options).await?))
        }
        Route::Resumable => {
            let spool = GrowingSpool::open(&path, progress)?;
            let started = std::sync::Mutex::new(prior.clone());
            let up = Upload {
                store: dest.store.as_ref(),
                key,
                options: &options,
                prior,
                budget: Some(&budget),
                retry: RetryPolicy::default().at(dest.store.url()),
            };
            let res = offsite_storage::upload(up, &spool, &|record| {
                *started.lock().expect("record lock") = Some(record.clone());
                journal.record_upload(dest.url(), record);
            })
            .await;
            match res {
                Ok(done) => Ok(Transferred {
                    receipt: done.receipt,
                    computed: done.computed,
                    resumed_parts: done.resumed,
                }),
                Err(e) => {
                    // Keep the upload for a rerun when the spool is complete (the journal has
                    // its id); an incomplete spool can never be continued, so its upload goes.
                    let failed = matches!(*spool.progress.borrow(), Progress::Failed(_));
                    let record = started.lock().expect("record lock").take();
                    if let (true, Some(r)) = (failed, record) {
                        let _ = r.abort(dest.store.as_ref(), key).await;
                    }
                    Err(e.into())
                }
            }
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

/// The spool as the resumable upload reads it: by range, waiting for the producer while the
/// range is not yet written. Part buffers are reused once a request has let go of them, so
/// memory is not zeroed and faulted in again for every part.
struct GrowingSpool {
    file: Arc<File>,
    path: PathBuf,
    progress: tokio::sync::watch::Receiver<Progress>,
    pool: Arc<BufferPool>,
}

/// Buffers handed back by finished requests, for the next parts.
#[derive(Default)]
struct BufferPool {
    free: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    /// Buffers kept for reuse at most (each a part: the in-flight budget bounds how many are
    /// out at once anyway).
    const KEEP: usize = 6;
    /// Larger buffers are not kept: a huge part size should not pin its memory.
    const KEEP_BYTES: usize = 16 << 20;

    fn take(&self, len: usize) -> Vec<u8> {
        let mut free = self.free.lock().expect("pool lock");
        let mut buf = match free.iter().position(|b| b.capacity() >= len) {
            Some(i) => free.swap_remove(i),
            None => Vec::new(),
        };
        drop(free);
        // A reused buffer of the same size is not written at all; a new one once.
        buf.resize(len, 0);
        buf
    }

    fn give(&self, buf: Vec<u8>) {
        if buf.capacity() > Self::KEEP_BYTES {
            return;
        }
        let mut free = self.free.lock().expect("pool lock");
        if free.len() < Self::KEEP {
            free.push(buf);
        }
    }
}

/// A part's bytes that go back to the pool when the last `Bytes` over them is dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

impl GrowingSpool {
    fn open(path: &Path, progress: tokio::sync::watch::Receiver<Progress>) -> Result<Self> {
        let file = File::open(path)
            .with_context(|| format!("cannot open the spool {}", path.display()))?;
        Ok(GrowingSpool {
            file: Arc::new(file),
            path: path.to_path_buf(),
            progress,
            pool: Arc::default(),
        })
    }

    fn error(&self, message: String) -> Error {
        Error::new(ErrorKind::Other, "spool", Operation::Get, message)
            .with_key(self.path.display().to_string())
    }
}

#[async_trait]
impl RangedSource for GrowingSpool {
    async fn extent(&self, want: u64) -> offsite_storage::Result<Extent> {
        let mut rx = self.progress.clone();
        loop {
            let p = rx.borrow_and_update().clone();
            match p {
                Progress::Writing(n) if n >= want => {
                    return Ok(Extent {
                        len: n,
                        complete: false,
                    })
                }
                Progress::Done(n) => {
                    return Ok(Extent {
                        len: n,
                        complete: true,
                    })
                }
                Progress::Failed(why) => {
                    return Err(self.error(format!("the spool was not completed: {why}")))
                }
                Progress::Writing(_) => {
                    if rx.changed().await.is_err() {
                        return Err(
                            self.error("the spool producer stopped without finishing".into())
                        );
                    }
                }
            }
        }
    }

    async fn read_at(&self, offset: u64, len: usize) -> offsite_storage::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let file = Arc::clone(&self.file);
        let pool = Arc::clone(&self.pool);
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Pooled> {
            let mut buf = pool.take(len);
            let read = file.read_exact_at(&mut buf, offset);
            let part = Pooled { buf, pool };
            read.map(|()| part)
        })
        .await
        .map_err(|e| self.error(format!("the spool reader task failed: {e}")))?;
        read.map(Bytes::from_owner)
            .map_err(|e| Error::from_io(e, "spool", Operation::Get, self.path.display()))
    }
}

/// Aborts an upload an earlier run recorded (its parts hold ciphertext that will never be sent
/// again, and the provider bills for them).
pub(super) async fn abort_recorded(dest: &Opened, key: &str, record: UploadRecord) {
    if let Err(e) = record.abort(dest.store.as_ref(), key).await {
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
    if_not_exists: bool,
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
    Ok(local.link_from(spool, key, if_not_exists).await?)
}
