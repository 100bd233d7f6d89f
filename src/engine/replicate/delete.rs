//! Deletions at the destination: held until both listings are complete, then refused as a
//! whole by the guards, or carried out one key at a time unless a lock or hold keeps it.

use chrono::Utc;
use offsite_policies::replication::{refuse_deletes, Decision};

use super::{Ctx, ItemAction, ItemReport, Summary, VERIFIED_SUFFIX};

/// The deletions the plan asked for, held for after the listings.
pub(super) struct Held {
    /// The decisions held: none once past the cap (nothing is deleted then anyway).
    decisions: Vec<Decision>,
    /// How many were asked for.
    count: u64,
    /// `--max-delete`.
    cap: u64,
}

impl Held {
    /// None held yet, under `max_delete`.
    pub(super) fn new(max_delete: Option<u64>) -> Held {
        Held {
            decisions: Vec::new(),
            count: 0,
            cap: max_delete.unwrap_or(u64::MAX),
        }
    }

    /// Holds `ds`.
    pub(super) fn hold(&mut self, ds: Vec<Decision>) {
        self.count += ds.len() as u64;
        // Held only up to the cap: past it nothing is deleted anyway.
        if self.count <= self.cap {
            self.decisions.extend(ds);
        }
    }
}

/// Carries out the held deletions, unless a guard refuses them (`source_keys` is the source's
/// key count, or why a listing did not complete): the refusal goes in the summary.
pub(super) async fn delete_all(
    ctx: &Ctx<'_>,
    held: Held,
    source_keys: Result<u64, String>,
    summary: &mut Summary,
    on_item: &mut (dyn FnMut(&ItemReport) + Send),
) {
    if held.count == 0 {
        return;
    }
    let listed = source_keys.as_ref().copied().map_err(String::as_str);
    if let Some(refused) = refuse_deletes(listed, held.count, ctx.opts.max_delete) {
        summary.deletes_refused = Some(refused);
        return;
    }
    for d in held.decisions {
        let r = delete(ctx, &d).await;
        summary.count(&r);
        on_item(&r);
    }
}

/// Deletes one key at the destination, unless a lock or hold keeps it.
async fn delete(ctx: &Ctx<'_>, d: &Decision) -> ItemReport {
    let now = Utc::now();
    if d.key.ends_with(VERIFIED_SUFFIX) && ctx.opts.dry_run {
        return ItemReport::new(&d.key, ItemAction::WouldDelete, d.reason);
    }
    match ctx.dst.store.head(&d.key).await {
        Ok(h) if h.legal_hold => {
            return ItemReport::new(
                &d.key,
                ItemAction::Kept,
                "under a legal hold at the destination",
            )
        }
        Ok(h) => {
            if let Some(r) = h.retention.filter(|r| r.retain_until > now) {
                let why = format!(
                    "locked at the destination until {}",
                    crate::units::time(&r.retain_until)
                );
                return ItemReport::new(&d.key, ItemAction::Kept, why);
            }
        }
        Err(e) if e.is_not_found() => {
            return ItemReport::new(
                &d.key,
                ItemAction::Skipped,
                "already gone at the destination",
            )
        }
        Err(e) => return ItemReport::new(&d.key, ItemAction::Failed, e.to_string()),
    }
    if ctx.opts.dry_run {
        return ItemReport::new(&d.key, ItemAction::WouldDelete, d.reason);
    }
    match ctx.dst.store.delete(&d.key).await {
        Ok(()) => ItemReport::new(&d.key, ItemAction::Deleted, d.reason),
        Err(e) if e.kind() == offsite_storage::ErrorKind::Locked => {
            ItemReport::new(&d.key, ItemAction::Kept, format!("the store refused: {e}"))
        }
        Err(e) => ItemReport::new(&d.key, ItemAction::Failed, e.to_string()),
    }
}
