//! The shared multipart writer: adapters implement the three primitives of
//! [`MultipartUpload`]; [`MultipartWriter`] does the buffering, the concurrency, the retries of
//! single parts and the clean-up.
//!
//! Peak memory is `part_size * (concurrency + 1)`: one part filling, at most `concurrency` in
//! flight. `write` waits for a slot when all are busy, which is the back-pressure the pipeline
//! relies on.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::retry::RetryPolicy;
use crate::storage::ObjectWriter;
use crate::types::Receipt;

/// One part handed to [`MultipartUpload::put_part`].
#[derive(Clone)]
pub struct Part {
    /// 1-based part number, in object order.
    pub number: u32,
    /// The part's bytes (cheap to clone for a retry).
    pub data: Bytes,
    /// SHA-256 of `data`, for providers that take per-part checksums.
    pub sha256: [u8; 32],
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("number", &self.number)
            .field("len", &self.data.len())
            .finish()
    }
}

/// What the provider answered for one stored part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartReceipt {
    /// The part number.
    pub number: u32,
    /// Its size.
    pub size: u64,
    /// The part's SHA-256 as uploaded.
    pub sha256: [u8; 32],
    /// The provider's token for the part (S3 ETag, Azure block id), needed to complete.
    pub token: Option<String>,
}

/// The primitives of one in-progress multipart upload. Implementations must make `put_part`
/// idempotent per part number (a retry replaces the part), since the writer retries it.
#[async_trait]
pub trait MultipartUpload: Send + Sync {
    /// Uploads one part.
    async fn put_part(&self, part: Part) -> Result<PartReceipt>;
    /// Publishes the object from the parts, given in part-number order.
    async fn complete(&self, parts: Vec<PartReceipt>) -> Result<Receipt>;
    /// Discards the upload and every part.
    async fn abort(&self) -> Result<()>;
}

/// Provider part-count and part-size limits, for [`part_size_for`].
#[derive(Debug, Clone, Copy)]
pub struct PartLimits {
    /// Smallest part the provider accepts (except the last).
    pub min_part_size: u64,
    /// Largest part the provider accepts.
    pub max_part_size: u64,
    /// Most parts one object may have.
    pub max_parts: u32,
}

/// The part size to use for an object of about `size_hint` bytes: `preferred` unless that would
/// need more than `max_parts` parts, then the smallest whole number of MiB that fits.
pub fn part_size_for(size_hint: Option<u64>, preferred: u64, limits: PartLimits) -> u64 {
    let mut size = preferred.max(limits.min_part_size);
    if let Some(hint) = size_hint {
        let needed = hint.div_ceil(u64::from(limits.max_parts.max(1)));
        if needed > size {
            const MIB: u64 = 1 << 20;
            size = needed.div_ceil(MIB) * MIB;
        }
    }
    size.min(limits.max_part_size)
}

/// An [`ObjectWriter`] over any [`MultipartUpload`].
pub struct MultipartWriter {
    provider: &'static str,
    key: String,
    upload: Arc<dyn MultipartUpload>,
    part_size: usize,
    concurrency: usize,
    retry: RetryPolicy,
    buffer: BytesMut,
    next_part: u32,
    in_flight: FuturesUnordered<BoxFuture<'static, Result<PartReceipt>>>,
    done: Vec<PartReceipt>,
    closed: bool,
}

impl std::fmt::Debug for MultipartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultipartWriter")
            .field("provider", &self.provider)
            .field("key", &self.key)
            .field("part_size", &self.part_size)
            .field("next_part", &self.next_part)
            .finish_non_exhaustive()
    }
}

impl MultipartWriter {
    /// A writer that sends parts of `part_size` bytes, at most `concurrency` at once.
    pub fn new(
        provider: &'static str,
        key: impl Into<String>,
        upload: Arc<dyn MultipartUpload>,
        part_size: u64,
        concurrency: usize,
        retry: RetryPolicy,
    ) -> Self {
        let part_size = usize::try_from(part_size.max(1)).unwrap_or(usize::MAX);
        MultipartWriter {
            provider,
            key: key.into(),
            upload,
            part_size,
            concurrency: concurrency.max(1),
            retry,
            buffer: BytesMut::new(),
            next_part: 1,
            in_flight: FuturesUnordered::new(),
            done: Vec::new(),
            closed: false,
        }
    }

    async fn submit(&mut self, data: Bytes) -> Result<()> {
        while self.in_flight.len() >= self.concurrency {
            self.reap_one().await?;
        }
        let number = self.next_part;
        self.next_part = self.next_part.checked_add(1).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidConfig,
                self.provider,
                Operation::Put,
                "too many parts",
            )
            .with_key(self.key.clone())
        })?;
        let sha256: [u8; 32] = Sha256::digest(&data).into();
        let part = Part {
            number,
            data,
            sha256,
        };
        let upload = Arc::clone(&self.upload);
        let retry = self.retry;
        self.in_flight.push(Box::pin(async move {
            retry.run(|| upload.put_part(part.clone())).await
        }));
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<()> {
        if let Some(res) = self.in_flight.next().await {
            self.done.push(res?);
        }
        Ok(())
    }

    async fn fail(&mut self, err: Error) -> Error {
        self.closed = true;
        self.in_flight = FuturesUnordered::new();
        if let Err(abort_err) = self.upload.abort().await {
            tracing::warn!(error = %abort_err, key = %self.key, "abort after a failed upload also failed");
        }
        err
    }
}

#[async_trait]
impl ObjectWriter for MultipartWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        if self.closed {
            return Err(Error::new(
                ErrorKind::Other,
                self.provider,
                Operation::Put,
                "write after the writer failed or finished",
            )
            .with_key(self.key.clone()));
        }
        // Whole parts straight from the caller's buffer when nothing is pending: no copy.
        let mut data = data;
        while !data.is_empty() {
            if self.buffer.is_empty() && data.len() >= self.part_size {
                let part = data.split_to(self.part_size);
                if let Err(e) = self.submit(part).await {
                    return Err(self.fail(e).await);
                }
                continue;
            }
            let take = (self.part_size - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data.split_to(take));
            if self.buffer.len() == self.part_size {
                let part = self.buffer.split().freeze();
                if let Err(e) = self.submit(part).await {
                    return Err(self.fail(e).await);
                }
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<Receipt> {
        if self.closed {
            return Err(Error::new(
                ErrorKind::Other,
                self.provider,
                Operation::Put,
                "finish after the writer failed",
            )
            .with_key(self.key.clone()));
        }
        // An empty object is one empty part.
        if !self.buffer.is_empty() || self.next_part == 1 {
            let part = self.buffer.split().freeze();
            if let Err(e) = self.submit(part).await {
                return Err(self.fail(e).await);
            }
        }
        while !self.in_flight.is_empty() {
            if let Err(e) = self.reap_one().await {
                return Err(self.fail(e).await);
            }
        }
        let mut parts = std::mem::take(&mut self.done);
        parts.sort_by_key(|p| p.number);
        self.closed = true;
        match self.upload.complete(parts).await {
            Ok(r) => Ok(r),
            Err(e) => {
                let _ = self.upload.abort().await;
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.closed = true;
        self.in_flight = FuturesUnordered::new();
        self.upload.abort().await
    }
}

impl Drop for MultipartWriter {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Dropped without finish or abort: clean up in the background, best effort.
        self.in_flight = FuturesUnordered::new();
        let upload = Arc::clone(&self.upload);
        let key = std::mem::take(&mut self.key);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, %key, "abort of a dropped upload failed");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_grows_to_stay_under_the_part_limit() {
        let s3 = PartLimits {
            min_part_size: 5 << 20,
            max_part_size: 5 << 30,
            max_parts: 10_000,
        };
        assert_eq!(part_size_for(None, 16 << 20, s3), 16 << 20);
        assert_eq!(part_size_for(Some(1 << 30), 16 << 20, s3), 16 << 20);
        let five_tib = 5u64 << 40;
        let p = part_size_for(Some(five_tib), 16 << 20, s3);
        assert!(five_tib.div_ceil(p) <= 10_000, "{p}");
        assert_eq!(p % (1 << 20), 0);
        assert_eq!(part_size_for(None, 1, s3), 5 << 20);
    }
}
