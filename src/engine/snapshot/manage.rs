//! The single-region commands: `snapshot list`, `snapshot restore`, `snapshot delete`.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use offsite_policies::policy::Policy;
use offsite_storage::{tags, RestoreVolume, Snapshot, SnapshotState, Snapshots, Volume};
use serde::Serialize;

use super::{
    open, poll_interval, section_regions, token, unclaimed, DeleteRow, Deletion, SnapshotPlace,
};
use crate::error::store_error;

/// What `snapshot list` lists.
#[derive(Debug, Clone)]
pub enum ListScope<'a> {
    /// A policy's snapshots in every region its sections name, and those no section holds.
    Policy(&'a Policy),
    /// One region's: offsite's, or (`all`) every snapshot of the account there.
    Place {
        /// Where.
        place: SnapshotPlace,
        /// Not only offsite's.
        all: bool,
    },
}

/// A snapshot, with the region it was listed in.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Sighted {
    /// The region it was listed in.
    #[serde(skip)]
    pub region: String,
    /// The snapshot.
    pub snapshot: Snapshot,
}

/// What `snapshot list` found, by region, volume and newest first.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// The snapshots.
    pub snapshots: Vec<Sighted>,
    /// By policy: those carrying its tag that no section holds (a section renamed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unclaimed: Option<Vec<Sighted>>,
}

/// Lists the snapshots of `scope`, only those of `volume` when given.
pub async fn list(scope: &ListScope<'_>, volume: Option<&str>) -> Result<Listing> {
    let mut listing = match scope {
        ListScope::Policy(p) => list_policy(p).await?,
        ListScope::Place { place, all } => {
            let snaps = open(place).await?;
            let filter = if *all {
                vec![]
            } else {
                vec![(tags::TOOL.to_string(), tags::TOOL_VALUE.to_string())]
            };
            let found = snaps.list(&filter).await.map_err(store_error)?;
            let region = snaps.region();
            Listing {
                snapshots: found.into_iter().map(|s| sighted(region, s)).collect(),
                unclaimed: None,
            }
        }
    };
    for r in std::iter::once(&mut listing.snapshots).chain(listing.unclaimed.as_mut()) {
        if let Some(v) = volume {
            r.retain(|s| s.snapshot.series() == v || s.snapshot.volume.as_deref() == Some(v));
        }
        r.sort_by(|a, b| {
            (&a.region, a.snapshot.series(), b.snapshot.created).cmp(&(
                &b.region,
                b.snapshot.series(),
                a.snapshot.created,
            ))
        });
    }
    Ok(listing)
}

fn sighted(region: &str, snapshot: Snapshot) -> Sighted {
    Sighted {
        region: region.to_string(),
        snapshot,
    }
}

/// Every section's snapshots in every region, and those carrying the policy's tag that none
/// holds.
async fn list_policy(p: &Policy) -> Result<Listing> {
    let mut rows = Vec::new();
    for s in &p.snapshots {
        for h in section_regions(p, s).await? {
            let region = h.region().to_string();
            rows.extend(h.snapshots.into_iter().map(|s| sighted(&region, s)));
        }
    }
    let claimed: BTreeSet<String> = rows.iter().map(|s| s.snapshot.id.clone()).collect();
    let unclaimed = unclaimed(p, &claimed)
        .await?
        .into_iter()
        .map(|(region, snapshot)| Sighted { region, snapshot })
        .collect();
    Ok(Listing {
        snapshots: rows,
        unclaimed: Some(unclaimed),
    })
}

/// What `snapshot restore` is asked to do: a new volume from a snapshot.
#[derive(Debug, Clone)]
pub struct NewVolume {
    /// Where the snapshot is.
    pub place: SnapshotPlace,
    /// The snapshot's id.
    pub snapshot: String,
    /// The new volume's name.
    pub name: String,
    /// Its zone.
    pub zone: Option<String>,
    /// Its type.
    pub volume_type: Option<String>,
    /// Wait until the provider says it is usable.
    pub wait: bool,
}

/// A volume made from a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// The new volume.
    pub volume: Volume,
    /// The region of the adapter that made it.
    #[serde(skip)]
    pub region: String,
}

/// Makes a new volume from a completed snapshot.
pub async fn restore(req: &NewVolume) -> Result<Restored> {
    let snaps = open(&req.place).await?;
    let snap = snaps.get(&req.snapshot).await.map_err(store_error)?;
    if snap.state != SnapshotState::Completed {
        anyhow::bail!(
            "snapshot {} is {}: only a completed snapshot can be restored{}",
            snap.id,
            snap.state.as_str(),
            if snap.state == SnapshotState::Pending {
                "; wait for it (offsite snapshot list shows its progress)"
            } else {
                ""
            }
        );
    }
    let spec = RestoreVolume {
        name: req.name.clone(),
        zone: req.zone.clone(),
        volume_type: req.volume_type.clone(),
        token: token(&["restore", &snap.id, &req.name]),
        tags: [
            (tags::TOOL.to_string(), tags::TOOL_VALUE.to_string()),
            (tags::SOURCE.to_string(), snap.id.clone()),
        ]
        .into_iter()
        .collect(),
    };
    let mut volume = snaps.restore(&snap, &spec).await.map_err(store_error)?;
    if req.wait {
        volume = wait_volume(snaps.as_ref(), volume).await?;
    }
    Ok(Restored {
        snapshot: snap,
        volume,
        region: snaps.region().to_string(),
    })
}

/// Polls a new volume until the provider says it is usable.
async fn wait_volume(snaps: &dyn Snapshots, mut vol: Volume) -> Result<Volume> {
    let ready = |s: &str| {
        matches!(
            s.to_ascii_lowercase().as_str(),
            "available" | "ready" | "succeeded" | "unattached" | "in-use"
        )
    };
    let started = std::time::Instant::now();
    while !ready(&vol.state) {
        if vol.state.eq_ignore_ascii_case("error") || vol.state.eq_ignore_ascii_case("failed") {
            anyhow::bail!(
                "volume {} failed at the provider (state {})",
                vol.id,
                vol.state
            );
        }
        if started.elapsed() > Duration::from_secs(3600) {
            anyhow::bail!("volume {} still {} after an hour", vol.id, vol.state);
        }
        tokio::time::sleep(poll_interval()).await;
        vol = snaps.volume(&vol.id).await.map_err(store_error)?;
    }
    Ok(vol)
}

/// Deletes snapshots by id in one place, each on its own: one that fails does not stop the
/// others.
pub async fn delete(place: &SnapshotPlace, ids: &[String]) -> Result<Vec<DeleteRow>> {
    let snaps = open(place).await?;
    let mut rows = Vec::new();
    for id in ids {
        let outcome = match snaps.delete(id).await {
            Ok(()) => Deletion::Deleted,
            Err(e) => Deletion::Failed(e.to_string()),
        };
        rows.push(DeleteRow {
            region: None,
            snapshot: id.clone(),
            outcome,
        });
    }
    Ok(rows)
}
