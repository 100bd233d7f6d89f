//! The [`Snapshots`] implementation over EC2.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    Filter, InstanceSpecification, ResourceType, Tag, TagSpecification, VolumeType,
};
use aws_sdk_ec2::Client;
use chrono::{DateTime, Utc};
use offsite_storage::{
    parse_tag_time, tags, CopySnapshot, CreateSnapshot, Error, ErrorKind, Made, Operation,
    RestoreVolume, Result, RetryPolicy, Snapshot, SnapshotCapabilities, SnapshotState, Snapshots,
    Volume,
};

use crate::config::EbsConfig;
use crate::error::map;

/// EBS snapshots in one region.
#[derive(Clone)]
pub struct EbsSnapshots {
    client: Client,
    region: String,
    retry: RetryPolicy,
    /// What the policy's tag found in this region, by client token: read once by the first
    /// create or copy of a run, so a run of N volumes makes one tag-filtered listing instead of
    /// one per volume (CreateSnapshot and CopySnapshot take no client token to do this for us).
    made: Arc<tokio::sync::Mutex<Option<Found>>>,
}

/// The snapshots one policy's tag found, by token.
struct Found {
    policy: String,
    by_token: BTreeMap<String, Vec<Snapshot>>,
}

impl std::fmt::Debug for EbsSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EbsSnapshots")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl EbsSnapshots {
    /// Opens EC2 in `region`, else the default chain's (`AWS_REGION`, the profile's).
    pub async fn open(region: Option<&str>) -> Result<EbsSnapshots> {
        let (client, region) = crate::client::build(&EbsConfig::new(region)?).await?;
        Ok(EbsSnapshots {
            client,
            region,
            retry: RetryPolicy::default(),
            made: Arc::default(),
        })
    }

    fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
        TagSpecification::builder()
            .resource_type(kind)
            .set_tags(Some(
                tags.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect(),
            ))
            .build()
    }

    fn snapshot(&self, s: &aws_sdk_ec2::types::Snapshot) -> Snapshot {
        let tags = tag_map(s.tags());
        build(
            &self.region,
            Parts {
                id: s.snapshot_id(),
                volume: s.volume_id(),
                started: s.start_time(),
                state: s.state().map(|x| x.as_str()),
                message: s.state_message(),
                progress: s.progress(),
                size: s.volume_size(),
            },
            tags,
        )
    }

    /// A describe call that answered without the id asked for.
    fn missing(&self, op: Operation, what: &str, id: &str) -> Error {
        Error::new(
            ErrorKind::NotFound,
            "ebs",
            op,
            format!("{}: no such {what}", self.region),
        )
        .with_key(id)
    }

    /// The snapshots in this region a token already made. With the policy's tag among `tags`,
    /// every snapshot of that policy here is listed once and kept for the run's later calls;
    /// without it, the token is looked for alone.
    async fn by_token(
        &self,
        token: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Vec<Snapshot>> {
        let Some(policy) = tags.get(tags::POLICY) else {
            return self
                .list(&[(tags::TOKEN.to_string(), token.to_string())])
                .await;
        };
        let mut made = self.made.lock().await;
        if made.as_ref().is_none_or(|m| m.policy != *policy) {
            let mut by_token: BTreeMap<String, Vec<Snapshot>> = BTreeMap::new();
            for s in self
                .list(&[(tags::POLICY.to_string(), policy.clone())])
                .await?
            {
                if let Some(t) = s.tag(tags::TOKEN) {
                    by_token.entry(t.to_string()).or_default().push(s);
                }
            }
            *made = Some(Found {
                policy: policy.clone(),
                by_token,
            });
        }
        Ok(made
            .as_ref()
            .and_then(|m| m.by_token.get(token).cloned())
            .unwrap_or_default())
    }
}

/// What [`build`] reads from the two SDK shapes of a snapshot.
struct Parts<'a> {
    id: Option<&'a str>,
    volume: Option<&'a str>,
    started: Option<&'a aws_sdk_ec2::primitives::DateTime>,
    state: Option<&'a str>,
    message: Option<&'a str>,
    progress: Option<&'a str>,
    size: Option<i32>,
}

fn build(region: &str, p: Parts<'_>, tags: BTreeMap<String, String>) -> Snapshot {
    let started = p
        .started
        .and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
    // A copy's StartTime is when it was copied; the engine's tag says when its data was taken.
    let created = tags
        .get(tags::CREATED)
        .and_then(|t| parse_tag_time(t))
        .or(started)
        .unwrap_or_else(Utc::now);
    let state = match p.state {
        Some("completed") => SnapshotState::Completed,
        Some("error") => SnapshotState::Failed(
            p.message
                .unwrap_or("EBS reported the snapshot in state error")
                .to_string(),
        ),
        _ => SnapshotState::Pending,
    };
    Snapshot {
        id: p.id.unwrap_or_default().to_string(),
        region: region.to_string(),
        volume: p
            .volume
            .filter(|v| *v != "vol-ffffffff")
            .map(str::to_string),
        created,
        state,
        progress: p
            .progress
            .and_then(|s| s.trim_end_matches('%').parse::<u8>().ok()),
        size_gib: p.size.and_then(|s| u64::try_from(s).ok()),
        tags,
        operation: None,
    }
}

fn volume(v: &aws_sdk_ec2::types::Volume) -> Volume {
    Volume {
        id: v.volume_id().unwrap_or_default().to_string(),
        zone: v.availability_zone().map(str::to_string),
        state: v
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        size_gib: v.size().and_then(|s| u64::try_from(s).ok()),
    }
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

#[async_trait]
impl Snapshots for EbsSnapshots {
    fn provider(&self) -> &'static str {
        "ebs"
    }

    fn region(&self) -> &str {
        &self.region
    }

    fn capabilities(&self) -> SnapshotCapabilities {
        SnapshotCapabilities {
            copy: true,
            group: true,
        }
    }

    async fn create(&self, spec: &CreateSnapshot) -> Result<Made> {
        // CreateSnapshot takes no client token: the token is a tag, looked for first.
        if let Some(s) = self
            .by_token(&spec.token, &spec.tags)
            .await?
            .into_iter()
            .find(|s| s.volume.as_deref() == Some(spec.volume.as_str()))
        {
            return Ok(Made::found(s));
        }
        let out = self
            .client
            .create_snapshot()
            .volume_id(&spec.volume)
            .description(&spec.description)
            .tag_specifications(Self::tag_spec(ResourceType::Snapshot, &spec.tags))
            .send()
            .await
            .map_err(|e| map(e, Operation::SnapshotCreate, &self.region, &spec.volume))?;
        Ok(Made::started(build(
            &self.region,
            Parts {
                id: out.snapshot_id(),
                volume: out.volume_id(),
                started: out.start_time(),
                state: out.state().map(|x| x.as_str()),
                message: out.state_message(),
                progress: out.progress(),
                size: out.volume_size(),
            },
            tag_map(out.tags()),
        )))
    }

    async fn create_group(&self, instance: &str, spec: &CreateSnapshot) -> Result<Vec<Made>> {
        let made = self.by_token(&spec.token, &spec.tags).await?;
        if !made.is_empty() {
            return Ok(made.into_iter().map(Made::found).collect());
        }
        // One set of tags for every volume: the volume tag would name the instance, so it is
        // left off and each snapshot's series is its own VolumeId.
        let mut tags = spec.tags.clone();
        tags.remove(tags::VOLUME);
        let out = self
            .client
            .create_snapshots()
            .instance_specification(
                InstanceSpecification::builder()
                    .instance_id(instance)
                    .exclude_boot_volume(false)
                    .build(),
            )
            .description(&spec.description)
            .tag_specifications(Self::tag_spec(ResourceType::Snapshot, &tags))
            .send()
            .await
            .map_err(|e| map(e, Operation::SnapshotCreate, &self.region, instance))?;
        Ok(out
            .snapshots()
            .iter()
            .map(|s| {
                Made::started(build(
                    &self.region,
                    Parts {
                        id: s.snapshot_id(),
                        volume: s.volume_id(),
                        started: s.start_time(),
                        state: s.state().map(|x| x.as_str()),
                        message: None,
                        progress: s.progress(),
                        size: s.volume_size(),
                    },
                    tag_map(s.tags()),
                ))
            })
            .collect())
    }

    async fn get(&self, id: &str) -> Result<Snapshot> {
        let out = self
            .retry
            .run(|| async {
                self.client
                    .describe_snapshots()
                    .snapshot_ids(id)
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::SnapshotList, &self.region, id))
            })
            .await?;
        out.snapshots()
            .first()
            .map(|s| self.snapshot(s))
            .ok_or_else(|| self.missing(Operation::SnapshotList, "snapshot", id))
    }

    async fn list(&self, tags: &[(String, String)]) -> Result<Vec<Snapshot>> {
        let filters: Vec<Filter> = tags
            .iter()
            .map(|(k, v)| Filter::builder().name(format!("tag:{k}")).values(v).build())
            .collect();
        // The SDK's paginator follows NextToken; a throttled page retries the whole listing
        // (the SDK's own retries are off: ours are the ones that run).
        let found = self
            .retry
            .run(|| async {
                self.client
                    .describe_snapshots()
                    .owner_ids("self")
                    .set_filters(Some(filters.clone()))
                    .max_results(1000)
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .map_err(|e| map(e, Operation::SnapshotList, &self.region, "snapshots"))
            })
            .await?;
        Ok(found.iter().map(|s| self.snapshot(s)).collect())
    }

    async fn volumes(&self, key: &str, value: &str) -> Result<Vec<Volume>> {
        let filter = Filter::builder()
            .name(format!("tag:{key}"))
            .values(value)
            .build();
        let found = self
            .retry
            .run(|| async {
                self.client
                    .describe_volumes()
                    .filters(filter.clone())
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .map_err(|e| {
                        map(
                            e,
                            Operation::Volume,
                            &self.region,
                            &format!("{key}={value}"),
                        )
                    })
            })
            .await?;
        Ok(found.iter().map(volume).collect())
    }

    async fn volume(&self, id: &str) -> Result<Volume> {
        let out = self
            .retry
            .run(|| async {
                self.client
                    .describe_volumes()
                    .volume_ids(id)
                    .send()
                    .await
                    .map_err(|e| map(e, Operation::Volume, &self.region, id))
            })
            .await?;
        out.volumes()
            .first()
            .map(volume)
            .ok_or_else(|| self.missing(Operation::Volume, "volume", id))
    }

    async fn copy(&self, source: &Snapshot, spec: &CopySnapshot) -> Result<Made> {
        if let Some(s) = self
            .by_token(&spec.token, &spec.tags)
            .await?
            .into_iter()
            .next()
        {
            return Ok(Made::found(s));
        }
        let out = self
            .client
            .copy_snapshot()
            .source_region(&source.region)
            .source_snapshot_id(&source.id)
            .description(&spec.description)
            .set_kms_key_id(spec.kms_key.clone())
            .set_encrypted(spec.kms_key.as_ref().map(|_| true))
            .tag_specifications(Self::tag_spec(ResourceType::Snapshot, &spec.tags))
            .send()
            .await
            .map_err(|e| map(e, Operation::SnapshotCopy, &self.region, &source.id))?;
        let id = out.snapshot_id().unwrap_or_default().to_string();
        // CopySnapshot answers with the id alone; the copy is read back for its state.
        match self.get(&id).await {
            Ok(s) => Ok(Made::started(s)),
            Err(e) if e.is_not_found() => Ok(Made::started(Snapshot {
                id,
                region: self.region.clone(),
                volume: source.volume.clone(),
                created: source.created,
                state: SnapshotState::Pending,
                progress: None,
                size_gib: source.size_gib,
                tags: spec.tags.clone(),
                operation: None,
            })),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.client
            .delete_snapshot()
            .snapshot_id(id)
            .send()
            .await
            .map_err(|e| map(e, Operation::SnapshotDelete, &self.region, id))?;
        Ok(())
    }

    async fn restore(&self, snapshot: &Snapshot, spec: &RestoreVolume) -> Result<Volume> {
        let Some(zone) = &spec.zone else {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "ebs",
                Operation::Volume,
                "an EBS volume lives in one availability zone",
            )
            .with_key(&snapshot.id)
            .with_hint(format!("give --zone, e.g. --zone {}a", self.region)));
        };
        let mut tags = spec.tags.clone();
        tags.insert("Name".into(), spec.name.clone());
        let out = self
            .client
            .create_volume()
            .availability_zone(zone)
            .snapshot_id(&snapshot.id)
            .set_volume_type(spec.volume_type.as_deref().map(VolumeType::from))
            .client_token(&spec.token)
            .tag_specifications(Self::tag_spec(ResourceType::Volume, &tags))
            .send()
            .await
            .map_err(|e| map(e, Operation::Volume, &self.region, &snapshot.id))?;
        Ok(Volume {
            id: out.volume_id().unwrap_or_default().to_string(),
            zone: out.availability_zone().map(str::to_string),
            state: out
                .state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            size_gib: out.size().and_then(|s| u64::try_from(s).ok()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'a>(state: &'a str, message: Option<&'a str>) -> Parts<'a> {
        Parts {
            id: Some("snap-1"),
            volume: Some("vol-ffffffff"),
            started: None,
            state: Some(state),
            message,
            progress: Some("42%"),
            size: Some(8),
        }
    }

    /// moto completes every snapshot at once, so the states EC2 reports on the way are read
    /// here: `error` with its StateMessage, `pending`, and a copy's placeholder volume id.
    #[test]
    fn states_and_the_tags_time_are_read_as_ec2_reports_them() {
        let mut t = BTreeMap::new();
        t.insert(tags::CREATED.to_string(), "20261126t020000z".to_string());
        let s = build(
            "us-west-2",
            parts("error", Some("KMS key is disabled")),
            t.clone(),
        );
        assert_eq!(s.state, SnapshotState::Failed("KMS key is disabled".into()));
        // A copy's VolumeId is EC2's placeholder: no volume; its data time is the tag's.
        assert_eq!(s.volume, None);
        assert_eq!(s.created.to_rfc3339(), "2026-11-26T02:00:00+00:00");
        assert_eq!((s.progress, s.size_gib), (Some(42), Some(8)));
        let s = build("us-west-2", parts("error", None), t.clone());
        assert!(matches!(s.state, SnapshotState::Failed(m) if m.contains("state error")));
        assert_eq!(
            build("us-west-2", parts("pending", None), t.clone()).state,
            SnapshotState::Pending
        );
        assert_eq!(
            build("us-west-2", parts("recoverable", None), t).state,
            SnapshotState::Pending
        );
    }
}
