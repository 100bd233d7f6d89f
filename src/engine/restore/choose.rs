//! Choosing the archive to restore from the locations' listings, reading only the manifests it
//! needs.

use std::collections::{BTreeSet, HashMap};

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};

use super::{Attempt, AttemptResult, Selector};
use crate::archive::{time_from_name, AGE_SUFFIX};
use crate::engine::inventory::{Entry, Judge, Listing, ReadOptions, Reader, State};
use crate::error::usage;
use crate::registry::Opened;
use crate::units::time;

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
    /// Newer names `--latest` / `--at` passed over, each with why (untrusted, future-dated,
    /// damaged, no manifest) and what that means, in words.
    pub passed_over: Vec<String>,
}

/// A newer name `--latest` / `--at` did not take, in words.
struct PassedOver {
    /// `NAME (at URL: why; ...)`.
    text: String,
    /// Whether a copy was untrusted or future-dated (never chosen, however whole).
    untrusted: bool,
}

/// Entries of one name, one per location.
type Entries = Vec<Option<Entry>>;

/// Picks the archive the selector names from the locations' listings, reading only the
/// manifests it needs: candidates are ordered by the creation time in their names (an archive
/// whose name has none is read to learn it), and from the newest down (at or before `--at`)
/// each candidate's manifests are read until one has a complete copy somewhere. `--archive`
/// reads that archive's manifests only. Manifests are judged by `judge`: `--latest` and
/// `--at` pass over an untrusted or future-dated archive (said in [`Chosen::passed_over`]).
pub async fn choose(locations: &[Opened], selector: &Selector, judge: &Judge) -> Result<Chosen> {
    let survey = Survey::list(locations, judge).await;
    let (name, entries, passed_over) = match selector {
        Selector::Name(n) => (n.clone(), survey.entries_of(n).await?, Vec::new()),
        Selector::Latest => survey.newest(None).await?,
        Selector::At(t) => survey.newest(Some(*t)).await?,
    };
    Ok(survey.chosen(name, entries, passed_over))
}

/// Every location's listing (`None` where it could not be listed), and a manifest reader each.
struct Survey<'a> {
    locations: &'a [Opened],
    listings: Vec<Option<Listing>>,
    readers: Vec<Reader<'a>>,
    /// The locations that could not be listed.
    attempts: Vec<Attempt>,
}

impl<'a> Survey<'a> {
    async fn list(locations: &'a [Opened], judge: &Judge) -> Survey<'a> {
        let mut listings = Vec::new();
        let mut attempts = Vec::new();
        for loc in locations {
            match Listing::of(loc).await {
                Ok(l) => listings.push(Some(l)),
                Err(e) => {
                    attempts.push(Attempt::new(
                        loc,
                        AttemptResult::Failed,
                        format!("cannot list: {e}"),
                    ));
                    listings.push(None);
                }
            }
        }
        let options = ReadOptions::new(judge.clone());
        let readers = locations.iter().map(|l| Reader::new(l, &options)).collect();
        Survey {
            locations,
            listings,
            readers,
            attempts,
        }
    }

    /// The entries of one name at every location; reads at different locations run together.
    async fn entries_of(&self, name: &str) -> Result<Entries> {
        let reads = self
            .listings
            .iter()
            .zip(&self.readers)
            .map(|(listing, reader)| async move {
                match listing {
                    Some(l) => reader.entry(l, name).await,
                    None => Ok(None),
                }
            });
        let got = futures::future::join_all(reads).await;
        got.into_iter()
            .collect::<offsite_storage::Result<Vec<_>>>()
            .map_err(|e| anyhow!("{e}"))
    }

    /// Every committed name once with its creation time, oldest first: the time from the name,
    /// else from a manifest (whose entries are kept, read once).
    async fn candidates(&self) -> Result<(Vec<(DateTime<Utc>, String)>, HashMap<String, Entries>)> {
        let mut names: BTreeSet<&str> = BTreeSet::new();
        let mut data_only: BTreeSet<&str> = BTreeSet::new();
        for l in self.listings.iter().flatten() {
            names.extend(l.manifests.keys().map(String::as_str));
            // Data that no manifest claims, so that one newer than the archive chosen is
            // said to be passed over, not skipped in silence.
            data_only.extend(
                l.objects
                    .keys()
                    .map(|o| o.strip_suffix(AGE_SUFFIX).unwrap_or(o))
                    .filter(|n| !l.manifests.contains_key(*n)),
            );
        }
        let mut candidates = Vec::new();
        let mut known = HashMap::new();
        for name in data_only.difference(&names) {
            if let Some(t) = time_from_name(name) {
                candidates.push((t, name.to_string()));
            }
        }
        for name in names {
            if let Some(t) = time_from_name(name) {
                candidates.push((t, name.to_string()));
                continue;
            }
            let entries = self.entries_of(name).await?;
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
        candidates.sort();
        Ok((candidates, known))
    }

    /// The newest archive (created at or before `at`) with a complete copy somewhere, and the
    /// newer names passed over on the way, each with why: untrusted, future-dated, damaged,
    /// or data without a manifest.
    async fn newest(&self, at: Option<DateTime<Utc>>) -> Result<(String, Entries, Vec<String>)> {
        let (candidates, mut known) = self.candidates().await?;
        let split = candidates.partition_point(|(c, _)| at.is_none_or(|t| *c <= t));
        let mut reads = 0usize;
        let mut passed_over = Vec::new();
        let mut untrusted = Vec::new();
        for (_, name) in candidates[..split].iter().rev() {
            let entries = match known.remove(name) {
                Some(e) => e,
                None => {
                    reads += 1;
                    self.entries_of(name).await?
                }
            };
            if complete(&entries) {
                tracing::info!(archive = %name, candidates_read = reads, "chose from the listing");
                return Ok((name.clone(), entries, passed_over));
            }
            if let Some(why) = self.passed_over(name, &entries) {
                let tail = if why.untrusted {
                    untrusted.push(why.text.clone());
                    "never chosen by --latest or --at"
                } else {
                    "no whole copy of it anywhere"
                };
                passed_over.push(format!("{}: {tail}", why.text));
            }
            tracing::info!(archive = %name, "no complete copy anywhere; trying the next older archive");
        }
        if let Some(t) = at {
            self.too_early(t, &candidates[split..]).await?;
        }
        Err(self.nothing_complete(&untrusted))
    }

    /// For a name with no complete copy: the name and, per location, why each copy there was
    /// not taken.
    fn passed_over(&self, name: &str, entries: &Entries) -> Option<PassedOver> {
        let mut untrusted = false;
        let why: Vec<String> = self
            .locations
            .iter()
            .zip(entries)
            .filter_map(|(loc, e)| {
                let e = e.as_ref()?;
                let reason = match e.state {
                    State::Untrusted => {
                        untrusted = true;
                        format!("untrusted: {}", e.signature.untrusted()?)
                    }
                    State::FutureDated => {
                        untrusted = true;
                        format!("future-dated: {}", e.future?)
                    }
                    State::WrongSize => "damaged: its data object is not the size its manifest records (truncated or replaced)".into(),
                    State::MissingData => "damaged: its manifest's data object is missing".into(),
                    State::BadManifest => format!(
                        "damaged: its manifest cannot be read ({})",
                        e.manifest_error.as_deref().unwrap_or("unreadable")
                    ),
                    State::Incomplete => "data but no manifest: an upload not committed (a push still running, or one interrupted: push it again)".into(),
                    State::Complete => return None,
                };
                Some(format!("at {}: {reason}", loc.url()))
            })
            .collect();
        (!why.is_empty()).then(|| PassedOver {
            text: format!("{name} ({})", why.join("; ")),
            untrusted,
        })
    }

    /// Nothing at or before `--at`: names the oldest complete archive, so the user can see why.
    async fn too_early(&self, at: DateTime<Utc>, later: &[(DateTime<Utc>, String)]) -> Result<()> {
        for (c, name) in later {
            if complete(&self.entries_of(name).await?) {
                return Err(usage(format!(
                    "--at {} is earlier than every archive; the oldest is {name} created {}",
                    time(&at),
                    time(c)
                )));
            }
        }
        Ok(())
    }

    fn chosen(self, name: String, entries: Entries, passed_over: Vec<String>) -> Chosen {
        for (listing, reader) in self.listings.iter().zip(&self.readers) {
            if let Some(l) = listing {
                reader.log(l, 0);
            }
        }
        Chosen {
            name,
            entries,
            listed: self.listings.iter().map(Option::is_some).collect(),
            attempts: self.attempts,
            passed_over,
        }
    }

    /// "No complete archive", with what each location said: a location that could not be
    /// listed (wrong credentials, server down) is not the same as one that holds nothing, and
    /// the user must not be left believing the backups are gone.
    fn nothing_complete(&self, untrusted: &[String]) -> anyhow::Error {
        let why: Vec<String> = self
            .locations
            .iter()
            .zip(&self.listings)
            .map(|(loc, listing)| match listing {
                None => self
                    .attempts
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
        let unreachable = self.listings.iter().filter(|s| s.is_none()).count();
        if !untrusted.is_empty() {
            return anyhow!(
                "no trusted archive to restore: {}; an untrusted one can be restored by name with --archive NAME --allow-untrusted after checking it, a future-dated one with --archive NAME",
                untrusted.join("; ")
            );
        }
        let lead = if unreachable > 0 {
            format!(
                "no complete archive found, and {unreachable} of {} location(s) could not be read, so this says nothing about the copies there",
                self.locations.len()
            )
        } else {
            "no complete archive at any location".to_string()
        };
        anyhow!("{lead}: {}", why.join("; "))
    }
}

fn complete(entries: &[Option<Entry>]) -> bool {
    entries.iter().flatten().any(|e| e.state == State::Complete)
}
