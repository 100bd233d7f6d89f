//! The spool stage: read the source once, hash the plaintext, encrypt, hash the ciphertext and
//! write the spool.
//!
//! Two threads share the CPU work: one reads, hashes the plaintext and encrypts; the other
//! hashes the ciphertext and writes the spool. Destinations read the spool as it grows (see
//! `transfer`), each at its own pace, so a slow destination never holds the others back and
//! memory stays flat: the disk is the buffer.

use std::fs::File;
use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use crate::engine::hashing::{self, Hasher};
use anyhow::{Context, Result};
use offsite_policies::encryption::Recipient;

use super::Source;
use crate::archive::Digest;
use crate::engine::spool::{Progress, ProgressTx};

/// Bytes per block between the pipeline's threads.
const BLOCK: usize = 1 << 20;
/// Blocks in flight between the encrypting thread and the spool writer.
const BLOCKS_IN_FLIGHT: usize = 4;

fn open_reader(source: Source) -> Box<dyn Read + Send> {
    match source {
        Source::File(f, _) => Box::new(f),
        Source::Stdin => Box::new(std::io::stdin()),
    }
}

/// Hashes a file and gives it back rewound, to be read again.
pub async fn hash_file(
    mut f: File,
    path: std::path::PathBuf,
    pb: crate::engine::progress::Progress,
) -> Result<(Digest, Source)> {
    use std::io::{Seek, SeekFrom};
    let what = path.display().to_string();
    tokio::task::spawn_blocking(move || -> std::io::Result<(Digest, Source)> {
        let d = hashing::digest_reader(&mut f, |n| count(&pb, n))?;
        f.seek(SeekFrom::Start(0))?;
        Ok((d, Source::File(f, path)))
    })
    .await?
    .with_context(|| format!("cannot read {what}"))
}

/// Hashes standard input, which is then consumed.
pub(super) async fn hash_stdin(pb: crate::engine::progress::Progress) -> Result<Digest> {
    tokio::task::spawn_blocking(move || hashing::digest_reader(std::io::stdin(), |n| count(&pb, n)))
        .await?
        .context("cannot read standard input")
}

fn count(pb: &crate::engine::progress::Progress, n: u64) {
    if let Some(pb) = pb {
        pb.inc(n)
    }
}

pub(super) fn source_name(source: &Source) -> String {
    match source {
        Source::File(_, p) => p.display().to_string(),
        Source::Stdin => "standard input".into(),
    }
}

/// Reads, hashes and encrypts on one thread; hashes and writes the spool on another.
pub(super) async fn produce(
    source: Source,
    recipients: Vec<Recipient>,
    spool: File,
    progress: Arc<ProgressTx>,
    pb: crate::engine::progress::Progress,
) -> Result<(Digest, Digest)> {
    let what = source_name(&source);
    let encrypted = !recipients.is_empty();
    let (tx, rx) = sync_channel::<Vec<u8>>(BLOCKS_IN_FLIGHT);
    // Written blocks come back to be filled again: no fresh memory to fault in per block.
    let (back_tx, back_rx) = sync_channel::<Vec<u8>>(BLOCKS_IN_FLIGHT + 2);
    let sink = BlockSink::new(move |block| {
        tx.send(block).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the spool writer stopped")
        })
    })
    .recycling(back_rx);
    let reader =
        tokio::task::spawn_blocking(move || read_and_encrypt(source, &recipients, sink, pb));
    let writer =
        tokio::task::spawn_blocking(move || write_spool(rx, spool, &progress, encrypted, back_tx));
    let (r, w) = futures::join!(reader, writer);
    let r = r.context("the reading thread panicked")?;
    let w = w.context("the spool thread panicked")?;
    match (r, w) {
        (Ok(plain), Ok(stored)) => {
            let stored = if encrypted { stored } else { plain.clone() };
            Ok((plain, stored))
        }
        // The spool failing (disk full) closes the channel under the reader: report the cause.
        (_, Err(e)) => {
            let dir = crate::engine::cache_dir::spools();
            let hint = if e.kind() == std::io::ErrorKind::StorageFull {
                "; the spool holds the encrypted archive until every destination has it, so it \
                 needs room for all of it: free space there, set OFFSITE_CACHE_DIR to a larger \
                 disk, or push with --no-spool (then nothing can be resumed)"
            } else {
                ""
            };
            Err(anyhow::anyhow!(
                "cannot write the spool in {}: {e}{hint}",
                dir.display()
            ))
        }
        (Err(e), Ok(_)) => Err(anyhow::Error::new(e).context(format!("cannot read {what}"))),
    }
}

/// The function a [`BlockSink`] hands each full block to.
type SendBlock = Box<dyn FnMut(Vec<u8>) -> std::io::Result<()> + Send>;

/// Cuts the (encrypted) stream into blocks of [`BLOCK`] bytes and hands each to a function: the
/// spool thread's channel, or the writers of an unspooled push.
pub(super) struct BlockSink {
    send: SendBlock,
    buf: Vec<u8>,
    recycled: Option<Receiver<Vec<u8>>>,
}

impl BlockSink {
    pub(super) fn new(send: impl FnMut(Vec<u8>) -> std::io::Result<()> + Send + 'static) -> Self {
        BlockSink {
            send: Box::new(send),
            buf: Vec::with_capacity(BLOCK),
            recycled: None,
        }
    }

    /// Fills blocks the consumer hands back through `rx` before allocating new ones.
    fn recycling(mut self, rx: Receiver<Vec<u8>>) -> Self {
        self.recycled = Some(rx);
        self
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = match self.recycled.as_ref().and_then(|rx| rx.try_recv().ok()) {
            Some(mut b) => {
                b.clear();
                b
            }
            None => Vec::with_capacity(BLOCK),
        };
        let block = std::mem::replace(&mut self.buf, next);
        (self.send)(block)
    }
}

impl Write for BlockSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads the source, hashes the plaintext and hands the (encrypted) stream to `sink` in blocks;
/// returns the plaintext digest.
pub(super) fn read_and_encrypt(
    source: Source,
    recipients: &[Recipient],
    sink: BlockSink,
    pb: crate::engine::progress::Progress,
) -> std::io::Result<Digest> {
    let mut source = open_reader(source);
    enum Out {
        Age(age::stream::StreamWriter<BlockSink>),
        Plain(BlockSink),
    }
    let mut out = if recipients.is_empty() {
        Out::Plain(sink)
    } else {
        let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_age())).map_err(
            |e| std::io::Error::other(format!("cannot encrypt to these recipients: {e}")),
        )?;
        Out::Age(enc.wrap_output(sink)?)
    };
    let mut h = Hasher::new();
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        match &mut out {
            Out::Age(w) => w.write_all(&buf[..n])?,
            Out::Plain(w) => w.write_all(&buf[..n])?,
        }
        if let Some(pb) = &pb {
            pb.inc(n as u64);
        }
    }
    let mut sink = match out {
        Out::Age(w) => w.finish()?,
        Out::Plain(w) => w,
    };
    sink.send()?;
    Ok(h.finish())
}

fn write_spool(
    rx: Receiver<Vec<u8>>,
    mut file: File,
    progress: &ProgressTx,
    hash: bool,
    back: std::sync::mpsc::SyncSender<Vec<u8>>,
) -> std::io::Result<Digest> {
    // Write-back runs beside the writing: a helper thread flushes what is written so far every
    // SYNC_EVERY bytes, so that the final fsync has little left to wait for.
    const SYNC_EVERY: u64 = 64 << 20;
    let (sync_tx, sync_rx) = sync_channel::<()>(1);
    let syncer = {
        let f = file.try_clone()?;
        std::thread::spawn(move || {
            for () in sync_rx {
                let _ = f.sync_data();
            }
        })
    };
    let mut h = hash.then(Hasher::new);
    let mut size = 0u64;
    let mut since_sync = 0u64;
    for block in rx {
        if let Some(h) = &mut h {
            h.update(&block);
        }
        file.write_all(&block)?;
        size += block.len() as u64;
        since_sync += block.len() as u64;
        if since_sync >= SYNC_EVERY {
            // Never waits: a flush already queued covers this one too.
            let _ = sync_tx.try_send(());
            since_sync = 0;
        }
        progress.send_replace(Progress::Writing(size));
        // Back to the encrypting thread; dropped if it has enough.
        let _ = back.try_send(block);
    }
    drop(sync_tx);
    let _ = syncer.join();
    file.sync_all()?;
    Ok(h.map(Hasher::finish).unwrap_or(Digest {
        size,
        sha256: String::new(),
    }))
}
