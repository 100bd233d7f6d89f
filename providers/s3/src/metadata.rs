//! What S3 says about an object and what a write asks of it: `ObjectMeta` from HeadObject and
//! GetObject, checksums, lock fields and storage classes, and the options every write request
//! carries.

use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::types::{ChecksumType, ObjectLockLegalHoldStatus, ObjectLockMode, StorageClass};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use offsite_storage::adapter;
use offsite_storage::{Checksum, LockMode, ObjectMeta, PutOptions, Retention};

use crate::config::PROVIDER;

/// Storage classes S3 accepts.
const CLASSES: &[&str] = match offsite_storage::Scheme::S3.storage_classes() {
    Some((c, _)) => c,
    None => &[],
};

/// The storage class asked for, if S3 has it; any other is `InvalidConfig`.
pub(crate) fn storage_class(
    opts: &PutOptions,
    key: &str,
) -> offsite_storage::Result<Option<StorageClass>> {
    let given = opts.storage_class.as_deref();
    adapter::check_storage_class(PROVIDER, key, given, CLASSES, "an S3 storage class")?;
    Ok(given.map(StorageClass::from))
}

pub(crate) fn to_smithy_time(t: &DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(t.timestamp())
}

pub(crate) fn from_smithy_time(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// S3's SHA-256 report (`base64` or `base64-N`) as a checksum.
pub(crate) fn sha256_checksum(value: &str, kind: Option<&ChecksumType>) -> Option<Checksum> {
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

pub(crate) fn lock_mode(m: LockMode) -> ObjectLockMode {
    match m {
        LockMode::Governance => ObjectLockMode::Governance,
        LockMode::Compliance => ObjectLockMode::Compliance,
    }
}

/// Applies the options every write shares; a macro because each SDK builder is its own type.
macro_rules! put_options {
    ($req:expr, $inner:expr, $opts:expr, $key:expr) => {{
        let mut req = $req.set_storage_class($crate::metadata::storage_class($opts, $key)?);
        if let Some(k) = &$inner.cfg.sse_kms_key {
            req = req
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .ssekms_key_id(k);
        }
        if let Some(r) = &$opts.retention {
            req = req
                .object_lock_mode($crate::metadata::lock_mode(r.mode))
                .object_lock_retain_until_date($crate::metadata::to_smithy_time(&r.retain_until));
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

pub(crate) use put_options;

/// HeadObject's answer as metadata, with checksum, lock fields and legal hold.
pub(crate) fn meta_from_head(key: &str, out: &HeadObjectOutput) -> ObjectMeta {
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
    m.version = version(out.version_id());
    m.legal_hold = out.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On);
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
    m
}

/// GetObject's answer as metadata (of an object of `total` bytes, whatever the range read).
pub(crate) fn meta_from_get(key: &str, total: u64, out: &GetObjectOutput) -> ObjectMeta {
    let mut m = ObjectMeta::new(key, total);
    m.last_modified = out.last_modified().and_then(from_smithy_time);
    m.etag = out.e_tag().map(str::to_string);
    m.metadata = out
        .metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    m.storage_class = out.storage_class().map(|c| c.as_str().to_string());
    m.version = version(out.version_id());
    m
}

/// A version id, except S3's `null` (the object predates versioning on the bucket).
fn version(id: Option<&str>) -> Option<String> {
    id.filter(|v| *v != "null").map(str::to_string)
}
