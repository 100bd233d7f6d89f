//! The inventory the planners read: archives with their creation times and series, and per
//! destination the state of each copy, its lock and the last proof that it reads back.
//!
//! The model is owned here, not by the `offsite` binary, so that planners (placement,
//! retention, replication) are pure functions over plain data that tests can build by hand.
//! The binary fills it from the manifests and listings it reads; nothing here knows a manifest's
//! format, a URL or a store. Its fields are facts, never secrets.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// A kind of storage, for placement's `media` (distinct kinds count, not destinations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A local or mounted file system (`file://`).
    File,
    /// The in-process store used by tests (`memory://`).
    Memory,
    /// Amazon S3 or an S3-compatible server.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

impl Kind {
    /// The kind of a store by its provider name (`file`, `memory`, `s3`, `gcs`, `azure`).
    pub fn from_provider(provider: &str) -> Option<Kind> {
        Some(match provider {
            "file" => Kind::File,
            "memory" => Kind::Memory,
            "s3" => Kind::S3,
            "gcs" => Kind::Gcs,
            "azure" => Kind::Azure,
            _ => return None,
        })
    }

    /// The provider name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Memory => "memory",
            Kind::S3 => "s3",
            Kind::Gcs => "gcs",
            Kind::Azure => "azure",
        }
    }

    /// Whether a destination of this kind is off site unless the policy says otherwise
    /// (cloud stores are; a local disk is not).
    pub fn offsite_by_default(self) -> bool {
        matches!(self, Kind::S3 | Kind::Gcs | Kind::Azure)
    }
}

/// One place copies are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The name the policy gives it (or the URL, for a one-off push).
    pub name: String,
    /// Its kind of storage.
    pub kind: Kind,
    /// Whether it counts as off site.
    pub offsite: bool,
}

/// The state of one copy, as a listing and its manifest show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CopyState {
    /// Manifest and data object both present: the only state that counts as a copy.
    Complete,
    /// A data object without a manifest: an upload that never committed.
    Incomplete,
    /// A manifest whose data object is gone.
    MissingData,
    /// A manifest and a data object whose size is not the one the manifest records.
    WrongSize,
    /// A manifest that does not parse.
    BadManifest,
    /// Whole, but its manifest is not signed by a trusted key where trusted signers are
    /// configured: counted for nothing (placement, retention, freshness), deleted by nothing
    /// but `prune --delete-untrusted`.
    Untrusted,
    /// Whole and trusted, but its creation time runs ahead of the clocks that judge it
    /// (`crate::clock::future_dated`): counted for nothing, never deleted.
    FutureDated,
}

/// A retention lock on a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    /// Until when the copy cannot be deleted or overwritten, if a period is set.
    pub until: Option<DateTime<Utc>>,
    /// Whether a legal hold is on (no end date).
    pub legal_hold: bool,
}

impl Lock {
    /// Whether the lock holds at `now`.
    pub fn holds_at(&self, now: DateTime<Utc>) -> bool {
        self.legal_hold || self.until.is_some_and(|u| u > now)
    }
}

/// How a copy was last proved to read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proof {
    /// When.
    pub at: DateTime<Utc>,
    /// `true` for a deep verify or a drill (every byte read and hashed), `false` for a quick
    /// one (size and provider checksum against the manifest).
    pub deep: bool,
    /// Whether it passed.
    pub passed: bool,
    /// The restore a drill measured (how many bytes in how long), when it recorded one.
    pub restore: Option<crate::rto::Measured>,
}

/// One copy of an archive at one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Index into [`Inventory::destinations`].
    pub destination: usize,
    /// Its state.
    pub state: CopyState,
    /// Stored bytes, when the data object was listed.
    pub size: Option<u64>,
    /// Its lock, when it has one.
    pub lock: Option<Lock>,
    /// The last verification record, when there is one.
    pub proof: Option<Proof>,
}

/// One archive name, across destinations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// The archive's name.
    pub name: String,
    /// Its series ([`series_of`]).
    pub series: String,
    /// Its creation time (from a manifest, else from the name, else the object's time).
    pub created: Option<DateTime<Utc>>,
    /// Its copies, one per destination that holds anything under the name.
    pub copies: Vec<Copy>,
}

impl Archive {
    /// The complete copies.
    pub fn complete(&self) -> impl Iterator<Item = &Copy> {
        self.copies
            .iter()
            .filter(|c| c.state == CopyState::Complete)
    }

    /// Whether at least one copy is complete.
    pub fn is_complete(&self) -> bool {
        self.complete().next().is_some()
    }
}

/// Archives across a set of destinations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    /// The destinations, indexed by [`Copy::destination`].
    pub destinations: Vec<Destination>,
    archives: BTreeMap<String, Archive>,
}

impl Inventory {
    /// An inventory of these destinations, with no archives yet.
    pub fn new(destinations: Vec<Destination>) -> Self {
        Inventory {
            destinations,
            archives: BTreeMap::new(),
        }
    }

    /// Records a copy of `name`. The earliest creation time given for a name wins (a manifest's
    /// time is the same at every destination; an object's time is only a fallback).
    ///
    /// # Panics
    /// When `copy.destination` is not an index of [`Inventory::destinations`].
    pub fn add(&mut self, name: &str, created: Option<DateTime<Utc>>, copy: Copy) {
        assert!(
            copy.destination < self.destinations.len(),
            "copy of {name:?} at unknown destination {}",
            copy.destination
        );
        let a = self
            .archives
            .entry(name.to_string())
            .or_insert_with(|| Archive {
                name: name.to_string(),
                series: series_of(name),
                created,
                copies: Vec::new(),
            });
        a.created = match (a.created, created) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        a.copies.push(copy);
    }

    /// Every archive, by name.
    pub fn archives(&self) -> impl Iterator<Item = &Archive> {
        self.archives.values()
    }

    /// One archive by name.
    pub fn archive(&self, name: &str) -> Option<&Archive> {
        self.archives.get(name)
    }

    /// The archives of each series, oldest first (by creation time, then name; an archive
    /// without a time sorts first).
    pub fn series(&self) -> BTreeMap<&str, Vec<&Archive>> {
        let mut out: BTreeMap<&str, Vec<&Archive>> = BTreeMap::new();
        for a in self.archives.values() {
            out.entry(a.series.as_str()).or_default().push(a);
        }
        for list in out.values_mut() {
            list.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
        }
        out
    }

    /// The newest archive of `series` with at least one complete copy.
    pub fn newest_complete(&self, series: &str) -> Option<&Archive> {
        self.series()
            .remove(series)?
            .into_iter()
            .rev()
            .find(|a| a.is_complete())
    }
}

/// The series an archive belongs to: its name with the timestamp replaced by `*`
/// (`app-backup-20261126_020000.tar.gz` is in `app-backup-*.tar.gz`). A name without a
/// timestamp is a series of its own.
pub fn series_of(name: &str) -> String {
    match timestamp_in_name(name) {
        Some((span, _)) => format!("{}*{}", &name[..span.start], &name[span.end..]),
        None => name.to_string(),
    }
}

/// Finds a timestamp in an archive name (UTC unless it says otherwise) and where it is:
/// `20261126_020000`, `20261126T020000Z`, `2026-11-26T02:00:00Z`, `2026-11-26_02-00-00`,
/// `2026-11-26T0200`, or a bare date `2026-11-26` / `20261126` (midnight). The first digit run
/// that parses wins; a longer form is preferred at the same place.
pub fn timestamp_in_name(name: &str) -> Option<(Range<usize>, DateTime<Utc>)> {
    const DATETIME: &[&str] = &[
        "%Y-%m-%dT%H:%M:%S%.fZ",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H-%M-%S",
        "%Y-%m-%d_%H-%M-%S",
        "%Y-%m-%d_%H%M%S",
        "%Y-%m-%d-%H%M%S",
        "%Y-%m-%d_%H:%M:%S",
        "%Y-%m-%dT%H%M%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H%M",
        "%Y%m%d_%H%M%S",
        "%Y%m%dT%H%M%SZ",
        "%Y%m%dT%H%M%S",
        "%Y%m%d-%H%M%S",
        "%Y%m%d%H%M%S",
        "%Y%m%d_%H%M",
        "%Y%m%dT%H%M",
    ];
    const DATE: &[&str] = &["%Y-%m-%d", "%Y%m%d"];
    let bytes = name.as_bytes();
    let ends_token = |rest: &str| !rest.as_bytes().first().is_some_and(|b| b.is_ascii_digit());
    for i in 0..bytes.len() {
        let at_start = bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_digit());
        if !at_start {
            continue;
        }
        let s = &name[i..];
        for f in DATETIME {
            if let Ok((dt, rest)) = NaiveDateTime::parse_and_remainder(s, f) {
                if ends_token(rest) && plausible(dt.date()) {
                    let end = name.len() - rest.len();
                    return Some((i..end, dt.and_utc()));
                }
            }
        }
        for f in DATE {
            if let Ok((d, rest)) = NaiveDate::parse_and_remainder(s, f) {
                if ends_token(rest) && plausible(d) {
                    let end = name.len() - rest.len();
                    let t = d.and_hms_opt(0, 0, 0).map(|dt| dt.and_utc())?;
                    return Some((i..end, t));
                }
            }
        }
    }
    None
}

fn plausible(d: NaiveDate) -> bool {
    use chrono::Datelike;
    (1990..=2200).contains(&d.year())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
    }

    #[test]
    fn series_take_the_timestamp_out() {
        assert_eq!(
            series_of("app-backup-20261126_020000.tar.gz"),
            "app-backup-*.tar.gz"
        );
        assert_eq!(series_of("db-2026-11-26T02:00:00Z.sql"), "db-*.sql");
        assert_eq!(series_of("notes.txt"), "notes.txt");
        // A digit run that is not a date stays part of the name.
        assert_eq!(series_of("v2-app-20261126.tgz"), "v2-app-*.tgz");
    }

    #[test]
    fn newest_complete_skips_incomplete_and_other_series() {
        let dest = |n: &str, kind| Destination {
            name: n.into(),
            kind,
            offsite: Kind::offsite_by_default(kind),
        };
        let mut inv = Inventory::new(vec![dest("local", Kind::File), dest("s3", Kind::S3)]);
        let copy = |destination, state| Copy {
            destination,
            state,
            size: Some(1),
            lock: None,
            proof: None,
        };
        inv.add(
            "app-20261101_000000.tgz",
            Some(t(2026, 11, 1, 0)),
            copy(0, CopyState::Complete),
        );
        inv.add(
            "app-20261102_000000.tgz",
            Some(t(2026, 11, 2, 0)),
            copy(1, CopyState::Incomplete),
        );
        inv.add(
            "db-20261103_000000.tgz",
            Some(t(2026, 11, 3, 0)),
            copy(1, CopyState::Complete),
        );
        let newest = inv.newest_complete("app-*.tgz").unwrap();
        assert_eq!(newest.name, "app-20261101_000000.tgz");
        assert_eq!(inv.series().len(), 2);
        assert!(inv.newest_complete("nothing-*").is_none());
    }

    #[test]
    fn a_lock_holds_until_its_date_or_while_held() {
        let now = t(2026, 12, 1, 0);
        let until = Lock {
            until: Some(t(2026, 12, 2, 0)),
            legal_hold: false,
        };
        assert!(until.holds_at(now));
        assert!(!until.holds_at(t(2026, 12, 3, 0)));
        let hold = Lock {
            until: None,
            legal_hold: true,
        };
        assert!(hold.holds_at(now));
    }

    proptest! {
        #[test]
        fn a_named_time_round_trips_and_its_series_is_stable(
            secs in 946_684_800i64..4_102_444_800i64,
            stem in "[a-z][a-z-]{0,12}",
        ) {
            let when = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let name = format!("{stem}-{}.tar.gz", when.format("%Y%m%d_%H%M%S"));
            let (span, found) = timestamp_in_name(&name).unwrap();
            prop_assert_eq!(found, when);
            prop_assert_eq!(&name[span], when.format("%Y%m%d_%H%M%S").to_string());
            prop_assert_eq!(series_of(&name), format!("{stem}-*.tar.gz"));
        }
    }
}
