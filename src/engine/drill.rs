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

/// Restores the newest trusted complete archive at each destination to nowhere, and reports
/// every untrusted archive there beside it (untrusted, exit 4): a planted archive neither
/// stops the proof of the real ones nor goes unsaid.
pub async fn run(req: &DrillRequest<'_>) -> DrillReport {
    let mut copies = Vec::new();
    for (loc, name) in req.locations.iter().zip(&req.names) {
        for copy in drill_one(loc, req).await {
            copies.push(DrillCopy {
                destination: name.clone(),
                copy,
            });
        }
    }
    let count = |f: fn(Verdict) -> bool| copies.iter().filter(|c| f(c.copy.verdict)).count();
    DrillReport {
        proven: count(|v| v == Verdict::Ok),
        failed: count(Verdict::damaged),
        unchecked: count(|v| v == Verdict::Unchecked),
        copies,
    }
}

/// The drill at one destination: the newest trusted copy proven, then each untrusted one.
async fn drill_one(loc: &Opened, req: &DrillRequest<'_>) -> Vec<CopyReport> {
    let failed = |verdict, detail: String| CopyReport {
        url: loc.url().into(),
        archive: String::new(),
        depth: Depth::Drill,
        verdict,
        detail,
        restore: None,
    };
    let entries = match scan(loc, &req.options).await {
        Ok(entries) => entries,
        Err(e) => {
            return vec![failed(
                Verdict::Unchecked,
                format!("cannot list the destination: {e}"),
            )]
        }
    };
    let newest = entries
        .iter()
        .filter(|e| e.state == State::Complete)
        .max_by(|a, b| a.created().cmp(&b.created()).then(a.name.cmp(&b.name)));
    let mut out = vec![match newest {
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
    }];
    for e in entries.iter().filter(|e| e.state == State::Untrusted) {
        if let Err((verdict, detail)) = super::verify::committed(e) {
            out.push(CopyReport {
                archive: e.name.clone(),
                ..failed(verdict, detail)
            });
        }
    }
    out
}
