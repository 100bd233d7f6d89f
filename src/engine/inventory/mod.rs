//! What archives a location holds: manifests, data objects, and how they pair up.
//!
//! Two steps, so that a command reads only what it needs. A [`Listing`] is one listing of the
//! location, keys classified (manifest, data object, verification record) and nothing read. A
//! [`Reader`] then reads manifests, concurrently with a bounded number in flight (each read
//! retried on throttling by the provider's retry layer), in a stable order, and for a full
//! [`scan`] of a remote store through the local inventory [`cache`], which spares the reads of
//! manifests unchanged since the last scan. The listing always decides what exists: a cached
//! manifest whose key is no longer listed is not a copy.

pub mod cache;
mod judge;
mod policy;
mod trust;

pub use judge::{Clock, Judge};
pub use policy::{read_inventory, Scanned};
pub use trust::{Signature, Signers};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures::{stream, StreamExt, TryStreamExt};
use offsite_storage::{ObjectMeta, Scheme, StorageExt};

use crate::archive::{
    time_from_name, Manifest, ManifestFile, Signed, AGE_SUFFIX, MANIFEST_SUFFIX, VERIFIED_SUFFIX,
};
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
    /// Manifest and data object present, but trusted signers are configured and the manifest
    /// is not signed by one of them (see [`Entry::signature`]): never counts as a copy, never
    /// restored by `--latest`, never deleted by retention.
    Untrusted,
    /// Whole and trusted, but its creation time runs ahead of the clocks that judge it (see
    /// [`Entry::future`]): never the newest, never counted, never deleted.
    FutureDated,
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
            State::Untrusted => "untrusted",
            State::FutureDated => "future-dated",
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
    /// A signed manifest's exact signed text and signature.
    pub signed: Option<Signed>,
    /// Whether the manifest is trusted.
    pub signature: Signature,
    /// Why its creation time cannot be believed, when it cannot.
    pub future: Option<offsite_policies::clock::FutureDated>,
    /// The data object as listed.
    pub object: Option<ObjectMeta>,
    /// The verification record, when one was listed.
    pub verified_key: Option<String>,
    /// The state.
    pub state: State,
    /// A copy a delete marker hides (`engine::hidden`): its data is read by version.
    pub hidden: bool,
}

impl Entry {
    /// The entry with its manifest judged: a complete copy whose manifest is not trusted
    /// becomes [`State::Untrusted`]; a trusted one whose creation time runs ahead of the
    /// reader's clock, of `written` (when the store wrote the manifest) or of its push time
    /// becomes [`State::FutureDated`]. Every entry a reader builds passes here.
    pub fn judged(mut self, judge: &Judge, written: Option<DateTime<Utc>>) -> Entry {
        if let Some(m) = &self.manifest {
            self.signature = judge.signers.judge(&self.name, m, self.signed.as_ref());
            self.future = offsite_policies::clock::future_dated(
                m.created,
                judge.clock.now,
                written,
                Some(m.pushed),
                judge.clock.tolerance,
            );
            if self.state == State::Complete && self.signature.untrusted().is_some() {
                self.state = State::Untrusted;
            } else if self.state == State::Complete && self.future.is_some() {
                self.state = State::FutureDated;
            }
        }
        self
    }

    /// Creation time: the manifest's, else a timestamp in the name, else the object's mtime.
    pub fn created(&self) -> Option<DateTime<Utc>> {
        self.manifest
            .as_ref()
            .map(|m| m.created)
            .or_else(|| time_from_name(&self.name))
            .or_else(|| self.object.as_ref().and_then(|o| o.last_modified))
    }

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

/// How manifests are read, and what their copies are judged by.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Manifest reads in flight at once; `None` takes [`default_jobs`] of the store.
    pub jobs: Option<usize>,
    /// Leave the inventory cache alone: read every manifest and neither load nor save it.
    pub no_cache: bool,
    /// The trusted keys and the reader's clock.
    pub judge: Judge,
}

impl ReadOptions {
    /// Every manifest read `jobs` at a time by default, through the cache, judged by `judge`.
    pub fn new(judge: Judge) -> ReadOptions {
        ReadOptions {
            jobs: None,
            no_cache: false,
            judge,
        }
    }
}

/// Manifest reads in flight by default: object stores answer many small GETs at once (S3
/// scales per prefix to thousands a second; GCS and Azure throttle sooner, so they get fewer);
/// a local disk gains little past a few.
pub fn default_jobs(scheme: Scheme) -> usize {
    match scheme {
        Scheme::S3 => 32,
        Scheme::Gcs | Scheme::Azure => 16,
        Scheme::File | Scheme::Memory => 8,
    }
}

/// One listing of a location, nothing read yet.
#[derive(Debug, Default)]
pub struct Listing {
    /// Manifest objects by archive name.
    pub manifests: BTreeMap<String, ObjectMeta>,
    /// Data objects by object name (`NAME`, or `NAME.age` when encrypted).
    pub objects: BTreeMap<String, ObjectMeta>,
    /// Verification records' keys by archive name.
    pub verified: BTreeMap<String, String>,
    /// Whether the store lists modification times finer than a second (some listed time has
    /// a fraction), which makes a time a fingerprint for the cache where no ETag is listed.
    pub fine_times: bool,
}

/// Strips the location's prefix from a listed key, leaving the name under it.
fn relative<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(key);
    }
    key.strip_prefix(prefix)?.strip_prefix('/')
}

impl Listing {
    /// Lists a location. Objects in sub-directories are not archives of this location and
    /// are skipped.
    pub async fn of(loc: &Opened) -> offsite_storage::Result<Listing> {
        let prefix = key_prefix(&loc.location).to_string();
        let mut listing = Listing::default();
        let mut listed = loc.store.list(&prefix);
        while let Some(meta) = listed.try_next().await? {
            let Some(rel) = relative(&meta.key, &prefix) else {
                continue;
            };
            listing.fine_times |= meta
                .last_modified
                .is_some_and(|t| t.timestamp_subsec_nanos() != 0);
            if rel.contains('/') {
                continue;
            }
            if let Some(name) = rel.strip_suffix(MANIFEST_SUFFIX) {
                listing.manifests.insert(name.to_string(), meta);
            } else if let Some(name) = rel.strip_suffix(VERIFIED_SUFFIX) {
                listing.verified.insert(name.to_string(), meta.key);
            } else {
                listing.objects.insert(rel.to_string(), meta);
            }
        }
        Ok(listing)
    }

    /// How many archive names the location shows, committed or not.
    pub fn archive_count(&self) -> usize {
        let orphans = self
            .objects
            .keys()
            .filter(|o| {
                let name = o.strip_suffix(AGE_SUFFIX).unwrap_or(o);
                !self.manifests.contains_key(name)
            })
            .count();
        self.manifests.len() + orphans
    }

    /// Pairs a manifest as read with the listed data object, judged by `judge`. `None` when
    /// the manifest was listed but gone by the time it was read.
    fn entry(
        &self,
        name: &str,
        read: Option<Result<ManifestFile, String>>,
        judge: &Judge,
    ) -> Option<Entry> {
        let (manifest, signed, manifest_error) = match read? {
            Ok(f) => (Some(f.manifest), f.signature, None),
            Err(e) => (None, None, Some(e)),
        };
        let object = self
            .objects
            .get(&object_name(self, name, manifest.as_ref()))
            .cloned();
        let state = match (&manifest, &object) {
            (None, _) => State::BadManifest,
            (Some(_), None) => State::MissingData,
            (Some(m), Some(o)) if o.size != m.stored.size => State::WrongSize,
            (Some(_), Some(_)) => State::Complete,
        };
        let entry = Entry {
            name: name.to_string(),
            manifest,
            manifest_error,
            signed,
            signature: Signature::NotChecked { signed: false },
            future: None,
            object,
            verified_key: self.verified.get(name).cloned(),
            hidden: false,
            state,
        };
        let written = self.manifests.get(name).and_then(|m| m.last_modified);
        Some(entry.judged(judge, written))
    }

    /// The entry of a data object that no manifest claims: an upload that never committed.
    fn orphan(&self, object: &str) -> Entry {
        Entry {
            name: object
                .strip_suffix(AGE_SUFFIX)
                .unwrap_or(object)
                .to_string(),
            manifest: None,
            manifest_error: None,
            signed: None,
            signature: Signature::NotChecked { signed: false },
            future: None,
            object: self.objects.get(object).cloned(),
            verified_key: None,
            hidden: false,
            state: State::Incomplete,
        }
    }
}

/// The data object a manifest names, or for an unreadable one the object its name suggests.
fn object_name(listing: &Listing, name: &str, manifest: Option<&Manifest>) -> String {
    match manifest {
        Some(m) => m
            .stored
            .key
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        None if listing.objects.contains_key(&format!("{name}{AGE_SUFFIX}")) => {
            format!("{name}{AGE_SUFFIX}")
        }
        None => name.to_string(),
    }
}

/// Reads manifests of one location.
pub struct Reader<'a> {
    loc: &'a Opened,
    jobs: usize,
    judge: Judge,
    reads: AtomicU64,
}

impl<'a> Reader<'a> {
    /// A reader for `loc`.
    pub fn new(loc: &'a Opened, options: &ReadOptions) -> Reader<'a> {
        Reader {
            loc,
            jobs: options
                .jobs
                .unwrap_or_else(|| default_jobs(loc.location.scheme))
                .max(1),
            judge: options.judge.clone(),
            reads: AtomicU64::new(0),
        }
    }

    /// Manifest reads in flight at once.
    pub fn jobs(&self) -> usize {
        self.jobs
    }

    /// GETs of manifests made so far.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Reads one manifest, `Ok(None)` when it is gone.
    pub async fn read(
        &self,
        meta: &ObjectMeta,
    ) -> offsite_storage::Result<Option<Result<ManifestFile, String>>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        read_manifest(&*self.loc.store, &meta.key).await
    }

    /// The entry of one archive name: its manifest read (only that one), paired with the
    /// listed data object; or an upload that never committed; `None` when the listing shows
    /// nothing of that name.
    pub async fn entry(
        &self,
        listing: &Listing,
        name: &str,
    ) -> offsite_storage::Result<Option<Entry>> {
        if let Some(meta) = listing.manifests.get(name) {
            let read = self.read(meta).await?;
            if let Some(e) = listing.entry(name, read, &self.judge) {
                return Ok(Some(e));
            }
        }
        let orphan = [format!("{name}{AGE_SUFFIX}"), name.to_string()]
            .into_iter()
            .find(|o| listing.objects.contains_key(o));
        Ok(orphan.map(|o| listing.orphan(&o)))
    }

    /// Every entry of the listing: each manifest taken from `cache` when it holds it unchanged,
    /// else read, `jobs` at a time, results in the listing's order; then the data objects no
    /// manifest claims. Sorted by creation time, then name.
    pub async fn entries(
        &self,
        listing: &Listing,
        mut cache: Option<&mut cache::Cache>,
    ) -> offsite_storage::Result<Vec<Entry>> {
        let mut reads: Vec<Option<Option<Result<ManifestFile, String>>>> =
            Vec::with_capacity(listing.manifests.len());
        let mut wanted = Vec::new();
        for (i, meta) in listing.manifests.values().enumerate() {
            match cache
                .as_deref_mut()
                .and_then(|c| c.take(meta, listing.fine_times))
            {
                Some(m) => reads.push(Some(Some(Ok(m)))),
                None => {
                    reads.push(None);
                    wanted.push((i, meta));
                }
            }
        }
        let mut fresh = stream::iter(wanted)
            .map(|(i, meta)| async move { self.read(meta).await.map(|r| (i, r)) })
            .buffered(self.jobs);
        while let Some((i, read)) = fresh.try_next().await? {
            reads[i] = Some(read);
        }
        drop(fresh);
        let mut claimed = std::collections::BTreeSet::new();
        let mut out = Vec::with_capacity(listing.manifests.len());
        for (name, read) in listing.manifests.keys().zip(reads) {
            if let Some(e) = listing.entry(name, read.flatten(), &self.judge) {
                if let Some(o) = &e.object {
                    claimed.insert(o.key.clone());
                }
                out.push(e);
            }
        }
        for (oname, meta) in &listing.objects {
            if !claimed.contains(&meta.key) {
                out.push(listing.orphan(oname));
            }
        }
        out.sort_by(|a, b| {
            a.created()
                .cmp(&b.created())
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(out)
    }
}

impl Reader<'_> {
    /// Logs (at `-v`) what was listed and how many manifests were read: the request count
    /// the benchmark reports, and what a user asks when a listing is slow.
    pub fn log(&self, listing: &Listing, from_cache: usize) {
        tracing::info!(
            url = %self.loc.url(),
            manifests = listing.manifests.len(),
            read = self.reads(),
            from_cache,
            jobs = self.jobs,
            "inventory: listed, read only the manifests needed"
        );
    }
}

/// Lists a location and reads all its manifests: the inventory `ls` and `verify` show. On a
/// remote store the cache spares the reads of manifests that have not changed since the last
/// scan, unless `options.no_cache`.
pub async fn scan(loc: &Opened, options: &ReadOptions) -> offsite_storage::Result<Vec<Entry>> {
    let listing = Listing::of(loc).await?;
    let reader = Reader::new(loc, options);
    let mut cache = (!options.no_cache)
        .then(|| cache::Cache::load(&loc.location))
        .flatten();
    let entries = reader.entries(&listing, cache.as_mut()).await?;
    if let Some(c) = cache {
        c.save(&listing, &entries, reader.reads());
    }
    reader.log(
        &listing,
        listing
            .manifests
            .len()
            .saturating_sub(reader.reads() as usize),
    );
    Ok(entries)
}

/// Lists a location and reads the one manifest of `name` (never the cache): the entry
/// `verify --archive` checks, `None` when the location shows nothing of that name.
pub async fn one(
    loc: &Opened,
    options: &ReadOptions,
    name: &str,
) -> offsite_storage::Result<Option<Entry>> {
    let listing = Listing::of(loc).await?;
    let reader = Reader::new(loc, options);
    let entry = reader.entry(&listing, name).await?;
    reader.log(&listing, 0);
    Ok(entry)
}

/// Reads one archive's manifest object at a location, `Ok(None)` when there is none.
pub async fn read_manifest(
    store: &dyn offsite_storage::Storage,
    key: &str,
) -> offsite_storage::Result<Option<Result<ManifestFile, String>>> {
    match store.get_bytes(key).await {
        Ok(bytes) => Ok(Some(ManifestFile::parse(&bytes))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}
