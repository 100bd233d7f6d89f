//! The multipart primitives on S3 (CreateMultipartUpload, UploadPart with a SHA-256 per part,
//! ListParts, CompleteMultipartUpload, AbortMultipartUpload, and PutObject for an object that
//! fits in one part); the shared `MultipartWriter` drives them.

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use offsite_storage::adapter;
use offsite_storage::{
    composite_sha256, Checksum, Error, ErrorKind, Multipart, Operation, Part, PartLimits,
    PartReceipt, PutOptions, Receipt,
};

use crate::client::{exists, head, Inner, LIMITS};
use crate::config::PROVIDER;
use crate::error::map;
use crate::metadata::{put_options, sha256_checksum};

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
            // The part's SHA-256 as computed when it was read, sent so that the server checks
            // the bytes against it (servers differ in which form they keep: TESTING.md) and we
            // check its answer against ours. Given, so the SDK does not hash the part again;
            // and the payload is not signed (a second SHA-256 of every byte): the signed
            // checksum header already binds the body, which the server verifies.
            // (The algorithm is named too: Object Lock uploads require the header.)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(B64.encode(part.sha256))
            .body(ByteStream::from(part.data))
            .customize()
            .disable_payload_signing()
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
            return Err(Error::already_exists(PROVIDER, key));
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
        // Retried here (the SDK's own retries are off): a completion that succeeded but whose
        // answer was lost is NoSuchUpload on the retry, and the object is then checked below.
        let sent = self
            .retry
            .run(|| async {
                req.clone()
                    .send()
                    .await
                    .map_err(|e| self.put_error(e, key, options))
            })
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) if e.is_not_found() && e.code() == Some("NoSuchUpload") => {
                return self.completed_before(key, parts, e).await;
            }
            Err(e) => return Err(e),
        };
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
            .retry
            .run(|| async {
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.cfg.bucket)
                    .key(&full)
                    .upload_id(upload_id)
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::Put, &self.ctx(key)))
            })
            .await
        {
            Ok(_) => Ok(()),
            // Gone already (a retry after an abort whose answer was lost, or expired).
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
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
            // As for a part: our SHA-256, checked by the server, and no second hash.
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(B64.encode(part.sha256))
            .body(ByteStream::from(part.data));
        let mut req = put_options!(req, self, options, key);
        if options.if_not_exists {
            // Checked first as well: some S3-compatible servers ignore If-None-Match.
            if exists(self, key).await? {
                return Err(Error::already_exists(PROVIDER, key));
            }
            req = req.if_none_match("*");
        }
        let out = req
            .customize()
            .disable_payload_signing()
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
    /// A retried completion answered NoSuchUpload: the first attempt may have completed the
    /// object before its answer was lost. It counts only if the object is there with exactly
    /// the parts' size and composite; else the original error stands.
    async fn completed_before(
        &self,
        key: &str,
        parts: Vec<PartReceipt>,
        err: Error,
    ) -> offsite_storage::Result<Receipt> {
        let size: u64 = parts.iter().map(|p| p.size).sum();
        let ours = hex::encode(composite_sha256(&parts));
        match head(self, key).await {
            Ok(m)
                if m.size == size
                    && m.checksum.as_ref().is_some_and(|c| {
                        c.same_value(&Checksum::Sha256Composite {
                            hex: ours.clone(),
                            parts: parts.len() as u32,
                        })
                    }) =>
            {
                let mut r = Receipt::new(key, size, m.checksum);
                r.etag = m.etag;
                r.version = m.version;
                Ok(r)
            }
            _ => Err(err),
        }
    }

    /// A failed write's error; with `if_not_exists`, a failed If-None-Match is `AlreadyExists`.
    fn put_error<E>(&self, err: SdkError<E, HttpResponse>, key: &str, options: &PutOptions) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let e = map(err, Operation::Put, &self.ctx(key));
        adapter::create_only(e, options.if_not_exists, PROVIDER, key)
    }
}
