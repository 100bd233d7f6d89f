//! The two listings a replication plans from, each streamed in key order into a bounded
//! channel on a task of its own, keeping only the shard's keys.

use std::sync::Arc;

use futures::StreamExt;
use offsite_policies::replication::{shard_of, Item};
use offsite_storage::{ObjectMeta, Storage};
use tokio::sync::mpsc;

use crate::registry::Opened;

/// Which end a listing is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// Where the keys come from: it must list.
    Source,
    /// Where they go: a directory that does not exist yet is empty.
    Destination,
}

/// Where a listing ended: the keys it gave (all, and in the shard), or why it failed.
pub(super) type Listed = Result<(u64, u64), String>;

/// A listing under way: its items in key order, and how it ended.
pub(super) struct Listing {
    /// The items, in key order.
    pub items: mpsc::Receiver<Item>,
    /// How it ended, once the items are all taken (or no longer wanted).
    pub task: tokio::task::JoinHandle<Listed>,
}

/// Streams `at`'s listing into a bounded channel, keeping the shard's keys.
pub(super) fn spawn(
    at: &Opened,
    side: Side,
    shard: Option<(u32, u32)>,
    with_etag: bool,
) -> Listing {
    let (tx, rx) = mpsc::channel::<Item>(4096);
    let lister = Lister {
        store: at.store.clone(),
        url: at.url().to_string(),
        side,
        shard,
        with_etag,
    };
    // The store says whether its listing is in key order (the contract's `ordered_listing`,
    // checked by the conformance suite); one that does not is sorted here first.
    let sorted = at.store.capabilities().ordered_listing;
    let task = tokio::spawn(async move {
        if sorted {
            lister.stream(tx).await
        } else {
            lister.sort_then_stream(tx).await
        }
    });
    Listing { items: rx, task }
}

/// One listing's settings.
struct Lister {
    store: Arc<dyn Storage>,
    url: String,
    side: Side,
    shard: Option<(u32, u32)>,
    with_etag: bool,
}

impl Lister {
    fn keep(&self, m: &ObjectMeta) -> bool {
        self.shard.is_none_or(|(i, n)| shard_of(&m.key, n) == i)
    }

    fn item(&self, m: ObjectMeta) -> Item {
        Item {
            // S3 ETags are the MD5 of a single-request object; a multipart one (`-N`) is not
            // comparable with a copy made another way.
            etag: m.etag.filter(|e| self.with_etag && !e.contains('-')),
            key: m.key,
            size: m.size,
            sha256: None,
        }
    }

    /// A provider that lists in key order: each key goes on as it comes.
    async fn stream(self, tx: mpsc::Sender<Item>) -> Listed {
        let (mut total, mut kept) = (0u64, 0u64);
        let mut listing = self.store.list("");
        while let Some(m) = listing.next().await {
            let m = m.map_err(|e| format!("cannot list {}: {e}", self.url))?;
            total += 1;
            if self.keep(&m) {
                kept += 1;
                if tx.send(self.item(m)).await.is_err() {
                    break;
                }
            }
        }
        Ok((total, kept))
    }

    /// A walk in no particular order (a local directory): all of it, sorted, then sent.
    async fn sort_then_stream(self, tx: mpsc::Sender<Item>) -> Listed {
        let mut total = 0u64;
        let mut all = Vec::new();
        let mut listing = self.store.list("");
        while let Some(m) = listing.next().await {
            let m = match m {
                // A destination directory that does not exist yet is empty; writing the
                // first copy creates it.
                Err(e) if e.is_not_found() && self.side == Side::Destination => break,
                m => m.map_err(|e| format!("cannot list {}: {e}", self.url))?,
            };
            total += 1;
            if self.keep(&m) {
                all.push(self.item(m));
            }
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));
        let kept = all.len() as u64;
        for i in all {
            if tx.send(i).await.is_err() {
                break;
            }
        }
        Ok((total, kept))
    }
}
