//! The send stage of a spooled push: the spool is written once (or was, by an earlier run) and
//! every destination reads it as it grows, each in its own [`Spool::send_one`]: prepare, carry
//! the bytes by the route its store allows, wait for the spool's digests, commit.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use offsite_storage::InFlightBudget;
use tokio::sync::watch;

use super::job::{Created, Job, WorkDir};
use super::journal::JournalHandle;
use super::plan::{self, Action, Plan, Step, Survey};
use super::resume::{Fresh, SpoolState};
use super::transfer::{self, Route, SpoolSource};
use super::{contest, produce, DestinationReport};
use crate::archive::Digest;
use crate::engine::commit::Finished;
use crate::engine::spool::{self, Progress, ProgressTx};

/// Bytes of parts and chunks in memory at once, shared by every destination of a push: peak
/// memory stays flat whatever the fan-out (a part larger than this goes alone).
const IN_FLIGHT_BUDGET: u64 = 40 << 20;

/// The plaintext's and the spool's digests.
pub(super) type Digests = (Digest, Digest);

/// The spool as every destination reads it.
pub(super) struct Spool {
    /// The journal beside it.
    pub(super) journal: JournalHandle,
    /// Whether it is an earlier run's, sent again.
    pub(super) resumed: bool,
    path: PathBuf,
    work: PathBuf,
    progress: watch::Receiver<Progress>,
    digests: watch::Receiver<Option<Digests>>,
    size_hint: Option<u64>,
    budget: InFlightBudget,
}

/// What the send stage came to.
pub(super) struct Sent {
    /// The spool's digests, or why it was not completed (then nothing was committed).
    pub(super) digests: Result<Digests>,
    /// The plan, as decided (for a gated push, after spooling).
    pub(super) steps: Vec<Step>,
    /// The report of each destination sent to.
    pub(super) results: Vec<(usize, DestinationReport)>,
}

/// What writes the spool.
pub(super) enum Producer {
    /// Nothing: an earlier run wrote it whole.
    Written(Digests),
    /// The source, read now into the spool.
    Writing(Box<Writing>),
}

/// A spool being written, and whom to tell.
pub(super) struct Writing {
    fresh: Fresh,
    file: std::fs::File,
    progress: Arc<ProgressTx>,
    digests: watch::Sender<Option<Digests>>,
}

impl Spool {
    /// The spool of this push: the earlier run's, or a new file in the work directory with a
    /// journal that says where it is.
    pub(super) fn open(
        job: &Job,
        work: &WorkDir,
        state: SpoolState,
        created: Created,
    ) -> Result<(Spool, Producer)> {
        let (journal, producer, progress, digests) = match state {
            SpoolState::Reused(r) => {
                let digests = (r.plaintext, r.stored);
                // Complete from the start: the readers need no producer to tell them more.
                let (_, progress) = spool::progress_channel(Progress::Done(digests.1.size));
                let (_, rx) = watch::channel(Some(digests.clone()));
                let journal = JournalHandle::reused(r.journal, work.path());
                (journal, Producer::Written(digests), progress, rx)
            }
            SpoolState::Fresh(fresh) => {
                let path = work.path().join("data.spool");
                let file = spool::create_spool(&path)?;
                let journal = JournalHandle::fresh(job, created, &path, work.path())?;
                let (tx, progress) = spool::progress_channel(Progress::Writing(0));
                let (digests, rx) = watch::channel(None);
                let writing = Writing {
                    fresh,
                    file,
                    progress: Arc::new(tx),
                    digests,
                };
                (journal, Producer::Writing(Box::new(writing)), progress, rx)
            }
        };
        let resumed = matches!(producer, Producer::Written(_));
        let size_hint = match &producer {
            Producer::Written((_, stored)) => Some(stored.size),
            Producer::Writing(_) => job.stored_bound,
        };
        let spool = Spool {
            path: journal.spool(),
            work: work.path().to_path_buf(),
            journal,
            resumed,
            progress,
            digests,
            size_hint,
            budget: InFlightBudget::new(IN_FLIGHT_BUDGET),
        };
        Ok((spool, producer))
    }

    /// Each uploading step's route to bytes: whether it takes the spool by hard link. The first
    /// local destination on the spool's file system does: the bytes are written once, and a
    /// full destination disk fails only itself. Only one: hard-linked copies would be one file,
    /// not two copies.
    pub(super) fn links(&self, job: &Job, steps: &[Step]) -> Vec<(usize, Result<bool, String>)> {
        let mut linked = false;
        let mut links = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if !step.action.uploads() {
                continue;
            }
            let link = match transfer::local_dir(&job.destinations[i], &job.keys[i].object) {
                Ok(Some(dir)) if !linked && transfer::same_device(&dir, &self.work) => {
                    linked = true;
                    Ok(true)
                }
                Ok(_) => Ok(false),
                Err(e) => Err(format!("{e:#}")),
            };
            links.push((i, link));
        }
        links
    }

    /// Writes the spool and sends it: decided, at once to every destination as the spool
    /// grows; gated, once the spool is complete and the plan decided on its digest.
    pub(super) async fn send(
        &self,
        job: &Job,
        survey: &Survey,
        created: Created,
        producer: Producer,
        plan: Plan,
    ) -> Sent {
        match plan {
            Plan::Decided(steps) => {
                let (digests, results) = futures::join!(
                    producer.run(job, &self.journal),
                    self.send_all(job, created, &steps)
                );
                Sent {
                    digests,
                    steps,
                    results,
                }
            }
            Plan::Gated => {
                let digests = producer.run(job, &self.journal).await;
                let steps = job.steps(survey, created, digests.as_ref().ok().map(|(p, _)| p));
                let results = match &digests {
                    Ok(_) => self.send_all(job, created, &steps).await,
                    Err(_) => Vec::new(),
                };
                Sent {
                    digests,
                    steps,
                    results,
                }
            }
        }
    }

    /// Every uploading step's send, to run at once.
    async fn send_all(
        &self,
        job: &Job,
        created: Created,
        steps: &[Step],
    ) -> Vec<(usize, DestinationReport)> {
        let sends =
            self.links(job, steps)
                .into_iter()
                .map(|(i, link)| async move {
                    (i, self.send_one(job, created, i, &steps[i], link).await)
                });
        futures::future::join_all(sends).await
    }

    /// One destination: prepare, transfer, and commit once the spool's digests are known.
    async fn send_one(
        &self,
        job: &Job,
        created: Created,
        i: usize,
        step: &Step,
        link: Result<bool, String>,
    ) -> DestinationReport {
        let (dest, keys) = (&job.destinations[i], &job.keys[i]);
        let link = match link {
            Ok(l) => l,
            Err(e) => return DestinationReport::failed(dest, keys, e),
        };
        if let Action::Skip(status, message) = plan::prepare(dest, keys, step.action.clone()).await
        {
            return DestinationReport::skipped(dest, keys, status, message);
        }
        let source = self.source_for(dest);
        // A new archive's data and manifest are written create-only (see `contest`); a repair
        // writes over the data that is there, damaged, under the manifest it keeps.
        let create_only = step.action == Action::Upload;
        let options = plan::put_options(dest, step.retention, self.size_hint, create_only);
        let route = Route::for_destination(dest, link);
        // Whether the data was written over an object there (`--overwrite`, or an upload that
        // never committed): its commit then reads the data back (see `commit::replaced`).
        let mut overwrote = step.action == Action::Replace;
        let sent = match transfer::transfer(dest, &keys.object, route, source, options).await {
            Ok(sent) => sent,
            Err(e) if create_only && contest::already_exists(&e) => {
                overwrote = true;
                match self.contested(job, i, step, link).await {
                    Ok(sent) => sent,
                    Err(report) => return *report,
                }
            }
            Err(e) => return DestinationReport::failed(dest, keys, format!("{e:#}")),
        };
        // The provider holds the whole data object now: the push's time for this copy.
        let took = job.elapsed();
        let (plaintext, stored) = match wait_digests(self.digests.clone()).await {
            Ok(d) => d,
            Err(e) => return DestinationReport::failed(dest, keys, format!("{e:#}")),
        };
        let facts = job.facts(created, plaintext, stored);
        let done = Finished {
            dest,
            keys,
            receipt: sent.receipt,
            computed: sent.computed,
            retention: step.retention,
            // `--overwrite` removed the old manifest first: its new one is created only where
            // no other push's is, so two overwrites at once cannot both commit.
            create_only: matches!(step.action, Action::Upload | Action::Replace),
            overwrote,
            took: Some(took),
        };
        let mut r = super::commit_one(&facts, done).await;
        r.resumed_parts = sent.resumed_parts;
        r
    }

    /// What `dest`'s transfer reads: the spool as it grows, and what an earlier run recorded.
    fn source_for(&self, dest: &crate::registry::Opened) -> SpoolSource {
        SpoolSource {
            path: self.path.clone(),
            progress: self.progress.clone(),
            journal: self.journal.clone(),
            prior: self.journal.prior(dest.url()),
            budget: self.budget.clone(),
        }
    }

    /// The data key was taken when this push wrote create-only: another push's commit (the
    /// report: already stored, or lost to a different archive), or an upload that never
    /// committed, written over.
    async fn contested(
        &self,
        job: &Job,
        i: usize,
        step: &Step,
        link: bool,
    ) -> Result<transfer::Transferred, Box<DestinationReport>> {
        let (dest, keys) = (&job.destinations[i], &job.keys[i]);
        match contest::taken(dest, keys, job.now(), self.journal.resumed()).await {
            contest::Taken::Committed(theirs) => {
                let ours = match wait_digests(self.digests.clone()).await {
                    Ok((p, _)) => p,
                    Err(e) => {
                        return Err(Box::new(DestinationReport::failed(
                            dest,
                            keys,
                            format!("{e:#}"),
                        )))
                    }
                };
                Err(Box::new(
                    super::settle_contest(dest, keys, &theirs, &ours).await,
                ))
            }
            contest::Taken::Stale => {
                tracing::info!(url = %dest.url(), key = %keys.object, "data without a manifest in the way (an upload that never committed): written over");
                let source = self.source_for(dest);
                let options = plan::put_options(dest, step.retention, self.size_hint, false);
                let route = Route::for_destination(dest, link);
                transfer::transfer(dest, &keys.object, route, source, options)
                    .await
                    .map_err(|e| Box::new(DestinationReport::failed(dest, keys, format!("{e:#}"))))
            }
        }
    }
}

impl Producer {
    /// Writes the spool (when there is one to write) and tells every reader how far it got;
    /// the digests once it is complete, recorded in the journal before anyone is told.
    pub(super) async fn run(self, job: &Job, journal: &JournalHandle) -> Result<Digests> {
        let w = match self {
            Producer::Written(digests) => return Ok(digests),
            Producer::Writing(w) => *w,
        };
        let res = produce::produce(
            w.fresh.source,
            job.recipients.clone(),
            w.file,
            w.progress.clone(),
            job.progress.clone(),
        )
        .await
        .and_then(|(p, s)| match &job.expect_plaintext {
            Some(want) if &p != want => Err(anyhow::anyhow!(
                "the source changed while it was pushed: it was checked as {} bytes with SHA-256 {}, then read as {} bytes with SHA-256 {}; nothing was committed; push again once the backup job has finished writing it",
                want.size, want.sha256, p.size, p.sha256
            )),
            _ => Ok((p, s)),
        });
        match &res {
            Ok((p, s)) => {
                // Recorded before anyone is told: a kill from here on can resume.
                journal.mark_complete(p, s);
                w.digests.send_replace(Some((p.clone(), s.clone())));
                w.progress.send_replace(Progress::Done(s.size));
            }
            Err(e) => {
                w.progress.send_replace(Progress::Failed(format!("{e:#}")));
            }
        }
        res
    }
}

/// Waits for the spool's digests.
async fn wait_digests(mut rx: watch::Receiver<Option<Digests>>) -> Result<Digests> {
    loop {
        if let Some(d) = rx.borrow_and_update().clone() {
            return Ok(d);
        }
        if rx.changed().await.is_err() {
            anyhow::bail!("the spool was not completed");
        }
    }
}
