//! One object from a source store to a destination store: server-side inside one provider
//! (S3 CopyObject/UploadPartCopy across regions, GCS rewrite, Azure Copy Blob within an
//! account), else streamed through this process by ranged reads into the resumable upload push
//! uses, so memory stays at the destination's parts in flight and a killed copy continues.
//!
//! Every streamed byte is hashed on its way (SHA-256 of the whole object), and the destination's
//! receipt is checked against what was sent; the caller compares the SHA-256 with the source's
//! before the copy counts.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use offsite_storage::{
    Checksum, Error, ErrorKind, Extent, InFlightBudget, ObjectSource, Operation, PutOptions,
    RangedSource, Receipt, Result, RetryPolicy, Upload, UploadRecord,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::engine::hashing::Hasher;

use crate::registry::Opened;

/// How a copy travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// Inside the provider: no byte passed through this process.
    ServerSide,
    /// Read from the source and written to the destination by this process.
    Streamed,
}

/// What one copy produced.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The destination's receipt.
    pub receipt: Receipt,
    /// Checksums computed here over the bytes sent, in the destination's forms.
    pub computed: Vec<Checksum>,
    /// The SHA-256 of the bytes read from the source (streamed copies).
    pub sha256: Option<String>,
    /// How it went.
    pub route: Route,
    /// A streamed copy continued from a killed run: parts found on the server, of how many.
    pub resumed: Option<(u32, u32)>,
}

/// What every copy of one run shares.
pub struct Shared {
    /// Bytes per second across all copies, when limited.
    pub bwlimit: Option<Arc<BwLimit>>,
    /// Bytes in memory across all streamed copies.
    pub budget: InFlightBudget,
    /// Where streamed copies keep their upload records.
    pub journal_dir: PathBuf,
}

/// A shared bandwidth limit: each byte waits for its slot at `rate` bytes per second.
#[derive(Debug)]
pub struct BwLimit {
    rate: f64,
    next: Mutex<Instant>,
}

impl BwLimit {
    /// A limit of `bytes_per_sec`.
    pub fn new(bytes_per_sec: u64) -> BwLimit {
        BwLimit {
            rate: bytes_per_sec.max(1) as f64,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits until `n` more bytes may go.
    pub async fn take(&self, n: usize) {
        let wait = {
            let mut next = self.next.lock().expect("bwlimit lock");
            let now = Instant::now();
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(n as f64 / self.rate);
            start.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Parses `--bwlimit`: bytes per second with an optional K, M or G (powers of 1024), as rclone.
pub fn parse_bwlimit(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('M') => (&t[..t.len() - 1], 1 << 20),
        Some('G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is no rate: write bytes per second, like 512K, 50M or 1G"))?;
    if n.is_nan() || n <= 0.0 {
        return Err(format!("{s:?}: the limit must be above zero"));
    }
    Ok((n * mult as f64) as u64)
}

/// Copies `key` (`size` bytes, as the source listed it) from `src` to `dst` under `options`.
/// `fingerprint` names the source object's version (ETag, version, modification time) so that
/// a resumed upload continues only from the same bytes.
pub async fn copy(
    src: &Opened,
    dst: &Opened,
    key: &str,
    size: u64,
    fingerprint: &str,
    options: PutOptions,
    shared: &Shared,
) -> Result<Copied> {
    if let Some(r) = server_side(src, dst, key, size, &options).await {
        return r.map(|receipt| Copied {
            receipt,
            computed: Vec::new(),
            sha256: None,
            route: Route::ServerSide,
            resumed: None,
        });
    }
    let mut options = options;
    options.size_hint = Some(size);
    if dst.store.multipart().is_some() || dst.store.sequential().is_some() {
        streamed_resumable(src, dst, key, size, fingerprint, options, shared).await
    } else {
        streamed_once(src, dst, key, size, options, shared).await
    }
}

/// Whether a copy from `src` to `dst` with `options` goes inside the provider (the store's
/// own answer, [`Storage::can_copy_from`]): what a dry run reports as server-side.
pub(super) fn goes_server_side(src: &Opened, dst: &Opened, options: &PutOptions) -> bool {
    dst.store.can_copy_from(&*src.store, options)
}

/// The provider's own copy, through the contract ([`Storage::copy_from_store`], which the
/// conformance suite covers), when both ends are one service's and the options allow it.
async fn server_side(
    src: &Opened,
    dst: &Opened,
    key: &str,
    size: u64,
    options: &PutOptions,
) -> Option<Result<Receipt>> {
    if !goes_server_side(src, dst, options) {
        return None;
    }
    Some(
        dst.store
            .copy_from_store(&*src.store, key, Some(size), key, options.clone())
            .await,
    )
}

/// What a streamed copy keeps between runs (`<cache>/replicate/<sha256>.json`, private).
#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    source: String,
    destination: String,
    key: String,
    size: u64,
    fingerprint: String,
    upload: UploadRecord,
}

fn journal_path(dir: &std::path::Path, dst: &Opened, key: &str) -> PathBuf {
    let id = hex::encode(Sha256::digest(format!("{}\n{key}", dst.url())));
    dir.join(format!("{}.json", &id[..32]))
}

async fn streamed_resumable(
    src: &Opened,
    dst: &Opened,
    key: &str,
    size: u64,
    fingerprint: &str,
    options: PutOptions,
    shared: &Shared,
) -> Result<Copied> {
    let path = journal_path(&shared.journal_dir, dst, key);
    let old: Option<Journal> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let prior = match old {
        Some(j) if j.source == src.url() && j.size == size && j.fingerprint == fingerprint => {
            tracing::info!(key, "continuing the streamed copy an earlier run started");
            Some(j.upload)
        }
        Some(j) => {
            // The source changed since: its parts hold other bytes.
            let _ = j.upload.abort(&*dst.store, key).await;
            let _ = std::fs::remove_file(&path);
            None
        }
        None => None,
    };
    let source = Hashing::new(
        ObjectSource::new(src.store.clone(), key, size),
        shared.bwlimit.clone(),
    );
    let record = |r: &UploadRecord| {
        let j = Journal {
            source: src.url().to_string(),
            destination: dst.url().to_string(),
            key: key.to_string(),
            size,
            fingerprint: fingerprint.to_string(),
            upload: r.clone(),
        };
        if let Err(e) = write_private(&path, &serde_json::to_vec(&j).expect("serializes")) {
            tracing::warn!(error = %e, "could not record the upload; a rerun starts this copy over");
        }
    };
    let up = Upload {
        store: &*dst.store,
        key,
        options: &options,
        prior,
        budget: Some(&shared.budget),
        retry: RetryPolicy::default().at(dst.store.url()),
    };
    let done = offsite_storage::upload(up, &source, &record).await?;
    let _ = std::fs::remove_file(&path);
    Ok(Copied {
        receipt: done.receipt,
        computed: done.computed,
        sha256: source.sha256(size),
        route: Route::Streamed,
        resumed: done.resumed,
    })
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new();
    f.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
    let mut f = f.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A destination that writes one stream (file://): read the source once, in order.
async fn streamed_once(
    src: &Opened,
    dst: &Opened,
    key: &str,
    size: u64,
    options: PutOptions,
    shared: &Shared,
) -> Result<Copied> {
    let got = src.store.get(key, None).await?;
    let mut w = dst.store.writer(key, options).await?;
    let mut hasher = Hasher::new();
    let mut stream = got.stream;
    while let Some(chunk) = stream.next().await {
        let res = match chunk {
            Ok(b) => {
                if let Some(bw) = &shared.bwlimit {
                    bw.take(b.len()).await;
                }
                hasher.update(&b);
                w.write(b).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            let _ = w.abort().await;
            return Err(e);
        }
    }
    let sent = hasher.size();
    if sent != size {
        let _ = w.abort().await;
        return Err(Error::new(
            ErrorKind::Transient,
            src.store.provider(),
            Operation::Get,
            format!("the source gave {sent} bytes, but listed {size}"),
        )
        .with_key(key)
        .retryable(true));
    }
    let receipt = w.finish().await?;
    Ok(Copied {
        receipt,
        computed: Vec::new(),
        sha256: Some(hasher.finish().sha256),
        route: Route::Streamed,
        resumed: None,
    })
}

/// A source that hashes what is read from it in order (the resumable upload reads parts in
/// order, each once, and on a resume reads every part to compare it), and waits on the
/// bandwidth limit.
struct Hashing<S> {
    inner: S,
    bwlimit: Option<Arc<BwLimit>>,
    /// The hash of the bytes read in order so far; `None` once a read skipped ahead.
    state: Mutex<Option<Hasher>>,
}

impl<S> Hashing<S> {
    fn new(inner: S, bwlimit: Option<Arc<BwLimit>>) -> Self {
        Hashing {
            inner,
            bwlimit,
            state: Mutex::new(Some(Hasher::new())),
        }
    }

    /// The SHA-256 of the whole object, when every byte of its `size` was read in order.
    fn sha256(&self, size: u64) -> Option<String> {
        let st = self.state.lock().expect("hash lock");
        let h = st.as_ref().filter(|h| h.size() == size)?;
        Some(h.clone().finish().sha256)
    }
}

#[async_trait]
impl<S: RangedSource> RangedSource for Hashing<S> {
    async fn extent(&self, want: u64) -> Result<Extent> {
        self.inner.extent(want).await
    }

    async fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let b = self.inner.read_at(offset, len).await?;
        if let Some(bw) = &self.bwlimit {
            bw.take(b.len()).await;
        }
        let mut st = self.state.lock().expect("hash lock");
        match st.as_mut().map(|h| h.size()) {
            Some(at) if offset == at => st.as_mut().expect("some").update(&b),
            // Out of order: the whole-object hash is not ours to give.
            Some(at) if offset > at => *st = None,
            _ => {}
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bwlimit_takes_rclone_suffixes() {
        assert_eq!(parse_bwlimit("512K"), Ok(512 << 10));
        assert_eq!(parse_bwlimit("1.5M"), Ok(3 << 19));
        assert_eq!(parse_bwlimit("2g"), Ok(2 << 30));
        assert_eq!(parse_bwlimit("100"), Ok(100));
        assert!(parse_bwlimit("fast").unwrap_err().contains("512K"));
        assert!(parse_bwlimit("0").is_err());
    }
}
