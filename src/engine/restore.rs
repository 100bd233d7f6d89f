//! Restore: choose the archive (by name, newest, or newest at a time), then take the first
//! healthy copy in the order the locations were given, checking everything while streaming.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::identity::Identities;
use super::inventory::{Entry, Listing, ReadOptions, Reader, State};
use super::readback::{read_copy, Proven, ReadbackError};
use crate::archive::time_from_name;
use crate::error::usage;
use crate::registry::{key_prefix, Opened};
use crate::units::time;

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
    /// Standard output.
    Stdout,
}

/// One attempt at one location.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The location.
    pub url: String,
    /// `restored`, `skipped` or `failed`.
    pub result: &'static str,
    /// Why.
    pub detail: String,
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
}

/// The archive chosen, with its entry at each location (`None` where the location could not
/// be listed or shows nothing of that name).
pub struct Chosen {
    /// The archive's name.
    pub name: String,
    /// Its entry per location, in the order given.
    pub entries: Vec<Option<Entry>>,
    /// Locations that could not be listed.
    pub attempts: Vec<Attempt>,
    /// Per location: whether it could be listed.
    pub listed: Vec<bool>,
}

/// Picks the archive the selector names from the locations' listings, reading only the
/// manifests it needs: candidates are ordered by the creation time in their names (an archive
/// whose name has none is read to learn it), and from the newest down (at or before `--at`)
/// each candidate's manifests are read until one has a complete copy somewhere. `--archive`
/// reads that archive's manifests only.
pub async fn choose(locations: &[Opened], selector: &Selector) -> Result<Chosen> {
    let mut listings = Vec::new();
    let mut attempts = Vec::new();
    for loc in locations {
        match Listing::of(loc).await {
            Ok(l) => listings.push(Some(l)),
            Err(e) => {
                attempts.push(Attempt {
                    url: loc.url().into(),
                    result: "failed",
                    detail: format!("cannot list: {e}"),
                });
                listings.push(None);
            }
        }
    }
    let readers: Vec<Reader> = locations
        .iter()
        .map(|l| Reader::new(l, ReadOptions::default()))
        .collect();
    // The entries of one name at every location; reads at different locations run together.
    let entries_of = |name: String| {
        let (listings, readers) = (&listings, &readers);
        async move {
            let reads = listings.iter().zip(readers).map(|(listing, reader)| {
                let name = name.clone();
                async move {
                    match listing {
                        Some(l) => reader.entry(l, &name).await,
                        None => Ok(None),
                    }
                }
            });
            let got: Vec<offsite_storage::Result<Option<Entry>>> =
                futures::future::join_all(reads).await;
            got.into_iter().collect::<offsite_storage::Result<Vec<_>>>()
        }
    };
    let complete =
        |entries: &[Option<Entry>]| entries.iter().flatten().any(|e| e.state == State::Complete);
    let done = |name: String, entries: Vec<Option<Entry>>, attempts: Vec<Attempt>| {
        for (listing, reader) in listings.iter().zip(&readers) {
            if let Some(l) = listing {
                reader.log(l, 0);
            }
        }
        Chosen {
            name,
            entries,
            attempts,
            listed: listings.iter().map(Option::is_some).collect(),
        }
    };
    if let Selector::Name(n) = selector {
        let entries = entries_of(n.clone()).await.map_err(|e| anyhow!("{e}"))?;
        return Ok(done(n.clone(), entries, attempts));
    }

    // Every committed name once, with its time: from the name, else from a manifest.
    let mut names: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for l in listings.iter().flatten() {
        names.extend(l.manifests.keys().map(String::as_str));
    }
    let mut candidates: Vec<(DateTime<Utc>, String)> = Vec::new();
    let mut known: std::collections::HashMap<String, Vec<Option<Entry>>> = Default::default();
    for name in names {
        match time_from_name(name) {
            Some(t) => candidates.push((t, name.to_string())),
            None => {
                let entries = entries_of(name.to_string())
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                let created = entries
                    .iter()
                    .flatten()
                    .filter(|e| e.state == State::Complete)
                    .find_map(Entry::created);
                if let Some(t) = created {
                    candidates.push((t, name.to_string()));
                    known.insert(name.to_string(), entries);
                }
            }
        }
    }
    candidates.sort();
    let at = match selector {
        Selector::At(t) => Some(*t),
        _ => None,
    };
    let split = candidates.partition_point(|(c, _)| at.is_none_or(|t| *c <= t));
    let mut reads = 0usize;
    for (_, name) in candidates[..split].iter().rev() {
        let entries = match known.remove(name) {
            Some(e) => e,
            None => {
                reads += 1;
                entries_of(name.clone()).await.map_err(|e| anyhow!("{e}"))?
            }
        };
        if complete(&entries) {
            tracing::info!(archive = %name, candidates_read = reads, "chose from the listing");
            return Ok(done(name.clone(), entries, attempts));
        }
        tracing::info!(archive = %name, "no complete copy anywhere; trying the next older archive");
    }
    if let Some(t) = at {
        // Nothing at or before TIME: name the oldest complete archive, so the user can see why.
        for (c, name) in &candidates[split..] {
            let entries = entries_of(name.clone()).await.map_err(|e| anyhow!("{e}"))?;
            if complete(&entries) {
                return Err(usage(format!(
                    "--at {} is earlier than every archive; the oldest is {name} created {}",
                    time(&t),
                    time(c)
                )));
            }
        }
    }
    Err(nothing_complete(locations, &listings, &attempts))
}

/// "No complete archive", with what each location said: a location that could not be listed
/// (wrong credentials, server down) is not the same as one that holds nothing, and the user
/// must not be left believing the backups are gone.
fn nothing_complete(
    locations: &[Opened],
    listings: &[Option<Listing>],
    attempts: &[Attempt],
) -> anyhow::Error {
    let why: Vec<String> = locations
        .iter()
        .zip(listings)
        .map(|(loc, listing)| match listing {
            None => attempts
                .iter()
                .find(|a| a.url == loc.url())
                .map(|a| format!("{}: {}", a.url, a.detail))
                .unwrap_or_else(|| format!("{}: could not be listed", loc.url())),
            Some(l) if l.archive_count() == 0 => format!("{}: no archives there", loc.url()),
            Some(l) => format!(
                "{}: {} archive(s), none complete (see `offsite ls`)",
                loc.url(),
                l.archive_count()
            ),
        })
        .collect();
    let unreachable = listings.iter().filter(|s| s.is_none()).count();
    let lead = if unreachable > 0 {
        format!(
            "no complete archive found, and {unreachable} of {} location(s) could not be read, so this says nothing about the copies there",
            locations.len()
        )
    } else {
        "no complete archive at any location".to_string()
    };
    anyhow!("{lead}: {}", why.join("; "))
}

/// Restores `selector` to `target` from the first healthy copy.
pub async fn run(
    locations: &[Opened],
    selector: &Selector,
    target: &Target,
    identities: Option<Arc<Identities>>,
    thaw_days: Option<u32>,
    pb: crate::engine::progress::Progress,
) -> Result<RestoreReport> {
    let Chosen {
        name,
        entries: chosen,
        mut attempts,
        listed,
    } = match choose(locations, selector).await {
        Ok(c) => c,
        Err(e) => {
            // Nothing live: a locked copy under a delete marker may still be there.
            let mut tried = Vec::new();
            return match restore_hidden(locations, selector, target, identities, pb, &mut tried)
                .await
            {
                Some(r) => r,
                None => Err(e),
            };
        }
    };
    let mut report = RestoreReport {
        archive: name.clone(),
        created: None,
        from: None,
        size: None,
        sha256: None,
        attempts: Vec::new(),
        output: None,
    };
    let target = &resolve_target(target, &name)?;
    if let Target::File { path, .. } = target {
        report.output = Some(path.clone());
    }
    // Bytes already on stdout cannot be taken back: fall back to the next copy only while
    // none were written.
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for ((loc, entry), listed) in locations.iter().zip(&chosen).zip(&listed) {
        if !listed {
            continue;
        }
        let Some(entry) = entry else {
            attempts.push(Attempt {
                url: loc.url().into(),
                result: "skipped",
                detail: format!("no archive named {name}"),
            });
            continue;
        };
        let manifest = match (&entry.manifest, entry.state) {
            (Some(m), State::Complete) => m,
            _ => {
                attempts.push(Attempt {
                    url: loc.url().into(),
                    result: "skipped",
                    detail: entry
                        .size_problem()
                        .unwrap_or_else(|| format!("the copy is {}", entry.state.as_str())),
                });
                continue;
            }
        };
        report.created = Some(manifest.created);
        if manifest.encrypted() && identities.is_none() {
            return Err(usage(format!(
                "{name} is encrypted (for {}); give --identity FILE or set OFFSITE_IDENTITY_FILE",
                manifest
                    .encryption
                    .as_ref()
                    .map(|e| e.recipients.join(", "))
                    .unwrap_or_default()
            )));
        }
        let object_key = offsite_storage::join_key(key_prefix(&loc.location), &manifest.stored.key);
        if let Some(pb) = &pb {
            pb.set_position(0);
            pb.set_length(manifest.plaintext.size);
        }
        let res = read_to(
            loc,
            &object_key,
            None,
            manifest,
            identities.clone(),
            target,
            pb.clone(),
            &written,
        )
        .await;
        match res {
            Ok(proven) => {
                attempts.push(Attempt {
                    url: loc.url().into(),
                    result: "restored",
                    detail: format!(
                        "{} bytes, SHA-256 {} matches the manifest",
                        proven.plaintext.size, proven.plaintext.sha256
                    ),
                });
                report.from = Some(loc.url().into());
                report.size = Some(proven.plaintext.size);
                report.sha256 = Some(proven.plaintext.sha256);
                report.attempts = attempts;
                return Ok(report);
            }
            Err(ReadbackError::Output(m)) => return Err(anyhow!("{m}")),
            Err(ReadbackError::Archived(m)) => {
                let detail = match thaw_days {
                    Some(days) => match loc.store.thaw(&object_key, days).await {
                        Ok(()) => format!(
                            "thaw requested: the copy is in an archive storage class and will be readable for {days} day(s) once the provider has restored it (minutes to 48 hours); run this restore again then"
                        ),
                        Err(e) => format!("{m}; requesting the thaw failed: {e}"),
                    },
                    None => m,
                };
                attempts.push(Attempt {
                    url: loc.url().into(),
                    result: "failed",
                    detail,
                });
            }
            Err(e) => {
                attempts.push(Attempt {
                    url: loc.url().into(),
                    result: "failed",
                    detail: e.to_string(),
                });
                if written.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                    // Bytes may already be on stdout: another copy cannot be appended to them.
                    report.attempts = attempts;
                    return Err(anyhow!(
                        "{e}; part of the archive may already have been written to standard output, discard it and restore to a file (-o PATH) to fall back to the next copy"
                    ));
                }
            }
        }
    }
    // No live copy restored: a locked copy of it under a delete marker may still be there.
    if written.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        if let Some(r) = restore_hidden(
            locations,
            &Selector::Name(name.clone()),
            target,
            identities,
            pb,
            &mut attempts,
        )
        .await
        {
            return r;
        }
    }
    report.attempts = attempts;
    let tried: Vec<String> = report
        .attempts
        .iter()
        .map(|a| format!("{}: {}", a.url, a.detail))
        .collect();
    Err(anyhow!(
        "no healthy copy of {name}:\n  {}",
        tried.join("\n  ")
    ))
}

/// Reads one copy (the current object, or `version` of it) into `target`, counting what reaches
/// standard output so that a caller never falls back onto bytes already written.
#[allow(clippy::too_many_arguments)]
async fn read_to(
    loc: &Opened,
    object_key: &str,
    version: Option<&str>,
    manifest: &crate::archive::Manifest,
    identities: Option<Arc<Identities>>,
    target: &Target,
    pb: crate::engine::progress::Progress,
    written: &Arc<std::sync::atomic::AtomicU64>,
) -> Result<Proven, ReadbackError> {
    match target {
        Target::Stdout => {
            let out = CountingWriter {
                inner: std::io::stdout(),
                count: written.clone(),
            };
            read_copy(
                loc, object_key, version, manifest, identities, out, pb, false,
            )
            .await
            .map(|(p, _)| p)
        }
        Target::File { path, force } => {
            restore_to_file(
                loc, object_key, version, manifest, identities, path, *force, pb,
            )
            .await
        }
    }
}

/// `-o DIR` restores into the directory under the archive's name, as `cp` does; an existing
/// file is never replaced without `--force`.
fn resolve_target(target: &Target, name: &str) -> Result<Target> {
    let target = match target {
        Target::File { path, force } if path.is_dir() => Target::File {
            path: path.join(name),
            force: *force,
        },
        t => t.clone(),
    };
    if let Target::File { path, force: false } = &target {
        if path.exists() {
            return Err(usage(format!(
                "{} already exists; restore never overwrites a file unless --force is given",
                path.display()
            )));
        }
    }
    Ok(target)
}

/// Restores from a copy a delete marker hides (DESIGN.md "Locks"), at the first versioned
/// location that has one the selector picks. `None` when there is none.
async fn restore_hidden(
    locations: &[Opened],
    selector: &Selector,
    target: &Target,
    identities: Option<Arc<Identities>>,
    pb: crate::engine::progress::Progress,
    attempts: &mut Vec<Attempt>,
) -> Option<Result<RestoreReport>> {
    // Bytes already on stdout cannot be taken back: no fallback once any were written.
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for loc in locations {
        if written.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        let Ok(hidden) = super::hidden::hidden(loc).await else {
            continue;
        };
        let pick = hidden
            .iter()
            .filter(|h| match selector {
                Selector::Name(n) => &h.entry.name == n,
                Selector::Latest => true,
                Selector::At(t) => h.entry.created().is_some_and(|c| c <= *t),
            })
            .max_by_key(|h| (h.entry.created(), h.entry.name.clone()));
        let Some(h) = pick else { continue };
        let manifest = h
            .entry
            .manifest
            .as_ref()
            .expect("hidden entries carry a manifest");
        if manifest.encrypted() && identities.is_none() {
            return Some(Err(usage(format!(
                "{} is encrypted; give --identity FILE or set OFFSITE_IDENTITY_FILE",
                h.entry.name
            ))));
        }
        let target = match resolve_target(target, &h.entry.name) {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let object_key = &h
            .entry
            .object
            .as_ref()
            .expect("hidden entries carry the object")
            .key;
        let version = Some(h.object_version.as_str());
        let res = read_to(
            loc,
            object_key,
            version,
            manifest,
            identities.clone(),
            &target,
            pb.clone(),
            &written,
        )
        .await;
        match res {
            Ok(proven) => {
                attempts.push(Attempt {
                    url: loc.url().into(),
                    result: "restored",
                    detail: format!(
                        "from a locked version under a delete marker (version {}): {} bytes, SHA-256 {} matches the manifest",
                        h.object_version, proven.plaintext.size, proven.plaintext.sha256
                    ),
                });
                return Some(Ok(RestoreReport {
                    archive: h.entry.name.clone(),
                    created: Some(manifest.created),
                    from: Some(loc.url().into()),
                    size: Some(proven.plaintext.size),
                    sha256: Some(proven.plaintext.sha256),
                    output: match &target {
                        Target::File { path, .. } => Some(path.clone()),
                        Target::Stdout => None,
                    },
                    attempts: std::mem::take(attempts),
                }));
            }
            Err(e) => attempts.push(Attempt {
                url: loc.url().into(),
                result: "failed",
                detail: format!("the version under a delete marker: {e}"),
            }),
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
async fn restore_to_file(
    loc: &Opened,
    object_key: &str,
    version: Option<&str>,
    manifest: &crate::archive::Manifest,
    identities: Option<Arc<Identities>>,
    path: &Path,
    force: bool,
    pb: crate::engine::progress::Progress,
) -> Result<Proven, ReadbackError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.offsite-restore-{:08x}", rand_tag()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| {
            format!(
                "cannot create {} (is the directory there and writable?)",
                tmp.display()
            )
        })
        .map_err(|e| ReadbackError::Output(format!("{e:#}")))?;
    let writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let res = read_copy(
        loc, object_key, version, manifest, identities, writer, pb, false,
    )
    .await;
    let finish = |res: Result<(Proven, std::io::BufWriter<std::fs::File>), ReadbackError>| -> Result<Proven, ReadbackError> {
        let (proven, mut w) = res?;
        let out = |e: std::io::Error| ReadbackError::Output(format!("cannot write {}: {e}", path.display()));
        w.flush().map_err(out)?;
        let f = w.into_inner().map_err(|e| out(e.into_error()))?;
        f.sync_all().map_err(out)?;
        if force {
            std::fs::rename(&tmp, path).map_err(out)?;
        } else {
            // Never replace a file that appeared meanwhile: link fails if the name is taken.
            std::fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    ReadbackError::Output(format!("{} appeared while restoring; restore never overwrites a file unless --force is given", path.display()))
                } else {
                    out(e)
                }
            })?;
            let _ = std::fs::remove_file(&tmp);
        }
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(proven)
    };
    let result = finish(res);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn rand_tag() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ std::process::id())
        .unwrap_or(0)
}

/// Counts what reaches stdout, so that restore knows whether it may still fall back.
struct CountingWriter<W> {
    inner: W,
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
