//! Replication planning (what `offsite replicate` carries out): two listings in key order in,
//! one decision per key out (copy, skip, or with `delete` delete), with the reason, grouped by
//! [`units`] so that an archive's keys move together, and [`decide_archive`] for an archive from
//! both manifests. Pure and streaming: [`Plan`] merges the two iterators as it goes, so memory
//! does not grow with the bucket. Listings must
//! be in ascending key order (byte-wise); an out-of-order key is an error, never a wrong plan.
//!
//! The comparison, per key present on both sides: a different size copies; where both sides
//! know the SHA-256 (an archive's manifest, or a HEAD with `--checksum`) it decides; else where
//! both sides carry a comparable entity tag (the caller passes tags only when the two providers'
//! tags mean the same thing) it decides; else the same size skips. With `checksum` a key whose
//! SHA-256 is unknown on either side is copied rather than trusted.

use std::iter::Peekable;

use serde::Serialize;

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The key, relative to the location.
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// An entity tag comparable with the other side's, when there is one.
    pub etag: Option<String>,
    /// The SHA-256 of the bytes, when known (lowercase hex).
    pub sha256: Option<String>,
}

/// What to do with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Copy it to the destination.
    Copy,
    /// Leave it.
    Skip,
    /// Delete it at the destination (only with `delete`).
    Delete,
}

/// Why a key or an archive is copied, skipped or deleted: shown to the user beside the action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The sizes differ.
    SizeDiffers,
    /// Both sides' SHA-256s are the same.
    SameSha256,
    /// The SHA-256s differ.
    Sha256Differs,
    /// `checksum`, and a side whose SHA-256 is not known.
    NoSha256,
    /// The same size and entity tag.
    SameSizeAndEtag,
    /// The entity tags differ.
    EtagDiffers,
    /// The same size, and nothing else to compare.
    SameSize,
    /// Only at the source.
    MissingAtDestination,
    /// Only at the destination, with `delete`.
    NotAtSource,
    /// Only at the destination, without `delete`.
    OnlyAtDestination,
    /// An archive with no manifest at the source.
    NoSourceManifest,
    /// An archive whose data at the source is missing or the wrong size.
    SourceDataMissing,
    /// Another archive under the same name at the destination.
    DifferentArchive,
    /// The destination's data object is missing or the wrong size.
    DestinationDataMissing,
    /// `checksum`: the destination's data does not match its manifest.
    DestinationDataDiffers,
    /// `checksum`: the destination's data could not be checked.
    DestinationDataUnchecked,
    /// `checksum`: the same archive, its data checked.
    SameArchiveChecked,
    /// The same archive (same SHA-256s and size), trusted as quick verify trusts it.
    SameArchive,
}

impl Reason {
    /// The words shown for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SizeDiffers => "size differs",
            Reason::SameSha256 => "same SHA-256",
            Reason::Sha256Differs => "SHA-256 differs",
            Reason::NoSha256 => "no SHA-256 to compare (--checksum)",
            Reason::SameSizeAndEtag => "same size and ETag",
            Reason::EtagDiffers => "ETag differs",
            Reason::SameSize => "same size",
            Reason::MissingAtDestination => "missing at the destination",
            Reason::NotAtSource => "not at the source",
            Reason::OnlyAtDestination => "only at the destination (kept without --delete)",
            Reason::NoSourceManifest => "no manifest at the source (an incomplete push): not replicated",
            Reason::SourceDataMissing => "the source's data object is missing or not the size its manifest records: not replicated",
            Reason::DifferentArchive => "a different archive under the same name",
            Reason::DestinationDataMissing => "the destination's data object is missing or the wrong size",
            Reason::DestinationDataDiffers => "the destination's data does not match its SHA-256 (--checksum)",
            Reason::DestinationDataUnchecked => "the destination's data could not be checked (--checksum)",
            Reason::SameArchiveChecked => "same archive, data checked",
            Reason::SameArchive => "same archive (same SHA-256 and size)",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Serialized as its words.
impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The decision on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The key.
    pub key: String,
    /// What to do.
    pub action: Action,
    /// Why.
    pub reason: Reason,
    /// The source's size (the destination's for a delete).
    pub size: u64,
    /// The key as the source listed it, when it has it.
    #[serde(skip)]
    pub source: Option<Item>,
    /// The key as the destination listed it, when it has it.
    #[serde(skip)]
    pub destination: Option<Item>,
}

/// How keys are compared and whether extra keys go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Delete keys the source does not have.
    pub delete: bool,
    /// Trust nothing but the SHA-256.
    pub checksum: bool,
}

/// A listing out of key order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {side} listing is not in key order: {after:?} came after {before:?}; sort it first")]
pub struct OrderError {
    /// `source` or `destination`.
    pub side: &'static str,
    /// The key seen first.
    pub before: String,
    /// The key that came after it.
    pub after: String,
}

/// The streaming plan over a source and a destination listing.
pub struct Plan<S: Iterator<Item = Item>, D: Iterator<Item = Item>> {
    src: Peekable<S>,
    dst: Peekable<D>,
    options: Options,
    last_src: Option<String>,
    last_dst: Option<String>,
    failed: bool,
}

/// Plans `src` onto `dst`, both in ascending key order.
pub fn plan<S, D>(src: S, dst: D, options: Options) -> Plan<S::IntoIter, D::IntoIter>
where
    S: IntoIterator<Item = Item>,
    D: IntoIterator<Item = Item>,
{
    Plan {
        src: src.into_iter().peekable(),
        dst: dst.into_iter().peekable(),
        options,
        last_src: None,
        last_dst: None,
        failed: false,
    }
}

fn check_order(side: &'static str, last: &mut Option<String>, key: &str) -> Result<(), OrderError> {
    if let Some(before) = last.as_deref() {
        if key <= before {
            return Err(OrderError {
                side,
                before: before.to_string(),
                after: key.to_string(),
            });
        }
    }
    *last = Some(key.to_string());
    Ok(())
}

/// The decision for a key on both sides.
pub fn compare(s: &Item, d: &Item, options: Options) -> (Action, Reason) {
    if s.size != d.size {
        return (Action::Copy, Reason::SizeDiffers);
    }
    match (&s.sha256, &d.sha256) {
        (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => {
            return (Action::Skip, Reason::SameSha256)
        }
        (Some(_), Some(_)) => return (Action::Copy, Reason::Sha256Differs),
        _ if options.checksum => return (Action::Copy, Reason::NoSha256),
        _ => {}
    }
    match (&s.etag, &d.etag) {
        (Some(a), Some(b)) if a.trim_matches('"') == b.trim_matches('"') => {
            (Action::Skip, Reason::SameSizeAndEtag)
        }
        (Some(_), Some(_)) => (Action::Copy, Reason::EtagDiffers),
        _ => (Action::Skip, Reason::SameSize),
    }
}

impl<S: Iterator<Item = Item>, D: Iterator<Item = Item>> Iterator for Plan<S, D> {
    type Item = Result<Decision, OrderError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let order = |side, last: &mut Option<String>, key: &str| check_order(side, last, key);
        let pick = match (self.src.peek(), self.dst.peek()) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(s), Some(d)) => s.key.as_str().cmp(d.key.as_str()),
        };
        let res = match pick {
            std::cmp::Ordering::Less => {
                let s = self.src.next().expect("peeked");
                order("source", &mut self.last_src, &s.key).map(|()| Decision {
                    size: s.size,
                    key: s.key.clone(),
                    action: Action::Copy,
                    reason: Reason::MissingAtDestination,
                    source: Some(s),
                    destination: None,
                })
            }
            std::cmp::Ordering::Greater => {
                let d = self.dst.next().expect("peeked");
                order("destination", &mut self.last_dst, &d.key).map(|()| {
                    let (action, reason) = if self.options.delete {
                        (Action::Delete, Reason::NotAtSource)
                    } else {
                        (Action::Skip, Reason::OnlyAtDestination)
                    };
                    Decision {
                        size: d.size,
                        key: d.key.clone(),
                        action,
                        reason,
                        source: None,
                        destination: Some(d),
                    }
                })
            }
            std::cmp::Ordering::Equal => {
                let s = self.src.next().expect("peeked");
                let d = self.dst.next().expect("peeked");
                order("source", &mut self.last_src, &s.key)
                    .and_then(|()| order("destination", &mut self.last_dst, &d.key))
                    .map(|()| {
                        let (action, reason) = compare(&s, &d, self.options);
                        Decision {
                            size: s.size,
                            key: s.key.clone(),
                            action,
                            reason,
                            source: Some(s),
                            destination: Some(d),
                        }
                    })
            }
        };
        if res.is_err() {
            self.failed = true;
        }
        Some(res)
    }
}

/// The archive a key belongs to (its data object, manifest and verification record share
/// it), else the key itself: shards split by archive, so one pod copies an archive's data
/// before its manifest.
pub fn archive_of(key: &str) -> &str {
    for suffix in [".manifest.json", ".verified.json", ".age"] {
        if let Some(name) = key.strip_suffix(suffix) {
            return name;
        }
    }
    key
}

/// The shard (0..n) a key belongs to: FNV-1a over its archive's name, so every run and every
/// pod agrees.
pub fn shard_of(key: &str, n: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in archive_of(key).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(n.max(1))) as u32
}

/// What a replication does with one unit: a plain object, or an archive (its data object,
/// manifest and verification record, which must move together: data first, manifest last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// A key that belongs to no archive: copied as it is.
    Object(Decision),
    /// The keys of one archive, in key order, as the per-key plan saw them; the archive's own
    /// decision needs both manifests ([`decide_archive`]).
    Archive {
        /// The archive's name (the keys without their suffix).
        name: String,
        /// Its keys' decisions.
        keys: Vec<Decision>,
    },
}

/// Groups a plan's decisions into [`Unit`]s, in key order. All keys that start with an
/// archive's name and a dot are contiguous in key order, so the keys of one archive are always
/// together and a group holds only keys of that range: memory stays bounded by the largest
/// archive group, never by the listing.
pub fn units<I>(decisions: I) -> Units<I::IntoIter>
where
    I: IntoIterator<Item = Result<Decision, OrderError>>,
{
    Units {
        inner: decisions.into_iter().peekable(),
        ready: std::collections::VecDeque::new(),
    }
}

/// The iterator [`units`] returns.
pub struct Units<I: Iterator<Item = Result<Decision, OrderError>>> {
    inner: Peekable<I>,
    ready: std::collections::VecDeque<Result<Unit, OrderError>>,
}

impl<I: Iterator<Item = Result<Decision, OrderError>>> Iterator for Units<I> {
    type Item = Result<Unit, OrderError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(u) = self.ready.pop_front() {
            return Some(u);
        }
        let first = match self.inner.next()? {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        };
        let name = archive_of(&first.key);
        if name == first.key {
            return Some(Ok(Unit::Object(first)));
        }
        // The range of keys under `name.`: groups by archive (nested names too), plain keys
        // beside them, all emitted in key order of each group's first key.
        let range = format!("{name}.");
        let mut order: Vec<String> = vec![name.to_string()];
        let mut groups: std::collections::HashMap<String, Vec<Decision>> =
            std::collections::HashMap::from([(name.to_string(), vec![first])]);
        let mut plain: Vec<(usize, Decision)> = Vec::new();
        while let Some(Ok(d)) = self.inner.peek() {
            if !d.key.starts_with(&range) {
                break;
            }
            let d = match self.inner.next() {
                Some(Ok(d)) => d,
                _ => unreachable!("peeked"),
            };
            let n = archive_of(&d.key);
            if n == d.key {
                plain.push((order.len(), d));
                continue;
            }
            match groups.get_mut(n) {
                Some(g) => g.push(d),
                None => {
                    order.push(n.to_string());
                    groups.insert(n.to_string(), vec![d]);
                }
            }
        }
        let mut plain = plain.into_iter().peekable();
        for (i, n) in order.into_iter().enumerate() {
            while let Some((_, d)) = plain.next_if(|(at, _)| *at <= i) {
                self.ready.push_back(Ok(Unit::Object(d)));
            }
            let keys = groups.remove(&n).expect("grouped");
            self.ready.push_back(Ok(Unit::Archive { name: n, keys }));
        }
        self.ready.extend(plain.map(|(_, d)| Ok(Unit::Object(d))));
        // An order error right after the range ends the units too.
        if let Some(Err(_)) = self.inner.peek() {
            if let Some(e) = self.inner.next() {
                self.ready.push_back(e.map(Unit::Object));
            }
        }
        self.ready.pop_front()
    }
}

/// One side's copy of an archive, as its manifest and listing describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The plaintext's SHA-256 (the archive's identity).
    pub plaintext_sha256: String,
    /// The stored object's SHA-256 (the same ciphertext on every copy).
    pub stored_sha256: String,
    /// The stored object's size, as the manifest records it.
    pub stored_size: u64,
    /// The data object's size as listed, when it is there.
    pub data_size: Option<u64>,
}

/// What to do with an archive, and why: copy (data, then the destination's own manifest),
/// skip, or leave it out because the source has no manifest for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveAction {
    /// Copy the data (unless the destination's is proven the same) and write the manifest.
    Copy,
    /// The destination has the same archive, complete.
    Skip,
    /// The source has data but no manifest: an incomplete push, not replicated.
    NoManifest,
}

/// The decision on one archive from both manifests. `data_proven` says the destination's data
/// object was checked against its manifest (`--checksum`: by the provider's checksum or by
/// reading it); without `--checksum` a complete copy with the same SHA-256s and size is trusted,
/// as quick verify trusts it.
pub fn decide_archive(
    src: Option<&Held>,
    dst: Option<&Held>,
    checksum: bool,
    data_proven: Option<bool>,
) -> (ArchiveAction, Reason) {
    let Some(s) = src else {
        return (ArchiveAction::NoManifest, Reason::NoSourceManifest);
    };
    if s.data_size != Some(s.stored_size) {
        return (ArchiveAction::NoManifest, Reason::SourceDataMissing);
    }
    let Some(d) = dst else {
        return (ArchiveAction::Copy, Reason::MissingAtDestination);
    };
    if !d.plaintext_sha256.eq_ignore_ascii_case(&s.plaintext_sha256)
        || !d.stored_sha256.eq_ignore_ascii_case(&s.stored_sha256)
    {
        return (ArchiveAction::Copy, Reason::DifferentArchive);
    }
    if d.data_size != Some(s.stored_size) {
        return (ArchiveAction::Copy, Reason::DestinationDataMissing);
    }
    match (checksum, data_proven) {
        (true, Some(false)) => (ArchiveAction::Copy, Reason::DestinationDataDiffers),
        (true, None) => (ArchiveAction::Copy, Reason::DestinationDataUnchecked),
        (true, Some(true)) => (ArchiveAction::Skip, Reason::SameArchiveChecked),
        (false, _) => (ArchiveAction::Skip, Reason::SameArchive),
    }
}

/// Why the deletions of a run must not happen: the guards a sync needs so that a broken
/// source never wipes its target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeleteRefusal {
    /// A listing (either side's) failed or broke key order: what is missing is not known.
    #[error("a listing did not complete ({0}): nothing is deleted")]
    ListingIncomplete(String),
    /// The source listed nothing (the classic way a sync wipes its target).
    #[error("the source lists nothing, and {deletes} key(s) would be deleted at the destination: nothing is deleted (check the source URL and credentials)")]
    SourceEmpty {
        /// Keys that would have been deleted.
        deletes: u64,
    },
    /// More would go than `--max-delete` allows.
    #[error("{deletes} key(s) would be deleted, more than --max-delete {max}: nothing is deleted")]
    OverMaxDelete {
        /// Keys that would have been deleted.
        deletes: u64,
        /// The cap.
        max: u64,
    },
}

/// Serialized as its sentence (the `--json` summary's `deletes_refused`).
impl Serialize for DeleteRefusal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why deletions must not happen, or `None`. `source_keys` is how many keys the source listed,
/// or why a listing did not complete; nothing is deleted then, nor when the source listed
/// nothing, nor when more would go than `max_delete`.
pub fn refuse_deletes(
    source_keys: Result<u64, &str>,
    deletes: u64,
    max_delete: Option<u64>,
) -> Option<DeleteRefusal> {
    if deletes == 0 {
        return None;
    }
    match (source_keys, max_delete) {
        (Err(why), _) => Some(DeleteRefusal::ListingIncomplete(why.to_string())),
        (Ok(0), _) => Some(DeleteRefusal::SourceEmpty { deletes }),
        (Ok(_), Some(max)) if deletes > max => Some(DeleteRefusal::OverMaxDelete { deletes, max }),
        (Ok(_), _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn item(key: &str, size: u64, sha: Option<&str>, etag: Option<&str>) -> Item {
        Item {
            key: key.into(),
            size,
            etag: etag.map(String::from),
            sha256: sha.map(String::from),
        }
    }

    #[test]
    fn decides_by_size_then_sha256_then_etag() {
        let o = Options::default();
        let c = |s, d| compare(&s, &d, o);
        assert_eq!(
            c(item("k", 1, None, None), item("k", 2, None, None)).1,
            Reason::SizeDiffers
        );
        assert_eq!(
            c(
                item("k", 1, Some("ab"), None),
                item("k", 1, Some("AB"), None)
            )
            .0,
            Action::Skip
        );
        assert_eq!(
            c(
                item("k", 1, Some("ab"), Some("x")),
                item("k", 1, Some("cd"), Some("x"))
            )
            .1,
            Reason::Sha256Differs
        );
        assert_eq!(
            c(
                item("k", 1, None, Some("\"x\"")),
                item("k", 1, None, Some("x"))
            )
            .0,
            Action::Skip
        );
        assert_eq!(
            c(item("k", 1, None, Some("x")), item("k", 1, None, Some("y"))).1,
            Reason::EtagDiffers
        );
        assert_eq!(
            c(item("k", 1, None, None), item("k", 1, None, None)).1,
            Reason::SameSize
        );
        let strict = Options {
            checksum: true,
            ..o
        };
        assert_eq!(
            compare(
                &item("k", 1, None, Some("x")),
                &item("k", 1, None, Some("x")),
                strict
            )
            .0,
            Action::Copy
        );
    }

    #[test]
    fn an_unsorted_listing_is_an_error_not_a_plan() {
        let src = vec![item("b", 1, None, None), item("a", 1, None, None)];
        let out: Vec<_> = plan(src, Vec::new(), Options::default()).collect();
        assert_eq!(out.len(), 2);
        assert!(out[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("\"a\" came after \"b\""));
    }

    #[test]
    fn deletion_guards() {
        assert_eq!(
            refuse_deletes(Ok(0), 5, None),
            Some(DeleteRefusal::SourceEmpty { deletes: 5 })
        );
        assert_eq!(
            refuse_deletes(Ok(10), 5, Some(4)),
            Some(DeleteRefusal::OverMaxDelete { deletes: 5, max: 4 })
        );
        assert!(matches!(
            refuse_deletes(Err("cannot list"), 1, None),
            Some(DeleteRefusal::ListingIncomplete(_))
        ));
        assert_eq!(refuse_deletes(Ok(10), 4, Some(4)), None);
        assert_eq!(refuse_deletes(Ok(0), 0, None), None);
        assert_eq!(refuse_deletes(Err("cannot list"), 0, None), None);
        assert!(DeleteRefusal::OverMaxDelete { deletes: 5, max: 4 }
            .to_string()
            .contains("--max-delete 4"));
    }

    #[test]
    fn an_archive_stays_in_one_shard() {
        for n in 1..9 {
            let s = shard_of("app/x-20261126_020000.tar.gz.age", n);
            assert_eq!(shard_of("app/x-20261126_020000.tar.gz.manifest.json", n), s);
            assert_eq!(shard_of("app/x-20261126_020000.tar.gz.verified.json", n), s);
            assert!(s < n);
        }
    }

    #[test]
    fn an_archive_moves_as_one_unit_in_key_order() {
        let keys = [
            "a.tar.gz",
            "a.tar.gz.age",
            "a.tar.gz.age.partial",
            "a.tar.gz.manifest.json",
            "a.tar.gz.verified.json",
            "a.tar.gz.x.tar.gz.age",
            "a.tar.gz.x.tar.gz.manifest.json",
            "b.txt",
        ];
        let src: Vec<Item> = keys.iter().map(|k| item(k, 1, None, None)).collect();
        let out: Vec<Unit> = units(plan(src, Vec::new(), Options::default()))
            .collect::<Result<_, _>>()
            .unwrap();
        let shape: Vec<String> = out
            .iter()
            .map(|u| match u {
                Unit::Object(d) => d.key.clone(),
                Unit::Archive { name, keys } => format!("[{name}: {}]", keys.len()),
            })
            .collect();
        assert_eq!(
            shape,
            [
                "a.tar.gz",
                "[a.tar.gz: 3]",
                "a.tar.gz.age.partial",
                "[a.tar.gz.x.tar.gz: 2]",
                "b.txt"
            ]
        );
    }

    #[test]
    fn an_archive_is_copied_unless_the_destination_holds_the_same_complete_one() {
        let held = |p: &str, size: Option<u64>| Held {
            plaintext_sha256: p.into(),
            stored_sha256: "cc".into(),
            stored_size: 10,
            data_size: size,
        };
        let s = held("aa", Some(10));
        let d = |h: Option<&Held>| decide_archive(Some(&s), h, false, None).0;
        assert_eq!(
            decide_archive(None, None, false, None).0,
            ArchiveAction::NoManifest
        );
        assert_eq!(
            decide_archive(Some(&held("aa", None)), None, false, None).0,
            ArchiveAction::NoManifest
        );
        assert_eq!(d(None), ArchiveAction::Copy);
        assert_eq!(d(Some(&held("AA", Some(10)))), ArchiveAction::Skip);
        assert_eq!(d(Some(&held("bb", Some(10)))), ArchiveAction::Copy);
        assert_eq!(d(Some(&held("aa", Some(9)))), ArchiveAction::Copy);
        assert_eq!(d(Some(&held("aa", None))), ArchiveAction::Copy);
        let dd = held("aa", Some(10));
        assert_eq!(
            decide_archive(Some(&s), Some(&dd), true, Some(false)).0,
            ArchiveAction::Copy
        );
        assert_eq!(
            decide_archive(Some(&s), Some(&dd), true, None).0,
            ArchiveAction::Copy
        );
        assert_eq!(
            decide_archive(Some(&s), Some(&dd), true, Some(true)).0,
            ArchiveAction::Skip
        );
    }

    proptest! {
        /// Over random listings: one decision per key of the union, in key order; a copy
        /// exactly where the source has the key and the destination lacks it or differs; a
        /// delete only with `delete` and only for keys the source lacks; shards partition.
        #[test]
        fn the_plan_agrees_with_set_arithmetic(
            src in proptest::collection::btree_map("[a-d]{1,3}", (0u64..3, proptest::option::of("[ab]")), 0..30),
            dst in proptest::collection::btree_map("[a-d]{1,3}", (0u64..3, proptest::option::of("[ab]")), 0..30),
            delete in any::<bool>(),
            n in 1u32..6,
        ) {
            let to_items = |m: &BTreeMap<String, (u64, Option<String>)>| -> Vec<Item> {
                m.iter().map(|(k, (s, h))| Item { key: k.clone(), size: *s, etag: None, sha256: h.clone() }).collect()
            };
            let out: Vec<Decision> = plan(to_items(&src), to_items(&dst), Options { delete, checksum: false })
                .collect::<Result<_, _>>()
                .unwrap();
            let union: std::collections::BTreeSet<&String> = src.keys().chain(dst.keys()).collect();
            prop_assert_eq!(out.iter().map(|d| &d.key).collect::<Vec<_>>(), union.into_iter().collect::<Vec<_>>());
            for d in &out {
                let (s, t) = (src.get(&d.key), dst.get(&d.key));
                let differs = match (s, t) {
                    (Some(a), Some(b)) => a.0 != b.0 || matches!((&a.1, &b.1), (Some(x), Some(y)) if x != y),
                    _ => false,
                };
                let want = match (s, t) {
                    (Some(_), None) => Action::Copy,
                    (Some(_), Some(_)) if differs => Action::Copy,
                    (Some(_), Some(_)) => Action::Skip,
                    (None, Some(_)) if delete => Action::Delete,
                    (None, Some(_)) => Action::Skip,
                    (None, None) => unreachable!(),
                };
                prop_assert_eq!(d.action, want, "{}", d.key);
                // Every key is in exactly one shard.
                let hits = (0..n).filter(|&i| shard_of(&d.key, n) == i).count();
                prop_assert_eq!(hits, 1);
            }
        }
    }
}
