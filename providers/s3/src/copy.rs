//! Server-side copies: CopyObject up to 5 GiB, UploadPartCopy above; the bytes never pass
//! through this process.

use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockLegalHold,
    ObjectLockLegalHoldStatus, ServerSideEncryption,
};
use offsite_storage::{part_size_for, Error, Operation, PutOptions, Receipt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::client::{exists, head, Inner, LIMITS};
use crate::config::PROVIDER;
use crate::error::map;
use crate::metadata::{lock_mode, put_options, sha256_checksum, to_smithy_time};

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
    let class = crate::metadata::storage_class(&options, to)?;
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
    if options.legal_hold {
        req = req.object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On);
    }
    if let Some(k) = &dst.cfg.sse_kms_key {
        req = req
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(k);
    }
    // CopyObject is idempotent (the same source to the same key): retried here, since the
    // SDK's own retries are off.
    let send = |req: aws_sdk_s3::operation::copy_object::builders::CopyObjectFluentBuilder| async move {
        dst.retry
            .run(|| async {
                req.clone()
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::Copy, &dst.ctx(to)))
            })
            .await
    };
    let out = match send(req.clone()).await {
        // moto 5.2 wants Content-MD5 on a CopyObject that carries lock headers, which a copy
        // has no body for: copy without them, and `ensure_locks` below sets the lock before
        // the copy is reported (an archive's manifest is written only after that).
        Err(e) if e.code() == Some("MissingUploadObjectWithObjectLockHeaders") => {
            let plain = req
                .set_object_lock_mode(None)
                .set_object_lock_retain_until_date(None)
                .set_object_lock_legal_hold_status(None);
            send(plain).await?
        }
        other => other?,
    };
    let checksum = out.copy_object_result().and_then(|r| {
        r.checksum_sha256()
            .and_then(|v| sha256_checksum(v, r.checksum_type()))
    });
    let mut r = Receipt::new(to, size, checksum);
    r.etag = out
        .copy_object_result()
        .and_then(|c| c.e_tag())
        .map(str::to_string);
    r.version = out.version_id().map(str::to_string);
    ensure_locks(dst, to, &options).await?;
    Ok(r)
}

/// Checks the copy holds the lock and hold the options ask for, and sets what is missing:
/// CopyObject's lock headers are not honoured everywhere (SeaweedFS 4.48 ignores them, and the
/// bucket's default retention too, on copies). A lock asked for is never silently dropped: a
/// copy that cannot be locked is deleted and the copy fails.
async fn ensure_locks(dst: &Inner, to: &str, options: &PutOptions) -> offsite_storage::Result<()> {
    if options.retention.is_none() && !options.legal_hold {
        return Ok(());
    }
    let meta = head(dst, to).await?;
    if let Some(want) = options.retention {
        // S3 keeps retain-until to the second.
        let short = meta
            .retention
            .is_none_or(|have| have.retain_until.timestamp() < want.retain_until.timestamp());
        if short {
            tracing::debug!(key = to, "the copy came without its retention; setting it");
            dst.extend_retention(to, want).await?;
        }
    }
    if options.legal_hold && !meta.legal_hold {
        tracing::debug!(key = to, "the copy came without its legal hold; setting it");
        let full = dst.check_key(to, Operation::Copy)?;
        dst.retry
            .run(|| async {
                dst.client
                    .put_object_legal_hold()
                    .bucket(&dst.cfg.bucket)
                    .key(&full)
                    .set_version_id(meta.version.clone())
                    .legal_hold(
                        ObjectLockLegalHold::builder()
                            .status(ObjectLockLegalHoldStatus::On)
                            .build(),
                    )
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map(e, Operation::Copy, &dst.ctx(to)))
            })
            .await?;
    }
    let now = head(dst, to).await?;
    let retained = options.retention.is_none_or(|want| {
        now.retention
            .is_some_and(|have| have.retain_until.timestamp() >= want.retain_until.timestamp())
    });
    if retained && (!options.legal_hold || now.legal_hold) {
        return Ok(());
    }
    if let Ok(full) = dst.check_key(to, Operation::Copy) {
        // Best effort: an unlocked copy can go; one that got a hold but not its retention
        // is refused, and stays for the caller's cleanup.
        let _ = dst
            .client
            .delete_object()
            .bucket(&dst.cfg.bucket)
            .key(&full)
            .set_version_id(now.version.clone())
            .send()
            .await;
    }
    Err(Error::new(
        offsite_storage::ErrorKind::Unsupported,
        PROVIDER,
        Operation::Copy,
        "the server made the copy but would not lock it as asked",
    )
    .with_key(to)
    .with_hint(
        "copy through a streamed upload, or use a server that honours Object Lock on copies",
    ))
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
            ensure_locks(dst, to, options).await?;
            Ok(r)
        }
        Err(e) => {
            abort().await;
            Err(map(e, Operation::Copy, &dst.ctx(to)))
        }
    }
}

/// What `x-amz-copy-source` escapes in a key: everything but RFC 3986's unreserved
/// characters and `/`, the segment separator S3 reads unescaped.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a key for `x-amz-copy-source`, keeping `/`.
fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, COPY_SOURCE).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_source_keys_escape_all_but_unreserved_and_slash() {
        assert_eq!(super::encode_key("app/a-b_c.d~e"), "app/a-b_c.d~e");
        assert_eq!(
            super::encode_key("app/a b+c%d\u{e9}?#&="),
            "app/a%20b%2Bc%25d%C3%A9%3F%23%26%3D"
        );
    }
}
