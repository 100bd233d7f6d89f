//! The local inventory cache: the manifests a full scan of a remote store read, keyed by key and
//! fingerprint, so that the next scan reads only the manifests that are new or changed.
//!
//! One file per location under `<cache dir>/inventory/` (mode 0600 in a 0700 directory): a
//! header line (format, tool version, location, entry count, SHA-256 of the body), then one JSON
//! line per manifest `{key, fingerprint, manifest}`. The fingerprint is what the provider changes
//! on every write of the key: the ETag (S3, GCS, Azure) and the version or generation (GCS
//! generation, S3 version id) where the listing shows them, with the size. A key listed with
//! another fingerprint is read again; a cached key no longer listed is dropped (the listing
//! decides what exists); a file from another tool version, for another location, or damaged in
//! any way (truncated, edited, a line that does not parse) is discarded whole and rebuilt, never
//! trusted in part. Written to a temporary file and renamed, so a reader sees the old file or
//! the new one.
//!
//! Local disks (`file://`) and `memory://` have no cache: reading their manifests costs what
//! reading the cache would, and a file's modification time is too coarse a fingerprint.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use offsite_storage::{Location, ObjectMeta};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::Listing;
use crate::archive::{tool_version, Manifest};

/// The cache file's format.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    tool: String,
    location: String,
    entries: usize,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
struct Line {
    key: String,
    fingerprint: String,
    manifest: Manifest,
}

/// What the provider changes on every write of a key, as listed; `None` when the listing shows
/// neither an ETag nor a version (such a key is never cached).
pub fn fingerprint(meta: &ObjectMeta) -> Option<String> {
    if meta.etag.is_none() && meta.version.is_none() {
        return None;
    }
    Some(format!(
        "{}|{}|{}",
        meta.etag.as_deref().unwrap_or(""),
        meta.version.as_deref().unwrap_or(""),
        meta.size
    ))
}

/// The cache of one location.
pub struct Cache {
    path: PathBuf,
    location: String,
    entries: BTreeMap<String, (String, Manifest)>,
    changed: bool,
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
    crate::engine::spool::cache_dir()
        .join("inventory")
        .join(format!("{}.jsonl", &digest[..32]))
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
                BTreeMap::new()
            }
        };
        Some(Cache {
            path,
            location,
            entries,
            changed: false,
        })
    }

    /// The cached manifest of a listed key, when its fingerprint is still the listed one.
    pub fn get(&self, meta: &ObjectMeta) -> Option<&Manifest> {
        let fp = fingerprint(meta)?;
        match self.entries.get(&meta.key) {
            Some((f, m)) if *f == fp => Some(m),
            _ => None,
        }
    }

    /// Records a manifest just read.
    pub fn insert(&mut self, meta: &ObjectMeta, manifest: Manifest) {
        if let Some(fp) = fingerprint(meta) {
            self.entries.insert(meta.key.clone(), (fp, manifest));
            self.changed = true;
        }
    }

    /// Keeps only the keys `listing` shows with the same fingerprint, and writes the file when
    /// anything changed. A cache that cannot be written is a warning, not a failure: the next
    /// scan reads every manifest again.
    pub fn save(&mut self, listing: &Listing) {
        let listed: HashMap<&str, Option<String>> = listing
            .manifests
            .values()
            .map(|m| (m.key.as_str(), fingerprint(m)))
            .collect();
        let before = self.entries.len();
        self.entries.retain(|k, (fp, _)| {
            listed
                .get(k.as_str())
                .is_some_and(|f| f.as_deref() == Some(fp.as_str()))
        });
        if !self.changed && self.entries.len() == before && self.path.exists() {
            return;
        }
        if let Err(e) = self.write() {
            tracing::warn!(path = %self.path.display(), "cannot write the inventory cache: {e:#}; the next run reads every manifest again");
        }
    }

    fn write(&self) -> anyhow::Result<()> {
        use anyhow::Context;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().expect("a cache file has a directory");
        crate::engine::spool::private_dir(dir)?;
        let mut body = Vec::new();
        for (key, (fingerprint, manifest)) in &self.entries {
            let line = Line {
                key: key.clone(),
                fingerprint: fingerprint.clone(),
                manifest: manifest.clone(),
            };
            serde_json::to_writer(&mut body, &line)?;
            body.push(b'\n');
        }
        let header = Header {
            format: FORMAT,
            tool: tool_version(),
            location: self.location.clone(),
            entries: self.entries.len(),
            sha256: hex::encode(Sha256::digest(&body)),
        };
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let res = (|| -> anyhow::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            serde_json::to_writer(&mut f, &header)?;
            f.write_all(b"\n")?;
            f.write_all(&body)?;
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
fn read(path: &Path, location: &str) -> Result<BTreeMap<String, (String, Manifest)>, String> {
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
    let mut entries = BTreeMap::new();
    for line in lines {
        let line = line.map_err(|e| e.to_string())?;
        hash.update(line.as_bytes());
        hash.update(b"\n");
        let l: Line = serde_json::from_str(&line).map_err(|e| format!("bad line: {e}"))?;
        entries.insert(l.key, (l.fingerprint, l.manifest));
    }
    if entries.len() != header.entries || hex::encode(hash.finalize()) != header.sha256 {
        return Err("its contents do not match its header (truncated or edited)".into());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_change_with_etag_version_and_size() {
        let mut m = ObjectMeta::new("a.manifest.json", 10);
        assert_eq!(fingerprint(&m), None, "nothing to key on: never cached");
        m.etag = Some("\"e1\"".into());
        let a = fingerprint(&m);
        m.size = 11;
        assert_ne!(fingerprint(&m), a);
        m.version = Some("7".into());
        let b = fingerprint(&m);
        m.version = Some("8".into());
        assert_ne!(fingerprint(&m), b);
    }
}
