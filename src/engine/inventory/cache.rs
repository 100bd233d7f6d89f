//! The local inventory cache: the manifests a full scan of a remote store read, keyed by key and
//! fingerprint, so that the next scan reads only the manifests that are new or changed.
//!
//! One file per location under `<cache dir>/inventory/` (mode 0600 in a 0700 directory): a
//! header line (format, tool version, location), one JSON line per manifest `{key, fingerprint,
//! manifest}`, and a trailer line (entry count, SHA-256 of the manifest lines), so the file is
//! written and read streaming. The fingerprint is what the provider changes
//! on every write of the key: the ETag (S3, GCS, Azure) and the version or generation (GCS
//! generation, S3 version id) where the listing shows them, with the size ([`fingerprint`]). A key listed with
//! another fingerprint is read again; a cached key no longer listed is dropped (the listing
//! decides what exists); a file from another tool version, for another location, or damaged in
//! any way (cut short, edited, a line that does not parse) is discarded whole and rebuilt, never
//! trusted in part. Written to a temporary file, synced and renamed, so a reader sees the old
//! file or the new one.
//!
//! Local disks (`file://`) and `memory://` have no cache: reading their manifests costs what
//! reading the cache would, and a file's modification time is too coarse a fingerprint.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use offsite_storage::{Location, ObjectMeta};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Entry, Listing};
use crate::archive::{tool_version, Manifest, ManifestFile, Signed};

/// The cache file's format.
const FORMAT: u32 = 3;

/// The first line.
#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    tool: String,
    location: String,
}

/// One manifest, as read back. A signed manifest keeps its signed text and signature, so that
/// every scan judges it again against the trusted keys of that run: no verdict is cached.
#[derive(Deserialize)]
struct Line {
    key: String,
    fingerprint: String,
    manifest: Manifest,
    #[serde(default)]
    signed: Option<Signed>,
}

/// One manifest, as written.
#[derive(Serialize)]
struct LineRef<'a> {
    key: &'a str,
    fingerprint: &'a str,
    manifest: &'a Manifest,
    #[serde(skip_serializing_if = "Option::is_none")]
    signed: Option<&'a Signed>,
}

/// The last line: without it the file was cut short.
#[derive(Serialize, Deserialize)]
struct Trailer {
    end: bool,
    entries: usize,
    /// SHA-256 of the manifest lines, newlines included.
    sha256: String,
}

const TRAILER_START: &str = "{\"end\":";

/// What the provider changes on every write of a key, as listed: the ETag and version (S3,
/// GCS, Azure) with the size. A listing without either (s3s-fs lists no ETag) is keyed by its
/// modification time and size, but only when the store's listing shows times finer than a
/// second (`fine_times`: some time in it has a fraction): a second-grained time could miss a
/// rewrite of the same size within the second. `None`: never cached.
pub fn fingerprint(meta: &ObjectMeta, fine_times: bool) -> Option<String> {
    if meta.etag.is_some() || meta.version.is_some() {
        return Some(format!(
            "{}|{}|{}",
            meta.etag.as_deref().unwrap_or(""),
            meta.version.as_deref().unwrap_or(""),
            meta.size
        ));
    }
    let t = meta.last_modified?;
    fine_times.then(|| {
        format!(
            "mtime:{}|{}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            meta.size
        )
    })
}

/// The cache of one location. Manifests are moved out as a scan uses them ([`Cache::take`]),
/// so a scan holds each one once, and the file is written from the scan's entries.
pub struct Cache {
    path: PathBuf,
    location: String,
    entries: HashMap<String, (String, ManifestFile)>,
    loaded: usize,
}

/// What names the location: its URL as given (with `--prefix` applied; a URL never carries
/// credentials) and the endpoint settings that send the same URL to another server.
fn identity(location: &Location) -> String {
    let mut id = location.as_str().to_string();
    for var in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "STORAGE_EMULATOR_HOST",
    ] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            id.push('\0');
            id.push_str(var);
            id.push('=');
            id.push_str(&v.to_string_lossy());
        }
    }
    id
}

/// The cache file of a location.
pub fn path_for(location: &Location) -> PathBuf {
    let digest = hex::encode(Sha256::digest(identity(location).as_bytes()));
    crate::engine::cache_dir::inventory().join(format!("{}.jsonl", &digest[..32]))
}

impl Cache {
    /// The cache of a remote location, empty when there is none yet or the file cannot be
    /// trusted; `None` for local disk and memory.
    pub fn load(location: &Location) -> Option<Cache> {
        if !location.scheme.offsite_by_default() {
            return None;
        }
        let path = path_for(location);
        let location = identity(location);
        let entries = match read(&path, &location) {
            Ok(e) => e,
            Err(why) => {
                if path.exists() {
                    tracing::info!(path = %path.display(), "the inventory cache is not usable ({why}); rebuilding it: every manifest is read again");
                }
                HashMap::new()
            }
        };
        Some(Cache {
            path,
            location,
            loaded: entries.len(),
            entries,
        })
    }

    /// The cached manifest of a listed key, moved out, when its fingerprint is still the
    /// listed one.
    pub fn take(&mut self, meta: &ObjectMeta, fine_times: bool) -> Option<ManifestFile> {
        let fp = fingerprint(meta, fine_times)?;
        match self.entries.remove(&meta.key) {
            Some((f, m)) if f == fp => Some(m),
            _ => None,
        }
    }

    /// Writes the file from a scan's entries: each manifest the listing shows with a
    /// fingerprint. Skipped when the scan read nothing and took every cached manifest (the
    /// file already says exactly this). A cache that cannot be written is a warning, not a
    /// failure: the next scan reads every manifest again.
    pub fn save(self, listing: &Listing, entries: &[Entry], reads: u64) {
        if reads == 0 && self.entries.is_empty() && self.loaded > 0 {
            return;
        }
        if let Err(e) = self.write(listing, entries) {
            tracing::warn!(path = %self.path.display(), "cannot write the inventory cache: {e:#}; the next run reads every manifest again");
        }
    }

    fn write(&self, listing: &Listing, entries: &[Entry]) -> anyhow::Result<()> {
        use anyhow::Context;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().expect("a cache file has a directory");
        crate::engine::spool::private_dir(dir)?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let res = (|| -> anyhow::Result<()> {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(f);
            let header = Header {
                format: FORMAT,
                tool: tool_version(),
                location: self.location.clone(),
            };
            serde_json::to_writer(&mut w, &header)?;
            w.write_all(b"\n")?;
            let (mut hash, mut count, mut line) = (Sha256::new(), 0usize, Vec::new());
            for e in entries {
                let (Some(manifest), Some(meta)) = (&e.manifest, listing.manifests.get(&e.name))
                else {
                    continue;
                };
                let Some(fingerprint) = fingerprint(meta, listing.fine_times) else {
                    continue;
                };
                line.clear();
                serde_json::to_writer(
                    &mut line,
                    &LineRef {
                        key: &meta.key,
                        fingerprint: &fingerprint,
                        manifest,
                        signed: e.signed.as_ref(),
                    },
                )?;
                line.push(b'\n');
                hash.update(&line);
                w.write_all(&line)?;
                count += 1;
            }
            let trailer = Trailer {
                end: true,
                entries: count,
                sha256: hex::encode(hash.finalize()),
            };
            serde_json::to_writer(&mut w, &trailer)?;
            w.write_all(b"\n")?;
            w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            std::fs::rename(&tmp, &self.path)
                .with_context(|| format!("cannot rename {} into place", tmp.display()))
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }
}

/// Reads a cache file whole, or says why it cannot be used.
fn read(path: &Path, location: &str) -> Result<HashMap<String, (String, ManifestFile)>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(file).lines();
    let header: Header = match lines.next() {
        Some(Ok(l)) => serde_json::from_str(&l).map_err(|e| format!("bad header: {e}"))?,
        Some(Err(e)) => return Err(e.to_string()),
        None => return Err("empty".into()),
    };
    if header.format != FORMAT || header.tool != tool_version() {
        return Err(format!(
            "written by {} in format {}",
            header.tool, header.format
        ));
    }
    if header.location != location {
        return Err("written for another location".into());
    }
    let mut hash = Sha256::new();
    let mut entries = HashMap::new();
    for line in lines {
        let line = line.map_err(|e| e.to_string())?;
        if line.starts_with(TRAILER_START) {
            let t: Trailer =
                serde_json::from_str(&line).map_err(|e| format!("bad trailer: {e}"))?;
            if t.entries != entries.len() || hex::encode(hash.finalize()) != t.sha256 {
                return Err("its contents do not match its trailer (edited)".into());
            }
            return Ok(entries);
        }
        hash.update(line.as_bytes());
        hash.update(b"\n");
        let l: Line = serde_json::from_str(&line).map_err(|e| format!("bad line: {e}"))?;
        // A signed manifest is taken from the text its signature covers, never from the
        // cache's copy, so what is judged is what is used.
        let manifest = match &l.signed {
            Some(signed) => {
                ManifestFile::parse(signed.signed.as_bytes())
                    .map_err(|e| format!("bad signed manifest: {e}"))?
                    .manifest
            }
            None => l.manifest,
        };
        let file = ManifestFile {
            manifest,
            signature: l.signed,
        };
        entries.insert(l.key, (l.fingerprint, file));
    }
    Err("cut short (no trailer)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_change_with_etag_version_and_size() {
        let mut m = ObjectMeta::new("a.manifest.json", 10);
        assert_eq!(
            fingerprint(&m, true),
            None,
            "nothing to key on: never cached"
        );
        m.last_modified = Some("2026-12-03T07:35:33.821Z".parse().unwrap());
        assert_eq!(
            fingerprint(&m, false),
            None,
            "a store listing whole seconds: too coarse"
        );
        let t = fingerprint(&m, true);
        assert!(t.is_some());
        m.last_modified = Some("2026-12-03T07:35:33.822Z".parse().unwrap());
        assert_ne!(fingerprint(&m, true), t);
        m.last_modified = None;
        m.etag = Some("\"e1\"".into());
        let a = fingerprint(&m, false);
        m.size = 11;
        assert_ne!(fingerprint(&m, false), a);
        m.version = Some("7".into());
        let b = fingerprint(&m, false);
        m.version = Some("8".into());
        assert_ne!(fingerprint(&m, false), b);
    }
}
