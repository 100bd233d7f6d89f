//! The [`Snapshots`] implementation over Compute Engine.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use google_cloud_compute_v1::client::{Disks, Snapshots as SnapshotsClient};
use google_cloud_compute_v1::model;
use google_cloud_gax::paginator::ItemPaginator as _;
use offsite_storage::{
    parse_tag_time, tags, CreateSnapshot, Error, ErrorKind, Made, Operation, RestoreVolume, Result,
    RetryPolicy, Snapshot, SnapshotCapabilities, SnapshotState, Snapshots, Volume,
};

use crate::config::GceConfig;
use crate::error::{map, of_operation};

/// GCP persistent-disk snapshots stored in one location.
#[derive(Clone)]
pub struct GceSnapshots {
    snaps: SnapshotsClient,
    disks: Disks,
    /// The storage location new snapshots go to; `None`: the disk's region, GCP's default.
    location: Option<String>,
    /// The project listings and volume selection look in.
    project: Option<String>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for GceSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GceSnapshots")
            .field("location", &self.location)
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// A global snapshot's id: `projects/P/global/snapshots/NAME`.
fn snapshot_id(project: &str, name: &str) -> String {
    format!("projects/{project}/global/snapshots/{name}")
}

/// The project and name of `projects/P/global/snapshots/NAME` (a full URL too).
fn parse_snapshot(id: &str) -> Result<(String, String)> {
    let path = id.find("projects/").map_or(id, |at| &id[at..]);
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", p, "global", "snapshots", n] if !p.is_empty() && !n.is_empty() => {
            Ok((p.to_string(), n.to_string()))
        }
        _ => Err(Error::new(
            ErrorKind::InvalidConfig,
            "gce-disk",
            Operation::SnapshotList,
            "not a snapshot id",
        )
        .with_key(id)
        .with_hint("write projects/PROJECT/global/snapshots/NAME")),
    }
}

/// The project, zone and name of `projects/P/zones/Z/disks/D` (a full URL too).
fn parse_disk(id: &str) -> Result<(String, String, String)> {
    let path = id.find("projects/").map_or(id, |at| &id[at..]);
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", p, "zones", z, "disks", d]
            if !p.is_empty() && !z.is_empty() && !d.is_empty() =>
        {
            Ok((p.to_string(), z.to_string(), d.to_string()))
        }
        _ => Err(Error::new(
            ErrorKind::InvalidConfig,
            "gce-disk",
            Operation::SnapshotCreate,
            "not a persistent disk id",
        )
        .with_key(id)
        .with_hint(
            "write projects/PROJECT/zones/ZONE/disks/NAME (regional disks are not supported)",
        )),
    }
}

/// A path without the `https://www.googleapis.com/compute/v1/` in front.
fn short(url: &str) -> String {
    url.find("projects/")
        .map_or(url, |at| &url[at..])
        .to_string()
}

/// Label keys use `_` for the engine's `-` (filters on hyphenated keys are not reliable), and
/// values only lowercase letters, digits, `-` and `_`, at most 63 characters.
fn label_key(k: &str) -> String {
    k.replace('-', "_")
}

fn label_value(v: &str) -> String {
    v.chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect()
}

fn labels(tags: &BTreeMap<String, String>) -> Vec<(String, String)> {
    tags.iter()
        .map(|(k, v)| (label_key(k), label_value(v)))
        .collect()
}

/// A UUID (version 4 form) derived from a token: GCP's `requestId`.
fn request_id(token: &str) -> String {
    use sha2::Digest;
    let mut b: [u8; 16] = sha2::Sha256::digest(token.as_bytes())[..16]
        .try_into()
        .expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl GceSnapshots {
    /// Opens the clients. `location` is the storage location of new snapshots (`us`,
    /// `europe-west1`); `project` the one listings look in (else `GOOGLE_CLOUD_PROJECT`).
    pub async fn open(location: Option<&str>, project: Option<&str>) -> Result<GceSnapshots> {
        let cfg = GceConfig::new(location, project, |k| std::env::var(k).ok());
        let (snaps, disks) = crate::client::build(&cfg).await?;
        Ok(GceSnapshots {
            snaps,
            disks,
            location: cfg.location,
            project: cfg.project,
            retry: RetryPolicy::default(),
        })
    }

    fn project(&self, op: Operation) -> Result<&str> {
        self.project.as_deref().ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidConfig,
                "gce-disk",
                op,
                "no GCP project to look in",
            )
            .with_hint("give --project (project = \"...\" in the policy), name disks as projects/P/zones/Z/disks/D, or set GOOGLE_CLOUD_PROJECT")
        })
    }

    fn snapshot(&self, project: &str, s: &model::Snapshot) -> Snapshot {
        let mut tags: BTreeMap<String, String> = s
            .labels
            .iter()
            .map(|(k, v)| {
                let k = if k.starts_with("offsite_") {
                    k.replace('_', "-")
                } else {
                    k.clone()
                };
                (k, v.clone())
            })
            .collect();
        let volume = s.source_disk.as_deref().map(short);
        // The label holds a mangled path; the snapshot's own field names the disk exactly.
        if let (Some(v), true) = (&volume, tags.contains_key(tags::VOLUME)) {
            tags.insert(tags::VOLUME.into(), v.clone());
        }
        let started = s
            .creation_timestamp
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let state = match s.status.as_ref().and_then(|x| x.name()) {
            Some("READY") => SnapshotState::Completed,
            Some("FAILED") => {
                SnapshotState::Failed("Compute Engine reports the snapshot FAILED".into())
            }
            _ => SnapshotState::Pending,
        };
        Snapshot {
            id: snapshot_id(project, s.name.as_deref().unwrap_or_default()),
            region: s
                .storage_locations
                .first()
                .cloned()
                .or_else(|| self.location.clone())
                .unwrap_or_default(),
            volume,
            created: tags
                .get(tags::CREATED)
                .and_then(|t| parse_tag_time(t))
                .or(started)
                .unwrap_or_else(Utc::now),
            state,
            progress: None,
            size_gib: s.disk_size_gb.and_then(|g| u64::try_from(g).ok()),
            tags,
            operation: None,
        }
    }

    async fn get_named(&self, project: &str, name: &str) -> Result<Snapshot> {
        let id = snapshot_id(project, name);
        let s = self
            .retry
            .run(|| async {
                self.snaps
                    .get()
                    .set_project(project)
                    .set_snapshot(name)
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::SnapshotList, project, &id))
            })
            .await?;
        Ok(self.snapshot(project, &s))
    }
}

#[async_trait]
impl Snapshots for GceSnapshots {
    fn provider(&self) -> &'static str {
        "gce-disk"
    }

    fn region(&self) -> &str {
        self.location.as_deref().unwrap_or("default")
    }

    fn capabilities(&self) -> SnapshotCapabilities {
        SnapshotCapabilities::default()
    }

    async fn create(&self, spec: &CreateSnapshot) -> Result<Made> {
        let (project, zone, disk) = parse_disk(&spec.volume)?;
        // The name is the token's: a snapshot already there is this job's, made by a run
        // that died before it could say so.
        match self.get_named(&project, &spec.name).await {
            Ok(s) => return Ok(Made::found(s)),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let mut body = model::Snapshot::new()
            .set_name(spec.name.clone())
            .set_source_disk(format!("projects/{project}/zones/{zone}/disks/{disk}"))
            .set_labels(labels(&spec.tags))
            .set_description(spec.description.clone());
        if let Some(l) = &self.location {
            body = body.set_storage_locations([l.clone()]);
        }
        let op = self
            .snaps
            .insert()
            .set_project(&project)
            .set_request_id(request_id(&spec.token))
            .set_body(body)
            .send()
            .await;
        let op = match op {
            Ok(op) => op,
            Err(e) if e.http_status_code() == Some(409) => {
                return self.get_named(&project, &spec.name).await.map(Made::found)
            }
            Err(e) => return Err(map(e, Operation::SnapshotCreate, &project, &spec.volume)),
        };
        if let Some(e) = of_operation(&op, Operation::SnapshotCreate, &project, &spec.volume) {
            return Err(e);
        }
        let done = op.status == Some(model::operation::Status::Done);
        Ok(Made::started(Snapshot {
            id: snapshot_id(&project, &spec.name),
            region: self.location.clone().unwrap_or_default(),
            volume: Some(format!("projects/{project}/zones/{zone}/disks/{disk}")),
            created: spec
                .tags
                .get(tags::CREATED)
                .and_then(|t| parse_tag_time(t))
                .unwrap_or_else(Utc::now),
            state: SnapshotState::Pending,
            progress: op.progress.and_then(|p| u8::try_from(p).ok()),
            size_gib: None,
            tags: spec.tags.clone(),
            operation: if done { None } else { op.name.clone() },
        }))
    }

    async fn poll(&self, snapshot: &Snapshot) -> Result<Snapshot> {
        let (project, name) = parse_snapshot(&snapshot.id)?;
        if let Some(op_name) = &snapshot.operation {
            let op = self
                .retry
                .run(|| async {
                    self.snaps
                        .get_operation()
                        .set_project(&project)
                        .set_operation(op_name)
                        .send()
                        .await
                        .map_err(|e| map(e, Operation::SnapshotWait, &project, op_name))
                })
                .await?;
            if let Some(e) = of_operation(&op, Operation::SnapshotCreate, &project, &snapshot.id) {
                let mut failed = snapshot.clone();
                failed.operation = None;
                failed.state = SnapshotState::Failed(e.to_string());
                return Ok(failed);
            }
            if op.status != Some(model::operation::Status::Done) {
                let mut s = snapshot.clone();
                s.progress = op.progress.and_then(|p| u8::try_from(p).ok());
                return Ok(s);
            }
        }
        self.get_named(&project, &name).await
    }

    async fn get(&self, id: &str) -> Result<Snapshot> {
        let (project, name) = parse_snapshot(id)?;
        self.get_named(&project, &name).await
    }

    async fn list(&self, tags: &[(String, String)]) -> Result<Vec<Snapshot>> {
        let project = self.project(Operation::SnapshotList)?.to_string();
        let filter = tags
            .iter()
            .map(|(k, v)| format!("(labels.{} = \"{}\")", label_key(k), label_value(v)))
            .collect::<Vec<_>>()
            .join(" ");
        // The client's paginator follows pageToken; a throttled page retries the whole listing
        // (the retries are ours).
        let found = self
            .retry
            .run(|| async {
                let mut req = self
                    .snaps
                    .list()
                    .set_project(&project)
                    .set_max_results(500u32);
                if !filter.is_empty() {
                    req = req.set_filter(filter.clone());
                }
                let mut items = req.by_item();
                let mut found = Vec::new();
                while let Some(s) = items.next().await {
                    found.push(
                        s.map_err(|e| map(e, Operation::SnapshotList, &project, "snapshots"))?,
                    );
                }
                Ok(found)
            })
            .await?;
        let mut out: Vec<Snapshot> = found.iter().map(|s| self.snapshot(&project, s)).collect();
        // Where a storage location is given, the snapshots stored elsewhere are not its.
        if let Some(l) = &self.location {
            out.retain(|s| s.region.is_empty() || s.region == *l);
        }
        Ok(out)
    }

    async fn volumes(&self, key: &str, value: &str) -> Result<Vec<Volume>> {
        let project = self.project(Operation::Volume)?.to_string();
        let filter = format!("labels.{} = \"{}\"", label_key(key), label_value(value));
        let scoped = self
            .retry
            .run(|| async {
                let mut items = self
                    .disks
                    .aggregated_list()
                    .set_project(&project)
                    .set_filter(filter.clone())
                    .by_item();
                let mut found = Vec::new();
                while let Some(zone) = items.next().await {
                    found.push(zone.map_err(|e| {
                        map(e, Operation::Volume, &project, &format!("{key}={value}"))
                    })?);
                }
                Ok(found)
            })
            .await?;
        let mut out: Vec<Volume> = scoped
            .iter()
            .flat_map(|(_, zone)| zone.disks.iter().map(disk_volume))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn volume(&self, id: &str) -> Result<Volume> {
        let (project, zone, disk) = parse_disk(id)?;
        let d = self
            .retry
            .run(|| async {
                self.disks
                    .get()
                    .set_project(&project)
                    .set_zone(&zone)
                    .set_disk(&disk)
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::Volume, &project, id))
            })
            .await?;
        Ok(disk_volume(&d))
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let (project, name) = parse_snapshot(id)?;
        let op = self
            .snaps
            .delete()
            .set_project(&project)
            .set_snapshot(&name)
            .set_request_id(request_id(&format!("delete\n{id}")))
            .send()
            .await
            .map_err(|e| map(e, Operation::SnapshotDelete, &project, id))?;
        match of_operation(&op, Operation::SnapshotDelete, &project, id) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreVolume) -> Result<Volume> {
        let (project, name) = parse_snapshot(&snapshot.id)?;
        let Some(zone) = &spec.zone else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "gce-disk",
                Operation::Volume,
                "a persistent disk lives in one zone",
            )
            .with_key(&snapshot.id)
            .with_hint("give --zone, e.g. --zone us-central1-a"));
        };
        let mut disk = model::Disk::new()
            .set_name(spec.name.clone())
            .set_source_snapshot(snapshot_id(&project, &name))
            .set_labels(labels(&spec.tags));
        if let Some(t) = &spec.volume_type {
            disk = disk.set_type(format!("projects/{project}/zones/{zone}/diskTypes/{t}"));
        }
        let op = self
            .disks
            .insert()
            .set_project(&project)
            .set_zone(zone)
            .set_request_id(request_id(&spec.token))
            .set_body(disk)
            .send()
            .await
            .map_err(|e| map(e, Operation::Volume, &project, &snapshot.id))?;
        if let Some(e) = of_operation(&op, Operation::Volume, &project, &snapshot.id) {
            return Err(e);
        }
        Ok(Volume {
            id: format!("projects/{project}/zones/{zone}/disks/{}", spec.name),
            zone: Some(zone.clone()),
            state: "CREATING".into(),
            size_gib: snapshot.size_gib,
        })
    }
}

fn disk_volume(d: &model::Disk) -> Volume {
    let zone = d
        .zone
        .as_deref()
        .map(|z| z.rsplit('/').next().unwrap_or(z).to_string());
    Volume {
        id: d.self_link.as_deref().map(short).unwrap_or_else(|| {
            format!(
                "zones/{}/disks/{}",
                zone.as_deref().unwrap_or("-"),
                d.name.as_deref().unwrap_or_default()
            )
        }),
        zone,
        state: d
            .status
            .as_ref()
            .and_then(|s| s.name())
            .unwrap_or("UNKNOWN")
            .to_string(),
        size_gib: d.size_gb.and_then(|g| u64::try_from(g).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_labels() {
        assert_eq!(
            parse_snapshot("https://www.googleapis.com/compute/v1/projects/p/global/snapshots/s")
                .unwrap(),
            ("p".into(), "s".into())
        );
        assert!(parse_snapshot("snap-1").is_err());
        assert_eq!(
            parse_disk("projects/p/zones/us-central1-a/disks/db").unwrap(),
            ("p".into(), "us-central1-a".into(), "db".into())
        );
        assert!(parse_disk("projects/p/regions/r/disks/db").is_err());
        assert_eq!(label_value("App.Prod/DB"), "app_prod_db");
        assert_eq!(label_key("offsite-policy"), "offsite_policy");
        // A section's name (lowercase letters, digits, '-', '_') is a label value as it is, so
        // the section's filter and its local match agree.
        assert_eq!(label_key("offsite-section"), "offsite_section");
        assert_eq!(label_value("db-tier_2"), "db-tier_2");
        let id = request_id("t");
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_eq!(id, request_id("t"));
        assert_ne!(id, request_id("u"));
    }
}
