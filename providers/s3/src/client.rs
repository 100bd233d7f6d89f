//! The only file that builds the SDK client, and what every request needs: the client with
//! the location (`Inner`, shared by the store, its writers and its copies), key checks and
//! HeadObject.

use aws_config::Region;
use aws_sdk_s3::types::ChecksumMode;
use aws_sdk_s3::Client;
use offsite_storage::{ObjectMeta, Operation, PartLimits, RetryPolicy};

use crate::config::{S3Config, PROVIDER};
use crate::error::{map, Ctx};
use crate::metadata::meta_from_head;

/// S3's multipart limits.
pub(crate) const LIMITS: PartLimits = PartLimits {
    min_part_size: 5 << 20,
    max_part_size: 5 << 30,
    max_parts: 10_000,
};

/// What every request needs; shared by the store, its writers and its copies.
pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) cfg: S3Config,
    pub(crate) region: String,
    pub(crate) url: String,
    pub(crate) retry: RetryPolicy,
    /// Whether the client talks to an S3-compatible server (an endpoint set), whose listing
    /// order is not trusted: SeaweedFS lists in directory-walk order, not byte order.
    pub(crate) compatible: bool,
    /// Objects larger than this are copied part by part (UploadPartCopy); CopyObject takes at
    /// most 5 GiB.
    pub(crate) copy_part_threshold: u64,
}

/// CopyObject's limit.
pub(crate) const COPY_OBJECT_MAX: u64 = 5 << 30;

/// A client from the AWS default chain, with the location's region and endpoint; the region,
/// and whether an endpoint (an S3-compatible server) is set.
pub async fn build(cfg: &S3Config) -> (Client, String, bool) {
    build_with(cfg, None).await
}

/// The same, with fixed credentials instead of the chain (emulators, tests).
pub async fn build_with(
    cfg: &S3Config,
    creds: Option<aws_sdk_s3::config::Credentials>,
) -> (Client, String, bool) {
    let sdk = offsite_aws::sdk_config(
        cfg.region.as_deref(),
        cfg.endpoint.as_deref(),
        cfg.profile.as_deref(),
        creds.map(aws_credential_types::provider::SharedCredentialsProvider::new),
    )
    .await;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let path_style = cfg.path_style.unwrap_or(sdk.endpoint_url().is_some());
    let conf = aws_sdk_s3::config::Builder::from(&sdk)
        .region(Region::new(region.clone()))
        .force_path_style(path_style)
        .build();
    let compatible = sdk.endpoint_url().is_some();
    (Client::from_conf(conf), region, compatible)
}

impl Inner {
    pub(crate) fn ctx<'a>(&'a self, key: &'a str) -> Ctx<'a> {
        Ctx {
            bucket: &self.cfg.bucket,
            region: &self.region,
            key,
        }
    }

    pub(crate) fn check_key(&self, key: &str, op: Operation) -> offsite_storage::Result<String> {
        offsite_storage::validate_key(key, PROVIDER, op)?;
        Ok(self.cfg.full_key(key))
    }
}

/// Whether `key` exists (HeadObject).
pub(crate) async fn exists(inner: &Inner, key: &str) -> offsite_storage::Result<bool> {
    match head(inner, key).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// HeadObject, retried, as metadata.
pub(crate) async fn head(inner: &Inner, key: &str) -> offsite_storage::Result<ObjectMeta> {
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
    Ok(meta_from_head(key, &out))
}
