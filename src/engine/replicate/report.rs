//! What a replication reports: one [`ItemReport`] per key or archive as it is done, and the
//! [`Summary`] of one source to one destination. The outcomes are enums the CLI matches on and
//! serializes (`--json`), never sentences compared.

use offsite_policies::replication::DeleteRefusal;
use serde::Serialize;

use super::{Copied, Route};

/// What happened to one key or archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemAction {
    /// Copied and checked.
    Copied,
    /// Would be copied (`--dry-run`).
    WouldCopy,
    /// Left as it was: the same at both ends, or only at the destination without `--delete`.
    Skipped,
    /// Not deleted: a lock or legal hold keeps it at the destination.
    Kept,
    /// Deleted at the destination.
    Deleted,
    /// Would be deleted (`--dry-run`).
    WouldDelete,
    /// An archive with no (usable) manifest at the source: an incomplete push, left out.
    NotReplicated,
    /// Could not be copied, read or deleted.
    Failed,
    /// The copy did not match the source's checksum: removed, never counted.
    VerifyFailed,
    /// The source's manifest is not signed by a trusted key: not copied, so that a replica
    /// never launders a planted archive.
    Untrusted,
}

impl ItemAction {
    /// The word `--json` and the text output use.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemAction::Copied => "copied",
            ItemAction::WouldCopy => "would-copy",
            ItemAction::Skipped => "skipped",
            ItemAction::Kept => "kept",
            ItemAction::Deleted => "deleted",
            ItemAction::WouldDelete => "would-delete",
            ItemAction::NotReplicated => "not-replicated",
            ItemAction::Failed => "failed",
            ItemAction::VerifyFailed => "verify-failed",
            ItemAction::Untrusted => "untrusted",
        }
    }
}

impl std::fmt::Display for ItemAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// How a copy was checked against the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verified {
    /// The SHA-256 of the bytes sent (or the provider's SHA-256 of the copy).
    #[serde(rename = "sha256")]
    Sha256,
    /// The provider's checksum of the copy, against the forms the source's manifest records.
    #[serde(rename = "provider-checksum")]
    ProviderChecksum,
    /// The copy's ETag against the source's.
    #[serde(rename = "etag")]
    Etag,
    /// Its size only.
    #[serde(rename = "size")]
    Size,
}

impl Verified {
    /// The word `--json` and the text output use.
    pub fn as_str(self) -> &'static str {
        match self {
            Verified::Sha256 => "sha256",
            Verified::ProviderChecksum => "provider-checksum",
            Verified::Etag => "etag",
            Verified::Size => "size",
        }
    }
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What happened to one key or archive.
#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    /// The key (for an archive, its name).
    pub key: String,
    /// What happened.
    pub action: ItemAction,
    /// Why, or what went wrong.
    pub reason: String,
    /// Bytes copied (or that would be).
    pub bytes: u64,
    /// How a copy travelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// How the copy was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<Verified>,
    /// Parts found on the server for a continued streamed copy, of how many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_parts: Option<(u32, u32)>,
}

impl ItemReport {
    /// `action` on `key`, because of `reason`; no bytes, no copy.
    pub(super) fn new(key: &str, action: ItemAction, reason: impl std::fmt::Display) -> ItemReport {
        ItemReport {
            key: key.to_string(),
            action,
            reason: reason.to_string(),
            bytes: 0,
            route: None,
            verified: None,
            resumed_parts: None,
        }
    }

    /// The same, counting `bytes`.
    pub(super) fn with_bytes(mut self, bytes: u64) -> ItemReport {
        self.bytes = bytes;
        self
    }

    /// A dry run's copy, with the route the run would take.
    pub(super) fn would_copy(
        key: &str,
        reason: impl std::fmt::Display,
        bytes: u64,
        server_side: bool,
    ) -> ItemReport {
        let mut r = ItemReport::new(key, ItemAction::WouldCopy, reason).with_bytes(bytes);
        r.route = Some(if server_side {
            Route::ServerSide
        } else {
            Route::Streamed
        });
        r
    }

    /// `bytes` copied to `key` as `c` says, and checked `how`.
    pub(super) fn copied(
        key: &str,
        reason: impl std::fmt::Display,
        bytes: u64,
        c: &Copied,
        how: Verified,
    ) -> ItemReport {
        ItemReport {
            route: Some(c.route),
            verified: Some(how),
            resumed_parts: c.resumed,
            ..ItemReport::new(key, ItemAction::Copied, reason).with_bytes(bytes)
        }
    }
}

/// The totals of one source to one destination.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The source URL.
    pub source: String,
    /// The destination URL.
    pub destination: String,
    /// Objects and archives copied (or, with `--dry-run`, that would be).
    pub copied: u64,
    /// Of them, copied inside the provider.
    pub server_side: u64,
    /// Of them, continued from an earlier run.
    pub resumed: u64,
    /// Left as they were.
    pub skipped: u64,
    /// Deleted (or that would be).
    pub deleted: u64,
    /// Archives with no manifest at the source, not replicated.
    pub not_replicated: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Items that failed.
    pub failures: u64,
    /// Copies that did not match the source's checksum (removed, never counted).
    pub verify_failures: u64,
    /// Source archives not copied because their manifest is untrusted.
    pub untrusted: u64,
    /// Why deletions were refused, when they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletes_refused: Option<DeleteRefusal>,
    /// Why a listing could not be used, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing_error: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl Summary {
    /// Counts one item.
    pub(super) fn count(&mut self, r: &ItemReport) {
        match r.action {
            ItemAction::Copied | ItemAction::WouldCopy => {
                self.copied += 1;
                self.bytes += r.bytes;
                if r.route == Some(Route::ServerSide) {
                    self.server_side += 1;
                }
                if r.resumed_parts.is_some_and(|(n, _)| n > 0) {
                    self.resumed += 1;
                }
            }
            ItemAction::Skipped | ItemAction::Kept => self.skipped += 1,
            ItemAction::Deleted | ItemAction::WouldDelete => self.deleted += 1,
            ItemAction::NotReplicated => self.not_replicated += 1,
            ItemAction::VerifyFailed => {
                self.verify_failures += 1;
                self.failures += 1;
            }
            ItemAction::Failed => self.failures += 1,
            ItemAction::Untrusted => self.untrusted += 1,
        }
    }
}
