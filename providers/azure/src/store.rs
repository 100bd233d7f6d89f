//! `AzureStore`: the Storage contract and block-blob multipart primitives on Azure Blob.

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::RequestContent;
use azure_core::time::OffsetDateTime;
use azure_storage_blob::models::{
    AccessTier, BlobClientDeleteOptions, BlobClientDownloadOptions,
    BlobClientGetPropertiesResultHeaders, BlobClientSetTierOptions,
    BlobContainerClientListBlobsOptions, BlockBlobClientCommitBlockListOptions,
    BlockBlobClientCommitBlockListResultHeaders, BlockBlobClientStageBlockOptions,
    BlockBlobClientUploadOptions, BlockListType, BlockLookupList, CopyStatus, HttpRange,
    ImmutabilityPolicyMode, RehydratePriority,
};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use md5::Digest as _;
use offsite_storage::adapter;
use offsite_storage::{
    Capabilities, Checksum, CreateOptions, Error, ErrorKind, GetRange, GetResult, ListStream,
    LockMode, Multipart, MultipartWriter, ObjectMeta, ObjectWriter, Operation, Part, PartLimits,
    PartReceipt, PutOptions, Receipt, Result, Retention, Sequential, Storage,
};

use crate::client::{Inner, PROVIDER};
use crate::config::AzureConfig;
use crate::error::{map, Ctx};

/// Block blob limits.
pub const LIMITS: PartLimits = PartLimits {
    min_part_size: 1,
    max_part_size: 4000 << 20,
    max_parts: 50_000,
};

/// Access tiers offsite accepts.
const TIERS: &[&str] = match offsite_storage::Scheme::Azure.storage_classes() {
    Some((c, _)) => c,
    None => &[],
};

/// Block id bytes: upload id (8) + block number (4, big-endian) + the block's SHA-256 (32).
const BLOCK_ID_LEN: usize = 44;

/// A container and prefix on Azure Blob Storage.
#[derive(Clone)]
pub struct AzureStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AzureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureStore")
            .field("url", &self.inner.url)
            .field("auth", &self.inner.cfg.auth)
            .finish_non_exhaustive()
    }
}

impl AzureStore {
    /// Opens a location with the credentials the environment provides (see the crate docs).
    pub fn open(cfg: AzureConfig, url: &str) -> Result<AzureStore> {
        Ok(AzureStore {
            inner: Arc::new(crate::client::build(cfg, url)?),
        })
    }

    /// Whether [`AzureStore::copy_from`] can copy from `other` server-side: the same account.
    pub fn same_service(&self, other: &AzureStore) -> bool {
        self.inner.cfg.account == other.inner.cfg.account
            && self.inner.cfg.endpoint == other.inner.cfg.endpoint
    }

    /// Server-side copy (Copy Blob) from another container of the same storage account; the
    /// bytes never pass through this process. Another account is `Unsupported` (its blob would
    /// need a SAS URL as the copy source): stream the copy instead.
    pub async fn copy_from(
        &self,
        source: &AzureStore,
        from: &str,
        to: &str,
        options: PutOptions,
    ) -> Result<Receipt> {
        if !self.same_service(source) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                PROVIDER,
                Operation::Copy,
                "a server-side copy between storage accounts needs a SAS source URL",
            )
            .with_key(to)
            .with_hint("copy through this process (a streamed copy) instead"));
        }
        self.copy_blob(&source.inner, from, to, options).await
    }

    /// Copy Blob from `source` (this store's container, or another container of the same
    /// account) to `to` here, polled until the service says it is complete.
    async fn copy_blob(
        &self,
        source: &Inner,
        from: &str,
        to: &str,
        options: PutOptions,
    ) -> Result<Receipt> {
        let i = &self.inner;
        let src = source.blob(from, Operation::Copy)?;
        let dst = i.blob(to, Operation::Copy)?;
        if !options.metadata.is_empty() {
            // Never dropped silently: say so, as the GCS rewrite does.
            return Err(Error::new(
                ErrorKind::Unsupported,
                PROVIDER,
                Operation::Copy,
                "Copy Blob keeps the source blob's metadata; offsite cannot set other metadata on a copy",
            )
            .with_key(to)
            .with_hint("copy without metadata, or upload the object instead of copying it"));
        }
        let source_meta = source.head(from).await?;
        if options.if_not_exists {
            match i.head(to).await {
                Ok(_) => return Err(Error::already_exists(PROVIDER, to)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        dst.start_copy_from_url(src.url().to_string(), None)
            .await
            .map_err(|e| map(e, Operation::Copy, &source.ctx(from)))?;
        // Copy Blob within an account is usually done at once; poll until it is, and fail
        // (never report success) when it is still pending after two minutes.
        let mut complete = false;
        for _ in 0..600 {
            let props = dst
                .get_properties(None)
                .await
                .map_err(|e| map(e, Operation::Copy, &i.ctx(to)))?;
            match props
                .copy_status()
                .map_err(|e| map(e, Operation::Copy, &i.ctx(to)))?
            {
                Some(CopyStatus::Pending) => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await
                }
                Some(CopyStatus::Success) | None => {
                    complete = true;
                    break;
                }
                Some(other) => {
                    return Err(Error::new(
                        ErrorKind::Other,
                        PROVIDER,
                        Operation::Copy,
                        format!("Copy Blob ended {other:?}"),
                    )
                    .with_key(to))
                }
            }
        }
        if !complete {
            return Err(Error::new(
                ErrorKind::Transient,
                PROVIDER,
                Operation::Copy,
                "Copy Blob is still pending after 120 s; the copy is not complete",
            )
            .with_key(to)
            .with_hint(
                "run the copy again later; the destination blob does not count until it completes",
            )
            .retryable(true));
        }
        if let Some(t) = tier(&options, to)? {
            dst.set_tier(t, None::<BlobClientSetTierOptions>)
                .await
                .map_err(|e| map(e, Operation::Copy, &i.ctx(to)))?;
        }
        // The copy carries the lock and hold asked for, or fails: never dropped silently.
        if let Some(r) = &options.retention {
            self.set_immutability(to, r).await?;
        }
        if options.legal_hold {
            self.set_legal_hold(to, true).await?;
        }
        Ok(Receipt::new(to, source_meta.size, source_meta.checksum))
    }

    /// Places or releases a legal hold on a blob (Set Blob Legal Hold).
    pub async fn set_legal_hold(&self, key: &str, hold: bool) -> Result<()> {
        let i = &self.inner;
        let blob = i.blob(key, Operation::Put)?;
        blob.set_legal_hold(hold, None)
            .await
            .map(|_| ())
            .map_err(|e| map(e, Operation::Put, &i.ctx(key)))
    }

    /// Sets a blob's immutability policy (Set Blob Immutability Policy): Unlocked for
    /// governance, Locked for compliance.
    pub async fn set_immutability(&self, key: &str, retention: &Retention) -> Result<()> {
        self.inner
            .set_immutability(key, retention, Operation::Put)
            .await
    }
}

fn to_offset(t: &DateTime<Utc>) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.timestamp()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn from_offset(t: &OffsetDateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.unix_timestamp(), 0)
}

fn policy_mode(m: LockMode) -> ImmutabilityPolicyMode {
    match m {
        LockMode::Governance => ImmutabilityPolicyMode::Unlocked,
        LockMode::Compliance => ImmutabilityPolicyMode::Locked,
    }
}

fn tier(opts: &PutOptions, key: &str) -> Result<Option<AccessTier>> {
    let given = opts.storage_class.as_deref();
    adapter::check_storage_class(PROVIDER, key, given, TIERS, "an Azure access tier")?;
    Ok(given.map(|t| {
        let Ok(tier) = t.parse::<AccessTier>();
        tier
    }))
}

impl Inner {
    fn ctx<'a>(&'a self, key: &'a str) -> Ctx<'a> {
        Ctx {
            account: &self.cfg.account,
            container: &self.cfg.container,
            key,
            auth: self.cfg.auth.method(),
        }
    }

    /// Set Blob Immutability Policy; `op` names the operation in errors.
    async fn set_immutability(
        &self,
        key: &str,
        retention: &Retention,
        op: Operation,
    ) -> Result<()> {
        let blob = self.blob(key, op)?;
        let opts = azure_storage_blob::models::BlobClientSetImmutabilityPolicyOptions {
            immutability_policy_mode: Some(policy_mode(retention.mode)),
            ..Default::default()
        };
        blob.set_immutability_policy(&to_offset(&retention.retain_until), Some(opts))
            .await
            .map(|_| ())
            .map_err(|e| map(e, op, &self.ctx(key)))
    }

    fn blob(&self, key: &str, op: Operation) -> Result<azure_storage_blob::BlobClient> {
        offsite_storage::validate_key(key, PROVIDER, op)?;
        Ok(self.container.blob_client(&self.cfg.full_key(key)))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let blob = self.blob(key, Operation::Head)?;
        let resp = self
            .retry
            .run(|| async {
                blob.get_properties(None)
                    .await
                    .map_err(|e| map(e, Operation::Head, &self.ctx(key)))
            })
            .await?;
        let bad = |e: azure_core::Error| map(e, Operation::Head, &self.ctx(key));
        let mut m = ObjectMeta::new(key, resp.content_length().map_err(bad)?.unwrap_or(0));
        m.last_modified = resp
            .last_modified()
            .map_err(bad)?
            .as_ref()
            .and_then(from_offset);
        m.etag = resp.etag().map_err(bad)?.map(|e| e.to_string());
        m.checksum = resp
            .content_md5()
            .map_err(bad)?
            .map(|md5| Checksum::Md5(B64.encode(md5)));
        m.storage_class = resp.access_tier().map_err(bad)?;
        m.metadata = decode_metadata(resp.metadata().map_err(bad)?);
        m.version = resp.version_id().map_err(bad)?;
        m.legal_hold = resp.legal_hold().map_err(bad)?.unwrap_or(false);
        if let Some(until) = resp
            .immutability_policy_expires_on()
            .map_err(bad)?
            .as_ref()
            .and_then(from_offset)
        {
            let mode = match resp.immutability_policy_mode().map_err(bad)? {
                Some(ImmutabilityPolicyMode::Locked) => LockMode::Compliance,
                _ => LockMode::Governance,
            };
            m.retention = Some(Retention {
                mode,
                retain_until: until,
            });
        }
        Ok(m)
    }
}

/// Azure metadata names must be C# identifiers; offsite's keys may hold `-`. Names are written
/// as `o_` + the key with `_` as `_u` and `-` as `_h`, and read back the same way.
fn encode_metadata(
    md: &offsite_storage::Metadata,
    key: &str,
) -> Result<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    for (k, v) in md {
        if !k
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                PROVIDER,
                Operation::Put,
                format!("metadata name {k:?} has characters Azure does not allow"),
            )
            .with_key(key));
        }
        out.insert(
            format!("o_{}", k.replace('_', "_u").replace('-', "_h")),
            v.clone(),
        );
    }
    Ok(out)
}

fn decode_metadata(md: std::collections::HashMap<String, String>) -> offsite_storage::Metadata {
    md.into_iter()
        .map(|(k, v)| match k.strip_prefix("o_") {
            Some(rest) => (rest.replace("_h", "-").replace("_u", "_"), v),
            None => (k, v),
        })
        .collect()
}

fn block_id(upload_id: &str, number: u32, sha256: &[u8; 32]) -> Vec<u8> {
    let mut id = Vec::with_capacity(BLOCK_ID_LEN);
    let raw = hex::decode(upload_id).unwrap_or_default();
    id.extend_from_slice(&raw[..raw.len().min(8)]);
    id.resize(8, 0);
    id.extend_from_slice(&number.to_be_bytes());
    id.extend_from_slice(sha256);
    id
}

#[async_trait]
impl Multipart for Inner {
    fn limits(&self) -> PartLimits {
        LIMITS
    }

    async fn create_upload(&self, key: &str, options: &PutOptions) -> Result<String> {
        self.blob(key, Operation::Put)?;
        tier(options, key)?;
        // Blocks live under the blob's name until a block list commits them; the id only
        // tells this upload's blocks from any other's.
        Ok(hex::encode(rand::random::<[u8; 8]>()))
    }

    async fn upload_part(&self, key: &str, upload_id: &str, part: Part) -> Result<PartReceipt> {
        let blob = self.blob(key, Operation::Put)?.block_blob_client();
        let id = block_id(upload_id, part.number, &part.sha256);
        let size = part.data.len() as u64;
        // Azure checks each block against its MD5 and refuses a corrupted one.
        let opts = BlockBlobClientStageBlockOptions {
            transactional_content_md5: Some(md5::Md5::digest(&part.data).to_vec()),
            ..Default::default()
        };
        blob.stage_block(&id, size, part.data.clone().into(), Some(opts))
            .await
            .map_err(|e| map(e, Operation::Put, &self.ctx(key)))?;
        Ok(PartReceipt {
            number: part.number,
            size,
            sha256: part.sha256,
            token: Some(B64.encode(&id)),
        })
    }

    async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Vec<PartReceipt>> {
        let blob = self.blob(key, Operation::Put)?.block_blob_client();
        let list = blob
            .get_block_list(BlockListType::Uncommitted, None)
            .await
            .map_err(|e| map(e, Operation::Put, &self.ctx(key)))?
            .into_model()
            .map_err(|e| map(e, Operation::Put, &self.ctx(key)))?;
        let prefix = hex::decode(upload_id).unwrap_or_default();
        let mut out = Vec::new();
        for b in list.uncommitted_blocks.unwrap_or_default() {
            let (Some(name), Some(size)) = (b.name, b.size) else {
                continue;
            };
            if name.len() != BLOCK_ID_LEN || !name.starts_with(&prefix) {
                continue;
            }
            let number = u32::from_be_bytes(name[8..12].try_into().expect("4 bytes"));
            let sha256: [u8; 32] = name[12..].try_into().expect("32 bytes");
            out.push(PartReceipt {
                number,
                size: size.max(0) as u64,
                sha256,
                token: Some(B64.encode(&name)),
            });
        }
        Ok(out)
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<PartReceipt>,
        options: &PutOptions,
    ) -> Result<Receipt> {
        let blob = self.blob(key, Operation::Put)?.block_blob_client();
        let ids: Vec<Vec<u8>> = parts
            .iter()
            .map(|p| block_id(upload_id, p.number, &p.sha256))
            .collect();
        let list = BlockLookupList {
            latest: Some(ids),
            ..Default::default()
        };
        let opts = BlockBlobClientCommitBlockListOptions {
            tier: tier(options, key)?,
            metadata: if options.metadata.is_empty() {
                None
            } else {
                Some(encode_metadata(&options.metadata, key)?)
            },
            immutability_policy_expiry: options
                .retention
                .as_ref()
                .map(|r| to_offset(&r.retain_until)),
            immutability_policy_mode: options.retention.as_ref().map(|r| policy_mode(r.mode)),
            legal_hold: options.legal_hold.then_some(true),
            if_none_match: options
                .if_not_exists
                .then(|| azure_core::http::Etag::from("*")),
            ..Default::default()
        };
        let content: RequestContent<BlockLookupList, _> =
            RequestContent::try_from(list).map_err(|e| map(e, Operation::Put, &self.ctx(key)))?;
        let resp = blob
            .commit_block_list(content, Some(opts))
            .await
            .map_err(|e| {
                let e = map(e, Operation::Put, &self.ctx(key));
                adapter::create_only(e, options.if_not_exists, PROVIDER, key)
            })?;
        // A block list has no server-computed whole-blob hash: only the size can be reported.
        let size = parts.iter().map(|p| p.size).sum();
        let mut receipt = Receipt::new(key, size, None);
        receipt.etag = resp.etag().ok().flatten().map(|e| e.to_string());
        Ok(receipt)
    }

    fn abort_discards_parts(&self) -> bool {
        false
    }

    async fn abort_upload(&self, _key: &str, _upload_id: &str) -> Result<()> {
        // Azure has no call that discards uncommitted blocks of a blob that does not exist;
        // they are never visible and Azure drops them after seven days.
        Ok(())
    }

    async fn put_whole(&self, key: &str, part: Part, options: &PutOptions) -> Result<Receipt> {
        let blob = self.blob(key, Operation::Put)?.block_blob_client();
        let size = part.data.len() as u64;
        let ours = md5::Md5::digest(&part.data).to_vec();
        let opts = BlockBlobClientUploadOptions {
            tier: tier(options, key)?,
            metadata: if options.metadata.is_empty() {
                None
            } else {
                Some(encode_metadata(&options.metadata, key)?)
            },
            immutability_policy_expiry: options
                .retention
                .as_ref()
                .map(|r| to_offset(&r.retain_until)),
            immutability_policy_mode: options.retention.as_ref().map(|r| policy_mode(r.mode)),
            legal_hold: options.legal_hold.then_some(true),
            if_none_match: options
                .if_not_exists
                .then(|| azure_core::http::Etag::from("*")),
            // One Put Blob, whatever the size: its stored MD5 is the whole blob's.
            partition_size: std::num::NonZero::new((part.data.len() as u64).max(1)),
            ..Default::default()
        };
        let out = blob
            .upload(part.data.clone().into(), Some(opts))
            .await
            .map_err(|e| {
                let e = map(e, Operation::Put, &self.ctx(key));
                adapter::create_only(e, options.if_not_exists, PROVIDER, key)
            })?;
        // Put Blob stores the MD5 Azure computed; it must be the one of what was read.
        if let Some(theirs) = &out.content_md5 {
            if *theirs != ours {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    PROVIDER,
                    Operation::Put,
                    "the stored blob's MD5 differs from what was sent",
                )
                .with_key(key)
                .retryable(true));
            }
        }
        // What Azure reports, or nothing: never our own digest in the provider's place.
        let mut receipt = Receipt::new(
            key,
            size,
            out.content_md5
                .as_ref()
                .map(|m| Checksum::Md5(B64.encode(m))),
        );
        receipt.etag = out.etag.as_ref().map(|e| e.to_string());
        Ok(receipt)
    }
}

#[async_trait]
impl Storage for AzureStore {
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
        adapter::own_kind(source, |s: &AzureStore| self.same_service(s)).is_some()
    }

    async fn copy_from_store(
        &self,
        source: &dyn Storage,
        from: &str,
        size: Option<u64>,
        to: &str,
        options: PutOptions,
    ) -> Result<Receipt> {
        let Some(source) = adapter::own_kind(source, |s: &AzureStore| self.same_service(s)) else {
            return Err(adapter::no_copy_from(PROVIDER, to));
        };
        let _ = size;
        self.copy_from(source, from, to, options).await
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::default();
        c.server_side_copy = true;
        c.retention = true;
        c.storage_classes = true;
        c.metadata = true;
        // Only single-shot uploads carry a Content-MD5; block lists have none.
        c.checksum_on_head = false;
        c.part_size = Some(self.inner.cfg.block_size);
        c.concurrency = Some(self.inner.cfg.concurrency);
        c.create_location = true;
        c.extend_retention = true;
        // Blob versions and uncommitted block lists are not listed (see the crate docs).
        c.versions = false;
        c.list_uploads = false;
        // List Blobs lists in lexicographic (UTF-8 binary) name order.
        c.ordered_listing = true;
        c.thaw = true;
        c
    }

    async fn create_location(&self, options: &CreateOptions) -> Result<bool> {
        let i = &self.inner;
        let location = format!("az://{}/{}", i.cfg.account, i.cfg.container);
        // Both are settings of the account (versioning) or of a container made through the
        // management plane (version-level immutability); Create Container cannot ask for them.
        if options.object_lock {
            return Err(offsite_storage::unsupported(
                PROVIDER,
                Operation::Create,
                "create a container with version-level immutability",
            )
            .with_key(location)
            .with_hint(format!(
                "turn on blob versioning (`az storage account blob-service-properties update --account-name {0} --enable-versioning true`), create the container with version-level immutability (`az storage container-rm create --storage-account {0} --name {1} --enable-vlw`), then run create again without --object-lock",
                i.cfg.account, i.cfg.container
            )));
        }
        if options.versioning {
            return Err(offsite_storage::unsupported(
                PROVIDER,
                Operation::Create,
                "turn on blob versioning, a setting of the storage account",
            )
            .with_key(location)
            .with_hint(format!(
                "turn it on with `az storage account blob-service-properties update --account-name {} --enable-versioning true`, then run create again without --versioning",
                i.cfg.account
            )));
        }
        match i.container.create(None).await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = map(e, Operation::Create, &i.ctx(""));
                // Container names are per account: one that exists is these credentials' own.
                if e.code() == Some("ContainerAlreadyExists") {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn extend_retention(&self, key: &str, retention: Retention) -> Result<Retention> {
        let current = self.inner.head(key).await?.retention;
        let Some(extended) = offsite_storage::extended_retention(current, retention) else {
            // The policy in force already runs as long or longer: nothing is sent.
            return Ok(current.unwrap_or(retention));
        };
        self.inner
            .set_immutability(key, &extended, Operation::Retention)
            .await?;
        Ok(extended)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.inner.head(key).await
    }

    async fn get(&self, key: &str, range: Option<GetRange>) -> Result<GetResult> {
        let i = &self.inner;
        let blob = i.blob(key, Operation::Get)?;
        let meta = i.head(key).await?;
        let r = range
            .unwrap_or(GetRange::From(0))
            .resolve(meta.size, PROVIDER, key)?;
        if r.start == r.end {
            return Ok(adapter::empty_get(meta, r));
        }
        // One streamed GET of the whole range: a partition as large as the range makes the
        // SDK hand back the first response's body as it arrives, instead of ranged partitions
        // that it buffers to put in order (measured: the partitions cost Azurite four times the
        // CPU of one stream, and offsite's restore 2.8x `rclone cat`).
        let whole = usize::try_from(r.end - r.start).unwrap_or(usize::MAX);
        let opts = BlobClientDownloadOptions {
            range: Some(HttpRange::new(r.start, r.end - r.start)),
            parallel: std::num::NonZero::new(1),
            partition_size: std::num::NonZero::new(whole),
            ..Default::default()
        };
        let out = i
            .retry
            .run(|| async {
                blob.download(Some(opts.clone()))
                    .await
                    .map_err(|e| map(e, Operation::Get, &i.ctx(key)))
            })
            .await?;
        // The SDK's error text can end in the request URL, SAS and all: the helper drops it.
        let location = format!("az://{}/{}", i.cfg.account, i.cfg.container);
        let k = key.to_string();
        let body = out.body.map(move |item| {
            item.map_err(|e| adapter::download_broke_off(PROVIDER, &location, &k, &e.to_string()))
        });
        Ok(GetResult {
            meta,
            range: r,
            stream: body.boxed(),
        })
    }

    async fn writer(&self, key: &str, options: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.inner.blob(key, Operation::Put)?;
        tier(&options, key)?;
        let part =
            offsite_storage::part_size_for(options.size_hint, self.inner.cfg.block_size, LIMITS);
        Ok(Box::new(MultipartWriter::new(
            PROVIDER,
            key,
            self.inner.clone(),
            options,
            part,
            self.inner.cfg.concurrency,
            self.inner.retry.clone(),
        )))
    }

    fn list(&self, prefix: &str) -> ListStream<'_> {
        let i = &self.inner;
        let full = offsite_storage::listing_prefix(&i.cfg.prefix, prefix);
        let opts = BlobContainerClientListBlobsOptions {
            prefix: (!full.is_empty()).then(|| full.clone()),
            ..Default::default()
        };
        let pager = match i.container.list_blobs(Some(opts)) {
            Ok(p) => p,
            Err(e) => {
                let e = map(e, Operation::List, &i.ctx(&full));
                return stream::once(async move { Err(e) }).boxed();
            }
        };
        let ctx_full = full.clone();
        pager
            .filter_map(move |item| {
                let ctx_full = ctx_full.clone();
                async move {
                    match item {
                        Err(e) => Some(Err(map(e, Operation::List, &i.ctx(&ctx_full)))),
                        Ok(b) => {
                            let name = b.name?;
                            let key = i.cfg.relative_key(&name)?.to_string();
                            let props = b.properties;
                            let mut m = ObjectMeta::new(
                                key,
                                props.as_ref().and_then(|p| p.content_length).unwrap_or(0),
                            );
                            m.last_modified = props
                                .as_ref()
                                .and_then(|p| p.last_modified.as_ref())
                                .and_then(from_offset);
                            m.storage_class = props
                                .as_ref()
                                .and_then(|p| p.access_tier.as_ref())
                                .map(|t| t.to_string());
                            m.etag = props
                                .as_ref()
                                .and_then(|p| p.etag.as_ref())
                                .map(|e| e.to_string());
                            Some(Ok(m))
                        }
                    }
                }
            })
            .boxed()
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let i = &self.inner;
        let blob = i.blob(key, Operation::Delete)?;
        i.head(key).await?;
        blob.delete(None::<BlobClientDeleteOptions>)
            .await
            .map(|_| ())
            .map_err(|e| map(e, Operation::Delete, &i.ctx(key)))
    }

    async fn copy(&self, from: &str, to: &str, options: PutOptions) -> Result<Receipt> {
        self.copy_blob(&self.inner, from, to, options).await
    }

    fn multipart(&self) -> Option<Arc<dyn Multipart>> {
        Some(self.inner.clone())
    }

    fn sequential(&self) -> Option<Arc<dyn Sequential>> {
        None
    }

    async fn thaw(&self, key: &str, _days: u32) -> Result<()> {
        // Rehydration: back to Hot, at standard priority (up to 15 hours).
        let i = &self.inner;
        let blob = i.blob(key, Operation::Get)?;
        let opts = BlobClientSetTierOptions {
            rehydrate_priority: Some(RehydratePriority::Standard),
            ..Default::default()
        };
        blob.set_tier(AccessTier::Hot, Some(opts))
            .await
            .map(|_| ())
            .map_err(|e| map(e, Operation::Get, &i.ctx(key)))
    }
}
