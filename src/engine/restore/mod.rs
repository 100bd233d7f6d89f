//! Restore: choose the archive (by name, newest, or newest at a time), then take the first
//! healthy copy in the order the locations were given, checking everything while streaming.
//!
//! The copies restore may read are one list: the live copy at each location that listed the
//! archive, then, only when none of those restored, the locked copies delete markers hide
//! (DESIGN.md "Locks"). One loop tries them in turn.

mod choose;
mod members;
mod output;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use futures::{stream, Stream, StreamExt};
use serde::Serialize;

pub use choose::{choose, Chosen};

use super::hidden::Hidden;
use super::identity::Identities;
use super::inventory::{Entry, Judge, State};
use super::progress::Progress;
use super::readback::{Proven, ReadbackError, StoredCopy};
use crate::archive::Manifest;
use crate::engine::contents::{Member, Published};
use crate::error::usage;
use crate::registry::{key_prefix, Opened};
use output::{read_to, resolve_target, Written};

/// Which archive.
#[derive(Debug, Clone)]
pub enum Selector {
    /// By name.
    Name(String),
    /// The newest complete archive.
    Latest,
    /// The newest complete archive created at or before this time.
    At(DateTime<Utc>),
}

/// Where the plaintext goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A file, written to a temporary name and renamed when every check passed.
    File {
        /// The file.
        path: PathBuf,
        /// Replace it if it exists.
        force: bool,
    },
    /// A character device or a FIFO (`/dev/null`, `/dev/tape`, a named pipe), written in
    /// place as `cp` and `age -o` do: no temporary name, no rename, and what was written
    /// cannot be taken back.
    Device {
        /// The device or FIFO.
        path: PathBuf,
    },
    /// Standard output.
    Stdout,
    /// `--extract`: the members under these paths of a tar, written into a directory at
    /// their paths in the archive, put in place only when every check passed.
    Extract {
        /// The output directory (created if missing).
        dir: PathBuf,
        /// Members or directory prefixes, as the archive names them.
        paths: Vec<String>,
        /// Replace files that exist.
        force: bool,
    },
    /// `--list`: a tar's members, nothing written.
    List,
}

/// What a restore delivered besides the proven plaintext.
#[derive(Debug, Clone)]
pub enum Delivered {
    /// The whole archive, to its target.
    Whole,
    /// `--list`: the members.
    Listed(Vec<Member>),
    /// `--extract`: what was put in place.
    Extracted(Published),
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptResult {
    /// The archive came from this copy.
    Restored,
    /// Nothing to read here (no such archive, or not a complete copy).
    Skipped,
    /// Reading failed (or the location could not be listed).
    Failed,
    /// The copy is in an archive storage class and its thaw was requested (`--thaw`).
    Thawing,
}

/// A restore that read no copy but asked the provider to thaw one (`--thaw`): nothing was
/// restored yet (exit 1), and the message says when to run it again, not that copies are bad.
#[derive(Debug)]
pub struct ThawPending(pub String);

impl std::fmt::Display for ThawPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ThawPending {}

impl std::fmt::Display for AttemptResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttemptResult::Restored => "restored",
            AttemptResult::Skipped => "skipped",
            AttemptResult::Failed => "failed",
            AttemptResult::Thawing => "thaw requested",
        })
    }
}

/// One attempt at one location.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The location.
    pub url: String,
    /// What became of it.
    pub result: AttemptResult,
    /// Why.
    pub detail: String,
}

impl Attempt {
    fn new(loc: &Opened, result: AttemptResult, detail: String) -> Attempt {
        Attempt {
            url: loc.url().into(),
            result,
            detail,
        }
    }
}

/// The outcome.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The archive chosen.
    pub archive: String,
    /// Its creation time.
    pub created: Option<DateTime<Utc>>,
    /// The location it came from, if any.
    pub from: Option<String>,
    /// The plaintext restored.
    pub size: Option<u64>,
    /// Its SHA-256.
    pub sha256: Option<String>,
    /// The file written (`-o DIR` writes DIR/NAME); `None` for standard output.
    pub output: Option<PathBuf>,
    /// Every location tried, in order.
    pub attempts: Vec<Attempt>,
    /// Newer names `--latest` / `--at` passed over (untrusted, future-dated, damaged, data
    /// without a manifest), each with why, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<String>,
    /// Partial files that killed restores to the same target had left, removed now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swept: Vec<PathBuf>,
    /// `--list`: the tar's members, in archive order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<Member>>,
    /// `--extract`: the members written and where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extracted: Option<Published>,
}

impl RestoreReport {
    /// Whether a copy failed before one restored.
    pub fn fell_back(&self) -> bool {
        self.attempts
            .iter()
            .any(|a| a.result == AttemptResult::Failed)
    }
}

/// What to restore, from where, to where.
pub struct RestoreRequest<'a> {
    /// The locations, in the order to try them.
    pub locations: &'a [Opened],
    /// Which archive.
    pub selector: Selector,
    /// Where the plaintext goes.
    pub target: Target,
    /// For encrypted archives.
    pub identities: Option<Arc<Identities>>,
    /// Ask the provider to thaw a copy in an archive tier, readable for this many days.
    pub thaw_days: Option<u32>,
    /// Told the bytes restored.
    pub progress: Progress,
    /// The trusted keys and the reader's clock.
    pub judge: Judge,
    /// Restore an untrusted archive named by `--archive` (`--allow-untrusted`).
    pub allow_untrusted: bool,
}

/// A copy restore may read: a live one or one a delete marker hides.
enum Candidate<'a> {
    /// The live copy at a location that listed the archive (`None`: it shows nothing of that
    /// name).
    Live {
        loc: &'a Opened,
        name: &'a str,
        entry: Option<&'a Entry>,
    },
    /// A locked copy under a delete marker.
    Hidden {
        loc: &'a Opened,
        hidden: Box<Hidden>,
    },
}

/// A candidate with something to read.
struct Readable<'c> {
    manifest: &'c Manifest,
    object_key: String,
    version: Option<&'c str>,
}

impl<'a> Candidate<'a> {
    fn loc(&self) -> &'a Opened {
        match self {
            Candidate::Live { loc, .. } | Candidate::Hidden { loc, .. } => loc,
        }
    }

    fn name(&self) -> &str {
        match self {
            Candidate::Live { name, .. } => name,
            Candidate::Hidden { hidden, .. } => &hidden.entry.name,
        }
    }

    /// What to read, or why there is nothing here. An untrusted copy is read only when
    /// `allow_untrusted`.
    fn readable(&self, allow_untrusted: bool) -> Result<Readable<'_>, String> {
        match self {
            Candidate::Live { name, entry, loc } => {
                let Some(entry) = entry else {
                    return Err(format!("no archive named {name}"));
                };
                // A future-dated copy is only ever read by name: --latest never chooses it.
                let trusted = matches!(entry.state, State::Complete | State::FutureDated)
                    || (allow_untrusted && entry.state == State::Untrusted);
                match (&entry.manifest, trusted) {
                    (Some(_), false) if entry.state == State::Untrusted => Err(format!(
                        "the copy is untrusted: {}; restore it only after checking it, with --allow-untrusted",
                        entry.signature.untrusted().unwrap_or("not signed by a trusted key")
                    )),
                    (Some(manifest), true) => Ok(Readable {
                        manifest,
                        object_key: offsite_storage::join_key(
                            key_prefix(&loc.location),
                            &manifest.stored.key,
                        ),
                        version: None,
                    }),
                    _ => Err(entry
                        .size_problem()
                        .unwrap_or_else(|| format!("the copy is {}", entry.state.as_str()))),
                }
            }
            Candidate::Hidden { hidden, .. }
                if hidden.entry.state == State::Untrusted && !allow_untrusted =>
            {
                Err(format!(
                    "the locked version under a delete marker is untrusted: {}",
                    hidden
                        .entry
                        .signature
                        .untrusted()
                        .unwrap_or("not signed by a trusted key")
                ))
            }
            Candidate::Hidden { hidden, .. } => Ok(Readable {
                manifest: hidden
                    .entry
                    .manifest
                    .as_ref()
                    .expect("hidden entries carry a manifest"),
                object_key: hidden
                    .entry
                    .object
                    .as_ref()
                    .expect("hidden entries carry the object")
                    .key
                    .clone(),
                version: Some(hidden.object_version.as_str()),
            }),
        }
    }

    /// The usage error for an encrypted copy and no identity.
    fn needs_identity(&self, manifest: &Manifest) -> anyhow::Error {
        let name = self.name();
        match self {
            Candidate::Live { .. } => usage(format!(
                "{name} is encrypted (for {}); give --identity FILE or set OFFSITE_IDENTITY_FILE",
                manifest
                    .encryption
                    .as_ref()
                    .map(|e| e.recipients.join(", "))
                    .unwrap_or_default()
            )),
            Candidate::Hidden { .. } => usage(format!(
                "{name} is encrypted; give --identity FILE or set OFFSITE_IDENTITY_FILE"
            )),
        }
    }

    fn restored(&self, proven: &Proven) -> String {
        let (size, sha256) = (proven.plaintext.size, &proven.plaintext.sha256);
        match self {
            Candidate::Live { .. } => {
                format!("{size} bytes, SHA-256 {sha256} matches the manifest")
            }
            Candidate::Hidden { hidden, .. } => format!(
                "from a locked version under a delete marker (version {}): {size} bytes, SHA-256 {sha256} matches the manifest",
                hidden.object_version
            ),
        }
    }

    /// Why reading failed, as the attempt's detail; an error that ends the restore (the
    /// output cannot be written) as `Err`. A live copy in an archive tier is thawed when asked.
    async fn failed(
        &self,
        e: ReadbackError,
        object_key: &str,
        thaw: Option<u32>,
    ) -> Result<(AttemptResult, String)> {
        let failed = |m: String| Ok((AttemptResult::Failed, m));
        match (self, e) {
            (Candidate::Hidden { .. }, e) => failed(format!("the version under a delete marker: {e}")),
            (Candidate::Live { .. }, ReadbackError::Output(m)) => Err(anyhow!("{m}")),
            // Thawed only through a store that declares it (the contract's `thaw`).
            (Candidate::Live { loc, .. }, ReadbackError::Archived(m)) => match thaw {
                Some(days) if loc.store.capabilities().thaw => match loc.store.thaw(object_key, days).await {
                    Ok(()) => Ok((
                        AttemptResult::Thawing,
                        format!(
                            "the copy is in an archive storage class; the provider restores it in minutes to 48 hours and keeps it readable for {days} day(s) (S3; Azure moves it back to Hot): run this restore again then"
                        ),
                    )),
                    Err(e) => failed(format!("{m}; requesting the thaw failed: {e}")),
                },
                Some(_) | None => failed(m),
            },
            (Candidate::Live { .. }, e) => failed(e.to_string()),
        }
    }
}

/// One attempt's attempt record, and what it proved when it restored.
struct Tried {
    attempt: Attempt,
    restored: Option<(Target, DateTime<Utc>, Proven, Delivered)>,
}

/// Restores the request's archive to its target from the first healthy copy.
pub async fn run(req: &RestoreRequest<'_>) -> Result<RestoreReport> {
    let chosen = choose(req.locations, &req.selector, &req.judge).await;
    let mut swept = Vec::new();
    // After the live copies (none when nothing live was found), the locked copies under a
    // delete marker: of the archive chosen, or else of what the selector picks among them.
    let (live, attempts, hidden_selector) = match &chosen {
        Ok(c) => {
            if let Target::File { path, .. } = resolve_target(&req.target, &c.name)? {
                swept = output::sweep_partials(&path);
            }
            let live: Vec<Candidate> = live(req.locations, c).collect();
            (live, c.attempts.clone(), Selector::Name(c.name.clone()))
        }
        Err(_) => (Vec::new(), Vec::new(), req.selector.clone()),
    };
    let candidates = stream::iter(live).chain(hidden(req.locations, &hidden_selector, req));
    let attempts = match in_turn(req, candidates, attempts).await? {
        Settled::Restored(mut report) => {
            if let Ok(c) = &chosen {
                report.passed_over.clone_from(&c.passed_over);
            }
            report.swept = swept;
            return Ok(*report);
        }
        Settled::Exhausted(attempts) => attempts,
    };
    match chosen {
        Err(nothing_live) => Err(nothing_live),
        Ok(c) => Err(no_healthy_copy(&c.name, &attempts)),
    }
}

/// How trying the candidates ended.
enum Settled {
    /// One restored.
    Restored(Box<RestoreReport>),
    /// None did: every attempt.
    Exhausted(Vec<Attempt>),
}

/// Tries the candidates in turn until one restores. Bytes already on stdout cannot be taken
/// back: the next copy is tried only while none were written.
async fn in_turn<'a>(
    req: &RestoreRequest<'_>,
    candidates: impl Stream<Item = Candidate<'a>>,
    mut attempts: Vec<Attempt>,
) -> Result<Settled> {
    let mut candidates = std::pin::pin!(candidates);
    let written = Written::default();
    while let Some(candidate) = candidates.next().await {
        let tried = attempt(req, &candidate, &written).await?;
        let failed = tried.attempt.result == AttemptResult::Failed;
        attempts.push(tried.attempt);
        if let Some(restored) = tried.restored {
            let report = report(&candidate, restored, attempts);
            return Ok(Settled::Restored(Box::new(report)));
        }
        if failed && written.any() {
            if let Candidate::Live { .. } = candidate {
                let last = attempts.last().expect("just pushed");
                let place = match &req.target {
                    Target::Device { path } => path.display().to_string(),
                    _ => "standard output".into(),
                };
                return Err(anyhow!(
                    "{}; part of the archive may already have been written to {place}, discard it and restore to a file (-o PATH) to fall back to the next copy",
                    last.detail
                ));
            }
            break;
        }
    }
    Ok(Settled::Exhausted(attempts))
}

/// The live copy at each location that could be listed, in order.
fn live<'a>(locations: &'a [Opened], chosen: &'a Chosen) -> impl Iterator<Item = Candidate<'a>> {
    locations
        .iter()
        .zip(&chosen.entries)
        .zip(&chosen.listed)
        .filter(|(_, listed)| **listed)
        .map(|((loc, entry), _)| Candidate::Live {
            loc,
            name: &chosen.name,
            entry: entry.as_ref(),
        })
}

/// At each versioned location in turn, the hidden copy the selector picks there (the newest
/// trusted one, unless an untrusted one is named and allowed), found only when the loop asks
/// for it.
fn hidden<'a>(
    locations: &'a [Opened],
    selector: &'a Selector,
    req: &'a RestoreRequest<'_>,
) -> impl Stream<Item = Candidate<'a>> + 'a {
    stream::iter(locations).filter_map(move |loc| async move {
        let hidden = super::hidden::hidden(loc, &req.judge).await.ok()?;
        let pick = hidden
            .into_iter()
            .filter(|h| match h.entry.state {
                State::Untrusted => req.allow_untrusted && matches!(selector, Selector::Name(_)),
                State::FutureDated => matches!(selector, Selector::Name(_)),
                _ => true,
            })
            .filter(|h| match selector {
                Selector::Name(n) => &h.entry.name == n,
                Selector::Latest => true,
                Selector::At(t) => h.entry.created().is_some_and(|c| c <= *t),
            })
            .max_by_key(|h| (h.entry.created(), h.entry.name.clone()))?;
        Some(Candidate::Hidden {
            loc,
            hidden: Box::new(pick),
        })
    })
}

/// Tries one candidate: skipped when it has nothing to read, else read into the target.
async fn attempt(
    req: &RestoreRequest<'_>,
    candidate: &Candidate<'_>,
    written: &Written,
) -> Result<Tried> {
    let loc = candidate.loc();
    let readable = match candidate.readable(req.allow_untrusted) {
        Ok(r) => r,
        Err(why) => {
            return Ok(Tried {
                attempt: Attempt::new(loc, AttemptResult::Skipped, why),
                restored: None,
            })
        }
    };
    let manifest = readable.manifest;
    if manifest.encrypted() && req.identities.is_none() {
        return Err(candidate.needs_identity(manifest));
    }
    let target = resolve_target(&req.target, candidate.name())?;
    if let Some(pb) = &req.progress {
        pb.set_position(0);
        pb.set_length(manifest.plaintext.size);
    }
    let copy = StoredCopy {
        loc,
        object_key: &readable.object_key,
        version: readable.version,
        manifest,
    };
    let res = match &target {
        Target::Extract { .. } | Target::List => {
            members::read_members(&copy, req.identities.clone(), &target, req.progress.clone())
                .await?
        }
        _ => read_to(
            &copy,
            req.identities.clone(),
            &target,
            req.progress.clone(),
            written,
        )
        .await
        .map(|proven| (proven, Delivered::Whole)),
    };
    Ok(match res {
        Ok((proven, delivered)) => Tried {
            attempt: Attempt::new(loc, AttemptResult::Restored, candidate.restored(&proven)),
            restored: Some((target, manifest.created, proven, delivered)),
        },
        Err(e) => {
            let (result, detail) = candidate
                .failed(e, &readable.object_key, req.thaw_days)
                .await?;
            Tried {
                attempt: Attempt::new(loc, result, detail),
                restored: None,
            }
        }
    })
}

fn report(
    candidate: &Candidate<'_>,
    (target, created, proven, delivered): (Target, DateTime<Utc>, Proven, Delivered),
    attempts: Vec<Attempt>,
) -> RestoreReport {
    let (members, extracted) = match delivered {
        Delivered::Whole => (None, None),
        Delivered::Listed(m) => (Some(m), None),
        Delivered::Extracted(p) => (None, Some(p)),
    };
    RestoreReport {
        archive: candidate.name().to_string(),
        created: Some(created),
        from: Some(candidate.loc().url().into()),
        size: Some(proven.plaintext.size),
        sha256: Some(proven.plaintext.sha256),
        output: match target {
            Target::File { path, .. } | Target::Device { path } => Some(path),
            Target::Extract { dir, .. } => Some(dir),
            Target::Stdout | Target::List => None,
        },
        attempts,
        passed_over: Vec::new(),
        swept: Vec::new(),
        members,
        extracted,
    }
}

/// What `restore --metadata` shows: the chosen archive's `metadata` from its manifest.
#[derive(Debug, Clone, Serialize)]
pub struct MetadataReport {
    /// The archive chosen.
    pub archive: String,
    /// Its creation time.
    pub created: DateTime<Utc>,
    /// The location whose manifest was read.
    pub from: String,
    /// The backup job's `metadata.json` (`push --metadata`); `None` when it was pushed
    /// without.
    pub metadata: Option<serde_json::Value>,
}

/// `restore --metadata`: chooses the archive as a restore does and reads the manifest of the
/// first copy a restore would read, without downloading the archive.
pub async fn metadata(req: &RestoreRequest<'_>) -> Result<MetadataReport> {
    let chosen = choose(req.locations, &req.selector, &req.judge).await?;
    let mut attempts = chosen.attempts.clone();
    for candidate in live(req.locations, &chosen) {
        match candidate.readable(req.allow_untrusted) {
            Ok(r) => {
                return Ok(MetadataReport {
                    archive: chosen.name.clone(),
                    created: r.manifest.created,
                    from: candidate.loc().url().into(),
                    metadata: r.manifest.metadata.clone(),
                })
            }
            Err(why) => attempts.push(Attempt::new(candidate.loc(), AttemptResult::Skipped, why)),
        }
    }
    Err(no_healthy_copy(&chosen.name, &attempts))
}

/// Every copy tried and failed or skipped.
/// Where a thaw was requested, that leads: the restore is waiting, not failing.
fn no_healthy_copy(name: &str, attempts: &[Attempt]) -> anyhow::Error {
    let tried: Vec<String> = attempts
        .iter()
        .map(|a| match a.result {
            AttemptResult::Thawing => format!("{}: {}: {}", a.url, a.result, a.detail),
            _ => format!("{}: {}", a.url, a.detail),
        })
        .collect();
    let thawing: Vec<&str> = attempts
        .iter()
        .filter(|a| a.result == AttemptResult::Thawing)
        .map(|a| a.url.as_str())
        .collect();
    if thawing.is_empty() {
        return anyhow!("no healthy copy of {name}:\n  {}", tried.join("\n  "));
    }
    anyhow::Error::new(ThawPending(format!(
        "thaw requested for {name} at {}: not restored yet; the provider makes it readable in minutes to 48 hours, run this restore again then (it exits 1 until a copy can be read):\n  {}",
        thawing.join(", "),
        tried.join("\n  ")
    )))
}
