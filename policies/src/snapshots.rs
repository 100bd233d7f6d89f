//! Snapshot retention: which volume snapshots `offsite snapshot prune` deletes, by the same
//! rules as archives ([`crate::retention::apply`]) and the same rails, plus the ones only
//! snapshots need. Pure: the binary lists the snapshots of one region and carries the plan out.
//!
//! Each volume is a series. Within a region:
//! - a snapshot still being made or copied (`pending`) is never deleted, and neither is one a
//!   copy in progress reads from (`in use`);
//! - the newest completed snapshot of each volume is never deleted, whatever `max-age` says;
//! - the retention rule decides the other completed ones;
//! - a failed snapshot (the provider gave up on it) holds no data and is deleted once older
//!   than `min-age`;
//! - the plan is refused as a whole (nothing deleted) when it would delete more than
//!   `max-delete` snapshots, or, unless forced, when a volume's newest completed snapshot is
//!   older than the policy's `rpo` (snapshots seem to have stopped); a volume retired on
//!   purpose (taken out of the section's `volumes`) has no rpo rail, and keeps its newest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::duration::Span;
use crate::policy::Retention;
use crate::retention::{apply, Options};

/// A snapshot's state, as far as retention cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Being made or copied.
    Pending,
    /// Complete.
    Completed,
    /// Given up by the provider.
    Failed,
}

/// One snapshot in a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The provider's id.
    pub id: String,
    /// The volume it was made of: the series.
    pub volume: String,
    /// When its data was taken.
    pub created: DateTime<Utc>,
    /// Its state.
    pub state: State,
    /// A copy in progress reads from it, or the provider says it is in use.
    pub in_use: bool,
    /// Its volume was retired on purpose (the section no longer names it): no new snapshots
    /// are due, so the rpo rail does not hold for it.
    pub retired: bool,
}

/// What prune does with one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The provider's id.
    pub id: String,
    /// Its volume.
    pub volume: String,
    /// When its data was taken.
    pub created: DateTime<Utc>,
    /// Kept, or deleted when the plan is carried out.
    pub keep: bool,
    /// Why.
    pub reasons: Vec<String>,
}

/// The plan for one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Every snapshot, by volume, newest first.
    pub items: Vec<Decision>,
    /// Rails that refuse the whole plan: when any is here, nothing is deleted.
    pub refusals: Vec<Refusal>,
}

/// A rail that refuses a region's whole plan: while any holds, nothing is deleted. Its
/// `Display` (and its JSON, a string) is the sentence the user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A volume's newest completed snapshot is older than `rpo`: snapshots seem to have
    /// stopped (not forced, volume not retired).
    Rpo {
        /// The policy's rpo.
        rpo: Span,
        /// The volume.
        volume: String,
        /// The region, as the plan names it.
        place: String,
        /// When the volume's newest completed snapshot's data was taken.
        newest: DateTime<Utc>,
    },
    /// The plan deletes more snapshots in the region than its cap.
    MaxDelete {
        /// The cap (`--max-delete`, else the retention's `max-delete`).
        limit: u32,
        /// How many the plan deletes.
        planned: usize,
        /// The region, as the plan names it.
        place: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Rpo {
                rpo,
                volume,
                place,
                newest,
            } => write!(
                f,
                "rpo {rpo}: the newest completed snapshot of {volume} in {place} is from {}; snapshots seem to have stopped, so nothing is deleted (fix them, or prune with --force)",
                newest.format("%Y-%m-%dT%H:%M:%SZ")
            ),
            Refusal::MaxDelete {
                limit,
                planned,
                place,
            } => write!(
                f,
                "max-delete {limit}: the plan deletes {planned} snapshots in {place}; nothing is deleted (check with --dry-run, then raise --max-delete)"
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
    /// The snapshots the plan deletes.
    pub fn deletions(&self) -> impl Iterator<Item = &Decision> {
        self.items.iter().filter(|d| !d.keep)
    }
}

/// Decides the snapshots of one region (`place` names it in refusals) under `rule` (`None`:
/// keep everything), at `now`.
pub fn plan(
    place: &str,
    rule: Option<&Retention>,
    items: &[Item],
    now: DateTime<Utc>,
    rpo: Option<Span>,
    options: Options,
) -> Plan {
    let mut by_volume: BTreeMap<&str, Vec<&Item>> = BTreeMap::new();
    for i in items {
        by_volume.entry(i.volume.as_str()).or_default().push(i);
    }
    let mut out = Vec::new();
    let mut refusals = Vec::new();
    let min_age = rule.and_then(|r| r.min_age);
    for (volume, mut snaps) in by_volume {
        snaps.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
        let completed: Vec<(String, DateTime<Utc>)> = snaps
            .iter()
            .filter(|s| s.state == State::Completed)
            .map(|s| (s.id.clone(), s.created))
            .collect();
        let newest = completed.first().map(|c| c.0.clone());
        let retired = snaps.iter().any(|s| s.retired);
        if let (Some(rpo), Some((_, t))) = (rpo, completed.first()) {
            if *t < rpo.before(now) && !options.force && !retired {
                refusals.push(Refusal::Rpo {
                    rpo,
                    volume: volume.to_string(),
                    place: place.to_string(),
                    newest: *t,
                });
            }
        }
        let decided: Verdicts = match rule {
            Some(r) => apply(r, &completed, now)
                .into_iter()
                .map(|d| (d.name, (d.keep, d.reasons)))
                .collect(),
            None => BTreeMap::new(),
        };
        for s in snaps {
            let young = min_age.is_some_and(|m| s.created > m.before(now));
            let (keep, reasons) = decide(s, newest.as_deref(), retired, young, &decided);
            out.push(Decision {
                id: s.id.clone(),
                volume: volume.to_string(),
                created: s.created,
                keep,
                reasons,
            });
        }
    }
    let deletions = out.iter().filter(|d| !d.keep).count();
    let cap = options
        .max_delete
        .or_else(|| rule.and_then(|r| r.max_delete));
    if let Some(cap) = cap {
        if deletions as u32 > cap {
            refusals.push(Refusal::MaxDelete {
                limit: cap,
                planned: deletions,
                place: place.to_string(),
            });
        }
    }
    Plan {
        items: out,
        refusals,
    }
}

/// Retention's verdicts on a volume's completed snapshots, by id: keep, and why.
type Verdicts = BTreeMap<String, (bool, Vec<String>)>;

/// What prune does with one snapshot of a volume whose newest completed one is `newest`;
/// `young`: within `min-age`; `decided`: the retention rule's verdicts.
fn decide(
    s: &Item,
    newest: Option<&str>,
    retired: bool,
    young: bool,
    decided: &Verdicts,
) -> (bool, Vec<String>) {
    match s.state {
        State::Pending => (true, vec!["pending".to_string()]),
        State::Failed if young => (true, vec!["failed, younger than min-age".to_string()]),
        State::Failed => (
            false,
            vec!["failed at the provider: holds no data".to_string()],
        ),
        State::Completed if s.in_use => (true, vec!["in use".to_string()]),
        State::Completed if newest == Some(s.id.as_str()) => {
            let mut r = match decided.get(&s.id) {
                Some((true, r)) => r.clone(),
                _ => Vec::new(),
            };
            r.push("newest completed of its volume".to_string());
            if retired {
                r.push("volume retired".to_string());
            }
            (true, r)
        }
        State::Completed => match decided.get(&s.id) {
            Some((keep, reasons)) => (*keep, reasons.clone()),
            None => (true, vec!["no retention".to_string()]),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Keep;
    use proptest::prelude::*;

    fn at(day: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-01T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::days(day)
    }

    fn item(id: &str, volume: &str, day: i64, state: State) -> Item {
        Item {
            id: id.into(),
            volume: volume.into(),
            created: at(day),
            state,
            in_use: false,
            retired: false,
        }
    }

    fn daily(n: u32) -> Retention {
        Retention {
            keep_daily: Some(Keep::N(n)),
            ..Retention::default()
        }
    }

    fn kept(p: &Plan) -> Vec<&str> {
        p.items
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_str())
            .collect()
    }

    #[test]
    fn daily_rule_per_volume_with_pending_failed_and_in_use() {
        let mut items: Vec<Item> = (0..10)
            .map(|d| item(&format!("a{d}"), "vol-a", d, State::Completed))
            .collect();
        items.push(item("a10", "vol-a", 10, State::Pending));
        items.push(item("b0", "vol-b", 0, State::Completed));
        items.push(item("b1", "vol-b", 1, State::Failed));
        items[2].in_use = true;
        let p = plan(
            "us-east-1",
            Some(&daily(3)),
            &items,
            at(11),
            None,
            Options::default(),
        );
        assert!(p.refusals.is_empty());
        assert_eq!(kept(&p), ["a10", "a9", "a8", "a7", "a2", "b0"]);
        let why = |id: &str| p.items.iter().find(|d| d.id == id).unwrap().reasons.clone();
        assert_eq!(why("a10"), ["pending"]);
        assert_eq!(why("a2"), ["in use"]);
        assert_eq!(why("b1"), ["failed at the provider: holds no data"]);
        assert_eq!(why("b0"), ["daily", "newest completed of its volume"]);
    }

    #[test]
    fn max_age_never_takes_the_newest_completed() {
        let items = vec![
            item("old", "v", 0, State::Completed),
            item("older", "v", -1, State::Completed),
        ];
        let rule = Retention {
            max_age: Some(Span::parse("1d").unwrap()),
            ..Retention::default()
        };
        let p = plan("r", Some(&rule), &items, at(30), None, Options::default());
        assert_eq!(kept(&p), ["old"]);
    }

    #[test]
    fn rails_refuse_the_whole_plan() {
        let items: Vec<Item> = (0..5)
            .map(|d| item(&format!("s{d}"), "v", d, State::Completed))
            .collect();
        let o = Options {
            max_delete: Some(2),
            ..Options::default()
        };
        let p = plan("eu", Some(&daily(1)), &items, at(5), None, o);
        assert_eq!(p.deletions().count(), 4);
        assert_eq!(
            p.refusals,
            [Refusal::MaxDelete {
                limit: 2,
                planned: 4,
                place: "eu".into()
            }]
        );
        assert!(
            p.refusals[0]
                .to_string()
                .starts_with("max-delete 2: the plan deletes 4 snapshots in eu"),
            "{:?}",
            p.refusals
        );
        let rpo = Some(Span::parse("26h").unwrap());
        let p = plan(
            "eu",
            Some(&daily(1)),
            &items,
            at(9),
            rpo,
            Options::default(),
        );
        assert!(
            matches!(&p.refusals[0], Refusal::Rpo { volume, .. } if volume == "v"),
            "{:?}",
            p.refusals
        );
        assert!(
            p.refusals[0].to_string().starts_with(
                "rpo 26h: the newest completed snapshot of v in eu is from 2026-11-05T02:00:00Z; snapshots seem to have stopped"
            ),
            "{:?}",
            p.refusals
        );
        let forced = Options {
            force: true,
            ..Options::default()
        };
        assert!(plan("eu", Some(&daily(1)), &items, at(9), rpo, forced)
            .refusals
            .is_empty());
        // A retired volume has no rpo rail: its retention applies, and its newest stays.
        let retired: Vec<Item> = items
            .iter()
            .cloned()
            .map(|i| Item { retired: true, ..i })
            .collect();
        let p = plan(
            "eu",
            Some(&daily(1)),
            &retired,
            at(9),
            rpo,
            Options::default(),
        );
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(kept(&p), ["s4"]);
        assert_eq!(
            p.items[0].reasons,
            ["daily", "newest completed of its volume", "volume retired"]
        );
    }

    #[test]
    fn without_a_rule_everything_stays_but_failed_ones() {
        let items = vec![
            item("a", "v", 0, State::Completed),
            item("b", "v", 1, State::Failed),
        ];
        let p = plan("r", None, &items, at(2), None, Options::default());
        assert_eq!(kept(&p), ["a"]);
    }

    proptest! {
        #[test]
        fn never_deletes_pending_in_use_or_the_newest(
            days in proptest::collection::vec((0i64..60, 0u8..4, any::<bool>()), 1..40),
            keep in 0u32..5,
        ) {
            let items: Vec<Item> = days.iter().enumerate().map(|(i, (d, s, used))| Item {
                id: format!("s{i}"),
                volume: format!("v{}", i % 3),
                created: at(*d),
                state: match s { 0 => State::Pending, 1 => State::Failed, _ => State::Completed },
                in_use: *used,
                retired: false,
            }).collect();
            let p = plan("r", Some(&daily(keep)), &items, at(61), None, Options::default());
            for d in p.deletions() {
                let i = items.iter().find(|i| i.id == d.id).unwrap();
                prop_assert!(i.state != State::Pending);
                prop_assert!(!(i.in_use && i.state == State::Completed));
                if i.state == State::Completed {
                    let newer = items.iter().filter(|o| o.volume == i.volume && o.state == State::Completed)
                        .any(|o| (o.created, &o.id) > (i.created, &i.id));
                    prop_assert!(newer, "deleted the newest completed {}", i.id);
                }
            }
            prop_assert_eq!(p.items.len(), items.len());
        }
    }
}
