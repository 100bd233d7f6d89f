//! The shared multipart writer: adapters implement the three primitives of
//! [`Multipart`]; [`MultipartWriter`] does the buffering, the concurrency, the retries of
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
use crate::types::{PutOptions, Receipt};

/// One part handed to [`Multipart::upload_part`].
#[derive(Clone)]
pub struct Part {
    /// 1-based part number, in object order.
    pub number: u32,
    /// The part's bytes (cheap to clone for a retry).
    pub data: Bytes,
    /// SHA-256 of `data`, for providers that take per-part checksums.
    pub sha256: [u8; 32],
}

impl Part {
    /// A part with its SHA-256 computed.
    pub fn new(number: u32, data: Bytes) -> Part {
        let sha256 = Sha256::digest(&data).into();
        Part {
            number,
            data,
            sha256,
        }
    }
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

/// A provider's multipart primitives, addressed by upload id so that an upload can outlive the
/// process that started it: push records the id in its journal, and a rerun lists the parts the
/// provider already has ([`Multipart::list_parts`]) and sends only the missing ones.
///
/// `upload_part` must be idempotent per part number (a retry replaces the part).
#[async_trait]
pub trait Multipart: Send + Sync {
    /// The provider's part limits.
    fn limits(&self) -> PartLimits;
    /// Starts an upload; returns its id.
    async fn create_upload(&self, key: &str, options: &PutOptions) -> Result<String>;
    /// Uploads one part, sending its SHA-256 so the provider rejects a corrupted transfer.
    async fn upload_part(&self, key: &str, upload_id: &str, part: Part) -> Result<PartReceipt>;
    /// The parts the provider holds for an upload, with their SHA-256 (parts stored without a
    /// checksum are left out, so they are sent again). `NotFound` when the upload is gone.
    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<PartReceipt>>;
    /// Publishes the object from the parts, in part-number order.
    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<PartReceipt>,
        options: &PutOptions,
    ) -> Result<Receipt>;
    /// Whether `abort_upload` removes the parts from the server. Where it cannot (Azure keeps
    /// uncommitted blocks until it drops them after a week), parts stay listable, though never
    /// visible as an object.
    fn abort_discards_parts(&self) -> bool;
    /// Discards an upload and its parts.
    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<()>;
    /// Stores a small object in one request (no upload to clean up).
    async fn put_whole(&self, key: &str, part: Part, options: &PutOptions) -> Result<Receipt>;
}

/// The composite SHA-256 S3 reports for a multipart object: SHA-256 over the parts' digests.
pub fn composite_sha256(parts: &[PartReceipt]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.sha256);
    }
    h.finalize().into()
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

/// An [`ObjectWriter`] over any [`Multipart`] provider. The upload is created when the first
/// full part is ready; an object smaller than one part is sent in a single request.
pub struct MultipartWriter {
    provider: &'static str,
    key: String,
    store: Arc<dyn Multipart>,
    options: PutOptions,
    upload_id: Option<String>,
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
        store: Arc<dyn Multipart>,
        options: PutOptions,
        part_size: u64,
        concurrency: usize,
        retry: RetryPolicy,
    ) -> Self {
        let part_size = usize::try_from(part_size.max(1)).unwrap_or(usize::MAX);
        MultipartWriter {
            provider,
            key: key.into(),
            store,
            options,
            upload_id: None,
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
        if self.upload_id.is_none() {
            let (store, key, options) = (&self.store, &self.key, &self.options);
            let id = self.retry.run(|| store.create_upload(key, options)).await?;
            self.upload_id = Some(id);
        }
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
        let part = Part::new(number, data);
        let store = Arc::clone(&self.store);
        let retry = self.retry.clone();
        let key = self.key.clone();
        let id = self.upload_id.clone().expect("created above");
        self.in_flight.push(Box::pin(async move {
            retry
                .run(|| store.upload_part(&key, &id, part.clone()))
                .await
        }));
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<()> {
        if let Some(res) = self.in_flight.next().await {
            self.done.push(res?);
        }
        Ok(())
    }

    async fn abort_upload(&mut self) -> Result<()> {
        self.closed = true;
        self.in_flight = FuturesUnordered::new();
        match self.upload_id.take() {
            Some(id) => self.store.abort_upload(&self.key, &id).await,
            None => Ok(()),
        }
    }

    async fn fail(&mut self, err: Error) -> Error {
        if let Err(abort_err) = self.abort_upload().await {
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
        if self.upload_id.is_none() {
            // Smaller than one part: one request, nothing to clean up.
            self.closed = true;
            let part = Part::new(1, self.buffer.split().freeze());
            let (store, key, options) = (&self.store, &self.key, &self.options);
            return self
                .retry
                .run(|| store.put_whole(key, part.clone(), options))
                .await;
        }
        if !self.buffer.is_empty() {
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
        let id = self.upload_id.clone().expect("created");
        match self
            .store
            .complete_upload(&self.key, &id, parts, &self.options)
            .await
        {
            Ok(r) => {
                self.closed = true;
                self.upload_id = None;
                Ok(r)
            }
            Err(e) => Err(self.fail(e).await),
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.abort_upload().await
    }
}

impl Drop for MultipartWriter {
    fn drop(&mut self) {
        self.in_flight = FuturesUnordered::new();
        let Some(id) = self.upload_id.take() else {
            return;
        };
        // Dropped without finish or abort: clean up in the background, best effort.
        let store = Arc::clone(&self.store);
        let key = std::mem::take(&mut self.key);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = store.abort_upload(&key, &id).await {
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
