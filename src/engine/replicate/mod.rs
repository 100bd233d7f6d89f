//! Replication: make a destination hold what a source holds, incrementally, verified, and
//! resumable.
//!
//! Both listings stream in key order into the pure plan (`offsite_policies::replication`),
//! which runs on a blocking thread between two bounded channels; its units (a plain object, or
//! an archive's keys together) are carried out `jobs` at a time. Memory is bounded by the
//! channels, the units in flight and the streamed copies' parts, never by the bucket. S3, GCS
//! and Azure list in lexicographic (byte) key order, so their listings stream as they come;
//! a local directory's walk is sorted first. A listing that breaks the order stops the run
//! (the plan says so) rather than producing a wrong plan.
//!
//! Archives stay archives: the data first, verified against the source manifest's SHA-256,
//! then the destination's own manifest (its provider's checksum, its storage class, its
//! retain-until) through push's commit. An archive with no manifest at the source is an
//! incomplete push: it is reported, never replicated. Verification records stay where the
//! check was made. Deletions wait until both listings are complete and pass the guards of
//! [`refuse_deletes`]; a destination object under a lock or hold is never deleted.

pub mod copy;

use std::sync::Arc;

use chrono::Utc;
use futures::StreamExt;
use offsite_policies::encryption::Recipient;
use offsite_policies::replication::{
    compare, decide_archive, plan, refuse_deletes, shard_of, units, Action, ArchiveAction,
    Decision, Held, Item, OrderError, Unit,
};
use offsite_storage::{Checksum, InFlightBudget, ObjectMeta, PutOptions, Scheme, StorageExt};
use serde::Serialize;
use tokio::sync::mpsc;

use self::copy::{BwLimit, Copied, Route, Shared};
use super::commit::{self, check_receipt, Annotations, ArchiveFacts, Finished, NotCommitted};
use crate::archive::{ArchiveKeys, Digest, Manifest, MANIFEST_SUFFIX, VERIFIED_SUFFIX};
use crate::registry::Opened;

/// How one replication runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Delete at the destination what the source does not have.
    pub delete: bool,
    /// Delete nothing when more than this would go.
    pub max_delete: Option<u64>,
    /// Compare SHA-256s of everything (one HEAD per object; reads a copy whose store
    /// reports none).
    pub checksum: bool,
    /// Plan only.
    pub dry_run: bool,
    /// Units carried out at once.
    pub jobs: usize,
    /// `(i, n)`: only the keys of shard i of n.
    pub shard: Option<(u32, u32)>,
    /// Bytes per second across the run's streamed copies.
    pub bwlimit: Option<u64>,
}

/// What happened to one key or archive.
#[derive(Debug, Clone, Serialize)]
pub struct ItemReport {
    /// The key (for an archive, its name).
    pub key: String,
    /// `copied`, `skipped`, `deleted`, `would-copy`, `would-delete`, `kept` (a lock),
    /// `not-replicated` (no manifest at the source), `failed`, `verify-failed`.
    pub action: &'static str,
    /// Why, or what went wrong.
    pub reason: String,
    /// Bytes copied (or that would be).
    pub bytes: u64,
    /// How a copy travelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// How the copy was checked: `sha256`, `provider-checksum`, `etag` or `size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<&'static str>,
    /// Parts found on the server for a continued streamed copy, of how many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_parts: Option<(u32, u32)>,
}

impl ItemReport {
    fn new(key: &str, action: &'static str, reason: impl Into<String>) -> ItemReport {
        ItemReport {
            key: key.to_string(),
            action,
            reason: reason.into(),
            bytes: 0,
            route: None,
            verified: None,
            resumed_parts: None,
        }
    }
}

/// The totals of one source to one destination.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The source URL.
    pub source: String,
    /// The destination URL.
    pub destination: String,
    /// Objects and archives copied (or, with `--dry-run`, that would be).
    pub copied: u64,
    /// Of them, copied inside the provider.
    pub server_side: u64,
    /// Of them, continued from an earlier run.
    pub resumed: u64,
    /// Left as they were.
    pub skipped: u64,
    /// Deleted (or that would be).
    pub deleted: u64,
    /// Archives with no manifest at the source, not replicated.
    pub not_replicated: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Items that failed.
    pub failures: u64,
    /// Copies that did not match the source's checksum (removed, never counted).
    pub verify_failures: u64,
    /// Why deletions were refused, when they were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletes_refused: Option<String>,
    /// Why a listing could not be used, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing_error: Option<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

impl Summary {
    fn count(&mut self, r: &ItemReport) {
        match r.action {
            "copied" | "would-copy" => {
                self.copied += 1;
                self.bytes += r.bytes;
                if r.route == Some(Route::ServerSide) {
                    self.server_side += 1;
                }
                if r.resumed_parts.is_some_and(|(n, _)| n > 0) {
                    self.resumed += 1;
                }
            }
            "skipped" | "kept" => self.skipped += 1,
            "deleted" | "would-delete" => self.deleted += 1,
            "not-replicated" => self.not_replicated += 1,
            "verify-failed" => {
                self.verify_failures += 1;
                self.failures += 1;
            }
            _ => self.failures += 1,
        }
    }
}

/// Whether a provider lists keys in byte-wise lexicographic order (S3 ListObjectsV2, GCS
/// objects.list and Azure List Blobs all document it); others are sorted here first.
fn lists_in_key_order(scheme: Scheme) -> bool {
    matches!(scheme, Scheme::S3 | Scheme::Gcs | Scheme::Azure)
}

/// Where a listing ended: the keys it gave (all, and in the shard), or why it failed.
type Listed = Result<(u64, u64), String>;

/// Streams a listing (the `source`'s, else the destination's) into a bounded channel,
/// keeping the shard's keys.
fn spawn_listing(
    at: &Opened,
    source: bool,
    shard: Option<(u32, u32)>,
    with_etag: bool,
) -> (mpsc::Receiver<Item>, tokio::task::JoinHandle<Listed>) {
    let (tx, rx) = mpsc::channel::<Item>(4096);
    let store = at.store.clone();
    let sorted = lists_in_key_order(at.location.scheme);
    let url = at.url().to_string();
    let task = tokio::spawn(async move {
        let keep = |m: &ObjectMeta| shard.is_none_or(|(i, n)| shard_of(&m.key, n) == i);
        let to_item = |m: ObjectMeta| Item {
            // S3 ETags are the MD5 of a single-request object; a multipart one (`-N`) is not
            // comparable with a copy made another way.
            etag: m.etag.filter(|e| with_etag && !e.contains('-')),
            key: m.key,
            size: m.size,
            sha256: None,
        };
        let mut total = 0u64;
        let mut kept = 0u64;
        let mut listing = store.list("");
        if sorted {
            while let Some(m) = listing.next().await {
                let m = m.map_err(|e| format!("cannot list {url}: {e}"))?;
                total += 1;
                if keep(&m) {
                    kept += 1;
                    if tx.send(to_item(m)).await.is_err() {
                        break;
                    }
                }
            }
        } else {
            let mut all = Vec::new();
            while let Some(m) = listing.next().await {
                let m = match m {
                    // A destination directory that does not exist yet is empty; writing
                    // the first copy creates it.
                    Err(e) if e.is_not_found() && !source => break,
                    m => m.map_err(|e| format!("cannot list {url}: {e}"))?,
                };
                total += 1;
                if keep(&m) {
                    all.push(to_item(m));
                }
            }
            all.sort_by(|a, b| a.key.cmp(&b.key));
            kept = all.len() as u64;
            for i in all {
                if tx.send(i).await.is_err() {
                    break;
                }
            }
        }
        Ok((total, kept))
    });
    (rx, task)
}

/// What one unit left to do after the copies: deletions wait for the guards.
enum Outcome {
    Done(Vec<ItemReport>),
    Delete(Vec<Decision>),
    Order(OrderError),
}

/// Everything a unit needs.
struct Ctx<'a> {
    src: &'a Opened,
    dst: &'a Opened,
    opts: Options,
    shared: Shared,
}

/// Replicates `src` onto `dst`, reporting each item to `on_item` as it is done.
pub async fn run(
    src: &Opened,
    dst: &Opened,
    opts: Options,
    on_item: &mut (dyn FnMut(&ItemReport) + Send),
) -> Summary {
    let mut summary = Summary {
        source: src.url().to_string(),
        destination: dst.url().to_string(),
        dry_run: opts.dry_run,
        ..Summary::default()
    };
    let journal_dir = super::cache_dir::replicate_journals();
    if let Err(e) = super::spool::private_dir(&journal_dir) {
        summary.listing_error = Some(format!(
            "cannot make the journal directory {}: {e}",
            journal_dir.display()
        ));
        return summary;
    }
    let ctx = Ctx {
        src,
        dst,
        opts,
        shared: Shared {
            bwlimit: opts.bwlimit.map(|b| Arc::new(BwLimit::new(b))),
            budget: InFlightBudget::new(256 << 20),
            journal_dir,
        },
    };
    let etags = src.store.provider() == "s3" && dst.store.provider() == "s3";
    let (src_rx, src_task) = spawn_listing(src, true, opts.shard, etags);
    let (dst_rx, dst_task) = spawn_listing(dst, false, opts.shard, etags);
    let (unit_tx, unit_rx) = mpsc::channel::<Result<Unit, OrderError>>(256);
    let options = offsite_policies::replication::Options {
        delete: opts.delete,
        checksum: opts.checksum,
    };
    let planner = tokio::task::spawn_blocking(move || {
        let (mut s, mut d) = (src_rx, dst_rx);
        let s = std::iter::from_fn(move || s.blocking_recv());
        let d = std::iter::from_fn(move || d.blocking_recv());
        for u in units(plan(s, d, options)) {
            if unit_tx.blocking_send(u).is_err() {
                break;
            }
        }
    });
    let unit_stream = Box::pin(futures::stream::unfold(unit_rx, |mut rx| async move {
        rx.recv().await.map(|u| (u, rx))
    }));
    let ctx = &ctx;
    let mut outcomes = unit_stream
        .map(|u| async move {
            match u {
                Ok(Unit::Object(d)) => object(ctx, d).await,
                Ok(Unit::Archive { name, keys }) => archive(ctx, &name, keys).await,
                Err(e) => Outcome::Order(e),
            }
        })
        .buffer_unordered(opts.jobs.max(1));
    let mut deletes: Vec<Decision> = Vec::new();
    let mut delete_count = 0u64;
    let cap = opts.max_delete.unwrap_or(u64::MAX);
    while let Some(o) = outcomes.next().await {
        match o {
            Outcome::Done(items) => {
                for i in &items {
                    summary.count(i);
                    on_item(i);
                }
            }
            Outcome::Delete(ds) => {
                delete_count += ds.len() as u64;
                // Held only up to the cap: past it nothing is deleted anyway.
                if delete_count <= cap {
                    deletes.extend(ds);
                }
            }
            Outcome::Order(e) => summary.listing_error = Some(e.to_string()),
        }
    }
    drop(outcomes);
    let _ = planner.await;
    let src_listed = src_task.await.unwrap_or_else(|e| Err(e.to_string()));
    let dst_listed = dst_task.await.unwrap_or_else(|e| Err(e.to_string()));
    for l in [&src_listed, &dst_listed] {
        if let Err(e) = l {
            summary.listing_error.get_or_insert_with(|| e.clone());
        }
    }
    if delete_count == 0 {
        return summary;
    }
    let refused = match (&src_listed, &summary.listing_error) {
        (_, Some(e)) => Some(format!(
            "a listing did not complete ({e}): nothing is deleted"
        )),
        (Ok((total, _)), None) => refuse_deletes(*total, delete_count, opts.max_delete),
        (Err(_), None) => unreachable!("a failed listing is recorded"),
    };
    if let Some(why) = refused {
        summary.deletes_refused = Some(why);
        return summary;
    }
    for d in deletes {
        let r = delete(ctx, &d).await;
        summary.count(&r);
        on_item(&r);
    }
    summary
}

/// One plain object.
async fn object(ctx: &Ctx<'_>, d: Decision) -> Outcome {
    match d.action {
        Action::Skip => Outcome::Done(vec![ItemReport::new(&d.key, "skipped", d.reason)]),
        Action::Delete => Outcome::Delete(vec![d]),
        Action::Copy => Outcome::Done(vec![copy_object(ctx, d).await]),
    }
}

async fn copy_object(ctx: &Ctx<'_>, d: Decision) -> ItemReport {
    let mut s = d.source.clone().expect("a copy has a source");
    let mut reason: &str = d.reason;
    if ctx.opts.checksum {
        if let Some(mut t) = d.destination.clone() {
            // One HEAD per side: the providers' SHA-256 where both keep one.
            let (a, b) = futures::join!(ctx.src.store.head(&s.key), ctx.dst.store.head(&t.key));
            s.sha256 = a.ok().and_then(|m| sha256_form(m.checksum.as_ref()));
            t.sha256 = b.ok().and_then(|m| sha256_form(m.checksum.as_ref()));
            let options = offsite_policies::replication::Options {
                delete: ctx.opts.delete,
                checksum: true,
            };
            let (action, why) = compare(&s, &t, options);
            if action == Action::Skip {
                return ItemReport::new(&d.key, "skipped", why);
            }
            reason = why;
        }
    }
    let mut item = ItemReport::new(&d.key, "copied", reason);
    item.bytes = s.size;
    if ctx.opts.dry_run {
        item.action = "would-copy";
        return item;
    }
    let mut options = PutOptions::default();
    options.storage_class = ctx.dst.options.storage_class.clone();
    let fingerprint = s.etag.clone().unwrap_or_default();
    let copied = match copy::copy(
        ctx.src,
        ctx.dst,
        &s.key,
        s.size,
        &fingerprint,
        options,
        &ctx.shared,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return ItemReport::new(&d.key, "failed", e.to_string()),
    };
    item.route = Some(copied.route);
    item.resumed_parts = copied.resumed;
    match check_plain(ctx, &s, &copied).await {
        Ok(how) => {
            item.verified = Some(how);
            item
        }
        Err(why) => {
            let _ = ctx.dst.store.delete(&s.key).await;
            ItemReport::new(
                &d.key,
                "verify-failed",
                format!("{why}; the copy was removed"),
            )
        }
    }
}

fn sha256_form(c: Option<&Checksum>) -> Option<String> {
    match c {
        Some(Checksum::Sha256(h)) => Some(h.to_ascii_lowercase()),
        _ => None,
    }
}

/// Checks a plain object's copy against what the source said of it.
async fn check_plain(ctx: &Ctx<'_>, s: &Item, c: &Copied) -> Result<&'static str, String> {
    if c.receipt.size != s.size {
        return Err(format!(
            "the copy has {} bytes, the source {}",
            c.receipt.size, s.size
        ));
    }
    if let Some(sent) = &c.sha256 {
        if let Some(want) = &s.sha256 {
            if !sent.eq_ignore_ascii_case(want) {
                return Err(format!(
                    "the bytes read have SHA-256 {sent}, the source reports {want}"
                ));
            }
        }
        let digest = Digest {
            size: s.size,
            sha256: sent.clone(),
        };
        return match check_receipt(&c.receipt, &digest, &c.computed) {
            Ok(None) => Ok("sha256"),
            Ok(Some(why)) => Err(why),
            Err(_) => Ok("size"),
        };
    }
    // Server-side: the provider's checksum of the copy, else its ETag, against the source's.
    let got = sha256_form(c.receipt.checksum.as_ref());
    match (&got, &s.sha256) {
        (Some(a), Some(b)) if a == b => return Ok("sha256"),
        (Some(a), Some(b)) => {
            return Err(format!("the copy has SHA-256 {a}, the source {b}"));
        }
        _ => {}
    }
    let etag = c.receipt.etag.as_deref().map(|e| e.trim_matches('"'));
    match (etag, s.etag.as_deref().map(|e| e.trim_matches('"'))) {
        (Some(a), Some(b)) if a == b => Ok("etag"),
        (Some(a), Some(b)) if !a.contains('-') => {
            Err(format!("the copy has ETag {a}, the source {b}"))
        }
        _ => {
            let _ = ctx;
            Ok("size")
        }
    }
}

/// One archive: its keys on both sides, decided by both manifests.
async fn archive(ctx: &Ctx<'_>, name: &str, keys: Vec<Decision>) -> Outcome {
    let at = |suffix: &str| {
        let k = format!("{name}{suffix}");
        keys.iter().find(|d| d.key == k)
    };
    if keys.iter().all(|d| d.source.is_none()) {
        // Only at the destination.
        return if ctx.opts.delete {
            let mut ds = keys;
            // The manifest goes first, so nothing is ever left looking complete.
            ds.sort_by_key(|d| !d.key.ends_with(MANIFEST_SUFFIX));
            Outcome::Delete(ds)
        } else {
            Outcome::Done(vec![ItemReport::new(
                name,
                "skipped",
                "only at the destination (kept without --delete)",
            )])
        };
    }
    let manifest_key = format!("{name}{MANIFEST_SUFFIX}");
    let man = at(MANIFEST_SUFFIX);
    let src_manifest = match man.and_then(|d| d.source.as_ref()) {
        None => None,
        Some(_) => match read_manifest(ctx.src, &manifest_key).await {
            Ok(m) => Some(m),
            Err(e) => {
                return Outcome::Done(vec![ItemReport::new(
                    name,
                    "failed",
                    format!("cannot read the source manifest: {e}"),
                )])
            }
        },
    };
    let Some(m) = src_manifest else {
        let (_, why) = decide_archive(None, None, ctx.opts.checksum, None);
        return Outcome::Done(vec![ItemReport::new(name, "not-replicated", why)]);
    };
    let prefix = name.rsplit_once('/').map_or("", |(p, _)| p);
    let keys_here = ArchiveKeys::new(prefix, &m.archive, m.encrypted());
    let data = keys.iter().find(|d| d.key == keys_here.object);
    let src_data_size = match data.and_then(|d| d.source.as_ref()) {
        Some(i) => Some(i.size),
        // An unencrypted archive's data has no suffix: not in this group.
        None => ctx
            .src
            .store
            .head(&keys_here.object)
            .await
            .ok()
            .map(|h| h.size),
    };
    let src_held = held(&m, src_data_size);
    let dst_manifest = match man.and_then(|d| d.destination.as_ref()) {
        // A manifest there that cannot be read is replaced.
        Some(_) => read_manifest(ctx.dst, &manifest_key).await.ok(),
        None => None,
    };
    let dst_data_size = match data {
        Some(d) => d.destination.as_ref().map(|i| i.size),
        None => ctx
            .dst
            .store
            .head(&keys_here.object)
            .await
            .ok()
            .map(|h| h.size),
    };
    let dst_held = dst_manifest.as_ref().map(|dm| held(dm, dst_data_size));
    let proven = match (&dst_manifest, ctx.opts.checksum) {
        (Some(dm), true) if dst_data_size == Some(m.stored.size) => {
            prove(ctx, &keys_here.object, dm).await
        }
        _ => None,
    };
    let (action, why) = decide_archive(
        Some(&src_held),
        dst_held.as_ref(),
        ctx.opts.checksum,
        proven,
    );
    match action {
        ArchiveAction::NoManifest => {
            Outcome::Done(vec![ItemReport::new(name, "not-replicated", why)])
        }
        ArchiveAction::Skip => Outcome::Done(vec![ItemReport::new(name, "skipped", why)]),
        ArchiveAction::Copy if ctx.opts.dry_run => {
            let mut i = ItemReport::new(name, "would-copy", why);
            i.bytes = m.stored.size;
            Outcome::Done(vec![i])
        }
        ArchiveAction::Copy => Outcome::Done(vec![
            copy_archive(ctx, name, &m, &keys_here, data, why).await,
        ]),
    }
}

async fn read_manifest(at: &Opened, key: &str) -> Result<Manifest, String> {
    let bytes = at.store.get_bytes(key).await.map_err(|e| e.to_string())?;
    Manifest::from_json(&bytes)
}

fn held(m: &Manifest, data_size: Option<u64>) -> Held {
    Held {
        plaintext_sha256: m.plaintext.sha256.clone(),
        stored_sha256: m.stored.sha256.clone(),
        stored_size: m.stored.size,
        data_size,
    }
}

/// Whether the destination's data is what its manifest says: the provider's checksum where it
/// keeps one in a form the manifest has, else the bytes read and hashed. `None` when it could
/// not be read.
async fn prove(ctx: &Ctx<'_>, key: &str, dm: &Manifest) -> Option<bool> {
    let head = ctx.dst.store.head(key).await.ok()?;
    if let (Some(have), Some(rec)) = (&head.checksum, &dm.stored.provider_checksum) {
        if std::mem::discriminant(have) == std::mem::discriminant(rec) {
            return Some(have == rec);
        }
    }
    if let Some(h) = sha256_form(head.checksum.as_ref()) {
        return Some(h.eq_ignore_ascii_case(&dm.stored.sha256));
    }
    let (n, sha) = copy::sha256_of(&*ctx.dst.store, key).await.ok()?;
    Some(n == dm.stored.size && sha.eq_ignore_ascii_case(&dm.stored.sha256))
}

/// Copies an archive's data, checks it against the source manifest, and commits the
/// destination's own manifest.
async fn copy_archive(
    ctx: &Ctx<'_>,
    name: &str,
    m: &Manifest,
    keys: &ArchiveKeys,
    data: Option<&Decision>,
    why: &str,
) -> ItemReport {
    let now = Utc::now();
    let retention = ctx.dst.options.retention_at(m.created, now);
    let mut options = PutOptions::default();
    options.storage_class = ctx.dst.options.storage_class.clone();
    options.retention = retention;
    options.legal_hold = ctx.dst.options.legal_hold;
    let fingerprint = data
        .and_then(|d| d.source.as_ref())
        .and_then(|i| i.etag.clone())
        .unwrap_or_else(|| m.stored.sha256.clone());
    let copied = match copy::copy(
        ctx.src,
        ctx.dst,
        &keys.object,
        m.stored.size,
        &fingerprint,
        options,
        &ctx.shared,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return ItemReport::new(name, "failed", format!("the data did not copy: {e}")),
    };
    // The bytes that went must be the ones the source manifest names.
    let sent = match &copied.sha256 {
        Some(h) => Some(h.clone()),
        None if copied.route == Route::Streamed => copy::sha256_of(&*ctx.dst.store, &keys.object)
            .await
            .ok()
            .map(|(_, h)| h),
        None => None,
    };
    if let Some(h) = &sent {
        if !h.eq_ignore_ascii_case(&m.stored.sha256) {
            let _ = ctx.dst.store.delete(&keys.object).await;
            return ItemReport::new(
                name,
                "verify-failed",
                format!(
                    "the bytes copied have SHA-256 {h}, but the source manifest records {}; the copy was removed (verify the source: offsite verify --deep)",
                    m.stored.sha256
                ),
            );
        }
    }
    // Server-side: what the provider reports of the copy against the source's forms.
    let mut computed = copied.computed.clone();
    computed.extend(m.stored.provider_checksum.clone());
    let facts = ArchiveFacts {
        name: m.archive.clone(),
        created: m.created,
        created_from: m.created_from,
        recipients: m
            .encryption
            .iter()
            .flat_map(|e| e.recipients.iter())
            .filter_map(|r| Recipient::parse(r, "the source manifest").ok())
            .collect(),
        plaintext: m.plaintext.clone(),
        stored: Digest {
            size: m.stored.size,
            sha256: m.stored.sha256.clone(),
        },
        annotations: Annotations {
            policy: m.policy.clone(),
            metadata: m.metadata.clone(),
        },
    };
    let verified = if sent.is_some() {
        "sha256"
    } else if copied.receipt.checksum.is_some() {
        "provider-checksum"
    } else {
        "size"
    };
    let committed = commit::commit(
        &facts,
        Finished {
            dest: ctx.dst,
            keys,
            receipt: copied.receipt.clone(),
            computed,
            retention,
        },
    )
    .await;
    match committed {
        Ok(_) => {
            let mut i = ItemReport::new(name, "copied", why);
            i.bytes = m.stored.size;
            i.route = Some(copied.route);
            i.verified = Some(verified);
            i.resumed_parts = copied.resumed;
            i
        }
        Err(e) => {
            let action = match e {
                NotCommitted::NotIntact { .. } => "verify-failed",
                NotCommitted::ManifestNotWritten(_) => "failed",
            };
            ItemReport::new(name, action, e.to_string())
        }
    }
}

/// Deletes one key at the destination, unless a lock or hold keeps it.
async fn delete(ctx: &Ctx<'_>, d: &Decision) -> ItemReport {
    let now = Utc::now();
    if d.key.ends_with(VERIFIED_SUFFIX) && ctx.opts.dry_run {
        return ItemReport::new(&d.key, "would-delete", d.reason);
    }
    match ctx.dst.store.head(&d.key).await {
        Ok(h) if h.legal_hold => {
            return ItemReport::new(&d.key, "kept", "under a legal hold at the destination")
        }
        Ok(h) if h.retention.is_some_and(|r| r.retain_until > now) => {
            return ItemReport::new(
                &d.key,
                "kept",
                format!(
                    "locked at the destination until {}",
                    crate::units::time(&h.retention.expect("checked").retain_until)
                ),
            )
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() => {
            return ItemReport::new(&d.key, "skipped", "already gone at the destination")
        }
        Err(e) => return ItemReport::new(&d.key, "failed", e.to_string()),
    }
    if ctx.opts.dry_run {
        return ItemReport::new(&d.key, "would-delete", d.reason);
    }
    match ctx.dst.store.delete(&d.key).await {
        Ok(()) => {
            let mut i = ItemReport::new(&d.key, "deleted", d.reason);
            i.bytes = 0;
            i
        }
        Err(e) if e.kind() == offsite_storage::ErrorKind::Locked => {
            ItemReport::new(&d.key, "kept", format!("the store refused: {e}"))
        }
        Err(e) => ItemReport::new(&d.key, "failed", e.to_string()),
    }
}
