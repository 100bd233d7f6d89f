//! Managing the bucket and its objects beyond reads and writes: creating the bucket (with
//! versioning and Object Lock), listing and deleting versions, extending a retention, listing
//! open multipart uploads.

use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, ObjectLockEnabled,
    ObjectLockRetention, VersioningConfiguration,
};
use futures::stream;
use offsite_storage::{
    extended_retention, listing_prefix, CreateOptions, Error, ErrorKind, ObjectVersion, OpenUpload,
    Operation, Retention, UploadStream, VersionStream,
};

use crate::client::{head, Inner};
use crate::config::PROVIDER;
use crate::error::map;
use crate::metadata::{from_smithy_time, lock_mode, to_smithy_time};

impl Inner {
    fn location(&self) -> String {
        format!("s3://{}", self.cfg.bucket)
    }

    fn create_error(&self, message: String, hint: &str) -> Error {
        Error::new(
            ErrorKind::InvalidConfig,
            PROVIDER,
            Operation::Create,
            message,
        )
        .with_key(self.location())
        .with_hint(hint)
    }

    /// Whether the bucket exists and these credentials may use it (HeadBucket).
    async fn bucket_exists(&self) -> offsite_storage::Result<bool> {
        let head = self
            .retry
            .run(|| async {
                self.client
                    .head_bucket()
                    .bucket(&self.cfg.bucket)
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::Create, &self.ctx("")))
            })
            .await;
        match head {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the bucket, or checks the one there has what was asked.
    pub(crate) async fn create_location(
        &self,
        options: &CreateOptions,
    ) -> offsite_storage::Result<bool> {
        if self.bucket_exists().await? {
            self.check_existing(options).await?;
            return Ok(false);
        }
        let mut req = self.client.create_bucket().bucket(&self.cfg.bucket);
        if options.object_lock {
            req = req.object_lock_enabled_for_bucket(true);
        }
        if self.region != "us-east-1" {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.region.as_str()))
                    .build(),
            );
        }
        // Retried like every request: a retry after a lost answer finds the bucket created by
        // the first attempt, BucketAlreadyOwnedByYou, which is success.
        let created = self
            .retry
            .run(|| {
                let req = req.clone();
                async move {
                    req.send()
                        .await
                        .map_err(|e| map(e, Operation::Create, &self.ctx("")))
                }
            })
            .await;
        match created {
            Ok(_) => {}
            // Created meanwhile by these credentials: as if it had been there.
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => {
                self.check_existing(options).await?;
                return Ok(false);
            }
            Err(e) if e.code() == Some("BucketAlreadyExists") => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    PROVIDER,
                    Operation::Create,
                    "the bucket name is taken by another account (bucket names are global)",
                )
                .with_key(self.location())
                .with_hint("choose another bucket name"));
            }
            Err(e) => return Err(e),
        }
        if options.versioning && !options.object_lock {
            self.enable_versioning().await?;
        }
        Ok(true)
    }

    async fn enable_versioning(&self) -> offsite_storage::Result<()> {
        self.retry
            .run(|| async {
                self.client
                    .put_bucket_versioning()
                    .bucket(&self.cfg.bucket)
                    .versioning_configuration(
                        VersioningConfiguration::builder()
                            .status(BucketVersioningStatus::Enabled)
                            .build(),
                    )
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map(e, Operation::Create, &self.ctx("")))
            })
            .await
    }

    /// An existing bucket: versioning can be turned on now; Object Lock cannot.
    async fn check_existing(&self, options: &CreateOptions) -> offsite_storage::Result<()> {
        if options.object_lock {
            let lock = self
                .retry
                .run(|| async {
                    self.client
                        .get_object_lock_configuration()
                        .bucket(&self.cfg.bucket)
                        .send()
                        .await
                        .map_err(|e| map(e, Operation::Create, &self.ctx("")))
                })
                .await;
            let enabled = match lock {
                Ok(out) => {
                    out.object_lock_configuration()
                        .and_then(|c| c.object_lock_enabled())
                        == Some(&ObjectLockEnabled::Enabled)
                }
                Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => false,
                Err(e) => return Err(e),
            };
            if !enabled {
                return Err(self.create_error(
                    "the bucket exists without Object Lock, and S3 turns it on only when a bucket is created".into(),
                    "create a new bucket with --object-lock and push there",
                ));
            }
            return Ok(());
        }
        if options.versioning {
            // Idempotent: turning it on again changes nothing.
            self.enable_versioning().await?;
        }
        Ok(())
    }

    /// ListObjectVersions under `prefix`, versions and delete markers, page by page.
    pub(crate) fn list_versions(&self, prefix: &str) -> VersionStream<'_> {
        let full = listing_prefix(&self.cfg.prefix, prefix);
        marker_pages(move |key_marker, version_marker| {
            let full = full.clone();
            async move {
                let page = self
                    .retry
                    .run(|| async {
                        self.client
                            .list_object_versions()
                            .bucket(&self.cfg.bucket)
                            .prefix(&full)
                            .set_key_marker(key_marker.clone())
                            .set_version_id_marker(version_marker.clone())
                            .send()
                            .await
                            .map_err(|e| map(e, Operation::Versions, &self.ctx(&full)))
                    })
                    .await?;
                let version = |key: Option<&str>, id: Option<&str>, size, latest, at, marker| {
                    let mut o = ObjectVersion::new(
                        self.cfg.relative_key(key?)?,
                        id.unwrap_or("null"),
                        size,
                    );
                    o.latest = latest;
                    o.last_modified = at;
                    o.delete_marker = marker;
                    Some(o)
                };
                let mut items: Vec<ObjectVersion> = page
                    .versions()
                    .iter()
                    .filter_map(|v| {
                        version(
                            v.key(),
                            v.version_id(),
                            v.size().unwrap_or(0) as u64,
                            v.is_latest().unwrap_or(false),
                            v.last_modified().and_then(from_smithy_time),
                            false,
                        )
                    })
                    .collect();
                items.extend(page.delete_markers().iter().filter_map(|m| {
                    version(
                        m.key(),
                        m.version_id(),
                        0,
                        m.is_latest().unwrap_or(false),
                        m.last_modified().and_then(from_smithy_time),
                        true,
                    )
                }));
                let next = (page.is_truncated() == Some(true)).then(|| {
                    (
                        page.next_key_marker().map(str::to_string),
                        page.next_version_id_marker().map(str::to_string),
                    )
                });
                Ok((items, next))
            }
        })
    }

    /// DeleteObject of one version; a refusal on a locked version is `Locked`.
    pub(crate) async fn delete_version(
        &self,
        key: &str,
        version: &str,
    ) -> offsite_storage::Result<()> {
        let full = self.check_key(key, Operation::Versions)?;
        let res = self
            .retry
            .run(|| async {
                self.client
                    .delete_object()
                    .bucket(&self.cfg.bucket)
                    .key(&full)
                    .version_id(version)
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::Versions, &self.ctx(key)))
            })
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                // Name the lock when that is why (HeadObject of the same version).
                let meta = self
                    .client
                    .head_object()
                    .bucket(&self.cfg.bucket)
                    .key(&full)
                    .version_id(version)
                    .send()
                    .await
                    .map(|out| crate::metadata::meta_from_head(key, &out));
                match meta {
                    Ok(m) => Err(offsite_storage::adapter::delete_refused(
                        e,
                        &m,
                        PROVIDER,
                        &self.location(),
                        key,
                    )),
                    Err(_) => Err(e),
                }
            }
        }
    }

    /// PutObjectRetention on the current version, only ever later.
    pub(crate) async fn extend_retention(
        &self,
        key: &str,
        wanted: Retention,
    ) -> offsite_storage::Result<Retention> {
        let meta = head(self, key).await?;
        let Some(new) = extended_retention(meta.retention, wanted) else {
            return Ok(meta.retention.expect("kept only when there is one"));
        };
        let full = self.check_key(key, Operation::Retention)?;
        let retention = ObjectLockRetention::builder()
            .mode(lock_mode(new.mode).as_str().into())
            .retain_until_date(to_smithy_time(&new.retain_until))
            .build();
        self.retry
            .run(|| async {
                self.client
                    .put_object_retention()
                    .bucket(&self.cfg.bucket)
                    .key(&full)
                    .set_version_id(meta.version.clone())
                    .retention(retention.clone())
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::Retention, &self.ctx(key)))
            })
            .await?;
        Ok(new)
    }

    /// ListMultipartUploads under `prefix`, page by page.
    pub(crate) fn list_uploads(&self, prefix: &str) -> UploadStream<'_> {
        let full = listing_prefix(&self.cfg.prefix, prefix);
        marker_pages(move |key_marker, id_marker| {
            let full = full.clone();
            async move {
                let page = self
                    .retry
                    .run(|| async {
                        self.client
                            .list_multipart_uploads()
                            .bucket(&self.cfg.bucket)
                            .prefix(&full)
                            .set_key_marker(key_marker.clone())
                            .set_upload_id_marker(id_marker.clone())
                            .send()
                            .await
                            .map_err(|e| map(e, Operation::Uploads, &self.ctx(&full)))
                    })
                    .await?;
                let items: Vec<OpenUpload> = page
                    .uploads()
                    .iter()
                    .filter_map(|u| {
                        let key = self.cfg.relative_key(u.key()?)?;
                        let mut o = OpenUpload::new(key, u.upload_id()?);
                        o.started = u.initiated().and_then(from_smithy_time);
                        Some(o)
                    })
                    .collect();
                // The markers as the server gives them (SeaweedFS sends NextUploadIdMarker
                // alone, and answers nothing to a key marker beside it); when it gives neither,
                // the last upload listed is where the next page starts, as S3 defines them. An
                // empty truncated page ends the listing.
                let last = page.uploads().last();
                let given = (
                    page.next_key_marker().map(str::to_string),
                    page.next_upload_id_marker().map(str::to_string),
                );
                let next = (page.is_truncated() == Some(true) && last.is_some()).then(|| {
                    if given == (None, None) {
                        (
                            last.and_then(|u| u.key()).map(str::to_string),
                            last.and_then(|u| u.upload_id()).map(str::to_string),
                        )
                    } else {
                        given
                    }
                });
                Ok((items, next))
            }
        })
    }
}

/// The next page's two markers (S3's key marker and version or upload id marker).
type Markers = (Option<String>, Option<String>);

/// A listing paged by S3's two markers: `fetch` answers one page and the markers of the next,
/// `None` after the last.
fn marker_pages<'a, T, F, Fut>(
    mut fetch: F,
) -> futures::stream::BoxStream<'a, offsite_storage::Result<T>>
where
    T: Send + 'a,
    F: FnMut(Option<String>, Option<String>) -> Fut + Send + 'a,
    Fut: std::future::Future<Output = offsite_storage::Result<(Vec<T>, Option<Markers>)>>
        + Send
        + 'a,
{
    offsite_storage::flatten_pages(stream::try_unfold(
        Some((None, None)),
        move |markers: Option<Markers>| {
            let current = markers.clone();
            let page = markers.map(|(first, second)| fetch(first, second));
            async move {
                match page {
                    None => Ok(None),
                    Some(page) => {
                        let (items, next) = page.await?;
                        // A server that says "truncated" without markers that move on (SeaweedFS
                        // 4.48 on its last full page) would have us ask for the same page
                        // forever: a page that cannot advance ends the listing.
                        let next = next.filter(|n| Some(n) != current.as_ref());
                        Ok(Some((items, next)))
                    }
                }
            }
        },
    ))
}
