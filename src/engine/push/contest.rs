//! Two hosts, one name. A new archive's data is written only where no object of its key is
//! (`If-None-Match: *`, `ifGenerationMatch=0`, a link without replace), and its manifest
//! likewise: the commit is one create-only step, so exactly one push stores an archive under a
//! name at a destination. When the data key is taken, this decides what it was: another push
//! committing (its manifest follows its data within moments, so it is waited for), or an upload
//! that never committed and is no one's any more, which the push writes over.

use std::time::Duration;

use chrono::{DateTime, Utc};
use offsite_storage::ErrorKind;

use crate::archive::{ArchiveKeys, Manifest};
use crate::engine::inventory::read_manifest;
use crate::registry::Opened;

/// How long data without a manifest may be another push's commit in progress: after that it
/// is an upload that never committed.
pub(super) const STALE: chrono::Duration = chrono::Duration::minutes(10);

/// How long a push waits for the manifest of data it found in its way.
const WAIT: Duration = Duration::from_secs(30);

/// What holds the data key.
pub(super) enum Taken {
    /// Another push committed an archive under this name: its manifest.
    Committed(Box<Manifest>),
    /// Data that never got a manifest (older than [`STALE`], or none came while waiting):
    /// written over.
    Stale,
}

/// Whether `e` (from a write) says the key was already taken.
pub(super) fn already_exists(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<offsite_storage::Error>()
            .is_some_and(|e| e.kind() == ErrorKind::AlreadyExists)
    })
}

/// What holds `keys.object` at `dest`, judged at `now`. A push that resumes an earlier run of
/// its own (`resuming`) does not wait for a manifest: data there without one is most likely
/// what that run uploaded before it was stopped.
pub(super) async fn taken(
    dest: &Opened,
    keys: &ArchiveKeys,
    now: DateTime<Utc>,
    resuming: bool,
) -> Taken {
    let written = dest
        .store
        .head(&keys.object)
        .await
        .ok()
        .and_then(|m| m.last_modified);
    let young = !resuming && written.is_some_and(|t| now - t < STALE);
    let started = std::time::Instant::now();
    loop {
        if let Ok(Some(Ok(f))) = read_manifest(dest.store.as_ref(), &keys.manifest).await {
            return Taken::Committed(Box::new(f.manifest));
        }
        if !young || started.elapsed() >= WAIT {
            return Taken::Stale;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The sentence for a push that lost the name to another's archive.
pub(super) fn lost(name: &str, dest: &Opened, theirs: &Manifest, ours_sha256: &str) -> String {
    format!(
        "another push stored a different archive under {name} at {} (plaintext SHA-256 {}, this one's {ours_sha256}); nothing of this push was stored there: push it under another name, or with --overwrite to replace it",
        dest.url(),
        theirs.plaintext.sha256
    )
}
