//! `LocalStore`: objects as plain files under a directory (`file://`).
//!
//! Files are named exactly as their keys, so a stored archive can be read with stock tools.
//! A write goes to a hidden temporary file in the target directory (`.offsite-tmp-*`), is
//! fsynced, then renamed into place (or hard-linked, for create-only writes, which fails
//! atomically when the name is taken), and the directory is fsynced: a reader sees the whole
//! file or nothing. User metadata lives in a hidden sidecar (`.offsite-meta-NAME.json`).
//!
//! Every file the store makes (objects, sidecars, copies) has mode 0600, [`FILE_MODE`]: made
//! with that mode, so the umask can only take bits away, and a copy or link is set to it.
//! Manifests name archives and their hashes; a backup directory is often shared.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};

use crate::error::{Error, ErrorKind, Operation, Result};
use crate::scratch::Scratch;
use crate::storage::{GetResult, ListStream, ObjectWriter, Storage};
use crate::types::{
    key_under_prefix, validate_key, Capabilities, GetRange, Metadata, ObjectMeta, PutOptions,
    Receipt,
};

const PROVIDER: &str = "file";
const TMP_PREFIX: &str = ".offsite-tmp-";
const META_PREFIX: &str = ".offsite-meta-";
const READ_CHUNK: usize = 1 << 20;

/// A store in a local directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    url: String,
}

impl LocalStore {
    /// A store rooted at `root`; the directory is created on the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let url = format!("file://{}", root.display());
        LocalStore { root, url }
    }

    /// The directory this store writes into.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a key is stored in (the key must be valid).
    pub fn path_for(&self, key: &str) -> Result<PathBuf> {
        self.path_of(key, Operation::Put)
    }

    /// Publishes an existing file as the object `key` by hard-linking it into place, with the
    /// same guarantees as a writer's `finish` (the file is fsynced first, the directory after).
    /// The file must be on the same file system and must not change afterwards; push uses this
    /// to make its spool the local copy without writing the bytes twice. With `if_not_exists`,
    /// an object already there is left alone and the call fails with `AlreadyExists`.
    pub async fn link_from(&self, file: &Path, key: &str, if_not_exists: bool) -> Result<Receipt> {
        let dest = self.path_of(key, Operation::Put)?;
        let src = file.to_path_buf();
        let k = key.to_string();
        blocking(move || {
            let f = std::fs::File::open(&src)?;
            f.sync_all()?;
            let size = f.metadata()?.len();
            drop(f);
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = Scratch::register(&tmp_path(&dest))?;
            std::fs::hard_link(&src, tmp.path())?;
            private(tmp.path())?;
            publish(tmp.path(), &dest, if_not_exists, &Metadata::new())
                .map(|()| Receipt::new(k, size, None))
        })
        .await
        .map_err(|e| self.io_err(Operation::Put, key, e))
    }

    /// The temporary files (`.offsite-tmp-*`) under this store last written before
    /// `older_than`: what a write killed before it finished (SIGKILL, a power cut) leaves. They
    /// are never objects and never listed as such; [`LocalStore::remove_temporary`] removes one.
    pub async fn stale_temporaries(&self, older_than: DateTime<Utc>) -> Result<Vec<Temporary>> {
        let root = self.root.clone();
        blocking(move || -> std::io::Result<Vec<Temporary>> {
            let mut out = Vec::new();
            let mut dirs = vec![root.clone()];
            while let Some(dir) = dirs.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                for entry in entries.flatten() {
                    let Ok(ft) = entry.file_type() else { continue };
                    let name = entry.file_name();
                    if ft.is_dir() {
                        dirs.push(entry.path());
                        continue;
                    }
                    if !ft.is_file() || !name.to_string_lossy().starts_with(TMP_PREFIX) {
                        continue;
                    }
                    let Ok(md) = entry.metadata() else { continue };
                    let Some(modified) = md.modified().ok().map(DateTime::<Utc>::from) else {
                        continue;
                    };
                    if modified >= older_than {
                        continue;
                    }
                    let path = entry.path();
                    let Ok(rel) = path.strip_prefix(&root) else {
                        continue;
                    };
                    out.push(Temporary {
                        key: rel
                            .to_string_lossy()
                            .replace(std::path::MAIN_SEPARATOR, "/"),
                        size: md.len(),
                        modified,
                    });
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .map_err(|e| Error::from_io(e, PROVIDER, Operation::List, self.root.display()))
    }

    /// Removes a temporary file [`LocalStore::stale_temporaries`] found (gone already is fine).
    pub async fn remove_temporary(&self, t: &Temporary) -> Result<()> {
        let path = self.root.join(&t.key);
        let is_tmp = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(TMP_PREFIX));
        if !is_tmp {
            return Err(Error::new(
                ErrorKind::Other,
                PROVIDER,
                Operation::Delete,
                format!("{} is not a temporary file", path.display()),
            ));
        }
        blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .await
        .map_err(|e| self.io_err(Operation::Delete, &t.key, e))
    }

    fn path_of(&self, key: &str, op: Operation) -> Result<PathBuf> {
        validate_key(key, PROVIDER, op)?;
        Ok(self.root.join(key))
    }

    fn io_err(&self, op: Operation, key: &str, err: std::io::Error) -> Error {
        let what = self.root.join(key).display().to_string();
        Error::from_io(err, PROVIDER, op, what).with_key(key)
    }
}

/// A temporary file under a [`LocalStore`]: a write that never finished, not an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Temporary {
    /// Its path under the store's root, `/`-separated.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was last written.
    pub modified: DateTime<Utc>,
}

fn meta_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{META_PREFIX}{name}.json"))
}

impl LocalStore {
    /// The longest last key segment (file name) this store can hold, in bytes: a file name is
    /// at most 255 bytes, and the temporary name a write goes through adds its prefix and a
    /// 16-digit tag (the metadata file's name adds less).
    pub const MAX_FILE_NAME: usize = 255 - (TMP_PREFIX.len() + 17);
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tag: u64 = rand::random();
    path.with_file_name(format!("{TMP_PREFIX}{tag:016x}-{name}"))
}

fn read_metadata(path: &Path) -> std::io::Result<Metadata> {
    match std::fs::read(meta_path(path)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Metadata::new()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The mode of every file a [`LocalStore`] makes: read and write for the owner only.
pub const FILE_MODE: u32 = 0o600;

/// Creates a new file (never one that exists) with [`FILE_MODE`], less what the umask takes.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Sets a file made some other way (a copy, a link) to [`FILE_MODE`].
fn private(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
}

/// Moves a finished temporary file into place: rename (replacing) or, for create-only writes,
/// hard link (which fails with `AlreadyExists` atomically) then unlink the temporary name.
/// Then writes or clears the metadata sidecar and fsyncs the directory.
fn publish(
    tmp: &Path,
    dest: &Path,
    if_not_exists: bool,
    metadata: &Metadata,
) -> std::io::Result<()> {
    if if_not_exists {
        std::fs::hard_link(tmp, dest)?;
        std::fs::remove_file(tmp)?;
    } else {
        std::fs::rename(tmp, dest)?;
    }
    let meta = meta_path(dest);
    if metadata.is_empty() {
        match std::fs::remove_file(&meta) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    } else {
        let meta_tmp = Scratch::register(&tmp_path(&meta))?;
        let mut f = create_private(meta_tmp.path())?;
        f.write_all(&serde_json::to_vec(metadata).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(meta_tmp.path(), &meta)?;
    }
    if let Some(dir) = dest.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn object_meta(key: &str, md: &std::fs::Metadata) -> ObjectMeta {
    let mut m = ObjectMeta::new(key, md.len());
    m.last_modified = md.modified().ok().map(DateTime::<Utc>::from);
    m
}

fn unsupported_options(opts: &PutOptions, key: &str) -> Result<()> {
    let what = if opts.retention.is_some() || opts.legal_hold {
        "retention locks or legal holds"
    } else if opts.storage_class.is_some() {
        "storage classes"
    } else {
        return Ok(());
    };
    Err(Error::new(
        ErrorKind::Unsupported,
        PROVIDER,
        Operation::Put,
        format!("local directories do not support {what}"),
    )
    .with_key(key)
    .with_hint("remove `lock` / `storage-class` from this file:// destination"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking file task panicked")
}

#[async_trait]
impl Storage for LocalStore {
    fn url(&self) -> &str {
        &self.url
    }

    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            server_side_copy: true,
            retention: false,
            storage_classes: false,
            metadata: true,
            checksum_on_head: false,
            part_size: None,
            concurrency: None,
            local: true,
            create_location: true,
            versions: false,
            extend_retention: false,
            list_uploads: false,
            ordered_listing: false,
            thaw: false,
        }
    }

    async fn create_location(&self, options: &crate::CreateOptions) -> Result<bool> {
        if options.versioning || options.object_lock {
            return Err(crate::unsupported(
                PROVIDER,
                Operation::Create,
                "keep versions or hold locks",
            )
            .with_hint("use a cloud destination for versioned or immutable copies"));
        }
        let root = self.root.clone();
        blocking(move || -> std::io::Result<bool> {
            let existed = root.is_dir();
            std::fs::create_dir_all(&root)?;
            Ok(!existed)
        })
        .await
        .map_err(|e| Error::from_io(e, PROVIDER, Operation::Create, self.root.display()))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let path = self.path_of(key, Operation::Head)?;
        let k = key.to_string();
        let res = blocking(move || {
            let md = std::fs::metadata(&path)?;
            if !md.is_file() {
                return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
            }
            let mut m = object_meta(&k, &md);
            m.metadata = read_metadata(&path)?;
            Ok(m)
        })
        .await;
        res.map_err(|e| self.io_err(Operation::Head, key, e))
    }

    async fn get(&self, key: &str, range: Option<GetRange>) -> Result<GetResult> {
        let path = self.path_of(key, Operation::Get)?;
        let k = key.to_string();
        let opened = blocking(move || {
            let file = std::fs::File::open(&path)?;
            let md = file.metadata()?;
            if !md.is_file() {
                return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
            }
            let mut meta = object_meta(&k, &md);
            meta.metadata = read_metadata(&path)?;
            Ok((file, meta))
        })
        .await;
        let (mut file, meta) = opened.map_err(|e| self.io_err(Operation::Get, key, e))?;
        let range = range
            .unwrap_or(GetRange::From(0))
            .resolve(meta.size, PROVIDER, key)?;
        if range.start > 0 {
            file.seek(SeekFrom::Start(range.start))
                .map_err(|e| self.io_err(Operation::Get, key, e))?;
        }
        let remaining = range.end - range.start;
        let err_key = key.to_string();
        let err_root = self.root.clone();
        let stream = stream::try_unfold((file, remaining), move |(mut file, remaining)| {
            let err_key = err_key.clone();
            let err_root = err_root.clone();
            async move {
                if remaining == 0 {
                    return Ok(None);
                }
                let want = remaining.min(READ_CHUNK as u64) as usize;
                let (file, res) = blocking(move || {
                    let mut buf = vec![0u8; want];
                    let res = file.read_exact(&mut buf).map(|_| buf);
                    (file, res)
                })
                .await;
                match res {
                    Ok(buf) => Ok(Some((Bytes::from(buf), (file, remaining - want as u64)))),
                    Err(e) => Err(Error::from_io(
                        e,
                        PROVIDER,
                        Operation::Get,
                        err_root.join(&err_key).display(),
                    )
                    .with_key(err_key)),
                }
            }
        });
        Ok(GetResult {
            meta,
            range,
            stream: stream.boxed(),
        })
    }

    async fn writer(&self, key: &str, options: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let dest = self.path_of(key, Operation::Put)?;
        unsupported_options(&options, key)?;
        let scratch =
            Scratch::register(&tmp_path(&dest)).map_err(|e| self.io_err(Operation::Put, key, e))?;
        let tmp = scratch.path().to_path_buf();
        let (d, t) = (dest.clone(), tmp.clone());
        let file = blocking(move || {
            if let Some(dir) = d.parent() {
                std::fs::create_dir_all(dir)?;
            }
            create_private(&t)
        })
        .await
        .map_err(|e| self.io_err(Operation::Put, key, e))?;
        Ok(Box::new(LocalWriter {
            store: self.clone(),
            key: key.to_string(),
            dest,
            tmp,
            file: Some(file),
            size: 0,
            options,
            finished: false,
            _scratch: scratch,
        }))
    }

    fn list(&self, prefix: &str) -> ListStream<'_> {
        let prefix = prefix.trim_matches('/').to_string();
        let root = self.root.clone();
        let start = if prefix.is_empty() {
            root.clone()
        } else {
            root.join(&prefix)
        };
        struct Walk {
            root: PathBuf,
            prefix: String,
            dirs: Vec<PathBuf>,
            first: bool,
        }
        let walk = Walk {
            root,
            prefix,
            dirs: vec![start],
            first: true,
        };
        crate::storage::flatten_pages(stream::try_unfold(walk, |mut walk| async move {
            // One directory per step: a lazy listing, a page per directory.
            while let Some(dir) = walk.dirs.pop() {
                let first = std::mem::replace(&mut walk.first, false);
                let root = walk.root.clone();
                let prefix = walk.prefix.clone();
                let res = blocking(move || -> std::io::Result<(Vec<ObjectMeta>, Vec<PathBuf>)> {
                    let entries = match std::fs::read_dir(&dir) {
                        Ok(e) => e,
                        // Only a missing root is an error; a missing prefix lists nothing,
                        // and a directory removed mid-walk had nothing left to list.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !(first && dir == root) => {
                            return Ok((vec![], vec![]))
                        }
                        Err(e) => return Err(e),
                    };
                    let mut files = Vec::new();
                    let mut dirs = Vec::new();
                    for entry in entries {
                        let entry = entry?;
                        let name = entry.file_name();
                        let Some(name) = name.to_str() else {
                            tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
                            continue;
                        };
                        if name.starts_with(".offsite-") {
                            continue;
                        }
                        let ft = entry.file_type()?;
                        if ft.is_dir() {
                            dirs.push(entry.path());
                        } else if ft.is_file() {
                            let rel = entry.path();
                            let Ok(rel) = rel.strip_prefix(&root) else { continue };
                            let key = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                            if !key_under_prefix(&key, &prefix) {
                                continue;
                            }
                            let md = match entry.metadata() {
                                Ok(md) => md,
                                // Deleted between read_dir and stat.
                                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                                Err(e) => return Err(e),
                            };
                            files.push(object_meta(&key, &md));
                        }
                    }
                    Ok((files, dirs))
                })
                .await;
                match res {
                    Ok((files, dirs)) => {
                        walk.dirs.extend(dirs);
                        if !files.is_empty() {
                            return Ok(Some((files, walk)));
                        }
                    }
                    Err(e) => {
                        let mut err = Error::from_io(
                            e,
                            PROVIDER,
                            Operation::List,
                            walk.root.join(&walk.prefix).display(),
                        );
                        if err.kind() == ErrorKind::NotFound {
                            err = err.with_hint(
                                "check the path; push creates the directory on first use",
                            );
                        }
                        return Err(err);
                    }
                }
            }
            Ok(None)
        }))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key, Operation::Delete)?;
        let root = self.root.clone();
        blocking(move || {
            if !std::fs::metadata(&path)?.is_file() {
                return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
            }
            std::fs::remove_file(&path)?;
            match std::fs::remove_file(meta_path(&path)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            // Tidy directories left empty, up to (not including) the root.
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == root || !d.starts_with(&root) || std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
        .map_err(|e| self.io_err(Operation::Delete, key, e))
    }

    async fn thaw(&self, key: &str, _days: u32) -> Result<()> {
        Err(Error::new(
            ErrorKind::Unsupported,
            PROVIDER,
            Operation::Get,
            "nothing is ever archived here, so there is nothing to thaw",
        )
        .with_key(key))
    }

    fn sequential(&self) -> Option<std::sync::Arc<dyn crate::Sequential>> {
        None
    }

    fn multipart(&self) -> Option<std::sync::Arc<dyn crate::Multipart>> {
        None
    }

    async fn copy(&self, from: &str, to: &str, options: PutOptions) -> Result<Receipt> {
        let src = self.path_of(from, Operation::Copy)?;
        let dest = self.path_of(to, Operation::Copy)?;
        unsupported_options(&options, to)?;
        let to_key = to.to_string();
        blocking(move || {
            let metadata = if options.metadata.is_empty() {
                read_metadata(&src)?
            } else {
                options.metadata.clone()
            };
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = Scratch::register(&tmp_path(&dest))?;
            let size = std::fs::copy(&src, tmp.path())?;
            // `fs::copy` carries the source's mode over; a copy gets the store's.
            private(tmp.path())?;
            std::fs::File::open(tmp.path())?.sync_all()?;
            publish(tmp.path(), &dest, options.if_not_exists, &metadata)?;
            Ok(Receipt::new(to_key, size, None))
        })
        .await
        .map_err(|e| self.io_err(Operation::Copy, from, e))
    }
}

struct LocalWriter {
    store: LocalStore,
    key: String,
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<std::fs::File>,
    size: u64,
    options: PutOptions,
    finished: bool,
    /// Removes the temporary file if this writer is dropped unfinished, or the process stops.
    _scratch: Scratch,
}

impl LocalWriter {
    fn closed(&self) -> Error {
        Error::new(
            ErrorKind::Other,
            PROVIDER,
            Operation::Put,
            "the writer already failed",
        )
        .with_key(self.key.clone())
    }
}

#[async_trait]
impl ObjectWriter for LocalWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let mut file = self.file.take().ok_or_else(|| self.closed())?;
        let len = data.len() as u64;
        let (file, res) = blocking(move || {
            let res = file.write_all(&data);
            (file, res)
        })
        .await;
        match res {
            Ok(()) => {
                self.file = Some(file);
                self.size += len;
                Ok(())
            }
            Err(e) => {
                drop(file);
                let _ = std::fs::remove_file(&self.tmp);
                self.finished = true;
                Err(self.store.io_err(Operation::Put, &self.key, e))
            }
        }
    }

    async fn finish(mut self: Box<Self>) -> Result<Receipt> {
        let file = self.file.take().ok_or_else(|| self.closed())?;
        let (tmp, dest) = (self.tmp.clone(), self.dest.clone());
        let if_not_exists = self.options.if_not_exists;
        let metadata = std::mem::take(&mut self.options.metadata);
        let res = blocking(move || {
            file.sync_all()?;
            drop(file);
            publish(&tmp, &dest, if_not_exists, &metadata)
        })
        .await;
        self.finished = true;
        match res {
            Ok(()) => Ok(Receipt::new(self.key.clone(), self.size, None)),
            Err(e) => {
                let _ = std::fs::remove_file(&self.tmp);
                Err(self.store.io_err(Operation::Put, &self.key, e))
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.file = None;
        self.finished = true;
        match std::fs::remove_file(&self.tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(self.store.io_err(Operation::Put, &self.key, e))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if !self.finished {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
