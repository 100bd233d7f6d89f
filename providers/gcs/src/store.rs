//! `GcsStore`: the Storage contract on Google Cloud Storage.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt, TryStreamExt};
use gcloud_storage::http::objects::delete::DeleteObjectRequest;
use gcloud_storage::http::objects::download::Range;
use gcloud_storage::http::objects::get::GetObjectRequest;
use gcloud_storage::http::objects::list::ListObjectsRequest;
use gcloud_storage::http::objects::rewrite::RewriteObjectRequest;
use gcloud_storage::http::objects::Object;
use offsite_storage::adapter;
use offsite_storage::{
    Capabilities, CreateOptions, Error, ErrorKind, GetRange, GetResult, ListStream, Multipart,
    ObjectDigest, ObjectMeta, ObjectVersion, ObjectWriter, Operation, PutOptions, Receipt, Result,
    Retention, RetryPolicy, Sequential, SessionState, Storage, VersionStream,
};

use crate::client::{self, Inner, PROVIDER};
use crate::config::GcsConfig;
use crate::error::from_crate;
use crate::session::GcsDigest;

/// A bucket and prefix on Google Cloud Storage.
#[derive(Clone)]
pub struct GcsStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GcsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsStore")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

impl GcsStore {
    /// Opens a location (application default credentials, or none against an endpoint).
    pub async fn open(cfg: GcsConfig, url: &str) -> Result<GcsStore> {
        let clients = client::build(&cfg).await.map_err(|why| {
            Error::new(ErrorKind::Unauthenticated, PROVIDER, Operation::Open, why).with_key(url)
        })?;
        Ok(GcsStore {
            inner: Arc::new(Inner {
                clients,
                cfg,
                url: url.to_string(),
                retry: RetryPolicy::default().at(url),
            }),
        })
    }

    /// Whether [`GcsStore::copy_from`] can copy from `other` server-side: the same endpoint
    /// and the same credentials.
    pub fn same_service(&self, other: &GcsStore) -> bool {
        self.inner.cfg.endpoint == other.inner.cfg.endpoint
            && self.inner.cfg.credentials_file == other.inner.cfg.credentials_file
    }

    /// Server-side copy from another bucket (rewrite, looping until done on large objects).
    pub async fn copy_from(
        &self,
        source: &GcsStore,
        from: &str,
        to: &str,
        options: PutOptions,
    ) -> Result<Receipt> {
        rewrite(&source.inner, from, &self.inner, to, options).await
    }

    /// Sets a retention (`retainUntilTime`, Unlocked for governance, Locked for compliance).
    pub async fn set_retention(
        &self,
        key: &str,
        retention: &offsite_storage::Retention,
    ) -> Result<()> {
        crate::session::set_retention(&self.inner, key, retention, Operation::Put).await
    }

    /// Places or releases a temporary hold.
    pub async fn set_hold(&self, key: &str, hold: bool) -> Result<()> {
        crate::session::set_hold(&self.inner, key, hold).await
    }
}

async fn rewrite(
    src: &Inner,
    from: &str,
    dst: &Inner,
    to: &str,
    options: PutOptions,
) -> Result<Receipt> {
    let src_full = src.check(from, Operation::Copy)?;
    let dst_full = dst.check(to, Operation::Copy)?;
    if options.storage_class.is_some() || !options.metadata.is_empty() {
        // Rewrite keeps the source's class and metadata; say so rather than ignore the ask.
        return Err(Error::new(
            ErrorKind::Unsupported,
            PROVIDER,
            Operation::Copy,
            "a GCS copy keeps the source's storage class and metadata",
        )
        .with_key(to)
        .with_hint(
            "copy without storage-class or metadata, then change the class with a lifecycle rule",
        ));
    }
    src.retry.run(|| src.head_json(from)).await?;
    if options.if_not_exists {
        match dst.retry.run(|| dst.head_json(to)).await {
            Ok(_) => return Err(Error::already_exists(PROVIDER, to)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let mut token = None;
    loop {
        let req = RewriteObjectRequest {
            destination_bucket: dst.cfg.bucket.clone(),
            destination_object: dst_full.clone(),
            source_bucket: src.cfg.bucket.clone(),
            source_object: src_full.clone(),
            rewrite_token: token.clone(),
            ..Default::default()
        };
        let out = dst
            .retry
            .run(|| async {
                dst.clients
                    .storage
                    .rewrite_object(&req)
                    .await
                    .map_err(|e| from_crate(e, Operation::Copy, &dst.ctx(to)))
            })
            .await?;
        if out.done {
            break;
        }
        token = out.rewrite_token;
    }
    if let Some(r) = &options.retention {
        crate::session::set_retention(dst, to, r, Operation::Copy).await?;
    }
    let meta = dst.retry.run(|| dst.head_json(to)).await?;
    let mut r = Receipt::new(to, meta.size, meta.checksum.clone());
    r.version = meta.version;
    Ok(r)
}

/// Deletes one generation, retried like every request. The request names the generation, so
/// a retry after a lost answer finds it gone (NotFound), which is then the first attempt's
/// success; a refusal is explained by what the generation holds (a lock, a hold).
async fn delete_generation(
    i: &Inner,
    req: &DeleteObjectRequest,
    op: Operation,
    key: &str,
    meta: &ObjectMeta,
) -> Result<()> {
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let res = i
        .retry
        .run(|| async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            i.clients
                .storage
                .delete_object(req)
                .await
                .map_err(|e| from_crate(e, op, &i.ctx(key)))
        })
        .await;
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() && attempts.into_inner() > 1 => Ok(()),
        Err(e) => {
            let location = format!("gs://{}", i.cfg.bucket);
            Err(adapter::delete_refused(e, meta, PROVIDER, &location, key))
        }
    }
}

/// The objects under a store-relative prefix (segment-wise), page by page; every generation,
/// noncurrent ones included, with `versions`.
fn object_pages<'a>(
    i: &'a Inner,
    prefix: &str,
    versions: bool,
    op: Operation,
) -> impl futures::Stream<Item = Result<Vec<Object>>> + Send + 'a {
    let full = offsite_storage::listing_prefix(&i.cfg.prefix, prefix);
    stream::try_unfold(Some(None::<String>), move |token| {
        let full = full.clone();
        async move {
            let Some(token) = token else { return Ok(None) };
            let req = ListObjectsRequest {
                bucket: i.cfg.bucket.clone(),
                prefix: (!full.is_empty()).then(|| full.clone()),
                page_token: token.clone(),
                versions: versions.then_some(true),
                ..Default::default()
            };
            let page = i
                .retry
                .run(|| async {
                    i.clients
                        .storage
                        .list_objects(&req)
                        .await
                        .map_err(|e| from_crate(e, op, &i.ctx(&full)))
                })
                .await?;
            let next = page.next_page_token.filter(|t| !t.is_empty()).map(Some);
            Ok(Some((page.items.unwrap_or_default(), next)))
        }
    })
}

/// When a listed object was last written, to the second.
fn updated(o: &Object) -> Option<chrono::DateTime<chrono::Utc>> {
    o.updated
        .and_then(|t| chrono::DateTime::from_timestamp(t.unix_timestamp(), 0))
}

#[async_trait]
impl Storage for GcsStore {
    fn url(&self) -> &str {
        &self.inner.url
    }

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn can_copy_from(&self, source: &dyn Storage, options: &PutOptions) -> bool {
        adapter::own_kind(source, |s: &GcsStore| {
            self.same_service(s) && options.storage_class.is_none()
        })
        .is_some()
    }

    async fn copy_from_store(
        &self,
        source: &dyn Storage,
        from: &str,
        size: Option<u64>,
        to: &str,
        options: PutOptions,
    ) -> Result<Receipt> {
        let Some(source) = adapter::own_kind(source, |s: &GcsStore| {
            self.same_service(s) && options.storage_class.is_none()
        }) else {
            return Err(adapter::no_copy_from(PROVIDER, to));
        };
        // A rewrite keeps the source's storage class: a class asked for is streamed instead.
        let _ = size;
        self.copy_from(source, from, to, options).await
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::default();
        c.server_side_copy = true;
        c.retention = true;
        c.storage_classes = true;
        c.metadata = true;
        c.checksum_on_head = true;
        c.part_size = Some(self.inner.cfg.chunk_size);
        c.create_location = true;
        c.versions = true;
        c.extend_retention = true;
        // GCS has resumable sessions, not multipart uploads: nothing to list.
        c.list_uploads = false;
        // objects.list lists in lexicographic (UTF-8 binary) name order.
        c.ordered_listing = true;
        c
    }

    async fn create_location(&self, options: &CreateOptions) -> Result<bool> {
        self.inner.create_bucket(options).await
    }

    fn list_versions(&self, prefix: &str) -> VersionStream<'_> {
        let i = &self.inner;
        let pages = object_pages(i, prefix, true, Operation::Versions).map_ok(move |objects| {
            objects
                .into_iter()
                .filter_map(|o| {
                    let key = i.cfg.relative_key(&o.name)?.to_string();
                    let mut v =
                        ObjectVersion::new(key, o.generation.to_string(), o.size.max(0) as u64);
                    v.last_modified = updated(&o);
                    // A noncurrent generation carries the time it stopped being live.
                    v.latest = o.time_deleted.is_none();
                    Some(v)
                })
                .collect()
        });
        offsite_storage::flatten_pages(pages)
    }

    async fn delete_version(&self, key: &str, version: &str) -> Result<()> {
        let i = &self.inner;
        let full = i.check(key, Operation::Versions)?;
        let generation: i64 = version.parse().map_err(|_| {
            Error::new(
                ErrorKind::InvalidConfig,
                PROVIDER,
                Operation::Versions,
                format!("{version:?} is not a GCS generation"),
            )
            .with_key(key)
            .with_hint("use a version as list_versions reports it (a generation number)")
        })?;
        // What the generation holds decides whether a refusal is a lock (and missing is NotFound).
        let meta = i
            .retry
            .run(|| i.head_generation(key, Some(generation)))
            .await?;
        let req = DeleteObjectRequest {
            bucket: i.cfg.bucket.clone(),
            object: full,
            generation: Some(generation),
            ..Default::default()
        };
        delete_generation(i, &req, Operation::Versions, key, &meta).await
    }

    async fn extend_retention(&self, key: &str, retention: Retention) -> Result<Retention> {
        let i = &self.inner;
        i.check(key, Operation::Retention)?;
        let current = i.retry.run(|| i.head_json(key)).await?.retention;
        let Some(extended) = offsite_storage::extended_retention(current, retention) else {
            // The lock in force already runs as long or longer: nothing is sent.
            return Ok(current.unwrap_or(retention));
        };
        match crate::session::set_retention(i, key, &extended, Operation::Retention).await {
            Ok(()) => Ok(extended),
            Err(e) if current.is_none() && e.kind() == ErrorKind::InvalidConfig => Err(e.with_hint(
                format!(
                    "bucket {:?} may not have object retention, which GCS turns on only when a bucket is created: create one with `offsite create --object-lock`",
                    i.cfg.bucket
                ),
            )),
            Err(e) => Err(e),
        }
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let i = &self.inner;
        i.check(key, Operation::Head)?;
        i.retry.run(|| i.head_json(key)).await
    }

    async fn get(&self, key: &str, range: Option<GetRange>) -> Result<GetResult> {
        self.get_generation(key, range, None).await
    }

    async fn get_version(
        &self,
        key: &str,
        version: &str,
        range: Option<GetRange>,
    ) -> Result<GetResult> {
        let generation: i64 = version.parse().map_err(|_| {
            Error::new(
                ErrorKind::InvalidConfig,
                PROVIDER,
                Operation::Get,
                format!("{version:?} is not a GCS generation"),
            )
            .with_key(key)
        })?;
        self.get_generation(key, range, Some(generation)).await
    }

    async fn writer(&self, key: &str, options: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.inner.check(key, Operation::Put)?;
        self.inner.check_class(&options, key)?;
        Ok(Box::new(GcsWriter {
            inner: self.inner.clone(),
            key: key.to_string(),
            options,
            session: None,
            offset: 0,
            buffer: BytesMut::new(),
            digest: Some(Box::new(GcsDigest::new())),
            done: false,
        }))
    }

    fn list(&self, prefix: &str) -> ListStream<'_> {
        let i = &self.inner;
        let pages = object_pages(i, prefix, false, Operation::List).map_ok(move |objects| {
            objects
                .into_iter()
                .filter_map(|o| {
                    let key = i.cfg.relative_key(&o.name)?.to_string();
                    let mut m = ObjectMeta::new(key, o.size.max(0) as u64);
                    m.last_modified = updated(&o);
                    m.storage_class = o.storage_class;
                    m.version = Some(o.generation.to_string());
                    Some(m)
                })
                .collect()
        });
        offsite_storage::flatten_pages(pages)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let i = &self.inner;
        let full = i.check(key, Operation::Delete)?;
        let meta = i.retry.run(|| i.head_json(key)).await?;
        let req = DeleteObjectRequest {
            bucket: i.cfg.bucket.clone(),
            object: full,
            generation: meta.version.as_deref().and_then(|g| g.parse().ok()),
            ..Default::default()
        };
        delete_generation(i, &req, Operation::Delete, key, &meta).await
    }

    async fn copy(&self, from: &str, to: &str, options: PutOptions) -> Result<Receipt> {
        rewrite(&self.inner, from, &self.inner, to, options).await
    }

    fn multipart(&self) -> Option<Arc<dyn Multipart>> {
        None
    }

    fn sequential(&self) -> Option<Arc<dyn Sequential>> {
        Some(self.inner.clone())
    }

    async fn thaw(&self, key: &str, _days: u32) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            PROVIDER,
            Operation::Get,
            "GCS serves every storage class directly, ARCHIVE included; there is nothing to thaw",
        )
        .with_key(key))
    }
}

/// A writer over one resumable session: chunks of `chunk_size` sent in order, the session
/// started only once more than one chunk is coming (a small object is one final request).
struct GcsWriter {
    inner: Arc<Inner>,
    key: String,
    options: PutOptions,
    session: Option<String>,
    offset: u64,
    buffer: BytesMut,
    digest: Option<Box<dyn ObjectDigest>>,
    done: bool,
}

impl GcsWriter {
    async fn session(&mut self) -> Result<String> {
        if let Some(s) = &self.session {
            return Ok(s.clone());
        }
        let (i, key, options) = (&self.inner, &self.key, &self.options);
        let s = i.retry.run(|| i.start_session(key, options)).await?;
        self.session = Some(s.clone());
        Ok(s)
    }

    async fn send(
        &mut self,
        data: Bytes,
        last: Option<(u64, Vec<offsite_storage::Checksum>)>,
    ) -> Result<SessionState> {
        let session = self.session().await?;
        let (i, key, offset) = (&self.inner, &self.key, self.offset);
        let state = i
            .retry
            .run(|| i.put_chunk(key, &session, offset, data.clone(), last.clone()))
            .await?;
        if let SessionState::Persisted(n) = state {
            if n != offset + data.len() as u64 {
                return Err(Error::new(
                    ErrorKind::Transient,
                    PROVIDER,
                    Operation::Put,
                    format!(
                        "the server persisted {n} bytes, expected {}",
                        offset + data.len() as u64
                    ),
                )
                .with_key(key.clone()));
            }
        }
        self.offset += data.len() as u64;
        Ok(state)
    }

    async fn fail(&mut self, e: Error) -> Error {
        self.done = true;
        if let Some(s) = self.session.take() {
            let _ = self.inner.cancel_session(&self.key, &s).await;
        }
        e
    }
}

#[async_trait]
impl ObjectWriter for GcsWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        if self.done {
            return Err(Error::new(
                ErrorKind::Other,
                PROVIDER,
                Operation::Put,
                "write after the writer failed",
            )
            .with_key(self.key.clone()));
        }
        if let Some(d) = &mut self.digest {
            d.update(&data);
        }
        self.buffer.extend_from_slice(&data);
        let chunk = self.inner.cfg.chunk_size as usize;
        // Keep at least one byte back: the final chunk must carry the total size.
        while self.buffer.len() > chunk {
            let part = self.buffer.split_to(chunk).freeze();
            if let Err(e) = self.send(part, None).await {
                return Err(self.fail(e).await);
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<Receipt> {
        if self.done {
            return Err(Error::new(
                ErrorKind::Other,
                PROVIDER,
                Operation::Put,
                "finish after the writer failed",
            )
            .with_key(self.key.clone()));
        }
        let rest = self.buffer.split().freeze();
        let total = self.offset + rest.len() as u64;
        let sums = self.digest.take().map(|d| d.finish()).unwrap_or_default();
        match self.send(rest, Some((total, sums))).await {
            Ok(SessionState::Complete(r)) => {
                self.done = true;
                self.session = None;
                Ok(r)
            }
            Ok(SessionState::Persisted(_)) => {
                let e = Error::new(
                    ErrorKind::Other,
                    PROVIDER,
                    Operation::Put,
                    "the server did not finalize the upload",
                )
                .with_key(self.key.clone());
                Err(self.fail(e).await)
            }
            Err(e) => Err(self.fail(e).await),
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.done = true;
        match self.session.take() {
            Some(s) => self.inner.cancel_session(&self.key, &s).await,
            None => Ok(()),
        }
    }
}

impl Drop for GcsWriter {
    fn drop(&mut self) {
        let Some(s) = self.session.take() else { return };
        let inner = self.inner.clone();
        let key = std::mem::take(&mut self.key);
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                let _ = inner.cancel_session(&key, &s).await;
            });
        }
    }
}

impl GcsStore {
    /// Reads the live object, or one generation of it.
    async fn get_generation(
        &self,
        key: &str,
        range: Option<GetRange>,
        generation: Option<i64>,
    ) -> Result<GetResult> {
        let i = &self.inner;
        let full = i.check(key, Operation::Get)?;
        let meta = i.retry.run(|| i.head_generation(key, generation)).await?;
        let r = range
            .unwrap_or(GetRange::From(0))
            .resolve(meta.size, PROVIDER, key)?;
        if r.start == r.end {
            return Ok(adapter::empty_get(meta, r));
        }
        let req = GetObjectRequest {
            bucket: i.cfg.bucket.clone(),
            object: full,
            // The generation just seen: a concurrent overwrite cannot splice two objects.
            generation: meta.version.as_deref().and_then(|g| g.parse().ok()),
            ..Default::default()
        };
        let range_hdr = Range(Some(r.start), Some(r.end - 1));
        let body = i
            .clients
            .storage
            .download_streamed_object(&req, &range_hdr)
            .await
            .map_err(|e| from_crate(e, Operation::Get, &i.ctx(key)))?;
        let location = format!("gs://{}", i.cfg.bucket);
        let k = key.to_string();
        let stream = body.map(move |item| {
            item.map_err(|e| adapter::download_broke_off(PROVIDER, &location, &k, &e.to_string()))
        });
        Ok(GetResult {
            meta,
            range: r,
            stream: stream.boxed(),
        })
    }
}
