//! Verification: quick (manifest, object present, size, the provider's checksum or, on local
//! disk, a re-hash) and deep (download, hash, decrypt, hash again, record the result).

use std::sync::Arc;

use chrono::Utc;
use futures::TryStreamExt;
use offsite_storage::{PutOptions, StorageExt};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::identity::Identities;
use super::inventory::{Entry, State};
use super::readback::{read_copy, ReadbackError};
use crate::archive::{tool_version, ArchiveKeys, VerifiedRecord};
use crate::registry::{key_prefix, Opened};

/// The verdict on one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Checked good.
    Ok,
    /// The data object or manifest is gone.
    Missing,
    /// The bytes or the manifest are damaged.
    Corrupt,
    /// Could not be checked (network, permission, key).
    Unchecked,
    /// An upload that never committed; it does not count as a copy.
    Incomplete,
}

/// One checked copy.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The location.
    pub url: String,
    /// The archive.
    pub archive: String,
    /// `quick` or `deep`.
    pub depth: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// What was compared, or what went wrong.
    pub detail: String,
}

/// How far a check goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// No download: manifest, object, size, the provider's checksum.
    Quick,
    /// Download, hash, decrypt, hash again; the result is recorded beside the manifest.
    Deep,
    /// A restore drill: a deep check recorded as `drill`.
    Drill,
}

impl Depth {
    /// The word reports and records use.
    pub fn as_str(self) -> &'static str {
        match self {
            Depth::Quick => "quick",
            Depth::Deep => "deep",
            Depth::Drill => "drill",
        }
    }
}

/// Checks one entry of a location's inventory.
pub async fn check(
    loc: &Opened,
    entry: &Entry,
    depth: Depth,
    identities: Option<Arc<Identities>>,
) -> CopyReport {
    let deep = depth != Depth::Quick;
    let depth = depth.as_str();
    let report = |verdict, detail: String| CopyReport {
        url: loc.url().to_string(),
        archive: entry.name.clone(),
        depth,
        verdict,
        detail,
    };
    let manifest = match (entry.state, &entry.manifest) {
        (State::Incomplete, _) => {
            return report(Verdict::Incomplete, "data without a manifest: an upload that never completed; it does not count (push again)".into())
        }
        (State::BadManifest, _) => {
            return report(
                Verdict::Corrupt,
                format!("the manifest is unreadable: {}", entry.manifest_error.clone().unwrap_or_default()),
            )
        }
        (_, None) => return report(Verdict::Corrupt, "no manifest".into()),
        (State::MissingData, Some(m)) => {
            return report(Verdict::Missing, format!("the manifest is here but the data object {} is missing", m.stored.key))
        }
        (State::WrongSize, Some(_)) => {
            return report(
                Verdict::Corrupt,
                format!(
                    "{}; push the archive again with --overwrite, or restore from another copy",
                    entry.size_problem().unwrap_or_default()
                ),
            );
        }
        (State::Complete, Some(m)) => m,
    };
    let keys = ArchiveKeys::new(key_prefix(&loc.location), &entry.name, manifest.encrypted());
    let object_key = offsite_storage::join_key(key_prefix(&loc.location), &manifest.stored.key);

    if deep {
        if manifest.encrypted() && identities.is_none() {
            return report(
                Verdict::Unchecked,
                "encrypted: deep verify needs --identity".into(),
            );
        }
        let res = read_copy(
            loc,
            &object_key,
            None,
            manifest,
            identities,
            std::io::sink(),
            None,
            true,
        )
        .await;
        let (verdict, detail) = match res {
            Ok((proven, _)) => (
                Verdict::Ok,
                format!(
                    "downloaded {} bytes, SHA-256 matches; decrypted {} bytes, SHA-256 matches",
                    proven.stored.map(|d| d.size).unwrap_or_default(),
                    proven.plaintext.size
                ),
            ),
            Err(ReadbackError::Corrupt(m)) => (Verdict::Corrupt, m),
            Err(e) => (Verdict::Unchecked, e.to_string()),
        };
        if matches!(verdict, Verdict::Ok | Verdict::Corrupt) {
            let record = VerifiedRecord {
                time: Utc::now(),
                depth: depth.into(),
                result: if verdict == Verdict::Ok {
                    "ok"
                } else {
                    "failed"
                }
                .into(),
                detail: (verdict != Verdict::Ok).then(|| detail.clone()),
                tool: tool_version(),
            };
            let bytes = serde_json::to_vec_pretty(&record).expect("record serializes");
            if let Err(e) = loc
                .store
                .put_bytes(&keys.verified, bytes.into(), PutOptions::default())
                .await
            {
                tracing::warn!(error = %e, "could not record the verification result");
            }
        }
        return report(verdict, detail);
    }

    // The listing already shows the object that was committed: the size the manifest records
    // (the entry's state) and the entity tag the provider gave it at commit, which it changes
    // on any rewrite. A HEAD would show nothing more. Any other tag falls through to the HEAD.
    let listed_etag = entry.object.as_ref().and_then(|o| o.etag.as_deref());
    if let (Some(listed), Some(committed)) = (listed_etag, manifest.stored.etag.as_deref()) {
        if !loc.store.capabilities().local && same_etag(listed, committed) {
            return report(
                Verdict::Ok,
                format!(
                    "size and ETag {} as listed are the committed object's: unchanged since it was pushed and checked; only --deep proves the bytes",
                    bare_etag(listed)
                ),
            );
        }
    }
    let head = match loc.store.head(&object_key).await {
        Ok(h) => h,
        Err(e) if e.is_not_found() => {
            return report(
                Verdict::Missing,
                format!("the data object {object_key} is missing"),
            )
        }
        Err(e) => return report(Verdict::Unchecked, e.to_string()),
    };
    if head.size != manifest.stored.size {
        return report(
            Verdict::Corrupt,
            format!(
                "{} bytes stored but the manifest records {} (truncated or replaced)",
                head.size, manifest.stored.size
            ),
        );
    }
    match (&head.checksum, &manifest.stored.provider_checksum) {
        (Some(now), Some(then)) if now.same_value(then) => {
            report(Verdict::Ok, format!("size and the provider's checksum ({now}) match the manifest"))
        }
        (Some(now), Some(then)) => report(
            Verdict::Corrupt,
            format!("the provider reports {now} but the manifest recorded {then}"),
        ),
        (None, Some(then)) if !loc.store.capabilities().local => report(
            Verdict::Unchecked,
            format!("the manifest recorded {then} but the provider reports no checksum now (the object was replaced?); run verify --deep"),
        ),
        _ if loc.store.capabilities().local => {
            // Local disk: re-hashing costs no egress, so quick verify proves the bytes.
            match hash_object(loc, &object_key).await {
                Ok(h) if h == manifest.stored.sha256 => report(Verdict::Ok, "size and SHA-256 of the stored bytes match the manifest".into()),
                Ok(h) => report(
                    Verdict::Corrupt,
                    format!("the stored bytes hash to {h} but the manifest records {} (damaged on disk)", manifest.stored.sha256),
                ),
                Err(e) => report(Verdict::Unchecked, e.to_string()),
            }
        }
        _ => report(
            Verdict::Ok,
            "size matches the manifest; this provider reports no whole-object checksum, so only --deep proves the bytes".into(),
        ),
    }
}

/// An entity tag without its quotes and weak marker: S3 and a header quote it, an Azure
/// listing does not.
fn bare_etag(t: &str) -> &str {
    t.trim().trim_start_matches("W/").trim_matches('"')
}

fn same_etag(a: &str, b: &str) -> bool {
    let (a, b) = (bare_etag(a), bare_etag(b));
    !a.is_empty() && a == b
}

async fn hash_object(loc: &Opened, key: &str) -> offsite_storage::Result<String> {
    let got = loc.store.get(key, None).await?;
    let h = got
        .stream
        .try_fold(Sha256::new(), |mut h, chunk| async move {
            h.update(&chunk);
            Ok(h)
        })
        .await?;
    Ok(hex::encode(h.finalize()))
}
