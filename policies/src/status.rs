//! Status: whether a policy's rules hold over an inventory, as a monitoring probe judges them.
//! Pure: the binary reads the stores into an [`Inventory`] and prints what [`judge`] returns.
//!
//! - **Placement** is required of the newest complete archive of each series: its complete
//!   copies, counted as `offsite plan` counts destinations (a lock counts while it holds).
//!   An older archive is judged only against the destinations whose own retention still keeps
//!   it (applied to the series' archives), with the rule capped at what those can reach: a
//!   local copy pruned after a week is not a failure; a cloud copy missing that the cloud's
//!   retention would keep is.
//! - **RPO**: the newest complete archive of each series is no older than `rpo`.
//! - **RTO**: some destination holding a complete copy of the newest archive of each series can
//!   restore it within `rto`, by the throughput its newest drill measured and its storage
//!   class's thaw time ([`crate::rto`]); not judged (and said so in [`Status::unjudged`]) while
//!   a destination no drill has measured could still be the one.
//! - **verify-every** (the zero of 3-2-1-1-0): every destination holding a complete copy has
//!   been proven by a deep verify or a drill that passed within `verify-every`.
//! - **Damage**: a copy whose manifest has no data, whose data has the wrong size, whose
//!   manifest is unreadable, or whose last deep check failed.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::inventory::{CopyState, Inventory};
use crate::placement::{judge as judge_placement, Held, Slot, Verdict};
use crate::policy::Policy;
use crate::rto::{self, Measured, Reach, Thaw};

/// The verdict on one series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesStatus {
    /// The series (`app-backup-*.tar.gz`).
    pub series: String,
    /// Archives of the series with at least one complete copy.
    pub complete_archives: usize,
    /// The newest complete archive.
    pub newest: Option<String>,
    /// Its creation time.
    pub newest_created: Option<DateTime<Utc>>,
    /// Its age in seconds at the time of judging.
    pub newest_age_seconds: Option<i64>,
    /// Its placement.
    pub placement: Option<Verdict>,
    /// Whether it is within `rpo` (`None` without an `rpo`).
    pub fresh: Option<bool>,
    /// Older complete archives that fall short of placement at the destinations whose
    /// retention still keeps them.
    pub older_unmet: usize,
    /// Whether some destination holding the newest archive can restore it within `rto`
    /// (`None` without an `rto`, or not judged yet: [`crate::rto::series_met`]).
    pub rto_met: Option<bool>,
    /// Each destination holding a complete copy of the newest archive, and how long a restore
    /// from it would take.
    pub restore: Vec<RestoreEstimate>,
}

/// How long restoring a series' newest archive from one destination would take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreEstimate {
    /// The destination's name.
    pub destination: String,
    /// The copy's stored bytes there.
    pub bytes: Option<u64>,
    /// The thaw time and the size at the throughput the destination's newest drill measured
    /// (`None` until a drill measured one there).
    #[serde(rename = "estimate_seconds", serialize_with = "rto::as_seconds")]
    pub estimate: Option<std::time::Duration>,
    /// Its storage class's thaw time, for an archive class.
    pub thaw: Option<Thaw>,
    /// How it stands against `rto` (`None` without one).
    pub rto: Option<Reach>,
}

/// The verdict on one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationStatus {
    /// The destination's name.
    pub name: String,
    /// Archives with a complete copy here.
    pub complete: usize,
    /// Copies here that are damaged or gone (see the module's list).
    pub damaged: usize,
    /// Uploads here that never committed.
    pub incomplete: usize,
    /// Whole copies whose manifest no trusted key signed (counted as nothing else).
    pub untrusted: usize,
    /// Whole copies whose creation time runs ahead of the clocks (counted as nothing else).
    pub future_dated: usize,
    /// Complete copies under a lock now.
    pub locked: usize,
    /// The latest lock's end among the copies here.
    pub locked_until: Option<DateTime<Utc>>,
    /// The latest deep verify or drill that passed here.
    pub last_proven: Option<DateTime<Utc>>,
    /// Whether `last_proven` is within `verify-every` (`None` without one, or with no copy).
    pub proven: Option<bool>,
    /// The newest restore a drill that passed here measured.
    pub restore_measured: Option<Measured>,
    /// The thaw time of the destination's storage class, for an archive class.
    pub thaw: Option<Thaw>,
}

/// The whole verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    /// Per series, by name.
    pub series: Vec<SeriesStatus>,
    /// Per destination, in the policy's order.
    pub destinations: Vec<DestinationStatus>,
    /// Each damaged copy, in words.
    pub damage: Vec<String>,
    /// Each rule that does not hold (placement, rpo, rto, verify-every), in words.
    pub unmet: Vec<String>,
    /// Each rule that could not be judged yet (an `rto` before a drill measured a restore),
    /// in words: said, but not a failure.
    pub unjudged: Vec<String>,
}

impl Status {
    /// Every rule holds and nothing is damaged.
    pub fn ok(&self) -> bool {
        self.damage.is_empty() && self.unmet.is_empty()
    }
}

/// Judges `inventory` (whose destinations are the policy's, in `slots` order) at `now`.
pub fn judge(policy: &Policy, slots: &[Slot], inventory: &Inventory, now: DateTime<Utc>) -> Status {
    let mut series_out = Vec::new();
    let mut unmet = Vec::new();
    let mut unjudged = Vec::new();
    let mut damage = Vec::new();
    let speeds = Speeds::of(policy, slots, inventory, now);
    for (series, archives) in inventory.series() {
        let complete: Vec<_> = archives.iter().filter(|a| a.is_complete()).collect();
        let newest = complete.last().copied();
        let placement = newest.map(|a| {
            let held: Vec<Held> = a
                .complete()
                .map(|c| Held {
                    slot: c.destination,
                    locked: c.lock.is_some_and(|l| l.holds_at(now)),
                })
                .collect();
            judge_placement(policy.placement, slots, &held)
        });
        if let (Some(a), Some(v)) = (newest, &placement) {
            if !v.met {
                unmet.push(format!(
                    "placement of {} (newest of {series}): {}",
                    a.name,
                    v.missing.join("; ")
                ));
            }
        }
        let created = newest.and_then(|a| a.created);
        let fresh = policy.rpo.map(|rpo| match created {
            Some(t) => rpo.after(t) >= now,
            None => false,
        });
        if fresh == Some(false) {
            let rpo = policy.rpo.expect("rpo");
            unmet.push(match (newest, created) {
                (Some(a), Some(t)) => format!(
                    "rpo {rpo}: the newest complete archive of {series}, {}, was created {}, {} ago",
                    a.name,
                    t.format("%Y-%m-%dT%H:%M:%SZ"),
                    age_words(now - t)
                ),
                _ => format!("rpo {rpo}: {series} has no complete archive"),
            });
        }
        let (rto_met, restore) = match newest {
            Some(a) => speeds.judge(a, series, &mut unmet, &mut unjudged),
            None => (None, Vec::new()),
        };
        let older_unmet = judge_older(
            policy,
            slots,
            &complete,
            newest.copied(),
            now,
            series,
            &mut unmet,
        );
        series_out.push(SeriesStatus {
            series: series.to_string(),
            complete_archives: complete.len(),
            newest: newest.map(|a| a.name.clone()),
            newest_created: created,
            newest_age_seconds: created.map(|t| (now - t).num_seconds()),
            placement,
            fresh,
            older_unmet,
            rto_met,
            restore,
        });
    }
    // A policy of snapshots alone places no archives, so none missing is no rule unmet.
    if series_out.is_empty() && policy.has_archives() {
        unmet.push("no archives at any destination: nothing is backed up under this policy".into());
    }

    let mut dests: Vec<DestinationStatus> = inventory
        .destinations
        .iter()
        .enumerate()
        .map(|(i, d)| DestinationStatus {
            name: d.name.clone(),
            complete: 0,
            damaged: 0,
            incomplete: 0,
            untrusted: 0,
            future_dated: 0,
            locked: 0,
            locked_until: None,
            last_proven: None,
            proven: None,
            restore_measured: speeds.measured[i],
            thaw: speeds.thaws[i],
        })
        .collect();
    for a in inventory.archives() {
        for c in &a.copies {
            let d = &mut dests[c.destination];
            let failed_proof = c.proof.is_some_and(|p| p.deep && !p.passed);
            match c.state {
                CopyState::Complete if failed_proof => {
                    d.damaged += 1;
                    damage.push(format!(
                        "{} at {}: its last deep check failed; verify --deep again or push it again",
                        a.name, d.name
                    ));
                }
                CopyState::Complete => d.complete += 1,
                CopyState::Incomplete => d.incomplete += 1,
                CopyState::FutureDated => {
                    d.future_dated += 1;
                    damage.push(format!(
                        "{} at {}: future-dated: its creation time runs ahead of the clocks that judge it (see `offsite ls`), so it is never the newest and counts for nothing; fix the clock or the name of the host that pushed it",
                        a.name, d.name
                    ));
                }
                CopyState::Untrusted => {
                    d.untrusted += 1;
                    damage.push(format!(
                        "{} at {}: untrusted: its manifest is not signed by a trusted key, so it counts for nothing (see `offsite ls` for the signer; adopt your own unsigned history with `offsite sign`, delete a planted one with `offsite prune --delete-untrusted`)",
                        a.name, d.name
                    ));
                }
                state => {
                    d.damaged += 1;
                    damage.push(format!(
                        "{} at {}: {}",
                        a.name,
                        d.name,
                        match state {
                            CopyState::MissingData => "the manifest is there but its data is gone",
                            CopyState::WrongSize => "the data is not the size its manifest records",
                            _ => "the manifest cannot be read",
                        }
                    ));
                }
            }
            if c.state == CopyState::Complete {
                if let Some(l) = c.lock.filter(|l| l.holds_at(now)) {
                    d.locked += 1;
                    d.locked_until = d.locked_until.max(l.until);
                }
                if let Some(p) = c.proof.filter(|p| p.deep && p.passed) {
                    d.last_proven = d.last_proven.max(Some(p.at));
                }
            }
        }
    }
    if let Some(every) = policy.verify_every {
        for d in dests.iter_mut().filter(|d| d.complete > 0) {
            let ok = d.last_proven.is_some_and(|t| every.after(t) >= now);
            d.proven = Some(ok);
            if !ok {
                unmet.push(match d.last_proven {
                    Some(t) => format!(
                        "verify-every {every}: {} was last proven {} ago; run offsite drill",
                        d.name,
                        age_words(now - t)
                    ),
                    None => format!(
                        "verify-every {every}: no deep verify or drill ever proved a copy at {}; run offsite drill",
                        d.name
                    ),
                });
            }
        }
    }
    Status {
        series: series_out,
        destinations: dests,
        damage,
        unmet,
        unjudged,
    }
}

/// What decides how fast each destination restores: the newest restore a passed drill
/// measured there, its storage class's thaw time, and the policy's `rto` from now.
struct Speeds<'a> {
    policy: &'a Policy,
    measured: Vec<Option<Measured>>,
    thaws: Vec<Option<Thaw>>,
    rto: Option<std::time::Duration>,
    names: Vec<&'a str>,
}

impl<'a> Speeds<'a> {
    fn of(
        policy: &'a Policy,
        slots: &[Slot],
        inventory: &'a Inventory,
        now: DateTime<Utc>,
    ) -> Self {
        let mut measured: Vec<Option<Measured>> = vec![None; inventory.destinations.len()];
        for c in inventory.archives().flat_map(|a| &a.copies) {
            let Some(m) = c
                .proof
                .filter(|p| p.deep && p.passed)
                .and_then(|p| p.restore)
            else {
                continue;
            };
            let newest = &mut measured[c.destination];
            if newest.is_none_or(|n| n.at < m.at) {
                *newest = Some(m);
            }
        }
        let thaws = (0..inventory.destinations.len())
            .map(|i| {
                let class = policy
                    .destinations
                    .get(i)
                    .and_then(|d| d.storage_class.as_deref());
                slots.get(i).and_then(|s| rto::thaw(s.kind, class))
            })
            .collect();
        Speeds {
            policy,
            measured,
            thaws,
            rto: policy.rto.map(|r| rto::span_duration(r, now)),
            names: inventory
                .destinations
                .iter()
                .map(|d| d.name.as_str())
                .collect(),
        }
    }

    /// The restore estimate at each destination holding `newest`, and the series' rto verdict;
    /// a sentence in `unmet` when it is not met, in `unjudged` when it cannot be judged yet.
    fn judge(
        &self,
        newest: &crate::inventory::Archive,
        series: &str,
        unmet: &mut Vec<String>,
        unjudged: &mut Vec<String>,
    ) -> (Option<bool>, Vec<RestoreEstimate>) {
        let estimates: Vec<RestoreEstimate> = newest
            .complete()
            .map(|c| {
                let (measured, thaw) = (self.measured[c.destination], self.thaws[c.destination]);
                let estimate = c
                    .size
                    .and_then(|size| rto::estimate(size, measured.as_ref(), thaw));
                RestoreEstimate {
                    destination: self.names[c.destination].to_string(),
                    bytes: c.size,
                    estimate,
                    thaw,
                    rto: self.rto.map(|rto| rto::reach(estimate, thaw, rto)),
                }
            })
            .collect();
        let (Some(span), Some(_)) = (self.policy.rto, self.rto) else {
            return (None, estimates);
        };
        let reaches: Vec<Reach> = estimates.iter().filter_map(|e| e.rto).collect();
        let met = rto::series_met(&reaches);
        let why = |want: Reach| -> Vec<String> {
            estimates
                .iter()
                .filter(|e| e.rto == Some(want))
                .map(|e| match (want, e.thaw, e.estimate) {
                    (Reach::Never, Some(t), _) => format!("{}: {t}", e.destination),
                    (_, _, Some(d)) => format!(
                        "{} about {} by its last drill",
                        e.destination,
                        rto::duration_words(d)
                    ),
                    _ => e.destination.clone(),
                })
                .collect()
        };
        match met {
            Some(false) => {
                let mut reasons = why(Reach::Over);
                reasons.extend(why(Reach::Never));
                unmet.push(format!(
                    "rto {span}: no destination holding {}, the newest of {series}, can restore it within {}: {}",
                    newest.name,
                    span.words(),
                    reasons.join("; ")
                ));
            }
            None if !estimates.is_empty() => {
                let unmeasured = why(Reach::Unmeasured).join(", ");
                let others = if reaches.iter().all(|r| *r == Reach::Unmeasured) {
                    String::new()
                } else {
                    format!(
                        " (the other destinations holding {} cannot restore it within {span})",
                        newest.name
                    )
                };
                unjudged.push(format!(
                    "rto {span}: not judged for {series} yet: no drill has measured a restore at {unmeasured}{others}; run offsite drill"
                ))
            }
            _ => {}
        }
        (met, estimates)
    }
}

/// Judges the complete archives of a series older than its newest against the destinations
/// whose retention still keeps each; one sentence in `unmet` for the series when any falls
/// short. Returns how many do.
fn judge_older(
    policy: &Policy,
    slots: &[Slot],
    complete: &[&&crate::inventory::Archive],
    newest: Option<&crate::inventory::Archive>,
    now: DateTime<Utc>,
    series: &str,
    unmet: &mut Vec<String>,
) -> usize {
    use std::collections::{BTreeMap, BTreeSet};
    let all: Vec<(String, DateTime<Utc>)> = complete
        .iter()
        .filter_map(|a| Some((a.name.clone(), a.created?)))
        .collect();
    // Per destination: the archives its retention keeps (None: it keeps everything).
    let kept: Vec<Option<BTreeSet<String>>> = policy
        .destinations
        .iter()
        .map(|d| {
            policy.retention_of(d).map(|r| {
                crate::retention::apply(r, &all, now)
                    .into_iter()
                    .filter(|x| x.keep)
                    .map(|x| x.name)
                    .collect()
            })
        })
        .collect();
    let mut short: BTreeMap<String, String> = BTreeMap::new();
    for a in complete
        .iter()
        .filter(|a| Some(a.name.as_str()) != newest.map(|n| n.name.as_str()))
    {
        let keepers: Vec<usize> = (0..slots.len())
            .filter(|&i| kept[i].as_ref().is_none_or(|k| k.contains(&a.name)))
            .collect();
        if keepers.is_empty() {
            continue;
        }
        let kinds: BTreeSet<_> = keepers.iter().map(|&i| slots[i].kind).collect();
        let rule = policy.placement;
        let capped = crate::policy::Placement {
            copies: rule.copies.min(keepers.len() as u32),
            media: rule.media.min(kinds.len() as u32),
            offsite: rule
                .offsite
                .min(keepers.iter().filter(|&&i| slots[i].offsite).count() as u32),
            immutable: rule
                .immutable
                .min(keepers.iter().filter(|&&i| slots[i].locked).count() as u32),
        };
        let held: Vec<Held> = a
            .complete()
            .filter(|c| keepers.contains(&c.destination))
            .map(|c| Held {
                slot: c.destination,
                // A push-time lock that has run out is not a fault of an older archive.
                locked: slots[c.destination].locked,
            })
            .collect();
        let v = judge_placement(capped, slots, &held);
        if !v.met {
            short.insert(a.name.clone(), v.missing.join("; "));
        }
    }
    if let Some((name, why)) = short.iter().next_back() {
        unmet.push(format!(
            "placement of {} older archive(s) of {series} at the destinations whose retention keeps them, the newest of them {name}: {why}",
            short.len()
        ));
    }
    short.len()
}

/// `3d 4h`, `2h 5m`, `40s`.
pub fn age_words(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Copy, Destination, Kind, Lock, Proof};
    use crate::placement::slots;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn policy() -> Policy {
        let text = format!(
            "version = 1\nname = \"app\"\nrpo = \"26h\"\nverify-every = \"7d\"\n[encryption]\nrecipients = [\"{RECIPIENT}\"]\n\
             [[destination]]\nname = \"local\"\nurl = \"file:///a\"\n\
             [[destination]]\nname = \"s3\"\nurl = \"s3://b/app\"\nlock = \"compliance\"\nlock-days = 7\n\
             [[destination]]\nname = \"dr\"\nurl = \"gs://c/app\"\n\
             [placement]\ncopies = 3\nmedia = 2\noffsite = 1\nimmutable = 1\n"
        );
        Policy::parse(&text, "p.toml").unwrap()
    }

    fn inventory(p: &Policy) -> Inventory {
        Inventory::new(
            p.destinations
                .iter()
                .map(|d| Destination {
                    name: d.name.clone(),
                    kind: d.kind(),
                    offsite: d.is_offsite(),
                })
                .collect(),
        )
    }

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
    }

    fn copy(dest: usize, state: CopyState) -> Copy {
        Copy {
            destination: dest,
            state,
            size: Some(10),
            lock: None,
            proof: None,
        }
    }

    fn full(
        inv: &mut Inventory,
        name: &str,
        created: DateTime<Utc>,
        proven: Option<DateTime<Utc>>,
    ) {
        for d in 0..3 {
            let mut c = copy(d, CopyState::Complete);
            if d == 1 {
                c.lock = Some(Lock {
                    until: Some(created + chrono::Duration::days(7)),
                    legal_hold: false,
                });
            }
            c.proof = proven.map(|at| Proof {
                at,
                deep: true,
                passed: true,
                restore: None,
            });
            inv.add(name, Some(created), c);
        }
    }

    #[test]
    fn three_two_one_one_zero_holds_for_a_fresh_proven_archive() {
        let p = policy();
        let mut inv = inventory(&p);
        full(
            &mut inv,
            "app-backup-20261126_020000.tar.gz",
            t(26, 2),
            Some(t(26, 3)),
        );
        let s = judge(&p, &slots(&p), &inv, t(26, 12));
        assert!(s.ok(), "{:?} {:?}", s.unmet, s.damage);
        assert_eq!(s.series[0].newest_age_seconds, Some(10 * 3600));
        assert_eq!(s.destinations[1].locked, 1);
        assert_eq!(
            s.destinations[1].locked_until,
            Some(t(26, 2) + chrono::Duration::days(7))
        );
    }

    #[test]
    fn names_each_rule_that_fails() {
        let p = policy();
        let mut inv = inventory(&p);
        // Old and proven long ago; a newer one only on local disk.
        full(
            &mut inv,
            "app-backup-20261101_020000.tar.gz",
            t(1, 2),
            Some(t(1, 3)),
        );
        inv.add(
            "app-backup-20261110_020000.tar.gz",
            Some(t(10, 2)),
            copy(0, CopyState::Complete),
        );
        inv.add(
            "app-backup-20261110_020000.tar.gz",
            Some(t(10, 2)),
            copy(2, CopyState::MissingData),
        );
        let s = judge(&p, &slots(&p), &inv, t(20, 2));
        assert_eq!(
            s.unmet,
            [
                "placement of app-backup-20261110_020000.tar.gz (newest of app-backup-*.tar.gz): 1 copy of 3 wanted; 1 of 2 kinds of storage wanted (only file); 0 off-site copies of 1 wanted; 0 locked copies of 1 wanted",
                "rpo 26h: the newest complete archive of app-backup-*.tar.gz, app-backup-20261110_020000.tar.gz, was created 2026-11-10T02:00:00Z, 10d 0h ago",
                "verify-every 7d: local was last proven 18d 23h ago; run offsite drill",
                "verify-every 7d: s3 was last proven 18d 23h ago; run offsite drill",
                "verify-every 7d: dr was last proven 18d 23h ago; run offsite drill",
            ]
        );
        assert_eq!(
            s.damage,
            ["app-backup-20261110_020000.tar.gz at dr: the manifest is there but its data is gone"]
        );
        // The lock of the old archive ran out: the s3 copy no longer counts as immutable.
        assert_eq!(s.destinations[1].locked, 0);
    }

    #[test]
    fn a_failed_deep_check_is_damage() {
        let p = policy();
        let mut inv = inventory(&p);
        full(
            &mut inv,
            "db-20261126_020000.sql.gz",
            t(26, 2),
            Some(t(26, 3)),
        );
        let mut bad = copy(2, CopyState::Complete);
        bad.proof = Some(Proof {
            at: t(26, 4),
            deep: true,
            passed: false,
            restore: None,
        });
        inv.add("db-20261125_020000.sql.gz", Some(t(25, 2)), bad);
        let s = judge(&p, &slots(&p), &inv, t(26, 5));
        assert_eq!(s.damage.len(), 1, "{:?}", s.damage);
        // The older archive has one copy where every destination would keep it: short too.
        assert_eq!(s.series[0].older_unmet, 1, "{:?}", s.unmet);
        assert_eq!(s.unmet.len(), 1, "{:?}", s.unmet);
    }

    #[test]
    fn older_archives_are_judged_where_retention_keeps_them() {
        // local keeps 2; the clouds keep everything.
        let text = format!(
            "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{RECIPIENT}\"]\n\
             [[destination]]\nname = \"local\"\nurl = \"file:///a\"\nretention = {{ keep-last = 2 }}\n\
             [[destination]]\nname = \"s3\"\nurl = \"s3://b/app\"\n\
             [[destination]]\nname = \"dr\"\nurl = \"gs://c/app\"\n\
             [placement]\ncopies = 3\nmedia = 2\noffsite = 1\n"
        );
        let p = Policy::parse(&text, "p.toml").unwrap();
        let mut inv = inventory(&p);
        for day in 20..26 {
            let name = format!("app-202611{day}_020000.tar.gz");
            // The local copy of all but the two newest was pruned: not a failure.
            if day >= 24 {
                inv.add(&name, Some(t(day, 2)), copy(0, CopyState::Complete));
            }
            inv.add(&name, Some(t(day, 2)), copy(1, CopyState::Complete));
            // The DR copy of the 21st is missing: its retention would keep it.
            if day != 21 {
                inv.add(&name, Some(t(day, 2)), copy(2, CopyState::Complete));
            }
        }
        let s = judge(&p, &slots(&p), &inv, t(26, 3));
        assert_eq!(s.series[0].older_unmet, 1, "{:?}", s.unmet);
        assert_eq!(
            s.unmet,
            ["placement of 1 older archive(s) of app-*.tar.gz at the destinations whose retention keeps them, the newest of them app-20261121_020000.tar.gz: 1 copy of 2 wanted; 1 of 2 kinds of storage wanted (only s3)"]
        );
    }

    /// local (file), cold (S3 GLACIER), vault (Azure Archive); rto 30min.
    fn rto_policy() -> Policy {
        let text = format!(
            "version = 1\nname = \"app\"\nrto = \"30min\"\n[encryption]\nrecipients = [\"{RECIPIENT}\"]\n\
             [[destination]]\nname = \"local\"\nurl = \"file:///a\"\n\
             [[destination]]\nname = \"cold\"\nurl = \"s3://b/app\"\nstorage-class = \"GLACIER\"\n\
             [[destination]]\nname = \"vault\"\nurl = \"az://acct/c/app\"\nstorage-class = \"Archive\"\n"
        );
        Policy::parse(&text, "p.toml").unwrap()
    }

    const MIB: u64 = 1 << 20;

    /// A complete copy of `size` stored bytes, proven at `at` by a drill that measured
    /// `measured` (bytes, seconds).
    fn drilled(dest: usize, size: u64, at: DateTime<Utc>, measured: Option<(u64, u64)>) -> Copy {
        Copy {
            destination: dest,
            state: CopyState::Complete,
            size: Some(size),
            lock: None,
            proof: Some(Proof {
                at,
                deep: true,
                passed: true,
                restore: measured.map(|(bytes, secs)| rto::Measured {
                    at,
                    bytes,
                    took: std::time::Duration::from_secs(secs),
                }),
            }),
        }
    }

    #[test]
    fn rto_is_not_judged_before_a_drill_measured_a_restore_where_one_could_meet_it() {
        let p = rto_policy();
        let mut inv = inventory(&p);
        let name = "app-20261126_020000.tar.gz";
        inv.add(name, Some(t(26, 2)), copy(0, CopyState::Complete));
        inv.add(name, Some(t(26, 2)), copy(1, CopyState::Complete));
        let s = judge(&p, &slots(&p), &inv, t(26, 3));
        assert_eq!(s.series[0].rto_met, None);
        assert!(s.ok(), "{:?}", s.unmet);
        assert_eq!(
            s.unjudged,
            ["rto 30min: not judged for app-*.tar.gz yet: no drill has measured a restore at local (the other destinations holding app-20261126_020000.tar.gz cannot restore it within 30min); run offsite drill"]
        );
        let r = &s.series[0].restore;
        assert_eq!((r[0].rto, r[0].estimate), (Some(Reach::Unmeasured), None));
        assert_eq!(r[1].rto, Some(Reach::Never));
        assert_eq!(r[1].thaw.unwrap().hours, 5);
        assert_eq!(s.destinations[2].thaw.unwrap().class, "Azure Archive");
    }

    #[test]
    fn rto_is_met_by_one_fast_holder_and_missed_when_every_holder_is_slow_or_thawing() {
        let p = rto_policy();
        let name = "app-20261126_020000.tar.gz";
        let older = "app-20261125_020000.tar.gz";
        // An older archive measured slow at local, a newer drill fast: the newest counts.
        let mut inv = inventory(&p);
        inv.add(
            older,
            Some(t(25, 2)),
            drilled(0, MIB, t(25, 3), Some((MIB, 600))),
        );
        inv.add(
            name,
            Some(t(26, 2)),
            drilled(0, 100 * MIB, t(26, 3), Some((10 * MIB, 2))),
        );
        inv.add(name, Some(t(26, 2)), copy(1, CopyState::Complete));
        let s = judge(&p, &slots(&p), &inv, t(26, 4));
        assert_eq!(s.series[0].rto_met, Some(true), "{:?}", s.unmet);
        assert_eq!(
            s.series[0].restore[0].estimate,
            Some(std::time::Duration::from_secs(20))
        );
        assert_eq!(s.destinations[0].restore_measured.unwrap().at, t(26, 3));
        assert!(
            s.ok() && s.unjudged.is_empty(),
            "{:?} {:?}",
            s.unmet,
            s.unjudged
        );

        // Only the older, slow measurement: 100 MiB at 1 MiB per 10 min is over 16 hours.
        let mut inv = inventory(&p);
        inv.add(
            older,
            Some(t(25, 2)),
            drilled(0, MIB, t(25, 3), Some((MIB, 600))),
        );
        inv.add(name, Some(t(26, 2)), drilled(0, 100 * MIB, t(26, 3), None));
        inv.add(name, Some(t(26, 2)), copy(1, CopyState::Complete));
        let s = judge(&p, &slots(&p), &inv, t(26, 4));
        assert_eq!(s.series[0].rto_met, Some(false));
        assert_eq!(
            s.unmet,
            ["rto 30min: no destination holding app-20261126_020000.tar.gz, the newest of app-*.tar.gz, can restore it within 30 minutes: local about 16h 40m by its last drill; cold: S3 GLACIER needs up to 5 hours to thaw"]
        );
    }

    #[test]
    fn rto_is_missed_without_a_drill_where_every_holder_is_an_archive_class() {
        let p = rto_policy();
        let mut inv = inventory(&p);
        let name = "app-20261126_020000.tar.gz";
        inv.add(name, Some(t(26, 2)), copy(1, CopyState::Complete));
        inv.add(name, Some(t(26, 2)), copy(2, CopyState::Complete));
        // A damaged copy at local holds nothing.
        inv.add(name, Some(t(26, 2)), copy(0, CopyState::MissingData));
        let s = judge(&p, &slots(&p), &inv, t(26, 3));
        assert_eq!(s.series[0].rto_met, Some(false));
        assert!(
            s.unmet.iter().any(|u| u.ends_with(
                "within 30 minutes: cold: S3 GLACIER needs up to 5 hours to thaw; vault: Azure Archive needs up to 15 hours to thaw"
            )),
            "{:?}",
            s.unmet
        );
        // Without an rto nothing is judged, but the estimates are there.
        let mut p = p;
        p.rto = None;
        let s = judge(&p, &slots(&p), &inv, t(26, 3));
        assert_eq!(s.series[0].rto_met, None);
        assert!(s.unjudged.is_empty());
        assert_eq!(s.series[0].restore.len(), 2);
        assert_eq!(s.series[0].restore[0].rto, None);
    }

    #[test]
    fn nothing_stored_is_not_ok() {
        let p = policy();
        let s = judge(&p, &slots(&p), &inventory(&p), t(26, 5));
        assert!(!s.ok());
        assert!(s.unmet[0].contains("no archives"), "{:?}", s.unmet);
    }

    proptest! {
        /// Over random inventories: placement is judged on the newest complete archive of each
        /// series and nothing else; status is ok only when every series' newest archive meets
        /// placement and rpo, every holding destination is proven, and nothing is damaged.
        #[test]
        fn judges_the_newest_complete_archive_of_each_series(
            archives in proptest::collection::vec(
                (0usize..2, 0u32..20, proptest::collection::vec((0usize..3, 0u8..4, any::<bool>(), proptest::option::of(0u32..20)), 0..4)),
                0..12),
            now_day in 0u32..25,
        ) {
            let p = policy();
            let mut inv = inventory(&p);
            let now = t(1, 0) + chrono::Duration::days(i64::from(now_day) + 5);
            for (series, hour, copies) in &archives {
                let created = t(1, 0) + chrono::Duration::hours(i64::from(*hour) * 13);
                let name = format!("{}-{}.tar.gz", ["app", "db"][*series], created.format("%Y%m%d_%H%M%S"));
                for (dest, state, locked, proof) in copies {
                    let state = [CopyState::Complete, CopyState::Incomplete, CopyState::MissingData, CopyState::Complete][*state as usize];
                    inv.add(&name, Some(created), Copy {
                        destination: *dest,
                        state,
                        size: None,
                        lock: locked.then_some(Lock { until: Some(created + chrono::Duration::days(7)), legal_hold: false }),
                        proof: proof.map(|d| Proof { at: created + chrono::Duration::hours(i64::from(d)), deep: true, passed: true, restore: None }),
                    });
                }
            }
            let s = judge(&p, &slots(&p), &inv, now);
            for series in &s.series {
                let newest = inv.newest_complete(&series.series);
                prop_assert_eq!(series.newest.as_deref(), newest.map(|a| a.name.as_str()));
                prop_assert_eq!(series.placement.is_some(), newest.is_some());
                if let (Some(a), Some(v)) = (newest, &series.placement) {
                    let dests: std::collections::BTreeSet<usize> = a.complete().map(|c| c.destination).collect();
                    prop_assert_eq!(v.copies as usize, dests.len());
                }
            }
            let all_placed = s.series.iter().all(|x| x.placement.as_ref().is_some_and(|v| v.met) && x.older_unmet == 0);
            let all_fresh = s.series.iter().all(|x| x.fresh == Some(true));
            let all_proven = s.destinations.iter().all(|d| d.complete == 0 || d.proven == Some(true));
            let damaged = inv.archives().flat_map(|a| &a.copies).any(|c| c.state == CopyState::MissingData);
            prop_assert_eq!(s.ok(), !s.series.is_empty() && all_placed && all_fresh && all_proven && !damaged);
            prop_assert_eq!(s.destinations.len(), 3);
            let _ = Kind::File;
        }
    }
}
