//! The [`Snapshots`] implementation over ARM.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use offsite_storage::{
    parse_tag_time, tags, CopySnapshot, CreateSnapshot, Error, ErrorKind, Made, Operation,
    RestoreVolume, Result, RetryPolicy, Snapshot, SnapshotCapabilities, SnapshotState, Snapshots,
    Volume,
};
use serde_json::json;

use crate::arm::{Arm, ArmDisk, ArmSnapshot, LroStatus};
use crate::config::AzureDiskConfig;

/// Azure managed-disk snapshots in one location.
#[derive(Clone)]
pub struct AzureDiskSnapshots {
    arm: Arm,
    /// The location new snapshots and copies go to; `None`: the disk's.
    location: Option<String>,
    /// `/subscriptions/S/resourceGroups/RG`: where snapshots are made and listed.
    resource_group: Option<String>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for AzureDiskSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureDiskSnapshots")
            .field("location", &self.location)
            .field("resource_group", &self.resource_group)
            .finish_non_exhaustive()
    }
}

/// ARM's normalised form of a location (`West US` and `westus` are one).
fn norm(l: &str) -> String {
    l.to_ascii_lowercase().replace(' ', "")
}

/// `/subscriptions/S/resourceGroups/RG` and the leaf name of an ARM id of `kind`
/// (`disks`, `snapshots`).
fn parse_id(id: &str, kind: &str, op: Operation) -> Result<(String, String)> {
    let parts: Vec<&str> = id.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        [s, sub, r, rg, p, ns, k, name]
            if s.eq_ignore_ascii_case("subscriptions")
                && r.eq_ignore_ascii_case("resourceGroups")
                && p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.Compute")
                && k.eq_ignore_ascii_case(kind)
                && !name.is_empty() =>
        {
            Ok((
                format!("/subscriptions/{sub}/resourceGroups/{rg}"),
                name.to_string(),
            ))
        }
        _ => Err(Error::new(
            ErrorKind::InvalidConfig,
            "azure-disk",
            op,
            format!("not a managed {} id", kind.trim_end_matches('s')),
        )
        .with_key(id)
        .with_hint(format!(
            "write /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.Compute/{kind}/NAME"
        ))),
    }
}

fn to_snapshot(s: &ArmSnapshot, operation: Option<String>) -> Snapshot {
    let p = &s.properties;
    let state = if let Some(e) = &p.copy_completion_error {
        SnapshotState::Failed(format!("{}: {}", e.error_code, e.error_message))
    } else {
        match p
            .provisioning_state
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("failed") => SnapshotState::Failed("ARM reports provisioningState Failed".into()),
            Some("canceled") => {
                SnapshotState::Failed("ARM reports provisioningState Canceled".into())
            }
            Some("succeeded") => match p.completion_percent {
                Some(pct) if pct < 100.0 => SnapshotState::Pending,
                _ => SnapshotState::Completed,
            },
            _ => SnapshotState::Pending,
        }
    };
    let started = p
        .time_created
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    Snapshot {
        id: s.id.clone(),
        region: norm(&s.location),
        volume: p
            .creation_data
            .as_ref()
            .filter(|c| c.create_option.eq_ignore_ascii_case("Copy"))
            .and_then(|c| c.source_resource_id.clone()),
        created: s
            .tags
            .get(tags::CREATED)
            .and_then(|t| parse_tag_time(t))
            .or(started)
            .unwrap_or_else(Utc::now),
        state: if operation.is_some() && !matches!(state, SnapshotState::Failed(_)) {
            SnapshotState::Pending
        } else {
            state
        },
        progress: p.completion_percent.map(|v| v.clamp(0.0, 100.0) as u8),
        size_gib: p.disk_size_gb,
        tags: s.tags.clone(),
        operation,
    }
}

fn to_volume(d: &ArmDisk) -> Volume {
    Volume {
        id: d.id.clone(),
        zone: d.zones.first().cloned().or_else(|| Some(norm(&d.location))),
        state: d
            .properties
            .disk_state
            .clone()
            .or_else(|| d.properties.provisioning_state.clone())
            .unwrap_or_default(),
        size_gib: d.properties.disk_size_gb,
    }
}

impl AzureDiskSnapshots {
    /// Opens ARM. `location`: where new snapshots and copies go (else the disk's);
    /// `resource_group`: where they are made and listed (else the disk's).
    pub fn open(
        location: Option<&str>,
        resource_group: Option<&str>,
    ) -> Result<AzureDiskSnapshots> {
        let cfg = AzureDiskConfig::new(location, resource_group, |k| std::env::var(k).ok());
        let arm = crate::client::build(&cfg)?;
        if let Some(rg) = &cfg.resource_group {
            parse_id(
                &format!("{rg}/providers/Microsoft.Compute/disks/x"),
                "disks",
                Operation::Open,
            )
            .map_err(|_| {
                Error::new(
                    ErrorKind::InvalidConfig,
                    "azure-disk",
                    Operation::Open,
                    format!("{rg:?} is not a resource group id"),
                )
                .with_hint("write /subscriptions/SUB/resourceGroups/RG")
            })?;
        }
        Ok(AzureDiskSnapshots {
            arm,
            location: cfg.location.as_deref().map(norm),
            resource_group: cfg.resource_group,
            retry: RetryPolicy::default(),
        })
    }

    fn scope(&self, op: Operation) -> Result<&str> {
        self.resource_group.as_deref().ok_or_else(|| {
            Error::new(ErrorKind::InvalidConfig, "azure-disk", op, "no resource group to look in")
                .with_hint("give --resource-group /subscriptions/SUB/resourceGroups/RG (resource-group in the policy), or name disks by their ARM id")
        })
    }

    async fn get_snapshot(&self, id: &str) -> Result<ArmSnapshot> {
        self.retry
            .run(|| async {
                self.arm
                    .get::<ArmSnapshot>(id)
                    .await
                    .map_err(|e| e.into_error(Operation::SnapshotList, id))
            })
            .await
    }

    /// PUT a snapshot unless the name already holds one (the token's earlier run).
    async fn put_snapshot(
        &self,
        id: &str,
        location: &str,
        create_option: &str,
        source: &str,
        tags: &BTreeMap<String, String>,
        op: Operation,
    ) -> Result<Made> {
        match self.get_snapshot(id).await {
            Ok(s) => return Ok(Made::found(to_snapshot(&s, None))),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        // Incremental: only incremental snapshots can be copied to another region (CopyStart),
        // and they store only what changed.
        let body = json!({
            "location": location,
            "tags": tags,
            "properties": {
                "creationData": { "createOption": create_option, "sourceResourceId": source },
                "incremental": true
            }
        });
        let (s, lro) = self
            .arm
            .put::<ArmSnapshot>(id, &body)
            .await
            .map_err(|e| e.into_error(op, source))?;
        Ok(Made::started(to_snapshot(&s, lro.map(|l| l.encode()))))
    }
}

#[async_trait]
impl Snapshots for AzureDiskSnapshots {
    fn provider(&self) -> &'static str {
        "azure-disk"
    }

    fn region(&self) -> &str {
        self.location.as_deref().unwrap_or("default")
    }

    fn capabilities(&self) -> SnapshotCapabilities {
        SnapshotCapabilities {
            copy: true,
            group: false,
        }
    }

    async fn create(&self, spec: &CreateSnapshot) -> Result<Made> {
        let (disk_rg, _) = parse_id(&spec.volume, "disks", Operation::SnapshotCreate)?;
        let disk: ArmDisk = self
            .retry
            .run(|| async {
                self.arm
                    .get::<ArmDisk>(&spec.volume)
                    .await
                    .map_err(|e| e.into_error(Operation::SnapshotCreate, &spec.volume))
            })
            .await?;
        let location = norm(&disk.location);
        if let Some(l) = &self.location {
            if *l != location {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    "azure-disk",
                    Operation::SnapshotCreate,
                    format!("the disk is in {location}, not {l}: a snapshot is made in its disk's region"),
                )
                .with_key(&spec.volume)
                .with_hint(format!("set the region to {location}, and copy-to {l} if a copy must live there")));
            }
        }
        let rg = self.resource_group.clone().unwrap_or(disk_rg);
        let id = format!("{rg}/providers/Microsoft.Compute/snapshots/{}", spec.name);
        self.put_snapshot(
            &id,
            &location,
            "Copy",
            &spec.volume,
            &spec.tags,
            Operation::SnapshotCreate,
        )
        .await
    }

    async fn get(&self, id: &str) -> Result<Snapshot> {
        parse_id(id, "snapshots", Operation::SnapshotList)?;
        Ok(to_snapshot(&self.get_snapshot(id).await?, None))
    }

    async fn poll(&self, snapshot: &Snapshot) -> Result<Snapshot> {
        if let Some(op) = &snapshot.operation {
            let lro = self
                .arm
                .decode(op)
                .map_err(|e| e.into_error(Operation::SnapshotWait, &snapshot.id))?;
            let (status, _) = self
                .retry
                .run(|| async {
                    self.arm
                        .poll(&lro)
                        .await
                        .map_err(|e| e.into_error(Operation::SnapshotWait, &snapshot.id))
                })
                .await?;
            match status {
                LroStatus::Running(pct) => {
                    let mut s = snapshot.clone();
                    s.progress = pct.map(|v| v.clamp(0.0, 100.0) as u8);
                    return Ok(s);
                }
                LroStatus::Failed(why) => {
                    let mut s = snapshot.clone();
                    s.operation = None;
                    s.state = SnapshotState::Failed(why);
                    return Ok(s);
                }
                LroStatus::Succeeded => {}
            }
        }
        self.get(&snapshot.id).await
    }

    async fn list(&self, tags: &[(String, String)]) -> Result<Vec<Snapshot>> {
        let rg = self.scope(Operation::SnapshotList)?;
        let path = format!("{rg}/providers/Microsoft.Compute/snapshots");
        let all: Vec<ArmSnapshot> = self
            .retry
            .run(|| async {
                self.arm
                    .list::<ArmSnapshot>(&path)
                    .await
                    .map_err(|e| e.into_error(Operation::SnapshotList, rg))
            })
            .await?;
        // ARM lists a resource group's snapshots without a tag filter; the location and the
        // tags are matched here.
        Ok(all
            .iter()
            .filter(|s| {
                self.location
                    .as_deref()
                    .is_none_or(|l| norm(&s.location) == l)
            })
            .filter(|s| tags.iter().all(|(k, v)| s.tags.get(k) == Some(v)))
            .map(|s| to_snapshot(s, None))
            .collect())
    }

    async fn volumes(&self, key: &str, value: &str) -> Result<Vec<Volume>> {
        let rg = self.scope(Operation::Volume)?;
        let path = format!("{rg}/providers/Microsoft.Compute/disks");
        let all: Vec<ArmDisk> = self
            .retry
            .run(|| async {
                self.arm
                    .list::<ArmDisk>(&path)
                    .await
                    .map_err(|e| e.into_error(Operation::Volume, rg))
            })
            .await?;
        Ok(all
            .iter()
            .filter(|d| d.tags.get(key).map(String::as_str) == Some(value))
            .filter(|d| {
                self.location
                    .as_deref()
                    .is_none_or(|l| norm(&d.location) == l)
            })
            .map(to_volume)
            .collect())
    }

    async fn volume(&self, id: &str) -> Result<Volume> {
        parse_id(id, "disks", Operation::Volume)?;
        let d: ArmDisk = self
            .retry
            .run(|| async {
                self.arm
                    .get::<ArmDisk>(id)
                    .await
                    .map_err(|e| e.into_error(Operation::Volume, id))
            })
            .await?;
        Ok(to_volume(&d))
    }

    async fn copy(&self, source: &Snapshot, spec: &CopySnapshot) -> Result<Made> {
        let Some(location) = &self.location else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "azure-disk",
                Operation::SnapshotCopy,
                "a copy needs a target region",
            )
            .with_key(&source.id));
        };
        let (source_rg, _) = parse_id(&source.id, "snapshots", Operation::SnapshotCopy)?;
        let rg = self.resource_group.clone().unwrap_or(source_rg);
        let id = format!("{rg}/providers/Microsoft.Compute/snapshots/{}", spec.name);
        self.put_snapshot(
            &id,
            location,
            "CopyStart",
            &source.id,
            &spec.tags,
            Operation::SnapshotCopy,
        )
        .await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        parse_id(id, "snapshots", Operation::SnapshotDelete)?;
        let (existed, lro, mut wait) = self
            .arm
            .delete(id)
            .await
            .map_err(|e| e.into_error(Operation::SnapshotDelete, id))?;
        if !existed {
            return Err(Error::new(
                ErrorKind::NotFound,
                "azure-disk",
                Operation::SnapshotDelete,
                "no such snapshot",
            )
            .with_key(id));
        }
        // A delete ARM accepted (202) is followed to its end, so that "deleted" means it: each
        // poll after the wait ARM asked for (Retry-After), else half a second; a poll that
        // fails transiently (5xx, a dropped connection) is retried a few times with backoff.
        if let Some(lro) = lro {
            let started = std::time::Instant::now();
            loop {
                if let Some(w) = wait {
                    tokio::time::sleep(w).await;
                }
                let (status, after) = self
                    .retry
                    .run(|| async {
                        self.arm
                            .poll(&lro)
                            .await
                            .map_err(|e| e.into_error(Operation::SnapshotDelete, id))
                    })
                    .await?;
                match status {
                    LroStatus::Succeeded => break,
                    LroStatus::Failed(why) => {
                        return Err(Error::new(
                            ErrorKind::Other,
                            "azure-disk",
                            Operation::SnapshotDelete,
                            why,
                        )
                        .with_key(id))
                    }
                    LroStatus::Running(_) if started.elapsed().as_secs() > 600 => {
                        return Err(Error::new(
                            ErrorKind::Transient,
                            "azure-disk",
                            Operation::SnapshotDelete,
                            "ARM accepted the delete but had not finished it after 10 minutes",
                        )
                        .with_key(id))
                    }
                    LroStatus::Running(_) => {
                        wait = Some(after.unwrap_or(std::time::Duration::from_millis(500)));
                    }
                }
            }
        }
        Ok(())
    }

    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreVolume) -> Result<Volume> {
        let (snap_rg, _) = parse_id(&snapshot.id, "snapshots", Operation::Volume)?;
        let rg = self.resource_group.clone().unwrap_or(snap_rg);
        let id = format!("{rg}/providers/Microsoft.Compute/disks/{}", spec.name);
        let mut body = json!({
            "location": snapshot.region,
            "tags": spec.tags,
            "properties": {
                "creationData": { "createOption": "Copy", "sourceResourceId": snapshot.id }
            }
        });
        if let Some(sku) = &spec.volume_type {
            body["sku"] = json!({ "name": sku });
        }
        if let Some(zone) = &spec.zone {
            body["zones"] = json!([zone]);
        }
        let (d, _) = self
            .arm
            .put::<ArmDisk>(&id, &body)
            .await
            .map_err(|e| e.into_error(Operation::Volume, &snapshot.id))?;
        Ok(to_volume(&d))
    }
}
