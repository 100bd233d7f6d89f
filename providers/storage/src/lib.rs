//! The offsite storage contract.
//!
//! [`Storage`] is the one object-safe async trait every object store implements (local disk,
//! memory, S3, GCS, Azure); [`Snapshots`] is its counterpart for volume snapshots (EBS, GCP
//! persistent disks, Azure managed disks). This crate holds it with everything adapters share and no cloud SDK:
//! the error type with its retryable flag and the one [`RetryPolicy`], the [`MultipartWriter`]
//! that gives every multipart adapter bounded memory and back-pressure, the resumable
//! [`upload`] that continues a multipart upload or session after a crash from any
//! [`RangedSource`], URL parsing
//! ([`Location`]), and two complete stores, [`LocalStore`] (`file://`) and [`MemoryStore`]
//! (`memory://`). With the `conformance` feature, the `conformance` module is the suite every adapter must
//! pass. The [`adapter`] helpers are what the cloud adapters share: the engine's URL keys, the
//! storage-class check, create-only writes, lock refusals, empty reads and broken downloads.

pub mod adapter;
mod error;
mod local;
mod location;
mod memory;
mod multipart;
mod resumable;
mod retry;
pub mod scratch;
mod sequential;
mod snapshots;
mod storage;
mod types;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{Error, ErrorKind, Operation, Result};
pub use local::{LocalStore, Temporary, FILE_MODE};
pub use location::{AzureConnection, Location, Place, Scheme};
pub use memory::MemoryStore;
pub use multipart::{
    composite_sha256, part_size_for, Multipart, MultipartWriter, Part, PartLimits, PartReceipt,
};
pub use resumable::{
    upload, Extent, InFlightBudget, ObjectSource, RangedSource, Upload, UploadRecord, Uploaded,
    DEFAULT_CONCURRENCY,
};
pub use retry::{on_retry, RetryPolicy, Retrying};
pub use sequential::{ObjectDigest, Sequential, SessionState};
pub use snapshots::{
    derived_name, parse_tag_time, snapshot_unsupported, tag_time, tags, CopySnapshot,
    CreateSnapshot, Made, RestoreVolume, Snapshot, SnapshotCapabilities, SnapshotState, Snapshots,
    SnapshotsExt, Volume, WaitOptions,
};
pub use storage::{
    extended_retention, flatten_pages, unsupported, ByteStream, GetResult, ListStream,
    ObjectWriter, Storage, StorageExt, UploadStream, VersionStream,
};
pub use types::{
    join_key, key_under_prefix, listing_prefix, strip_store_prefix, validate_key, Capabilities,
    Checksum, CreateOptions, GetRange, LockMode, Metadata, ObjectMeta, ObjectVersion, OpenUpload,
    PutOptions, Receipt, Retention,
};
