//! Pinned plans for each rule, in the manner of restic's own policy tests (a fixed list of
//! times, the set each rule keeps, worked out by hand from doc/060_forget.rst), and property
//! tests over random inventories for the rules and every rail.

use super::*;
use crate::inventory::{Copy, Destination, Kind, Lock};
use crate::policy::DEFAULT_LOCK_DAYS;
use chrono::TimeZone;
use proptest::prelude::*;

fn t(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// A..L, newest first. J (2025-12-31) is in ISO week 2026-W01; K and L share a day.
fn times() -> Vec<(String, DateTime<Utc>)> {
    [
        ("A", t(2026, 11, 26, 2)),
        ("B", t(2026, 11, 25, 14)),
        ("C", t(2026, 11, 25, 2)),
        ("D", t(2026, 11, 24, 2)),
        ("E", t(2026, 11, 22, 2)),
        ("F", t(2026, 11, 15, 2)),
        ("G", t(2026, 10, 31, 2)),
        ("H", t(2026, 10, 1, 2)),
        ("I", t(2026, 9, 15, 2)),
        ("J", t(2025, 12, 31, 2)),
        ("K", t(2025, 6, 1, 2)),
        ("L", t(2025, 6, 1, 1)),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

fn rule(text: &str) -> Retention {
    #[derive(serde::Deserialize)]
    struct W {
        retention: Retention,
    }
    toml::from_str::<W>(&format!("[retention]\n{text}"))
        .unwrap()
        .retention
}

/// The kept names, in order, and the reasons of each kept one.
fn kept(r: &str, now: DateTime<Utc>) -> (String, Vec<String>) {
    let d = apply(&rule(r), &times(), now);
    let names: String = d
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.name.as_str())
        .collect();
    let why = d
        .iter()
        .filter(|d| d.keep)
        .map(|d| format!("{}: {}", d.name, d.reasons.join(", ")))
        .collect();
    (names, why)
}

fn now() -> DateTime<Utc> {
    t(2026, 12, 1, 0)
}

#[test]
fn pinned_plans_for_each_rule() {
    let cases = [
        ("keep-last = 2", "AB"),
        ("keep-daily = 3", "ABD"),
        ("keep-daily = 20", "ABDEFGHIJKL"),
        ("keep-weekly = 3", "AEF"),
        ("keep-weekly = \"unlimited\"", "AEFGHIJKL"),
        ("keep-monthly = 2", "AG"),
        ("keep-yearly = \"unlimited\"", "AJL"),
        ("keep-hourly = 3", "ABC"),
        ("keep-within = \"2d\"", "ABC"),
        ("keep-within-daily = \"7d\"", "ABDE"),
        ("keep-within-weekly = \"1m\"", "AEFG"),
        ("keep-daily = 1\nkeep-monthly = 1", "A"),
        ("keep-daily = 2\nkeep-weekly = 2\nkeep-monthly = 3", "ABEGI"),
        ("keep-last = 1\nkeep-yearly = 5", "AJL"),
        ("keep-yearly = \"unlimited\"\nmax-age = \"1y\"", "AJ"),
        ("max-age = \"3m\"", "ABCDEFGHI"),
        ("", "ABCDEFGHIJKL"),
        // Zero is no rule, as restic reads it: not "delete all but the newest".
        ("keep-last = 0", "ABCDEFGHIJKL"),
        ("keep-within = \"0h\"", "ABCDEFGHIJKL"),
    ];
    for (r, want) in cases {
        let (got, why) = kept(r, now());
        assert_eq!(got, want, "rule {r:?}: {why:?}");
    }
}

#[test]
fn reasons_read_as_restic_prints_them() {
    let (_, why) = kept("keep-daily = 20\nkeep-within = \"2d\"", now());
    assert_eq!(why[0], "A: within 2d, daily");
    assert_eq!(why.last().unwrap(), "L: oldest daily");
    let (_, why) = kept("keep-within-daily = \"7d\"", now());
    assert_eq!(why[0], "A: daily within 7d");
    let (_, why) = kept("keep-yearly = \"unlimited\"\nmax-age = \"1y\"", now());
    assert_eq!(why, ["A: yearly", "J: yearly"]);
    let d = apply(&rule("keep-last = 1\nmax-age = \"1y\""), &times(), now());
    assert_eq!(d[10].reasons, ["older than max-age 1y"]);
}

#[test]
fn keep_within_counts_back_from_the_newest_archive_not_from_now() {
    // A year after the last archive, keep-within 2d still keeps the last two days of archives.
    let (got, _) = kept("keep-within = \"2d\"", t(2027, 11, 26, 0));
    assert_eq!(got, "ABC");
}

#[test]
fn min_age_keeps_what_is_young() {
    let (got, why) = kept("keep-last = 1\nmin-age = \"7d\"", t(2026, 11, 27, 0));
    assert_eq!(got, "ABCDE");
    assert_eq!(why[1], "B: younger than min-age 7d");
}

#[test]
fn locks_follow_the_class_that_keeps_an_archive() {
    let r = rule("keep-daily = 7\nkeep-weekly = 4\nkeep-monthly = 12\nmax-age = \"10m\"");
    let c = t(2026, 11, 1, 2);
    assert_eq!(lock_for(&r, &[Class::Daily], c), None);
    assert_eq!(lock_for(&r, &[Class::Weekly], c), Some(t(2026, 11, 29, 2)));
    // Monthly 12 months is capped by max-age 10 months; the longest class wins.
    assert_eq!(
        lock_for(&r, &[Class::Weekly, Class::Monthly], c),
        Some(t(2027, 9, 1, 2))
    );
    let u = rule("keep-yearly = \"unlimited\"");
    assert_eq!(lock_for(&u, &[Class::Yearly], c), None);
}

fn inventory(n: usize) -> Inventory {
    Inventory::new(
        (0..n)
            .map(|i| Destination {
                name: format!("d{i}"),
                kind: Kind::File,
                offsite: false,
            })
            .collect(),
    )
}

fn policy(extra: &str) -> Policy {
    let text = format!(
        "version = 1\nname = \"app\"\nrpo = \"26h\"\n[encryption]\nrecipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n\
         [[destination]]\nname = \"local\"\nurl = \"file:///a\"\nretention = {{ keep-last = 2 }}\n\
         [[destination]]\nname = \"cloud\"\nurl = \"s3://b/app\"\nlock = \"governance\"\nlock-days = 7\n\
         {extra}"
    );
    Policy::parse(&text, "p.toml").unwrap()
}

fn complete(dest: usize, lock: Option<DateTime<Utc>>) -> Copy {
    Copy {
        destination: dest,
        state: CopyState::Complete,
        size: Some(1),
        lock: lock.map(|u| Lock {
            until: Some(u),
            legal_hold: false,
        }),
        proof: None,
    }
}

#[test]
fn destinations_keep_by_their_own_retention_and_rails_hold() {
    let p = policy("[retention]\nkeep-daily = 3\nkeep-weekly = 2\n");
    let mut inv = inventory(2);
    for (n, c) in times() {
        let name = format!("app-{}.tar.gz", c.format("%Y%m%d_%H%M%S"));
        let _ = n;
        inv.add(&name, Some(c), complete(0, None));
        // The cloud copy of D is still locked.
        let lock = (c == t(2026, 11, 24, 2)).then(|| t(2026, 12, 24, 0));
        inv.add(&name, Some(c), complete(1, lock));
    }
    let plan = plan(&p, &inv, t(2026, 11, 26, 12), Options::default());
    assert!(plan.refusals.is_empty(), "{:?}", plan.refusals);
    let kept = |d: usize| -> Vec<String> {
        plan.items
            .iter()
            .filter(|i| i.destination == d && i.keep)
            .map(|i| i.created.format("%m%d%H").to_string())
            .collect()
    };
    // local: its own keep-last 2.
    assert_eq!(kept(0), ["112602", "112514"]);
    // cloud: daily 3 (A, B, D) and weekly 2 (A, E); D is locked anyway.
    assert_eq!(kept(1), ["112602", "112514", "112402", "112202"]);
    // E was kept as a weekly: its lock is extended to creation + 2 weeks.
    let e = plan
        .items
        .iter()
        .find(|i| i.destination == 1 && i.created == t(2026, 11, 22, 2))
        .unwrap();
    assert_eq!(e.extend_lock_to, Some(t(2026, 12, 6, 2)));
    // A locked copy the rules would delete is kept and says why.
    let p2 = policy("[retention]\nkeep-last = 1\n");
    let plan2 = super::plan(&p2, &inv, t(2026, 11, 26, 12), Options::default());
    let d = plan2
        .items
        .iter()
        .find(|i| i.destination == 1 && i.created == t(2026, 11, 24, 2))
        .unwrap();
    assert!(
        d.keep
            && d.reasons
                .last()
                .unwrap()
                .starts_with("locked until 2026-12-24T00:00:00Z"),
        "{d:?}"
    );
}

#[test]
fn a_legal_hold_destination_deletes_nothing_and_locks_never_extend_into_the_past() {
    let text = "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n\
        [[destination]]\nname = \"held\"\nurl = \"s3://b/app\"\nlegal-hold = true\nlock = \"governance\"\n\
        [retention]\nkeep-last = 1\nkeep-weekly = 4\n";
    let p = Policy::parse(text, "p.toml").unwrap();
    assert_eq!(p.destinations[0].lock_days, Some(DEFAULT_LOCK_DAYS));
    let mut inv = inventory(1);
    for (_, c) in times() {
        let name = format!("app-{}.tar.gz", c.format("%Y%m%d_%H%M%S"));
        inv.add(&name, Some(c), complete(0, None));
    }
    let plan = plan(&p, &inv, t(2026, 11, 26, 12), Options::default());
    assert_eq!(plan.deletions().count(), 0);
    // keep-last 1 and 4 weeklies keep A, E, F and G; the other eight are held.
    let held = plan
        .items
        .iter()
        .filter(|i| i.reasons.iter().any(|r| r.contains("legal hold")))
        .count();
    assert_eq!(held, 8, "{:?}", plan.items);
    // Weeklies older than 4 weeks get no extension into the past.
    for i in &plan.items {
        if let Some(until) = i.extend_lock_to {
            assert!(until > t(2026, 11, 26, 12), "{i:?}");
        }
    }
}

#[test]
fn stale_backups_and_too_many_deletions_refuse_the_whole_plan() {
    let p = policy("[retention]\nkeep-last = 1\n");
    let mut inv = inventory(2);
    for (_, c) in times() {
        let name = format!("app-{}.tar.gz", c.format("%Y%m%d_%H%M%S"));
        inv.add(&name, Some(c), complete(0, None));
    }
    // A week after the newest archive: rpo 26h is not met.
    let late = t(2026, 12, 3, 0);
    let r = plan(&p, &inv, late, Options::default());
    assert_eq!(r.refusals.len(), 1, "{:?}", r.refusals);
    assert!(
        r.refusals[0].to_string().starts_with("rpo 26h"),
        "{:?}",
        r.refusals
    );
    let forced = plan(
        &p,
        &inv,
        late,
        Options {
            force: true,
            max_delete: None,
        },
    );
    assert!(forced.refusals.is_empty());
    assert_eq!(forced.deletions().count(), 10);
    let capped = plan(
        &p,
        &inv,
        late,
        Options {
            force: true,
            max_delete: Some(9),
        },
    );
    assert_eq!(capped.refusals.len(), 1);
    assert!(
        capped.refusals[0]
            .to_string()
            .contains("deletes 10 archives at local"),
        "{:?}",
        capped.refusals
    );
}

proptest! {
    /// The rules over random series: one decision per archive, order of input irrelevant,
    /// each finite count rule keeps at most N through its class, adding a rule never deletes
    /// more, and with any keep rule the newest archive is kept.
    #[test]
    fn rules_agree_with_their_definition(
        hours in proptest::collection::btree_set(0u32..24 * 400, 1..40),
        last in proptest::option::of(0u32..5),
        daily in proptest::option::of(0u32..8),
        weekly in proptest::option::of(0u32..6),
        monthly in proptest::option::of(0u32..6),
        within_days in proptest::option::of(1u32..30),
        shuffle in any::<u64>(),
    ) {
        let base = t(2025, 1, 1, 0);
        let mut archives: Vec<(String, DateTime<Utc>)> = hours
            .iter()
            .map(|h| (format!("a{h:05}"), base + chrono::Duration::hours(i64::from(*h))))
            .collect();
        let now = base + chrono::Duration::days(401);
        let r = Retention {
            keep_last: last.map(Keep::N),
            keep_daily: daily.map(Keep::N),
            keep_weekly: weekly.map(Keep::N),
            keep_monthly: monthly.map(Keep::N),
            keep_within: within_days.map(|d| Span { days: d, ..Span::default() }),
            ..Retention::default()
        };
        let d = apply(&r, &archives, now);
        prop_assert_eq!(d.len(), archives.len());
        // Any input order gives the same decisions.
        let k = archives.len();
        archives.rotate_left((shuffle as usize) % k);
        prop_assert_eq!(&apply(&r, &archives, now), &d);
        for (class, n) in [(Class::Last, last), (Class::Daily, daily), (Class::Weekly, weekly), (Class::Monthly, monthly)] {
            if let Some(n) = n {
                let by = d.iter().filter(|x| x.classes.contains(&class)).count();
                prop_assert!(by <= n as usize, "{:?} kept {} > {}", class, by, n);
            }
        }
        if r.has_keep_rules() && d.iter().any(|x| x.keep) {
            prop_assert!(d[0].keep, "the newest is kept when anything is");
        }
        // Adding to keep-last keeps a superset (with some keep rule: without any, all is kept).
        prop_assume!(r.has_keep_rules());
        let mut more = r.clone();
        more.keep_last = Some(Keep::N(last.unwrap_or(0) + 1));
        let d2 = apply(&more, &archives, now);
        for (a, b) in d.iter().zip(&d2) {
            prop_assert!(!a.keep || b.keep, "{} kept before, not after adding a rule", a.name);
        }
        // Daily keeps at most one archive per day through its class.
        let mut days = std::collections::BTreeSet::new();
        for x in d.iter().filter(|x| x.classes.contains(&Class::Daily) && !x.reasons.iter().any(|r| r.starts_with("oldest"))) {
            prop_assert!(days.insert(x.created.date_naive()));
        }
    }

    /// The rails over random inventories: the newest complete archive of each series at each
    /// destination, every locked copy and everything younger than min-age are kept; a stale
    /// series refuses unless forced; more than max-delete refuses.
    #[test]
    fn rails_hold_over_random_inventories(
        copies in proptest::collection::vec((0usize..3, 0u32..24 * 90, 0usize..2, proptest::option::of(0u32..60), 0u8..4), 1..60),
        keep_last in 0u32..3,
        now_day in 85u32..100,
        force in any::<bool>(),
        max_delete in proptest::option::of(0u32..10),
    ) {
        let p = policy(&format!("[retention]\nkeep-last = {keep_last}\nmin-age = \"2d\"\n"));
        let mut inv = inventory(2);
        let base = t(2026, 1, 1, 0);
        for (series, hour, dest, lock_days, state) in &copies {
            let c = base + chrono::Duration::hours(i64::from(*hour));
            let name = format!("{}-{}.tar.gz", ["app", "db", "web"][*series], c.format("%Y%m%d_%H%M%S"));
            let mut copy = complete(*dest, lock_days.map(|d| c + chrono::Duration::days(i64::from(d))));
            if *state == 3 {
                copy.state = CopyState::MissingData;
            }
            inv.add(&name, Some(c), copy);
        }
        let now = base + chrono::Duration::days(i64::from(now_day));
        let plan = plan(&p, &inv, now, Options { force, max_delete });
        for item in plan.items.iter().filter(|i| !i.keep) {
            let a = inv.archive(&item.name).unwrap();
            let copy = a.copies.iter().find(|c| c.destination == item.destination && c.state == CopyState::Complete).unwrap();
            prop_assert!(copy.lock.is_none_or(|l| !l.holds_at(now)), "locked copy deleted: {:?}", item);
            // min-age is the policy's; the local destination has a retention of its own.
            if item.destination == 1 {
                prop_assert!(item.created <= now - chrono::Duration::days(2), "young archive deleted");
            }
            // Not the newest complete archive of its series at this destination.
            let newest = inv.series()[item.series.as_str()].iter().rev()
                .find(|a| a.copies.iter().any(|c| c.destination == item.destination && c.state == CopyState::Complete))
                .map(|a| a.name.clone());
            prop_assert_ne!(Some(item.name.clone()), newest);
        }
        for d in 0..2 {
            let n = plan.items.iter().filter(|i| i.destination == d && !i.keep).count() as u32;
            if max_delete.is_some_and(|m| n > m) {
                prop_assert!(plan.refusals.iter().any(|r| r.is_max_delete_at(d)));
            }
        }
        let stale = inv.series().keys().any(|s| {
            inv.newest_complete(s).is_some_and(|a| a.created.unwrap() < now - chrono::Duration::hours(26))
                && plan.items.iter().any(|i| i.series == *s && !i.keep)
        });
        prop_assert_eq!(plan.refusals.iter().any(|r| matches!(r, Refusal::Rpo { .. })), stale && !force);
    }
}
