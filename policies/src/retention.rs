//! Retention: which archives to keep, by grandfather-father-son rules with exactly the semantics
//! of restic's `forget` (doc/060_forget.rst), plus `max-age`, `min-age` and prune's safety
//! rails. Pure: [`apply`] decides one series against one rule; [`plan`] decides every
//! destination of a policy over an inventory, rails included. The binary executes the plan.
//!
//! restic's rules, as implemented here:
//! - archives are sorted newest first; `keep-last N` keeps the N newest;
//! - `keep-hourly/daily/weekly/monthly/yearly N` put each archive in a bucket by its creation
//!   time (UTC; ISO 8601 weeks) and keep the newest archive of each of the N newest buckets
//!   that hold archives; `"unlimited"` has no N;
//! - a count rule that still has N left when it reaches the oldest archive keeps that one too
//!   (`oldest daily`), as restic does since 0.16;
//! - `keep-within D` keeps every archive created within D of the newest archive (not of now),
//!   `keep-within-daily D` (and hourly ... yearly) the newest of each bucket within D;
//! - an archive is kept when any rule keeps it. Without any keep rule everything is kept
//!   (restic refuses to run without one), and only `max-age` deletes.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serialize;

use crate::duration::Span;
use crate::inventory::{CopyState, Inventory};
use crate::policy::{Keep, Policy, Retention};

/// A count rule's class; the weekly, monthly and yearly ones carry locks further.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// `keep-last`.
    Last,
    /// `keep-hourly`.
    Hourly,
    /// `keep-daily`.
    Daily,
    /// `keep-weekly`.
    Weekly,
    /// `keep-monthly`.
    Monthly,
    /// `keep-yearly`.
    Yearly,
}

impl Class {
    fn word(self) -> &'static str {
        match self {
            Class::Last => "last",
            Class::Hourly => "hourly",
            Class::Daily => "daily",
            Class::Weekly => "weekly",
            Class::Monthly => "monthly",
            Class::Yearly => "yearly",
        }
    }

    /// The bucket of a time (restic's buckers, in UTC). `Last` buckets by position.
    fn bucket(self, t: DateTime<Utc>, nr: usize) -> i64 {
        let (y, m, d, h) = (
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
        );
        match self {
            Class::Last => nr as i64,
            Class::Hourly => y * 1_000_000 + m * 10_000 + d * 100 + h,
            Class::Daily => y * 10_000 + m * 100 + d,
            Class::Weekly => {
                let w = t.iso_week();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Class::Monthly => y * 100 + m,
            Class::Yearly => y,
        }
    }
}

/// One archive's decision under one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The archive.
    pub name: String,
    /// Its creation time.
    pub created: DateTime<Utc>,
    /// Kept (else deleted).
    pub keep: bool,
    /// Why, in restic's words (`daily`, `oldest monthly`, `within 2d`, `daily within 30d`) and
    /// offsite's (`younger than min-age 1h`, `older than max-age 3y`).
    pub reasons: Vec<String>,
    /// The count classes that kept it.
    pub classes: Vec<Class>,
}

/// A rule's count: 0 for none (and for `0`, which keeps nothing, as restic reads it).
fn count(k: Option<Keep>) -> i64 {
    match k {
        None => 0,
        Some(Keep::N(n)) => i64::from(n),
        Some(Keep::Unlimited) => -1,
    }
}

/// Decides one series' archives (any order) under `rule` at `now`. The result is newest first.
pub fn apply(
    rule: &Retention,
    archives: &[(String, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Vec<Decision> {
    let mut list: Vec<&(String, DateTime<Utc>)> = archives.iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    // The newest archive not in the future (restic's findLatestTimestamp).
    let latest = list
        .iter()
        .map(|a| a.1)
        .filter(|t| *t < now)
        .max()
        .unwrap_or(now);
    let mut buckets: Vec<(Class, i64, Option<i64>)> = [
        (Class::Last, count(rule.keep_last)),
        (Class::Hourly, count(rule.keep_hourly)),
        (Class::Daily, count(rule.keep_daily)),
        (Class::Weekly, count(rule.keep_weekly)),
        (Class::Monthly, count(rule.keep_monthly)),
        (Class::Yearly, count(rule.keep_yearly)),
    ]
    .into_iter()
    .map(|(c, n)| (c, n, None))
    .collect();
    let mut within: Vec<(Class, Span, Option<i64>)> = [
        (Class::Hourly, rule.keep_within_hourly),
        (Class::Daily, rule.keep_within_daily),
        (Class::Weekly, rule.keep_within_weekly),
        (Class::Monthly, rule.keep_within_monthly),
        (Class::Yearly, rule.keep_within_yearly),
    ]
    .into_iter()
    .filter_map(|(c, s)| s.map(|s| (c, s, None)))
    .collect();
    let keep_all = !rule.has_keep_rules();
    let last = list.len().saturating_sub(1);
    let mut out = Vec::with_capacity(list.len());
    for (nr, (name, created)) in list.iter().enumerate() {
        let created = *created;
        let mut reasons = Vec::new();
        let mut classes = Vec::new();
        if keep_all {
            reasons.push("no keep rule".to_string());
        }
        if let Some(w) = rule.keep_within {
            if created > w.before(latest) {
                reasons.push(format!("within {w}"));
            }
        }
        for (class, left, seen) in buckets.iter_mut() {
            if *left > 0 || *left == -1 {
                let val = class.bucket(created, nr);
                if Some(val) != *seen || nr == last {
                    let oldest = Some(val) == *seen && nr == last;
                    *seen = Some(val);
                    if *left > 0 {
                        *left -= 1;
                    }
                    reasons.push(if oldest {
                        format!("oldest {}", class.word())
                    } else {
                        class.word().to_string()
                    });
                    classes.push(*class);
                }
            }
        }
        for (class, span, seen) in within.iter_mut() {
            if created > span.before(latest) {
                let val = class.bucket(created, nr);
                if Some(val) != *seen || nr == last {
                    let oldest = Some(val) == *seen && nr == last;
                    *seen = Some(val);
                    reasons.push(format!(
                        "{}{} within {span}",
                        if oldest { "oldest " } else { "" },
                        class.word()
                    ));
                }
            }
        }
        let mut keep = !reasons.is_empty();
        if let Some(max) = rule.max_age {
            if created < max.before(now) {
                keep = false;
                reasons = vec![format!("older than max-age {max}")];
                classes.clear();
            }
        }
        if let Some(min) = rule.min_age {
            if created > min.before(now) && !keep {
                keep = true;
                reasons = vec![format!("younger than min-age {min}")];
            }
        }
        out.push(Decision {
            name: name.clone(),
            created,
            keep,
            reasons,
            classes,
        });
    }
    out
}

/// What prune does with one archive at one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// The destination's index in the policy.
    pub destination: usize,
    /// The archive.
    pub name: String,
    /// Its series.
    pub series: String,
    /// Its creation time.
    pub created: DateTime<Utc>,
    /// Kept, or deleted when the plan is carried out.
    pub keep: bool,
    /// Why (the rules, then any rail that overrode them).
    pub reasons: Vec<String>,
    /// Its lock's end now, when it has one that holds.
    pub locked_until: Option<DateTime<Utc>>,
    /// The retain-until a weekly, monthly or yearly keep extends its lock to.
    pub extend_lock_to: Option<DateTime<Utc>>,
}

/// Prune's options from the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Delete even when the newest complete archive is older than `rpo`.
    pub force: bool,
    /// Delete nothing when more than this many would go at one destination (else the
    /// destination's retention's `max-delete`).
    pub max_delete: Option<u32>,
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Every complete archive at every destination with a retention, in the policy's
    /// destination order, newest first within each series.
    pub items: Vec<Planned>,
    /// Rails that refuse the whole plan: when any is here, nothing is deleted.
    pub refusals: Vec<Refusal>,
}

/// A rail that refuses the whole plan: while any holds, nothing is deleted. Its `Display` (and
/// its JSON, a string) is the sentence the user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A series' newest complete archive anywhere is older than `rpo` and the plan would delete
    /// some of its archives: backups seem to have stopped.
    Rpo {
        /// The policy's rpo.
        rpo: Span,
        /// The series.
        series: String,
        /// Its newest complete archive.
        newest: String,
    },
    /// The plan deletes more at one destination than its cap.
    MaxDelete {
        /// The destination's index in the policy.
        destination: usize,
        /// The destination's name.
        name: String,
        /// How many the plan deletes there.
        planned: u32,
        /// The cap (`--max-delete`, else the retention's `max-delete`).
        limit: u32,
        /// Counted with the orphans prune would delete there too (the planner counts
        /// archives alone).
        with_orphans: bool,
    },
}

impl Refusal {
    /// Whether this refuses for `max-delete` at the destination of index `destination`.
    pub fn is_max_delete_at(&self, destination: usize) -> bool {
        matches!(self, Refusal::MaxDelete { destination: d, .. } if *d == destination)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Rpo { rpo, series, newest } => write!(
                f,
                "rpo {rpo}: the newest complete archive of {series}, {newest}, is older than rpo: backups seem to have stopped, so prune deletes nothing (fix the backups, or pass --force)"
            ),
            Refusal::MaxDelete {
                name,
                planned,
                limit,
                with_orphans: false,
                ..
            } => write!(
                f,
                "max-delete {limit}: the plan deletes {planned} archives at {name}; nothing is deleted (check the rules with --dry-run, then raise --max-delete)"
            ),
            Refusal::MaxDelete {
                name,
                planned,
                limit,
                with_orphans: true,
                ..
            } => write!(
                f,
                "max-delete {limit}: the plan deletes {planned} archives and orphans at {name}; nothing is deleted (check with --dry-run, then raise --max-delete)"
            ),
        }
    }
}

impl Serialize for Refusal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Plan {
    /// The archives the plan deletes.
    pub fn deletions(&self) -> impl Iterator<Item = &Planned> {
        self.items.iter().filter(|p| !p.keep)
    }
}

/// Plans prune for every destination of `policy` over `inventory` (whose destinations are the
/// policy's, in its order) at `now`. A destination without a retention (its own or the
/// policy's) keeps everything and is not listed.
///
/// The rails, each over the rules' decision: the newest complete archive of each series at a
/// destination is never deleted; a copy whose lock holds is never deleted (reported as kept);
/// nothing younger than `min-age` (in [`apply`]); when a series' newest complete archive
/// anywhere is older than `rpo`, deleting any of its archives refuses the plan unless
/// `force`; more deletions at one destination than `max-delete` refuses the plan.
pub fn plan(policy: &Policy, inventory: &Inventory, now: DateTime<Utc>, options: Options) -> Plan {
    let mut items = Vec::new();
    let mut refusals = Vec::new();
    let series = inventory.series();
    for (di, d) in policy.destinations.iter().enumerate() {
        let Some(rule) = policy.retention_of(d) else {
            continue;
        };
        let locked = d.lock.is_some();
        let held = d.legal_hold == Some(true);
        let mut deletions = 0u32;
        for (s, archives) in &series {
            // Complete copies here, with their locks.
            let here: Vec<(String, DateTime<Utc>, Option<DateTime<Utc>>)> = archives
                .iter()
                .filter_map(|a| {
                    let c = a
                        .copies
                        .iter()
                        .find(|c| c.destination == di && c.state == CopyState::Complete)?;
                    let lock = c
                        .lock
                        .filter(|l| l.holds_at(now))
                        .map(|l| l.until.unwrap_or(DateTime::<Utc>::MAX_UTC));
                    Some((a.name.clone(), a.created?, lock))
                })
                .collect();
            if here.is_empty() {
                continue;
            }
            let input: Vec<(String, DateTime<Utc>)> =
                here.iter().map(|(n, t, _)| (n.clone(), *t)).collect();
            let decided = apply(rule, &input, now);
            let mut series_deletes = 0u32;
            for (i, dec) in decided.into_iter().enumerate() {
                let lock = here
                    .iter()
                    .find(|(n, _, _)| *n == dec.name)
                    .and_then(|(_, _, l)| *l);
                let mut p = Planned {
                    destination: di,
                    name: dec.name,
                    series: s.to_string(),
                    created: dec.created,
                    keep: dec.keep,
                    reasons: dec.reasons,
                    locked_until: lock,
                    extend_lock_to: None,
                };
                if i == 0 && !p.keep {
                    p.keep = true;
                    p.reasons
                        .push("the newest complete archive of its series is never deleted".into());
                }
                if !p.keep && held {
                    p.keep = true;
                    p.reasons
                        .push("under a legal hold (legal-hold = true): never deleted".into());
                }
                if !p.keep {
                    if let Some(until) = lock {
                        p.keep = true;
                        p.reasons.push(format!(
                            "locked until {}: never deleted while locked",
                            until.format("%Y-%m-%dT%H:%M:%SZ")
                        ));
                    }
                }
                if p.keep && locked {
                    p.extend_lock_to = lock_for(rule, &dec.classes, p.created)
                        .filter(|want| *want > now && lock.is_none_or(|l| *want > l));
                }
                if !p.keep {
                    series_deletes += 1;
                }
                items.push(p);
            }
            deletions += series_deletes;
            if series_deletes > 0 && !options.force {
                if let (Some(rpo), Some(newest)) = (policy.rpo, inventory.newest_complete(s)) {
                    if newest.created.is_none_or(|t| t < rpo.before(now)) {
                        refusals.push(Refusal::Rpo {
                            rpo,
                            series: s.to_string(),
                            newest: newest.name.clone(),
                        });
                    }
                }
            }
        }
        let cap = options.max_delete.or(rule.max_delete);
        if let Some(cap) = cap {
            if deletions > cap {
                refusals.push(Refusal::MaxDelete {
                    destination: di,
                    name: d.name.clone(),
                    planned: deletions,
                    limit: cap,
                    with_orphans: false,
                });
            }
        }
    }
    Plan { items, refusals }
}

/// The retain-until a keep in `classes` earns: creation plus the class's period (`keep-weekly
/// = 4`: 4 weeks), the longest of them, never past `max-age`. `"unlimited"` earns `max-age`
/// when there is one, else nothing (no lock runs forever).
fn lock_for(rule: &Retention, classes: &[Class], created: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let cap = rule.max_age.map(|m| m.after(created));
    let mut best: Option<DateTime<Utc>> = None;
    for c in classes {
        let (k, unit) = match c {
            Class::Weekly => (
                rule.keep_weekly,
                Span {
                    weeks: 1,
                    ..Span::default()
                },
            ),
            Class::Monthly => (
                rule.keep_monthly,
                Span {
                    months: 1,
                    ..Span::default()
                },
            ),
            Class::Yearly => (
                rule.keep_yearly,
                Span {
                    years: 1,
                    ..Span::default()
                },
            ),
            _ => continue,
        };
        let until = match k {
            Some(Keep::N(n)) => {
                let span = Span {
                    weeks: unit.weeks * n,
                    months: unit.months * n,
                    years: unit.years * n,
                    ..Span::default()
                };
                Some(span.after(created))
            }
            Some(Keep::Unlimited) => cap,
            None => None,
        };
        let until = match (until, cap) {
            (Some(u), Some(c)) => Some(u.min(c)),
            (u, _) => u,
        };
        best = best.max(until);
    }
    best
}

#[cfg(test)]
mod tests;
