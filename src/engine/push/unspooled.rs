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

use crate::engine::hashing::Hasher;
use anyhow::{bail, Result};
use bytes::Bytes;
use offsite_storage::{ObjectWriter, Receipt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::job::Job;
use super::plan::{self, Action, Step, Survey};
use super::produce::{self, BlockSink};
use super::report::{report, Outcome};
use super::{DestinationReport, PushReport, Source};
use crate::archive::Digest;
use crate::engine::commit::Finished;

/// Blocks queued per destination between the encrypting thread and its writer.
const QUEUED_BLOCKS: usize = 4;

/// The note every destination of an unspooled push carries.
pub const NOT_RESUMABLE: &str =
    "sent without a spool (--no-spool): not resumable; a failure here means pushing again";

/// Runs one push without a spool: the spooled push's job, survey, plan, commit and report,
/// with the bytes carried by a [`Fanout`].
pub(super) async fn run(job: Job, source: Source) -> Result<PushReport> {
    let survey = Survey::read(&job.destinations, &job.keys).await;
    if let Some(url) = survey.holding_a_manifest().filter(|_| !job.overwrite) {
        bail!(
            "an archive named {:?} is already stored at {url}; --no-spool cannot tell whether the stream is the same archive before reading it all, so nothing was sent: pass --overwrite to replace it everywhere, push under another --name, or push without --no-spool",
            job.name
        );
    }
    let created = job.created_now;
    let steps = job.steps(&survey, created, None);
    let (fanout, early) = Fanout::open(&job, &steps).await;
    if fanout.writers.is_empty() {
        // Nothing will take the stream (every destination refused or failed already): say so
        // without reading it.
        let outcome = Outcome {
            results: early,
            ..Outcome::nothing_sent(None)
        };
        return Ok(report(&job, created, steps, outcome));
    }
    let streamed = fanout.stream(&job, source).await?;
    // Every writer has finished: the push's time for each copy.
    let took = job.elapsed();
    let facts = job.facts(created, streamed.plaintext.clone(), streamed.stored.clone());
    let mut results = early;
    for (i, sent) in streamed.sent {
        let (dest, keys) = (&job.destinations[i], &job.keys[i]);
        let mut r = match sent {
            Err(why) => DestinationReport::failed(dest, keys, why),
            Ok(receipt) => {
                let done = Finished {
                    dest,
                    keys,
                    receipt,
                    computed: Vec::new(),
                    retention: steps[i].retention,
                    create_only: matches!(steps[i].action, Action::Upload | Action::Replace),
                    overwrote: steps[i].action == Action::Replace,
                    took: Some(took),
                };
                super::commit_one(&facts, done).await
            }
        };
        r.message = Some(match r.message.take() {
            Some(m) => format!("{m}; {NOT_RESUMABLE}"),
            None => NOT_RESUMABLE.to_string(),
        });
        results.push((i, r));
    }
    let outcome = Outcome {
        plaintext: Some(streamed.plaintext),
        sent: Some(streamed.stored),
        resumed: false,
        results,
    };
    Ok(report(&job, created, steps, outcome))
}

/// A writer task's end: its receipt, or why it has none (or how the task itself failed).
type Joined = Result<Result<Receipt, String>, tokio::task::JoinError>;

/// One writer per destination that gets bytes, each fed by its own bounded queue.
struct Fanout {
    senders: Vec<mpsc::Sender<Bytes>>,
    writers: Vec<(usize, JoinHandle<Result<Receipt, String>>)>,
    /// Whether the whole stream was read, told to every writer once its queue is drained.
    read_all: watch::Sender<Option<bool>>,
}

/// What the stream came to: its digests, and each writer's receipt or why it has none.
struct Streamed {
    plaintext: Digest,
    stored: Digest,
    sent: Vec<(usize, Result<Receipt, String>)>,
}

impl Fanout {
    /// Prepares every uploading step and opens its writer; the reports of those that failed
    /// or were refused already.
    async fn open(job: &Job, steps: &[Step]) -> (Fanout, Vec<(usize, DestinationReport)>) {
        let (read_all, read_all_rx) = watch::channel(None::<bool>);
        let mut fanout = Fanout {
            senders: Vec::new(),
            writers: Vec::new(),
            read_all,
        };
        let mut early = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if !step.action.uploads() {
                continue;
            }
            let (dest, k) = (&job.destinations[i], &job.keys[i]);
            if let Action::Skip(status, message) = plan::prepare(dest, k, step.action.clone()).await
            {
                early.push((i, DestinationReport::skipped(dest, k, status, message)));
                continue;
            }
            let create_only = step.action == Action::Upload;
            let options = plan::put_options(dest, step.retention, None, create_only);
            let writer = match dest.store.writer(&k.object, options).await {
                Ok(w) => w,
                Err(e) => {
                    early.push((i, DestinationReport::failed(dest, k, e.to_string())));
                    continue;
                }
            };
            let (tx, rx) = mpsc::channel::<Bytes>(QUEUED_BLOCKS);
            fanout.senders.push(tx);
            let feeding = tokio::spawn(feed(writer, rx, read_all_rx.clone()));
            fanout.writers.push((i, feeding));
        }
        (fanout, early)
    }

    /// Reads, hashes and encrypts on one thread; hashes the ciphertext and hands each block to
    /// every writer still going. The writers publish only when the whole stream was read, and
    /// was what the caller checked.
    async fn stream(self, job: &Job, source: Source) -> Result<Streamed> {
        let Fanout {
            mut senders,
            writers,
            read_all,
        } = self;
        let stored_hash = Arc::new(Mutex::new(Hasher::new()));
        let sink = {
            let stored_hash = Arc::clone(&stored_hash);
            BlockSink::new(move |block| {
                {
                    stored_hash.lock().expect("hash lock").update(&block);
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
            let recipients = job.recipients.clone();
            let pb = job.progress.clone();
            move || produce::read_and_encrypt(source, &recipients, sink, pb)
        })
        .await?;
        let changed = match (&produced, &job.expect_plaintext) {
            (Ok(p), Some(want)) if p != want => Some(format!(
                "the source changed while it was pushed: it was checked as {} bytes with SHA-256 {}, then read as {} bytes with SHA-256 {}; nothing was stored; push again once the backup job has finished writing it",
                want.size, want.sha256, p.size, p.sha256
            )),
            _ => None,
        };
        read_all.send_replace(Some(produced.is_ok() && changed.is_none()));
        let mut joined = Vec::new();
        for (i, handle) in writers {
            joined.push((i, handle.await));
        }
        let plaintext = match produced {
            Ok(p) => p,
            Err(e) => return Err(unread(e, &joined)),
        };
        let sent = joined
            .into_iter()
            .map(|(i, r)| {
                (
                    i,
                    r.unwrap_or_else(|join| Err(format!("the upload task failed: {join}"))),
                )
            })
            .collect();
        if let Some(why) = changed {
            bail!(why);
        }
        let stored = if job.encrypted() {
            stored_hash.lock().expect("hash lock").clone().finish()
        } else {
            plaintext.clone()
        };
        Ok(Streamed {
            plaintext,
            stored,
            sent,
        })
    }
}

/// The push's error when the source was not read to the end: every writer was aborted (the
/// flag stayed down), so nothing was published.
fn unread(e: std::io::Error, joined: &[(usize, Joined)]) -> anyhow::Error {
    let failed_everywhere = e.kind() == std::io::ErrorKind::BrokenPipe;
    let first = joined.iter().find_map(|(_, r)| match r {
        Ok(Err(why)) => Some(why.clone()),
        _ => None,
    });
    match (failed_everywhere, first) {
        (true, Some(why)) => anyhow::anyhow!("every destination failed; nothing was stored: {why}"),
        _ => anyhow::Error::new(e).context("cannot read the source; nothing was stored"),
    }
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
