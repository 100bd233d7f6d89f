//! What an archive holds. When a copy's plaintext is a tar (plain, gzip or zstd, decided by
//! its first bytes, never by its name), it is read as one in the same streaming pass that
//! hashes it: deep verify and drills count its members (a tarball the backup job wrote broken
//! is found although its hashes match), `restore --list` lists them and `restore --extract`
//! writes the chosen ones.
//!
//! The plaintext reaches the tar reader through a bounded pipe of chunks (the readback's
//! sink), so memory stays flat with the archive's size; the hash covers every byte even when
//! the tar reader stops early, since the readback hashes what it hands the pipe.

mod extract;

use std::io::{self, Cursor, Read, Write};
use std::ops::ControlFlow;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use serde::Serialize;

pub use extract::{Extract, PublishError, Published};

use super::identity::Identities;
use super::progress::Progress;
use super::readback::{read_copy, Proven, ReadbackError, StoredCopy};
use crate::archive::RecordedContents;

/// Chunks (of at most 1 MiB: what the readback writes at once) in flight between the readback
/// and the tar reader.
const PIPE_DEPTH: usize = 4;

/// A tar's compression, decided by the plaintext's magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Format {
    /// A plain tar (`ustar` at offset 257).
    #[serde(rename = "tar")]
    Tar,
    /// gzip (`1f 8b 08`) around a tar.
    #[serde(rename = "tar.gz")]
    TarGz,
    /// zstd (`28 b5 2f fd`) around a tar.
    #[serde(rename = "tar.zst")]
    TarZst,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::TarZst => "tar.zst",
        })
    }
}

impl Format {
    /// The compression's name, for a stream that broke before it could be told to be a tar.
    fn compression(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::TarGz => "gzip",
            Format::TarZst => "zstd",
        }
    }
}

/// What reading the plaintext as a tar found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The bytes are no tar: hashed, not opened; why, in words.
    NotTar(String),
    /// A gzip or zstd stream that broke before enough of it decompressed to tell what it
    /// holds.
    BadCompression {
        /// `gzip` or `zstd`.
        compression: &'static str,
        /// What the decompressor said.
        error: String,
    },
    /// A tar, read to its end or until it broke (or the visitor stopped it).
    Tar {
        /// Its compression.
        format: Format,
        /// Members read.
        members: u64,
        /// Their total size.
        bytes: u64,
        /// What made it unreadable, if anything did.
        damage: Option<String>,
    },
}

impl Found {
    /// The failure a deep check reports when the plaintext matched its hashes but the tar in
    /// it is unreadable; `None` when nothing is wrong with what it holds.
    pub fn damage(&self) -> Option<String> {
        match self {
            Found::BadCompression { compression, error } => Some(format!(
                "the bytes match what was pushed, but it is not a readable {compression} stream: {error}"
            )),
            Found::Tar {
                format,
                members,
                damage: Some(e),
                ..
            } => Some(format!(
                "the bytes match what was pushed, but it is not a readable {format}: {e} (after {members} good member(s)); the backup job wrote it broken: fix the job and push a good archive"
            )),
            _ => None,
        }
    }

    /// The record's form of what was found.
    pub fn recorded(&self) -> RecordedContents {
        match self {
            Found::NotTar(reason) => RecordedContents {
                opened: false,
                format: None,
                members: None,
                bytes: None,
                reason: Some(reason.clone()),
            },
            Found::BadCompression { compression, error } => RecordedContents {
                opened: false,
                format: Some((*compression).into()),
                members: None,
                bytes: None,
                reason: Some(error.clone()),
            },
            Found::Tar {
                format,
                members,
                bytes,
                damage,
            } => RecordedContents {
                opened: true,
                format: Some(format.to_string()),
                members: Some(*members),
                bytes: Some(*bytes),
                reason: damage.clone(),
            },
        }
    }

    /// A sentence for a check that passed: what the contents are.
    pub fn summary(&self) -> String {
        match self {
            Found::Tar {
                format,
                members,
                bytes,
                ..
            } => format!(
                "opened as a {format}: {members} member(s), {}",
                crate::units::human_bytes(*bytes)
            ),
            Found::NotTar(reason) => format!("contents not opened: {reason}"),
            Found::BadCompression { compression, .. } => {
                format!("not a readable {compression} stream")
            }
        }
    }

    /// The warning for a name that promises a tar (`.tar`, `.tar.gz`, `.tgz`, `.tar.zst`)
    /// over bytes that are no tar: not a failure, since the bytes are the ones pushed.
    pub fn misnamed(&self, name: &str) -> Option<String> {
        let Found::NotTar(reason) = self else {
            return None;
        };
        let promised = [".tar", ".tar.gz", ".tgz", ".tar.zst"]
            .into_iter()
            .find(|s| name.ends_with(s))?;
        Some(format!(
            "{name} is named like a {} but its bytes are no tar ({reason}): its contents were not opened; its hashes match what was pushed, so the backup job wrote it this way (check the job if it should be a tar)",
            promised.trim_start_matches('.')
        ))
    }
}

/// Sees each member as the tar is read; `Break` stops the reading (the rest of the plaintext
/// is still hashed): `Break(Some(error))` when reading the member's data failed (damage),
/// `Break(None)` when the visitor has seen enough.
pub trait Visit {
    /// One member, its data not yet read.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> ControlFlow<Option<String>>;
}

/// Counts members and nothing more (deep verify and drills).
pub struct Count;

impl Visit for Count {
    fn entry<R: Read>(&mut self, _: &mut tar::Entry<'_, R>) -> ControlFlow<Option<String>> {
        ControlFlow::Continue(())
    }
}

/// What a member is, as `--list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier member.
    Hardlink,
    /// A device, FIFO or another special file.
    Other,
}

impl Kind {
    fn of(t: tar::EntryType) -> Kind {
        use tar::EntryType as T;
        match t {
            T::Regular | T::Continuous | T::GNUSparse => Kind::File,
            T::Directory => Kind::Dir,
            T::Symlink => Kind::Symlink,
            T::Link => Kind::Hardlink,
            _ => Kind::Other,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Hardlink => "hardlink",
            Kind::Other => "other",
        })
    }
}

/// One member as `--list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Its path in the archive, as stored.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// What it is.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Where a link points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Collects the members (`restore --list`): a line each, not the archive's bytes.
#[derive(Default)]
pub struct List(pub Vec<Member>);

impl Visit for List {
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> ControlFlow<Option<String>> {
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.0.push(Member {
            path: lossy(&e.path_bytes()),
            size: e.size(),
            kind: Kind::of(e.header().entry_type()),
            link: e.link_name_bytes().map(|b| lossy(&b)),
        });
        ControlFlow::Continue(())
    }
}

/// Reads `copy` back with every check (as [`read_copy`]) and, in the same pass, reads its
/// plaintext as a tar, showing each member to `visitor`. The readback's result comes first:
/// what the tar reader found means something only when the hashes held.
pub async fn read_through<V: Visit + Send + 'static>(
    copy: &StoredCopy<'_>,
    identities: Option<Arc<Identities>>,
    pb: Progress,
    prove_stored: bool,
    visitor: V,
) -> (Result<Proven, ReadbackError>, Found, V) {
    let (tx, rx) = sync_channel(PIPE_DEPTH);
    let reader = tokio::task::spawn_blocking(move || {
        let mut visitor = visitor;
        let found = walk(PipeReader::new(rx), &mut visitor);
        (found, visitor)
    });
    // The pipe's writing end is dropped here on every path, so the reader sees the end.
    let read = read_copy(copy, identities, PipeWriter(Some(tx)), pb, prove_stored)
        .await
        .map(|(proven, _)| proven);
    let (found, visitor) = reader.await.expect("the tar reader does not panic");
    (read, found, visitor)
}

/// The readback's side of the pipe: hands each write on as a chunk, and drops what the tar
/// reader no longer wants once it stopped (the readback hashes it all the same).
struct PipeWriter(Option<SyncSender<Vec<u8>>>);

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(tx) = &self.0 {
            if tx.send(buf.to_vec()).is_err() {
                self.0 = None;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The tar reader's side of the pipe.
struct PipeReader {
    rx: Receiver<Vec<u8>>,
    chunk: Cursor<Vec<u8>>,
}

impl PipeReader {
    fn new(rx: Receiver<Vec<u8>>) -> PipeReader {
        PipeReader {
            rx,
            chunk: Cursor::new(Vec::new()),
        }
    }
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.chunk.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match self.rx.recv() {
                Ok(next) => self.chunk = Cursor::new(next),
                Err(_) => return Ok(0),
            }
        }
    }
}

/// Reads up to `n` bytes (fewer only at the end).
fn head(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Whether a block is a tar header (POSIX `ustar`, and GNU's `ustar  `).
fn is_tar(block: &[u8]) -> bool {
    block.get(257..262) == Some(b"ustar")
}

/// Tells the plaintext's format from its first bytes.
fn sniff(first: &[u8]) -> Option<Format> {
    if first.starts_with(&[0x1f, 0x8b, 0x08]) {
        Some(Format::TarGz)
    } else if first.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Format::TarZst)
    } else if is_tar(first) {
        Some(Format::Tar)
    } else {
        None
    }
}

/// Reads `input` as a tar when it is one, showing each member to `visitor`, then reads the
/// compressed stream to its end (so a truncated tar.gz is found after a tar's end blocks too).
pub fn walk<'a, V: Visit>(input: impl Read + 'a, visitor: &mut V) -> Found {
    let mut input = input;
    let first = match head(&mut input, 512) {
        Ok(b) => b,
        Err(e) => return Found::NotTar(format!("unreadable: {e}")),
    };
    let Some(format) = sniff(&first) else {
        return Found::NotTar("no gzip, zstd or tar signature at its start".into());
    };
    let raw = Cursor::new(first).chain(input);
    let mut decoded: Box<dyn Read + 'a> = match format {
        Format::Tar => Box::new(raw),
        Format::TarGz => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        Format::TarZst => match zstd::stream::read::Decoder::new(raw) {
            Ok(d) => Box::new(d),
            Err(e) => {
                return Found::BadCompression {
                    compression: format.compression(),
                    error: e.to_string(),
                }
            }
        },
    };
    let block = match head(&mut decoded, 512) {
        Ok(b) => b,
        Err(e) => {
            return Found::BadCompression {
                compression: format.compression(),
                error: e.to_string(),
            }
        }
    };
    if !is_tar(&block) {
        return Found::NotTar(format!(
            "{}-compressed data that is not a tar",
            format.compression()
        ));
    }
    let mut archive = tar::Archive::new(Cursor::new(block).chain(decoded));
    let (mut members, mut bytes) = (0u64, 0u64);
    let mut stopped = false;
    let read = (|| -> Result<(), String> {
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| e.to_string())?;
            members += 1;
            bytes += entry.size();
            match visitor.entry(&mut entry) {
                ControlFlow::Continue(()) => {}
                ControlFlow::Break(None) => {
                    stopped = true;
                    break;
                }
                ControlFlow::Break(Some(e)) => return Err(e),
            }
        }
        Ok(())
    })();
    let damage = match read {
        Err(e) => Some(e),
        Ok(()) if stopped => None,
        // Past the end-of-archive blocks: padding, and for gzip and zstd the end of the
        // compressed stream (its checksum, or the truncation of a cut-off file).
        Ok(()) => io::copy(&mut archive.into_inner(), &mut io::sink())
            .err()
            .map(|e| format!("after the tar's last member: {e}")),
    };
    Found::Tar {
        format,
        members,
        bytes,
        damage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn found(bytes: &[u8]) -> Found {
        walk(bytes, &mut Count)
    }

    #[test]
    fn tars_are_told_by_their_bytes_in_every_compression() {
        let t = tar_of(&[("a/x", b"hello"), ("a/y", b"world!")]);
        let want = |format| Found::Tar {
            format,
            members: 2,
            bytes: 11,
            damage: None,
        };
        assert_eq!(found(&t), want(Format::Tar));
        assert_eq!(found(&gz(&t)), want(Format::TarGz));
        let zst = zstd::stream::encode_all(&t[..], 3).unwrap();
        assert_eq!(found(&zst), want(Format::TarZst));
    }

    #[test]
    fn what_is_no_tar_is_not_opened() {
        assert!(matches!(found(b"just some text"), Found::NotTar(_)));
        assert!(matches!(found(b""), Found::NotTar(_)));
        let f = found(&gz(b"a gzip of a log, not a tar"));
        assert_eq!(
            f,
            Found::NotTar("gzip-compressed data that is not a tar".into())
        );
        assert!(f.misnamed("db.tar.gz").is_some());
        assert!(f.misnamed("db.sql.gz").is_none());
        assert!(f.damage().is_none());
    }

    #[test]
    fn a_cut_off_or_flipped_tarball_is_damage() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let t = gz(&tar_of(&[("a", &data), ("b", &data)]));
        let cut = found(&t[..t.len() - 20]);
        assert!(cut.damage().is_some(), "{cut:?}");
        let mut flipped = t.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        let f = found(&flipped);
        assert!(
            f.damage()
                .unwrap()
                .starts_with("the bytes match what was pushed, but it is not a readable tar.gz: "),
            "{f:?}"
        );
        // A plain tar cut inside a member.
        let plain = tar_of(&[("a", &data)]);
        assert!(found(&plain[..5000]).damage().is_some());
    }

    #[test]
    fn the_pipe_carries_every_byte_and_stops_quietly() {
        let (tx, rx) = sync_channel(1);
        let reader = std::thread::spawn(move || {
            let mut r = PipeReader::new(rx);
            head(&mut r, 10).unwrap()
        });
        let mut w = PipeWriter(Some(tx));
        for _ in 0..100 {
            // The reader stops after 10 bytes; writing goes on without error.
            w.write_all(b"0123456789abcdef").unwrap();
        }
        drop(w);
        assert_eq!(reader.join().unwrap(), b"0123456789");
    }

    #[test]
    fn members_are_listed() {
        let mut list = List::default();
        walk(&tar_of(&[("dir/f", b"abc")])[..], &mut list);
        assert_eq!(
            list.0,
            vec![Member {
                path: "dir/f".into(),
                size: 3,
                kind: Kind::File,
                link: None
            }]
        );
    }
}
