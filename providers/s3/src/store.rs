//! `S3Store`: the Storage contract and the multipart primitives on S3.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart,
    GlacierJobParameters, ObjectLockMode, RestoreRequest, ServerSideEncryption, StorageClass, Tier,
};
use aws_sdk_s3::Client;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use offsite_storage::{
    composite_sha256, part_size_for, Capabilities, Checksum, Error, ErrorKind, GetRange, GetResult,
    ListStream, LockMode, Multipart, MultipartWriter, ObjectMeta, ObjectWriter, Operation, Part,
    PartLimits, PartReceipt, PutOptions, Receipt, Retention, RetryPolicy, Storage,
};

use crate::config::S3Config;
use crate::error::{map, Ctx};

const PROVIDER: &str = "s3";

/// S3's multipart limits.
pub const LIMITS: PartLimits = PartLimits {
    min_part_size: 5 << 20,
    max_part_size: 5 << 30,
    max_parts: 10_000,
};

/// Storage classes S3 accepts.
const CLASSES: &[&str] = &[
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
    "REDUCED_REDUNDANCY",
];

struct Inner {
    client: Client,
    cfg: S3Config,
    region: String,
    url: String,
    retry: RetryPolicy,
    /// Objects larger than this are copied part by part (UploadPartCopy); CopyObject takes at
    /// most 5 GiB.
    copy_part_threshold: u64,
}

/// CopyObject's limit.
const COPY_OBJECT_MAX: u64 = 5 << 30;

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
        let (client, region) = crate::client::build(&cfg).await;
        S3Store {
            inner: Arc::new(Inner {
                client,
                cfg,
                region,
                url: url.to_string(),
                retry: RetryPolicy::default(),
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
        let (client, region) = crate::client::build_with(&cfg, Some(creds)).await;
        S3Store {
            inner: Arc::new(Inner {
                client,
                cfg,
                region,
                url: url.to_string(),
                retry: RetryPolicy::default(),
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
        let src_full = source.inner.check_key(from, Operation::Copy)?;
        let size = head(&source.inner, from).await?.size;
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
    /// versioned with Object Lock enabled.
    pub async fn create_bucket(&self, object_lock: bool) -> offsite_storage::Result<()> {
        let i = &self.inner;
        let mut req = i.client.create_bucket().bucket(&i.cfg.bucket);
        if object_lock {
            req = req.object_lock_enabled_for_bucket(true);
        }
        if i.region != "us-east-1" {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        i.region.as_str(),
                    ))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(map(e, Operation::Open, &i.ctx(""))),
        }
    }

    /// The bucket's region as the client uses it.
    pub fn region(&self) -> &str {
        &self.inner.region
    }
}

impl Inner {
    fn ctx<'a>(&'a self, key: &'a str) -> Ctx<'a> {
        Ctx {
            bucket: &self.cfg.bucket,
            region: &self.region,
            key,
        }
    }

    fn check_key(&self, key: &str, op: Operation) -> offsite_storage::Result<String> {
        offsite_storage::validate_key(key, PROVIDER, op)?;
        Ok(self.cfg.full_key(key))
    }

    fn storage_class(
        &self,
        opts: &PutOptions,
        key: &str,
    ) -> offsite_storage::Result<Option<StorageClass>> {
        match &opts.storage_class {
            None => Ok(None),
            Some(c) if CLASSES.contains(&c.as_str()) => Ok(Some(StorageClass::from(c.as_str()))),
            Some(c) => Err(Error::new(
                ErrorKind::InvalidConfig,
                PROVIDER,
                Operation::Put,
                format!("{c:?} is not an S3 storage class"),
            )
            .with_key(key)
            .with_hint(format!("use one of {}", CLASSES.join(", ")))),
        }
    }
}

fn to_smithy_time(t: &DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(t.timestamp())
}

fn from_smithy_time(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// S3's SHA-256 report (`base64` or `base64-N`) as a checksum.
fn sha256_checksum(value: &str, kind: Option<&ChecksumType>) -> Option<Checksum> {
    let (b64, parts) = match value.split_once('-') {
        Some((b, n)) => (b, n.parse::<u32>().ok()),
        None => (value, None),
    };
    let hex = hex::encode(B64.decode(b64).ok()?);
    match (parts, kind) {
        (Some(parts), _) => Some(Checksum::Sha256Composite { hex, parts }),
        (None, Some(ChecksumType::Composite)) => Some(Checksum::Sha256Composite { hex, parts: 0 }),
        _ => Some(Checksum::Sha256(hex)),
    }
}

fn lock_mode(m: LockMode) -> ObjectLockMode {
    match m {
        LockMode::Governance => ObjectLockMode::Governance,
        LockMode::Compliance => ObjectLockMode::Compliance,
    }
}

/// Applies the options every write shares; a macro because each SDK builder is its own type.
macro_rules! put_options {
    ($req:expr, $inner:expr, $opts:expr, $key:expr) => {{
        let mut req = $req.set_storage_class($inner.storage_class($opts, $key)?);
        if let Some(k) = &$inner.cfg.sse_kms_key {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        if let Some(r) = &$opts.retention {
            req = req
                .object_lock_mode(lock_mode(r.mode))
                .object_lock_retain_until_date(to_smithy_time(&r.retain_until));
        }
        if $opts.legal_hold {
            req =
                req.object_lock_legal_hold_status(aws_sdk_s3::types::ObjectLockLegalHoldStatus::On);
        }
        for (k, v) in &$opts.metadata {
            req = req.metadata(k, v);
        }
        if let Some(ct) = &$opts.content_type {
            req = req.content_type(ct);
        }
        req
    }};
}

#[async_trait]
impl Multipart for Inner {
    fn limits(&self) -> PartLimits {
        LIMITS
    }

    async fn create_upload(
        &self,
        key: &str,
        options: &PutOptions,
    ) -> offsite_storage::Result<String> {
        let full = self.check_key(key, Operation::Put)?;
        let req = self
            .client
            .create_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(&full)
            .checksum_algorithm(ChecksumAlgorithm::Sha256);
        let req = put_options!(req, self, options, key);
        let out = req
            .send()
            .await
            .map_err(|e| map(e, Operation::Put, &self.ctx(key)))?;
        out.upload_id().map(str::to_string).ok_or_else(|| {
            Error::new(
                ErrorKind::Other,
                PROVIDER,
                Operation::Put,
                "CreateMultipartUpload returned no upload id",
            )
            .with_key(key)
        })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part: Part,
    ) -> offsite_storage::Result<PartReceipt> {
        let full = self.cfg.full_key(key);
        let size = part.data.len() as u64;
        let out = self
            .client
            .upload_part()
            .bucket(&self.cfg.bucket)
            .key(&full)
            .upload_id(upload_id)
            .part_number(part.number as i32)
            .content_length(size as i64)
            // The SDK computes and sends the part's SHA-256 (servers differ in which form they
            // keep: TESTING.md); the server checks it, and we check its answer against ours.
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(part.data))
            .send()
            .await
            .map_err(|e| map(e, Operation::Put, &self.ctx(key)))?;
        if let Some(theirs) = out.checksum_sha256().and_then(|c| B64.decode(c).ok()) {
            if theirs != part.sha256 {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    PROVIDER,
                    Operation::Put,
                    format!(
                        "part {} was stored with a different SHA-256 than was read",
                        part.number
                    ),
                )
                .with_key(key)
                .retryable(true));
            }
        }
        Ok(PartReceipt {
            number: part.number,
            size,
            sha256: part.sha256,
            token: out.e_tag().map(str::to_string),
        })
    }

    async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> offsite_storage::Result<Vec<PartReceipt>> {
        let full = self.cfg.full_key(key);
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_parts()
                .bucket(&self.cfg.bucket)
                .key(&full)
                .upload_id(upload_id)
                .set_part_number_marker(marker.clone())
                .send()
                .await
                .map_err(|e| map(e, Operation::Put, &self.ctx(key)))?;
            for p in page.parts() {
                let sha: Option<[u8; 32]> = p
                    .checksum_sha256()
                    .and_then(|c| B64.decode(c.split('-').next().unwrap_or(c)).ok())
                    .and_then(|v| v.try_into().ok());
                if let (Some(n), Some(sha256)) = (p.part_number(), sha) {
                    out.push(PartReceipt {
                        number: n as u32,
                        size: p.size().unwrap_or(0) as u64,
                        sha256,
                        token: p.e_tag().map(str::to_string),
                    });
                }
            }
            match (page.is_truncated(), page.next_part_number_marker()) {
                (Some(true), Some(m)) if !m.is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<PartReceipt>,
        options: &PutOptions,
    ) -> offsite_storage::Result<Receipt> {
        let full = self.cfg.full_key(key);
        // Checked first as well: some S3-compatible servers ignore If-None-Match.
        if options.if_not_exists && exists(self, key).await? {
            return Err(already_exists(key));
        }
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        CompletedPart::builder()
                            .part_number(p.number as i32)
                            .set_e_tag(p.token.clone())
                            .checksum_sha256(B64.encode(p.sha256))
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let mut req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(&full)
            .upload_id(upload_id)
            .multipart_upload(completed);
        if options.if_not_exists {
            req = req.if_none_match("*");
        }
        let out = req
            .send()
            .await
            .map_err(|e| self.put_error(e, key, options))?;
        let size = parts.iter().map(|p| p.size).sum();
        // What the server reports: the composite of the part digests (AWS, moto) or a digest
        // of the whole object (some S3-compatible servers). Tell them apart by computing ours.
        let ours = composite_sha256(&parts);
        let checksum = out.checksum_sha256().and_then(|v| {
            let b64 = v.split('-').next().unwrap_or(v);
            let raw = B64.decode(b64).ok()?;
            if raw == ours {
                Some(Checksum::Sha256Composite {
                    hex: hex::encode(raw),
                    parts: parts.len() as u32,
                })
            } else {
                sha256_checksum(v, out.checksum_type())
            }
        });
        // Some servers (moto) answer without a checksum but report one on HEAD: the receipt
        // carries what the provider will report from now on.
        let checksum = match checksum {
            Some(c) => Some(c),
            None => head(self, key).await?.checksum.map(|c| match c {
                Checksum::Sha256(h) if h == hex::encode(ours) => Checksum::Sha256Composite {
                    hex: h,
                    parts: parts.len() as u32,
                },
                other => other,
            }),
        };
        let mut r = Receipt::new(key, size, checksum);
        r.etag = out.e_tag().map(str::to_string);
        r.version = out.version_id().map(str::to_string);
        Ok(r)
    }

    fn abort_discards_parts(&self) -> bool {
        true
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> offsite_storage::Result<()> {
        let full = self.cfg.full_key(key);
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(&full)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = map(e, Operation::Put, &self.ctx(key));
                if e.kind() == ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn put_whole(
        &self,
        key: &str,
        part: Part,
        options: &PutOptions,
    ) -> offsite_storage::Result<Receipt> {
        let full = self.check_key(key, Operation::Put)?;
        let size = part.data.len() as u64;
        let req = self
            .client
            .put_object()
            .bucket(&self.cfg.bucket)
            .key(&full)
            .content_length(size as i64)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(part.data));
        let mut req = put_options!(req, self, options, key);
        if options.if_not_exists {
            // Checked first as well: some S3-compatible servers ignore If-None-Match.
            if exists(self, key).await? {
                return Err(already_exists(key));
            }
            req = req.if_none_match("*");
        }
        let out = req
            .send()
            .await
            .map_err(|e| self.put_error(e, key, options))?;
        // What the server reports, or nothing: a receipt never carries our own digest as the
        // provider's (the commit compares it with ours).
        let checksum = out
            .checksum_sha256()
            .and_then(|v| sha256_checksum(v, out.checksum_type()));
        let mut r = Receipt::new(key, size, checksum);
        r.etag = out.e_tag().map(str::to_string);
        r.version = out.version_id().map(str::to_string);
        Ok(r)
    }
}

impl Inner {
    /// A failed write's error; with `if_not_exists`, a failed If-None-Match is `AlreadyExists`.
    fn put_error<E>(
        &self,
        err: aws_sdk_s3::error::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
        key: &str,
        options: &PutOptions,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let e = map(err, Operation::Put, &self.ctx(key));
        if options.if_not_exists && e.kind() == ErrorKind::PreconditionFailed {
            already_exists(key)
        } else {
            e
        }
    }
}

fn already_exists(key: &str) -> Error {
    Error::already_exists(PROVIDER, key)
}

async fn exists(inner: &Inner, key: &str) -> offsite_storage::Result<bool> {
    match head(inner, key).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

async fn head(inner: &Inner, key: &str) -> offsite_storage::Result<ObjectMeta> {
    let full = inner.check_key(key, Operation::Head)?;
    let out = inner
        .retry
        .run(|| async {
            inner
                .client
                .head_object()
                .bucket(&inner.cfg.bucket)
                .key(&full)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .map_err(|e| map(e, Operation::Head, &inner.ctx(key)))
        })
        .await?;
    let mut m = ObjectMeta::new(key, out.content_length().unwrap_or(0) as u64);
    m.last_modified = out.last_modified().and_then(from_smithy_time);
    m.etag = out.e_tag().map(str::to_string);
    m.checksum = out
        .checksum_sha256()
        .and_then(|v| sha256_checksum(v, out.checksum_type()))
        .or_else(|| {
            out.checksum_crc64_nvme()
                .map(|v| Checksum::Crc64Nvme(v.to_string()))
        });
    m.metadata = out
        .metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    m.storage_class = out.storage_class().map(|c| c.as_str().to_string());
    m.version = out
        .version_id()
        .filter(|v| *v != "null")
        .map(str::to_string);
    m.legal_hold = out.object_lock_legal_hold_status()
        == Some(&aws_sdk_s3::types::ObjectLockLegalHoldStatus::On);
    if let (Some(mode), Some(until)) = (out.object_lock_mode(), out.object_lock_retain_until_date())
    {
        if let Some(retain_until) = from_smithy_time(until) {
            let mode = if *mode == ObjectLockMode::Compliance {
                LockMode::Compliance
            } else {
                LockMode::Governance
            };
            m.retention = Some(Retention { mode, retain_until });
        }
    }
    Ok(m)
}

#[async_trait]
impl Storage for S3Store {
    fn url(&self) -> &str {
        &self.inner.url
    }

    fn provider(&self) -> &'static str {
        PROVIDER
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
        c
    }

    async fn head(&self, key: &str) -> offsite_storage::Result<ObjectMeta> {
        head(&self.inner, key).await
    }

    async fn get(&self, key: &str, range: Option<GetRange>) -> offsite_storage::Result<GetResult> {
        let i = &self.inner;
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
                let r = range
                    .clone()
                    .expect("some")
                    .resolve(meta.size, PROVIDER, key)?;
                return Ok(GetResult {
                    meta,
                    range: r,
                    stream: stream::empty().boxed(),
                });
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
                    .send()
                    .await
                    .map_err(|e| {
                        let e = map(e, Operation::Get, &i.ctx(key));
                        if e.message().contains("InvalidRange") {
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
        let mut meta = ObjectMeta::new(key, total);
        meta.last_modified = out.last_modified().and_then(from_smithy_time);
        meta.etag = out.e_tag().map(str::to_string);
        meta.metadata = out
            .metadata()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        meta.storage_class = out.storage_class().map(|c| c.as_str().to_string());
        meta.version = out
            .version_id()
            .filter(|v| *v != "null")
            .map(str::to_string);
        let ctx_key = key.to_string();
        let bucket = i.cfg.bucket.clone();
        let body = stream::try_unfold(out.body, move |mut body| {
            let ctx_key = ctx_key.clone();
            let bucket = bucket.clone();
            async move {
                match body.try_next().await {
                    Ok(Some(b)) => Ok(Some((b, body))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(Error::new(
                        ErrorKind::Transient,
                        PROVIDER,
                        Operation::Get,
                        format!("s3://{bucket}: the download broke off: {e}"),
                    )
                    .with_key(ctx_key)),
                }
            }
        });
        Ok(GetResult {
            meta,
            range: start..start + len,
            stream: body.boxed(),
        })
    }

    async fn writer(
        &self,
        key: &str,
        options: PutOptions,
    ) -> offsite_storage::Result<Box<dyn ObjectWriter>> {
        self.inner.check_key(key, Operation::Put)?;
        self.inner.storage_class(&options, key)?;
        let part_size = part_size_for(options.size_hint, self.inner.cfg.part_size, LIMITS);
        Ok(Box::new(MultipartWriter::new(
            PROVIDER,
            key,
            self.inner.clone(),
            options,
            part_size,
            self.inner.cfg.concurrency,
            self.inner.retry,
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
        let res = i
            .client
            .delete_object()
            .bucket(&i.cfg.bucket)
            .key(&full)
            .set_version_id(meta.version.clone())
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = map(e, Operation::Delete, &i.ctx(key));
                if meta.legal_hold && e.kind() == ErrorKind::PermissionDenied {
                    return Err(Error::new(
                        ErrorKind::Locked,
                        PROVIDER,
                        Operation::Delete,
                        format!("s3://{}: the object is under a legal hold", i.cfg.bucket),
                    )
                    .with_key(key)
                    .with_hint("it cannot be deleted until the hold is released"));
                }
                match (&meta.retention, e.kind()) {
                    (Some(r), ErrorKind::PermissionDenied) if r.retain_until > Utc::now() => {
                        Err(Error::new(
                            ErrorKind::Locked,
                            PROVIDER,
                            Operation::Delete,
                            format!(
                                "s3://{}: the object is under a {:?} lock until {}",
                                i.cfg.bucket,
                                r.mode,
                                r.retain_until.format("%Y-%m-%dT%H:%M:%SZ")
                            ),
                        )
                        .with_key(key)
                        .with_hint(
                            "it cannot be deleted before then; that is what the lock is for",
                        ))
                    }
                    _ => Err(e),
                }
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
        match i
            .client
            .restore_object()
            .bucket(&i.cfg.bucket)
            .key(&full)
            .restore_request(req)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("RestoreAlreadyInProgress") => Ok(()),
            Err(e) => Err(map(e, Operation::Get, &i.ctx(key))),
        }
    }
}

/// Copies `src_bucket/src_full` (of `size` bytes) to `to` in `dst`'s bucket, server-side.
async fn copy_between(
    dst: &Inner,
    src_bucket: &str,
    src_full: &str,
    size: u64,
    to: &str,
    options: PutOptions,
) -> offsite_storage::Result<Receipt> {
    let dst_full = dst.check_key(to, Operation::Copy)?;
    if options.if_not_exists && exists(dst, to).await? {
        return Err(already_exists(to));
    }
    let copy_source = format!("{src_bucket}/{}", encode_key(src_full));
    let class = dst.storage_class(&options, to)?;
    if size > dst.copy_part_threshold {
        return copy_in_parts(dst, &copy_source, size, to, &dst_full, &options).await;
    }
    let mut req = dst
        .client
        .copy_object()
        .bucket(&dst.cfg.bucket)
        .key(&dst_full)
        .copy_source(&copy_source)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .set_storage_class(class);
    if !options.metadata.is_empty() {
        req = req.metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace);
        for (k, v) in &options.metadata {
            req = req.metadata(k, v);
        }
    }
    if let Some(r) = &options.retention {
        req = req
            .object_lock_mode(lock_mode(r.mode))
            .object_lock_retain_until_date(to_smithy_time(&r.retain_until));
    }
    if let Some(k) = &dst.cfg.sse_kms_key {
        req = req
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(k);
    }
    let out = req
        .send()
        .await
        .map_err(|e| map(e, Operation::Copy, &dst.ctx(to)))?;
    let checksum = out.copy_object_result().and_then(|r| {
        r.checksum_sha256()
            .and_then(|v| sha256_checksum(v, r.checksum_type()))
    });
    let mut r = Receipt::new(to, size, checksum);
    r.version = out.version_id().map(str::to_string);
    Ok(r)
}

/// UploadPartCopy for objects above the CopyObject limit.
async fn copy_in_parts(
    dst: &Inner,
    copy_source: &str,
    size: u64,
    to: &str,
    dst_full: &str,
    options: &PutOptions,
) -> offsite_storage::Result<Receipt> {
    let part = part_size_for(Some(size), dst.copy_part_threshold.min(512 << 20), LIMITS);
    let req = dst
        .client
        .create_multipart_upload()
        .bucket(&dst.cfg.bucket)
        .key(dst_full);
    let req = put_options!(req, dst, options, to);
    let created = req
        .send()
        .await
        .map_err(|e| map(e, Operation::Copy, &dst.ctx(to)))?;
    let id = created.upload_id().unwrap_or_default().to_string();
    let abort = || async {
        let _ = dst
            .client
            .abort_multipart_upload()
            .bucket(&dst.cfg.bucket)
            .key(dst_full)
            .upload_id(&id)
            .send()
            .await;
    };
    let mut parts = Vec::new();
    let mut start = 0u64;
    let mut number = 1i32;
    while start < size {
        let end = (start + part).min(size) - 1;
        let res = dst
            .retry
            .run(|| async {
                dst.client
                    .upload_part_copy()
                    .bucket(&dst.cfg.bucket)
                    .key(dst_full)
                    .upload_id(&id)
                    .part_number(number)
                    .copy_source(copy_source)
                    .copy_source_range(format!("bytes={start}-{end}"))
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::Copy, &dst.ctx(to)))
            })
            .await;
        let out = match res {
            Ok(o) => o,
            Err(e) => {
                abort().await;
                return Err(e);
            }
        };
        let etag = out
            .copy_part_result()
            .and_then(|r| r.e_tag())
            .map(str::to_string);
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(etag)
                .build(),
        );
        start = end + 1;
        number += 1;
    }
    let out = dst
        .client
        .complete_multipart_upload()
        .bucket(&dst.cfg.bucket)
        .key(dst_full)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await;
    match out {
        Ok(out) => {
            let mut r = Receipt::new(to, size, None);
            r.etag = out.e_tag().map(str::to_string);
            r.version = out.version_id().map(str::to_string);
            Ok(r)
        }
        Err(e) => {
            abort().await;
            Err(map(e, Operation::Copy, &dst.ctx(to)))
        }
    }
}

/// Percent-encodes a key for `x-amz-copy-source`, keeping `/`.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
