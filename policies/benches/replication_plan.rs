//! `cargo bench -p offsite-policies --bench replication_plan`: the replication planner over a
//! synthetic pair of listings of 1,000,000 keys each (a tenth differing in size, a tenth only at
//! the source, a tenth only at the destination), generated lazily in key order as a paged
//! listing would arrive. Prints keys per second, the decisions by kind, and the process's peak
//! RSS (VmHWM), which must stay flat: the plan streams, it holds no listing. Every tenth index
//! is an archive (data and manifest, grouped into one unit); the rest are plain objects. The
//! decisions go through `units`, as `offsite replicate` takes them. Issue 14's target is a
//! 1,000,000-key dry run under 100 MiB.

use std::time::Instant;

use offsite_policies::replication::{plan, units, Action, Item, Options, Unit};

const KEYS: u64 = 1_000_000;

fn key(i: u64) -> String {
    format!("app/{:02}/app-backup-{i:09}.tar.gz.age", i % 97)
}

fn manifest(i: u64) -> String {
    format!("app/{:02}/app-backup-{i:09}.tar.gz.manifest.json", i % 97)
}

fn plain(i: u64) -> String {
    format!("app/{:02}/app-backup-{i:09}.txt", i % 97)
}

/// The listing of one side: every key in order, some left out, some resized.
fn side(source: bool) -> impl Iterator<Item = Item> {
    // Key order is by string; indices are generated in that order without holding any: the
    // prefix is i % 97, and within a prefix the zero-padded index sorts numerically.
    (0..97u64).flat_map(move |p| {
        (0..KEYS)
            .skip(p as usize)
            .step_by(97)
            .filter(move |i| if source { i % 10 != 3 } else { i % 10 != 7 })
            .flat_map(move |i| {
                let size = if !source && i % 10 == 5 { 2048 } else { 1024 };
                let item = |key| Item {
                    key,
                    size,
                    etag: None,
                    sha256: None,
                };
                // `.age` < `.manifest.json` < `.txt`: each index's keys in key order.
                if i % 10 == 0 {
                    vec![item(key(i)), item(manifest(i))]
                } else {
                    vec![item(plain(i))]
                }
            })
    })
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let start = Instant::now();
    let (mut copy, mut skip, mut delete) = (0u64, 0u64, 0u64);
    let options = Options {
        delete: true,
        checksum: false,
    };
    let mut archives = 0u64;
    for u in units(plan(side(true), side(false), options)) {
        let decisions = match u.expect("listings in key order") {
            Unit::Object(d) => vec![d],
            Unit::Archive { keys, .. } => {
                archives += 1;
                keys
            }
        };
        for d in decisions {
            match d.action {
                Action::Copy => copy += 1,
                Action::Skip => skip += 1,
                Action::Delete => delete += 1,
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let total = copy + skip + delete;
    println!(
        "replication plan: {total} keys in {secs:.2} s ({:.0} keys/s), {archives} archive units: copy {copy}, skip {skip}, delete {delete}; peak RSS {:.1} MiB (target < 100 MiB)",
        total as f64 / secs,
        peak_rss_mib()
    );
    // Every index is on one side at least; every tenth is an archive of two keys.
    assert_eq!(
        total,
        KEYS + KEYS / 10,
        "every key of the union decided once"
    );
}
