//! The prune runner: reads what a policy's destinations hold, plans with
//! `offsite_policies::retention::plan` (its rails included), adds what killed pushes leave
//! (data without a manifest, open multipart uploads, stale local spools), and, unless the plan
//! is refused or this is a dry run, carries it out: deletes, lock extensions, aborted uploads.
//! It returns a [`Report`] of typed actions; the CLI prints it.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use offsite_policies::policy::{Destination, Policy};
use offsite_policies::retention::{plan, Options, Plan, Planned, Refusal};
use offsite_storage::{ErrorKind, Retention};
use serde::Serialize;

use crate::archive::ArchiveKeys;
use crate::engine::inventory::{read_inventory, Entry, ReadOptions, Scanned, State};
use crate::registry::{key_prefix, Opened};
use crate::units::time;

/// What prune is asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    /// Plan only: change nothing.
    pub dry_run: bool,
    /// Delete even when backups seem to have stopped (the rpo rail).
    pub force: bool,
    /// The cap on deletions at one destination (else each retention's `max-delete`).
    pub max_delete: Option<u32>,
    /// The time the plan is made at.
    pub now: DateTime<Utc>,
    /// How destinations are read.
    pub inventory: ReadOptions,
    /// Delete untrusted archives older than `min-age` (`--delete-untrusted`), counted against
    /// `max-delete`; else they are listed and left alone.
    pub delete_untrusted: bool,
}

/// A whole archive whose manifest no trusted key signed: retention neither keeps anything for
/// it nor deletes it; prune lists it, and deletes it only when asked.
#[derive(Debug, Clone, Serialize)]
pub struct UntrustedCopy {
    /// The destination's name.
    pub destination: String,
    /// The archive.
    pub name: String,
    /// Why it is untrusted.
    pub reason: String,
    /// Whether prune deletes it (`--delete-untrusted` and older than `min-age`).
    pub delete: bool,
    #[serde(skip)]
    di: usize,
}

/// What a killed push left behind, that prune deletes.
#[derive(Debug, Clone)]
pub struct Orphan {
    /// The destination's index in the policy.
    pub destination: usize,
    /// The object's key (or the upload's).
    pub key: String,
    /// What it is.
    pub kind: OrphanKind,
}

/// The kinds of [`Orphan`].
#[derive(Debug, Clone)]
pub enum OrphanKind {
    /// An encrypted data object without a manifest.
    Data,
    /// A multipart upload never completed nor aborted.
    Upload {
        /// The upload's id.
        id: String,
        /// When it started.
        started: DateTime<Utc>,
    },
    /// A temporary file of a write to a `file://` destination that never finished.
    Temporary {
        /// Its size in bytes.
        size: u64,
        /// When it was last written.
        modified: DateTime<Utc>,
    },
}

impl Orphan {
    /// What `action` on this orphan came to: its reason when it went, else the error.
    fn done(
        &self,
        policy: &Policy,
        action: Action,
        res: std::result::Result<(), offsite_storage::Error>,
    ) -> Done {
        let dest = &policy.destinations[self.destination].name;
        match res {
            Ok(()) => Done::new(dest, &self.key, action, self.reason(), true),
            Err(e) => Done::new(dest, &self.key, action, e.to_string(), false),
        }
    }

    /// Why it is an orphan, in words.
    pub fn reason(&self) -> String {
        match &self.kind {
            OrphanKind::Data => "data without a manifest: an upload that never committed".into(),
            OrphanKind::Upload { started, .. } => format!(
                "a multipart upload started {} and never completed",
                time(started)
            ),
            OrphanKind::Temporary { size, modified } => format!(
                "a temporary file of {} last written {}: a write that was killed, not a copy",
                crate::report::human_bytes(*size),
                time(modified)
            ),
        }
    }
}

/// What prune did, or tried to do, to one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Deleted an archive (manifest, data, verification record).
    DeleteArchive,
    /// Deleted data without a manifest.
    DeleteOrphan,
    /// Listed the versions of a destination before deleting there (reported only on failure:
    /// then nothing is deleted there).
    ListVersions,
    /// Aborted an open multipart upload.
    AbortUpload,
    /// Extended the lock of a kept archive.
    ExtendLock,
    /// Left a planned deletion in place: locked or held at the store.
    KeepLocked,
    /// Removed a stale local spool.
    SweepSpool,
    /// Removed a temporary file a killed write left at a `file://` destination.
    RemoveTemporary,
}

impl Action {
    /// The word the report shows: `deleted`, `aborted`, `extended` or `kept`.
    pub fn word(self) -> &'static str {
        match self {
            Action::DeleteArchive
            | Action::DeleteOrphan
            | Action::ListVersions
            | Action::SweepSpool
            | Action::RemoveTemporary => "deleted",
            Action::AbortUpload => "aborted",
            Action::ExtendLock => "extended",
            Action::KeepLocked => "kept",
        }
    }

    /// Whether it deletes something.
    pub fn deletes(self) -> bool {
        matches!(
            self,
            Action::DeleteArchive
                | Action::DeleteOrphan
                | Action::ListVersions
                | Action::SweepSpool
                | Action::RemoveTemporary
        )
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.word())
    }
}

/// What was done to one archive or object.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    /// The destination's name (`local spool` for a spool).
    pub destination: String,
    /// The archive, key or spool.
    pub name: String,
    /// What was done.
    pub action: Action,
    /// The outcome in words: the reasons, or the error.
    pub detail: String,
    /// Whether it went as it should (a lock the store cannot extend is fine).
    pub ok: bool,
}

impl Done {
    fn new(dest: &str, name: &str, action: Action, detail: String, ok: bool) -> Done {
        Done {
            destination: dest.to_string(),
            name: name.to_string(),
            action,
            detail,
            ok,
        }
    }
}

/// What prune planned and did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The plan, its refusals included (prune's own `max-delete` over archives and orphans).
    pub plan: Plan,
    /// What killed pushes left: data without a manifest, then open uploads.
    pub orphans: Vec<Orphan>,
    /// Untrusted archives, listed (and deleted with `--delete-untrusted`).
    pub untrusted: Vec<UntrustedCopy>,
    /// Future-dated archives: listed, never deleted.
    pub future_dated: Vec<FutureDatedCopy>,
    /// Local spools of pushes not run again for 7 days, removed unless this is a dry run.
    pub spools: Vec<StaleSpool>,
    /// What was done, in order (empty on a dry run or a refused plan).
    pub done: Vec<Done>,
}

impl Report {
    /// Whether a rail refused the plan (nothing was deleted).
    pub fn refused(&self) -> bool {
        !self.plan.refusals.is_empty()
    }

    /// How many actions failed.
    pub fn failed(&self) -> usize {
        self.done.iter().filter(|d| !d.ok).count()
    }

    /// How many deletions succeeded (archives, orphans and spools).
    pub fn deleted(&self) -> usize {
        self.done
            .iter()
            .filter(|d| d.ok && d.action.deletes())
            .count()
    }
}

/// Runs prune for `policy` over its destinations (`locations`, in its order).
///
/// Prune decides from everything there is: a destination that cannot be read could hold the
/// newest archive of a series, so then nothing is deleted anywhere (an error).
pub async fn run(policy: &Policy, locations: &[Opened], req: &Request) -> Result<Report> {
    let (inv, reads) = read_inventory(policy, locations, &req.inventory).await;
    for (r, d) in reads.iter().zip(&policy.destinations) {
        if let Err(e) = &r.entries {
            anyhow::bail!("cannot read destination {}: {e}; prune deletes nothing while a destination cannot be read", d.name);
        }
    }
    let options = Options {
        force: req.force,
        max_delete: req.max_delete,
    };
    let mut planned = plan(policy, &inv, req.now, options);
    let entries = by_name(&reads);
    let mut orphans = orphans(policy, &entries, req.now);
    orphans.extend(open_uploads(policy, locations, req.now).await);
    orphans.extend(temporaries(policy, locations, req.now).await);
    let spools = stale_spools(req.now);
    let untrusted = untrusted(policy, &entries, req);
    let extra = Extra {
        orphans: &orphans,
        untrusted: &untrusted,
    };
    refuse_over_cap(policy, &mut planned, &extra, req.max_delete);
    let mut done = Vec::new();
    if planned.refusals.is_empty() && !req.dry_run {
        done = Executor::new(policy, locations, &entries, req.now)
            .run(&planned, &extra)
            .await;
        done.extend(abort_uploads(policy, locations, &orphans).await);
        done.extend(remove_temporaries(policy, locations, &orphans).await);
        done.extend(sweep_spools(&spools));
    }
    Ok(Report {
        plan: planned,
        orphans,
        spools,
        untrusted,
        future_dated: future_dated(policy, &entries),
        done,
    })
}

/// A whole archive whose creation time runs ahead of the clocks that judge it: retention
/// neither keeps anything for it nor deletes it, and prune never deletes it.
#[derive(Debug, Clone, Serialize)]
pub struct FutureDatedCopy {
    /// The destination's name.
    pub destination: String,
    /// The archive.
    pub name: String,
    /// Why its creation time is not believed.
    pub reason: String,
}

/// The future-dated archives at destinations with a retention.
fn future_dated(policy: &Policy, entries: &[BTreeMap<&str, &Entry>]) -> Vec<FutureDatedCopy> {
    let mut out = Vec::new();
    for (di, d) in policy.destinations.iter().enumerate() {
        if policy.retention_of(d).is_none() {
            continue;
        }
        for e in entries[di].values() {
            if let (State::FutureDated, Some(f)) = (e.state, &e.future) {
                out.push(FutureDatedCopy {
                    destination: d.name.clone(),
                    name: e.name.clone(),
                    reason: f.to_string(),
                });
            }
        }
    }
    out
}

/// What prune deletes beside the plan: orphans, and untrusted archives when asked.
struct Extra<'a> {
    orphans: &'a [Orphan],
    untrusted: &'a [UntrustedCopy],
}

impl Extra<'_> {
    /// How many deletions at the destination of index `di`.
    fn deletions_at(&self, di: usize) -> usize {
        // Temporary files are no copies: never counted against `max-delete`.
        self.orphans
            .iter()
            .filter(|o| o.destination == di)
            .filter(|o| !matches!(o.kind, OrphanKind::Temporary { .. }))
            .count()
            + self
                .untrusted
                .iter()
                .filter(|u| u.di == di && u.delete)
                .count()
    }
}

/// The untrusted archives at destinations with a retention; with `--delete-untrusted`, those
/// older than `min-age` by both their creation time and the store's write time are marked
/// for deletion.
fn untrusted(
    policy: &Policy,
    entries: &[BTreeMap<&str, &Entry>],
    req: &Request,
) -> Vec<UntrustedCopy> {
    let mut out = Vec::new();
    for (di, d) in policy.destinations.iter().enumerate() {
        let Some(rule) = policy.retention_of(d) else {
            continue;
        };
        let cutoff = rule.min_age.map_or(req.now, |s| s.before(req.now));
        for e in entries[di].values().filter(|e| e.state == State::Untrusted) {
            let old = e.created().is_some_and(|t| t <= cutoff)
                && e.object
                    .as_ref()
                    .and_then(|o| o.last_modified)
                    .is_none_or(|t| t <= cutoff);
            out.push(UntrustedCopy {
                destination: d.name.clone(),
                name: e.name.clone(),
                reason: e
                    .signature
                    .untrusted()
                    .unwrap_or("not signed by a trusted key")
                    .to_string(),
                delete: req.delete_untrusted && old && !e.hidden,
                di,
            });
        }
    }
    out
}

/// Each destination's entries by name; where a stray object shares an archive's name, the
/// entry with the manifest wins.
fn by_name(reads: &[Scanned]) -> Vec<BTreeMap<&str, &Entry>> {
    reads
        .iter()
        .map(|r| {
            let mut m: BTreeMap<&str, &Entry> = BTreeMap::new();
            for e in r.entries.as_deref().unwrap_or_default() {
                let keep_old = m
                    .get(e.name.as_str())
                    .is_some_and(|old| old.manifest.is_some());
                if !keep_old {
                    m.insert(e.name.as_str(), e);
                }
            }
            m
        })
        .collect()
}

/// Prune's own `max-delete` rail: archives and orphans together over the cap at a destination
/// refuse the plan, unless the planner already refused for `max-delete` there.
fn refuse_over_cap(policy: &Policy, planned: &mut Plan, extra: &Extra, max_delete: Option<u32>) {
    for (di, d) in policy.destinations.iter().enumerate() {
        let cap = max_delete.or_else(|| policy.retention_of(d).and_then(|r| r.max_delete));
        let Some(cap) = cap else { continue };
        let n =
            planned.deletions().filter(|p| p.destination == di).count() + extra.deletions_at(di);
        if n as u32 > cap && !planned.refusals.iter().any(|r| r.is_max_delete_at(di)) {
            planned.refusals.push(Refusal::MaxDelete {
                destination: di,
                name: d.name.clone(),
                planned: n as u32,
                limit: cap,
                with_orphans: true,
            });
        }
    }
}

/// What an orphan must be older than: `min-age`, and never less than a day (a large upload can
/// run for hours, and S3 dates a multipart object by the start of its upload).
fn orphan_cutoff(rule: &offsite_policies::policy::Retention, now: DateTime<Utc>) -> DateTime<Utc> {
    let day = now - chrono::Duration::days(1);
    rule.min_age.map(|s| s.before(now)).unwrap_or(day).min(day)
}

/// Encrypted data objects without a manifest (what a killed push leaves) older than
/// [`orphan_cutoff`], at destinations with a retention.
fn orphans(policy: &Policy, entries: &[BTreeMap<&str, &Entry>], now: DateTime<Utc>) -> Vec<Orphan> {
    let mut out = Vec::new();
    for (di, d) in policy.destinations.iter().enumerate() {
        let Some(rule) = policy.retention_of(d) else {
            continue;
        };
        let cutoff = orphan_cutoff(rule, now);
        for e in entries[di].values() {
            if e.state != State::Incomplete {
                continue;
            }
            let Some(o) = &e.object else { continue };
            // Only what offsite writes: encrypted data (`.age`). An unencrypted file without a
            // manifest may be anyone's (an old script's archives) and is never touched.
            if !o.key.ends_with(crate::archive::AGE_SUFFIX) {
                continue;
            }
            if o.last_modified.is_some_and(|t| t < cutoff) {
                out.push(Orphan {
                    destination: di,
                    key: o.key.clone(),
                    kind: OrphanKind::Data,
                });
            }
        }
    }
    out
}

/// Multipart uploads started before [`orphan_cutoff`] and never completed or aborted, where the
/// store can list them (S3): a killed push that is never rerun leaves one, and the provider
/// bills for its parts.
async fn open_uploads(policy: &Policy, locations: &[Opened], now: DateTime<Utc>) -> Vec<Orphan> {
    use futures::TryStreamExt;
    let mut out = Vec::new();
    for (di, d) in policy.destinations.iter().enumerate() {
        let Some(rule) = policy.retention_of(d) else {
            continue;
        };
        let loc = &locations[di];
        if !loc.store.capabilities().list_uploads {
            continue;
        }
        let cutoff = orphan_cutoff(rule, now);
        let prefix = key_prefix(&loc.location);
        match loc.store.list_uploads(prefix).try_collect::<Vec<_>>().await {
            Ok(list) => {
                for u in list {
                    let Some(started) = u.started.filter(|t| *t < cutoff) else {
                        continue;
                    };
                    out.push(Orphan {
                        destination: di,
                        key: u.key,
                        kind: OrphanKind::Upload { id: u.id, started },
                    });
                }
            }
            Err(e) => tracing::warn!(destination = %d.name, error = %e, "cannot list open uploads"),
        }
    }
    out
}

/// Temporary files (`.offsite-tmp-*`) last written more than a day ago at every `file://`
/// destination: what a push killed mid-write leaves there.
async fn temporaries(policy: &Policy, locations: &[Opened], now: DateTime<Utc>) -> Vec<Orphan> {
    let mut out = Vec::new();
    let before = now - crate::engine::leftovers::stale_after();
    for (di, (d, loc)) in policy.destinations.iter().zip(locations).enumerate() {
        let Some(local) = &loc.local else { continue };
        match local.stale_temporaries(before).await {
            Ok(found) => out.extend(found.into_iter().map(|t| Orphan {
                destination: di,
                key: t.key,
                kind: OrphanKind::Temporary {
                    size: t.size,
                    modified: t.modified,
                },
            })),
            Err(e) => {
                tracing::warn!(destination = %d.name, error = %e, "cannot list temporary files")
            }
        }
    }
    out
}

/// Removes the temporary files among `orphans`.
async fn remove_temporaries(
    policy: &Policy,
    locations: &[Opened],
    orphans: &[Orphan],
) -> Vec<Done> {
    let mut done = Vec::new();
    for o in orphans {
        let OrphanKind::Temporary { size, modified } = &o.kind else {
            continue;
        };
        let Some(local) = &locations[o.destination].local else {
            continue;
        };
        let t = offsite_storage::Temporary {
            key: o.key.clone(),
            size: *size,
            modified: *modified,
        };
        let res = local.remove_temporary(&t).await;
        done.push(o.done(policy, Action::RemoveTemporary, res));
    }
    done
}

/// Aborts the open uploads among `orphans`.
async fn abort_uploads(policy: &Policy, locations: &[Opened], orphans: &[Orphan]) -> Vec<Done> {
    let mut done = Vec::new();
    for o in orphans {
        let OrphanKind::Upload { id, .. } = &o.kind else {
            continue;
        };
        let Some(mp) = locations[o.destination].store.multipart() else {
            continue;
        };
        let res = mp.abort_upload(&o.key, id).await;
        done.push(o.done(policy, Action::AbortUpload, res));
    }
    done
}

/// Every version id of every key at a versioned location, listed once per prune.
type Versions = BTreeMap<String, Vec<String>>;

async fn versions_of(
    loc: &Opened,
) -> std::result::Result<Option<Versions>, offsite_storage::Error> {
    use futures::TryStreamExt;
    if !loc.store.capabilities().versions {
        return Ok(None);
    }
    let mut out: Versions = BTreeMap::new();
    let mut s = loc.store.list_versions(key_prefix(&loc.location));
    while let Some(v) = s.try_next().await? {
        out.entry(v.key).or_default().push(v.version);
    }
    Ok(Some(out))
}

/// Deletes every version of `key` on a versioned store (a plain delete there only adds a
/// marker over data that stays), else the key. Missing is fine.
async fn delete_all(
    loc: &Opened,
    versions: Option<&Versions>,
    key: &str,
) -> std::result::Result<(), offsite_storage::Error> {
    if let Some(map) = versions {
        for v in map.get(key).into_iter().flatten() {
            match loc.store.delete_version(key, v).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(());
    }
    match loc.store.delete(key).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Carries out a plan: lock extensions, deletions, orphans.
struct Executor<'a> {
    policy: &'a Policy,
    locations: &'a [Opened],
    entries: &'a [BTreeMap<&'a str, &'a Entry>],
    /// Version lists, once per destination that deletes on a versioned store.
    versions: BTreeMap<usize, Option<Versions>>,
    /// Destinations whose versions could not be listed: nothing is deleted there.
    failed_listing: Vec<usize>,
    done: Vec<Done>,
    /// The time a store's lock is compared with.
    now: DateTime<Utc>,
}

impl<'a> Executor<'a> {
    fn new(
        policy: &'a Policy,
        locations: &'a [Opened],
        entries: &'a [BTreeMap<&'a str, &'a Entry>],
        now: DateTime<Utc>,
    ) -> Executor<'a> {
        Executor {
            policy,
            locations,
            entries,
            versions: BTreeMap::new(),
            failed_listing: Vec::new(),
            done: Vec::new(),
            now,
        }
    }

    async fn run(mut self, planned: &Plan, extra: &Extra<'_>) -> Vec<Done> {
        let data: Vec<&Orphan> = extra
            .orphans
            .iter()
            .filter(|o| matches!(o.kind, OrphanKind::Data))
            .collect();
        let untrusted: Vec<Planned> = extra
            .untrusted
            .iter()
            .filter(|u| u.delete)
            .filter_map(|u| {
                Some(Planned {
                    destination: u.di,
                    name: u.name.clone(),
                    series: offsite_policies::inventory::series_of(&u.name),
                    created: self.entries[u.di].get(u.name.as_str())?.created()?,
                    keep: false,
                    reasons: vec![format!("untrusted ({}): --delete-untrusted", u.reason)],
                    locked_until: None,
                    extend_lock_to: None,
                })
            })
            .collect();
        let deleting = planned
            .deletions()
            .chain(&untrusted)
            .map(|p| p.destination)
            .chain(data.iter().map(|o| o.destination));
        self.list_versions(deleting.collect()).await;
        for item in planned.items.iter().chain(&untrusted) {
            self.item(item).await;
        }
        for o in data {
            self.orphan(o).await;
        }
        self.done
    }

    /// Lists the versions at each destination in `dests` once (failures reported).
    async fn list_versions(&mut self, dests: Vec<usize>) {
        for di in dests {
            if self.versions.contains_key(&di) || self.failed_listing.contains(&di) {
                continue;
            }
            match versions_of(&self.locations[di]).await {
                Ok(v) => {
                    self.versions.insert(di, v);
                }
                Err(e) => {
                    let detail = format!("nothing deleted here: cannot list versions: {e}");
                    let dest = &self.policy.destinations[di].name;
                    let d = Done::new(dest, "", Action::ListVersions, detail, false);
                    self.done.push(d);
                    self.failed_listing.push(di);
                }
            }
        }
    }

    /// One planned archive: extend a kept one's lock, delete a deleted one.
    async fn item(&mut self, item: &Planned) {
        let di = item.destination;
        let Some(entry) = self.entries[di].get(item.name.as_str()).copied() else {
            return;
        };
        let Some(manifest) = &entry.manifest else {
            return;
        };
        let loc = &self.locations[di];
        let keys = ArchiveKeys::new(key_prefix(&loc.location), &item.name, manifest.encrypted());
        if item.keep {
            // A hidden copy's current version is a marker: nothing to extend there.
            if !entry.hidden {
                let dest = &self.policy.destinations[di];
                if let Some(d) = extend_lock(loc, dest, item, &keys).await {
                    self.done.push(d);
                }
            }
            return;
        }
        if self.failed_listing.contains(&di) {
            return;
        }
        let dest = &self.policy.destinations[di].name;
        if entry.hidden {
            let detail =
                "a locked copy under a delete marker: left in place until its lock runs out";
            let d = Done::new(dest, &item.name, Action::KeepLocked, detail.into(), true);
            self.done.push(d);
            return;
        }
        if let Some(d) = store_lock(loc, dest, &item.name, &keys, self.now).await {
            self.done.push(d);
            return;
        }
        let v = self.versions.get(&di).and_then(|v| v.as_ref());
        // The manifest first: from then on the archive no longer looks complete there, so a
        // crash between the two deletes leaves an orphan (cleaned next time), never a
        // complete-looking archive without its data.
        let mut res = delete_all(loc, v, &keys.manifest).await;
        if res.is_ok() {
            res = delete_all(loc, v, &keys.object).await;
        }
        if res.is_ok() {
            if let Some(key) = &entry.verified_key {
                // The record goes with its archive; one left over is harmless.
                delete_all(loc, v, key).await.ok();
            }
        }
        let detail = match &res {
            Ok(()) => item.reasons.join(", "),
            Err(e) if e.kind() == ErrorKind::Locked => format!("locked: left in place ({e})"),
            Err(e) => e.to_string(),
        };
        let d = Done::new(dest, &item.name, Action::DeleteArchive, detail, res.is_ok());
        self.done.push(d);
    }

    /// Deletes one orphan of data without a manifest.
    async fn orphan(&mut self, o: &Orphan) {
        if self.failed_listing.contains(&o.destination) {
            return;
        }
        let v = self.versions.get(&o.destination).and_then(|v| v.as_ref());
        let res = delete_all(&self.locations[o.destination], v, &o.key).await;
        let detail = match &res {
            Ok(()) => format!("orphan: {}", o.reason()),
            Err(e) => e.to_string(),
        };
        let dest = &self.policy.destinations[o.destination].name;
        let d = Done::new(dest, &o.key, Action::DeleteOrphan, detail, res.is_ok());
        self.done.push(d);
    }
}

/// Extends a kept archive's lock (data and manifest) to what its keep class earns, at a locked
/// destination; a store that cannot extend locks is no failure.
async fn extend_lock(
    loc: &Opened,
    dest: &Destination,
    item: &Planned,
    keys: &ArchiveKeys,
) -> Option<Done> {
    let (until, mode) = (item.extend_lock_to?, dest.lock?);
    let r = Retention {
        mode: match mode {
            offsite_policies::policy::LockMode::Governance => offsite_storage::LockMode::Governance,
            offsite_policies::policy::LockMode::Compliance => offsite_storage::LockMode::Compliance,
        },
        retain_until: until,
    };
    let mut res = Ok(());
    for key in [&keys.object, &keys.manifest] {
        if let Err(e) = loc.store.extend_retention(key, r).await {
            res = Err(e);
            break;
        }
    }
    let (detail, ok) = match &res {
        Ok(()) => (format!("lock extended to {}", time(&until)), true),
        Err(e) => (
            format!("lock not extended: {e}"),
            e.kind() == ErrorKind::Unsupported,
        ),
    };
    Some(Done::new(
        &dest.name,
        &item.name,
        Action::ExtendLock,
        detail,
        ok,
    ))
}

/// What the store's own lock says about deleting an archive: `None` to go ahead, else what was
/// done instead (kept, or failed when the lock cannot be read). The store's lock decides, not
/// the manifest's record of the push-time one (a prune may have extended it since, and a legal
/// hold is not in the manifest).
async fn store_lock(
    loc: &Opened,
    dest: &str,
    name: &str,
    keys: &ArchiveKeys,
    now: DateTime<Utc>,
) -> Option<Done> {
    if !loc.store.capabilities().retention {
        return None;
    }
    match loc.store.head(&keys.object).await {
        Ok(meta) => {
            let until = meta.retention.map(|r| r.retain_until).filter(|t| *t > now);
            let detail = match until {
                Some(t) => format!("locked at the store until {}: left in place", time(&t)),
                None if meta.legal_hold => "under a legal hold at the store: left in place".into(),
                None => return None,
            };
            Some(Done::new(dest, name, Action::KeepLocked, detail, true))
        }
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            let detail = format!("not deleted: cannot read its lock: {e}");
            Some(Done::new(dest, name, Action::DeleteArchive, detail, false))
        }
    }
}

/// A local spool of a push not run again for 7 days: the work directory under the cache's
/// `spool/` whose newest file is that old and whose lock no push holds.
#[derive(Debug, Clone, Serialize)]
pub struct StaleSpool {
    /// The work directory's name (the archive's name and a tag of its destinations).
    pub name: String,
    /// The work directory.
    pub path: std::path::PathBuf,
    /// The bytes in it.
    pub size: u64,
    /// When a file in it was last written.
    pub last_used: DateTime<Utc>,
}

/// The spools of pushes not run again for 7 days (planned on a dry run too).
fn stale_spools(now: DateTime<Utc>) -> Vec<StaleSpool> {
    let root = crate::engine::cache_dir::spools();
    let Ok(dirs) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for d in dirs.flatten() {
        let path = d.path();
        let files: Vec<std::fs::Metadata> = std::fs::read_dir(&path)
            .into_iter()
            .flatten()
            .flatten()
            // Taking the lock below may create its file: only the spool and journal tell age.
            .filter(|f| f.file_name() != "lock")
            .filter_map(|f| f.metadata().ok())
            .collect();
        let Some(newest) = files.iter().filter_map(|m| m.modified().ok()).max() else {
            continue;
        };
        let last_used = DateTime::<Utc>::from(newest);
        if last_used > now - chrono::Duration::days(7) {
            continue;
        }
        let name = d.file_name().to_string_lossy().to_string();
        // A push holding the lock is running now: its spool is in use.
        if crate::engine::spool::lock_work_dir(&path, &name).is_err() {
            continue;
        }
        out.push(StaleSpool {
            name,
            size: files.iter().map(std::fs::Metadata::len).sum(),
            path,
            last_used,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Removes the stale spools, each while holding its lock.
fn sweep_spools(spools: &[StaleSpool]) -> Vec<Done> {
    let mut out = Vec::new();
    for s in spools {
        let Ok(_lock) = crate::engine::spool::lock_work_dir(&s.path, &s.name) else {
            continue;
        };
        let ok = std::fs::remove_dir_all(&s.path).is_ok();
        let detail = format!(
            "the spool of a push not run again since {} ({})",
            time(&s.last_used),
            crate::report::human_bytes(s.size)
        );
        out.push(Done::new(
            "local spool",
            &s.name,
            Action::SweepSpool,
            detail,
            ok,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let text = "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n\
            [[destination]]\nname = \"dr\"\nurl = \"file:///a\"\n\
            [[destination]]\nname = \"dr2\"\nurl = \"file:///b\"\n\
            [retention]\nkeep-last = 1\nmax-delete = 2\n";
        Policy::parse(text, "p.toml").unwrap()
    }

    fn orphan(destination: usize, key: &str) -> Orphan {
        Orphan {
            destination,
            key: key.into(),
            kind: OrphanKind::Data,
        }
    }

    #[test]
    fn a_refusal_at_dr2_does_not_count_for_dr() {
        let p = policy();
        // The planner refused at dr2; dr's archives and orphans together are over the cap too.
        let mut planned = Plan {
            items: Vec::new(),
            refusals: vec![Refusal::MaxDelete {
                destination: 1,
                name: "dr2".into(),
                planned: 3,
                limit: 2,
                with_orphans: false,
            }],
        };
        let orphans: Vec<Orphan> = (0..3).map(|i| orphan(0, &format!("o{i}.age"))).collect();
        refuse_over_cap(
            &p,
            &mut planned,
            &Extra {
                orphans: &orphans,
                untrusted: &[],
            },
            None,
        );
        assert_eq!(planned.refusals.len(), 2, "{:?}", planned.refusals);
        assert!(planned.refusals[1].is_max_delete_at(0));
        assert_eq!(
            planned.refusals[1].to_string(),
            "max-delete 2: the plan deletes 3 archives and orphans at dr; nothing is deleted (check with --dry-run, then raise --max-delete)"
        );
        // Over the cap at dr2 as well: the planner's refusal there stands alone.
        let more: Vec<Orphan> = (0..3).map(|i| orphan(1, &format!("p{i}.age"))).collect();
        refuse_over_cap(
            &p,
            &mut planned,
            &Extra {
                orphans: &more,
                untrusted: &[],
            },
            None,
        );
        assert_eq!(planned.refusals.len(), 2, "{:?}", planned.refusals);
    }
}
