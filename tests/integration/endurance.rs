//! The endurance run (issue 28), in the shape of kopia's endurance test: the engine driven in
//! process through simulated months of operation by policy, its clock an input.
//!
//! Every six simulated hours a signed archive is pushed by policy (two destinations, one holding
//! retention locks, GFS retention); every night prune runs and status judges; every week a drill.
//! Faults are seeded: a destination down for a step (its location swapped for one whose reads
//! and writes fail), pushes interrupted after a few polls and run again, archives planted by a
//! bucket writer without the key (unsigned) and by a trusted host whose clock runs 400 days
//! fast (future-dated). After every prune and drill the invariants a user relies on are
//! checked: what retention keeps is present and restorable; the newest trusted archive is never
//! deleted; no copy whose lock holds is deleted; locks follow retention classes; status's counts
//! match an independent tally; nothing planted is restored, counted or deleted.
//!
//! `OFFSITE_ENDURANCE_SEED` replays a run (the seed is printed either way);
//! `OFFSITE_ENDURANCE_DAYS` changes the simulated span of the memory:// run (365 by default).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use age::secrecy::ExposeSecret;
use chrono::{DateTime, Duration, TimeZone, Utc};
use offsite::engine::commit::Annotations;
use offsite::engine::identity::{Identities, IdentityFile};
use offsite::engine::inventory::{scan, Clock, Judge, ReadOptions, Signers, State};
use offsite::engine::push::{PushRequest, Source, Status as PushStatus};
use offsite::engine::restore::{RestoreRequest, Selector, Target};
use offsite::engine::verify::Verdict;
use offsite::engine::{drill, prune, restore, status};
use offsite::registry::Opened;
use offsite_policies::duration::Span;
use offsite_policies::encryption::Recipient;
use offsite_policies::policy::Policy;
use offsite_policies::signing::{SigningKey, TrustedSigners};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::sha256_file;

const STEP_HOURS: i64 = 6;
/// Steps a day: a push every step, prune and status every night, a drill every week.
const STEPS_A_DAY: usize = 4;

/// A name in the series `app-backup-*.tar.gz` for a time.
fn name_at(t: DateTime<Utc>) -> String {
    format!("app-backup-{}.tar.gz", t.format("%Y%m%d_%H%M%S"))
}

/// What the run has counted.
#[derive(Default, Debug)]
struct Tally {
    steps: usize,
    pushes: usize,
    interrupted: usize,
    outages: usize,
    planted_unsigned: usize,
    planted_future: usize,
    prunes: usize,
    deleted: usize,
    drills: usize,
    restores: usize,
    checks: usize,
}

/// A future that gives up (drops what it drives) after `polls` polls: a push killed part-way,
/// deterministically for a seed.
struct CancelAfter<F> {
    fut: Pin<Box<F>>,
    polls: u32,
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls == 0 {
            return Poll::Ready(None);
        }
        self.polls -= 1;
        self.fut.as_mut().poll(cx).map(Some)
    }
}

struct Run {
    rng: StdRng,
    dir: PathBuf,
    policy: Policy,
    urls: Vec<String>,
    /// A location whose every read and write fails: a destination that is down.
    down: String,
    key: Arc<SigningKey>,
    recipient: Recipient,
    identities: Arc<Identities>,
    signers: Signers,
    /// Trusted archives stored at each destination (as tracked from push and prune reports),
    /// with the SHA-256 of their plaintext.
    stored: Vec<BTreeMap<String, String>>,
    /// Planted archives at each destination: unsigned, and future-dated.
    unsigned: Vec<BTreeSet<String>>,
    future: Vec<BTreeSet<String>>,
    tally: Tally,
}

impl Run {
    fn new(seed: u64, dir: &Path, urls: Vec<String>) -> Run {
        let mut rng = StdRng::seed_from_u64(seed);
        let key = SigningKey::generate("endurance-host");
        let key_file = dir.join("signing.key");
        std::fs::write(&key_file, key.to_openssh().expose_secret()).unwrap();
        let age = age::x25519::Identity::generate();
        let id_file = dir.join("identity.txt");
        std::fs::write(&id_file, format!("{}\n", age.to_string().expose_secret())).unwrap();
        set_private(&key_file);
        set_private(&id_file);
        let recipient = age.to_public().to_string();
        let toml = format!(
            r#"version = 1
name = "endurance"
rpo = "1d"
verify-every = "8d"
clock-tolerance = "1h"
[encryption]
recipients = ["{recipient}"]
[signing]
key-file = "{}"
trusted = ["{}"]
[placement]
copies = 2
[retention]
keep-last = 4
keep-daily = 7
keep-weekly = 4
keep-monthly = 6
[[destination]]
name = "vault"
url = "{}"
lock = "governance"
lock-days = 3
[[destination]]
name = "copy"
url = "{}"
"#,
            key_file.display(),
            key.public_line(),
            urls[0],
            urls[1],
        );
        let policy = Policy::parse(&toml, "endurance.toml").unwrap();
        // The destinations as the policy opens them: the vault's URL carries its lock.
        let urls = offsite::policy::locations(&policy, true)
            .into_iter()
            .map(|(_, u)| u)
            .collect();
        let blocker = dir.join("down");
        std::fs::write(&blocker, b"a file where a directory should be").unwrap();
        let signers =
            Signers::new(TrustedSigners::parse(&[key.public_line()], "endurance", None).unwrap());
        let identities = Arc::new(IdentityFile::read(&id_file).unwrap().parse().unwrap());
        let _ = rng.gen::<u64>();
        Run {
            rng,
            dir: dir.to_path_buf(),
            policy,
            down: format!("file://{}/dest", blocker.display()),
            urls,
            key: Arc::new(key),
            recipient: Recipient::parse(&recipient, "endurance").unwrap(),
            identities,
            signers,
            stored: vec![BTreeMap::new(), BTreeMap::new()],
            unsigned: vec![BTreeSet::new(), BTreeSet::new()],
            future: vec![BTreeSet::new(), BTreeSet::new()],
            tally: Tally::default(),
        }
    }

    fn judge(&self, now: DateTime<Utc>) -> Judge {
        Judge::new(
            self.signers.clone(),
            Clock {
                now,
                tolerance: self.policy.tolerance(),
            },
        )
    }

    /// The destinations for one step: a down one swapped for the failing location.
    async fn open(&self, down: Option<usize>) -> Vec<Opened> {
        let urls: Vec<String> = self
            .urls
            .iter()
            .enumerate()
            .map(|(i, u)| {
                if Some(i) == down {
                    self.down.clone()
                } else {
                    u.clone()
                }
            })
            .collect();
        offsite::registry::open_all(&urls, None).await.unwrap()
    }

    /// Pushes `name` (bytes of a random size) signed with `key` (none: a bucket writer's
    /// plant) by a host whose clock says `clock_now`. Returns the destinations that hold it
    /// and its plaintext SHA-256.
    async fn push(
        &mut self,
        name: &str,
        key: Option<Arc<SigningKey>>,
        clock_now: DateTime<Utc>,
        down: Option<usize>,
        interrupt: Option<u32>,
    ) -> (Vec<usize>, String) {
        let len = self.rng.gen_range(200..3000);
        let bytes: Vec<u8> = (0..len).map(|_| self.rng.gen()).collect();
        let path = self.dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let sha = sha256_file(&path);
        if let Some(polls) = interrupt {
            let fut = Box::pin(offsite::engine::push::run(
                self.request(name, &path, key.clone(), clock_now, down)
                    .await,
            ));
            if (CancelAfter { fut, polls }).await.is_none() {
                self.tally.interrupted += 1;
                // Whatever the killed push spawned settles before it is run again.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        let req = self.request(name, &path, key, clock_now, down).await;
        let report = offsite::engine::push::run(req).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        let held = report
            .destinations
            .iter()
            .enumerate()
            .filter(|(_, d)| matches!(d.status, PushStatus::Stored | PushStatus::AlreadyStored))
            .map(|(i, _)| i)
            .collect();
        (held, sha)
    }

    async fn request(
        &self,
        name: &str,
        path: &Path,
        signing: Option<Arc<SigningKey>>,
        now: DateTime<Utc>,
        down: Option<usize>,
    ) -> PushRequest {
        PushRequest {
            source: Source::File(std::fs::File::open(path).unwrap(), path.to_path_buf()),
            name: name.to_string(),
            recipients: vec![self.recipient.clone()],
            destinations: self.open(down).await,
            overwrite: false,
            progress: None,
            annotations: Annotations {
                policy: Some("endurance".into()),
                metadata: None,
                signing,
            },
            expect_plaintext: None,
            no_spool: false,
            clock: Clock {
                now,
                tolerance: self.policy.tolerance(),
            },
        }
    }

    /// One step at `now`: the push, perhaps a plant, and at midnight prune, status and (on
    /// Sundays) a drill, each followed by the checks.
    async fn step(&mut self, now: DateTime<Utc>, step: usize) {
        self.tally.steps += 1;
        let down = self.rng.gen_bool(0.05).then(|| self.rng.gen_range(0..2));
        if down.is_some() {
            self.tally.outages += 1;
        }
        let interrupt = self.rng.gen_bool(0.05).then(|| self.rng.gen_range(1..40));
        let name = name_at(now);
        let (held, sha) = self
            .push(&name, Some(self.key.clone()), now, down, interrupt)
            .await;
        self.tally.pushes += 1;
        for d in 0..2 {
            assert_eq!(
                held.contains(&d),
                Some(d) != down,
                "step {step}: {name} at destination {d} (down: {down:?})"
            );
        }
        for d in held {
            self.stored[d].insert(name.clone(), sha.clone());
        }
        if self.rng.gen_bool(0.02) {
            // A bucket writer's archive, dated a little ahead of the newest real one.
            let plant = name_at(now + Duration::minutes(self.rng.gen_range(1..59)));
            let (held, _) = self.push(&plant, None, now, None, None).await;
            for d in held {
                self.unsigned[d].insert(plant.clone());
            }
            self.tally.planted_unsigned += 1;
        }
        if self.rng.gen_bool(0.01) {
            // A trusted host whose clock runs 400 days fast.
            let fast = now + Duration::days(400);
            let (held, _) = self
                .push(&name_at(fast), Some(self.key.clone()), fast, None, None)
                .await;
            for d in held {
                self.future[d].insert(name_at(fast));
            }
            self.tally.planted_future += 1;
        }
        if step % STEPS_A_DAY == STEPS_A_DAY - 1 {
            let down = self.rng.gen_bool(0.05).then(|| self.rng.gen_range(0..2));
            self.prune(now, down).await;
            self.status(now, down).await;
            if step % (STEPS_A_DAY * 7) == STEPS_A_DAY * 7 - 1 {
                self.drill(now).await;
            }
        }
    }

    /// Every copy at destination `d` as a scan at `now` sees it.
    async fn scan(
        &self,
        loc: &Opened,
        now: DateTime<Utc>,
    ) -> Vec<offsite::engine::inventory::Entry> {
        scan(loc, &ReadOptions::new(self.judge(now))).await.unwrap()
    }

    /// Nightly prune, and the invariants around it.
    async fn prune(&mut self, now: DateTime<Utc>, down: Option<usize>) {
        self.tally.prunes += 1;
        let live = self.open(None).await;
        // Before: the copies whose lock holds now, at the store.
        let mut locked = Vec::new();
        for e in self.scan(&live[0], now).await {
            let Some(o) = &e.object else { continue };
            let head = live[0].store.head(&o.key).await.unwrap();
            if head.retention.is_some_and(|r| r.retain_until > now) {
                locked.push(e.name.clone());
            }
        }
        let locations = self.open(down).await;
        let req = prune::Request {
            dry_run: false,
            force: false,
            max_delete: None,
            now,
            inventory: ReadOptions::new(self.judge(now)),
            delete_untrusted: false,
        };
        let report = prune::run(&self.policy, &locations, &req).await;
        let report = match (report, down) {
            (Err(e), Some(_)) => {
                // A destination that cannot be read: nothing is deleted anywhere.
                assert!(e.to_string().contains("prune deletes nothing"), "{e}");
                self.check_nothing_deleted(now).await;
                return;
            }
            (r, _) => r.unwrap(),
        };
        for d in report.done.iter().filter(|d| d.ok) {
            if d.action == prune::Action::DeleteArchive {
                let di = self.index(&d.destination);
                self.stored[di].remove(&d.name);
                self.tally.deleted += 1;
            }
        }
        self.check_after_prune(now, &report, &locked).await;
    }

    fn index(&self, destination: &str) -> usize {
        self.policy
            .destinations
            .iter()
            .position(|d| d.name == destination)
            .unwrap()
    }

    async fn check_nothing_deleted(&mut self, now: DateTime<Utc>) {
        let live = self.open(None).await;
        for (d, loc) in live.iter().enumerate() {
            let names: BTreeSet<String> = self
                .scan(loc, now)
                .await
                .into_iter()
                .filter(|e| e.manifest.is_some())
                .map(|e| e.name)
                .collect();
            for n in self.stored[d].keys() {
                assert!(names.contains(n), "{n} vanished at {d} on a refused prune");
            }
            self.tally.checks += 1;
        }
    }

    async fn check_after_prune(
        &mut self,
        now: DateTime<Utc>,
        report: &prune::Report,
        locked: &[String],
    ) {
        let live = self.open(None).await;
        let mut present: Vec<BTreeMap<String, State>> = Vec::new();
        for loc in &live {
            let entries = self.scan(loc, now).await;
            present.push(entries.into_iter().map(|e| (e.name, e.state)).collect());
        }
        // What retention keeps is there and whole; what the tally says is stored is there.
        for p in report.plan.items.iter().filter(|p| p.keep) {
            assert_eq!(
                present[p.destination].get(&p.name),
                Some(&State::Complete),
                "kept {} missing at {}",
                p.name,
                p.destination
            );
            self.tally.checks += 1;
        }
        for (d, stored) in self.stored.iter().enumerate() {
            for n in stored.keys() {
                assert_eq!(present[d].get(n), Some(&State::Complete), "{n} at {d}");
            }
        }
        // No copy whose lock held was deleted.
        for n in locked {
            assert!(present[0].contains_key(n), "locked {n} deleted");
            self.tally.checks += 1;
        }
        // The newest trusted archive is never deleted, and restore --latest gives it back.
        let newest = self.stored.iter().flat_map(|s| s.keys()).max().cloned();
        if let Some(newest) = &newest {
            for (d, stored) in self.stored.iter().enumerate() {
                if let Some(best) = stored.keys().max() {
                    assert!(present[d].contains_key(best), "newest {best} gone at {d}");
                }
            }
            let restored = self.restore(Selector::Latest, now).await;
            assert_eq!(&restored, newest, "restore --latest chose {restored}");
        }
        // Locks follow retention classes (a plan refused by a rail extends none).
        if !report.refused() {
            self.check_locks(now, report, &live[0]).await;
        }
        // Nothing planted is deleted; each is seen for what it is.
        for (d, here) in present.iter().enumerate() {
            for n in &self.unsigned[d] {
                assert_eq!(here.get(n), Some(&State::Untrusted), "planted {n} at {d}");
            }
            for n in &self.future[d] {
                assert_eq!(
                    here.get(n),
                    Some(&State::FutureDated),
                    "fast-clock {n} at {d}"
                );
            }
            self.tally.checks += 1;
        }
        // One kept archive, chosen at random, restores with its bytes.
        let kept: Vec<&String> = self.stored[1].keys().collect();
        if !kept.is_empty() {
            let pick = kept[self.rng.gen_range(0..kept.len())].clone();
            assert_eq!(self.restore(Selector::Name(pick.clone()), now).await, pick);
        }
    }

    /// A kept copy at the locked destination is locked at the store at least as long as its
    /// keep classes earn (weekly: 4 weeks, monthly: 6 months from its creation), and never
    /// less than the push-time lock (lock-days).
    async fn check_locks(&mut self, now: DateTime<Utc>, report: &prune::Report, vault: &Opened) {
        for p in report
            .plan
            .items
            .iter()
            .filter(|p| p.keep && p.destination == 0)
        {
            let mut want = p.created + Duration::days(3);
            let words = p.reasons.join(" ");
            if words.contains("weekly") {
                want = want.max(
                    Span {
                        weeks: 4,
                        ..Span::default()
                    }
                    .after(p.created),
                );
            }
            if words.contains("monthly") {
                want = want.max(
                    Span {
                        months: 6,
                        ..Span::default()
                    }
                    .after(p.created),
                );
            }
            if want <= now {
                continue;
            }
            let key = format!("{}.age", p.name);
            let head = vault.store.head(&key).await.unwrap();
            let until = head.retention.map(|r| r.retain_until);
            assert!(
                until.is_some_and(|u| u >= want),
                "{} kept ({words}) locked until {until:?}, wants {want}",
                p.name
            );
            self.tally.checks += 1;
        }
    }

    async fn restore(&mut self, selector: Selector, now: DateTime<Utc>) -> String {
        self.tally.restores += 1;
        let locations = self.open(None).await;
        let out = self.dir.join("restored");
        let _ = std::fs::remove_file(&out);
        let req = RestoreRequest {
            locations: &locations,
            selector,
            target: Target::File {
                path: out.clone(),
                force: true,
            },
            identities: Some(self.identities.clone()),
            thaw_days: None,
            progress: None,
            judge: self.judge(now),
            allow_untrusted: false,
        };
        let report = restore::run(&req).await.unwrap();
        let want = self
            .stored
            .iter()
            .find_map(|s| s.get(&report.archive))
            .unwrap_or_else(|| panic!("restored {}, which is no trusted archive", report.archive));
        assert_eq!(&sha256_file(&out), want, "{}", report.archive);
        report.archive
    }

    /// Status's verdict against the tally: complete, untrusted and future-dated per
    /// destination, and exit-4 damage exactly when something planted is there.
    async fn status(&mut self, now: DateTime<Utc>, down: Option<usize>) {
        let locations = self.open(down).await;
        let r = status::run(&self.policy, &locations, ReadOptions::new(self.judge(now))).await;
        for (d, ds) in r.status.destinations.iter().enumerate() {
            if Some(d) == down {
                assert!(!r.readable(&ds.name));
                continue;
            }
            assert_eq!(ds.complete, self.stored[d].len(), "complete at {}", ds.name);
            assert_eq!(
                ds.untrusted,
                self.unsigned[d].len(),
                "untrusted at {}",
                ds.name
            );
            assert_eq!(
                ds.future_dated,
                self.future[d].len(),
                "future-dated at {}",
                ds.name
            );
            self.tally.checks += 1;
        }
        let planted = (0..2).any(|d| !self.unsigned[d].is_empty() || !self.future[d].is_empty());
        assert_eq!(
            !r.status.damage.is_empty(),
            planted,
            "{:?}",
            r.status.damage
        );
        for s in &r.status.series {
            if let Some(n) = &s.newest {
                assert!(
                    self.stored.iter().any(|st| st.contains_key(n)),
                    "status newest {n}"
                );
            }
        }
    }

    /// The weekly drill: every destination proves its newest trusted copy.
    async fn drill(&mut self, now: DateTime<Utc>) {
        self.tally.drills += 1;
        let locations = self.open(None).await;
        let req = drill::DrillRequest {
            locations: &locations,
            names: self
                .policy
                .destinations
                .iter()
                .map(|d| d.name.clone())
                .collect(),
            identities: Some(self.identities.clone()),
            options: ReadOptions::new(self.judge(now)),
            key: Some(self.key.clone()),
        };
        let report = drill::run(&req).await;
        assert_eq!(report.proven, 2, "{report:?}");
        for c in report
            .copies
            .iter()
            .filter(|c| c.copy.verdict == Verdict::Ok)
        {
            let d = self.index(&c.destination);
            assert!(
                self.stored[d].contains_key(&c.copy.archive),
                "drilled {}",
                c.copy.archive
            );
        }
        let r = status::run(&self.policy, &locations, ReadOptions::new(self.judge(now))).await;
        for ds in &r.status.destinations {
            assert_eq!(ds.proven, Some(true), "{} proven after the drill", ds.name);
        }
        self.tally.checks += 1;
    }
}

#[cfg(unix)]
fn set_private(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The seed: `OFFSITE_ENDURANCE_SEED`, else from the clock.
fn seed() -> u64 {
    std::env::var("OFFSITE_ENDURANCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64)
}

async fn endure(kind: &str, days: usize, urls: impl FnOnce(&Path, u64) -> Vec<String>) {
    let seed = seed();
    let dir = tempfile::tempdir().unwrap();
    // Pushes keep their spools under the cache directory: the endurance runs' own (spools are
    // named by archive and destinations, so the runs share it). Every other test runs offsite
    // as a child process with its own OFFSITE_CACHE_DIR.
    static CACHE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(|| tempfile::tempdir().unwrap());
    std::env::set_var("OFFSITE_CACHE_DIR", cache.path());
    let mut run = Run::new(seed, dir.path(), urls(dir.path(), seed));
    println!("endurance ({kind}): OFFSITE_ENDURANCE_SEED={seed}, {days} simulated days");
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let wall = Instant::now();
    for step in 0..days * STEPS_A_DAY {
        let now = start + Duration::hours(STEP_HOURS * step as i64);
        run.step(now, step).await;
    }
    let t = &run.tally;
    println!(
        "endurance ({kind}): seed {seed}, {days} days in {:.1}s: {} steps, {} pushes ({} interrupted and rerun), {} outages, {} unsigned and {} fast-clock archives planted, {} prunes deleting {}, {} drills, {} restores, {} invariants checked",
        wall.elapsed().as_secs_f64(),
        t.steps,
        t.pushes,
        t.interrupted,
        t.outages,
        t.planted_unsigned,
        t.planted_future,
        t.prunes,
        t.deleted,
        t.drills,
        t.restores,
        t.checks
    );
    assert!(
        t.deleted > 0 && t.drills > 0,
        "the run exercised nothing: {t:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endurance_a_simulated_year_on_memory() {
    let days = std::env::var("OFFSITE_ENDURANCE_DAYS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(365);
    endure("memory://", days, |_, seed| {
        let tag = format!("{seed:x}-{}", std::process::id());
        vec![
            format!("memory://endurance-vault-{tag}"),
            format!("memory://endurance-copy-{tag}"),
        ]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endurance_two_simulated_months_on_memory_and_file() {
    // The locked vault in memory (a local disk holds no locks), the copy on a local disk.
    endure("memory:// and file://", 60, |dir, seed| {
        vec![
            format!(
                "memory://endurance-file-vault-{seed:x}-{}",
                std::process::id()
            ),
            format!("file://{}/copy", dir.display()),
        ]
    })
    .await;
}
