//! The `Storage` trait: the contract every object store implements.

use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::types::{
    Capabilities, CreateOptions, GetRange, ObjectMeta, ObjectVersion, OpenUpload, PutOptions,
    Receipt, Retention,
};

/// A stream of bytes read from a store.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A lazy, paged listing.
pub type ListStream<'a> = BoxStream<'a, Result<ObjectMeta>>;

/// A lazy, paged listing of object versions.
pub type VersionStream<'a> = BoxStream<'a, Result<ObjectVersion>>;

/// A lazy, paged listing of open multipart uploads.
pub type UploadStream<'a> = BoxStream<'a, Result<OpenUpload>>;

/// The error of an operation a store does not have (the trait's default for the optional
/// operations; see [`Capabilities`]).
pub fn unsupported(provider: &'static str, operation: Operation, what: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        provider,
        operation,
        format!("{provider} stores cannot {what}"),
    )
}

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

    /// Whether [`Storage::copy_from_store`] copies from `source`, another store, under
    /// `options` without the bytes passing through this process (both on one service with
    /// one set of credentials, and `options` something the provider's copy honours). A dry
    /// run reports its route by it.
    fn can_copy_from(&self, source: &dyn Storage, options: &PutOptions) -> bool {
        let _ = (source, options);
        false
    }

    /// Copies `from` in `source` (another store, or this one) to `to` here inside the
    /// provider, when [`Storage::can_copy_from`] says it can; `Unsupported` otherwise, and the
    /// caller streams the copy. `size` is the source object's size as its listing gave it
    /// (`None`: the store asks). With `if_not_exists` a taken `to` is `AlreadyExists`.
    async fn copy_from_store(
        &self,
        source: &dyn Storage,
        from: &str,
        size: Option<u64>,
        to: &str,
        options: PutOptions,
    ) -> Result<Receipt> {
        let _ = (source, from, size, options);
        Err(unsupported(
            self.provider(),
            Operation::Copy,
            "copy from that store inside the provider",
        )
        .with_key(to))
    }

    /// This store as [`Any`](std::any::Any): how an adapter recognises a store of its own kind
    /// in [`Storage::copy_from_store`].
    fn as_any(&self) -> &dyn std::any::Any;

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

    /// Creates the location the store points into (directory, bucket, container), with
    /// versioning and locks when asked. Returns `true` when it was created, `false` when it
    /// existed already and is usable by these credentials; a bucket name taken by someone else
    /// is `AlreadyExists`. An option the store cannot honour is `Unsupported`, never dropped.
    async fn create_location(&self, options: &CreateOptions) -> Result<bool> {
        let _ = options;
        Err(unsupported(
            self.provider(),
            Operation::Create,
            "create their location",
        ))
    }

    /// Lists every version of every object under `prefix` (segment-wise), delete markers
    /// included, lazily; on a location that is not versioned each key has one version.
    /// `Unsupported` where the provider has no versions ([`Capabilities::versions`]).
    fn list_versions(&self, prefix: &str) -> VersionStream<'_> {
        let _ = prefix;
        let e = unsupported(self.provider(), Operation::Versions, "list object versions");
        Box::pin(futures::stream::once(async move { Err(e) }))
    }

    /// Reads one version of an object, or a range of it: a noncurrent version too, such as the
    /// locked data a delete marker hides on an S3 Object Lock bucket. Missing is `NotFound`.
    /// `Unsupported` where the provider has no versions ([`Capabilities::versions`]).
    async fn get_version(
        &self,
        key: &str,
        version: &str,
        range: Option<GetRange>,
    ) -> Result<GetResult> {
        let _ = (key, version, range);
        Err(unsupported(
            self.provider(),
            Operation::Versions,
            "read a version",
        ))
    }

    /// Deletes one version of an object (what prune does on a versioned location, where a
    /// plain delete only adds a marker). Missing is `NotFound`; locked is `Locked`.
    async fn delete_version(&self, key: &str, version: &str) -> Result<()> {
        let _ = (key, version);
        Err(unsupported(
            self.provider(),
            Operation::Versions,
            "delete a version",
        ))
    }

    /// Extends an object's retention lock to `retention.retain_until`, never shortening it:
    /// when the lock already runs as long or longer it is left as it is. A compliance lock
    /// stays compliance. Returns the lock in force afterwards.
    /// `Unsupported` where [`Capabilities::extend_retention`] is false.
    async fn extend_retention(&self, key: &str, retention: Retention) -> Result<Retention> {
        let _ = (key, retention);
        Err(unsupported(
            self.provider(),
            Operation::Retention,
            "extend a retention lock",
        ))
    }

    /// Lists the multipart uploads under `prefix` that were started and neither completed nor
    /// aborted (a crashed push leaves one; providers bill for its parts). `Unsupported` where
    /// the provider cannot list them ([`Capabilities::list_uploads`]).
    fn list_uploads(&self, prefix: &str) -> UploadStream<'_> {
        let _ = prefix;
        let e = unsupported(self.provider(), Operation::Uploads, "list open uploads");
        Box::pin(futures::stream::once(async move { Err(e) }))
    }
}

/// The retention to keep when `wanted` is asked for an object that has `current`: the later
/// date, and compliance when either is (a compliance lock is never weakened). `None` when the
/// current lock already covers what is wanted, so nothing needs changing.
pub fn extended_retention(current: Option<Retention>, wanted: Retention) -> Option<Retention> {
    use crate::types::LockMode;
    match current {
        Some(c) if c.retain_until >= wanted.retain_until => None,
        Some(c) => Some(Retention {
            mode: if c.mode == LockMode::Compliance {
                LockMode::Compliance
            } else {
                wanted.mode
            },
            retain_until: wanted.retain_until,
        }),
        None => Some(wanted),
    }
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

/// Turns a stream of listing pages into the flat stream [`Storage::list`] (or
/// [`Storage::list_versions`], [`Storage::list_uploads`]) returns; an error page ends it.
pub fn flatten_pages<'a, T, S>(pages: S) -> BoxStream<'a, Result<T>>
where
    T: Send + 'a,
    S: futures::Stream<Item = Result<Vec<T>>> + Send + 'a,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::LockMode;
    use chrono::{Duration, Utc};

    #[test]
    fn retention_is_only_ever_extended() {
        let now = Utc::now();
        let lock = |mode, days| Retention {
            mode,
            retain_until: now + Duration::days(days),
        };
        let gov = LockMode::Governance;
        let comp = LockMode::Compliance;
        assert_eq!(extended_retention(None, lock(gov, 2)), Some(lock(gov, 2)));
        assert_eq!(extended_retention(Some(lock(gov, 3)), lock(gov, 2)), None);
        assert_eq!(extended_retention(Some(lock(gov, 2)), lock(gov, 2)), None);
        assert_eq!(
            extended_retention(Some(lock(comp, 1)), lock(gov, 5)),
            Some(lock(comp, 5)),
            "compliance is never weakened"
        );
        assert_eq!(
            extended_retention(Some(lock(gov, 1)), lock(comp, 5)),
            Some(lock(comp, 5))
        );
    }
}
