//! Where restored plaintext goes: a file, written under a temporary name and put in place only
//! when every check passed, or standard output, counted so that restore never falls back onto
//! bytes already written.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use offsite_storage::scratch::Scratch;

use super::Target;
use crate::engine::identity::Identities;
use crate::engine::progress::Progress;
use crate::engine::readback::{read_copy, Proven, ReadbackError, StoredCopy};
use crate::error::usage;

/// `-o DIR` restores into the directory under the archive's name, as `cp` does; an existing
/// file is never replaced without `--force`. A character device or a FIFO is written in place
/// (`/dev/null` needs no `--force`: nothing is replaced); any other kind of file is refused.
pub(super) fn resolve_target(target: &Target, name: &str) -> Result<Target> {
    let (path, force) = match target {
        Target::File { path, force } if path.is_dir() => (path.join(name), *force),
        Target::File { path, force } => (path.clone(), *force),
        t => return Ok(t.clone()),
    };
    let Ok(md) = std::fs::metadata(&path) else {
        return Ok(Target::File { path, force });
    };
    use std::os::unix::fs::FileTypeExt;
    let kind = md.file_type();
    if kind.is_char_device() || kind.is_fifo() {
        return Ok(Target::Device { path });
    }
    let what = if kind.is_file() {
        if force {
            return Ok(Target::File { path, force });
        }
        return Err(usage(format!(
            "{} already exists; restore never overwrites a file unless --force is given",
            path.display()
        )));
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(usage(format!(
        "{} is {what}; restore writes a new or regular file, a character device (such as /dev/null) or a FIFO: give another -o",
        path.display()
    )))
}

/// How many bytes reached standard output over every attempt: bytes written there cannot be
/// taken back.
#[derive(Debug, Clone, Default)]
pub(super) struct Written(Arc<AtomicU64>);

impl Written {
    /// Whether any byte reached standard output.
    pub(super) fn any(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}

/// Reads one copy into `target` (already resolved), counting what reaches standard output.
pub(super) async fn read_to(
    copy: &StoredCopy<'_>,
    identities: Option<Arc<Identities>>,
    target: &Target,
    pb: Progress,
    written: &Written,
) -> Result<Proven, ReadbackError> {
    match target {
        Target::Stdout => {
            let out = CountingWriter {
                inner: std::io::stdout(),
                count: written.0.clone(),
            };
            read_copy(copy, identities, out, pb, false)
                .await
                .map(|(p, _)| p)
        }
        Target::Device { path } => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| {
                    ReadbackError::Output(format!("cannot open {}: {e}", path.display()))
                })?;
            let out = CountingWriter {
                inner: std::io::BufWriter::with_capacity(1 << 20, file),
                count: written.0.clone(),
            };
            let (proven, mut w) = read_copy(copy, identities, out, pb, false).await?;
            w.flush().map_err(|e| {
                ReadbackError::Output(format!("cannot write {}: {e}", path.display()))
            })?;
            Ok(proven)
        }
        Target::Extract { .. } | Target::List => {
            unreachable!("--extract and --list read members (restore::members)")
        }
        Target::File { path, force } => {
            let tmp = TempFile::create(path)?;
            let res = read_copy(copy, identities, tmp.writer, pb, false).await;
            // The partial file goes with `tmp.scratch` on every return, and when this future
            // is dropped (a signal stopped the restore).
            settle(res, tmp.scratch.path(), path, *force)
        }
    }
}

/// The temporary file beside the target that a restore writes into: registered, so that it
/// is removed however the restore ends, and locked while it is written, so that a later
/// restore to the same target can tell a killed restore's file from a running one's.
struct TempFile {
    scratch: Scratch,
    writer: std::io::BufWriter<std::fs::File>,
}

/// The prefix of the partial files of restores to `target`.
fn partial_prefix(target: &Path) -> String {
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{file_name}.offsite-restore-")
}

/// Removes the partial files that killed restores to `target` left beside it (a restore that
/// is running holds a lock on its own, and that one is left alone). Returns those removed.
pub(super) fn sweep_partials(target: &Path) -> Vec<PathBuf> {
    let prefix = partial_prefix(target);
    let Ok(entries) = std::fs::read_dir(dir_of(target)) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let path = e.path();
        let Ok(f) = std::fs::File::open(&path) else {
            continue;
        };
        if f.try_lock().is_ok() && std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

impl TempFile {
    fn create(target: &Path) -> Result<TempFile, ReadbackError> {
        let path = dir_of(target).join(format!("{}{:08x}", partial_prefix(target), rand_tag()));
        let create = || -> std::io::Result<(Scratch, std::fs::File)> {
            let scratch = Scratch::register(&path)?;
            // The restored plaintext is private, as a stored copy is: mode 0600, less what the
            // umask takes; renamed into place, it replaces the old file's mode with --force.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(offsite_storage::FILE_MODE)
                .open(&path)?;
            // Held while the file is open: what tells a running restore's file from a
            // killed one's.
            file.try_lock().map_err(std::io::Error::other)?;
            Ok((scratch, file))
        };
        let (scratch, file) = create()
            .with_context(|| {
                format!(
                    "cannot create {} (is the directory there and writable?)",
                    path.display()
                )
            })
            .map_err(|e| ReadbackError::Output(format!("{e:#}")))?;
        Ok(TempFile {
            scratch,
            writer: std::io::BufWriter::with_capacity(1 << 20, file),
        })
    }
}

fn dir_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A read that passed every check: flushed, synced and put in place at `path`.
fn settle(
    res: Result<(Proven, std::io::BufWriter<std::fs::File>), ReadbackError>,
    tmp: &Path,
    path: &Path,
    force: bool,
) -> Result<Proven, ReadbackError> {
    let (proven, mut w) = res?;
    let out =
        |e: std::io::Error| ReadbackError::Output(format!("cannot write {}: {e}", path.display()));
    w.flush().map_err(out)?;
    let f = w.into_inner().map_err(|e| out(e.into_error()))?;
    f.sync_all().map_err(out)?;
    if force {
        std::fs::rename(tmp, path).map_err(out)?;
    } else {
        // Never replace a file that appeared meanwhile: link fails if the name is taken.
        std::fs::hard_link(tmp, path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                ReadbackError::Output(format!(
                    "{} appeared while restoring; restore never overwrites a file unless --force is given",
                    path.display()
                ))
            } else {
                out(e)
            }
        })?;
        let _ = std::fs::remove_file(tmp);
    }
    if let Ok(d) = std::fs::File::open(dir_of(path)) {
        let _ = d.sync_all();
    }
    Ok(proven)
}

fn rand_tag() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ std::process::id())
        .unwrap_or(0)
}

/// Counts what reaches stdout, so that restore knows whether it may still fall back.
struct CountingWriter<W> {
    inner: W,
    count: Arc<AtomicU64>,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
