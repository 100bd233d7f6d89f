//! What a policy's destinations hold, as the policy planners read it: every destination
//! scanned (through the inventory cache), the latest proof records read, locked copies under
//! delete markers added, all in one `offsite_policies::inventory::Inventory`. `status` judges
//! it and `prune` plans over it.

use offsite_policies::inventory::{self, CopyState, Inventory, Lock, Proof};
use offsite_policies::policy::{Destination, Policy};
use offsite_storage::StorageExt;

use super::{scan, Entry, ReadOptions, Signers, State};
use crate::archive::{RecordedDepth, RecordedResult, VerifiedRecord};
use crate::registry::Opened;

/// What was read at one destination of a policy.
pub struct Scanned {
    /// The destination's entries, or why it could not be listed.
    pub entries: Result<Vec<Entry>, String>,
    /// Proofs read from verification records, by archive name.
    pub proofs: std::collections::BTreeMap<String, Proof>,
}

/// Reads every destination of `policy` (`locations` in its order) into an inventory.
pub async fn read_inventory(
    policy: &Policy,
    locations: &[Opened],
    options: &ReadOptions,
) -> (Inventory, Vec<Scanned>) {
    let mut inv = Inventory::new(
        policy
            .destinations
            .iter()
            .map(|d| inventory::Destination {
                name: d.name.clone(),
                kind: d.kind(),
                offsite: d.is_offsite(),
            })
            .collect(),
    );
    let reads: Vec<Scanned> = futures::future::join_all(
        locations
            .iter()
            .zip(&policy.destinations)
            .map(|(loc, d)| scan_destination(loc, d, options)),
    )
    .await;
    for (i, read) in reads.iter().enumerate() {
        let Ok(entries) = &read.entries else { continue };
        for e in entries {
            let state = match e.state {
                State::Complete => CopyState::Complete,
                State::WrongSize => CopyState::WrongSize,
                State::Incomplete => CopyState::Incomplete,
                State::MissingData => CopyState::MissingData,
                State::BadManifest => CopyState::BadManifest,
                State::Untrusted => CopyState::Untrusted,
                State::FutureDated => CopyState::FutureDated,
            };
            inv.add(
                &e.name,
                e.created(),
                inventory::Copy {
                    destination: i,
                    state,
                    size: e.object.as_ref().map(|o| o.size),
                    lock: e
                        .manifest
                        .as_ref()
                        .and_then(|m| m.retain_until)
                        .map(|until| Lock {
                            until: Some(until),
                            legal_hold: false,
                        }),
                    proof: read.proofs.get(&e.name).copied(),
                },
            );
        }
    }
    (inv, reads)
}

/// Scans one destination, reads its proofs, and adds the locked copies delete markers hide
/// (DESIGN.md "Locks") where it locks.
async fn scan_destination(loc: &Opened, d: &Destination, options: &ReadOptions) -> Scanned {
    let mut entries = match scan(loc, options).await {
        Ok(entries) => entries,
        Err(e) => {
            return Scanned {
                entries: Err(e.to_string()),
                proofs: Default::default(),
            }
        }
    };
    let proofs = read_proofs(loc, &entries, &options.judge.signers).await;
    if d.lock.is_some() {
        match crate::engine::hidden::hidden(loc, &options.judge).await {
            Ok(hidden) => {
                for h in hidden {
                    let live = entries
                        .iter()
                        .any(|e| e.name == h.entry.name && e.state == State::Complete);
                    if !live {
                        entries.retain(|e| e.name != h.entry.name);
                        tracing::info!(destination = %d.name, archive = %h.entry.name, "a locked copy under a delete marker counts");
                        entries.push(h.entry);
                    }
                }
            }
            Err(e) => tracing::warn!(destination = %d.name, error = %e, "cannot list versions"),
        }
    }
    Scanned {
        entries: Ok(entries),
        proofs,
    }
}

/// The verification records of a destination (one per proven copy): the latest passed proof
/// is what verify-every needs, every recorded failure is damage, and the restores drills
/// measured are what rto estimates from.
/// Where keys are trusted, a record counts only when a trusted key signed it for this copy
/// ([`Signers::record_counts`]): a bucket writer cannot forge a drill.
async fn read_proofs(
    loc: &Opened,
    entries: &[Entry],
    signers: &Signers,
) -> std::collections::BTreeMap<String, Proof> {
    let mut with_record: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.verified_key.is_some() && e.state == State::Complete)
        .collect();
    with_record.sort_by_key(|e| std::cmp::Reverse(e.created()));
    let mut out = std::collections::BTreeMap::new();
    for e in with_record {
        let key = e.verified_key.as_deref().expect("filtered");
        let Ok(bytes) = loc.store.get_bytes(key).await else {
            continue;
        };
        let Ok((r, signed)) = VerifiedRecord::parse(&bytes) else {
            continue;
        };
        let manifest = e
            .manifest
            .as_ref()
            .expect("a complete entry has a manifest");
        if !signers.record_counts(&e.name, manifest, &r, signed.as_ref()) {
            tracing::warn!(archive = %e.name, key, "a verification record not signed by a trusted key for this copy: ignored");
            continue;
        }
        let proof = Proof {
            at: r.time,
            deep: matches!(r.depth, RecordedDepth::Deep | RecordedDepth::Drill),
            passed: r.result == RecordedResult::Ok,
            restore: r.restore.and_then(|t| t.measured(r.time)),
        };
        // Every record is read: a failure recorded for an older archive is damage even when a
        // newer one passed.
        out.insert(e.name.clone(), proof);
    }
    out
}
