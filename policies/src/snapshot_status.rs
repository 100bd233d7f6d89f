//! Snapshot status: how a `[[snapshots]]` section's snapshots stand, region by region, beside
//! [`crate::status`] for archives. Pure: the binary lists each region's snapshots into a
//! [`RegionListing`] and prints what [`judge`] returns; [`items`] is what snapshot retention
//! ([`crate::snapshots::plan`]) reads of the same listing.
//!
//! Volume ids are compared as [`volume_key`] spells them, so a policy's `volumes`, the volume
//! a snapshot names and the engine's tag agree however each was written.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::duration::Span;
use crate::policy::{Policy, SnapshotProvider, Snapshots as Section};
use crate::snapshots::{Item, State};

/// One snapshot, as judging and retention read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The provider's id.
    pub id: String,
    /// The volume it is a series of, as the snapshot names it (the engine's tag, else the
    /// provider's field, else `-`).
    pub series: String,
    /// When its data was taken.
    pub created: DateTime<Utc>,
    /// Its state.
    pub state: State,
    /// On a copy: the id of the snapshot it was copied from.
    pub source: Option<String>,
}

/// A section's snapshots in one region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionListing {
    /// The region.
    pub region: String,
    /// `None` for the section's own region, else the copy-to entry's index.
    pub copy: Option<usize>,
    /// The snapshots there that the section holds.
    pub snapshots: Vec<Listed>,
}

impl AsRef<RegionListing> for RegionListing {
    fn as_ref(&self) -> &RegionListing {
        self
    }
}

/// One spelling of a volume id, so a policy's `volumes`, the volume a snapshot names and the
/// engine's tag compare equal however each was written: GCP from `projects/` on (a full
/// compute URL is the same disk), Azure resource ids without regard to case (ARM ignores it),
/// EBS ids as they are.
pub fn volume_key(provider: SnapshotProvider, id: &str) -> String {
    match provider {
        SnapshotProvider::Gcp => id.find("projects/").map_or(id, |at| &id[at..]).to_string(),
        SnapshotProvider::Azure => id.to_ascii_lowercase(),
        SnapshotProvider::Aws => id.to_string(),
    }
}

/// The volume a snapshot of `section` is a series of, as [`volume_key`] spells it.
pub fn series_key(section: &Section, s: &Listed) -> String {
    volume_key(section.provider, &s.series)
}

/// Whether a section retired `volume` (a [`volume_key`]) on purpose: it lists its volumes
/// (`volumes = [...]`) and this one is no longer among them. A `select` or `instances` section
/// cannot tell a retired volume from one that stopped: none is retired there. (A snapshot that
/// names no volume at all, series `-`, counts as retired under a `volumes` list: it is of none
/// of them, and its newest is kept all the same.)
pub fn retired(section: &Section, volume: &str) -> bool {
    !section.volumes.is_empty()
        && !section
            .volumes
            .iter()
            .any(|v| volume_key(section.provider, v) == volume)
}

/// What retention reads of a section's snapshots in one region; `copies` are every region's,
/// so a snapshot that a copy still in progress reads from counts as in use.
pub fn items(section: &Section, snapshots: &[Listed], copies: &[&Listed]) -> Vec<Item> {
    snapshots
        .iter()
        .map(|s| Item {
            retired: retired(section, &series_key(section, s)),
            id: s.id.clone(),
            volume: series_key(section, s),
            created: s.created,
            state: s.state,
            in_use: copies
                .iter()
                .any(|c| c.source.as_deref() == Some(s.id.as_str()) && c.state == State::Pending),
        })
        .collect()
}

/// The newest completed snapshot of each volume in a section's region: (volume, as
/// [`volume_key`] spells it; snapshot).
pub fn newest<'a>(section: &Section, h: &'a RegionListing) -> BTreeMap<String, &'a Listed> {
    let mut m: BTreeMap<String, &Listed> = BTreeMap::new();
    for s in h.snapshots.iter().filter(|s| s.state == State::Completed) {
        let e = m.entry(series_key(section, s)).or_insert(s);
        if s.created > e.created {
            *e = s;
        }
    }
    m
}

/// The newest snapshot of one volume in one region, as `status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct VolumeStatus {
    /// The section no longer names the volume: shown, and judged by no rpo.
    pub retired: bool,
    /// The `[[snapshots]]` section's name, when it has one.
    pub section: Option<String>,
    /// `aws`, `gcp`, `azure`.
    pub provider: &'static str,
    /// The region.
    pub region: String,
    /// Whether the region is a copy-to region.
    pub copy: bool,
    /// The volume.
    pub volume: String,
    /// Its newest completed snapshot there.
    pub newest: Option<String>,
    /// When that snapshot's data was taken.
    pub newest_created: Option<DateTime<Utc>>,
    /// Within the policy's rpo (`None`: no rpo).
    pub fresh: Option<bool>,
    /// Completed snapshots of the volume there.
    pub completed: usize,
    /// Snapshots or copies still being made.
    pub pending: usize,
    /// Snapshots the provider failed.
    pub failed: usize,
}

/// Judges a section's regions: one row per volume and region (every volume the section
/// names, or that any of its regions holds, in every region), and the rules that do not hold.
pub fn judge<H: AsRef<RegionListing>>(
    policy: &Policy,
    section: &Section,
    regions: &[H],
    now: DateTime<Utc>,
) -> (Vec<VolumeStatus>, Vec<Unmet>) {
    // One row per volume however its id is spelt in the policy and on the snapshots.
    let mut volumes: BTreeSet<String> = section
        .volumes
        .iter()
        .map(|v| volume_key(section.provider, v))
        .collect();
    for h in regions {
        volumes.extend(h.as_ref().snapshots.iter().map(|s| series_key(section, s)));
    }
    let mut rows = Vec::new();
    let mut unmet = Vec::new();
    for h in regions {
        let h = h.as_ref();
        let newest = newest(section, h);
        for v in &volumes {
            let row = volume_row(policy, section, h, v, newest.get(v).copied(), now);
            unmet.extend(unmet_of(policy, section, h, &row, newest.get(v).copied()));
            rows.push(row);
        }
    }
    (rows, unmet)
}

/// The row of volume `v` in region `h`, whose newest completed snapshot there is `n`.
fn volume_row(
    policy: &Policy,
    section: &Section,
    h: &RegionListing,
    v: &str,
    n: Option<&Listed>,
    now: DateTime<Utc>,
) -> VolumeStatus {
    let of: Vec<&Listed> = h
        .snapshots
        .iter()
        .filter(|s| series_key(section, s) == v)
        .collect();
    let count = |st: State| of.iter().filter(|s| s.state == st).count();
    // A volume retired on purpose is shown, but no snapshot of it is due.
    let gone = retired(section, v);
    let fresh = policy
        .rpo
        .filter(|_| !gone)
        .map(|rpo| n.is_some_and(|s| s.created >= rpo.before(now)));
    VolumeStatus {
        retired: gone,
        section: section.name.clone(),
        provider: section.provider.as_str(),
        region: h.region.clone(),
        copy: h.copy.is_some(),
        volume: v.to_string(),
        newest: n.map(|s| s.id.clone()),
        newest_created: n.map(|s| s.created),
        fresh,
        completed: count(State::Completed),
        pending: count(State::Pending),
        failed: count(State::Failed),
    }
}

/// A snapshot rule that does not hold for one volume in one region. Its `Display` (and its
/// JSON, a string) is the sentence the user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmet {
    /// The region holds no completed snapshot of the volume.
    NoSnapshot {
        /// The section's name, if it has one.
        section: Option<String>,
        /// The provider's name.
        provider: &'static str,
        /// The region.
        region: String,
        /// The volume.
        volume: String,
    },
    /// The volume's newest completed snapshot in the region is older than the policy's rpo.
    Late {
        /// The section's name, if it has one.
        section: Option<String>,
        /// The provider's name.
        provider: &'static str,
        /// The region.
        region: String,
        /// The volume.
        volume: String,
        /// When that snapshot's data was taken.
        newest: DateTime<Utc>,
        /// The policy's rpo.
        rpo: Option<Span>,
    },
}

impl std::fmt::Display for Unmet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (Unmet::NoSnapshot { section, .. } | Unmet::Late { section, .. }) = self;
        let at = section
            .as_ref()
            .map(|n| format!("[{n}] "))
            .unwrap_or_default();
        match self {
            Unmet::NoSnapshot {
                provider,
                region,
                volume,
                ..
            } => write!(
                f,
                "snapshots: {at}no completed snapshot of {volume} in {provider} {region}"
            ),
            Unmet::Late {
                provider,
                region,
                volume,
                newest,
                rpo,
                ..
            } => write!(
                f,
                "snapshots: {at}the newest completed snapshot of {volume} in {provider} {region} is from {} (rpo {})",
                newest.format("%Y-%m-%dT%H:%M:%SZ"),
                rpo.map(|r| r.to_string()).unwrap_or_default()
            ),
        }
    }
}

impl Serialize for Unmet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The rule a row breaks: no completed snapshot, or the newest older than the rpo.
fn unmet_of(
    policy: &Policy,
    section: &Section,
    h: &RegionListing,
    row: &VolumeStatus,
    n: Option<&Listed>,
) -> Option<Unmet> {
    let (section, provider, region, volume) = (
        section.name.clone(),
        section.provider.as_str(),
        h.region.clone(),
        row.volume.clone(),
    );
    match (n, row.fresh) {
        _ if row.retired => None,
        (None, _) => Some(Unmet::NoSnapshot {
            section,
            provider,
            region,
            volume,
        }),
        (Some(s), Some(false)) => Some(Unmet::Late {
            section,
            provider,
            region,
            volume,
            newest: s.created,
            rpo: policy.rpo,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_volume_however_its_id_is_spelt() {
        use SnapshotProvider::*;
        assert_eq!(
            volume_key(
                Gcp,
                "https://www.googleapis.com/compute/v1/projects/p/zones/z/disks/d"
            ),
            volume_key(Gcp, "projects/p/zones/z/disks/d")
        );
        assert_eq!(
            volume_key(
                Azure,
                "/subscriptions/S/resourceGroups/RG/providers/Microsoft.Compute/disks/D"
            ),
            volume_key(
                Azure,
                "/subscriptions/s/resourcegroups/rg/providers/microsoft.compute/disks/d"
            )
        );
        assert_ne!(volume_key(Aws, "vol-0ABC"), volume_key(Aws, "vol-0abc"));
    }

    fn at(hours_ago: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            - chrono::Duration::hours(hours_ago)
    }

    fn snap(id: &str, series: &str, hours_ago: i64, state: State) -> Listed {
        Listed {
            id: id.into(),
            series: series.into(),
            created: at(hours_ago),
            state,
            source: None,
        }
    }

    fn policy() -> Policy {
        let text = "version = 1\nname = \"vols\"\nrpo = \"26h\"\n[[snapshots]]\nprovider = \"aws\"\nregion = \"r1\"\nvolumes = [\"vol-1\", \"vol-2\"]\n";
        Policy::parse(text, "p.toml").unwrap()
    }

    #[test]
    fn every_named_volume_is_judged_in_every_region_and_a_retired_one_by_no_rpo() {
        let p = policy();
        let s = &p.snapshots[0];
        let home = RegionListing {
            region: "r1".into(),
            copy: None,
            snapshots: vec![
                snap("s1", "vol-1", 2, State::Completed),
                snap("s0", "vol-1", 30, State::Completed),
                snap("s2", "vol-1", 1, State::Pending),
                snap("s3", "vol-2", 40, State::Completed),
                snap("s4", "vol-old", 100, State::Completed),
            ],
        };
        let (rows, unmet) = judge(&p, s, &[home], at(0));
        let row = |v: &str| rows.iter().find(|r| r.volume == v).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(row("vol-1").newest.as_deref(), Some("s1"));
        assert_eq!(row("vol-1").fresh, Some(true));
        assert_eq!((row("vol-1").completed, row("vol-1").pending), (2, 1));
        assert_eq!(row("vol-2").fresh, Some(false));
        assert!(row("vol-old").retired && row("vol-old").fresh.is_none());
        assert_eq!(unmet.len(), 1, "{unmet:?}");
        assert!(
            matches!(&unmet[0], Unmet::Late { volume, region, .. } if volume == "vol-2" && region == "r1"),
            "{unmet:?}"
        );
        assert!(
            unmet[0].to_string().starts_with(
                "snapshots: the newest completed snapshot of vol-2 in aws r1 is from "
            ),
            "{unmet:?}"
        );
    }

    #[test]
    fn a_snapshot_a_pending_copy_reads_from_is_in_use() {
        let p = policy();
        let s = &p.snapshots[0];
        let source = snap("s1", "vol-1", 2, State::Completed);
        let mut copy = snap("c1", "vol-1", 2, State::Pending);
        copy.source = Some("s1".into());
        let items = items(s, std::slice::from_ref(&source), &[&source, &copy]);
        assert!(items[0].in_use && !items[0].retired);
        copy.state = State::Completed;
        let items = super::items(s, std::slice::from_ref(&source), &[&copy]);
        assert!(!items[0].in_use);
    }
}
