//! Copies a delete marker hides (DESIGN.md "Locks"): on a versioned store an S3 DeleteObject
//! without a version id only adds a marker, and under Object Lock the locked data stays
//! underneath. Such a copy still counts for `status` and is still restorable: a manifest
//! version whose recorded lock still holds, and a data version of the size it records.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use offsite_storage::{ObjectMeta, ObjectVersion};

use super::inventory::{Entry, Judge, Signature, State};
use crate::archive::{ManifestFile, MANIFEST_SUFFIX};
use crate::registry::{key_prefix, Opened};

/// A hidden copy: its entry (state complete, the manifest read from its version) and the
/// version id of its data object.
#[derive(Debug, Clone)]
pub struct Hidden {
    /// The entry, as a scan would show a live copy.
    pub entry: Entry,
    /// The data object's version id.
    pub object_version: String,
}

/// The newest version of `key` that is data, when the key's current version is a delete
/// marker (or it has none): what a marker hides.
fn hidden_version(versions: &[ObjectVersion]) -> Option<&ObjectVersion> {
    let live = versions.iter().any(|v| v.latest && !v.delete_marker);
    if live {
        return None;
    }
    versions
        .iter()
        .filter(|v| !v.delete_marker)
        .max_by_key(|v| v.last_modified)
}

/// The copies at `loc` that delete markers hide, where the store keeps versions; empty where it
/// does not. Each manifest is judged by `judge` as a scan judges a live one, and a lock is
/// judged at its clock.
pub async fn hidden(loc: &Opened, judge: &Judge) -> Result<Vec<Hidden>, offsite_storage::Error> {
    if !loc.store.capabilities().versions {
        return Ok(Vec::new());
    }
    let prefix = key_prefix(&loc.location);
    let mut by_key: BTreeMap<String, Vec<ObjectVersion>> = BTreeMap::new();
    let mut versions = loc.store.list_versions(prefix);
    while let Some(v) = versions.try_next().await? {
        by_key.entry(v.key.clone()).or_default().push(v);
    }
    let mut out = Vec::new();
    for (key, vs) in &by_key {
        let Some(name) = key
            .strip_suffix(MANIFEST_SUFFIX)
            .map(|n| n.rsplit('/').next().unwrap_or(n))
        else {
            continue;
        };
        let Some(mv) = hidden_version(vs) else {
            continue;
        };
        let bytes: Vec<bytes::Bytes> = match loc.store.get_version(key, &mv.version, None).await {
            Ok(got) => match got.stream.try_collect().await {
                Ok(b) => b,
                Err(_) => continue,
            },
            Err(_) => continue,
        };
        let Ok(ManifestFile {
            manifest,
            signature: signed,
        }) = ManifestFile::parse(&bytes.concat())
        else {
            continue;
        };
        // Only a *locked* copy under a marker still counts: one deleted after its lock ran out
        // was deleted on purpose.
        if manifest.retain_until.is_none_or(|t| t <= judge.clock.now) {
            continue;
        }
        let object_key = offsite_storage::join_key(prefix, &manifest.stored.key);
        let Some(ov) = by_key.get(&object_key).and_then(|ovs| {
            // Hidden itself, or (rarely) live under a hidden manifest: either way the bytes
            // the manifest records.
            ovs.iter()
                .filter(|v| !v.delete_marker && v.size == manifest.stored.size)
                .max_by_key(|v| v.last_modified)
        }) else {
            continue;
        };
        let mut object = ObjectMeta::new(object_key.clone(), ov.size);
        object.version = Some(ov.version.clone());
        object.last_modified = ov.last_modified;
        out.push(Hidden {
            object_version: ov.version.clone(),
            entry: Entry {
                name: name.to_string(),
                manifest: Some(manifest),
                manifest_error: None,
                signed,
                signature: Signature::NotChecked { signed: false },
                future: None,
                object: Some(object),
                verified_key: None,
                state: State::Complete,
                hidden: true,
            }
            .judged(judge, mv.last_modified),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, latest: bool, marker: bool, at: i64) -> ObjectVersion {
        let mut o = ObjectVersion::new("k", id, if marker { 0 } else { 10 });
        o.latest = latest;
        o.delete_marker = marker;
        o.last_modified = chrono::DateTime::from_timestamp(at, 0);
        o
    }

    #[test]
    fn only_data_under_a_marker_is_hidden() {
        assert_eq!(hidden_version(&[v("1", true, false, 1)]), None);
        let under = [
            v("1", false, false, 1),
            v("2", false, false, 2),
            v("m", true, true, 3),
        ];
        assert_eq!(
            hidden_version(&under).map(|x| x.version.as_str()),
            Some("2")
        );
        assert_eq!(hidden_version(&[v("m", true, true, 3)]), None);
    }
}
