//! Replication: make a destination hold what a source holds, incrementally, verified, and
//! resumable.
//!
//! Both listings stream in key order into the pure plan (`offsite_policies::replication`),
//! which runs on a blocking thread between two bounded channels; its units (a plain object, or
//! an archive's keys together) are carried out `jobs` at a time. Memory is bounded by the
//! channels, the units in flight and the streamed copies' parts, never by the bucket. A store
//! that declares `ordered_listing` (AWS S3, GCS and Azure list in lexicographic byte order;
//! the conformance suite checks it) streams as it comes; any other (a local directory's walk,
//! an S3-compatible server, whose order is not trusted) is sorted first. A listing that breaks the order stops the run
//! (the plan says so) rather than producing a wrong plan.
//!
//! Archives stay archives: the data first, verified against the source manifest's SHA-256,
//! then the destination's own manifest (its provider's checksum, its storage class, its
//! retain-until) through push's commit. An archive with no manifest at the source is an
//! incomplete push: it is reported, never replicated. Verification records stay where the
//! check was made. Deletions wait until both listings are complete and pass the guards of
//! [`refuse_deletes`](offsite_policies::replication::refuse_deletes); a destination object
//! under a lock or hold is never deleted.
//!
//! [`run`] reads as its stages: the context (`Ctx::new`), the listings and the planner
//! (`start`), the units carried out (`carry_out`: `object` and `archive`), the listings
//! settled (`Running::settle`), the deletions (`delete::delete_all`).

mod archive;
pub mod copy;
mod delete;
mod listing;
mod object;
mod report;

use std::sync::Arc;

use futures::StreamExt;
use offsite_policies::replication::{plan, units, Decision, OrderError, Unit};
use offsite_storage::{Checksum, InFlightBudget};
use tokio::sync::mpsc;

pub use self::report::{ItemAction, ItemReport, Summary, Verified};

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

impl Options {
    /// What the pure plan needs of them.
    fn plan(&self) -> offsite_policies::replication::Options {
        offsite_policies::replication::Options {
            delete: self.delete,
            checksum: self.checksum,
        }
    }
}

/// What one unit left to do after the copies: deletions wait for the guards.
enum Outcome {
    Done(Vec<ItemReport>),
    Delete(Vec<Decision>),
    Order(OrderError),
}

impl Outcome {
    /// One item done.
    fn one(item: ItemReport) -> Outcome {
        Outcome::Done(vec![item])
    }
}

/// Whose archives are copied and how replicas are signed.
#[derive(Debug, Clone, Default)]
pub struct Signing {
    /// Where keys are trusted, only archives whose source manifest a trusted key signed are
    /// copied.
    pub signers: crate::engine::inventory::Signers,
    /// This host's key: each replica's manifest is signed with it (after the source's was
    /// checked).
    pub key: Option<Arc<offsite_policies::signing::SigningKey>>,
}

/// Everything a unit needs.
struct Ctx<'a> {
    src: &'a Opened,
    dst: &'a Opened,
    opts: Options,
    signing: &'a Signing,
    shared: Shared,
}

impl<'a> Ctx<'a> {
    /// The run's context: its journal directory made, its bandwidth limit and memory budget
    /// shared by every copy. An error is why the directory could not be made.
    fn new(
        src: &'a Opened,
        dst: &'a Opened,
        opts: Options,
        signing: &'a Signing,
    ) -> Result<Ctx<'a>, String> {
        let journal_dir = super::cache_dir::replicate_journals();
        super::spool::private_dir(&journal_dir).map_err(|e| {
            format!(
                "cannot make the journal directory {}: {e}",
                journal_dir.display()
            )
        })?;
        Ok(Ctx {
            src,
            dst,
            opts,
            signing,
            shared: Shared {
                bwlimit: opts.bwlimit.map(|b| Arc::new(BwLimit::new(b))),
                budget: InFlightBudget::new(256 << 20),
                journal_dir,
            },
        })
    }
}

/// Replicates `src` onto `dst`, reporting each item to `on_item` as it is done.
pub async fn run(
    src: &Opened,
    dst: &Opened,
    opts: Options,
    signing: &Signing,
    on_item: &mut (dyn FnMut(&ItemReport) + Send),
) -> Summary {
    let mut summary = Summary {
        source: src.url().to_string(),
        destination: dst.url().to_string(),
        dry_run: opts.dry_run,
        ..Summary::default()
    };
    let ctx = match Ctx::new(src, dst, opts, signing) {
        Ok(ctx) => ctx,
        Err(e) => {
            summary.listing_error = Some(e);
            return summary;
        }
    };
    let (units, running) = start(&ctx);
    let deletes = carry_out(&ctx, units, &mut summary, on_item).await;
    let source_keys = running.settle(&mut summary).await;
    delete::delete_all(&ctx, deletes, source_keys, &mut summary, on_item).await;
    summary
}

/// The listings and the plan under way, whose units are taken from a channel.
struct Running {
    /// The plan, on a blocking thread.
    planner: tokio::task::JoinHandle<()>,
    /// The source's listing.
    src: tokio::task::JoinHandle<listing::Listed>,
    /// The destination's listing.
    dst: tokio::task::JoinHandle<listing::Listed>,
}

/// Starts both listings and the plan that merges them: the plan's units, in key order.
fn start(ctx: &Ctx<'_>) -> (mpsc::Receiver<Result<Unit, OrderError>>, Running) {
    let etags = ctx.src.store.provider() == "s3" && ctx.dst.store.provider() == "s3";
    let src = listing::spawn(ctx.src, listing::Side::Source, ctx.opts.shard, etags);
    let dst = listing::spawn(ctx.dst, listing::Side::Destination, ctx.opts.shard, etags);
    let (unit_tx, unit_rx) = mpsc::channel::<Result<Unit, OrderError>>(256);
    let options = ctx.opts.plan();
    let (mut s, mut d) = (src.items, dst.items);
    let planner = tokio::task::spawn_blocking(move || {
        let s = std::iter::from_fn(move || s.blocking_recv());
        let d = std::iter::from_fn(move || d.blocking_recv());
        for u in units(plan(s, d, options)) {
            if unit_tx.blocking_send(u).is_err() {
                break;
            }
        }
    });
    let running = Running {
        planner,
        src: src.task,
        dst: dst.task,
    };
    (unit_rx, running)
}

/// Carries out the units `jobs` at a time, counting and reporting each item as it is done;
/// the deletions are held for after the listings.
async fn carry_out(
    ctx: &Ctx<'_>,
    units: mpsc::Receiver<Result<Unit, OrderError>>,
    summary: &mut Summary,
    on_item: &mut (dyn FnMut(&ItemReport) + Send),
) -> delete::Held {
    let units = Box::pin(futures::stream::unfold(units, |mut rx| async move {
        rx.recv().await.map(|u| (u, rx))
    }));
    let mut outcomes = units
        .map(|u| unit(ctx, u))
        .buffer_unordered(ctx.opts.jobs.max(1));
    let mut deletes = delete::Held::new(ctx.opts.max_delete);
    while let Some(o) = outcomes.next().await {
        match o {
            Outcome::Done(items) => {
                for i in &items {
                    summary.count(i);
                    on_item(i);
                }
            }
            Outcome::Delete(ds) => deletes.hold(ds),
            Outcome::Order(e) => summary.listing_error = Some(e.to_string()),
        }
    }
    deletes
}

/// One unit of the plan.
async fn unit(ctx: &Ctx<'_>, u: Result<Unit, OrderError>) -> Outcome {
    match u {
        Ok(Unit::Object(d)) => object::object(ctx, d).await,
        Ok(Unit::Archive { name, keys }) => archive::archive(ctx, &name, keys).await,
        Err(e) => Outcome::Order(e),
    }
}

impl Running {
    /// Waits for the plan and both listings (once its units are no longer taken), and records
    /// the first listing error: the source's key count, or why a listing did not complete (a
    /// break in key order too).
    async fn settle(self, summary: &mut Summary) -> Result<u64, String> {
        // The planner's end says nothing the listings and the units do not.
        let _ = self.planner.await;
        let src = self.src.await.unwrap_or_else(|e| Err(e.to_string()));
        let dst = self.dst.await.unwrap_or_else(|e| Err(e.to_string()));
        for l in [&src, &dst] {
            if let Err(e) = l {
                summary.listing_error.get_or_insert_with(|| e.clone());
            }
        }
        match &summary.listing_error {
            Some(e) => Err(e.clone()),
            None => Ok(src.map_or(0, |(total, _)| total)),
        }
    }
}

/// A checksum in the form a listing's SHA-256 has (lowercase hex), when it is a SHA-256.
fn sha256_form(c: Option<&Checksum>) -> Option<String> {
    match c {
        Some(Checksum::Sha256(h)) => Some(h.to_ascii_lowercase()),
        _ => None,
    }
}
