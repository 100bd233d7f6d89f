//! Keys, metadata, options and receipts shared by every store.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Operation, Result};

/// User metadata stored with an object (small string pairs; keys are lowercase ASCII).
pub type Metadata = BTreeMap<String, String>;

/// A whole-object checksum in the form a provider reports it.
///
/// Quick verification compares like with like: the manifest records the checksum the provider
/// will report for that copy, and `head` returns it again later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", content = "value", rename_all = "kebab-case")]
pub enum Checksum {
    /// SHA-256 of the whole object, lowercase hex.
    Sha256(String),
    /// SHA-256 over the parts' SHA-256s (S3 multipart "composite"), hex, with the part count.
    Sha256Composite {
        /// Lowercase hex of the digest over the concatenated part digests.
        hex: String,
        /// How many parts went into it.
        parts: u32,
    },
    /// CRC64/NVME of the whole object, base64 (S3 full-object checksum).
    Crc64Nvme(String),
    /// CRC32C of the whole object, base64 (GCS).
    Crc32c(String),
    /// MD5 of the whole object, base64 (GCS, single-shot Azure uploads).
    Md5(String),
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Checksum::Sha256(h) => write!(f, "sha256:{h}"),
            Checksum::Sha256Composite { hex, parts } => write!(f, "sha256-composite:{hex}-{parts}"),
            Checksum::Crc64Nvme(v) => write!(f, "crc64nvme:{v}"),
            Checksum::Crc32c(v) => write!(f, "crc32c:{v}"),
            Checksum::Md5(v) => write!(f, "md5:{v}"),
        }
    }
}

impl Checksum {
    /// Whether two reports carry the same digest. A SHA-256 value compares equal whether or not
    /// it is marked composite: some S3-compatible servers report a composite checksum without
    /// saying so.
    pub fn same_value(&self, other: &Checksum) -> bool {
        match (self, other) {
            (
                Checksum::Sha256(a) | Checksum::Sha256Composite { hex: a, .. },
                Checksum::Sha256(b) | Checksum::Sha256Composite { hex: b, .. },
            ) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }
}

/// Retention lock modes (S3 Object Lock names; Azure and GCS map onto them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockMode {
    /// Users with a special permission may shorten or remove the lock.
    Governance,
    /// Nobody can shorten or remove the lock before it expires.
    Compliance,
}

/// A retention lock to set on a new object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// How strict the lock is.
    pub mode: LockMode,
    /// The object cannot be deleted or overwritten before this time.
    pub retain_until: DateTime<Utc>,
}

/// What `head` and `list` know about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectMeta {
    /// The object's key, relative to the store's prefix.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When the object was last written.
    pub last_modified: Option<DateTime<Utc>>,
    /// The provider's entity tag, if it has one.
    pub etag: Option<String>,
    /// The whole-object checksum the provider reports, when `head` can see one
    /// (never filled by `list`).
    pub checksum: Option<Checksum>,
    /// User metadata (filled by `head`; `list` may leave it empty).
    pub metadata: Metadata,
    /// Storage class or access tier, when the provider reports one.
    pub storage_class: Option<String>,
    /// An active retention lock, when the provider reports one.
    pub retention: Option<Retention>,
    /// Whether a legal hold is on (filled by `head`).
    pub legal_hold: bool,
    /// The version id on versioned stores.
    pub version: Option<String>,
}

impl ObjectMeta {
    /// Metadata with only a key and a size.
    pub fn new(key: impl Into<String>, size: u64) -> Self {
        ObjectMeta {
            key: key.into(),
            size,
            last_modified: None,
            etag: None,
            checksum: None,
            metadata: Metadata::new(),
            storage_class: None,
            retention: None,
            legal_hold: false,
            version: None,
        }
    }
}

/// Options for a new object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOptions {
    /// Fail with [`ErrorKind::AlreadyExists`] when the key is taken, atomically.
    pub if_not_exists: bool,
    /// Storage class or access tier (provider names: `STANDARD_IA`, `NEARLINE`, `Cool`...).
    pub storage_class: Option<String>,
    /// A retention lock for the object.
    pub retention: Option<Retention>,
    /// A legal hold (S3 Object Lock legal hold, GCS temporary hold, Azure legal hold): no
    /// deletion until it is released, whatever the retention.
    pub legal_hold: bool,
    /// User metadata.
    pub metadata: Metadata,
    /// The expected size, when known; multipart writers size their parts from it.
    pub size_hint: Option<u64>,
    /// MIME type, if the provider stores one.
    pub content_type: Option<String>,
}

impl PutOptions {
    /// Default options that refuse to replace an existing object.
    pub fn create_new() -> Self {
        PutOptions {
            if_not_exists: true,
            ..Self::default()
        }
    }
}

/// What a finished writer proves was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// The key written.
    pub key: String,
    /// Bytes stored.
    pub size: u64,
    /// The whole-object checksum the provider will report for this object from now on.
    pub checksum: Option<Checksum>,
    /// The provider's entity tag.
    pub etag: Option<String>,
    /// The version id on versioned stores.
    pub version: Option<String>,
}

impl Receipt {
    /// A receipt with only key, size and checksum.
    pub fn new(key: impl Into<String>, size: u64, checksum: Option<Checksum>) -> Self {
        Receipt {
            key: key.into(),
            size,
            checksum,
            etag: None,
            version: None,
        }
    }
}

/// What a store can do; callers check this instead of discovering gaps by failure.
/// `Default` is a store that can do none of the optional things.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// `copy` works without moving the bytes through this process.
    pub server_side_copy: bool,
    /// Objects can carry retention locks.
    pub retention: bool,
    /// `PutOptions::storage_class` is honoured.
    pub storage_classes: bool,
    /// User metadata is stored.
    pub metadata: bool,
    /// `head` returns a whole-object checksum computed by the server from the stored bytes.
    pub checksum_on_head: bool,
    /// Writers upload in parts of this size (the minimum the provider accepts, before growth
    /// for large size hints); `None` when the store writes one stream.
    pub part_size: Option<u64>,
    /// Parts in flight per upload (`concurrency=`); `None` when the store does not say.
    pub concurrency: Option<usize>,
    /// The store is on this machine's file system, so reading it costs no egress.
    pub local: bool,
    /// [`Storage::create_location`](crate::Storage::create_location) works.
    pub create_location: bool,
    /// [`Storage::list_versions`](crate::Storage::list_versions) and
    /// [`Storage::delete_version`](crate::Storage::delete_version) work (S3 versions, GCS
    /// generations); on a location without versioning each key has one version.
    pub versions: bool,
    /// [`Storage::extend_retention`](crate::Storage::extend_retention) works (needs
    /// `retention`, and a location that holds locks).
    pub extend_retention: bool,
    /// [`Storage::list_uploads`](crate::Storage::list_uploads) works (S3 multipart uploads).
    pub list_uploads: bool,
    /// [`Storage::list`](crate::Storage::list) gives keys in ascending byte-wise order (as
    /// `str`'s `Ord`), across pages (S3 ListObjectsV2, GCS objects.list and Azure List Blobs
    /// document it). Replication merges two listings as they stream when both are ordered,
    /// and sorts a listing first when it is not. `false`: no order is promised.
    pub ordered_listing: bool,
    /// [`Storage::thaw`](crate::Storage::thaw) asks an archive tier for an object back (S3
    /// Glacier restore, Azure rehydration); restore thaws an archived copy through it when
    /// asked. `false`: nothing is ever archived out of reach, and `thaw` is `Unsupported`.
    pub thaw: bool,
}

/// How to create a location ([`Storage::create_location`](crate::Storage::create_location)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateOptions {
    /// Keep every version of every object (S3 versioning, GCS object versioning, Azure blob
    /// versioning where the account has it).
    pub versioning: bool,
    /// Let objects carry retention locks (S3 Object Lock, which implies versioning; Azure
    /// version-level immutability; GCS object retention). Stores that cannot turn it on at
    /// creation answer `Unsupported`.
    pub object_lock: bool,
    /// The project to create a GCS bucket in (else the store's configured project).
    pub project: Option<String>,
}

/// One version of an object, as [`Storage::list_versions`](crate::Storage::list_versions)
/// lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectVersion {
    /// The key, relative to the store's prefix.
    pub key: String,
    /// The provider's version id (S3 `VersionId`, `null` on a bucket never versioned; GCS
    /// generation).
    pub version: String,
    /// Size in bytes (0 for a delete marker).
    pub size: u64,
    /// When this version was written.
    pub last_modified: Option<DateTime<Utc>>,
    /// Whether it is the current version of the key.
    pub latest: bool,
    /// Whether it is an S3 delete marker rather than data.
    pub delete_marker: bool,
}

impl ObjectVersion {
    /// A version with the given key, id and size, not latest, not a marker.
    pub fn new(key: impl Into<String>, version: impl Into<String>, size: u64) -> Self {
        ObjectVersion {
            key: key.into(),
            version: version.into(),
            size,
            last_modified: None,
            latest: false,
            delete_marker: false,
        }
    }
}

/// A multipart upload started and neither completed nor aborted, as
/// [`Storage::list_uploads`](crate::Storage::list_uploads) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenUpload {
    /// The key it will publish, relative to the store's prefix.
    pub key: String,
    /// The provider's upload id.
    pub id: String,
    /// When it was started.
    pub started: Option<DateTime<Utc>>,
}

impl OpenUpload {
    /// An upload of `key` with id `id`.
    pub fn new(key: impl Into<String>, id: impl Into<String>) -> Self {
        OpenUpload {
            key: key.into(),
            id: id.into(),
            started: None,
        }
    }
}

/// A byte range for ranged reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetRange {
    /// `start..end`, end exclusive.
    Bounded(Range<u64>),
    /// From an offset to the end.
    From(u64),
}

impl GetRange {
    /// The absolute range inside an object of `size` bytes, or an error when it is out of bounds.
    pub fn resolve(&self, size: u64, provider: &'static str, key: &str) -> Result<Range<u64>> {
        let r = match self {
            GetRange::Bounded(r) => r.clone(),
            GetRange::From(s) => *s..size,
        };
        if r.start > r.end || r.end > size {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                provider,
                Operation::Get,
                format!(
                    "range {}..{} is outside the object's {size} bytes",
                    r.start, r.end
                ),
            )
            .with_key(key));
        }
        Ok(r)
    }
}

impl From<Range<u64>> for GetRange {
    fn from(r: Range<u64>) -> Self {
        GetRange::Bounded(r)
    }
}

/// Checks a key against the rules every store shares: non-empty, relative, `/`-separated
/// segments that are neither empty nor `.` / `..`, no NUL, and no segment in the `.offsite-`
/// namespace that stores use for their own bookkeeping.
pub fn validate_key(key: &str, provider: &'static str, op: Operation) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::new(
            ErrorKind::InvalidConfig,
            provider,
            op,
            format!("invalid object key: {why}"),
        )
        .with_key(key))
    };
    if key.is_empty() {
        return bad("it is empty");
    }
    if key.len() > 1024 {
        return bad("it is longer than 1024 bytes");
    }
    if key.contains('\0') {
        return bad("it contains a NUL byte");
    }
    for seg in key.split('/') {
        match seg {
            "" => return bad("it has an empty path segment (leading, trailing or double '/')"),
            "." | ".." => return bad("'.' and '..' segments are not allowed"),
            s if s.starts_with(".offsite-") => {
                return bad(
                    "segments starting with '.offsite-' are reserved for offsite's own files",
                )
            }
            _ => {}
        }
    }
    Ok(())
}

/// Joins a listing prefix and a name the way `list` understands prefixes: as whole segments.
pub fn join_key(prefix: &str, name: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        name.to_string()
    } else {
        format!("{p}/{name}")
    }
}

/// The store-relative key of a provider name under a store prefix (`None` outside it): the
/// inverse of [`join_key`].
pub fn strip_store_prefix<'a>(store_prefix: &str, full: &'a str) -> Option<&'a str> {
    let p = store_prefix.trim_matches('/');
    if p.is_empty() {
        return Some(full);
    }
    full.strip_prefix(p)?.strip_prefix('/')
}

/// The provider-side prefix that lists `rel` (segment-wise) under a store prefix: ends in `/`
/// unless both are empty, so that `a/b` never lists `a/bc`.
pub fn listing_prefix(store_prefix: &str, rel: &str) -> String {
    match (store_prefix.trim_matches('/'), rel.trim_matches('/')) {
        ("", "") => String::new(),
        ("", r) => format!("{r}/"),
        (p, "") => format!("{p}/"),
        (p, r) => format!("{p}/{r}/"),
    }
}

/// Whether `key` lies under the listing prefix `prefix`, segment-wise (`a/b` holds `a/b/c`, not
/// `a/bc`). An empty prefix holds every key.
pub fn key_under_prefix(key: &str, prefix: &str) -> bool {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        return true;
    }
    key.strip_prefix(p)
        .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_segment_wise() {
        assert!(key_under_prefix("a/b/c", "a/b"));
        assert!(key_under_prefix("a/b/c", "a/b/"));
        assert!(!key_under_prefix("a/bc", "a/b"));
        assert!(!key_under_prefix("a/b", "a/b"));
        assert!(key_under_prefix("anything", ""));
    }

    #[test]
    fn store_prefixes_map_both_ways() {
        assert_eq!(strip_store_prefix("app", "app/x/y"), Some("x/y"));
        assert_eq!(strip_store_prefix("app", "apple/x"), None);
        assert_eq!(strip_store_prefix("", "x"), Some("x"));
        assert_eq!(listing_prefix("", ""), "");
        assert_eq!(listing_prefix("app", ""), "app/");
        assert_eq!(listing_prefix("", "a/b/"), "a/b/");
        assert_eq!(listing_prefix("app", "a"), "app/a/");
    }

    #[test]
    fn keys_are_validated() {
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "a/../b",
            "./a",
            "a/.offsite-tmp-x",
            "a\0b",
        ] {
            assert!(
                validate_key(bad, "test", Operation::Put).is_err(),
                "{bad:?}"
            );
        }
        for good in [
            "a",
            "a b/c+d%20e/ünï.tar.gz",
            "x/.hidden",
            "deep/a/b/c/d/e/f",
        ] {
            assert!(
                validate_key(good, "test", Operation::Put).is_ok(),
                "{good:?}"
            );
        }
    }

    #[test]
    fn checksum_serializes_tagged() {
        let c = Checksum::Sha256("ab".into());
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"algorithm":"sha256","value":"ab"}"#
        );
        let c = Checksum::Sha256Composite {
            hex: "ab".into(),
            parts: 3,
        };
        let back: Checksum = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
