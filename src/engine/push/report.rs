//! The report stage: a line per destination, from the sends' reports and the plan.

use super::job::{Created, Job};
use super::plan::{Action, Step};
use super::{DestinationReport, PushReport, Status};
use crate::archive::Digest;
use crate::registry::key_prefix;

/// What the sends came to.
pub(super) struct Outcome {
    /// The plaintext digest, when known.
    pub(super) plaintext: Option<Digest>,
    /// The digest of the bytes sent, when any were.
    pub(super) sent: Option<Digest>,
    /// Whether an earlier run's spool was sent again.
    pub(super) resumed: bool,
    /// The report of every destination that was sent to (or tried), by index.
    pub(super) results: Vec<(usize, DestinationReport)>,
}

impl Outcome {
    /// Nothing sent: the plan decided every destination.
    pub(super) fn nothing_sent(plaintext: Option<Digest>) -> Outcome {
        Outcome {
            plaintext,
            sent: None,
            resumed: false,
            results: Vec::new(),
        }
    }
}

/// The push's report: each destination's send report, else what its step decided.
pub(super) fn report(
    job: &Job,
    created: Created,
    steps: Vec<Step>,
    outcome: Outcome,
) -> PushReport {
    let mut reports: Vec<Option<DestinationReport>> = vec![None; steps.len()];
    for (i, r) in outcome.results {
        reports[i] = Some(r);
    }
    let destinations: Vec<DestinationReport> = reports
        .into_iter()
        .zip(steps)
        .enumerate()
        .map(|(i, (sent, step))| sent.unwrap_or_else(|| unsent(job, i, step.action)))
        .collect();
    let stored = outcome.sent.or_else(|| {
        let mut kept = destinations
            .iter()
            .filter(|d| d.status == Status::AlreadyStored)
            .filter_map(|d| d.stored.clone());
        let first = kept.next()?;
        kept.all(|d| d == first).then_some(first)
    });
    PushReport {
        archive: job.name.clone(),
        created: created.at,
        created_from: created.from,
        encrypted: job.encrypted(),
        plaintext: outcome.plaintext,
        stored,
        resumed: outcome.resumed,
        destinations,
        kept_spool: None,
        swept: Vec::new(),
    }
}

/// The line of a destination nothing was sent to.
fn unsent(job: &Job, i: usize, action: Action) -> DestinationReport {
    let (dest, k) = (&job.destinations[i], &job.keys[i]);
    match action {
        Action::Keep(m) => DestinationReport {
            retain_until: m.retain_until,
            key: offsite_storage::join_key(key_prefix(&dest.location), &m.stored.key),
            provider_checksum: m.stored.provider_checksum.clone(),
            stored: Some(Digest {
                size: m.stored.size,
                sha256: m.stored.sha256.clone(),
            }),
            ..DestinationReport::new(dest, k, Status::AlreadyStored)
        },
        Action::Conflict(message) => DestinationReport::skipped(dest, k, Status::Refused, message),
        Action::Skip(status, message) => DestinationReport::skipped(dest, k, status, message),
        // Not started: the spool failed before (reported as the push's error).
        Action::Upload | Action::Repair | Action::Replace => {
            DestinationReport::failed(dest, k, "not sent: the spool was not completed".into())
        }
    }
}
