//! The restore drill behind the zero of 3-2-1-1-0: the newest complete archive at each of a
//! policy's destinations is restored to nowhere (downloaded, hashed, decrypted, hashed again)
//! and the proof recorded beside its manifest, where `status` reads it.

use std::sync::Arc;

use serde::Serialize;

use super::identity::Identities;
use super::inventory::{scan, ReadOptions, State};
use super::verify::{deep, CopyReport, DeepCheck, Depth, Recorder, Verdict};
use crate::registry::Opened;

/// What a drill proves.
pub struct DrillRequest<'a> {
    /// The policy's destinations, opened, in its order.
    pub locations: &'a [Opened],
    /// Their names in the policy, in the same order.
    pub names: Vec<String>,
    /// For encrypted archives.
    pub identities: Option<Arc<Identities>>,
    /// How inventories are read.
    pub options: ReadOptions,
    /// Signs the drill's records (the policy's `[signing] key-file`).
    pub key: Option<Arc<offsite_policies::signing::SigningKey>>,
}

/// The drill at one destination.
#[derive(Debug, Clone, Serialize)]
pub struct DrillCopy {
    /// The destination's name in the policy.
    pub destination: String,
    /// What restoring its newest archive found.
    #[serde(flatten)]
    pub copy: CopyReport,
}

/// What a drill found.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// One per destination, in the policy's order.
    pub copies: Vec<DrillCopy>,
    /// Destinations whose newest archive was proven.
    pub proven: usize,
    /// Destinations with nothing to restore or a damaged newest archive.
    pub failed: usize,
    /// Destinations that could not be read.
    pub unchecked: usize,
}

/// Restores the newest complete archive at each destination to nowhere; where a newer untrusted
/// archive is there, reports that one (untrusted, exit 4) instead.
pub async fn run(req: &DrillRequest<'_>) -> DrillReport {
    let mut copies = Vec::new();
    for (loc, name) in req.locations.iter().zip(&req.names) {
        copies.push(DrillCopy {
            destination: name.clone(),
            copy: drill_one(loc, req).await,
        });
    }
    let count = |f: fn(Verdict) -> bool| copies.iter().filter(|c| f(c.copy.verdict)).count();
    DrillReport {
        proven: count(|v| v == Verdict::Ok),
        failed: count(Verdict::damaged),
        unchecked: count(|v| v == Verdict::Unchecked),
        copies,
    }
}

async fn drill_one(loc: &Opened, req: &DrillRequest<'_>) -> CopyReport {
    let failed = |verdict, detail: String| CopyReport {
        url: loc.url().into(),
        archive: String::new(),
        depth: Depth::Drill,
        verdict,
        detail,
    };
    let entries = match scan(loc, &req.options).await {
        Ok(entries) => entries,
        Err(e) => {
            return failed(
                Verdict::Unchecked,
                format!("cannot list the destination: {e}"),
            )
        }
    };
    // A newer untrusted archive (planted) is the newest here: reported, not passed over.
    let newest = entries
        .iter()
        .filter(|e| matches!(e.state, State::Complete | State::Untrusted))
        .max_by(|a, b| a.created().cmp(&b.created()).then(a.name.cmp(&b.name)));
    match newest {
        None => failed(
            Verdict::Missing,
            "no complete archive here to restore".into(),
        ),
        Some(e) => {
            let recorder = Recorder {
                key: req.key.as_deref(),
                now: req.options.judge.clock.now,
            };
            deep(loc, e, req.identities.clone(), DeepCheck::Drill, recorder).await
        }
    }
}
