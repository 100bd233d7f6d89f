//! Reading a stored copy back with every check: the stored bytes' size and SHA-256, age's
//! authentication of every chunk, and the plaintext's size and SHA-256, in one streaming pass.
//! Used by restore (plaintext to a file or stdout) and deep verify (plaintext discarded).

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use offsite_storage::GetResult;

use super::hashing::{Hasher, HashingWriter};
use super::identity::Identities;
use super::progress::Progress;
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

/// One stored copy to read: where it is, which object (and which version of it, for a copy a
/// delete marker hides), and the manifest that says what it must be.
#[derive(Debug, Clone, Copy)]
pub struct StoredCopy<'a> {
    /// The location.
    pub loc: &'a Opened,
    /// The data object's full key.
    pub object_key: &'a str,
    /// The data object's version, for a copy a delete marker hides (engine::hidden).
    pub version: Option<&'a str>,
    /// What the copy must be.
    pub manifest: &'a Manifest,
}

/// Streams `copy` through every check into `sink`, and gives the sink back. Nothing is trusted
/// until this returns `Ok`.
///
/// `prove_stored` also hashes the stored (encrypted) bytes against the manifest, which deep
/// verify records. Restore leaves it off: the size check, age's authentication of every chunk
/// and the plaintext's SHA-256 already prove the archive, so one hash pass is enough. For an
/// unencrypted copy the stored bytes are the plaintext and are hashed once either way.
pub async fn read_copy<W: Write + Send + 'static>(
    copy: &StoredCopy<'_>,
    identities: Option<Arc<Identities>>,
    sink: W,
    pb: Progress,
    prove_stored: bool,
) -> Result<(Proven, W), ReadbackError> {
    let got = open(copy).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<Bytes>, String>>(4);
    let store_error = Arc::new(Mutex::new(None));
    let reader = ChannelReader {
        rx,
        batch: Vec::new(),
        current: Bytes::new(),
        store_error: store_error.clone(),
    };
    let unlock = copy.manifest.encrypted().then(|| Unlock {
        identities,
        archive: copy.manifest.archive.clone(),
        recipients: copy
            .manifest
            .encryption
            .as_ref()
            .map(|e| e.recipients.join(", "))
            .unwrap_or_default(),
    });
    let hash_stored = prove_stored && unlock.is_some();
    let decode = tokio::task::spawn_blocking(move || decode(reader, sink, unlock, &pb));
    // The stored bytes are hashed on the feeding side, the plaintext on the decrypting side:
    // two cores, one pass.
    let (stored, decoded) = futures::join!(feed(got.stream, tx, hash_stored), decode);
    let decoded =
        decoded.map_err(|e| ReadbackError::Unreachable(format!("reader task failed: {e}")))?;
    let (url, object_key) = (copy.loc.url(), copy.object_key);
    if let Some(e) = store_error.lock().expect("poisoned").take() {
        return Err(ReadbackError::Unreachable(format!(
            "{url}: reading {object_key} failed: {e}"
        )));
    }
    let (plaintext, sink) = decoded.map_err(|e| match e {
        ReadbackError::Corrupt(m) => ReadbackError::Corrupt(format!("{url}: {object_key}: {m}")),
        other => other,
    })?;
    Ok((prove(copy, stored, plaintext)?, sink))
}

/// Opens the copy's data object and checks its size against the manifest before a byte is read.
async fn open(copy: &StoredCopy<'_>) -> Result<GetResult, ReadbackError> {
    let StoredCopy {
        loc,
        object_key,
        version,
        manifest,
    } = *copy;
    let url = loc.url();
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
    Ok(got)
}

/// Feeds the store's stream to the decoding thread, hashing the stored bytes on the way when
/// asked (the digest is returned). A store error goes down the channel for the reader to
/// record.
async fn feed(
    mut stream: offsite_storage::ByteStream,
    tx: tokio::sync::mpsc::Sender<Result<Vec<Bytes>, String>>,
    hash_stored: bool,
) -> Option<Digest> {
    // Network chunks (often 16 KiB) go to the decrypting thread in batches of about 1 MiB:
    // one wake-up per batch, not per packet, and no copy.
    const BATCH: usize = 1 << 20;
    let mut hash = hash_stored.then(Hasher::new);
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0usize;
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => {
                if let Some(h) = &mut hash {
                    h.update(&chunk);
                }
                batched += chunk.len();
                batch.push(chunk);
                if batched >= BATCH {
                    batched = 0;
                    if tx.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                batch.clear();
                break;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch)).await;
    }
    hash.map(Hasher::finish)
}

/// What decrypting a copy needs, and what its error messages name.
struct Unlock {
    identities: Option<Arc<Identities>>,
    archive: String,
    recipients: String,
}

/// On the blocking thread: decrypts (when `unlock` is given) and hashes the plaintext into
/// `sink`, then reads whatever follows so that the stored hash covers every byte.
fn decode<W: Write>(
    mut reader: ChannelReader,
    sink: W,
    unlock: Option<Unlock>,
    pb: &Progress,
) -> Result<(Digest, W), ReadbackError> {
    let mut out = HashingWriter::new(sink);
    match unlock {
        Some(unlock) => decrypt(&mut reader, &mut out, unlock, pb)?,
        None => copy_plain(&mut reader, &mut out, pb)?,
    }
    // Read whatever follows the age stream too, so the stored hash covers every byte.
    std::io::copy(&mut reader, &mut std::io::sink())
        .map_err(|e| ReadbackError::Corrupt(format!("reading past the end: {e}")))?;
    out.flush()
        .map_err(|e| ReadbackError::Output(format!("cannot write the restored data: {e}")))?;
    let (sink, digest) = out.finish();
    Ok((digest, sink))
}

/// Decrypts the age stream `reader` carries into `out`.
fn decrypt<R: Read, W: Write>(
    reader: &mut R,
    out: &mut HashingWriter<W>,
    unlock: Unlock,
    pb: &Progress,
) -> Result<(), ReadbackError> {
    let ids = unlock
        .identities
        .expect("identities are required for encrypted copies");
    let dec = age::Decryptor::new_buffered(std::io::BufReader::with_capacity(1 << 20, reader))
        .map_err(|e| {
            ReadbackError::Corrupt(format!(
                "not a readable age file ({e}): the header is damaged"
            ))
        })?;
    let mut plain = match dec.decrypt(ids.as_age()) {
        Ok(p) => p,
        Err(age::DecryptError::NoMatchingKeys) => {
            return Err(ReadbackError::WrongKey(format!(
                "none of the identities in {} can decrypt {}; it was encrypted for: {}; the identity file holds: {}",
                ids.path.display(),
                unlock.archive,
                unlock.recipients,
                ids.publics.join(", ")
            )))
        }
        Err(e) => {
            return Err(ReadbackError::Corrupt(format!(
                "the age header does not authenticate ({e})"
            )))
        }
    };
    copy_plain(&mut plain, out, pb)
}

/// Compares what was read with what the manifest records: the stored bytes' digest (when they
/// were hashed) and the plaintext's.
fn prove(
    copy: &StoredCopy<'_>,
    stored: Option<Digest>,
    plaintext: Digest,
) -> Result<Proven, ReadbackError> {
    let (url, object_key, manifest) = (copy.loc.url(), copy.object_key, copy.manifest);
    if let Some(digest) = &stored {
        let recorded = Digest {
            size: manifest.stored.size,
            sha256: manifest.stored.sha256.clone(),
        };
        if *digest != recorded {
            return Err(ReadbackError::Corrupt(format!(
                "{url}: {object_key}: stored bytes hash to {} ({} bytes) but the manifest records {} ({} bytes)",
                digest.sha256, digest.size, manifest.stored.sha256, manifest.stored.size
            )));
        }
    }
    if plaintext != manifest.plaintext {
        return Err(ReadbackError::Corrupt(format!(
            "{url}: {object_key}: the decrypted archive hashes to {} ({} bytes) but the manifest records {} ({} bytes)",
            plaintext.sha256, plaintext.size, manifest.plaintext.sha256, manifest.plaintext.size
        )));
    }
    // Unencrypted: the stored bytes are the plaintext, proven just above.
    let stored = if manifest.encrypted() {
        stored
    } else {
        Some(plaintext.clone())
    };
    Ok(Proven { stored, plaintext })
}

fn copy_plain<R: Read, W: Write>(
    r: &mut R,
    w: &mut HashingWriter<W>,
    pb: &Progress,
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
                    w.written()
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
