//! Volume snapshots under a policy: which provider and region a job talks to ([`SnapshotPlace`]),
//! how a snapshot is named, tagged and made idempotent, copies to other regions, and each
//! section's snapshots region by region ([`section_regions`]) that `snapshot prune`, `snapshot
//! list` and `status` read. The commands run in [`create`](create()), [`prune`](prune()),
//! [`list`](list()), [`restore`](restore()) and [`delete`](delete()), and return rows the CLI
//! prints; judging what they find is pure, in `offsite_policies::snapshot_status`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use offsite_policies::policy::{Policy, SnapshotProvider, Snapshots as Section};
use offsite_policies::snapshot_status::{Listed, RegionListing};
use offsite_policies::snapshots::State;
use offsite_storage::{
    derived_name, tag_time, tags, CopySnapshot, CreateSnapshot, Made, Snapshot, SnapshotState,
    Snapshots, SnapshotsExt, WaitOptions,
};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::engine::progress::Progress;

mod create;
mod manage;
mod prune;

pub use create::{
    create, CopyOutcome, CopyRow, CopyTo, CreateRequest, CreateRow, Job, SnapshotRow,
};
pub use manage::{delete, list, restore, ListScope, Listing, NewVolume, Restored, Sighted};
pub use prune::{prune, PruneReport, PruneRequest, RegionPlan};

/// An error as a row of a JSON document reads it: `"ok": false, "error": "..."`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl Serialize for Failure {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("ok", &false)?;
        m.serialize_entry("error", &self.0)?;
        m.end()
    }
}

/// How deleting one snapshot came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    /// Deleted.
    Deleted,
    /// Not there any more (prune: deleted meanwhile, by hand or by another run).
    AlreadyGone,
    /// The provider refused or failed: why.
    Failed(String),
}

impl Serialize for Deletion {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            Deletion::Deleted => m.serialize_entry("ok", &true)?,
            Deletion::AlreadyGone => {
                m.serialize_entry("ok", &true)?;
                m.serialize_entry("detail", "already gone")?;
            }
            Deletion::Failed(e) => {
                m.serialize_entry("ok", &false)?;
                m.serialize_entry("error", e)?;
            }
        }
        m.end()
    }
}

/// One snapshot deleted (or not).
#[derive(Debug, Clone, Serialize)]
pub struct DeleteRow {
    /// The region (prune names it; `snapshot delete` works in one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The snapshot's id.
    pub snapshot: String,
    /// How it came out.
    #[serde(flatten)]
    pub outcome: Deletion,
}

/// Where snapshot calls go: a provider and its region, and the scope GCP and Azure list in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPlace {
    /// Whose snapshots.
    pub provider: SnapshotProvider,
    /// The region (EBS, Azure) or storage location (GCP); else the provider's usual setting.
    pub region: Option<String>,
    /// GCP: the project.
    pub project: Option<String>,
    /// Azure: `/subscriptions/S/resourceGroups/RG`.
    pub resource_group: Option<String>,
}

impl SnapshotPlace {
    /// The place of a policy section, its scope filled from its volumes where not given.
    pub fn of(section: &Section) -> SnapshotPlace {
        let first = section.volumes.first().map(String::as_str);
        SnapshotPlace {
            provider: section.provider,
            region: section.region.clone(),
            project: section
                .project
                .clone()
                .or_else(|| first.and_then(gcp_project)),
            resource_group: section
                .resource_group
                .clone()
                .or_else(|| first.and_then(azure_resource_group)),
        }
    }

    /// The same provider and scope in another region.
    pub fn in_region(&self, region: &str) -> SnapshotPlace {
        SnapshotPlace {
            region: Some(region.to_string()),
            ..self.clone()
        }
    }
}

/// `P` of `projects/P/zones/Z/disks/D` (or of a full compute URL).
pub fn gcp_project(id: &str) -> Option<String> {
    let mut parts = id.split('/');
    while let Some(p) = parts.next() {
        if p == "projects" {
            return parts.next().map(str::to_string);
        }
    }
    None
}

/// `/subscriptions/S/resourceGroups/RG` of an ARM resource id.
pub fn azure_resource_group(id: &str) -> Option<String> {
    let parts: Vec<&str> = id.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [s, sub, r, rg, ..]
            if s.eq_ignore_ascii_case("subscriptions")
                && r.eq_ignore_ascii_case("resourceGroups") =>
        {
            Some(format!("/subscriptions/{sub}/resourceGroups/{rg}"))
        }
        _ => None,
    }
}

/// Opens the provider's adapter in the place's region. A wrong region, id or option is a
/// usage error (exit 2); a provider that cannot be reached or will not take the credentials is
/// a failure (exit 1).
pub async fn open(place: &SnapshotPlace) -> Result<Arc<dyn Snapshots>> {
    let opened: Result<Arc<dyn Snapshots>, offsite_storage::Error> = match place.provider {
        #[cfg(feature = "ebs")]
        SnapshotProvider::Aws => offsite_ebs::EbsSnapshots::open(place.region.as_deref())
            .await
            .map(|s| Arc::new(s) as Arc<dyn Snapshots>),
        #[cfg(feature = "gce-disk")]
        SnapshotProvider::Gcp => offsite_gce_disk::GceSnapshots::open(
            place.region.as_deref(),
            place.project.as_deref(),
        )
        .await
        .map(|s| Arc::new(s) as Arc<dyn Snapshots>),
        #[cfg(feature = "azure-disk")]
        SnapshotProvider::Azure => offsite_azure_disk::AzureDiskSnapshots::open(
            place.region.as_deref(),
            place.resource_group.as_deref(),
        )
        .map(|s| Arc::new(s) as Arc<dyn Snapshots>),
        // A value, not a return: in a build without any snapshot feature this is the only arm.
        #[allow(unreachable_patterns)]
        p => Err(offsite_storage::Error::new(
            offsite_storage::ErrorKind::Unsupported,
            "offsite",
            offsite_storage::Operation::Volume,
            format!(
                "{} snapshots are not supported by this build of offsite: rebuild with default features (cargo feature {})",
                p.as_str(),
                match p {
                    SnapshotProvider::Aws => "ebs",
                    SnapshotProvider::Gcp => "gce-disk",
                    SnapshotProvider::Azure => "azure-disk",
                }
            ),
        )),
    };
    opened.map_err(crate::error::store_error)
}

/// A client token: the same job run again (same policy, volume and `base`) gets the same one.
pub fn token(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}

/// The default token base: the UTC hour, so a rerun within the hour (a retried CronJob pod)
/// finds the snapshots the first run made instead of making them twice.
pub fn default_token_base(now: DateTime<Utc>) -> String {
    now.format("%Y%m%d%H").to_string()
}

/// What to snapshot in one call.
#[derive(Debug, Clone)]
pub enum Subject {
    /// One volume.
    Volume(String),
    /// Every volume of an EBS instance, together.
    Instance(String),
}

impl Subject {
    /// The id it was given by.
    pub fn id(&self) -> &str {
        match self {
            Subject::Volume(v) | Subject::Instance(v) => v,
        }
    }
}

/// Who makes a snapshot: the policy's name (`adhoc` without one) and, for a named
/// `[[snapshots]]` section, its name.
#[derive(Debug, Clone, Copy)]
pub struct Maker<'a> {
    /// The policy's name.
    pub policy: &'a str,
    /// The section's name.
    pub section: Option<&'a str>,
}

/// The engine's tags for a new snapshot.
pub fn new_tags(
    maker: Maker<'_>,
    subject: &Subject,
    token: &str,
    now: DateTime<Utc>,
    extra: &[(String, String)],
) -> BTreeMap<String, String> {
    let mut t: BTreeMap<String, String> = extra.iter().cloned().collect();
    t.insert(tags::TOOL.into(), tags::TOOL_VALUE.into());
    t.insert(tags::POLICY.into(), maker.policy.into());
    if let Some(n) = maker.section {
        t.insert(tags::SECTION.into(), n.into());
    }
    t.insert(tags::CREATED.into(), tag_time(now));
    t.insert(tags::TOKEN.into(), token.into());
    if let Subject::Volume(v) = subject {
        t.insert(tags::VOLUME.into(), v.clone());
    }
    t
}

/// What to ask a provider for when `maker` snapshots `subject` in `region` with the token base
/// `base`: the token and the name derived from it (which a rerun looks for), the tags and the
/// description. A change here changes the names of snapshots made from now on, so that a rerun
/// after an upgrade would not find what the earlier version made: the tests pin them.
pub fn create_spec(
    maker: Maker<'_>,
    subject: &Subject,
    region: &str,
    base: &str,
    now: DateTime<Utc>,
    extra: &[(String, String)],
) -> CreateSnapshot {
    // A section's name is part of the token, so two sections naming one volume each get a
    // snapshot; without one the token is what it always was.
    let policy = maker.policy;
    let token = match maker.section {
        None => token(&[policy, region, subject.id(), base]),
        Some(n) => token(&[policy, n, region, subject.id(), base]),
    };
    CreateSnapshot {
        volume: subject.id().to_string(),
        name: derived_name("offsite", subject.id(), &token),
        token: token.clone(),
        tags: new_tags(maker, subject, &token, now, extra),
        description: format!(
            "offsite {policy}{}: {} at {}",
            maker.section.map(|n| format!(" [{n}]")).unwrap_or_default(),
            subject.id(),
            crate::units::time(&now)
        ),
    }
}

/// Starts the snapshots of one subject (reusing what the token already made): each with
/// whether it was found already made.
pub async fn start(
    snaps: &dyn Snapshots,
    maker: Maker<'_>,
    subject: &Subject,
    base: &str,
    now: DateTime<Utc>,
    extra: &[(String, String)],
) -> Result<Vec<(Snapshot, bool)>, offsite_storage::Error> {
    let spec = create_spec(maker, subject, snaps.region(), base, now, extra);
    let made = match subject {
        Subject::Volume(_) => vec![snaps.create(&spec).await?],
        Subject::Instance(i) => snaps.create_group(i, &spec).await?,
    };
    Ok(made.into_iter().map(|m| (m.snapshot, m.found)).collect())
}

/// What to ask a provider for when copying `source` into `region`: as [`create_spec`], the
/// name and token a rerun looks for, pinned by the tests.
pub fn copy_spec(source: &Snapshot, region: &str, kms_key: Option<&str>) -> CopySnapshot {
    let token = token(&["copy", &source.id, &source.region, region]);
    let mut t = source.tags.clone();
    t.insert(tags::TOKEN.into(), token.clone());
    t.insert(tags::SOURCE.into(), source.id.clone());
    t.insert(tags::SOURCE_REGION.into(), source.region.clone());
    t.insert(tags::VOLUME.into(), source.series());
    t.entry(tags::CREATED.into())
        .or_insert_with(|| tag_time(source.created));
    CopySnapshot {
        name: derived_name("offsite", &source.id, &token),
        token,
        tags: t,
        kms_key: kms_key.map(str::to_string),
        description: format!("offsite copy of {} from {}", source.id, source.region),
    }
}

/// Starts a copy of `source` into `dest`'s region (reusing what the token already made).
pub async fn start_copy(
    dest: &dyn Snapshots,
    source: &Snapshot,
    kms_key: Option<&str>,
) -> Result<Made, offsite_storage::Error> {
    dest.copy(source, &copy_spec(source, dest.region(), kms_key))
        .await
}

/// A progress observer for one wait, named by what is waited for (`region id`): the CLI draws
/// a bar on a terminal (cleared when the observer is dropped), and gives none otherwise.
pub type Bars<'a> = &'a (dyn Fn(&str) -> Progress + Send + Sync);

/// Waits for a snapshot, telling its percentage to an observer from `bars`.
pub async fn wait(
    snaps: &dyn Snapshots,
    s: &Snapshot,
    bars: Bars<'_>,
    timeout: Duration,
) -> Result<Snapshot, offsite_storage::Error> {
    let bar = bars(&format!("{} {}", s.region, s.id));
    let progress = |now: &Snapshot| {
        if let Some(b) = &bar {
            b.set_position(u64::from(now.progress.unwrap_or(0)));
        }
        tracing::info!(snapshot = %now.id, state = now.state.as_str(), progress = ?now.progress, "waiting");
    };
    let options = WaitOptions {
        interval: poll_interval(),
        timeout,
        progress: &progress,
    };
    snaps.wait(s, &options).await
}

/// Seconds between polls: `OFFSITE_SNAPSHOT_POLL_SECONDS` (tests use a fraction), else 5.
pub fn poll_interval() -> Duration {
    std::env::var("OFFSITE_SNAPSHOT_POLL_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s >= 0.0 && s.is_finite())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(5))
}

/// The snapshots of a policy's section in one region, and the adapter they were listed
/// through (prune deletes through it).
#[derive(Debug, Clone)]
pub struct RegionSnapshots {
    /// The region's adapter.
    pub snaps: Arc<dyn Snapshots>,
    /// The snapshots there that the section holds, as the provider describes them.
    pub snapshots: Vec<Snapshot>,
    /// The same, as judging and retention read them.
    pub listing: RegionListing,
}

impl RegionSnapshots {
    /// A region's snapshots, with the listing judging reads made of them.
    fn new(snaps: Arc<dyn Snapshots>, region: &str, copy: Option<usize>, v: Vec<Snapshot>) -> Self {
        RegionSnapshots {
            listing: RegionListing {
                region: region.to_string(),
                copy,
                snapshots: v.iter().map(listed).collect(),
            },
            snaps,
            snapshots: v,
        }
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.listing.region
    }
}

impl AsRef<RegionListing> for RegionSnapshots {
    fn as_ref(&self) -> &RegionListing {
        &self.listing
    }
}

/// A snapshot as judging and retention read it.
pub fn listed(s: &Snapshot) -> Listed {
    Listed {
        id: s.id.clone(),
        series: s.series(),
        created: s.created,
        state: match s.state {
            SnapshotState::Pending => State::Pending,
            SnapshotState::Completed => State::Completed,
            SnapshotState::Failed(_) => State::Failed,
        },
        source: s.tag(tags::SOURCE).map(str::to_string),
    }
}

/// Refuses a copy-to region that is where the snapshots are made already (a section without
/// `region` takes the provider's setting, such as `AWS_REGION`): the copies would sit in the
/// section's own region too, under two retentions.
pub fn same_region(home: &str, copy_to: &str) -> Result<()> {
    if home == copy_to {
        return Err(crate::error::usage(format!(
            "copy-to {copy_to:?} is the region the snapshots are made in (the provider's setting, as no region is given): remove it, or set region to the other one"
        )));
    }
    Ok(())
}

/// Lists a section's snapshots in its region and in every copy-to region: the first error
/// stops it (a region that cannot be read could hold the newest snapshot of a volume). A
/// section holds the snapshots carrying the policy's tag and its own name (none for a section
/// without one), so sections sharing a region never judge each other's.
pub async fn section_regions(policy: &Policy, section: &Section) -> Result<Vec<RegionSnapshots>> {
    let place = SnapshotPlace::of(section);
    let mut filter = vec![(tags::POLICY.to_string(), policy.name.clone())];
    if let Some(n) = &section.name {
        filter.push((tags::SECTION.to_string(), n.clone()));
    }
    let own = |mut v: Vec<Snapshot>| {
        v.retain(|s| s.tag(tags::SECTION) == section.name.as_deref());
        v
    };
    let home = open(&place).await?;
    let listed = home
        .list(&filter)
        .await
        .map_err(|e| anyhow::anyhow!("cannot list snapshots in {}: {e}", home.region()))?;
    let region = home.region().to_string();
    let mut out = vec![RegionSnapshots::new(home, &region, None, own(listed))];
    for (ci, c) in section.copy_to.iter().enumerate() {
        same_region(&region, &c.region)?;
        let there = open(&place.in_region(&c.region)).await?;
        let snapshots = own(there
            .list(&filter)
            .await
            .map_err(|e| anyhow::anyhow!("cannot list snapshots in {}: {e}", c.region))?);
        out.push(RegionSnapshots::new(there, &c.region, Some(ci), snapshots));
    }
    Ok(out)
}

/// The snapshots carrying the policy's tag that no section holds (`claimed`: the ids of every
/// section's [`section_regions`]), in every region the policy names, each once: those of a section
/// since renamed (or named), whose retention no longer reaches them. Each with its region.
pub async fn unclaimed(
    policy: &Policy,
    claimed: &std::collections::BTreeSet<String>,
) -> Result<Vec<(String, Snapshot)>> {
    let mut places: Vec<SnapshotPlace> = Vec::new();
    for s in &policy.snapshots {
        let home = SnapshotPlace::of(s);
        for t in
            std::iter::once(home.clone()).chain(s.copy_to.iter().map(|c| home.in_region(&c.region)))
        {
            if !places.contains(&t) {
                places.push(t);
            }
        }
    }
    let filter = [(tags::POLICY.to_string(), policy.name.clone())];
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for t in places {
        let snaps = open(&t).await?;
        let listed = snaps
            .list(&filter)
            .await
            .map_err(|e| anyhow::anyhow!("cannot list snapshots in {}: {e}", snaps.region()))?;
        for snap in listed {
            if !claimed.contains(&snap.id) && seen.insert(snap.id.clone()) {
                let region = if snap.region.is_empty() {
                    snaps.region().to_string()
                } else {
                    snap.region.clone()
                };
                out.push((region, snap));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_come_from_volume_ids() {
        assert_eq!(
            gcp_project("projects/acme-prod/zones/us-central1-a/disks/db").as_deref(),
            Some("acme-prod")
        );
        assert_eq!(gcp_project("vol-0abc"), None);
        assert_eq!(
            azure_resource_group(
                "/subscriptions/0000/resourceGroups/rg-app/providers/Microsoft.Compute/disks/db"
            )
            .as_deref(),
            Some("/subscriptions/0000/resourceGroups/rg-app")
        );
        assert_eq!(azure_resource_group("vol-0abc"), None);
    }

    /// The names and tokens of a scheduled run at 2026-11-26 02:00 UTC, one volume per
    /// provider, written out: a rerun finds what an earlier run made by them (EBS by the token
    /// tag, GCP and Azure by the name), so a change here would make every rerun after an upgrade
    /// snapshot again. Change these only with a migration that still finds the old names.
    #[test]
    fn snapshot_names_are_pinned_per_provider() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let base = default_token_base(now);
        assert_eq!(base, "2026112602");
        let cases = [
            (
                "vol-0abc1234def567890",
                "us-east-1",
                "b4bd4d34a89cc621c49a6f97",
                "offsite-vol-0abc1234def567890-0e3185976950",
                "527bdd5c4499636508da7e3b",
                "offsite-vol-0abc1234def567890-0a61ad37c0a2",
            ),
            (
                "projects/acme-prod/zones/us-central1-a/disks/db-data",
                "us",
                "4b632fb437dc8da6722a13fb",
                "offsite-db-data-c76e941edb8f",
                "e47e3876999192bd9b19647d",
                "offsite-db-data-85e918493e53",
            ),
            (
                "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-app/providers/Microsoft.Compute/disks/db-data",
                "eastus",
                "07263cdd39be58d1a5156a90",
                "offsite-db-data-1f0a780cdfa0",
                "918e3e069eebd3e4309e4bde",
                "offsite-db-data-0f5a8db7ad68",
            ),
        ];
        for (volume, region, token, name, section_token, section_name) in cases {
            let subject = Subject::Volume(volume.to_string());
            let maker = Maker {
                policy: "app",
                section: None,
            };
            let spec = create_spec(maker, &subject, region, &base, now, &[]);
            assert_eq!((spec.token.as_str(), spec.name.as_str()), (token, name));
            assert_eq!(spec.tags[tags::TOKEN], token);
            assert_eq!(spec.tags[tags::CREATED], "20261126t020000z");
            let maker = Maker {
                policy: "app",
                section: Some("daily"),
            };
            let spec = create_spec(maker, &subject, region, &base, now, &[]);
            assert_eq!(
                (spec.token.as_str(), spec.name.as_str()),
                (section_token, section_name)
            );
        }
        // An EBS copy to a second region (CopySnapshot's client token).
        let source = Snapshot {
            id: "snap-0123456789abcdef0".into(),
            region: "us-east-1".into(),
            volume: Some("vol-0abc1234def567890".into()),
            created: now,
            state: SnapshotState::Completed,
            progress: None,
            size_gib: None,
            tags: BTreeMap::new(),
            operation: None,
        };
        let spec = copy_spec(&source, "us-west-2", None);
        assert_eq!(
            (spec.token.as_str(), spec.name.as_str()),
            (
                "8ee40b26b1c06a64012abb6c",
                "offsite-snap-0123456789abcdef0-427b0534c4e7"
            )
        );
        assert_eq!(spec.tags[tags::VOLUME], "vol-0abc1234def567890");
    }

    #[test]
    fn tokens_are_stable_and_distinct() {
        let a = token(&["p", "us-east-1", "vol-1", "2026120702"]);
        assert_eq!(a, token(&["p", "us-east-1", "vol-1", "2026120702"]));
        assert_ne!(a, token(&["p", "us-east-1", "vol-2", "2026120702"]));
        assert_ne!(a, token(&["p", "us-east-1", "vol-1", "2026120703"]));
        // No ambiguity from joining: ("ab", "c") is not ("a", "bc").
        assert_ne!(token(&["ab", "c"]), token(&["a", "bc"]));
        assert_eq!(a.len(), 24);
    }

    #[test]
    fn rows_serialize_as_the_json_documents_always_did() {
        use serde_json::{json, to_value};
        let row = |region: Option<&str>, outcome| {
            to_value(DeleteRow {
                region: region.map(str::to_string),
                snapshot: "snap-1".into(),
                outcome,
            })
            .unwrap()
        };
        assert_eq!(
            row(Some("r"), Deletion::Deleted),
            json!({"region": "r", "snapshot": "snap-1", "ok": true})
        );
        assert_eq!(
            row(Some("r"), Deletion::AlreadyGone),
            json!({"region": "r", "snapshot": "snap-1", "ok": true, "detail": "already gone"})
        );
        assert_eq!(
            row(None, Deletion::Failed("no".into())),
            json!({"snapshot": "snap-1", "ok": false, "error": "no"})
        );
        let unreachable = CreateRow::Unreachable {
            provider: "aws",
            failure: Failure("down".into()),
        };
        assert_eq!(
            to_value(&unreachable).unwrap(),
            json!({"provider": "aws", "ok": false, "error": "down"})
        );
        let select = CreateRow::SelectFailed {
            select: "k=v".into(),
            region: "r".into(),
            failure: Failure("no".into()),
        };
        assert_eq!(
            to_value(&select).unwrap(),
            json!({"select": "k=v", "region": "r", "ok": false, "error": "no"})
        );
        let copy = CopyRow {
            region: "r2".into(),
            outcome: CopyOutcome::Failed("x".into()),
        };
        assert_eq!(
            to_value(&copy).unwrap(),
            json!({"region": "r2", "ok": false, "error": "x"})
        );
    }
}
