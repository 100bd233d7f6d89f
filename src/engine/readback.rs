//! Reading a stored copy back with every check: the stored bytes' size and SHA-256, age's
//! authentication of every chunk, and the plaintext's size and SHA-256, in one streaming pass.
//! Used by restore (plaintext to a file or stdout) and deep verify (plaintext discarded).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};

use super::identity::Identities;
use crate::archive::{Digest, Manifest};
use crate::registry::Opened;

/// Why a copy could not be read back good.
#[derive(Debug)]
pub enum ReadbackError {
    /// The copy's bytes are damaged (flipped, truncated, replaced).
    Corrupt(String),
    /// None of the identities can decrypt it.
    WrongKey(String),
    /// The store could not be read (network, permission): the copy may be fine.
    Unreachable(String),
    /// Writing the plaintext failed (disk full at the restore target).
    Output(String),
    /// The copy is in an archive tier and must be thawed before it can be read.
    Archived(String),
}

impl std::fmt::Display for ReadbackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadbackError::Corrupt(m)
            | ReadbackError::WrongKey(m)
            | ReadbackError::Unreachable(m)
            | ReadbackError::Output(m)
            | ReadbackError::Archived(m) => f.write_str(m),
        }
    }
}

/// The digests a read-back proved.
#[derive(Debug, Clone)]
pub struct Proven {
    /// Of the stored bytes, when they were hashed (deep verify) or are the plaintext
    /// (unencrypted copies).
    pub stored: Option<Digest>,
    /// Of the plaintext.
    pub plaintext: Digest,
}

struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Vec<Bytes>, String>>,
    /// The batch being read, in reverse order (the next chunk last).
    batch: Vec<Bytes>,
    current: Bytes,
    store_error: Arc<Mutex<Option<String>>>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if let Some(next) = self.batch.pop() {
                self.current = next;
                continue;
            }
            match self.rx.blocking_recv() {
                Some(Ok(mut batch)) => {
                    batch.reverse();
                    self.batch = batch;
                }
                Some(Err(e)) => {
                    *self.store_error.lock().expect("poisoned") = Some(e.clone());
                    return Err(std::io::Error::other(e));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Streams the copy at `loc` described by `manifest` through every check into `sink`, and
/// gives the sink back. Nothing is trusted until this returns `Ok`.
///
/// `prove_stored` also hashes the stored (encrypted) bytes against the manifest, which deep
/// verify records. Restore leaves it off: the size check, age's authentication of every chunk
/// and the plaintext's SHA-256 already prove the archive, so one hash pass is enough. For an
/// unencrypted copy the stored bytes are the plaintext and are hashed once either way.
#[allow(clippy::too_many_arguments)]
pub async fn read_copy<W: Write + Send + 'static>(
    loc: &Opened,
    object_key: &str,
    version: Option<&str>,
    manifest: &Manifest,
    identities: Option<Arc<Identities>>,
    sink: W,
    pb: crate::engine::progress::Progress,
    prove_stored: bool,
) -> Result<(Proven, W), ReadbackError> {
    let url = loc.url().to_string();
    let got = match version {
        // A copy a delete marker hides (engine::hidden): its data version.
        Some(v) => loc.store.get_version(object_key, v, None).await,
        None => loc.store.get(object_key, None).await,
    };
    let got = got.map_err(|e| {
        if e.is_not_found() {
            ReadbackError::Corrupt(format!("{url}: the data object {object_key} is missing"))
        } else if e.kind() == offsite_storage::ErrorKind::Archived {
            ReadbackError::Archived(format!("{url}: {e}"))
        } else {
            ReadbackError::Unreachable(format!("{url}: {e}"))
        }
    })?;
    if got.meta.size != manifest.stored.size {
        return Err(ReadbackError::Corrupt(format!(
            "{url}: {object_key} has {} bytes but its manifest says {} (truncated or replaced)",
            got.meta.size, manifest.stored.size
        )));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<Bytes>, String>>(4);
    let hash = Arc::new(Mutex::new((Sha256::new(), 0u64)));
    let store_error = Arc::new(Mutex::new(None));
    let reader = ChannelReader {
        rx,
        batch: Vec::new(),
        current: Bytes::new(),
        store_error: store_error.clone(),
    };
    let encrypted = manifest.encrypted();
    let recipients = manifest
        .encryption
        .as_ref()
        .map(|e| e.recipients.join(", "))
        .unwrap_or_default();
    let name = manifest.archive.clone();
    let decode = tokio::task::spawn_blocking(move || -> Result<(Digest, W), ReadbackError> {
        let mut out = HashingWriter {
            inner: sink,
            hash: Sha256::new(),
            size: 0,
        };
        let mut reader = reader;
        let copied = if encrypted {
            let ids = identities.expect("identities are required for encrypted copies");
            let dec = age::Decryptor::new_buffered(std::io::BufReader::with_capacity(
                1 << 20,
                &mut reader,
            ))
            .map_err(|e| {
                ReadbackError::Corrupt(format!(
                    "not a readable age file ({e}): the header is damaged"
                ))
            })?;
            let mut plain = match dec.decrypt(ids.as_age()) {
                Ok(p) => p,
                Err(age::DecryptError::NoMatchingKeys) => {
                    return Err(ReadbackError::WrongKey(format!(
                        "none of the identities in {} can decrypt {name}; it was encrypted for: {recipients}; the identity file holds: {}",
                        ids.path.display(),
                        ids.publics.join(", ")
                    )))
                }
                Err(e) => return Err(ReadbackError::Corrupt(format!("the age header does not authenticate ({e})"))),
            };
            copy_plain(&mut plain, &mut out, &pb)
        } else {
            copy_plain(&mut reader, &mut out, &pb)
        };
        copied?;
        // Read whatever follows the age stream too, so the stored hash covers every byte.
        std::io::copy(&mut reader, &mut std::io::sink())
            .map_err(|e| ReadbackError::Corrupt(format!("reading past the end: {e}")))?;
        out.flush()
            .map_err(|e| ReadbackError::Output(format!("cannot write the restored data: {e}")))?;
        let digest = Digest {
            size: out.size,
            sha256: hex::encode(out.hash.finalize()),
        };
        Ok((digest, out.inner))
    });
    // The stored bytes are hashed on the feeding side, the plaintext on the decrypting side:
    // two cores, one pass.
    let mut stream = got.stream;
    let feed_hash = hash.clone();
    let hash_stored = prove_stored && encrypted;
    let feed = async move {
        // Network chunks (often 16 KiB) go to the decrypting thread in batches of about 1 MiB:
        // one wake-up per batch, not per packet, and no copy.
        const BATCH: usize = 1 << 20;
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batched = 0usize;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => {
                    if hash_stored {
                        let mut h = feed_hash.lock().expect("poisoned");
                        h.0.update(&chunk);
                        h.1 += chunk.len() as u64;
                    }
                    batched += chunk.len();
                    batch.push(chunk);
                    if batched >= BATCH {
                        batched = 0;
                        if tx.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string())).await;
                    return;
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(Ok(batch)).await;
        }
    };
    let ((), decoded) = futures::join!(feed, decode);
    let decoded =
        decoded.map_err(|e| ReadbackError::Unreachable(format!("reader task failed: {e}")))?;
    if let Some(e) = store_error.lock().expect("poisoned").take() {
        return Err(ReadbackError::Unreachable(format!(
            "{url}: reading {object_key} failed: {e}"
        )));
    }
    let (plaintext, sink) = decoded.map_err(|e| match e {
        ReadbackError::Corrupt(m) => ReadbackError::Corrupt(format!("{url}: {object_key}: {m}")),
        other => other,
    })?;
    let mut stored = None;
    if hash_stored {
        let (h, n) = std::mem::replace(&mut *hash.lock().expect("poisoned"), (Sha256::new(), 0));
        let digest = Digest {
            size: n,
            sha256: hex::encode(h.finalize()),
        };
        if digest
            != (Digest {
                size: manifest.stored.size,
                sha256: manifest.stored.sha256.clone(),
            })
        {
            return Err(ReadbackError::Corrupt(format!(
                "{url}: {object_key}: stored bytes hash to {} ({} bytes) but the manifest records {} ({} bytes)",
                digest.sha256, digest.size, manifest.stored.sha256, manifest.stored.size
            )));
        }
        stored = Some(digest);
    }
    if plaintext != manifest.plaintext {
        return Err(ReadbackError::Corrupt(format!(
            "{url}: {object_key}: the decrypted archive hashes to {} ({} bytes) but the manifest records {} ({} bytes)",
            plaintext.sha256, plaintext.size, manifest.plaintext.sha256, manifest.plaintext.size
        )));
    }
    if !encrypted {
        // The stored bytes are the plaintext, proven just above.
        stored = Some(plaintext.clone());
    }
    Ok((Proven { stored, plaintext }, sink))
}

fn copy_plain<R: Read, W: Write>(
    r: &mut R,
    w: &mut HashingWriter<W>,
    pb: &crate::engine::progress::Progress,
) -> Result<(), ReadbackError> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(ReadbackError::Corrupt(format!(
                    "failed authentication after {} good bytes ({e}): the copy has flipped or missing bytes",
                    w.size
                )))
            }
        };
        w.write_all(&buf[..n])
            .map_err(|e| ReadbackError::Output(format!("cannot write the restored data: {e}")))?;
        if let Some(pb) = pb {
            pb.inc(n as u64);
        }
    }
}
