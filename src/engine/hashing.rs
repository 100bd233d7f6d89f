//! One hasher for every stream offsite proves: SHA-256 with a byte count, giving a
//! [`Digest`]. Push hashes the plaintext and the ciphertext with it, restore and verify the
//! bytes they read back, replication the bytes it copied.

use std::io::{Read, Write};

use futures::TryStreamExt;
use sha2::{Digest as _, Sha256};

use crate::archive::Digest;

/// SHA-256 and size of the bytes given so far.
#[derive(Clone, Default)]
pub struct Hasher {
    sha: Sha256,
    size: u64,
}

impl Hasher {
    /// Nothing hashed yet.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Takes in more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// How many bytes were taken in.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest of everything taken in.
    pub fn finish(self) -> Digest {
        Digest {
            size: self.size,
            sha256: hex::encode(self.sha.finalize()),
        }
    }
}

/// A writer that hashes what it passes on to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W> HashingWriter<W> {
    /// Hashes what is written to `inner`.
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// How many bytes reached the inner writer so far.
    pub fn written(&self) -> u64 {
        self.hasher.size()
    }

    /// The inner writer and the digest of what reached it.
    pub fn finish(self) -> (W, Digest) {
        (self.inner, self.hasher.finish())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes a whole file or stream, telling `on_bytes` each block's size (a progress bar).
pub fn digest_reader(mut r: impl Read, on_bytes: impl Fn(u64)) -> std::io::Result<Digest> {
    let mut hasher = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        on_bytes(n as u64);
    }
    Ok(hasher.finish())
}

/// Reads a stored object to its end and gives its size and SHA-256: a copy proved by its
/// bytes, with memory bounded by the store's chunk size.
pub async fn object_digest(
    store: &dyn offsite_storage::Storage,
    key: &str,
) -> offsite_storage::Result<Digest> {
    let got = store.get(key, None).await?;
    let hasher = got
        .stream
        .try_fold(Hasher::new(), |mut h, chunk| async move {
            h.update(&chunk);
            Ok(h)
        })
        .await?;
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn every_way_of_hashing_gives_the_same_digest() {
        assert_eq!(Hasher::new().finish().sha256, EMPTY);
        let mut h = Hasher::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!((h.size(), h.clone().finish().sha256.as_str()), (3, ABC));
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (bytes, d) = w.finish();
        assert_eq!((bytes, d), (b"abc".to_vec(), h.finish()));
        let seen = std::cell::Cell::new(0);
        let d = digest_reader(&b"abc"[..], |n| seen.set(seen.get() + n)).unwrap();
        assert_eq!((d.size, d.sha256.as_str(), seen.get()), (3, ABC, 3));
    }

    #[tokio::test]
    async fn an_object_is_hashed_by_its_bytes() {
        let store = offsite_storage::MemoryStore::new();
        let mut w =
            offsite_storage::Storage::writer(&store, "k", offsite_storage::PutOptions::default())
                .await
                .unwrap();
        w.write(bytes::Bytes::from_static(b"abc")).await.unwrap();
        w.finish().await.unwrap();
        let d = object_digest(&store, "k").await.unwrap();
        assert_eq!((d.size, d.sha256.as_str()), (3, ABC));
    }
}
