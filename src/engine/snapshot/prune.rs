//! `snapshot prune` carried out: every region of every section read and planned first, then,
//! unless a rail refused the plan or it is a dry run, the deletions, through the adapters that
//! listed the snapshots.

use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use offsite_policies::policy::{Policy, Snapshots as Section};
use offsite_policies::retention::Options;
use offsite_policies::snapshot_status::{items, Listed};
use offsite_policies::snapshots::{plan, Plan, Refusal};
use offsite_storage::Snapshots;
use serde::Serialize;

use super::{section_regions, DeleteRow, Deletion};

/// What `snapshot prune` is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct PruneRequest<'a> {
    /// The policy whose sections are pruned.
    pub policy: &'a Policy,
    /// The time retention is judged at.
    pub now: DateTime<Utc>,
    /// `--force`, `--max-delete`.
    pub options: Options,
    /// Plan, delete nothing.
    pub dry_run: bool,
}

/// The plan of one section in one region.
#[derive(Debug, Clone, Serialize)]
pub struct RegionPlan {
    /// The section's number in the policy, from 1.
    pub section: usize,
    /// The section's name.
    pub name: Option<String>,
    /// The region.
    pub region: String,
    /// What is kept and deleted there, and the rails that refuse it.
    #[serde(flatten)]
    pub plan: Plan,
    /// The adapter the snapshots were listed through, which deletes them.
    #[serde(skip)]
    snaps: Arc<dyn Snapshots>,
}

/// What `snapshot prune` did.
#[derive(Debug, Clone)]
pub struct PruneReport {
    /// Every region's plan.
    pub plans: Vec<RegionPlan>,
    /// The deletions carried out (none when refused or a dry run).
    pub deleted: Vec<DeleteRow>,
}

impl PruneReport {
    /// A rail refused a plan: nothing was deleted anywhere.
    pub fn refused(&self) -> bool {
        self.refusals().next().is_some()
    }

    /// Every plan's refusals.
    pub fn refusals(&self) -> impl Iterator<Item = &Refusal> {
        self.plans.iter().flat_map(|p| &p.plan.refusals)
    }

    /// The snapshots the plans delete.
    pub fn planned(&self) -> usize {
        self.plans.iter().map(|p| p.plan.deletions().count()).sum()
    }

    /// The snapshots the plans keep.
    pub fn kept(&self) -> usize {
        self.plans.iter().map(|p| p.plan.items.len()).sum::<usize>() - self.planned()
    }

    /// Snapshots deleted now.
    pub fn deleted_now(&self) -> usize {
        self.count(|o| *o == Deletion::Deleted)
    }

    /// Deletions that failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Deletion::Failed(_)))
    }

    fn count(&self, f: impl Fn(&Deletion) -> bool) -> usize {
        self.deleted.iter().filter(|d| f(&d.outcome)).count()
    }
}

/// Plans every region of every section, then deletes what the plans delete unless refused or
/// a dry run. A region that cannot be read stops it before anything is deleted.
pub async fn prune(req: PruneRequest<'_>) -> Result<PruneReport> {
    // Every region of every section is read before anything is deleted.
    let mut plans = Vec::new();
    for (i, s) in req.policy.snapshots.iter().enumerate() {
        plans.extend(plan_section(&req, i, s).await?);
    }
    let mut report = PruneReport {
        plans,
        deleted: Vec::new(),
    };
    if !report.refused() && !req.dry_run {
        report.deleted = delete_planned(&report.plans).await;
    }
    Ok(report)
}

/// The plans of section `i`, one per region.
async fn plan_section(req: &PruneRequest<'_>, i: usize, s: &Section) -> Result<Vec<RegionPlan>> {
    let policy = req.policy;
    let regions = section_regions(policy, s).await?;
    let every: Vec<&Listed> = regions
        .iter()
        .flat_map(|h| h.listing.snapshots.iter())
        .collect();
    let mut out = Vec::new();
    for h in regions.iter() {
        let rule = match h.listing.copy {
            None => s.retention_here(policy),
            Some(c) => s.retention_of(&s.copy_to[c], policy),
        };
        let items = items(s, &h.listing.snapshots, &every);
        let place = format!(
            "{}{} {}",
            s.name
                .as_ref()
                .map(|n| format!("{n}: "))
                .unwrap_or_default(),
            s.provider.as_str(),
            h.region()
        );
        let plan = plan(&place, rule, &items, req.now, policy.rpo, req.options);
        out.push(RegionPlan {
            section: i + 1,
            name: s.name.clone(),
            region: h.region().to_string(),
            plan,
            snaps: h.snaps.clone(),
        });
    }
    Ok(out)
}

/// Deletes what the plans delete, through the adapters that listed them (nothing is opened
/// twice); a snapshot already gone counts as deleted before.
async fn delete_planned(plans: &[RegionPlan]) -> Vec<DeleteRow> {
    let mut done = Vec::new();
    for p in plans {
        for d in p.plan.deletions() {
            let outcome = match p.snaps.delete(&d.id).await {
                Ok(()) => Deletion::Deleted,
                Err(e) if e.is_not_found() => Deletion::AlreadyGone,
                Err(e) => Deletion::Failed(e.to_string()),
            };
            done.push(DeleteRow {
                region: Some(p.region.clone()),
                snapshot: d.id.clone(),
                outcome,
            });
        }
    }
    done
}
