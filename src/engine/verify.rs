//! Verification: quick (manifest, object present, size, the provider's checksum or, on local
//! disk, a re-hash) and deep (download, hash, decrypt, hash again, record the result), and
//! `offsite verify`'s walk over its locations.

use std::sync::Arc;

use chrono::Utc;
use futures::{stream, StreamExt};
use offsite_storage::{PutOptions, StorageExt};
use serde::Serialize;

use super::contents::{read_through, Count};
use super::hashing::object_digest;
use super::identity::Identities;
use offsite_policies::signing::SigningKey;

use super::inventory::{one, scan, Entry, ReadOptions, Reader, State};
use super::readback::{ReadbackError, StoredCopy};
use crate::archive::{
    tool_version, ArchiveKeys, Manifest, RecordedContents, RecordedDepth, RecordedResult,
    RestoreTiming, VerifiedRecord,
};
use crate::error::usage;
use crate::registry::{key_prefix, Opened};

/// The verdict on one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Checked good.
    Ok,
    /// The data object or manifest is gone.
    Missing,
    /// The bytes or the manifest are damaged.
    Corrupt,
    /// Could not be checked (network, permission, key).
    Unchecked,
    /// An upload that never committed; it does not count as a copy.
    Incomplete,
    /// Whole, but its manifest is not signed by a trusted key: not checked further, and
    /// counted as damage (exit 4).
    Untrusted,
}

impl Verdict {
    /// A copy missing, damaged or untrusted (exit 4).
    pub fn damaged(self) -> bool {
        matches!(
            self,
            Verdict::Missing | Verdict::Corrupt | Verdict::Untrusted
        )
    }
}

/// How far a check went, as reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Depth {
    /// No download: manifest, object, size, the provider's checksum.
    Quick,
    /// Download, hash, decrypt, hash again; the result is recorded beside the manifest.
    Deep,
    /// A restore drill: a deep check recorded as `drill`.
    Drill,
}

impl std::fmt::Display for Depth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Depth::Quick => "quick",
            Depth::Deep => "deep",
            Depth::Drill => "drill",
        })
    }
}

/// Why a copy is read back whole: its record says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeepCheck {
    /// `verify --deep`.
    Verify,
    /// A restore drill.
    Drill,
}

impl DeepCheck {
    fn depth(self) -> Depth {
        match self {
            DeepCheck::Verify => Depth::Deep,
            DeepCheck::Drill => Depth::Drill,
        }
    }

    fn recorded(self) -> RecordedDepth {
        match self {
            DeepCheck::Verify => RecordedDepth::Deep,
            DeepCheck::Drill => RecordedDepth::Drill,
        }
    }
}

/// One checked copy (or, in [`VerifyReport::locations`], one location as a whole).
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The location.
    pub url: String,
    /// The archive.
    pub archive: String,
    /// How far the check went.
    pub depth: Depth,
    /// The verdict.
    pub verdict: Verdict,
    /// What was compared, or what went wrong.
    pub detail: String,
    /// Deep checks and drills: what the plaintext holds (a tar's members and size, or why it
    /// was not opened), as recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contents: Option<RecordedContents>,
    /// Something to look at that is not a failure: a name that promises a tar over bytes
    /// that are no tar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// How long a drill's restore took, for a copy it proved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreTiming>,
}

impl CopyReport {
    /// A report on a copy (or a location) with nothing to say about its contents.
    pub(crate) fn of(
        loc: &Opened,
        archive: &str,
        depth: Depth,
        verdict: Verdict,
        detail: String,
    ) -> Self {
        CopyReport {
            url: loc.url().to_string(),
            archive: archive.to_string(),
            depth,
            verdict,
            detail,
            contents: None,
            warning: None,
            restore: None,
        }
    }
}

/// The manifest of an entry whose listing shows a committed copy of the right size, or the
/// verdict on an entry that is not one (the same for a quick and a deep check).
pub(crate) fn committed(entry: &Entry) -> Result<&Manifest, (Verdict, String)> {
    match (entry.state, &entry.manifest) {
        (State::Incomplete, _) => Err((
            Verdict::Incomplete,
            "data without a manifest: an upload that never completed; it does not count (push again)".into(),
        )),
        (State::BadManifest, _) => Err((
            Verdict::Corrupt,
            format!(
                "the manifest is unreadable: {}",
                entry.manifest_error.clone().unwrap_or_default()
            ),
        )),
        (_, None) => Err((Verdict::Corrupt, "no manifest".into())),
        (State::MissingData, Some(m)) => Err((
            Verdict::Missing,
            format!(
                "the manifest is here but the data object {} is missing",
                m.stored.key
            ),
        )),
        (State::WrongSize, Some(_)) => Err((
            Verdict::Corrupt,
            format!(
                "{}; push the same archive again to repair this copy (no --overwrite needed), or restore from another copy",
                entry.size_problem().unwrap_or_default()
            ),
        )),
        (State::Untrusted, Some(_)) => Err((
            Verdict::Untrusted,
            format!(
                "untrusted: {}; it counts as no copy (if this host pushed it before signing was turned on, adopt it with `offsite sign`; otherwise delete it with `offsite prune --delete-untrusted`)",
                entry.signature.untrusted().unwrap_or("not signed by a trusted key")
            ),
        )),
        // Its bytes are checked as any copy's; status says it is future-dated.
        (State::Complete | State::FutureDated, Some(m)) => Ok(m),
    }
}

/// Quick check of one entry: no download (except on local disk, where a re-hash costs no
/// egress). Records nothing.
pub async fn quick(loc: &Opened, entry: &Entry) -> CopyReport {
    let (verdict, detail) = match committed(entry) {
        Ok(manifest) => quick_verdict(loc, entry, manifest).await,
        Err(found) => found,
    };
    CopyReport::of(loc, &entry.name, Depth::Quick, verdict, detail)
}

async fn quick_verdict(loc: &Opened, entry: &Entry, manifest: &Manifest) -> (Verdict, String) {
    let local = loc.store.capabilities().local;
    // The listing already shows the object that was committed: the size the manifest records
    // (the entry's state) and the entity tag the provider gave it at commit, which it changes
    // on any rewrite. A HEAD would show nothing more. Any other tag falls through to the HEAD.
    let listed_etag = entry.object.as_ref().and_then(|o| o.etag.as_deref());
    if let (Some(listed), Some(committed)) = (listed_etag, manifest.stored.etag.as_deref()) {
        if !local && same_etag(listed, committed) {
            return (
                Verdict::Ok,
                format!(
                    "size and ETag {} as listed are the committed object's: unchanged since it was pushed and checked; only --deep proves the bytes",
                    bare_etag(listed)
                ),
            );
        }
    }
    let object_key = offsite_storage::join_key(key_prefix(&loc.location), &manifest.stored.key);
    let head = match loc.store.head(&object_key).await {
        Ok(h) => h,
        Err(e) if e.is_not_found() => {
            return (
                Verdict::Missing,
                format!("the data object {object_key} is missing"),
            )
        }
        Err(e) => return (Verdict::Unchecked, e.to_string()),
    };
    if head.size != manifest.stored.size {
        return (
            Verdict::Corrupt,
            format!(
                "{} bytes stored but the manifest records {} (truncated or replaced)",
                head.size, manifest.stored.size
            ),
        );
    }
    match (&head.checksum, &manifest.stored.provider_checksum) {
        (Some(now), Some(then)) if now.same_value(then) => (
            Verdict::Ok,
            format!("size and the provider's checksum ({now}) match the manifest"),
        ),
        (Some(now), Some(then)) => (
            Verdict::Corrupt,
            format!("the provider reports {now} but the manifest recorded {then}"),
        ),
        (None, Some(then)) if !local => (
            Verdict::Unchecked,
            format!("the manifest recorded {then} but the provider reports no checksum now (the object was replaced?); run verify --deep"),
        ),
        // Local disk: re-hashing costs no egress, so quick verify proves the bytes.
        _ if local => rehash(loc, &object_key, manifest).await,
        _ => (
            Verdict::Ok,
            "size matches the manifest; this provider reports no whole-object checksum, so only --deep proves the bytes".into(),
        ),
    }
}

/// Local disk: the stored bytes hashed against the manifest.
async fn rehash(loc: &Opened, object_key: &str, manifest: &Manifest) -> (Verdict, String) {
    match object_digest(&*loc.store, object_key)
        .await
        .map(|d| d.sha256)
    {
        Ok(h) if h == manifest.stored.sha256 => (
            Verdict::Ok,
            "size and SHA-256 of the stored bytes match the manifest".into(),
        ),
        Ok(h) => (
            Verdict::Corrupt,
            format!(
                "the stored bytes hash to {h} but the manifest records {} (damaged on disk)",
                manifest.stored.sha256
            ),
        ),
        Err(e) => (Verdict::Unchecked, e.to_string()),
    }
}

/// Deep check of one entry: download, hash, decrypt, hash again; a verdict on the bytes (good
/// or damaged) is recorded beside the manifest, where `status` reads it. A drill that proves
/// the copy records how long its restore took, which `status` estimates restore times from.
pub async fn deep(
    loc: &Opened,
    entry: &Entry,
    identities: Option<Arc<Identities>>,
    why: DeepCheck,
    recorder: Recorder<'_>,
) -> CopyReport {
    let (checked, restore) = match committed(entry) {
        Ok(manifest) if manifest.encrypted() && identities.is_none() => (
            Checked::plain(
                Verdict::Unchecked,
                "encrypted: deep verify needs --identity".into(),
            ),
            None,
        ),
        Ok(manifest) => {
            let started = std::time::Instant::now();
            let found = read_back(loc, manifest, identities).await;
            let restore = (why == DeepCheck::Drill && found.verdict == Verdict::Ok)
                .then(|| RestoreTiming::of(manifest.stored.size, started.elapsed()));
            if matches!(found.verdict, Verdict::Ok | Verdict::Corrupt) {
                record((loc, entry, manifest), why, (&found, restore), recorder).await;
            }
            (found, restore)
        }
        Err((verdict, detail)) => (Checked::plain(verdict, detail), None),
    };
    CopyReport {
        contents: checked.contents,
        warning: checked.warning,
        restore,
        ..CopyReport::of(
            loc,
            &entry.name,
            why.depth(),
            checked.verdict,
            checked.detail,
        )
    }
}

/// What reading a copy back found: the verdict, in words, and what the plaintext holds.
struct Checked {
    verdict: Verdict,
    detail: String,
    contents: Option<RecordedContents>,
    warning: Option<String>,
}

impl Checked {
    fn plain(verdict: Verdict, detail: String) -> Checked {
        Checked {
            verdict,
            detail,
            contents: None,
            warning: None,
        }
    }
}

/// Reads the copy back whole and, in the same pass, reads a tar in it to its end; the
/// plaintext is discarded. A tarball that cannot be read is damage although its hashes match:
/// the backup job wrote it broken.
async fn read_back(
    loc: &Opened,
    manifest: &Manifest,
    identities: Option<Arc<Identities>>,
) -> Checked {
    let object_key = offsite_storage::join_key(key_prefix(&loc.location), &manifest.stored.key);
    let copy = StoredCopy {
        loc,
        object_key: &object_key,
        version: None,
        manifest,
    };
    let (read, found, _) = read_through(&copy, identities, None, true, Count).await;
    match read {
        Ok(proven) => {
            let contents = Some(found.recorded());
            if let Some(damage) = found.damage() {
                return Checked {
                    verdict: Verdict::Corrupt,
                    detail: format!("{}: {object_key}: {damage}", loc.url()),
                    contents,
                    warning: None,
                };
            }
            Checked {
                verdict: Verdict::Ok,
                detail: format!(
                    "downloaded {}, SHA-256 matches; decrypted {}, SHA-256 matches; {}",
                    crate::units::human_bytes(proven.stored.map(|d| d.size).unwrap_or_default()),
                    crate::units::human_bytes(proven.plaintext.size),
                    found.summary()
                ),
                contents,
                warning: found.misnamed(&manifest.archive),
            }
        }
        Err(ReadbackError::Corrupt(m)) => Checked::plain(Verdict::Corrupt, m),
        Err(e) => Checked::plain(Verdict::Unchecked, e.to_string()),
    }
}

/// How a deep check's record is written: its time (the caller's clock) and the key that signs
/// it, if any.
#[derive(Debug, Clone, Copy)]
pub struct Recorder<'a> {
    /// This host's signing key.
    pub key: Option<&'a SigningKey>,
    /// The time recorded.
    pub now: chrono::DateTime<Utc>,
}

/// Writes the verification record of a deep check that reached a verdict on the bytes.
async fn record(
    (loc, entry, manifest): (&Opened, &Entry, &Manifest),
    why: DeepCheck,
    (checked, restore): (&Checked, Option<RestoreTiming>),
    signer: Recorder<'_>,
) {
    let keys = ArchiveKeys::new(key_prefix(&loc.location), &entry.name, manifest.encrypted());
    let ok = checked.verdict == Verdict::Ok;
    let record = VerifiedRecord {
        time: signer.now,
        depth: why.recorded(),
        result: if ok {
            RecordedResult::Ok
        } else {
            RecordedResult::Failed
        },
        detail: (!ok).then(|| checked.detail.clone()),
        tool: tool_version(),
        archive: Some(entry.name.clone()),
        stored_sha256: Some(manifest.stored.sha256.clone()),
        contents: checked.contents.clone(),
        restore,
    };
    let bytes = record.to_bytes(signer.key);
    if let Err(e) = loc
        .store
        .put_bytes(&keys.verified, bytes.into(), PutOptions::default())
        .await
    {
        tracing::warn!(error = %e, "could not record the verification result");
    }
}

/// What `offsite verify` checks.
pub struct VerifyRequest<'a> {
    /// The locations, in order.
    pub locations: &'a [Opened],
    /// Only this archive (its manifest alone is read); `None`: every archive (a full scan).
    pub archive: Option<String>,
    /// Deep rather than quick.
    pub deep: bool,
    /// For deep checks of encrypted copies.
    pub identities: Option<Arc<Identities>>,
    /// How inventories are read.
    pub options: ReadOptions,
    /// Signs the records of deep checks (`[signing] key-file`, `--sign-with`).
    pub key: Option<Arc<SigningKey>>,
}

impl VerifyRequest<'_> {
    fn depth(&self) -> Depth {
        if self.deep {
            Depth::Deep
        } else {
            Depth::Quick
        }
    }

    /// A finding about a location as a whole.
    fn place(&self, loc: &Opened, verdict: Verdict, detail: String) -> CopyReport {
        let archive = self.archive.as_deref().unwrap_or_default();
        CopyReport::of(loc, archive, self.depth(), verdict, detail)
    }
}

/// What `offsite verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Every copy checked, location by location in the inventory's order.
    pub copies: Vec<CopyReport>,
    /// Findings about a location as a whole (cannot list it, nothing there): not copies, so
    /// they are not counted as copies, but they decide the exit code as much as a bad copy.
    pub locations: Vec<CopyReport>,
}

impl VerifyReport {
    /// Copies, then findings about locations.
    pub fn all(&self) -> impl Iterator<Item = &CopyReport> {
        self.copies.iter().chain(&self.locations)
    }

    /// Whether a copy (or a location's copies) is missing or corrupt.
    pub fn damaged(&self) -> bool {
        self.all().any(|r| r.verdict.damaged())
    }

    /// Whether something could not be checked.
    pub fn unchecked(&self) -> bool {
        self.all().any(|r| r.verdict == Verdict::Unchecked)
    }
}

/// `offsite verify`: every selected copy at every location, checked quick or deep.
pub async fn run(req: &VerifyRequest<'_>) -> anyhow::Result<VerifyReport> {
    let mut report = VerifyReport::default();
    for loc in req.locations {
        let selected = match select(loc, req).await {
            Ok(selected) => selected,
            Err(place) => {
                report.locations.push(place);
                continue;
            }
        };
        // A location with nothing whole to restore from is a finding of its own, unless a
        // damaged copy there already says why (one line per problem).
        let whole = selected
            .iter()
            .any(|e| matches!(e.state, State::Complete | State::FutureDated));
        let said = selected.iter().any(|e| {
            matches!(
                e.state,
                State::WrongSize | State::MissingData | State::BadManifest | State::Untrusted
            )
        });
        if !whole && !said {
            report.locations.push(
                req.place(
                    loc,
                    Verdict::Missing,
                    "no complete copy here: only uploads that never committed or damaged manifests"
                        .into(),
                ),
            );
        }
        if req.deep
            && req.identities.is_none()
            && selected
                .iter()
                .any(|e| e.manifest.as_ref().is_some_and(|m| m.encrypted()))
        {
            return Err(usage(
                "deep verify of encrypted archives needs the identity: give --identity FILE or set OFFSITE_IDENTITY_FILE",
            ));
        }
        report.copies.extend(check_all(loc, &selected, req).await);
    }
    Ok(report)
}

/// The entries to check at one location, or the finding that there are none.
async fn select(loc: &Opened, req: &VerifyRequest<'_>) -> Result<Vec<Entry>, CopyReport> {
    // One archive: only its manifest is read. Every archive: a full scan (cached).
    let listed = match &req.archive {
        Some(name) => one(loc, &req.options, name)
            .await
            .map(|e| e.into_iter().collect::<Vec<_>>()),
        None => scan(loc, &req.options).await,
    };
    let selected = listed.map_err(|e| {
        let verdict = if e.is_not_found() {
            Verdict::Missing
        } else {
            Verdict::Unchecked
        };
        req.place(loc, verdict, format!("cannot list the location: {e}"))
    })?;
    if selected.is_empty() {
        let detail = match &req.archive {
            Some(a) => format!("no archive named {a:?} here"),
            None => "no archives here".into(),
        };
        return Err(req.place(loc, Verdict::Missing, detail));
    }
    Ok(selected)
}

/// Quick checks run `jobs` at a time (a HEAD each at most); deep ones download whole archives,
/// one after another. Reports keep the inventory's order.
async fn check_all(loc: &Opened, selected: &[Entry], req: &VerifyRequest<'_>) -> Vec<CopyReport> {
    if req.deep {
        stream::iter(selected)
            .then(|entry| {
                let recorder = Recorder {
                    key: req.key.as_deref(),
                    now: req.options.judge.clock.now,
                };
                deep(
                    loc,
                    entry,
                    req.identities.clone(),
                    DeepCheck::Verify,
                    recorder,
                )
            })
            .collect()
            .await
    } else {
        stream::iter(selected)
            .map(|entry| quick(loc, entry))
            .buffered(Reader::new(loc, &req.options).jobs())
            .collect()
            .await
    }
}

/// An entity tag without its quotes and weak marker: S3 and a header quote it, an Azure
/// listing does not.
fn bare_etag(t: &str) -> &str {
    t.trim().trim_start_matches("W/").trim_matches('"')
}

fn same_etag(a: &str, b: &str) -> bool {
    let (a, b) = (bare_etag(a), bare_etag(b));
    !a.is_empty() && a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_their_words() {
        let record = VerifiedRecord {
            time: Utc::now(),
            depth: DeepCheck::Drill.recorded(),
            result: RecordedResult::Failed,
            detail: Some("x".into()),
            tool: tool_version(),
            archive: None,
            stored_sha256: None,
            contents: None,
            restore: None,
        };
        let v = serde_json::to_value(&record).unwrap();
        assert_eq!(v["depth"], "drill");
        assert_eq!(v["result"], "failed");
        assert!(v.get("restore").is_none(), "{v}");
        let back: VerifiedRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, record);
        // A drill's measured restore, as status reads it back.
        let timed = VerifiedRecord {
            restore: Some(RestoreTiming::of(
                3_000_000,
                std::time::Duration::from_millis(1500),
            )),
            ..record.clone()
        };
        let v = serde_json::to_value(&timed).unwrap();
        assert_eq!(
            v["restore"],
            serde_json::json!({"seconds": 1.5, "bytes": 3_000_000, "bytes_per_second": 2_000_000.0})
        );
        let back: VerifiedRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, timed);
        let m = back.restore.unwrap().measured(back.time).unwrap();
        assert_eq!((m.bytes, m.took.as_millis()), (3_000_000, 1500));
        // A time no clock gives is no measurement.
        let forged = RestoreTiming {
            seconds: -1.0,
            ..back.restore.unwrap()
        };
        assert!(forged.measured(back.time).is_none());
        let odd = serde_json::json!({"time": "2026-01-01T00:00:00Z", "depth": "quick",
            "result": "maybe", "tool": "offsite 9"});
        let odd: VerifiedRecord = serde_json::from_value(odd).unwrap();
        assert_eq!(odd.depth, RecordedDepth::Unknown);
        assert_eq!(odd.result, RecordedResult::Unknown);
    }

    #[test]
    fn contents_are_recorded_and_a_shape_from_the_future_reads_as_none() {
        let found = crate::engine::contents::Found::Tar {
            format: crate::engine::contents::Format::TarGz,
            members: 3,
            bytes: 10,
            damage: None,
        };
        let record = VerifiedRecord {
            time: Utc::now(),
            depth: RecordedDepth::Drill,
            result: RecordedResult::Ok,
            detail: None,
            tool: tool_version(),
            archive: None,
            stored_sha256: None,
            contents: Some(found.recorded()),
            restore: None,
        };
        let v = serde_json::to_value(&record).unwrap();
        assert_eq!(
            v["contents"],
            serde_json::json!({"opened": true, "format": "tar.gz", "members": 3, "bytes": 10})
        );
        let mut odd = v.clone();
        odd["contents"] = serde_json::json!("opened by a newer build");
        let back: VerifiedRecord = serde_json::from_value(odd).unwrap();
        assert_eq!(back.contents, None);
        assert_eq!(back.result, RecordedResult::Ok);
        let mut old = v;
        old.as_object_mut().unwrap().remove("contents");
        let back: VerifiedRecord = serde_json::from_value(old).unwrap();
        assert_eq!(back.contents, None);
    }

    #[test]
    fn reports_name_their_depth() {
        assert_eq!(serde_json::to_value(Depth::Quick).unwrap(), "quick");
        assert_eq!(Depth::Drill.to_string(), "drill");
    }
}
