//! The conformance suite every [`Storage`] adapter must pass (feature `conformance`).
//!
//! Use [`conformance_suite!`](crate::conformance_suite) in a test module with an async function
//! that returns a [`Fixture`]; it expands to one `#[tokio::test]` per case. Every case works under
//! its own random prefix, so stores on a shared bucket can run the cases in parallel.
//! Capabilities are asserted, never skipped: a store that lacks one must answer `Unsupported`.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};

use crate::error::ErrorKind;
use crate::multipart::{Multipart, MultipartWriter, Part, PartLimits, PartReceipt};
use crate::retry::RetryPolicy;
use crate::storage::{ObjectWriter, Storage, StorageExt};
use crate::types::{Checksum, GetRange, LockMode, Metadata, PutOptions, Receipt, Retention};

/// A store under test and whatever must live as long as it (a temp dir, a server handle).
pub struct Fixture {
    /// The store.
    pub store: Arc<dyn Storage>,
    /// Dropped after the case.
    pub guard: Box<dyn Any + Send>,
}

impl Fixture {
    /// A fixture with nothing to keep alive.
    pub fn new(store: Arc<dyn Storage>) -> Self {
        Fixture {
            store,
            guard: Box::new(()),
        }
    }
}

/// A case a store is known to fail, and why: `(case, reason)`.
pub type Exclusion = (&'static str, &'static str);

/// Expands to one test per conformance case for the store `setup().await` returns.
///
/// `conformance_suite!(setup)` runs every case; `conformance_suite!(setup, except = TABLE)`,
/// with `TABLE: &[Exclusion]`, runs the cases the table names expecting them to fail (a case
/// that passes there fails the test, so the table never outlives its reason), and adds a test
/// that every name in the table is a case and every reason is given.
#[macro_export]
macro_rules! conformance_suite {
    ($setup:path) => {
        $crate::conformance_suite!($setup, except = &[]);
    };
    ($setup:path, except = $except:expr) => {
        $crate::conformance_suite!(@cases $setup, $except;
            round_trip_sizes, ranged_reads, list_paginates, prefix_boundaries, overwrite,
            if_not_exists, aborted_writer_leaves_nothing, dropped_writer_leaves_nothing,
            missing_keys_are_not_found, concurrent_writers, awkward_keys, metadata_round_trip,
            unsupported_operations_answer_unsupported, copy_within_store, delete_removes,
            invalid_keys_are_rejected, receipts_match_content, multipart_upload_survives_the_writer,
            aborted_multipart_upload_is_gone, sequential_session_survives_the_writer,
            cancelled_session_leaves_nothing, create_location_is_idempotent,
            open_uploads_are_listed, versions_are_listed_and_deleted, listing_is_in_key_order,
            thaw_is_declared, copy_from_store_inside_the_provider,
            multipart_writer_bounds_bytes_in_flight);
    };
    (@cases $setup:path, $except:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $setup().await;
                $crate::conformance::run_case(stringify!($case), $except, async {
                    $crate::conformance::$case(&*fixture.store).await;
                })
                .await;
                drop(fixture);
            }
        )*

        #[test]
        fn exclusions_name_cases_with_reasons() {
            $crate::conformance::check_exclusions($except, &[$(stringify!($case)),*]);
        }
    };
}

/// Runs one case: as it is, or, where `excluded` names it, expecting it to fail.
pub async fn run_case(
    case: &str,
    excluded: &[Exclusion],
    run: impl std::future::Future<Output = ()>,
) {
    use futures::FutureExt;
    let Some((_, reason)) = excluded.iter().find(|(c, _)| *c == case) else {
        return run.await;
    };
    let outcome = std::panic::AssertUnwindSafe(run).catch_unwind().await;
    assert!(
        outcome.is_err(),
        "{case} passes on this store now, though excluded because {reason}: take it out of the \
         exclusions"
    );
    eprintln!("{case} fails on this store, as its exclusion says: {reason}");
}

/// Every excluded name is one of `cases`, once, with a reason.
pub fn check_exclusions(excluded: &[Exclusion], cases: &[&str]) {
    for (i, (case, reason)) in excluded.iter().enumerate() {
        assert!(cases.contains(case), "{case} is not a conformance case");
        assert!(
            !reason.trim().is_empty(),
            "{case} is excluded without a reason"
        );
        assert!(
            !excluded[..i].iter().any(|(c, _)| c == case),
            "{case} is excluded twice"
        );
    }
}

/// Deterministic, non-repeating test bytes: the same for the same `len` and `seed`, from a
/// seeded generator.
pub fn pattern(len: usize, seed: u64) -> Bytes {
    use rand::{RngCore, SeedableRng};
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut v);
    v.into()
}

fn case_prefix(name: &str) -> String {
    format!("conformance/{name}-{:08x}", rand::random::<u32>())
}

/// The part size the store declares, or 1 MiB for single-stream stores.
fn part_size(store: &dyn Storage) -> usize {
    store.capabilities().part_size.unwrap_or(1 << 20) as usize
}

/// Writes `data` in uneven chunks, so writers must re-assemble parts.
async fn put_chunked(store: &dyn Storage, key: &str, data: &Bytes, options: PutOptions) {
    let mut w = store.writer(key, options).await.expect("writer");
    let mut rest = data.clone();
    let mut n = 0;
    while !rest.is_empty() {
        let sizes = [7919usize, 1, 65_536, 300_007];
        let take = sizes[n % sizes.len()].min(rest.len());
        n += 1;
        w.write(rest.split_to(take)).await.expect("write");
    }
    let receipt = w.finish().await.expect("finish");
    assert_eq!(receipt.size, data.len() as u64, "{key}: receipt size");
}

async fn read_all(store: &dyn Storage, key: &str, range: Option<GetRange>) -> Bytes {
    let got = store
        .get(key, range)
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"));
    let chunks: Vec<Bytes> = got.stream.try_collect().await.expect("read stream");
    chunks.concat().into()
}

async fn keys_under(store: &dyn Storage, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list_all(prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key)
        .collect();
    keys.sort();
    keys
}

fn assert_kind<T: std::fmt::Debug>(res: crate::Result<T>, kind: ErrorKind, what: &str) {
    match res {
        Err(e) => assert_eq!(e.kind(), kind, "{what}: {e}"),
        Ok(v) => panic!("{what}: expected {kind}, got Ok({v:?})"),
    }
}

/// Objects of 0 B, 1 B, part size - 1, part size, part size + 1 and several parts round-trip.
pub async fn round_trip_sizes(store: &dyn Storage) {
    let p = case_prefix("sizes");
    let ps = part_size(store);
    for (i, len) in [0, 1, ps - 1, ps, ps + 1, 3 * ps + 17]
        .into_iter()
        .enumerate()
    {
        let key = format!("{p}/obj-{len}");
        let data = pattern(len, i as u64);
        put_chunked(store, &key, &data, PutOptions::default()).await;
        let meta = store.head(&key).await.expect("head");
        assert_eq!(meta.size, len as u64, "{key}: head size");
        assert_eq!(read_all(store, &key, None).await, data, "{key}: content");
    }
    assert_eq!(keys_under(store, &p).await.len(), 6);
}

/// Ranged reads return exactly the requested bytes; out-of-range reads fail.
pub async fn ranged_reads(store: &dyn Storage) {
    let key = format!("{}/ranged", case_prefix("range"));
    let data = pattern(100_003, 9);
    store
        .put_bytes(&key, data.clone(), PutOptions::default())
        .await
        .expect("put");
    for (start, end) in [
        (0u64, 1u64),
        (10, 20),
        (0, 100_003),
        (50_000, 100_003),
        (99_999, 100_002),
    ] {
        let got = read_all(store, &key, Some(GetRange::Bounded(start..end))).await;
        assert_eq!(
            got,
            data.slice(start as usize..end as usize),
            "range {start}..{end}"
        );
    }
    let got = read_all(store, &key, Some(GetRange::From(100_000))).await;
    assert_eq!(got, data.slice(100_000..));
    assert!(
        store
            .get(&key, Some(GetRange::Bounded(100_000..200_000)))
            .await
            .is_err(),
        "a range past the end must fail"
    );
}

/// Listing ten thousand keys (a year of hourly archives is 8,760; S3 and Azure pages hold
/// 1,000 or 5,000, GCS 1,000) goes through ten pages or more and returns each key exactly once,
/// in order.
pub async fn list_paginates(store: &dyn Storage) {
    let p = case_prefix("paging");
    let n = 10_000;
    stream::iter(0..n)
        .map(|i| {
            let key = format!("{p}/k{i:05}");
            async move {
                store
                    .put_bytes(&key, Bytes::from(format!("{i}")), PutOptions::default())
                    .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("puts");
    let keys = keys_under(store, &p).await;
    assert_eq!(keys.len(), n, "every key listed once");
    let want: Vec<String> = (0..n).map(|i| format!("{p}/k{i:05}")).collect();
    assert_eq!(keys, want);
    let metas = store.list_all(&p).await.expect("list");
    assert!(metas.iter().all(|m| m.size >= 1), "listing carries sizes");
    if store.capabilities().ordered_listing {
        let listed: Vec<String> = metas.into_iter().map(|m| m.key).collect();
        assert!(
            listed == want,
            "an ordered listing stays in key order across its pages"
        );
    }
}

/// Every key is listed once; a store that declares `ordered_listing` lists them in ascending
/// byte order (replication merges two listings as they stream on that promise), here on keys
/// whose byte order differs from a directory walk's (`-` and `.` sort before `/`).
pub async fn listing_is_in_key_order(store: &dyn Storage) {
    let p = case_prefix("order");
    let names = [
        "a/b",
        "a-b",
        "a/c/d",
        "a0",
        "a.b",
        "B",
        "b~",
        "\u{e9}t\u{e9}",
        "a/b0",
        "a/b-c",
    ];
    let mut want: Vec<String> = names.iter().map(|k| format!("{p}/{k}")).collect();
    for (i, key) in want.iter().enumerate() {
        store
            .put_bytes(key, pattern(i + 1, i as u64), PutOptions::default())
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }
    want.sort();
    let listed: Vec<String> = store
        .list_all(&p)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key)
        .collect();
    if store.capabilities().ordered_listing {
        assert_eq!(
            listed, want,
            "declared ordered_listing: ascending byte order"
        );
    } else {
        let mut sorted = listed;
        sorted.sort();
        assert_eq!(sorted, want, "every key listed once");
    }
}

/// `thaw` is there exactly when declared (restore thaws an archived copy through it): a store
/// that declares it sends the request (a missing key is `NotFound`); any other answers
/// `Unsupported` for an object it holds.
pub async fn thaw_is_declared(store: &dyn Storage) {
    let p = case_prefix("thaw");
    if store.capabilities().thaw {
        assert_kind(
            store.thaw(&format!("{p}/missing"), 1).await,
            ErrorKind::NotFound,
            "thaw of a missing key",
        );
    } else {
        let key = format!("{p}/obj");
        store
            .put_bytes(&key, pattern(10, 3), PutOptions::default())
            .await
            .expect("put");
        assert_kind(
            store.thaw(&key, 1).await,
            ErrorKind::Unsupported,
            "thaw where it is not declared",
        );
    }
}

/// A prefix matches whole segments: `a/b` lists `a/b/...`, never `a/bc`.
pub async fn prefix_boundaries(store: &dyn Storage) {
    let p = case_prefix("prefix");
    // No key is both an object and a "directory" (`a/b` and `a/b/1`): file stores cannot hold that.
    for k in ["a/b/1", "a/b/c/2", "a/bc/3", "a/b.x", "ab/4"] {
        store
            .put_bytes(
                &format!("{p}/{k}"),
                Bytes::from_static(b"x"),
                PutOptions::default(),
            )
            .await
            .expect("put");
    }
    let strip = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|k| k[p.len() + 1..].to_string())
            .collect()
    };
    assert_eq!(
        strip(keys_under(store, &format!("{p}/a/b")).await),
        ["a/b/1", "a/b/c/2"]
    );
    assert_eq!(
        strip(keys_under(store, &format!("{p}/a/b/")).await),
        ["a/b/1", "a/b/c/2"]
    );
    assert_eq!(
        strip(keys_under(store, &format!("{p}/a")).await),
        ["a/b.x", "a/b/1", "a/b/c/2", "a/bc/3"]
    );
    assert_eq!(
        keys_under(store, &format!("{p}/nothing-here")).await,
        Vec::<String>::new()
    );
}

/// Writing a key again replaces it.
pub async fn overwrite(store: &dyn Storage) {
    let key = format!("{}/obj", case_prefix("overwrite"));
    store
        .put_bytes(&key, pattern(5000, 1), PutOptions::default())
        .await
        .expect("put 1");
    let second = pattern(1234, 2);
    store
        .put_bytes(&key, second.clone(), PutOptions::default())
        .await
        .expect("put 2");
    assert_eq!(store.head(&key).await.expect("head").size, 1234);
    assert_eq!(read_all(store, &key, None).await, second);
}

/// A create-only write fails with `AlreadyExists` on a taken key and leaves the object alone.
pub async fn if_not_exists(store: &dyn Storage) {
    let key = format!("{}/obj", case_prefix("ifnotexists"));
    let first = pattern(100, 1);
    store
        .put_bytes(&key, first.clone(), PutOptions::create_new())
        .await
        .expect("first create");
    let res = store
        .put_bytes(&key, pattern(200, 2), PutOptions::create_new())
        .await;
    assert_kind(res, ErrorKind::AlreadyExists, "second create-only put");
    assert_eq!(
        read_all(store, &key, None).await,
        first,
        "the original is untouched"
    );
}

/// An aborted writer leaves no object, not even after several parts.
pub async fn aborted_writer_leaves_nothing(store: &dyn Storage) {
    let p = case_prefix("abort");
    let key = format!("{p}/obj");
    let mut w = store
        .writer(&key, PutOptions::default())
        .await
        .expect("writer");
    w.write(pattern(part_size(store) * 2 + 5, 3))
        .await
        .expect("write");
    w.abort().await.expect("abort");
    assert_kind(
        store.head(&key).await,
        ErrorKind::NotFound,
        "head after abort",
    );
    assert!(
        keys_under(store, &p).await.is_empty(),
        "nothing listed after abort"
    );
}

/// A writer dropped without `finish` leaves no object.
pub async fn dropped_writer_leaves_nothing(store: &dyn Storage) {
    let p = case_prefix("drop");
    let key = format!("{p}/obj");
    {
        let mut w = store
            .writer(&key, PutOptions::default())
            .await
            .expect("writer");
        w.write(pattern(part_size(store) + 5, 4))
            .await
            .expect("write");
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_kind(
        store.head(&key).await,
        ErrorKind::NotFound,
        "head after drop",
    );
    assert!(
        keys_under(store, &p).await.is_empty(),
        "nothing listed after drop"
    );
}

/// head, get and delete of a missing key answer `NotFound`.
pub async fn missing_keys_are_not_found(store: &dyn Storage) {
    let key = format!("{}/missing", case_prefix("missing"));
    assert_kind(store.head(&key).await, ErrorKind::NotFound, "head");
    assert_kind(
        store.get(&key, None).await.map(|g| g.meta),
        ErrorKind::NotFound,
        "get",
    );
    assert_kind(store.delete(&key).await, ErrorKind::NotFound, "delete");
}

/// Writers to different keys can interleave.
pub async fn concurrent_writers(store: &dyn Storage) {
    let p = case_prefix("concurrent");
    let ps = part_size(store);
    let datas: Vec<Bytes> = (0..6)
        .map(|i| pattern(ps + 1000 * i, 100 + i as u64))
        .collect();
    let mut writers = Vec::new();
    for i in 0..datas.len() {
        writers.push(
            store
                .writer(&format!("{p}/w{i}"), PutOptions::default())
                .await
                .expect("writer"),
        );
    }
    // Interleave: a slice of each in turn.
    let step = 50_000;
    let mut offset = 0;
    loop {
        let mut any = false;
        for (w, d) in writers.iter_mut().zip(&datas) {
            if offset < d.len() {
                w.write(d.slice(offset..(offset + step).min(d.len())))
                    .await
                    .expect("write");
                any = true;
            }
        }
        if !any {
            break;
        }
        offset += step;
    }
    futures::future::try_join_all(writers.into_iter().map(|w| w.finish()))
        .await
        .expect("finish");
    for (i, d) in datas.iter().enumerate() {
        assert_eq!(
            &read_all(store, &format!("{p}/w{i}"), None).await,
            d,
            "writer {i}"
        );
    }
}

/// Keys with spaces, unicode, `+`, `%` and deep paths round-trip and list exactly.
pub async fn awkward_keys(store: &dyn Storage) {
    let p = case_prefix("keys");
    let names = [
        "with space.tar.gz",
        "ünïcödé/日本語.age",
        "plus+sign",
        "percent%20not-escaped%2F",
        "deep/a/b/c/d/e/f/g/h.txt",
        "quote'and\"double",
        "tilde~and=equals&amp",
    ];
    for (i, n) in names.iter().enumerate() {
        let key = format!("{p}/{n}");
        let data = pattern(10 + i, i as u64);
        store
            .put_bytes(&key, data.clone(), PutOptions::default())
            .await
            .expect(n);
        assert_eq!(read_all(store, &key, None).await, data, "{n}");
        assert_eq!(store.head(&key).await.expect(n).key, key, "head key of {n}");
    }
    let mut want: Vec<String> = names.iter().map(|n| format!("{p}/{n}")).collect();
    want.sort();
    assert_eq!(keys_under(store, &p).await, want);
}

/// User metadata round-trips where the store keeps it, and is refused where it does not.
pub async fn metadata_round_trip(store: &dyn Storage) {
    let key = format!("{}/obj", case_prefix("metadata"));
    let mut md = Metadata::new();
    md.insert("offsite-sha256".into(), "ab".repeat(32));
    md.insert("archive".into(), "app-backup-20261126_020000.tar.gz".into());
    let opts = PutOptions {
        metadata: md.clone(),
        ..PutOptions::default()
    };
    if store.capabilities().metadata {
        store
            .put_bytes(&key, pattern(10, 1), opts)
            .await
            .expect("put");
        assert_eq!(store.head(&key).await.expect("head").metadata, md);
        // An overwrite without metadata clears it.
        store
            .put_bytes(&key, pattern(10, 1), PutOptions::default())
            .await
            .expect("put");
        assert!(store.head(&key).await.expect("head").metadata.is_empty());
    } else {
        assert_kind(
            store.put_bytes(&key, pattern(10, 1), opts).await,
            ErrorKind::Unsupported,
            "metadata",
        );
    }
}

/// Declared-missing capabilities answer `Unsupported` and leave nothing behind.
pub async fn unsupported_operations_answer_unsupported(store: &dyn Storage) {
    let p = case_prefix("unsupported");
    let caps = store.capabilities();
    let key = format!("{p}/obj");
    if !caps.retention {
        let opts = PutOptions {
            retention: Some(Retention {
                mode: LockMode::Governance,
                retain_until: chrono::Utc::now() + chrono::Duration::days(1),
            }),
            ..PutOptions::default()
        };
        assert_kind(
            store.put_bytes(&key, pattern(10, 1), opts).await,
            ErrorKind::Unsupported,
            "retention",
        );
    }
    if !caps.storage_classes {
        let opts = PutOptions {
            storage_class: Some("COLD".into()),
            ..PutOptions::default()
        };
        assert_kind(
            store.put_bytes(&key, pattern(10, 1), opts).await,
            ErrorKind::Unsupported,
            "storage class",
        );
    }
    if !caps.server_side_copy {
        store
            .put_bytes(&key, pattern(10, 1), PutOptions::default())
            .await
            .expect("put");
        assert_kind(
            store
                .copy(&key, &format!("{p}/copy"), PutOptions::default())
                .await,
            ErrorKind::Unsupported,
            "copy",
        );
        assert_kind(
            store.head(&format!("{p}/copy")).await,
            ErrorKind::NotFound,
            "no copy made",
        );
    } else {
        assert!(
            keys_under(store, &p).await.is_empty(),
            "refused puts left nothing"
        );
    }
}

/// Server-side copy produces an identical object (when the store has it).
pub async fn copy_within_store(store: &dyn Storage) {
    if !store.capabilities().server_side_copy {
        return unsupported_operations_answer_unsupported(store).await;
    }
    let p = case_prefix("copy");
    let data = pattern(part_size(store) + 3, 5);
    store
        .put_bytes(&format!("{p}/src"), data.clone(), PutOptions::default())
        .await
        .expect("put");
    let r = store
        .copy(
            &format!("{p}/src"),
            &format!("{p}/dst/copy"),
            PutOptions::default(),
        )
        .await
        .expect("copy");
    assert_eq!(r.size, data.len() as u64);
    assert_eq!(read_all(store, &format!("{p}/dst/copy"), None).await, data);
    assert_kind(
        store
            .copy(
                &format!("{p}/src"),
                &format!("{p}/dst/copy"),
                PutOptions::create_new(),
            )
            .await,
        ErrorKind::AlreadyExists,
        "create-only copy onto a taken key",
    );
    assert_kind(
        store
            .copy(
                &format!("{p}/missing"),
                &format!("{p}/x"),
                PutOptions::default(),
            )
            .await,
        ErrorKind::NotFound,
        "copy of a missing key",
    );
}

/// A copy inside the provider through the contract (`copy_from_store`, what replication's
/// server-side copies use; here from the store to itself, which any service can): identical
/// bytes, create-only refused on a taken key, a missing source `NotFound`. A store whose
/// `can_copy_from` says no answers `Unsupported` and makes nothing.
pub async fn copy_from_store_inside_the_provider(store: &dyn Storage) {
    let p = case_prefix("copy-from");
    let data = pattern(part_size(store) + 5, 11);
    let (src, dst) = (format!("{p}/src"), format!("{p}/dst/copy"));
    store
        .put_bytes(&src, data.clone(), PutOptions::default())
        .await
        .expect("put");
    if !store.can_copy_from(store, &PutOptions::default()) {
        assert_kind(
            store
                .copy_from_store(store, &src, None, &dst, PutOptions::default())
                .await,
            ErrorKind::Unsupported,
            "copy_from_store where can_copy_from says no",
        );
        assert_kind(store.head(&dst).await, ErrorKind::NotFound, "no copy made");
        return;
    }
    let size = Some(data.len() as u64);
    let r = store
        .copy_from_store(store, &src, size, &dst, PutOptions::default())
        .await
        .expect("copy_from_store");
    assert_eq!(r.size, data.len() as u64);
    assert_eq!(read_all(store, &dst, None).await, data);
    let r = store
        .copy_from_store(
            store,
            &src,
            None,
            &format!("{p}/dst/unsized"),
            PutOptions::default(),
        )
        .await
        .expect("copy_from_store, size asked");
    assert_eq!(r.size, data.len() as u64);
    assert_kind(
        store
            .copy_from_store(store, &src, size, &dst, PutOptions::create_new())
            .await,
        ErrorKind::AlreadyExists,
        "create-only copy onto a taken key",
    );
    assert_kind(
        store
            .copy_from_store(
                store,
                &format!("{p}/missing"),
                None,
                &format!("{p}/x"),
                PutOptions::default(),
            )
            .await,
        ErrorKind::NotFound,
        "copy of a missing key",
    );
}

/// Counts the bytes inside [`Multipart::upload_part`] calls of a real store's primitives
/// (which it calls unchanged), each held a moment so that parts in flight overlap.
struct InFlightCounter {
    inner: Arc<dyn Multipart>,
    now: AtomicU64,
    peak: AtomicU64,
}

#[async_trait::async_trait]
impl Multipart for InFlightCounter {
    fn limits(&self) -> PartLimits {
        self.inner.limits()
    }
    async fn create_upload(&self, key: &str, options: &PutOptions) -> crate::Result<String> {
        self.inner.create_upload(key, options).await
    }
    async fn upload_part(&self, key: &str, id: &str, part: Part) -> crate::Result<PartReceipt> {
        let n = part.data.len() as u64;
        let now = self.now.fetch_add(n, Ordering::SeqCst) + n;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let r = self.inner.upload_part(key, id, part).await;
        self.now.fetch_sub(n, Ordering::SeqCst);
        r
    }
    async fn list_parts(&self, key: &str, id: &str) -> crate::Result<Vec<PartReceipt>> {
        self.inner.list_parts(key, id).await
    }
    async fn complete_upload(
        &self,
        key: &str,
        id: &str,
        parts: Vec<PartReceipt>,
        options: &PutOptions,
    ) -> crate::Result<Receipt> {
        self.inner.complete_upload(key, id, parts, options).await
    }
    fn abort_discards_parts(&self) -> bool {
        self.inner.abort_discards_parts()
    }
    async fn abort_upload(&self, key: &str, id: &str) -> crate::Result<()> {
        self.inner.abort_upload(key, id).await
    }
    async fn put_whole(
        &self,
        key: &str,
        part: Part,
        options: &PutOptions,
    ) -> crate::Result<Receipt> {
        self.inner.put_whole(key, part, options).await
    }
}

/// The shared multipart writer keeps the contract's memory bound: at most `concurrency`
/// parts of the part size in flight, counted around the store's own `upload_part` while an
/// object of three times that goes up in one large write (a write larger than the whole
/// budget included). The peak stays within the bound and reaches more than one part (the
/// parts overlap), and the object reads back whole. A store without multipart primitives
/// writes one stream and has no parts in flight.
pub async fn multipart_writer_bounds_bytes_in_flight(store: &dyn Storage) {
    let Some(inner) = store.multipart() else {
        assert!(
            store.sequential().is_some() || store.capabilities().part_size.is_none(),
            "a store with a part size has multipart primitives or sessions"
        );
        return;
    };
    let p = case_prefix("in-flight");
    let part = part_size(store);
    let concurrency = 3;
    let counter = Arc::new(InFlightCounter {
        inner,
        now: AtomicU64::new(0),
        peak: AtomicU64::new(0),
    });
    let key = format!("{p}/obj");
    let data = pattern(part * concurrency * 3 + 7, 13);
    let mut w = MultipartWriter::new(
        store.provider(),
        key.clone(),
        counter.clone(),
        PutOptions::default(),
        part as u64,
        concurrency,
        RetryPolicy::default(),
    );
    w.write(data.clone())
        .await
        .expect("one write of the whole object");
    let receipt = Box::new(w).finish().await.expect("finish");
    assert_eq!(receipt.size, data.len() as u64);
    let peak = counter.peak.load(Ordering::SeqCst);
    let bound = (part * concurrency) as u64;
    assert!(
        peak <= bound,
        "{peak} bytes in flight, over the bound of {bound}"
    );
    assert!(
        peak > part as u64,
        "parts went one at a time ({peak} bytes at most)"
    );
    assert_eq!(read_all(store, &key, None).await, data);
}

/// Delete removes the object from head, get and list.
pub async fn delete_removes(store: &dyn Storage) {
    let p = case_prefix("delete");
    let key = format!("{p}/d/obj");
    store
        .put_bytes(&key, pattern(10, 1), PutOptions::default())
        .await
        .expect("put");
    store
        .put_bytes(&format!("{p}/keep"), pattern(10, 1), PutOptions::default())
        .await
        .expect("put");
    store.delete(&key).await.expect("delete");
    assert_kind(
        store.head(&key).await,
        ErrorKind::NotFound,
        "head after delete",
    );
    assert_eq!(keys_under(store, &p).await, [format!("{p}/keep")]);
}

/// Keys that cannot be stored faithfully are refused up front with `InvalidConfig`.
pub async fn invalid_keys_are_rejected(store: &dyn Storage) {
    for key in ["", "/abs", "a//b", "a/../b", "trailing/"] {
        assert_kind(store.head(key).await, ErrorKind::InvalidConfig, key);
        assert_kind(
            store.writer(key, PutOptions::default()).await.map(|_| ()),
            ErrorKind::InvalidConfig,
            key,
        );
    }
}

/// A receipt's checksum, when present, matches the bytes; `head` reports the same one.
pub async fn receipts_match_content(store: &dyn Storage) {
    let key = format!("{}/obj", case_prefix("receipt"));
    let data = pattern(part_size(store) * 2 + 99, 6);
    let mut w = store
        .writer(&key, PutOptions::default())
        .await
        .expect("writer");
    w.write(data.clone()).await.expect("write");
    let receipt = w.finish().await.expect("finish");
    assert_eq!(receipt.size, data.len() as u64);
    if let Some(Checksum::Sha256(hex)) = &receipt.checksum {
        assert_eq!(hex, &hex::encode(Sha256::digest(&data)));
    }
    if store.capabilities().checksum_on_head {
        let head = store.head(&key).await.expect("head");
        assert!(
            head.checksum.is_some(),
            "checksum_on_head stores report a checksum"
        );
        let (h, r) = (
            head.checksum.unwrap(),
            receipt.checksum.expect("a receipt checksum"),
        );
        assert!(h.same_value(&r), "head {h} and receipt {r} agree");
    }
}

/// An upload addressed by id: parts sent, listed back with their checksums (as a resuming push
/// does after a crash), the missing one sent, completed.
pub async fn multipart_upload_survives_the_writer(store: &dyn Storage) {
    let Some(mp) = store.multipart() else {
        assert!(
            store.capabilities().part_size.is_none() || store.sequential().is_some(),
            "stores with parts expose multipart or sequential uploads"
        );
        return;
    };
    let key = format!("{}/obj", case_prefix("resume"));
    let ps = mp.limits().min_part_size.max(part_size(store) as u64) as usize;
    let data = pattern(ps * 2 + 1000, 11);
    let parts: Vec<crate::Part> = (0..3)
        .map(|i| {
            crate::Part::new(
                i as u32 + 1,
                data.slice(i * ps..((i + 1) * ps).min(data.len())),
            )
        })
        .collect();
    let opts = PutOptions::default();
    let id = mp.create_upload(&key, &opts).await.expect("create");
    mp.upload_part(&key, &id, parts[0].clone())
        .await
        .expect("part 1");
    mp.upload_part(&key, &id, parts[2].clone())
        .await
        .expect("part 3");
    assert_kind(
        store.head(&key).await,
        ErrorKind::NotFound,
        "nothing visible before complete",
    );
    let mut listed = mp.list_parts(&key, &id).await.expect("list parts");
    listed.sort_by_key(|p| p.number);
    assert_eq!(listed.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(
        listed[0].sha256, parts[0].sha256,
        "listed parts carry their SHA-256"
    );
    assert_eq!(listed[1].size, parts[2].data.len() as u64);
    let second = mp
        .upload_part(&key, &id, parts[1].clone())
        .await
        .expect("part 2");
    let all = vec![listed[0].clone(), second, listed[1].clone()];
    let receipt = mp
        .complete_upload(&key, &id, all, &opts)
        .await
        .expect("complete");
    assert_eq!(receipt.size, data.len() as u64);
    assert_eq!(read_all(store, &key, None).await, data);
}

/// An aborted upload is gone: nothing of it is visible, and where the store discards parts
/// they can be neither listed nor completed. Every store has an upload to abort: a multipart
/// upload, else a sequential session, else a writer.
pub async fn aborted_multipart_upload_is_gone(store: &dyn Storage) {
    let prefix = case_prefix("abort-mp");
    let key = format!("{prefix}/obj");
    let opts = PutOptions::default();
    let Some(mp) = store.multipart() else {
        if let Some(seq) = store.sequential() {
            let g = seq.granularity() as usize;
            let id = seq.start_session(&key, &opts).await.expect("start");
            seq.put_chunk(&key, &id, 0, pattern(g, 1), None)
                .await
                .expect("chunk");
            seq.cancel_session(&key, &id).await.expect("cancel");
            let mut d = seq.digest();
            d.update(&pattern(g, 1));
            d.update(&pattern(g, 2));
            let last = Some(((2 * g) as u64, d.finish()));
            assert!(
                seq.put_chunk(&key, &id, g as u64, pattern(g, 2), last)
                    .await
                    .is_err(),
                "a cancelled session takes no last chunk"
            );
        } else {
            let mut w = store.writer(&key, opts).await.expect("writer");
            w.write(pattern(1000, 1)).await.expect("write");
            w.abort().await.expect("abort");
        }
        assert_kind(
            store.head(&key).await,
            ErrorKind::NotFound,
            "nothing visible after abort",
        );
        assert_eq!(keys_under(store, &prefix).await, Vec::<String>::new());
        return;
    };
    let id = mp.create_upload(&key, &opts).await.expect("create");
    let part = crate::Part::new(1, pattern(1000, 1));
    let r = mp.upload_part(&key, &id, part).await.expect("part");
    mp.abort_upload(&key, &id).await.expect("abort");
    assert_kind(
        store.head(&key).await,
        ErrorKind::NotFound,
        "nothing visible after abort",
    );
    assert_eq!(keys_under(store, &prefix).await, Vec::<String>::new());
    if !mp.abort_discards_parts() {
        // Azure has no call that discards the uncommitted blocks of a blob that does not exist;
        // it drops them after seven days. The part stays listable, as it was sent.
        let listed = mp.list_parts(&key, &id).await.expect("list parts");
        assert_eq!(
            listed
                .iter()
                .map(|p| (p.number, p.size, p.sha256))
                .collect::<Vec<_>>(),
            [(1, 1000, r.sha256)],
            "a store that keeps parts after abort lists them as sent"
        );
        return;
    }
    // Some servers answer an empty list for an aborted upload, others NoSuchUpload.
    assert!(
        mp.list_parts(&key, &id)
            .await
            .map(|p| p.is_empty())
            .unwrap_or(true),
        "no parts after abort"
    );
    assert!(
        mp.complete_upload(&key, &id, vec![r], &opts).await.is_err(),
        "complete after abort"
    );
    assert_kind(
        store.head(&key).await,
        ErrorKind::NotFound,
        "nothing visible",
    );
}

/// A sequential session addressed by its id: a chunk sent, the state asked (as a resuming push
/// does after a crash), the rest sent with the whole-object digests, the object complete.
pub async fn sequential_session_survives_the_writer(store: &dyn Storage) {
    let Some(seq) = store.sequential() else {
        return;
    };
    let key = format!("{}/obj", case_prefix("session"));
    let g = seq.granularity() as usize;
    let data = pattern(g * 2 + 777, 12);
    let opts = PutOptions::default();
    let id = seq.start_session(&key, &opts).await.expect("start");
    assert_eq!(
        seq.session_state(&key, &id).await.expect("state"),
        crate::SessionState::Persisted(0)
    );
    let st = seq
        .put_chunk(&key, &id, 0, data.slice(..g * 2), None)
        .await
        .expect("chunk 1");
    assert_eq!(st, crate::SessionState::Persisted((g * 2) as u64));
    assert_eq!(
        seq.session_state(&key, &id).await.expect("state"),
        crate::SessionState::Persisted((g * 2) as u64)
    );
    assert_kind(
        store.head(&key).await,
        ErrorKind::NotFound,
        "nothing visible before the last chunk",
    );
    let mut d = seq.digest();
    d.update(&data);
    let last = Some((data.len() as u64, d.finish()));
    let st = seq
        .put_chunk(&key, &id, (g * 2) as u64, data.slice(g * 2..), last)
        .await
        .expect("last chunk");
    let crate::SessionState::Complete(receipt) = st else {
        panic!("not complete: {st:?}")
    };
    assert_eq!(receipt.size, data.len() as u64);
    assert_eq!(read_all(store, &key, None).await, data);
    // Wrong digests on the final chunk: the provider refuses the object.
    let bad_key = format!("{}/bad", case_prefix("session"));
    let id = seq.start_session(&bad_key, &opts).await.expect("start");
    let mut d = seq.digest();
    d.update(b"something else");
    let res = seq
        .put_chunk(&bad_key, &id, 0, pattern(1000, 1), Some((1000, d.finish())))
        .await;
    assert!(
        res.is_err(),
        "a final chunk whose digests do not match must be refused"
    );
    assert_kind(
        store.head(&bad_key).await,
        ErrorKind::NotFound,
        "refused object not visible",
    );
}

/// A cancelled session is gone and leaves nothing.
pub async fn cancelled_session_leaves_nothing(store: &dyn Storage) {
    let Some(seq) = store.sequential() else {
        return;
    };
    let key = format!("{}/obj", case_prefix("cancel"));
    let g = seq.granularity() as usize;
    let id = seq
        .start_session(&key, &PutOptions::default())
        .await
        .expect("start");
    seq.put_chunk(&key, &id, 0, pattern(g, 1), None)
        .await
        .expect("chunk");
    seq.cancel_session(&key, &id).await.expect("cancel");
    assert!(
        seq.session_state(&key, &id).await.is_err(),
        "state of a cancelled session"
    );
    assert_kind(
        store.head(&key).await,
        ErrorKind::NotFound,
        "nothing visible",
    );
}

/// Creating the location the store already points into answers "existed" (`Ok(false)`) on a
/// second call and leaves it usable; a store without the operation says `Unsupported`.
pub async fn create_location_is_idempotent(store: &dyn Storage) {
    let opts = crate::CreateOptions::default();
    if !store.capabilities().create_location {
        assert_kind(
            store.create_location(&opts).await,
            ErrorKind::Unsupported,
            "create",
        );
        return;
    }
    store.create_location(&opts).await.expect("first create");
    assert!(
        !store.create_location(&opts).await.expect("second create"),
        "a location that exists is reported as existing"
    );
    let key = format!("{}/obj", case_prefix("create"));
    store
        .put_bytes(&key, pattern(10, 3), PutOptions::default())
        .await
        .expect("put after create");
}

/// A multipart upload started and not finished is listed under its prefix with its id, and
/// is gone from the list once aborted.
pub async fn open_uploads_are_listed(store: &dyn Storage) {
    let p = case_prefix("uploads");
    let listed =
        |prefix: String| async move { store.list_uploads(&prefix).try_collect::<Vec<_>>().await };
    let (true, Some(mp)) = (store.capabilities().list_uploads, store.multipart()) else {
        assert_kind(listed(p).await, ErrorKind::Unsupported, "list uploads");
        return;
    };
    let key = format!("{p}/obj");
    let id = mp
        .create_upload(&key, &PutOptions::default())
        .await
        .expect("create upload");
    let open = listed(p.clone()).await.expect("list uploads");
    assert!(
        open.iter().any(|u| u.key == key && u.id == id),
        "{key} {id} in {open:?}"
    );
    let other = listed(format!("{p}-not")).await.expect("list uploads");
    assert!(
        !other.iter().any(|u| u.key == key),
        "prefix is segment-wise"
    );
    mp.abort_upload(&key, &id).await.expect("abort");
    let open = listed(p).await.expect("list uploads");
    assert!(!open.iter().any(|u| u.id == id), "aborted: {open:?}");
}

/// Versions: after two writes of a key exactly one version is current and has the second
/// write's size (a versioned location keeps the first too); deleting the current version by id
/// removes it from the list, and the key then reads as the older version or not at all.
pub async fn versions_are_listed_and_deleted(store: &dyn Storage) {
    let p = case_prefix("versions");
    let key = format!("{p}/obj");
    if !store.capabilities().versions {
        assert_kind(
            store.list_versions(&p).try_collect::<Vec<_>>().await,
            ErrorKind::Unsupported,
            "list versions",
        );
        assert_kind(
            store.delete_version(&key, "1").await,
            ErrorKind::Unsupported,
            "delete version",
        );
        assert_kind(
            store.get_version(&key, "1", None).await.map(|_| ()),
            ErrorKind::Unsupported,
            "get version",
        );
        return;
    }
    for len in [10, 20] {
        store
            .put_bytes(&key, pattern(len, 4), PutOptions::default())
            .await
            .expect("put");
    }
    let versions: Vec<_> = store
        .list_versions(&p)
        .try_collect::<Vec<_>>()
        .await
        .expect("list versions");
    let of_key: Vec<_> = versions.iter().filter(|v| v.key == key).collect();
    let latest: Vec<_> = of_key.iter().filter(|v| v.latest).collect();
    assert_eq!(latest.len(), 1, "one current version: {versions:?}");
    assert_eq!(latest[0].size, 20);
    assert!(of_key.len() <= 2, "{versions:?}");
    let current = latest[0].version.clone();
    // Each version reads as what was written then, the current one and an older one alike.
    let key_ref = key.as_str();
    let read_version = |v: String| async move {
        let got = store
            .get_version(key_ref, &v, None)
            .await
            .unwrap_or_else(|e| panic!("get version {v}: {e}"));
        let chunks: Vec<Bytes> = got.stream.try_collect().await.expect("read stream");
        Bytes::from(chunks.concat())
    };
    assert_eq!(read_version(current.clone()).await, pattern(20, 4));
    if let Some(older) = of_key.iter().find(|v| !v.latest) {
        assert_eq!(read_version(older.version.clone()).await, pattern(10, 4));
    }
    store
        .delete_version(&key, &current)
        .await
        .expect("delete version");
    let after: Vec<_> = store
        .list_versions(&p)
        .try_collect::<Vec<_>>()
        .await
        .expect("list versions");
    assert!(
        !after.iter().any(|v| v.version == current && v.key == key),
        "{after:?}"
    );
    match store.head(&key).await {
        Ok(m) => {
            assert_eq!(
                of_key.len(),
                2,
                "only a versioned location has an older one"
            );
            assert_eq!(m.size, 10, "the older version is current again");
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
            assert_eq!(of_key.len(), 1, "an older version would be current");
        }
    }
}

/// On a location that holds locks: a retention is extended, never shortened, and a
/// compliance lock stays compliance. Not part of [`conformance_suite!`](crate::conformance_suite),
/// whose locations need not hold locks: call it on one that does.
pub async fn retention_is_extended_never_shortened(store: &dyn Storage) {
    assert!(
        store.capabilities().extend_retention,
        "call this case on a store that extends retention"
    );
    let key = format!("{}/obj", case_prefix("extend"));
    let now = chrono::Utc::now();
    let day = chrono::Duration::days(1);
    let lock = |mode, until| Retention {
        mode,
        retain_until: until,
    };
    let opts = PutOptions {
        retention: Some(lock(LockMode::Governance, now + day)),
        ..PutOptions::default()
    };
    store
        .put_bytes(&key, pattern(10, 5), opts)
        .await
        .expect("put");
    let longer = store
        .extend_retention(&key, lock(LockMode::Governance, now + day * 3))
        .await
        .expect("extend");
    let secs = |t: chrono::DateTime<chrono::Utc>| t.timestamp();
    assert_eq!(secs(longer.retain_until), secs(now + day * 3));
    let kept = store
        .extend_retention(&key, lock(LockMode::Governance, now + day * 2))
        .await
        .expect("shorter asks change nothing");
    assert_eq!(secs(kept.retain_until), secs(now + day * 3));
    let head = store.head(&key).await.expect("head");
    let r = head.retention.expect("the lock is reported");
    assert_eq!(secs(r.retain_until), secs(now + day * 3));
    assert_kind(store.delete(&key).await, ErrorKind::Locked, "locked delete");
}

/// A storage class (or access tier) asked for at write time is the one `head` reports, and a
/// class the provider does not have is refused before anything is stored. Not part of
/// [`conformance_suite!`](crate::conformance_suite): each provider names a class it has.
pub async fn storage_class_reads_back(store: &dyn Storage, class: &str) {
    assert!(
        store.capabilities().storage_classes,
        "call this case on a store that takes storage classes"
    );
    let p = case_prefix("class");
    let key = format!("{p}/obj");
    let opts = PutOptions {
        storage_class: Some(class.to_string()),
        ..PutOptions::default()
    };
    store
        .put_bytes(&key, pattern(1000, 6), opts)
        .await
        .expect("put with a storage class");
    let head = store.head(&key).await.expect("head");
    assert_eq!(
        head.storage_class.as_deref().map(str::to_ascii_lowercase),
        Some(class.to_ascii_lowercase()),
        "{head:?}"
    );
    let bad = PutOptions {
        storage_class: Some("NO_SUCH_CLASS".into()),
        ..PutOptions::default()
    };
    let other = format!("{p}/refused");
    assert_kind(
        store.put_bytes(&other, pattern(10, 7), bad).await,
        ErrorKind::InvalidConfig,
        "unknown class",
    );
    assert_kind(
        store.head(&other).await,
        ErrorKind::NotFound,
        "nothing stored",
    );
}
