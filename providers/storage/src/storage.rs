//! The `Storage` trait: the contract every object store implements.

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::types::{Capabilities, GetRange, ObjectMeta, PutOptions, Receipt};

/// A stream of bytes read from a store.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A lazy, paged listing.
pub type ListStream<'a> = BoxStream<'a, Result<ObjectMeta>>;

/// The answer to [`Storage::get`]: the object's metadata and its bytes.
pub struct GetResult {
    /// The object as `head` would describe it.
    pub meta: ObjectMeta,
    /// The requested range of the object.
    pub range: std::ops::Range<u64>,
    /// The bytes, in order; an error item ends the stream.
    pub stream: ByteStream,
}

impl Debug for GetResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetResult")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// An object store: a flat space of keys under one location (a directory, a bucket and prefix,
/// a container and prefix).
///
/// # Contract
///
/// - **Keys** are relative to the store's location, `/`-separated, and pass
///   [`validate_key`](crate::validate_key). A store maps them to its own names without loss:
///   spaces, unicode, `+` and `%` round-trip exactly.
/// - **Atomic visibility.** An object written through [`Storage::writer`] becomes visible only
///   when [`ObjectWriter::finish`] returns `Ok`, and then completely: no reader, `head` or `list`
///   ever sees part of it. A writer that is aborted, fails, or is dropped without `finish` leaves
///   no visible object and, where the provider bills for them, no orphaned parts (dropping is
///   best-effort cleanup; call [`ObjectWriter::abort`] on every error path).
/// - **`finish` guarantees** that the bytes are durable as the provider defines it (for a local
///   file: data fsynced, renamed into place, directory fsynced), that the stored size equals the
///   bytes written, and that the [`Receipt`]'s checksum is what the provider will report for the
///   object from now on. With `if_not_exists` the check and the publish are one atomic step.
/// - **Memory** is bounded by the store's part size times its parts in flight; `write` waits
///   (back-pressure) rather than buffer without limit.
/// - **Retries.** Stores retry idempotent requests (a part upload, a ranged read, a page of a
///   listing, a head) on errors flagged retryable, through [`RetryPolicy`](crate::RetryPolicy).
///   They never retry a request whose effect is not idempotent. Errors that reach the caller
///   have used up their retries.
/// - **Listing** is lazy and paged; a prefix is matched by whole segments (`a/b` lists `a/b/c`,
///   never `a/bc`), and listings of the store's own bookkeeping files are hidden.
/// - **Unsupported operations** return [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported)
///   and are declared in [`Capabilities`]; no method quietly falls back to something worse.
#[async_trait]
pub trait Storage: Send + Sync + Debug {
    /// The location as a URL, with no credentials in it; used in messages and manifests.
    fn url(&self) -> &str;

    /// The provider's short name: `file`, `memory`, `s3`, `gcs`, `azure`.
    fn provider(&self) -> &'static str;

    /// What this store can do.
    fn capabilities(&self) -> Capabilities;

    /// Metadata of one object, or `NotFound`.
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Reads an object, or a range of it (`None` reads everything).
    async fn get(&self, key: &str, range: Option<GetRange>) -> Result<GetResult>;

    /// Starts writing an object. Nothing is visible until the writer's `finish` succeeds.
    async fn writer(&self, key: &str, options: PutOptions) -> Result<Box<dyn ObjectWriter>>;

    /// Lists every object under `prefix` (segment-wise; `""` for all), lazily, in pages.
    /// Order is not specified.
    fn list(&self, prefix: &str) -> ListStream<'_>;

    /// Deletes an object. Deleting a missing key is `NotFound`; a locked one is `Locked`.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Copies an object inside the store without moving its bytes through this process, or
    /// answers `Unsupported`.
    async fn copy(&self, from: &str, to: &str, options: PutOptions) -> Result<Receipt>;

    /// The store's multipart primitives, for uploads that must survive the process (push's
    /// resume after a crash); `None` for stores that write one stream (local files).
    fn multipart(&self) -> Option<std::sync::Arc<dyn crate::Multipart>>;

    /// The store's resumable sequential sessions (GCS), for uploads that must survive the
    /// process; `None` where uploads are multipart or one stream.
    fn sequential(&self) -> Option<std::sync::Arc<dyn crate::Sequential>>;

    /// Asks an archive tier (S3 Glacier, Azure Archive) to make the object readable again for
    /// `days` days; returns at once, the provider takes minutes to hours. `Unsupported` where
    /// nothing is ever archived.
    async fn thaw(&self, key: &str, days: u32) -> Result<()>;
}

/// Writes one object; see the [`Storage`] contract for what each step guarantees.
#[async_trait]
pub trait ObjectWriter: Send {
    /// Appends bytes. May wait while earlier parts are in flight (back-pressure).
    async fn write(&mut self, data: Bytes) -> Result<()>;

    /// Publishes the object atomically and returns what was stored.
    async fn finish(self: Box<Self>) -> Result<Receipt>;

    /// Discards everything written so far; nothing becomes visible.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// Conveniences built on [`Storage`], kept out of the trait so adapters implement only the
/// primitives.
#[async_trait]
pub trait StorageExt: Storage {
    /// Writes a small object in one call.
    async fn put_bytes(&self, key: &str, data: Bytes, options: PutOptions) -> Result<Receipt> {
        let mut w = self.writer(key, options).await?;
        if let Err(e) = w.write(data).await {
            let _ = w.abort().await;
            return Err(e);
        }
        w.finish().await
    }

    /// Reads a small object (manifests, markers) into memory. Never use it for archives.
    async fn get_bytes(&self, key: &str) -> Result<Bytes> {
        use futures::TryStreamExt;
        let got = self.get(key, None).await?;
        let chunks: Vec<Bytes> = got.stream.try_collect().await?;
        Ok(chunks.concat().into())
    }

    /// Lists every key under a prefix into memory (listing results are small: names only).
    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        use futures::TryStreamExt;
        self.list(prefix).try_collect().await
    }
}

impl<T: Storage + ?Sized> StorageExt for T {}

/// Turns a stream of listing pages into the flat stream [`Storage::list`] returns; an error
/// page ends it.
pub fn flatten_pages<'a, S>(pages: S) -> ListStream<'a>
where
    S: futures::Stream<Item = Result<Vec<ObjectMeta>>> + Send + 'a,
{
    use futures::StreamExt;
    pages
        .map(|page| match page {
            Ok(items) => futures::stream::iter(items.into_iter().map(Ok)).left_stream(),
            Err(e) => futures::stream::once(async move { Err(e) }).right_stream(),
        })
        .flatten()
        .boxed()
}
