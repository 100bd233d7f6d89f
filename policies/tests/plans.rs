//! Snapshot tests (insta) of the planners' outputs: retention (one series by each keep rule and
//! combination, and a policy's whole prune plan with its rails), placement, replication and
//! snapshot plans. The `.snap` files under `tests/snapshots/` are the reviewed answers: a
//! change to a plan shows as a diff of one of them, and plain `cargo test` fails on it (insta
//! writes the new answer beside it as `.snap.new`; review, then move it over the old file, or
//! run `cargo insta review` where cargo-insta is installed).
//!
//! The retention cases follow restic's `forget` documentation (doc/060_forget.rst) and reach
//! toward the breadth of rustic's forget tests: every count rule, `"unlimited"`, counts larger
//! than the inventory, every combination of the `keep-within*` rules, and combinations of
//! count rules. The timeline is chosen for its edges: ISO week-years that differ from calendar
//! years (2020-12-31 and 2021-01-03 in 2020-W53, 2024-12-30 in 2025-W01), archives exactly on
//! the hour and at :59:59, across midnight and the turn of a month, and a leap day.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use offsite_policies::inventory::{Copy, CopyState, Destination, Inventory, Lock};
use offsite_policies::placement;
use offsite_policies::policy::{Policy, Retention};
use offsite_policies::replication::{self, Item, Options as ReplicationOptions};
use offsite_policies::retention;
use offsite_policies::snapshots::{self, State};

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// The archives of one series, each named by its time (as a backup job names them).
fn timeline() -> Vec<(String, DateTime<Utc>)> {
    [
        at(2026, 11, 26, 1, 0, 0),
        at(2026, 11, 26, 0, 0, 1),
        at(2026, 11, 26, 0, 0, 0), // midnight exactly
        at(2026, 11, 25, 23, 59, 59),
        at(2026, 11, 25, 23, 0, 0), // on the hour
        at(2026, 11, 25, 22, 59, 59),
        at(2026, 11, 25, 22, 0, 0),
        at(2026, 11, 23, 0, 0, 0),    // Monday: a new ISO week
        at(2026, 11, 22, 23, 59, 59), // Sunday: the week before
        at(2026, 11, 1, 0, 0, 0),
        at(2026, 10, 31, 23, 59, 59),
        at(2026, 9, 15, 12, 0, 0),
        at(2025, 1, 1, 0, 0, 0),      // 2025-W01
        at(2024, 12, 31, 23, 59, 59), // 2025-W01, calendar 2024
        at(2024, 12, 30, 0, 0, 0),    // 2025-W01, calendar 2024
        at(2024, 12, 29, 23, 0, 0),   // 2024-W52
        at(2024, 2, 29, 12, 0, 0),    // a leap day
        at(2021, 1, 4, 0, 0, 0),      // 2021-W01
        at(2021, 1, 3, 12, 0, 0),     // 2020-W53, calendar 2021
        at(2021, 1, 1, 0, 0, 0),      // 2020-W53, calendar 2021
        at(2020, 12, 31, 23, 59, 59), // 2020-W53
        at(2019, 12, 30, 0, 0, 0),    // 2020-W01, calendar 2019
    ]
    .into_iter()
    .map(|t| (format!("app-{}.tar.gz", t.format("%Y%m%d_%H%M%S")), t))
    .collect()
}

/// The clock of the retention cases: five hours after the newest archive.
fn now() -> DateTime<Utc> {
    at(2026, 11, 26, 6, 0, 0)
}

fn rule(text: &str) -> Retention {
    #[derive(serde::Deserialize)]
    struct W {
        retention: Retention,
    }
    toml::from_str::<W>(&format!("[retention]\n{text}"))
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .retention
}

/// One line per archive, newest first: its time, its ISO week, kept or deleted, and why.
fn render(rule_text: &str, archives: &[(String, DateTime<Utc>)], now: DateTime<Utc>) -> String {
    let mut out = format!("{rule_text}\nnow {}\n", now.format("%Y-%m-%d %H:%M:%S"));
    for d in retention::apply(&rule(rule_text), archives, now) {
        let w = d.created.iso_week();
        out.push_str(&format!(
            "{}  {}-W{:02}  {:6}  {}\n",
            d.created.format("%Y-%m-%d %H:%M:%S %a"),
            w.year(),
            w.week(),
            if d.keep { "keep" } else { "delete" },
            d.reasons.join(", ")
        ));
    }
    out
}

/// A file-name-safe name for a rule's snapshot.
fn slug(rule_text: &str) -> String {
    let mut s = String::new();
    for c in rule_text.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' => s.push(c),
            '\n' => s.push_str("__"),
            _ => {}
        }
    }
    s
}

fn check(rule_text: &str) {
    insta::with_settings!({ omit_expression => true }, {
        insta::assert_snapshot!(
            format!("retention-{}", slug(rule_text)),
            render(rule_text, &timeline(), now())
        );
    });
}

#[test]
fn retention_count_rules() {
    for r in [
        "keep-last = 1",
        "keep-last = 3",
        "keep-last = 100",
        "keep-last = \"unlimited\"",
        "keep-hourly = 1",
        "keep-hourly = 4",
        "keep-hourly = \"unlimited\"",
        "keep-daily = 2",
        "keep-daily = 6",
        "keep-daily = 100",
        "keep-daily = \"unlimited\"",
        "keep-weekly = 3",
        "keep-weekly = 8",
        "keep-weekly = \"unlimited\"",
        "keep-monthly = 3",
        "keep-monthly = \"unlimited\"",
        "keep-yearly = 2",
        "keep-yearly = 4",
        "keep-yearly = \"unlimited\"",
    ] {
        check(r);
    }
}

#[test]
fn retention_count_rule_combinations() {
    for r in [
        "keep-last = 2\nkeep-daily = 3",
        "keep-last = 5\nkeep-hourly = 5",
        "keep-hourly = 2\nkeep-daily = 2",
        "keep-daily = 3\nkeep-weekly = 3",
        "keep-daily = 3\nkeep-weekly = 2\nkeep-monthly = \"unlimited\"\nkeep-yearly = \"unlimited\"",
        "keep-daily = 7\nkeep-weekly = 4\nkeep-monthly = 12\nkeep-yearly = 3",
        "keep-weekly = 2\nkeep-yearly = 5",
        "keep-last = 1\nkeep-within = \"1d\"",
        "keep-daily = 2\nmax-age = \"2y\"",
        "keep-last = 1\nmin-age = \"6h\"",
        "keep-last = 1\nmin-age = \"5h\"",
        "max-age = \"1y\"",
    ] {
        check(r);
    }
}

#[test]
fn retention_every_keep_within_combination() {
    let rules = [
        "keep-within = \"2h\"",
        "keep-within-hourly = \"1d\"",
        "keep-within-daily = \"7d\"",
        "keep-within-weekly = \"1m\"",
        "keep-within-monthly = \"1y\"",
        "keep-within-yearly = \"10y\"",
    ];
    for mask in 1u32..(1 << rules.len()) {
        let r: Vec<&str> = (0..rules.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| rules[i])
            .collect();
        check(&r.join("\n"));
    }
}

#[test]
fn retention_keep_within_durations() {
    // An archive exactly a window's length before the newest is left out (restic keeps what
    // is strictly within): `1h` keeps 00:00:01 and drops 00:00:00.
    for r in [
        "keep-within = \"1h\"",
        "keep-within = \"1d\"",
        "keep-within = \"1y2m3d4h\"",
        "keep-within-hourly = \"1y2m3d4h\"",
        "keep-within-daily = \"1y2m3d4h\"",
        "keep-within-weekly = \"1y2m3d4h\"",
        "keep-within-monthly = \"1y2m3d4h\"",
        "keep-within-yearly = \"1y2m3d4h\"",
    ] {
        check(r);
    }
}

fn complete(destination: usize, lock: Option<DateTime<Utc>>) -> Copy {
    Copy {
        destination,
        state: CopyState::Complete,
        size: Some(1 << 20),
        lock: lock.map(|u| Lock {
            until: Some(u),
            legal_hold: false,
        }),
        proof: None,
    }
}

const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

fn policy(body: &str) -> Policy {
    let text = format!(
        "version = 1\nname = \"app\"\nrpo = \"26h\"\n[encryption]\nrecipients = [\"{RECIPIENT}\"]\n{body}"
    );
    Policy::parse(&text, "policy.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// A policy's whole prune plan: each destination by its own retention, a lock that keeps what
/// the rules drop, locks extended for the classes that keep, two series, and the plan refused
/// by max-delete.
#[test]
fn retention_plan_of_a_policy() {
    let p = policy(
        "[[destination]]\nname = \"local\"\nurl = \"file:///var/backups/app\"\nretention = { keep-last = 2 }\n\
         [[destination]]\nname = \"primary\"\nurl = \"s3://acme/app\"\nlock = \"governance\"\nlock-days = 7\n\
         [[destination]]\nname = \"dr\"\nurl = \"gs://acme-dr/app\"\nretention = { keep-daily = 2, max-delete = 3 }\n\
         [retention]\nkeep-daily = 3\nkeep-weekly = 2\nkeep-monthly = 2\n",
    );
    let mut inv = Inventory::new(
        p.destinations
            .iter()
            .map(|d| Destination {
                name: d.name.clone(),
                kind: d.kind(),
                offsite: d.is_offsite(),
            })
            .collect(),
    );
    let times = [
        at(2026, 11, 26, 2, 0, 0),
        at(2026, 11, 25, 2, 0, 0),
        at(2026, 11, 24, 2, 0, 0),
        at(2026, 11, 22, 2, 0, 0),
        at(2026, 11, 15, 2, 0, 0),
        at(2026, 10, 31, 2, 0, 0),
        at(2026, 9, 30, 2, 0, 0),
    ];
    for (i, t) in times.iter().enumerate() {
        for series in ["app-backup", "db-backup"] {
            let name = format!("{series}-{}.tar.gz", t.format("%Y%m%d_%H%M%S"));
            inv.add(&name, Some(*t), complete(0, None));
            // the third archive is still locked at primary
            let lock = (i == 2).then(|| at(2026, 12, 24, 0, 0, 0));
            inv.add(&name, Some(*t), complete(1, lock));
            inv.add(&name, Some(*t), complete(2, None));
        }
    }
    let plan = retention::plan(
        &p,
        &inv,
        at(2026, 11, 26, 12, 0, 0),
        retention::Options::default(),
    );
    insta::assert_json_snapshot!("retention-plan-of-a-policy", plan);
}

/// What a policy's destinations reach against its placement rule, and the verdicts on sets of
/// real copies.
#[test]
fn placement_plans() {
    let cases = [
        (
            "3-2-1-1-0 met",
            "[[destination]]\nname = \"local\"\nurl = \"file:///var/backups/app\"\n\
             [[destination]]\nname = \"primary\"\nurl = \"s3://acme/app\"\nlock = \"compliance\"\nlock-days = 7\n\
             [[destination]]\nname = \"dr\"\nurl = \"gs://acme-dr/app\"\n\
             [placement]\ncopies = 3\nmedia = 2\noffsite = 1\nimmutable = 1\n",
        ),
        (
            "every count short",
            "[[destination]]\nname = \"local\"\nurl = \"file:///var/backups/app\"\n\
             [[destination]]\nname = \"nas\"\nurl = \"file:///mnt/nas/app\"\noffsite = false\n\
             [placement]\ncopies = 3\nmedia = 2\noffsite = 1\nimmutable = 1\n",
        ),
        (
            "a replica counts",
            "[[destination]]\nname = \"primary\"\nurl = \"s3://acme/app\"\n\
             [[destination]]\nname = \"west\"\nurl = \"s3://acme-west/app\"\n\
             [[destination]]\nname = \"blob\"\nurl = \"az://acct/backups/app\"\n\
             [replication]\nfrom = \"primary\"\nto = [\"west\"]\n\
             [placement]\ncopies = 3\nmedia = 2\noffsite = 3\n",
        ),
    ];
    let mut out = String::new();
    for (what, body) in cases {
        let p = policy(body);
        let slots = placement::slots(&p);
        let reach = placement::reach(&p, &slots);
        out.push_str(&format!("== {what}\n{slots:#?}\n{reach:#?}\n"));
        // every subset of the destinations holding a copy, locks holding where they lock
        for mask in 0u32..(1 << slots.len()) {
            let held: Vec<placement::Held> = (0..slots.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| placement::Held {
                    slot: i,
                    locked: slots[i].locked,
                })
                .collect();
            let names: Vec<&str> = held.iter().map(|h| slots[h.slot].name.as_str()).collect();
            let v = placement::judge(p.placement, &slots, &held);
            out.push_str(&format!(
                "held {names:?}: copies {} media {} offsite {} immutable {} met {} {:?}\n",
                v.copies, v.media, v.offsite, v.immutable, v.met, v.missing
            ));
        }
    }
    insta::assert_snapshot!("placement-plans", out);
}

fn item(key: &str, size: u64, etag: Option<&str>, sha256: Option<&str>) -> Item {
    Item {
        key: key.to_string(),
        size,
        etag: etag.map(str::to_string),
        sha256: sha256.map(str::to_string),
    }
}

/// A replication plan over two listings in key order: missing, changed and equal keys, by
/// size, ETag and SHA-256, plain and with --checksum and --delete, grouped into archives.
#[test]
fn replication_plans() {
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    let src = vec![
        item("app/app-20261124_020000.tar.gz.age", 100, Some("e1"), None),
        item(
            "app/app-20261124_020000.tar.gz.manifest.json",
            10,
            Some("m1"),
            None,
        ),
        item("app/app-20261125_020000.tar.gz.age", 200, Some("e2"), None),
        item(
            "app/app-20261125_020000.tar.gz.manifest.json",
            10,
            Some("m2"),
            None,
        ),
        item("app/app-20261126_020000.tar.gz.age", 300, None, None),
        item("app/notes.txt", 5, Some("n1"), Some(&a)),
        item("app/same-etag.bin", 7, Some("x"), None),
        item("app/same-size.bin", 7, None, None),
        item("app/sha.bin", 9, None, Some(&a)),
    ];
    let dst = vec![
        item("app/app-20261124_020000.tar.gz.age", 100, Some("e1"), None),
        item(
            "app/app-20261124_020000.tar.gz.manifest.json",
            10,
            Some("m1"),
            None,
        ),
        item("app/app-20261125_020000.tar.gz.age", 150, Some("e2"), None),
        item("app/notes.txt", 5, Some("n2"), Some(&a)),
        item("app/old.bin", 3, None, None),
        item("app/same-etag.bin", 7, Some("x"), None),
        item("app/same-size.bin", 7, None, None),
        item("app/sha.bin", 9, None, Some(&b)),
    ];
    let mut out = String::new();
    for (what, options) in [
        ("default", ReplicationOptions::default()),
        (
            "--delete",
            ReplicationOptions {
                delete: true,
                checksum: false,
            },
        ),
        (
            "--checksum",
            ReplicationOptions {
                delete: false,
                checksum: true,
            },
        ),
    ] {
        out.push_str(&format!("== {what}\n"));
        let decisions = replication::plan(src.clone(), dst.clone(), options);
        for unit in replication::units(decisions) {
            match unit.expect("in key order") {
                replication::Unit::Object(d) => out.push_str(&format!(
                    "object  {:6} {:4} {}: {}\n",
                    serde_json::to_value(d.action).unwrap().as_str().unwrap(),
                    d.size,
                    d.key,
                    d.reason
                )),
                replication::Unit::Archive { name, keys } => {
                    out.push_str(&format!("archive {name}\n"));
                    for d in keys {
                        out.push_str(&format!(
                            "        {:6} {:4} {}: {}\n",
                            serde_json::to_value(d.action).unwrap().as_str().unwrap(),
                            d.size,
                            d.key,
                            d.reason
                        ));
                    }
                }
            }
        }
    }
    insta::assert_snapshot!("replication-plans", out);
}

/// A snapshot prune plan for one region: two volumes, pending and failed snapshots, one in use,
/// a retired volume, min-age; then the same refused by rpo and by max-delete.
#[test]
fn snapshot_plans() {
    let snap = |id: &str, volume: &str, t: DateTime<Utc>, state: State| snapshots::Item {
        id: id.to_string(),
        volume: volume.to_string(),
        created: t,
        state,
        in_use: false,
        retired: false,
    };
    let mut items = vec![
        snap(
            "snap-01",
            "vol-a",
            at(2026, 11, 26, 2, 0, 0),
            State::Pending,
        ),
        snap(
            "snap-02",
            "vol-a",
            at(2026, 11, 26, 1, 0, 0),
            State::Completed,
        ),
        snap(
            "snap-03",
            "vol-a",
            at(2026, 11, 25, 2, 0, 0),
            State::Completed,
        ),
        snap("snap-04", "vol-a", at(2026, 11, 24, 2, 0, 0), State::Failed),
        snap(
            "snap-05",
            "vol-a",
            at(2026, 11, 23, 2, 0, 0),
            State::Completed,
        ),
        snap(
            "snap-06",
            "vol-a",
            at(2026, 11, 16, 2, 0, 0),
            State::Completed,
        ),
        snap(
            "snap-07",
            "vol-a",
            at(2026, 10, 1, 2, 0, 0),
            State::Completed,
        ),
        snap(
            "snap-11",
            "vol-b",
            at(2026, 11, 26, 0, 30, 0),
            State::Completed,
        ),
        snap(
            "snap-12",
            "vol-b",
            at(2026, 11, 20, 0, 30, 0),
            State::Completed,
        ),
        snap(
            "snap-13",
            "vol-b",
            at(2026, 11, 10, 0, 30, 0),
            State::Completed,
        ),
        snap(
            "snap-21",
            "vol-old",
            at(2026, 6, 1, 0, 0, 0),
            State::Completed,
        ),
        snap(
            "snap-22",
            "vol-old",
            at(2026, 5, 1, 0, 0, 0),
            State::Completed,
        ),
    ];
    items[4].in_use = true;
    for i in &mut items[10..] {
        i.retired = true;
    }
    let r = rule("keep-daily = 2\nkeep-weekly = 2\nmin-age = \"2h\"");
    let rpo = Some(offsite_policies::duration::Span::parse("26h").unwrap());
    let now = at(2026, 11, 26, 3, 0, 0);
    let plan = snapshots::plan(
        "us-east-1",
        Some(&r),
        &items,
        now,
        rpo,
        retention::Options::default(),
    );
    insta::assert_json_snapshot!("snapshot-plan", plan);
    // a day later without new snapshots: rpo refuses; and a cap of 2 refuses too
    let later = snapshots::plan(
        "us-east-1",
        Some(&r),
        &items,
        at(2026, 11, 28, 3, 0, 0),
        rpo,
        retention::Options {
            force: false,
            max_delete: Some(2),
        },
    );
    insta::assert_json_snapshot!("snapshot-plan-refused", later.refusals);
}
