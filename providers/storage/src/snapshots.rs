//! The `Snapshots` trait: the contract every volume-snapshot provider implements (EBS, GCP
//! persistent disks, Azure managed disks), beside [`Storage`](crate::Storage) for objects.
//!
//! Snapshots are named and tagged by the engine so that retention, status and prune treat them
//! as they treat archives: the tags ([`tags`]) name the policy, the tool, the volume, the
//! creation time and a client token; the adapter maps them to the provider's tags or labels.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, ErrorKind, Operation, Result};

/// The tag keys the engine writes on every snapshot it makes. Lowercase letters, digits and
/// `-` only, so that they are valid as EBS tags, GCP labels and Azure tags alike.
pub mod tags {
    /// The tool: always [`TOOL_VALUE`].
    pub const TOOL: &str = "offsite-tool";
    /// The value of [`TOOL`].
    pub const TOOL_VALUE: &str = "offsite";
    /// The policy's name (or `adhoc` for a snapshot made without one).
    pub const POLICY: &str = "offsite-policy";
    /// The name of the policy's `[[snapshots]]` section that made it, when the section has one;
    /// copies carry it along.
    pub const SECTION: &str = "offsite-section";
    /// The volume the snapshot (or the snapshot it was copied from) was made of, as the engine
    /// named it; copies carry it along so retention groups them by volume in every region.
    pub const VOLUME: &str = "offsite-volume";
    /// The creation time, `20261126t020000z` (label-safe RFC 3339 basic form).
    pub const CREATED: &str = "offsite-created";
    /// The client token: a rerun with the same token finds the snapshot instead of making a
    /// second one.
    pub const TOKEN: &str = "offsite-token";
    /// On a copy: the id of the snapshot it was copied from.
    pub const SOURCE: &str = "offsite-source";
    /// On a copy: the region of the snapshot it was copied from.
    pub const SOURCE_REGION: &str = "offsite-source-region";
}

/// The label-safe time form of [`tags::CREATED`].
pub fn tag_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dt%H%M%Sz").to_string()
}

/// Reads [`tag_time`]'s form back.
pub fn parse_tag_time(s: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(&s.to_ascii_uppercase(), "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Where a snapshot is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state", content = "reason")]
pub enum SnapshotState {
    /// Being made or copied: not usable yet, never deleted by prune.
    Pending,
    /// Complete and usable for a restore.
    Completed,
    /// The provider gave up on it, with its reason.
    Failed(String),
}

impl SnapshotState {
    /// `pending`, `completed`, `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SnapshotState::Pending => "pending",
            SnapshotState::Completed => "completed",
            SnapshotState::Failed(_) => "failed",
        }
    }
}

/// A snapshot as a provider describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The provider's id: `snap-0abc`; `projects/P/global/snapshots/NAME`; an ARM resource id.
    pub id: String,
    /// The region (EBS, Azure) or storage location (GCP) it is in.
    pub region: String,
    /// The volume it was made of (for a copy: the original volume), as the provider names it.
    pub volume: Option<String>,
    /// When the provider started it (for a copy: when the original was made, where the tags
    /// say; retention judges a copy by the data's age, not the copy's).
    pub created: DateTime<Utc>,
    /// Pending, completed or failed (JSON: `"state"`, and `"reason"` when failed).
    #[serde(flatten)]
    pub state: SnapshotState,
    /// Percent done, where the provider says.
    pub progress: Option<u8>,
    /// The volume's size in GiB.
    pub size_gib: Option<u64>,
    /// Its tags or labels.
    pub tags: BTreeMap<String, String>,
    /// The provider's handle on a long-running operation still running on it (a GCP operation
    /// name, an Azure-AsyncOperation URL), which [`SnapshotsExt::wait`] follows first.
    #[serde(skip)]
    pub operation: Option<String>,
}

impl Snapshot {
    /// The tag value under `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// The volume retention groups it under: the engine's tag, else the provider's field.
    pub fn series(&self) -> String {
        self.tag(tags::VOLUME)
            .map(str::to_string)
            .or_else(|| self.volume.clone())
            .unwrap_or_else(|| "-".to_string())
    }
}

/// A snapshot [`Snapshots::create`] or [`Snapshots::copy`] started, or found already made
/// under the same client token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// It was there already (an earlier run with this token made it).
    pub found: bool,
}

impl Made {
    /// A snapshot this call started.
    pub fn started(snapshot: Snapshot) -> Made {
        Made {
            snapshot,
            found: false,
        }
    }

    /// A snapshot an earlier run with the token made.
    pub fn found(snapshot: Snapshot) -> Made {
        Made {
            snapshot,
            found: true,
        }
    }
}

/// What to snapshot, and how to mark it.
#[derive(Debug, Clone, Default)]
pub struct CreateSnapshot {
    /// The volume, as the provider names it (`vol-0abc`; `projects/P/zones/Z/disks/D`; an ARM
    /// disk id).
    pub volume: String,
    /// A name the engine derived from the volume and the token, for providers whose snapshots
    /// have names (GCP, Azure); `[a-z0-9-]`, at most 63 characters, starting with a letter.
    pub name: String,
    /// The client token (see [`tags::TOKEN`]), already in the tags; adapters that take one
    /// pass it as the provider's idempotency key too.
    pub token: String,
    /// Tags or labels to set at creation.
    pub tags: BTreeMap<String, String>,
    /// A human description.
    pub description: String,
}

/// A copy of a snapshot into the region of the adapter that makes it.
#[derive(Debug, Clone, Default)]
pub struct CopySnapshot {
    /// A name for the copy, as for [`CreateSnapshot::name`].
    pub name: String,
    /// The client token of the copy.
    pub token: String,
    /// Tags for the copy (the engine carries the original's and adds the source's).
    pub tags: BTreeMap<String, String>,
    /// An encryption key of the target region (EBS: a KMS key id or ARN).
    pub kms_key: Option<String>,
    /// A human description.
    pub description: String,
}

/// A new volume from a snapshot.
#[derive(Debug, Clone, Default)]
pub struct RestoreVolume {
    /// The new volume's name (GCP disk name, Azure disk name; an EBS `Name` tag).
    pub name: String,
    /// Where it goes: an availability zone (EBS, GCP); Azure: an optional zone.
    pub zone: Option<String>,
    /// The volume or disk type (`gp3`; `pd-balanced`; `Premium_LRS`), else the provider's
    /// default.
    pub volume_type: Option<String>,
    /// The client token (EBS CreateVolume's `ClientToken`, GCP's `requestId`).
    pub token: String,
    /// Tags or labels for the new volume.
    pub tags: BTreeMap<String, String>,
}

/// A volume as a provider describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// The provider's id.
    pub id: String,
    /// Its zone or region.
    pub zone: Option<String>,
    /// `creating`, `available`, `in-use`, `READY`, `Unattached`...: the provider's word.
    pub state: String,
    /// Its size in GiB.
    pub size_gib: Option<u64>,
}

/// What a snapshot provider can do beyond the required operations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SnapshotCapabilities {
    /// [`Snapshots::copy`] works (EBS CopySnapshot, Azure CopyStart). GCP standard snapshots
    /// have no copy: their storage location is chosen when they are made.
    pub copy: bool,
    /// [`Snapshots::create_group`] works (EBS CreateSnapshots: the volumes of one instance,
    /// crash-consistent across them).
    pub group: bool,
}

/// How [`SnapshotsExt::wait`] polls, and what it reports on the way.
pub struct WaitOptions<'a> {
    /// Time between polls.
    pub interval: Duration,
    /// Give up (a `Transient` error naming the snapshot) after this long.
    pub timeout: Duration,
    /// Called after every poll with the snapshot as it stands.
    pub progress: &'a (dyn Fn(&Snapshot) + Send + Sync),
}

impl Debug for WaitOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitOptions")
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A volume-snapshot provider, bound to one region (EBS, Azure) or storage location (GCP).
///
/// # Contract
///
/// - **Ids** are the provider's own (`snap-0abc`, `projects/P/global/snapshots/N`, ARM ids);
///   volumes are named as the provider names them. Tags are the engine's ([`tags`]); an adapter
///   whose provider restricts label values (GCP: lowercase letters, digits, `-`, `_`, at most
///   63 characters) maps values the same way when it writes them and when it filters by them.
/// - **Idempotent creation.** `create` and `copy` with a token that a snapshot in this region
///   already carries return that snapshot instead of making a second one (whatever its state),
///   so a rerun of a job that died after the provider accepted the request makes nothing twice.
///   `restore` passes the token as the provider's idempotency key where it has one.
/// - **Asynchronous.** `create`, `copy` and `restore` return once the provider accepted the
///   request; the snapshot is usually [`SnapshotState::Pending`]. [`SnapshotsExt::wait`] follows
///   the provider's long-running operation, then the snapshot's own state, until it is
///   completed or failed. A failed snapshot is returned as such (with the provider's reason),
///   not as an error: the caller decides.
/// - **Listing** returns every snapshot in the region carrying all the given tags, in no
///   particular order, all pages read.
/// - **Deleting** a snapshot that is in use (an EBS snapshot behind an AMI) is `Locked`; one
///   that is missing is `NotFound`.
/// - **Errors** name the volume or snapshot as their key and carry the provider's error code:
///   `NotFound` (volume or snapshot), `PermissionDenied`, `Unauthenticated`, `RateLimited`
///   (a snapshot quota or rate limit, with the provider's words), `InvalidConfig` (an unknown
///   region, a malformed id), `Unsupported` (see [`SnapshotCapabilities`]). Requests are
///   retried as the object stores' are: idempotent reads only, on retryable errors.
#[async_trait]
pub trait Snapshots: Send + Sync + Debug {
    /// `ebs`, `gce-disk`, `azure-disk`.
    fn provider(&self) -> &'static str;

    /// The region (or storage location) this adapter works in.
    fn region(&self) -> &str;

    /// What it can do beyond the required operations.
    fn capabilities(&self) -> SnapshotCapabilities;

    /// Starts a snapshot of one volume, or finds the one this token already made.
    async fn create(&self, spec: &CreateSnapshot) -> Result<Made>;

    /// Starts one crash-consistent snapshot of every volume of an instance (EBS
    /// CreateSnapshots), or finds the ones this token already made. `Unsupported` where
    /// [`SnapshotCapabilities::group`] is false.
    async fn create_group(&self, instance: &str, spec: &CreateSnapshot) -> Result<Vec<Made>> {
        let _ = (instance, spec);
        Err(snapshot_unsupported(
            self.provider(),
            Operation::SnapshotCreate,
            "snapshot the volumes of an instance together",
        ))
    }

    /// One snapshot by id, or `NotFound`.
    async fn get(&self, id: &str) -> Result<Snapshot>;

    /// Every snapshot in the region that carries all of `tags`.
    async fn list(&self, tags: &[(String, String)]) -> Result<Vec<Snapshot>>;

    /// The volumes in the region that carry the tag `key=value` (a policy's `select`).
    async fn volumes(&self, key: &str, value: &str) -> Result<Vec<Volume>>;

    /// Starts a copy of `source` (a snapshot in another region of the same provider) into this
    /// adapter's region, or finds the copy this token already made. `Unsupported` where
    /// [`SnapshotCapabilities::copy`] is false.
    async fn copy(&self, source: &Snapshot, spec: &CopySnapshot) -> Result<Made> {
        let _ = (source, spec);
        Err(snapshot_unsupported(
            self.provider(),
            Operation::SnapshotCopy,
            "copy snapshots between regions",
        ))
    }

    /// Deletes a snapshot.
    async fn delete(&self, id: &str) -> Result<()>;

    /// One volume by id, or `NotFound`.
    async fn volume(&self, id: &str) -> Result<Volume>;

    /// Starts a new volume from a completed snapshot.
    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreVolume) -> Result<Volume>;

    /// Polls once: the long-running operation first (while [`Snapshot::operation`] is set;
    /// a failed operation gives a failed snapshot with the provider's reason), then the
    /// snapshot itself. The default reads the snapshot with [`Snapshots::get`].
    async fn poll(&self, snapshot: &Snapshot) -> Result<Snapshot> {
        self.get(&snapshot.id).await
    }
}

/// What every [`Snapshots`] adapter gets from the trait's own operations, kept out of the
/// trait so that no adapter overrides it (as [`StorageExt`](crate::StorageExt) is for
/// [`Storage`](crate::Storage)).
#[async_trait]
pub trait SnapshotsExt: Snapshots {
    /// Waits until the snapshot is completed or failed, polling with [`Snapshots::poll`]
    /// every `options.interval` and telling `options.progress` each answer; a snapshot still
    /// pending after `options.timeout` is a `Transient`, not retryable, error.
    async fn wait(&self, snapshot: &Snapshot, options: &WaitOptions<'_>) -> Result<Snapshot> {
        let started = std::time::Instant::now();
        let mut current = snapshot.clone();
        loop {
            if current.operation.is_none() && current.state != SnapshotState::Pending {
                return Ok(current);
            }
            if started.elapsed() > options.timeout {
                return Err(Error::new(
                    ErrorKind::Transient,
                    self.provider(),
                    Operation::SnapshotWait,
                    format!(
                        "still {} after {} s{}",
                        current.state.as_str(),
                        options.timeout.as_secs(),
                        current.progress.map(|p| format!(" ({p}%)")).unwrap_or_default()
                    ),
                )
                .with_key(current.id.clone())
                .with_hint("the provider goes on without us: look again later with `offsite snapshot list`")
                .retryable(false));
            }
            tokio::time::sleep(options.interval).await;
            current = self.poll(&current).await?;
            (options.progress)(&current);
        }
    }
}

impl<T: Snapshots + ?Sized> SnapshotsExt for T {}

/// The error of a snapshot operation a provider does not have.
pub fn snapshot_unsupported(provider: &'static str, operation: Operation, what: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        provider,
        operation,
        format!("{provider} cannot {what}"),
    )
}

/// A snapshot or volume name derived from `base` and a token: `[a-z0-9-]`, starting with a
/// letter, at most 63 characters (GCP and Azure names both accept this form), unique per token.
pub fn derived_name(prefix: &str, base: &str, token: &str) -> String {
    use sha2::Digest;
    let digest = hex::encode(&sha2::Sha256::digest(format!("{base}\n{token}").as_bytes())[..6]);
    let leaf = base.rsplit('/').next().unwrap_or(base);
    let mut clean = String::new();
    for c in leaf.chars() {
        if c.is_ascii_alphanumeric() {
            clean.push(c.to_ascii_lowercase());
        } else if !clean.ends_with('-') {
            clean.push('-');
        }
    }
    // A copy's source is already `offsite-...`: its name is not prefixed twice.
    if let Some(rest) = clean.strip_prefix(&format!("{prefix}-")) {
        clean = rest.to_string();
    }
    let room = 63 - prefix.len() - 1 - digest.len() - 1;
    clean.truncate(room);
    let clean = clean.trim_matches('-');
    if clean.is_empty() {
        format!("{prefix}-{digest}")
    } else {
        format!("{prefix}-{clean}-{digest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_time_round_trips_and_is_label_safe() {
        let t = DateTime::parse_from_rfc3339("2026-11-26T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let s = tag_time(t);
        assert_eq!(s, "20261126t020000z");
        assert!(s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_eq!(parse_tag_time(&s), Some(t));
        assert_eq!(parse_tag_time("yesterday"), None);
    }

    #[test]
    fn derived_names_fit_every_provider() {
        let long = "projects/p/zones/us-central1-a/disks/".to_string() + &"Data_".repeat(30);
        for base in [
            "vol-0abc",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/DB Disk",
            &long,
            "///",
        ] {
            let n = derived_name("offsite", base, "t1");
            assert!(n.len() <= 63, "{n}");
            assert!(n.starts_with("offsite-"), "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{n}"
            );
            assert!(!n.contains("--"), "{n}");
            assert_ne!(n, derived_name("offsite", base, "t2"));
            assert_eq!(n, derived_name("offsite", base, "t1"));
        }
    }
}
