//! What a killed write leaves at a destination that is not a copy: a `file://` destination's
//! temporary files (`.offsite-tmp-*`) and open multipart uploads (where the store can list
//! them). `ls` and `status` show those older than [`stale_after`]; push and prune remove them.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;

use crate::registry::{key_prefix, Opened};

/// How old a temporary file or an open upload must be to count as left behind: a push that
/// is running now keeps writing to its own, so a day-old one belongs to no running push.
pub fn stale_after() -> chrono::Duration {
    chrono::Duration::days(1)
}

/// One thing a killed write left at a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    /// Its key (a temporary file's path under the destination, or the upload's key).
    pub key: String,
    /// What it is.
    #[serde(flatten)]
    pub kind: LeftoverKind,
    /// When it was last written (a temporary file) or started (an upload).
    pub since: DateTime<Utc>,
}

/// The kinds of [`Leftover`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LeftoverKind {
    /// A temporary file of a write to a `file://` destination that never finished.
    Temporary {
        /// Its size in bytes.
        size: u64,
    },
    /// A multipart upload never completed nor aborted.
    Upload {
        /// The provider's upload id.
        id: String,
    },
}

/// The temporary files and open uploads at `loc` older than `before`.
pub async fn find(
    loc: &Opened,
    before: DateTime<Utc>,
) -> Result<Vec<Leftover>, offsite_storage::Error> {
    let mut out = Vec::new();
    if let Some(local) = &loc.local {
        for t in local.stale_temporaries(before).await? {
            out.push(Leftover {
                key: t.key,
                kind: LeftoverKind::Temporary { size: t.size },
                since: t.modified,
            });
        }
    }
    if loc.store.capabilities().list_uploads && loc.store.multipart().is_some() {
        let uploads: Vec<_> = loc
            .store
            .list_uploads(key_prefix(&loc.location))
            .try_collect()
            .await?;
        for u in uploads {
            let Some(started) = u.started.filter(|t| *t < before) else {
                continue;
            };
            out.push(Leftover {
                key: u.key,
                kind: LeftoverKind::Upload { id: u.id },
                since: started,
            });
        }
    }
    Ok(out)
}

/// Removes one leftover: deletes the temporary file, aborts the upload.
pub async fn remove(loc: &Opened, l: &Leftover) -> Result<(), offsite_storage::Error> {
    match &l.kind {
        LeftoverKind::Temporary { size } => match &loc.local {
            Some(local) => {
                let t = offsite_storage::Temporary {
                    key: l.key.clone(),
                    size: *size,
                    modified: l.since,
                };
                local.remove_temporary(&t).await
            }
            None => Ok(()),
        },
        LeftoverKind::Upload { id } => match loc.store.multipart() {
            Some(mp) => mp.abort_upload(&l.key, id).await,
            None => Ok(()),
        },
    }
}

/// What sweeping a destination did to one leftover.
#[derive(Debug, Clone, Serialize)]
pub struct Swept {
    /// The destination's URL.
    pub url: String,
    /// The leftover.
    #[serde(flatten)]
    pub leftover: Leftover,
    /// Why it could not be removed, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Removes what killed writes left at each location more than [`stale_after`] before `now`.
/// A location that cannot be listed is skipped (the next run tries again).
pub async fn sweep(locations: &[Opened], now: DateTime<Utc>) -> Vec<Swept> {
    let mut out = Vec::new();
    for loc in locations {
        let found = match find(loc, now - stale_after()).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(url = %loc.url(), error = %e, "cannot look for what killed pushes left");
                continue;
            }
        };
        for leftover in found {
            let error = remove(loc, &leftover).await.err().map(|e| e.to_string());
            out.push(Swept {
                url: loc.url().to_string(),
                leftover,
                error,
            });
        }
    }
    out
}
