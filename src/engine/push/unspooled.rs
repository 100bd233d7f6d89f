//! `push --no-spool`: for a stream larger than the local disk. The encrypted stream goes
//! straight from memory into every destination's writer (bounded: each writer holds its parts
//! in flight, the blocks between are few), so nothing touches the disk, and nothing can be
//! resumed: a destination that fails is failed for this run, and a killed push starts over. The
//! report says so.
//!
//! Without a spool the plaintext digest is known only at the end, so a name that already holds
//! a manifest anywhere cannot be compared first: the push refuses before sending anything
//! unless `--overwrite`. The commit stage is the same as a spooled push's; the only receipt
//! checksum it can compare is a whole-object SHA-256 (multipart composites are not computed
//! here, so they are not recorded, and quick verify compares the size there).

use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use bytes::Bytes;
use chrono::Utc;
use offsite_storage::{ObjectWriter, Receipt};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, watch};

use super::commit::{self, ArchiveFacts, Finished};
use super::plan::{self, Action, Target};
use super::produce::{self, BlockSink};
use super::{creation_time, report, DestinationReport, PushReport, PushRequest};
use crate::archive::Digest;

/// Blocks queued per destination between the encrypting thread and its writer.
const QUEUED_BLOCKS: usize = 4;

/// The note every destination of an unspooled push carries.
pub const NOT_RESUMABLE: &str =
    "sent without a spool (--no-spool): not resumable; a failure here means pushing again";

/// Runs one push without a spool.
pub async fn run(req: PushRequest) -> Result<PushReport> {
    let PushRequest {
        source,
        name,
        recipients,
        destinations,
        overwrite,
        progress: pb,
        annotations,
        expect_plaintext,
    } = req;
    let encrypted = !recipients.is_empty();
    let keys = plan::archive_keys(&destinations, &name, encrypted);
    let recipient_strings = plan::sorted_recipients(&recipients);
    let (created, created_from) = creation_time(&name, &source);
    let holdings = plan::survey_all(&destinations, &keys).await;
    if !overwrite {
        if let Some((url, _)) = holdings.iter().find(|(_, h)| h.needs_digest()) {
            bail!(
                "an archive named {name:?} is already stored at {url}; --no-spool cannot tell whether the stream is the same archive before reading it all, so nothing was sent: pass --overwrite to replace it everywhere, push under another --name, or push without --no-spool"
            );
        }
    }
    let now = Utc::now();
    let plan: Vec<Target> = plan::decide(&holdings, None, &recipient_strings, overwrite)
        .into_iter()
        .zip(&destinations)
        .map(|(action, d)| Target {
            action,
            retention: d.options.retention_at(created, now),
        })
        .collect();

    // One writer per destination that gets bytes, each fed by its own bounded queue.
    // Whether the whole stream was read, told to every writer once its queue is drained.
    let (read_all_tx, read_all) = watch::channel(None::<bool>);
    let mut senders = Vec::new();
    let mut writers = Vec::new();
    let mut early = Vec::new();
    for (i, target) in plan.iter().enumerate() {
        if !target.action.uploads() {
            continue;
        }
        let (dest, k) = (&destinations[i], &keys[i]);
        if let Action::Skip(status, message) = plan::prepare(dest, k, target.action.clone()).await {
            early.push((
                i,
                DestinationReport {
                    message: Some(message),
                    ..DestinationReport::new(dest, k, status)
                },
            ));
            continue;
        }
        let options = plan::put_options(dest, target.retention, None);
        let writer = match dest.store.writer(&k.object, options).await {
            Ok(w) => w,
            Err(e) => {
                early.push((i, DestinationReport::failed(dest, k, e.to_string())));
                continue;
            }
        };
        let (tx, rx) = mpsc::channel::<Bytes>(QUEUED_BLOCKS);
        senders.push(tx);
        writers.push((i, tokio::spawn(feed(writer, rx, read_all.clone()))));
    }
    if writers.is_empty() {
        // Nothing will take the stream (every destination refused or failed already): say so
        // without reading it.
        return Ok(report(
            name,
            created,
            created_from,
            encrypted,
            None,
            None,
            false,
            &destinations,
            &keys,
            plan,
            early,
        ));
    }

    // Read, hash and encrypt on one thread; hash the ciphertext and hand each block to every
    // writer still going.
    let stored_hash = Arc::new(Mutex::new((Sha256::new(), 0u64)));
    let sink = {
        let stored_hash = Arc::clone(&stored_hash);
        BlockSink::new(move |block| {
            {
                let mut h = stored_hash.lock().expect("hash lock");
                h.0.update(&block);
                h.1 += block.len() as u64;
            }
            let block = Bytes::from(block);
            senders.retain(|tx| tx.blocking_send(block.clone()).is_ok());
            if senders.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "every destination's upload failed",
                ));
            }
            Ok(())
        })
    };
    let produced = tokio::task::spawn_blocking({
        let recipients = recipients.clone();
        move || produce::read_and_encrypt(source, &recipients, sink, pb)
    })
    .await?;
    // The writers publish only when the whole stream was read, and was what the caller checked.
    let changed = match (&produced, &expect_plaintext) {
        (Ok(p), Some(want)) if p != want => Some(format!(
            "the source changed while it was pushed: it was checked as {} bytes with SHA-256 {}, then read as {} bytes with SHA-256 {}; nothing was stored; push again once the backup job has finished writing it",
            want.size, want.sha256, p.size, p.sha256
        )),
        _ => None,
    };
    read_all_tx.send_replace(Some(produced.is_ok() && changed.is_none()));
    let mut results = Vec::new();
    for (i, handle) in writers {
        let sent = handle.await;
        results.push((i, sent));
    }
    let plaintext = match produced {
        Ok(p) => p,
        Err(e) => {
            // Every writer was aborted (the flag stayed down): nothing was published.
            let failed_everywhere = e.kind() == std::io::ErrorKind::BrokenPipe;
            let first = results.iter().find_map(|(_, r)| match r {
                Ok(Err(why)) => Some(why.clone()),
                _ => None,
            });
            if let (true, Some(why)) = (failed_everywhere, first) {
                bail!("every destination failed; nothing was stored: {why}");
            }
            return Err(anyhow::Error::new(e).context("cannot read the source; nothing was stored"));
        }
    };
    if let Some(why) = changed {
        bail!(why);
    }
    let stored = {
        let h = stored_hash.lock().expect("hash lock");
        if encrypted {
            Digest {
                size: h.1,
                sha256: hex::encode(h.0.clone().finalize()),
            }
        } else {
            plaintext.clone()
        }
    };
    let facts = ArchiveFacts {
        name: name.clone(),
        created,
        created_from,
        recipients: recipients.clone(),
        plaintext: plaintext.clone(),
        stored: stored.clone(),
        annotations,
    };
    let mut reports = early;
    for (i, sent) in results {
        let (dest, k) = (&destinations[i], &keys[i]);
        let mut r = match sent {
            Err(join) => {
                DestinationReport::failed(dest, k, format!("the upload task failed: {join}"))
            }
            Ok(Err(why)) => DestinationReport::failed(dest, k, why),
            Ok(Ok(receipt)) => {
                let done = Finished {
                    dest,
                    keys: k,
                    receipt,
                    computed: Vec::new(),
                    retention: plan[i].retention,
                };
                commit::commit(&facts, done).await
            }
        };
        r.message = Some(match r.message.take() {
            Some(m) => format!("{m}; {NOT_RESUMABLE}"),
            None => NOT_RESUMABLE.to_string(),
        });
        reports.push((i, r));
    }
    Ok(report(
        name,
        created,
        created_from,
        encrypted,
        Some(plaintext),
        Some(stored),
        false,
        &destinations,
        &keys,
        plan,
        reports,
    ))
}

/// Writes the blocks of one destination's queue; once it closes, publishes if the whole stream
/// was read (`read_all` says `Some(true)`), else aborts. An error is the message to report.
async fn feed(
    mut writer: Box<dyn ObjectWriter>,
    mut rx: mpsc::Receiver<Bytes>,
    mut read_all: watch::Receiver<Option<bool>>,
) -> Result<Receipt, String> {
    while let Some(block) = rx.recv().await {
        if let Err(e) = writer.write(block).await {
            let _ = writer.abort().await;
            return Err(e.to_string());
        }
    }
    let whole = matches!(
        read_all.wait_for(|v| v.is_some()).await.map(|v| *v),
        Ok(Some(true))
    );
    if !whole {
        let _ = writer.abort().await;
        return Err("not stored: the source was not read to the end".into());
    }
    writer.finish().await.map_err(|e| e.to_string())
}
