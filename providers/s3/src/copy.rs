//! Server-side copies: CopyObject up to 5 GiB, UploadPartCopy above; the bytes never pass
//! through this process.

use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use offsite_storage::{part_size_for, Error, Operation, PutOptions, Receipt};

use crate::error::map;
use crate::metadata::{lock_mode, put_options, sha256_checksum, to_smithy_time};
use crate::store::{exists, Inner, LIMITS, PROVIDER};

/// Copies `src_bucket/src_full` (of `size` bytes) to `to` in `dst`'s bucket, server-side.
pub(crate) async fn copy_between(
    dst: &Inner,
    src_bucket: &str,
    src_full: &str,
    size: u64,
    to: &str,
    options: PutOptions,
) -> offsite_storage::Result<Receipt> {
    let dst_full = dst.check_key(to, Operation::Copy)?;
    if options.if_not_exists && exists(dst, to).await? {
        return Err(Error::already_exists(PROVIDER, to));
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
    // CopyObject is idempotent (the same source to the same key): retried here, since the
    // SDK's own retries are off.
    let out = dst
        .retry
        .run(|| async {
            req.clone()
                .send()
                .await
                .map_err(|e| map(e, Operation::Copy, &dst.ctx(to)))
        })
        .await?;
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
    let created = dst
        .retry
        .run(|| async {
            req.clone()
                .send()
                .await
                .map_err(|e| map(e, Operation::Copy, &dst.ctx(to)))
        })
        .await?;
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
