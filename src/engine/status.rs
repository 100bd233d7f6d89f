//! The status runner: reads what a policy's destinations hold and what its `[[snapshots]]`
//! sections' regions hold, and judges both against the policy's rules at a given time. The
//! CLI prints the report, sets the metrics and picks the exit code.

use chrono::{DateTime, Utc};
use offsite_policies::placement::slots;
use offsite_policies::policy::Policy;
use offsite_policies::snapshot_status::{Unmet, VolumeStatus};
use offsite_policies::status::{judge, Status};

use crate::engine::inventory::{read_inventory, ReadOptions};
use crate::engine::leftovers::{self, Leftover};
use crate::registry::Opened;

/// Something that could not be read: a destination, or a `[[snapshots]]` section.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The destination's name, or the section as `[[snapshots]] name (provider)`.
    pub name: String,
    /// Why, in words.
    pub error: String,
}

/// The `[[snapshots]]` sections read and judged.
#[derive(Debug, Default)]
pub struct SnapshotsStatus {
    /// One row per volume and region.
    pub rows: Vec<VolumeStatus>,
    /// The snapshot rules that do not hold.
    pub unmet: Vec<Unmet>,
    /// The sections that could not be read.
    pub unreadable: Vec<Unreadable>,
}

/// What `status` read and judged.
#[derive(Debug)]
pub struct StatusReport {
    /// The archives' verdict: series, destinations, damage and unmet rules.
    pub status: Status,
    /// The destinations that could not be read, in the policy's order.
    pub unreadable: Vec<Unreadable>,
    /// The volume snapshots' verdict.
    pub snapshots: SnapshotsStatus,
    /// The time everything was judged at.
    pub now: DateTime<Utc>,
    /// What killed writes left at each destination more than a day ago: (destination name,
    /// leftover). Not copies; the next push or prune there removes them.
    pub leftovers: Vec<(String, Leftover)>,
}

impl StatusReport {
    /// Whether destination `name` could be read.
    pub fn readable(&self, name: &str) -> bool {
        !self.unreadable.iter().any(|u| u.name == name)
    }
}

/// Reads every destination of `policy` (`locations`, in its order) and every region of its
/// `[[snapshots]]` sections, and judges them at the clock `options` carries.
pub async fn run(policy: &Policy, locations: &[Opened], options: ReadOptions) -> StatusReport {
    let now = options.judge.clock.now;
    let (inv, reads) = read_inventory(policy, locations, &options).await;
    let unreadable = reads
        .iter()
        .zip(&policy.destinations)
        .filter_map(|(r, d)| {
            r.entries.as_ref().err().map(|e| Unreadable {
                name: d.name.clone(),
                error: e.clone(),
            })
        })
        .collect();
    StatusReport {
        status: judge(policy, &slots(policy), &inv, now),
        unreadable,
        snapshots: snapshots(policy, now).await,
        now,
        leftovers: leftovers_at(policy, locations, now).await,
    }
}

/// The leftovers at every destination that can be listed.
async fn leftovers_at(
    policy: &Policy,
    locations: &[Opened],
    now: DateTime<Utc>,
) -> Vec<(String, Leftover)> {
    let mut out = Vec::new();
    for (d, loc) in policy.destinations.iter().zip(locations) {
        match leftovers::find(loc, now - leftovers::stale_after()).await {
            Ok(found) => out.extend(found.into_iter().map(|l| (d.name.clone(), l))),
            Err(e) => {
                tracing::warn!(destination = %d.name, error = %e, "cannot look for what killed pushes left")
            }
        }
    }
    out
}

/// Snapshots beside archives: every region of every `[[snapshots]]` section.
async fn snapshots(policy: &Policy, now: DateTime<Utc>) -> SnapshotsStatus {
    let mut out = SnapshotsStatus::default();
    for (i, s) in policy.snapshots.iter().enumerate() {
        match crate::engine::snapshot::section_regions(policy, s).await {
            Ok(h) => {
                let (rows, unmet) = offsite_policies::snapshot_status::judge(policy, s, &h, now);
                out.rows.extend(rows);
                out.unmet.extend(unmet);
            }
            Err(e) => out.unreadable.push(Unreadable {
                name: format!(
                    "[[snapshots]] {} ({})",
                    s.name.clone().unwrap_or_else(|| format!("#{}", i + 1)),
                    s.provider.as_str()
                ),
                error: format!("{e:#}"),
            }),
        }
    }
    out
}
