//! `S3Store`: the Storage contract on S3. Reads, listing and deletes are here; the multipart
//! primitives are in `multipart`, server-side copies in `copy`, and what S3's answers and a
//! write's options mean in `metadata`.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, Tier};
use futures::stream::{self, StreamExt};
use offsite_storage::adapter;
use offsite_storage::{
    part_size_for, Capabilities, Error, ErrorKind, GetRange, GetResult, ListStream, Multipart,
    MultipartWriter, ObjectMeta, ObjectWriter, Operation, PutOptions, Receipt, RetryPolicy,
    Storage,
};
use offsite_storage::{CreateOptions, Retention, UploadStream, VersionStream};

use crate::client::{head, Inner, COPY_OBJECT_MAX, LIMITS};
use crate::config::{S3Config, PROVIDER};
use crate::copy::copy_between;
use crate::error::map;
use crate::metadata::{from_smithy_time, meta_from_get, storage_class};

/// A bucket and prefix on S3 or an S3-compatible server.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("url", &self.inner.url)
            .field("region", &self.inner.region)
            .finish()
    }
}

impl S3Store {
    /// Opens a location with credentials from the AWS default chain.
    pub async fn open(cfg: S3Config, url: &str) -> S3Store {
        let (client, region, compatible) = crate::client::build(&cfg).await;
        S3Store {
            inner: Arc::new(Inner {
                client,
                cfg,
                region,
                compatible,
                url: url.to_string(),
                retry: RetryPolicy::default().at(url),
                copy_part_threshold: COPY_OBJECT_MAX,
            }),
        }
    }

    /// Opens a location with fixed credentials, for emulators and tests; production uses
    /// [`S3Store::open`] and the default chain.
    pub async fn open_with_static_credentials(
        cfg: S3Config,
        url: &str,
        access_key: &str,
        secret: &str,
    ) -> S3Store {
        let creds =
            aws_sdk_s3::config::Credentials::new(access_key, secret, None, None, "offsite-static");
        let (client, region, compatible) = crate::client::build_with(&cfg, Some(creds)).await;
        S3Store {
            inner: Arc::new(Inner {
                client,
                cfg,
                region,
                compatible,
                url: url.to_string(),
                retry: RetryPolicy::default().at(url),
                copy_part_threshold: COPY_OBJECT_MAX,
            }),
        }
    }

    /// Copies objects larger than `bytes` part by part instead of with one CopyObject (tests
    /// use a small value to exercise UploadPartCopy without 5 GiB objects).
    pub fn with_copy_part_threshold(mut self, bytes: u64) -> Self {
        let inner = Arc::get_mut(&mut self.inner).expect("configure before sharing the store");
        inner.copy_part_threshold = bytes.clamp(LIMITS.min_part_size, COPY_OBJECT_MAX);
        self
    }

    /// Whether [`S3Store::copy_from`] can copy from `other` server-side: the same service
    /// (endpoint) and the same credentials (profile); regions may differ.
    pub fn same_service(&self, other: &S3Store) -> bool {
        self.inner.cfg.endpoint == other.inner.cfg.endpoint
            && self.inner.cfg.profile == other.inner.cfg.profile
    }

    /// Server-side copy from another bucket (possibly in another region, on the same
    /// provider): CopyObject up to 5 GiB, UploadPartCopy above. The bytes never pass through
    /// this process.
    pub async fn copy_from(
        &self,
        source: &S3Store,
        from: &str,
        to: &str,
        options: PutOptions,
    ) -> offsite_storage::Result<Receipt> {
        let size = head(&source.inner, from).await?.size;
        self.copy_sized(source, from, size, to, options).await
    }

    /// [`S3Store::copy_from`] for an object whose size the caller knows (from a listing),
    /// without the HEAD: the part plan follows `size`, and a wrong size fails the copy.
    pub async fn copy_sized(
        &self,
        source: &S3Store,
        from: &str,
        size: u64,
        to: &str,
        options: PutOptions,
    ) -> offsite_storage::Result<Receipt> {
        let src_full = source.inner.check_key(from, Operation::Copy)?;
        copy_between(
            &self.inner,
            &source.inner.cfg.bucket,
            &src_full,
            size,
            to,
            options,
        )
        .await
    }

    /// Creates the bucket (tests and first-time setup); with `object_lock` the bucket is
    /// versioned with Object Lock enabled. An existing bucket is fine.
    pub async fn create_bucket(&self, object_lock: bool) -> offsite_storage::Result<()> {
        let mut options = CreateOptions::default();
        options.object_lock = object_lock;
        options.versioning = object_lock;
        self.inner.create_location(&options).await.map(|_| ())
    }

    /// The bucket's region as the client uses it.
    pub fn region(&self) -> &str {
        &self.inner.region
    }
}

#[async_trait]
impl Storage for S3Store {
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
        let _ = options;
        adapter::own_kind(source, |s: &S3Store| self.same_service(s)).is_some()
    }

    async fn copy_from_store(
        &self,
        source: &dyn Storage,
        from: &str,
        size: Option<u64>,
        to: &str,
        options: PutOptions,
    ) -> offsite_storage::Result<Receipt> {
        let Some(source) = adapter::own_kind(source, |s: &S3Store| self.same_service(s)) else {
            return Err(adapter::no_copy_from(PROVIDER, to));
        };
        match size {
            Some(size) => self.copy_sized(source, from, size, to, options).await,
            None => self.copy_from(source, from, to, options).await,
        }
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::default();
        c.server_side_copy = true;
        c.retention = true;
        c.storage_classes = true;
        c.metadata = true;
        c.checksum_on_head = true;
        c.part_size = Some(self.inner.cfg.part_size);
        c.concurrency = Some(self.inner.cfg.concurrency);
        c.create_location = true;
        c.versions = true;
        c.extend_retention = true;
        c.list_uploads = true;
        // ListObjectsV2 on AWS lists in lexicographic (UTF-8 binary) key order; an
        // S3-compatible server may not (SeaweedFS walks directories), so replication sorts
        // its listing first.
        c.ordered_listing = !self.inner.compatible;
        c.thaw = true;
        c
    }

    async fn create_location(&self, options: &CreateOptions) -> offsite_storage::Result<bool> {
        self.inner.create_location(options).await
    }

    fn list_versions(&self, prefix: &str) -> VersionStream<'_> {
        self.inner.list_versions(prefix)
    }

    async fn delete_version(&self, key: &str, version: &str) -> offsite_storage::Result<()> {
        self.inner.delete_version(key, version).await
    }

    async fn extend_retention(
        &self,
        key: &str,
        retention: Retention,
    ) -> offsite_storage::Result<Retention> {
        self.inner.extend_retention(key, retention).await
    }

    fn list_uploads(&self, prefix: &str) -> UploadStream<'_> {
        self.inner.list_uploads(prefix)
    }

    async fn head(&self, key: &str) -> offsite_storage::Result<ObjectMeta> {
        head(&self.inner, key).await
    }

    async fn get(&self, key: &str, range: Option<GetRange>) -> offsite_storage::Result<GetResult> {
        get_at(&self.inner, key, range, None).await
    }

    async fn get_version(
        &self,
        key: &str,
        version: &str,
        range: Option<GetRange>,
    ) -> offsite_storage::Result<GetResult> {
        get_at(&self.inner, key, range, Some(version)).await
    }

    async fn writer(
        &self,
        key: &str,
        options: PutOptions,
    ) -> offsite_storage::Result<Box<dyn ObjectWriter>> {
        self.inner.check_key(key, Operation::Put)?;
        storage_class(&options, key)?;
        let part_size = part_size_for(options.size_hint, self.inner.cfg.part_size, LIMITS);
        Ok(Box::new(MultipartWriter::new(
            PROVIDER,
            key,
            self.inner.clone(),
            options,
            part_size,
            self.inner.cfg.concurrency,
            self.inner.retry.clone(),
        )))
    }

    fn list(&self, prefix: &str) -> ListStream<'_> {
        let i = &self.inner;
        let full = offsite_storage::listing_prefix(&i.cfg.prefix, prefix);
        offsite_storage::flatten_pages(stream::try_unfold(Some(None::<String>), move |token| {
            let full = full.clone();
            async move {
                let Some(token) = token else { return Ok(None) };
                let page = i
                    .retry
                    .run(|| async {
                        i.client
                            .list_objects_v2()
                            .bucket(&i.cfg.bucket)
                            .prefix(&full)
                            .set_continuation_token(token.clone())
                            .send()
                            .await
                            .map_err(|e| map(e, Operation::List, &i.ctx(&full)))
                    })
                    .await?;
                let items: Vec<ObjectMeta> = page
                    .contents()
                    .iter()
                    .filter_map(|o| {
                        let key = i.cfg.relative_key(o.key()?)?;
                        let mut m = ObjectMeta::new(key, o.size().unwrap_or(0) as u64);
                        m.last_modified = o.last_modified().and_then(from_smithy_time);
                        m.etag = o.e_tag().map(str::to_string);
                        m.storage_class = o.storage_class().map(|c| c.as_str().to_string());
                        Some(m)
                    })
                    .collect();
                let next = match (page.is_truncated(), page.next_continuation_token()) {
                    (Some(true), Some(t)) => Some(Some(t.to_string())),
                    _ => None,
                };
                Ok(Some((items, next)))
            }
        }))
    }

    async fn delete(&self, key: &str) -> offsite_storage::Result<()> {
        let i = &self.inner;
        let full = i.check_key(key, Operation::Delete)?;
        // By version id: on a versioned (Object Lock) bucket a plain delete only adds a delete
        // marker over data that stays, and would hide a lock refusal.
        let meta = head(i, key).await?;
        // Idempotent by version id: a retry after a delete whose answer was lost succeeds too.
        let res = i
            .retry
            .run(|| async {
                i.client
                    .delete_object()
                    .bucket(&i.cfg.bucket)
                    .key(&full)
                    .set_version_id(meta.version.clone())
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::Delete, &i.ctx(key)))
            })
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                let location = format!("s3://{}", i.cfg.bucket);
                Err(adapter::delete_refused(e, &meta, PROVIDER, &location, key))
            }
        }
    }

    async fn copy(
        &self,
        from: &str,
        to: &str,
        options: PutOptions,
    ) -> offsite_storage::Result<Receipt> {
        let i = &self.inner;
        let src = i.check_key(from, Operation::Copy)?;
        let size = head(i, from).await?.size;
        copy_between(i, &i.cfg.bucket, &src, size, to, options).await
    }

    fn sequential(&self) -> Option<std::sync::Arc<dyn offsite_storage::Sequential>> {
        None
    }

    fn multipart(&self) -> Option<Arc<dyn Multipart>> {
        Some(self.inner.clone())
    }

    async fn thaw(&self, key: &str, days: u32) -> offsite_storage::Result<()> {
        let i = &self.inner;
        let full = i.check_key(key, Operation::Get)?;
        let req = RestoreRequest::builder()
            .days(days.max(1) as i32)
            .glacier_job_parameters(
                GlacierJobParameters::builder()
                    .tier(Tier::Standard)
                    .build()
                    .map_err(|e| {
                        Error::new(ErrorKind::Other, PROVIDER, Operation::Get, e.to_string())
                    })?,
            )
            .build();
        // Retried: a second request after a lost answer is RestoreAlreadyInProgress, success.
        let res = i
            .retry
            .run(|| async {
                i.client
                    .restore_object()
                    .bucket(&i.cfg.bucket)
                    .key(&full)
                    .restore_request(req.clone())
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::Get, &i.ctx(key)))
            })
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("RestoreAlreadyInProgress") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// GetObject, of the current version or of `version`.
async fn get_at(
    i: &Inner,
    key: &str,
    range: Option<GetRange>,
    version: Option<&str>,
) -> offsite_storage::Result<GetResult> {
    let full = i.check_key(key, Operation::Get)?;
    let (header, want) = match &range {
        None => (None, None),
        Some(GetRange::From(s)) => (Some(format!("bytes={s}-")), None),
        Some(GetRange::Bounded(r)) if r.start > r.end => {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                PROVIDER,
                Operation::Get,
                "range end before start",
            )
            .with_key(key))
        }
        Some(GetRange::Bounded(r)) if r.start == r.end => {
            let meta = head(i, key).await?;
            let r = GetRange::Bounded(r.clone()).resolve(meta.size, PROVIDER, key)?;
            return Ok(adapter::empty_get(meta, r));
        }
        Some(GetRange::Bounded(r)) => (
            Some(format!("bytes={}-{}", r.start, r.end - 1)),
            Some(r.end - r.start),
        ),
    };
    let out = i
        .retry
        .run(|| async {
            i.client
                .get_object()
                .bucket(&i.cfg.bucket)
                .key(&full)
                .set_range(header.clone())
                .set_version_id(version.map(str::to_string))
                .send()
                .await
                .map_err(|e| {
                    let e = map(e, Operation::Get, &i.ctx(key));
                    if e.code() == Some("InvalidRange") {
                        Error::new(
                            ErrorKind::InvalidConfig,
                            PROVIDER,
                            Operation::Get,
                            "range outside the object",
                        )
                        .with_key(key)
                    } else {
                        e
                    }
                })
        })
        .await?;
    let len = out.content_length().unwrap_or(0) as u64;
    // Content-Range: bytes START-END/TOTAL.
    let (start, total) = match out.content_range().and_then(|c| c.strip_prefix("bytes ")) {
        Some(cr) => {
            let (span, total) = cr.split_once('/').unwrap_or((cr, "0"));
            let start = span
                .split('-')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0u64);
            (start, total.parse().unwrap_or(start + len))
        }
        None => (0, len),
    };
    if want.is_some_and(|w| w != len) {
        return Err(Error::new(
            ErrorKind::InvalidConfig,
            PROVIDER,
            Operation::Get,
            format!("range outside the object's {total} bytes"),
        )
        .with_key(key));
    }
    let meta = meta_from_get(key, total, &out);
    let ctx_key = key.to_string();
    let location = format!("s3://{}", i.cfg.bucket);
    let body = stream::try_unfold(out.body, move |mut body| {
        let ctx_key = ctx_key.clone();
        let location = location.clone();
        async move {
            match body.try_next().await {
                Ok(Some(b)) => Ok(Some((b, body))),
                Ok(None) => Ok(None),
                Err(e) => Err(adapter::download_broke_off(
                    PROVIDER,
                    &location,
                    &ctx_key,
                    &e.to_string(),
                )),
            }
        }
    });
    Ok(GetResult {
        meta,
        range: start..start + len,
        stream: body.boxed(),
    })
}
