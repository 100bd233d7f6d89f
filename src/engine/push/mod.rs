//! The push engine, in stages a reader can follow:
//!
//! 1. **plan** ([`plan`]): what each destination already holds under the archive's name, and
//!    what to do there; every destination is decided before a byte moves.
//! 2. **spool** (`produce`): reuse a complete spool of an earlier run, or read the source once,
//!    hash it, encrypt it, hash the ciphertext and write the spool.
//! 3. **transfer** (`transfer`): one call per destination, the route chosen by the store's
//!    capabilities, each reading the spool as it grows.
//! 4. **commit** ([`commit`]): check each receipt against what was computed locally and write
//!    the manifest, as soon as that destination is done.
//! 5. **report**: a [`PushReport`] with a line per destination.
//!
//! [`unspooled`] is the `--no-spool` variant: the same plan, commit and report, with the
//! stream sent from memory instead of a spool.

pub mod commit;
pub mod plan;
mod produce;
mod transfer;
pub mod unspooled;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use offsite_policies::encryption::Recipient;
use offsite_storage::{Checksum, InFlightBudget};
use serde::Serialize;

pub use self::commit::Annotations;
use self::commit::{ArchiveFacts, Finished};
use self::plan::{Action, Target};
pub use self::produce::hash_source;
use self::transfer::{JournalHandle, Route, SpoolSource};
use super::spool::{self, Journal, Progress};
use crate::archive::{time_from_name, ArchiveKeys, CreatedFrom, Digest};
use crate::registry::{key_prefix, Opened};

/// Bytes of parts and chunks in memory at once, shared by every destination of a push: peak
/// memory stays flat whatever the fan-out (a part larger than this goes alone).
const IN_FLIGHT_BUDGET: u64 = 40 << 20;

/// What to push from.
pub enum Source {
    /// An opened file and its path.
    File(File, PathBuf),
    /// Standard input.
    Stdin,
}

/// One push.
pub struct PushRequest {
    /// The bytes.
    pub source: Source,
    /// The archive's name.
    pub name: String,
    /// age recipients; empty for an explicit `--no-encrypt` push.
    pub recipients: Vec<Recipient>,
    /// Where to.
    pub destinations: Vec<Opened>,
    /// Replace a different archive of the same name.
    pub overwrite: bool,
    /// A progress bar over source bytes, on a terminal.
    pub progress: crate::engine::progress::Progress,
    /// The policy's name and the job's metadata, for the manifests.
    pub annotations: Annotations,
    /// The plaintext's size and SHA-256 when the caller has already checked the source (`push
    /// --checksums`): used for the plan instead of hashing the source again, and a source that
    /// reads differently while it is encrypted fails the push before any copy is committed.
    pub expect_plaintext: Option<Digest>,
}

/// What happened at one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Written and committed now.
    Stored,
    /// The same archive (same plaintext SHA-256) was already there.
    AlreadyStored,
    /// A different archive of that name is there; not replaced.
    Refused,
    /// The copy could not be written; nothing that looks complete was left.
    Failed,
}

/// The report for one destination.
#[derive(Debug, Clone, Serialize)]
pub struct DestinationReport {
    /// The destination URL.
    pub url: String,
    /// What happened.
    pub status: Status,
    /// The data object's key.
    pub key: String,
    /// What went wrong, or why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The checksum the provider reports, when it computes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_checksum: Option<Checksum>,
    /// Size and SHA-256 of the bytes stored here (the copy already there, or the one sent now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored: Option<Digest>,
    /// For a resumed multipart upload: parts found already on the server, of all parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_parts: Option<(u32, u32)>,
    /// The copy's retention lock, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<DateTime<Utc>>,
}

impl DestinationReport {
    fn new(dest: &Opened, keys: &ArchiveKeys, status: Status) -> DestinationReport {
        DestinationReport {
            url: dest.url().to_string(),
            status,
            key: keys.object.clone(),
            message: None,
            provider_checksum: None,
            stored: None,
            resumed_parts: None,
            retain_until: None,
        }
    }

    fn failed(dest: &Opened, keys: &ArchiveKeys, message: String) -> DestinationReport {
        DestinationReport {
            message: Some(message),
            ..DestinationReport::new(dest, keys, Status::Failed)
        }
    }
}

/// The report for a whole push.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// The archive.
    pub archive: String,
    /// Its creation time.
    pub created: DateTime<Utc>,
    /// Where that came from.
    pub created_from: CreatedFrom,
    /// Whether it was encrypted.
    pub encrypted: bool,
    /// The plaintext digest (absent when reading the source failed).
    pub plaintext: Option<Digest>,
    /// The stored bytes' digest: the spool's when bytes were sent, else that of the copies
    /// already there (absent when they differ: each encryption gives other ciphertext).
    pub stored: Option<Digest>,
    /// Whether a complete spool from an earlier run was sent again instead of re-encrypting.
    pub resumed: bool,
    /// Per destination, in the order given.
    pub destinations: Vec<DestinationReport>,
}

impl PushReport {
    /// Destinations that hold the archive now.
    pub fn stored_count(&self) -> usize {
        self.destinations
            .iter()
            .filter(|d| matches!(d.status, Status::Stored | Status::AlreadyStored))
            .count()
    }
}

/// The time an archive was made: from its name, else the file's mtime, else now.
pub fn creation_time(name: &str, source: &Source) -> (DateTime<Utc>, CreatedFrom) {
    if let Some(t) = time_from_name(name) {
        return (t, CreatedFrom::Name);
    }
    if let Source::File(f, _) = source {
        if let Ok(m) = f.metadata().and_then(|m| m.modified()) {
            return (DateTime::<Utc>::from(m), CreatedFrom::Mtime);
        }
    }
    (Utc::now(), CreatedFrom::PushTime)
}

/// Runs one push. Per-destination failures are in the report; an `Err` means nothing could
/// be attempted (the source could not be read, the spool could not be written, another push
/// of the same archive to the same destinations is running).
pub async fn run(req: PushRequest) -> Result<PushReport> {
    let PushRequest {
        source,
        name,
        recipients,
        destinations,
        overwrite,
        progress: pb,
        annotations,
        expect_plaintext,
    } = req;
    let encrypted = !recipients.is_empty();
    let keys = plan::archive_keys(&destinations, &name, encrypted);
    let urls: Vec<String> = destinations.iter().map(|d| d.url().to_string()).collect();
    let work = spool::work_dir(&name, &urls);
    // One push of an archive to a set of destinations at a time on this machine: a second one
    // would discard the first one's spool and uploads under it.
    let _lock = spool::lock_work_dir(&work, &name)?;
    let recipient_strings = plan::sorted_recipients(&recipients);
    let fresh_time = creation_time(&name, &source);
    let stored_bound = stored_bound(&source, encrypted);
    let mut source = Some(source);

    // Plan, part 1: what is there already (read-only, all destinations at once).
    let holdings = plan::survey_all(&destinations, &keys).await;

    // Spool, part 1: a complete spool from an earlier run of this push is sent again if the
    // source is the same bytes and the recipients are the same.
    let mut plaintext: Option<Digest> = None;
    let mut reusable = None;
    if let Some(j) = Journal::load(&work) {
        let candidate = j.complete
            && j.encrypted == encrypted
            && j.recipients == recipient_strings
            && j.stored
                .as_ref()
                .is_some_and(|s| std::fs::metadata(&j.spool).is_ok_and(|m| m.len() == s.size));
        if candidate {
            let digest = match &expect_plaintext {
                Some(d) => d.clone(),
                None => {
                    let (digest, rewound) =
                        produce::hash_source(source.take().expect("source"), pb.clone()).await?;
                    source = rewound;
                    digest
                }
            };
            if Some(&digest) == j.plaintext.as_ref() {
                tracing::info!(spool = %j.spool.display(), "resuming from a complete spool");
                reusable = Some(j);
            } else {
                discard(&j, &work, &destinations, &keys).await;
                if source.is_none() {
                    anyhow::bail!(
                        "standard input differs from the interrupted push of {name:?}, whose spool was discarded; run the push again"
                    );
                }
                if let Some(pb) = &pb {
                    pb.set_position(0);
                }
            }
            plaintext = Some(digest);
        } else {
            discard(&j, &work, &destinations, &keys).await;
        }
    }

    // Plan, part 2: where a destination holds a manifest, only the plaintext digest tells the
    // same archive from a different one. A file is hashed first (and read again to encrypt);
    // standard input is spooled first, and nothing is sent until the plan is decided.
    let needs_digest = !overwrite && holdings.iter().any(|(_, h)| h.needs_digest());
    if plaintext.is_none() {
        plaintext = expect_plaintext.clone();
    }
    if needs_digest && plaintext.is_none() && matches!(source, Some(Source::File(..))) {
        let (digest, rewound) =
            produce::hash_source(source.take().expect("source"), pb.clone()).await?;
        source = rewound;
        if let Some(pb) = &pb {
            pb.set_position(0);
        }
        plaintext = Some(digest);
    }
    let gated = needs_digest && plaintext.is_none();

    // The creation time: the one the journal recorded when resuming (a stdin push keeps its
    // time), else from the name or the file. The lock is computed from it once, for the data
    // and the manifest alike.
    let (created, created_from) = match &reusable {
        Some(j) => (j.created, j.created_from),
        None => fresh_time,
    };
    let now = Utc::now();
    let retentions: Vec<_> = destinations
        .iter()
        .map(|d| d.options.retention_at(created, now))
        .collect();
    let targets = |actions: Vec<Action>| -> Vec<Target> {
        actions
            .into_iter()
            .zip(&retentions)
            .map(|(action, r)| Target {
                action,
                retention: *r,
            })
            .collect()
    };
    let mut decided: Option<Vec<Target>> = (!gated).then(|| {
        targets(plan::decide(
            &holdings,
            plaintext.as_ref(),
            &recipient_strings,
            overwrite,
        ))
    });

    if decided
        .as_ref()
        .is_some_and(|p| !p.iter().any(|t| t.action.uploads()))
    {
        // Nothing to send.
        let plan = decided.take().expect("decided");
        if let Some(j) = reusable.take() {
            if plan.iter().all(|t| matches!(t.action, Action::Keep(_))) {
                discard(&j, &work, &destinations, &keys).await;
            }
        }
        spool::release_work_dir(&work);
        return Ok(report(
            name,
            created,
            created_from,
            encrypted,
            plaintext,
            None,
            false,
            &destinations,
            &keys,
            plan,
            Vec::new(),
        ));
    }

    // Spool, part 2, and transfer.
    let is_resume = reusable.is_some();
    let mut journal = reusable.take().unwrap_or_else(|| Journal {
        format: 1,
        archive: name.clone(),
        spool: PathBuf::new(),
        complete: false,
        recipients: recipient_strings.clone(),
        encrypted,
        created,
        created_from,
        plaintext: None,
        stored: None,
        destinations: BTreeMap::new(),
    });
    let mut spool_file = None;
    if !is_resume {
        let path = work.join("data.spool");
        spool_file = Some(spool::create_spool(&path)?);
        journal.spool = path;
        journal.save(&work)?;
    }
    let (tx, rx) = spool::progress_channel(match (&journal.stored, is_resume) {
        (Some(s), true) => Progress::Done(s.size),
        _ => Progress::Writing(0),
    });
    let tx = Arc::new(tx);
    // The digests, once the spool is complete: each destination commits as soon as its own
    // transfer is done, without waiting for the slower ones.
    let (digests_tx, digests_rx) =
        tokio::sync::watch::channel(match (&journal.plaintext, &journal.stored, is_resume) {
            (Some(p), Some(s), true) => Some((p.clone(), s.clone())),
            _ => None,
        });
    let shared = JournalHandle {
        journal: Arc::new(std::sync::Mutex::new(journal.clone())),
        work: work.clone(),
    };
    let producer = async {
        if is_resume {
            return Ok((
                journal.plaintext.clone().expect("complete"),
                journal.stored.clone().expect("complete"),
            ));
        }
        let file = spool_file.take().expect("spool file");
        let mut res = produce::produce(
            source.take().expect("source"),
            recipients.clone(),
            file,
            tx.clone(),
            pb.clone(),
        )
        .await;
        if let (Ok((p, _)), Some(want)) = (&res, &expect_plaintext) {
            if p != want {
                res = Err(anyhow::anyhow!(
                    "the source changed while it was pushed: it was checked as {} bytes with SHA-256 {}, then read as {} bytes with SHA-256 {}; nothing was committed; push again once the backup job has finished writing it",
                    want.size, want.sha256, p.size, p.sha256
                ));
            }
        }
        match &res {
            Ok((p, s)) => {
                // Recorded before anyone is told: a kill from here on can resume.
                shared.mark_complete(p, s);
                digests_tx.send_replace(Some((p.clone(), s.clone())));
                tx.send_replace(Progress::Done(s.size));
            }
            Err(e) => {
                tx.send_replace(Progress::Failed(format!("{e:#}")));
            }
        }
        res
    };
    let base = Arc::new((
        name.clone(),
        created,
        created_from,
        recipients.clone(),
        annotations,
    ));
    let budget = InFlightBudget::new(IN_FLIGHT_BUDGET);
    let start = |plan: &[Target]| {
        let mut transfers = Vec::new();
        let mut linked = false;
        for (i, target) in plan.iter().enumerate() {
            if !target.action.uploads() {
                continue;
            }
            let dest = destinations[i].clone();
            let keys_i = keys[i].clone();
            let action = target.action.clone();
            let retention = target.retention;
            // The first local destination on the spool's file system takes the spool by hard
            // link: the bytes are written once, and a full destination disk fails only itself.
            // Only one: hard-linked copies would be one file, not two copies.
            let link = match transfer::local_dir(&dest, &keys_i.object) {
                Ok(Some(dir)) if !linked && transfer::same_device(&dir, &work) => {
                    linked = true;
                    Ok(true)
                }
                Ok(_) => Ok(false),
                Err(e) => Err(format!("{e:#}")),
            };
            let source = SpoolSource {
                path: journal.spool.clone(),
                progress: rx.clone(),
                journal: shared.clone(),
                prior: journal
                    .destinations
                    .get(dest.url())
                    .and_then(|d| d.upload.clone()),
                budget: budget.clone(),
            };
            let size_hint = journal.stored.as_ref().map(|s| s.size).or(stored_bound);
            let options = plan::put_options(&dest, retention, size_hint);
            let mut digests_rx = digests_rx.clone();
            let base = base.clone();
            transfers.push(async move {
                let link = match link {
                    Ok(l) => l,
                    Err(e) => return (i, DestinationReport::failed(&dest, &keys_i, e)),
                };
                let action = plan::prepare(&dest, &keys_i, action).await;
                if let Action::Skip(status, message) = action {
                    let r = DestinationReport {
                        status,
                        message: Some(message),
                        ..DestinationReport::new(&dest, &keys_i, status)
                    };
                    return (i, r);
                }
                let route = Route::for_destination(&dest, link);
                let sent = transfer::transfer(&dest, &keys_i.object, route, source, options).await;
                let report = match sent {
                    Err(e) => DestinationReport::failed(&dest, &keys_i, format!("{e:#}")),
                    Ok(sent) => match wait_digests(&mut digests_rx).await {
                        Err(e) => DestinationReport::failed(&dest, &keys_i, format!("{e:#}")),
                        Ok((plaintext, stored)) => {
                            let (name, created, created_from, recipients, annotations) = &*base;
                            let facts = ArchiveFacts {
                                name: name.clone(),
                                created: *created,
                                created_from: *created_from,
                                recipients: recipients.clone(),
                                plaintext,
                                stored,
                                annotations: annotations.clone(),
                            };
                            let done = Finished {
                                dest: &dest,
                                keys: &keys_i,
                                receipt: sent.receipt,
                                computed: sent.computed,
                                retention,
                            };
                            let mut r = commit::commit(&facts, done).await;
                            r.resumed_parts = sent.resumed_parts;
                            r
                        }
                    },
                };
                (i, report)
            });
        }
        transfers
    };

    let (produced, plan, results) = match decided.take() {
        Some(plan) => {
            let transfers = start(&plan);
            let (produced, results) =
                futures::join!(producer, futures::future::join_all(transfers));
            (produced, plan, results)
        }
        None => {
            // Gated: the spool first, then the decision, then the transfers.
            let produced = producer.await;
            let plan = targets(plan::decide(
                &holdings,
                produced.as_ref().ok().map(|(p, _)| p),
                &recipient_strings,
                overwrite,
            ));
            let results = match &produced {
                Ok(_) => futures::future::join_all(start(&plan)).await,
                Err(_) => Vec::new(),
            };
            (produced, plan, results)
        }
    };
    let mut journal = shared.journal.lock().expect("journal lock").clone();
    let (plain, stored) = match produced {
        Ok(p) => p,
        Err(e) => {
            // An incomplete spool cannot be continued: drop it; the transfers that read it
            // aborted themselves.
            let _ = std::fs::remove_file(&journal.spool);
            let _ = std::fs::remove_file(Journal::path(&work));
            return Err(e);
        }
    };
    journal.complete = true;
    journal.plaintext = Some(plain.clone());
    journal.stored = Some(stored.clone());
    for (i, r) in &results {
        let entry = journal.destinations.entry(urls[*i].clone()).or_default();
        entry.state = if r.status == Status::Stored {
            "stored"
        } else {
            "failed"
        }
        .into();
        if r.status == Status::Stored {
            entry.upload = None;
        }
    }
    let sent_nothing = results.is_empty();
    let report = report(
        name,
        created,
        created_from,
        encrypted,
        Some(plain),
        Some(stored),
        is_resume,
        &destinations,
        &keys,
        plan,
        results,
    );
    if sent_nothing
        || report
            .destinations
            .iter()
            .all(|r| r.status != Status::Failed)
    {
        // Every copy is committed, or (gated) none was wanted: the spool has no further use.
        let _ = std::fs::remove_file(&journal.spool);
        let _ = std::fs::remove_file(Journal::path(&work));
    } else if let Err(e) = journal.save(&work) {
        // Keep the spool and its journal: a rerun sends the same ciphertext again.
        tracing::warn!(error = %e, "could not record the push journal; a rerun will re-encrypt");
    }
    spool::release_work_dir(&work);
    Ok(report)
}

/// An upper bound of the stored size, so that multipart part sizes are chosen for the
/// ciphertext, not the plaintext: age adds 16 bytes per 64 KiB chunk and a header.
fn stored_bound(source: &Source, encrypted: bool) -> Option<u64> {
    match source {
        Source::File(f, _) => f.metadata().ok().map(|m| {
            let n = m.len();
            if encrypted {
                n + (n / 65_536 + 1) * 16 + (64 << 10)
            } else {
                n
            }
        }),
        Source::Stdin => None,
    }
}

/// The report stage: a line per destination, from the transfers' reports and the plan.
#[allow(clippy::too_many_arguments)]
fn report(
    archive: String,
    created: DateTime<Utc>,
    created_from: CreatedFrom,
    encrypted: bool,
    plaintext: Option<Digest>,
    spooled: Option<Digest>,
    resumed: bool,
    destinations: &[Opened],
    keys: &[ArchiveKeys],
    plan: Vec<Target>,
    results: Vec<(usize, DestinationReport)>,
) -> PushReport {
    let mut reports: Vec<Option<DestinationReport>> = vec![None; plan.len()];
    for (i, r) in results {
        reports[i] = Some(r);
    }
    for (i, target) in plan.into_iter().enumerate() {
        if reports[i].is_some() {
            continue;
        }
        let (dest, k) = (&destinations[i], &keys[i]);
        reports[i] = Some(match target.action {
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
            Action::Skip(status, message) => DestinationReport {
                message: Some(message),
                ..DestinationReport::new(dest, k, status)
            },
            // Not started: the spool failed before (reported as the push's error).
            _ => DestinationReport::failed(dest, k, "not sent: the spool was not completed".into()),
        });
    }
    let destinations: Vec<DestinationReport> = reports
        .into_iter()
        .map(|r| r.expect("every destination reported"))
        .collect();
    let stored = spooled.or_else(|| {
        let mut kept = destinations
            .iter()
            .filter(|d| d.status == Status::AlreadyStored)
            .filter_map(|d| d.stored.clone());
        let first = kept.next()?;
        kept.all(|d| d == first).then_some(first)
    });
    PushReport {
        archive,
        created,
        created_from,
        encrypted,
        plaintext,
        stored,
        resumed,
        destinations,
    }
}

/// Waits for the spool's digests.
async fn wait_digests(
    rx: &mut tokio::sync::watch::Receiver<Option<(Digest, Digest)>>,
) -> Result<(Digest, Digest)> {
    loop {
        if let Some(d) = rx.borrow_and_update().clone() {
            return Ok(d);
        }
        if rx.changed().await.is_err() {
            anyhow::bail!("the spool was not completed");
        }
    }
}

/// Removes an unusable spool and its journal, and aborts the uploads it recorded (their parts
/// hold ciphertext that will never be sent again, and the provider bills for them).
async fn discard(
    j: &Journal,
    work: &std::path::Path,
    destinations: &[Opened],
    keys: &[ArchiveKeys],
) {
    for (url, d) in &j.destinations {
        let Some(record) = d.upload.clone() else {
            continue;
        };
        if let Some(i) = destinations.iter().position(|x| x.url() == url) {
            transfer::abort_recorded(&destinations[i], &keys[i].object, record).await;
        }
    }
    if j.spool.starts_with(work) {
        let _ = std::fs::remove_file(&j.spool);
    }
    let _ = std::fs::remove_file(Journal::path(work));
}
