//! The inventory at scale (issue 11): manifests read concurrently and retried when throttled,
//! the local inventory cache (invalidated by overwrites, deletions and damage), restore and
//! verify of one archive reading only the manifests they need, and ten thousand archives in
//! flat memory. All on real servers.

use std::sync::atomic::Ordering;

use offsite_storage::{PutOptions, Storage, StorageExt};

use crate::azure::AZURITE_ACCOUNT;
use crate::common::*;
use crate::proxy::{Answer, Proxy};

fn cmd(sb: &Sandbox) -> assert_cmd::Command {
    let mut c = sb.cmd();
    c.envs(emulator_credentials());
    c
}

/// `(manifests listed, manifests read, taken from the cache)` of each inventory the command
/// logged at `-v`.
fn inventory_reads(o: &std::process::Output) -> Vec<(u64, u64, u64)> {
    let field = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {line}"))
    };
    stderr(o)
        .lines()
        .filter(|l| l.contains("inventory: listed"))
        .map(|l| {
            (
                field(l, "manifests"),
                field(l, "read"),
                field(l, "from_cache"),
            )
        })
        .collect()
}

fn archive_name(day: u32) -> String {
    format!("app-backup-202611{day:02}_020000.tar.gz")
}

/// `ls --json`: (name, state, plaintext sha256) of each archive, oldest first.
fn listed(sb: &Sandbox, url: &str, extra: &[&str]) -> Vec<(String, String, String)> {
    let o = cmd(sb)
        .args(["ls", "--json", url])
        .args(extra)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let v = ls_lines(&o.stdout);
    v["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["archive"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
                a["sha256"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn restore_pick(sb: &Sandbox, url: &str, select: &[&str]) -> (std::process::Output, String) {
    let o = cmd(sb)
        .arg("restore")
        .arg(url)
        .args(select)
        .args(["-o", "picked", "--force", "-v", "-i"])
        .arg(&sb.key)
        .output()
        .unwrap();
    let sha = if o.status.success() {
        sha256_file(&sb.path("picked"))
    } else {
        String::new()
    };
    (o, sha)
}

/// s3s-fs lists no ETag (the cache keys on its millisecond times); moto lists ETags, GCS
/// generations, Azurite ETags.
#[tokio::test(flavor = "multi_thread")]
async fn the_inventory_cache_follows_overwrites_deletions_and_damage_on_every_store() {
    let name = bucket("invcache");
    let s3s = crate::s3::store("OFFSITE_TEST_S3S", &name, "app", false).await;
    let url = format!("s3://{name}/app?endpoint={}", emulator("OFFSITE_TEST_S3S"));
    cache_follows_changes(&s3s, &url).await;
    let moto = crate::s3::store("OFFSITE_TEST_MOTO", &name, "app", false).await;
    let url = format!("s3://{name}/app?endpoint={}", emulator("OFFSITE_TEST_MOTO"));
    cache_follows_changes(&moto, &url).await;
    let gcs = crate::gcs::store(&name, "app").await;
    let url = format!("gs://{name}/app?endpoint={}", emulator("OFFSITE_TEST_GCS"));
    cache_follows_changes(&gcs, &url).await;
    let az = crate::azure::store(&name, "app").await;
    let url = format!(
        "az://{AZURITE_ACCOUNT}/{name}/app?endpoint={}",
        emulator("OFFSITE_TEST_AZURITE")
    );
    cache_follows_changes(&az, &url).await;
}

async fn cache_follows_changes(store: &dyn Storage, url: &str) {
    let sb = Sandbox::new();
    let url = url.to_string();
    for (i, day) in [20, 21, 22].into_iter().enumerate() {
        let src = sb.archive(&archive_name(day), 2000 + i, day as u64);
        assert_code(&sb.push_via(cmd(&sb), &src, &url), 0);
    }
    let sha = |day: u32| sha256_file(&sb.path(&archive_name(day)));

    // First ls reads all three; the rerun reads none, and shows the same.
    let o = cmd(&sb).args(["ls", "-v", &url]).output().unwrap();
    assert_code(&o, 0);
    assert_eq!(inventory_reads(&o), vec![(3, 3, 0)], "{}", stderr(&o));
    let first = stdout(&o);
    let o = cmd(&sb).args(["ls", "-v", &url]).output().unwrap();
    assert_eq!(inventory_reads(&o), vec![(3, 0, 3)], "{}", stderr(&o));
    assert_eq!(stdout(&o), first);
    let files: Vec<_> = std::fs::read_dir(sb.path("cache/inventory"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one cache file per location: {files:?}");
    let cache_file = files[0].clone();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cache_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Overwrite the newest with other bytes: its manifest's ETag changed, so only it is read,
    // and ls, verify and restore all see the new content.
    let newer = sb.archive(&archive_name(22), 5000, 99);
    let o = cmd(&sb)
        .arg("push")
        .arg(&newer)
        .args(["-r", &sb.recipient, "--to", &url, "--overwrite"])
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = cmd(&sb).args(["ls", "-v", &url]).output().unwrap();
    assert_eq!(inventory_reads(&o), vec![(3, 1, 2)], "{}", stderr(&o));
    let cached = listed(&sb, &url, &[]);
    assert_eq!(cached, listed(&sb, &url, &["--no-cache"]));
    assert_eq!(cached[2], (archive_name(22), "complete".into(), sha(22)));
    let (o, got) = restore_pick(&sb, &url, &["--latest"]);
    assert_code(&o, 0);
    assert_eq!(got, sha(22), "the overwritten content");
    assert_eq!(inventory_reads(&o), vec![(3, 1, 0)], "only the newest read");

    // A manifest deleted behind offsite's back: the listing decides, the cached manifest is no
    // copy and the data left is an incomplete upload.
    store
        .delete(&format!("{}.manifest.json", archive_name(21)))
        .await
        .unwrap();
    let o = cmd(&sb).args(["ls", "-v", &url]).output().unwrap();
    assert_eq!(inventory_reads(&o), vec![(2, 0, 2)], "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("incomplete   {}", archive_name(21))),
        "{}",
        stdout(&o)
    );
    // The newest's data deleted: the cached manifest no longer makes a copy.
    store
        .delete(&format!("{}.age", archive_name(22)))
        .await
        .unwrap();
    let cached = listed(&sb, &url, &[]);
    assert_eq!(cached, listed(&sb, &url, &["--no-cache"]));
    assert_eq!(
        cached.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(),
        ["complete", "incomplete", "missing-data"]
    );
    // --latest and --at walk past it to the one complete copy, cache or not.
    for select in [
        &["--latest"][..],
        &["--at", "2026-11-23T00:00:00Z"],
        &["--at", "2026-11-22T02:00:00Z"],
    ] {
        let (o, got) = restore_pick(&sb, &url, select);
        assert_code(&o, 0);
        assert_eq!(got, sha(20), "{select:?}: {}", stderr(&o));
        assert_eq!(inventory_reads(&o), vec![(2, 2, 0)], "{select:?}");
    }
    let o = cmd(&sb).args(["verify", &url]).output().unwrap();
    assert_code(&o, 4);
    assert!(
        stdout(&o).contains(&format!(
            "the data object {}.age is missing",
            archive_name(22)
        )),
        "{}",
        stdout(&o)
    );

    // A damaged cache file is rebuilt, never trusted: a flipped digit inside a manifest line
    // still parses, but no longer matches the header's hash.
    let text = std::fs::read_to_string(&cache_file).unwrap();
    let at = text.rfind("\"size\":").unwrap() + 7;
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'9' { b'1' } else { b'9' };
    std::fs::write(&cache_file, &bytes).unwrap();
    let o = cmd(&sb).args(["ls", "-v", &url]).output().unwrap();
    assert!(
        stderr(&o).contains("the inventory cache is not usable"),
        "{}",
        stderr(&o)
    );
    assert_eq!(inventory_reads(&o), vec![(2, 2, 0)], "{}", stderr(&o));
    assert_eq!(listed(&sb, &url, &[]), cached);
    // Truncated, and garbage: the same.
    for damage in [&bytes[..bytes.len() / 2], b"\x00\x01not json\n"] {
        std::fs::write(&cache_file, damage).unwrap();
        let o = cmd(&sb).args(["ls", "-v", &url]).output().unwrap();
        assert_eq!(inventory_reads(&o), vec![(2, 2, 0)], "{}", stderr(&o));
        assert_eq!(listed(&sb, &url, &[]), cached);
    }
    // --no-cache neither reads nor writes it.
    std::fs::remove_file(&cache_file).unwrap();
    let o = cmd(&sb)
        .args(["ls", "-v", "--no-cache", &url])
        .output()
        .unwrap();
    assert_eq!(inventory_reads(&o), vec![(2, 2, 0)]);
    assert!(!cache_file.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_manifest_reads_are_retried_on_every_store() {
    let sb = Sandbox::new();
    let s3 = bucket("throttle");
    let _s3 = crate::s3::store("OFFSITE_TEST_S3S", &s3, "app", false).await;
    let gcs = bucket("throttle");
    let _gcs = crate::gcs::store(&gcs, "app").await;
    let container = bucket("throttle");
    let _az = crate::azure::store(&container, "app").await;
    let proxies = [
        (
            Proxy::start(&emulator("OFFSITE_TEST_S3S")),
            Answer::S3_SLOW_DOWN,
        ),
        (
            Proxy::start(&emulator("OFFSITE_TEST_GCS")),
            Answer::GCS_TOO_MANY_REQUESTS,
        ),
        (
            Proxy::start(
                emulator("OFFSITE_TEST_AZURITE").trim_end_matches(&format!("/{AZURITE_ACCOUNT}")),
            ),
            Answer::AZURE_SERVER_BUSY,
        ),
    ];
    let urls = [
        format!("s3://{s3}/app?endpoint={}", proxies[0].0.endpoint),
        format!("gs://{gcs}/app?endpoint={}", proxies[1].0.endpoint),
        format!(
            "az://{AZURITE_ACCOUNT}/{container}/app?endpoint={}/{AZURITE_ACCOUNT}",
            proxies[2].0.endpoint
        ),
    ];
    let n = 12u32;
    for day in 1..=n {
        let src = sb.archive(&archive_name(day), 300, u64::from(day));
        let mut c = cmd(&sb);
        c.arg("push").arg(&src).args(["-r", &sb.recipient]);
        for u in &urls {
            c.args(["--to", u]);
        }
        assert_code(&c.output().unwrap(), 0);
    }
    for ((proxy, answer), url) in proxies.iter().zip(&urls) {
        *proxy.answer.lock().unwrap() = answer.clone();
        *proxy.fail_only.lock().unwrap() = Some(".manifest.json".into());
        proxy.fail_next.store(5, Ordering::Relaxed);
        let o = cmd(&sb)
            .args(["ls", "-v", "--no-cache", "--jobs", "6", url])
            .output()
            .unwrap();
        assert_code(&o, 0);
        assert_eq!(
            proxy.failed.load(Ordering::Relaxed),
            5,
            "{url}: five manifest reads throttled"
        );
        assert!(stderr(&o).contains("retrying"), "{url}: {}", stderr(&o));
        assert_eq!(inventory_reads(&o), vec![(12, 12, 0)], "{url}");
        let complete = stdout(&o)
            .lines()
            .filter(|l| l.contains(" complete "))
            .count();
        assert_eq!(complete, n as usize, "{url}: {}", stdout(&o));
        // And in the listing's order, oldest first, as without throttling.
        proxy.fail_next.store(0, Ordering::Relaxed);
        assert_eq!(
            listed(&sb, url, &["--no-cache"])
                .into_iter()
                .map(|a| a.0)
                .collect::<Vec<_>>(),
            (1..=n).map(archive_name).collect::<Vec<_>>()
        );
    }
}

#[test]
fn verify_and_restore_of_one_archive_read_only_its_manifest() {
    let sb = Sandbox::new();
    for day in 1..=6 {
        let src = sb.archive(&archive_name(day), 500, u64::from(day));
        assert_code(&sb.push(&src, &["a"]), 0);
    }
    let url = sb.url("a");
    let o = sb
        .cmd()
        .args(["verify", "-v", &url, "--archive", &archive_name(3)])
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(inventory_reads(&o), vec![(6, 1, 0)], "{}", stderr(&o));
    assert!(stdout(&o).contains(&archive_name(3)));
    assert!(!stdout(&o).contains(&archive_name(4)));
    let o = sb
        .cmd()
        .args([
            "restore",
            "-v",
            &url,
            "--archive",
            &archive_name(2),
            "-o",
            "x",
            "-i",
        ])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(inventory_reads(&o), vec![(6, 1, 0)], "{}", stderr(&o));
    assert_eq!(
        sha256_file(&sb.path("x")),
        sha256_file(&sb.path(&archive_name(2)))
    );
    // --at reads the one at or before the time; a name no one has reads nothing.
    let o = sb
        .cmd()
        .args([
            "restore",
            "-v",
            &url,
            "--at",
            "2026-11-04T12:00:00Z",
            "-o",
            "y",
            "-i",
        ])
        .arg(&sb.key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert_eq!(inventory_reads(&o), vec![(6, 1, 0)], "{}", stderr(&o));
    assert_eq!(
        sha256_file(&sb.path("y")),
        sha256_file(&sb.path(&archive_name(4)))
    );
    // A local disk has no inventory cache.
    let o = sb.cmd().args(["ls", "-v", &url]).output().unwrap();
    assert_eq!(inventory_reads(&o), vec![(6, 6, 0)]);
    assert!(!sb.path("cache/inventory").exists());
}

/// Peak RSS of a command in KiB, from the kernel's accounting of a python3 parent's children.
fn peak_rss_kib(c: std::process::Command) -> (std::process::Output, u64) {
    let mut py = std::process::Command::new("python3");
    py.args([
        "-c",
        "import resource,subprocess,sys\n\
         r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)\n\
         sys.stdout.buffer.write(r.stdout)\n\
         print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n\
         sys.exit(r.returncode)",
    ]);
    py.arg(c.get_program()).args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => py.env(k, v),
            None => py.env_remove(k),
        };
    }
    if let Some(d) = c.get_current_dir() {
        py.current_dir(d);
    }
    let o = py.output().unwrap();
    let rss = String::from_utf8_lossy(&o.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rss: {}", String::from_utf8_lossy(&o.stderr)));
    (o, rss)
}

/// Ten thousand archives under one prefix on s3s-fs (one pushed by offsite, the rest its
/// manifest and object copied under other names through the Storage trait): every one listed,
/// across pages, `ls --json` and a quick verify within a few KiB an archive of what they take
/// over one archive, and `restore --latest` reads one manifest.
#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_archives_list_verify_and_restore_in_flat_memory_on_s3s() {
    use futures::{StreamExt, TryStreamExt};
    let sb = Sandbox::new();
    let name = bucket("tenk");
    let store = crate::s3::store("OFFSITE_TEST_S3S", &name, "app", false).await;
    let url = format!("s3://{name}/app?endpoint={}", emulator("OFFSITE_TEST_S3S"));
    let newest = "app-backup-20261201_000000.tar.gz";
    let src = sb.archive(newest, 4000, 7);
    assert_code(&sb.push_via(cmd(&sb), &src, &url), 0);
    let manifest = store
        .get_bytes(&format!("{newest}.manifest.json"))
        .await
        .unwrap();
    let data = store.get_bytes(&format!("{newest}.age")).await.unwrap();
    let text = String::from_utf8(manifest.to_vec()).unwrap();
    // What the same commands peak at over one archive: the binary, its runtime and its clients
    // (this grows with every SDK linked in, so it is measured, not assumed). Ten thousand
    // archives add an inventory entry each (names, digests, listed sizes: under 4 KiB), never
    // an archive's bytes or a listing's pages held whole.
    let n = 10_000usize;
    let budget = n as u64 * 4;
    let baseline = |args: &[&str]| {
        let mut c = sb.std_cmd();
        c.envs(emulator_credentials());
        c.args(args).arg(&url);
        let (o, rss) = peak_rss_kib(c);
        assert_code(&o, 0);
        rss
    };
    let ls_one = baseline(&["ls", "--json", "-v"]);
    let verify_one = baseline(&["verify", "-v"]);
    // Hourly archives going back from the pushed one.
    let start = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap();
    let store = &store;
    futures::stream::iter(1..n)
        .map(|i| {
            let t = start - chrono::Duration::hours(i as i64);
            let other = format!("app-backup-{}.tar.gz", t.format("%Y%m%d_%H%M%S"));
            let m = text.replace(newest, &other).replace(
                "2026-12-01T00:00:00Z",
                &t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
            let data = data.clone();
            async move {
                store
                    .put_bytes(&format!("{other}.age"), data, PutOptions::default())
                    .await?;
                store
                    .put_bytes(
                        &format!("{other}.manifest.json"),
                        m.into_bytes().into(),
                        PutOptions::default(),
                    )
                    .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("seeded");

    let mut ls = sb.std_cmd();
    ls.envs(emulator_credentials());
    ls.args(["ls", "--json", "-v", &url]);
    let (o, rss) = peak_rss_kib(ls);
    assert_code(&o, 0);
    let v = ls_lines(&o.stdout);
    let archives = v["archives"].as_array().unwrap();
    assert_eq!(archives.len(), n);
    assert!(archives.iter().all(|a| a["state"] == "complete"));
    assert_eq!(archives[n - 1]["archive"], newest, "oldest first");
    let mut names: Vec<_> = archives
        .iter()
        .map(|a| a["archive"].as_str().unwrap())
        .collect();
    names.dedup();
    assert_eq!(names.len(), n, "each once");
    assert!(
        rss < ls_one + budget,
        "ls of {n} archives peaked at {rss} KiB, of one at {ls_one} KiB"
    );

    let mut verify = sb.std_cmd();
    verify.envs(emulator_credentials());
    verify.args(["verify", "-v", &url]);
    let (o, rss) = peak_rss_kib(verify);
    assert_code(&o, 0);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("{n} of {n} copies checked good")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        rss < verify_one + budget,
        "verify of {n} archives peaked at {rss} KiB, of one at {verify_one} KiB"
    );

    let (o, got) = restore_pick(&sb, &url, &["--latest"]);
    assert_code(&o, 0);
    assert_eq!(got, sha256_file(&src));
    assert_eq!(inventory_reads(&o), vec![(n as u64, 1, 0)]);
}

/// Push's memory is a function of part size and the in-flight budget (40 MiB shared by every
/// destination), never of the archive: on s3s-fs, 8 MiB parts at concurrency 32 (five parts
/// fill the budget) and 64 MiB parts (larger than the whole budget, sent one at a time) each
/// peak within a few parts of a small push, for an archive of 320 MiB. Without the budget the
/// first would hold 32 parts and the second all five at once.
#[test]
fn push_memory_is_bounded_by_the_in_flight_budget_not_the_archive() {
    let sb = Sandbox::new();
    let name = bucket("peak");
    let endpoint = emulator("OFFSITE_TEST_S3S");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(crate::s3::store("OFFSITE_TEST_S3S", &name, "app", false));
    let push = |file: &std::path::Path, query: &str| {
        let url = format!("s3://{name}/app?endpoint={endpoint}&{query}");
        let mut c = sb.std_cmd();
        c.envs(emulator_credentials());
        c.arg("push")
            .arg(file)
            .args(["-r", &sb.recipient, "--to", &url]);
        let (o, rss) = peak_rss_kib(c);
        assert_code(&o, 0);
        rss
    };
    let small = sb.archive("app-backup-20261201_000000.tar.gz", 4000, 1);
    let baseline = push(&small, "part-size-mib=8");
    let big = sb.archive("app-backup-20261202_000000.tar.gz", 320 << 20, 2);
    let mib = 1024u64;
    let within = push(&big, "part-size-mib=8&concurrency=32");
    assert!(
        within < baseline + 40 * mib + 3 * 8 * mib,
        "8 MiB parts peaked at {within} KiB, a small push at {baseline} KiB"
    );
    std::fs::rename(&big, sb.path("app-backup-20261203_000000.tar.gz")).unwrap();
    let big = sb.path("app-backup-20261203_000000.tar.gz");
    let over = push(&big, "part-size-mib=64&concurrency=32");
    assert!(
        over < baseline + 3 * 64 * mib,
        "64 MiB parts peaked at {over} KiB, a small push at {baseline} KiB"
    );
}
