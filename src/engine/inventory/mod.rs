//! What archives a location holds: manifests, data objects, and how they pair up.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use offsite_storage::{ObjectMeta, Storage, StorageExt};

use crate::archive::{time_from_name, Manifest, AGE_SUFFIX, MANIFEST_SUFFIX, VERIFIED_SUFFIX};
use crate::registry::{key_prefix, Opened};

/// The state of one archive at one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Manifest and data object both present, the object of the size the manifest records
    /// (its bytes are checked by verify).
    Complete,
    /// Manifest and data object both present, but the object's size is not the manifest's:
    /// truncated or replaced. Never counts as a copy.
    WrongSize,
    /// A data object without a manifest: an upload that never committed. Never counts.
    Incomplete,
    /// A manifest whose data object is gone.
    MissingData,
    /// A manifest that does not parse.
    BadManifest,
}

impl State {
    /// The word `ls` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Complete => "complete",
            State::WrongSize => "wrong-size",
            State::Incomplete => "incomplete",
            State::MissingData => "missing-data",
            State::BadManifest => "bad-manifest",
        }
    }
}

/// One archive name at one location.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The archive's name.
    pub name: String,
    /// Its manifest, when present and readable.
    pub manifest: Option<Manifest>,
    /// Why the manifest could not be used, when it could not.
    pub manifest_error: Option<String>,
    /// The data object as listed.
    pub object: Option<ObjectMeta>,
    /// The verification record, when one was listed.
    pub verified_key: Option<String>,
    /// The state.
    pub state: State,
}

impl Entry {
    /// Creation time: the manifest's, else a timestamp in the name, else the object's mtime.
    pub fn created(&self) -> Option<DateTime<Utc>> {
        self.manifest
            .as_ref()
            .map(|m| m.created)
            .or_else(|| time_from_name(&self.name))
            .or_else(|| self.object.as_ref().and_then(|o| o.last_modified))
    }
}

impl Entry {
    /// For a [`State::WrongSize`] copy, what is wrong, in words.
    pub fn size_problem(&self) -> Option<String> {
        let (m, o) = (self.manifest.as_ref()?, self.object.as_ref()?);
        (m.stored.size != o.size).then(|| {
            format!(
                "the stored object is {} bytes but its manifest records {} (truncated or replaced)",
                o.size, m.stored.size
            )
        })
    }
}

/// Strips the location's prefix from a listed key, leaving the name under it.
fn relative<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(key);
    }
    key.strip_prefix(prefix)?.strip_prefix('/')
}

/// Lists a location and reads its manifests. Objects in sub-directories are not archives of
/// this location and are skipped.
pub async fn scan(loc: &Opened) -> offsite_storage::Result<Vec<Entry>> {
    let prefix = key_prefix(&loc.location).to_string();
    let listed: Vec<ObjectMeta> = loc.store.list(&prefix).try_collect().await?;
    let mut manifests = BTreeMap::new();
    let mut objects = BTreeMap::new();
    let mut verified = BTreeMap::new();
    for meta in listed {
        let Some(rel) = relative(&meta.key, &prefix) else {
            continue;
        };
        if rel.contains('/') {
            continue;
        }
        if let Some(name) = rel.strip_suffix(MANIFEST_SUFFIX) {
            manifests.insert(name.to_string(), meta.key.clone());
        } else if let Some(name) = rel.strip_suffix(VERIFIED_SUFFIX) {
            verified.insert(name.to_string(), meta.key.clone());
        } else {
            objects.insert(rel.to_string(), meta);
        }
    }
    let mut out = Vec::new();
    for (name, mkey) in &manifests {
        let (manifest, err) = match loc.store.get_bytes(mkey).await {
            Ok(bytes) => match Manifest::from_json(&bytes) {
                Ok(m) => (Some(m), None),
                Err(e) => (None, Some(e)),
            },
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e),
        };
        let object_name = match &manifest {
            Some(m) => m
                .stored
                .key
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            None if objects.contains_key(&format!("{name}{AGE_SUFFIX}")) => {
                format!("{name}{AGE_SUFFIX}")
            }
            None => name.clone(),
        };
        let object = objects.remove(&object_name);
        let state = match (&manifest, &object) {
            (None, _) => State::BadManifest,
            (Some(_), None) => State::MissingData,
            (Some(m), Some(o)) if o.size != m.stored.size => State::WrongSize,
            (Some(_), Some(_)) => State::Complete,
        };
        out.push(Entry {
            name: name.clone(),
            manifest,
            manifest_error: err,
            object,
            verified_key: verified.get(name).cloned(),
            state,
        });
    }
    for (oname, meta) in objects {
        let name = oname.strip_suffix(AGE_SUFFIX).unwrap_or(&oname).to_string();
        out.push(Entry {
            name,
            manifest: None,
            manifest_error: None,
            object: Some(meta),
            verified_key: None,
            state: State::Incomplete,
        });
    }
    out.sort_by(|a, b| {
        a.created()
            .cmp(&b.created())
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(out)
}

/// Reads one archive's manifest at a location, `Ok(None)` when there is none.
pub async fn read_manifest(
    store: &dyn Storage,
    key: &str,
) -> offsite_storage::Result<Option<Result<Manifest, String>>> {
    match store.get_bytes(key).await {
        Ok(bytes) => Ok(Some(Manifest::from_json(&bytes))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}
