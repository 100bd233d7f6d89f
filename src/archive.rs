//! How an archive lies on a store: the data object, its manifest (the commit point) and the
//! verification record, and how an archive's creation time is read from its name.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use offsite_storage::Checksum;
use serde::{Deserialize, Serialize};

/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;
/// The format of a signed manifest: an envelope holding a format-1 manifest's exact bytes and
/// the SSH signature over them (see [`ManifestFile`]). Builds that know only format 1 refuse it
/// with "upgrade offsite" instead of misreading it.
pub const SIGNED_MANIFEST_FORMAT: u32 = 2;
/// Suffix of the encrypted data object.
pub const AGE_SUFFIX: &str = ".age";
/// Suffix of the manifest.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";
/// Suffix of the last deep-verification record.
pub const VERIFIED_SUFFIX: &str = ".verified.json";

/// The keys of one archive under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveKeys {
    /// The data object.
    pub object: String,
    /// The manifest, written last.
    pub manifest: String,
    /// The verification record.
    pub verified: String,
}

impl ArchiveKeys {
    /// Keys for archive `name` (no `/`) under `prefix` ("" for the store's root).
    pub fn new(prefix: &str, name: &str, encrypted: bool) -> Self {
        let base = offsite_storage::join_key(prefix, name);
        ArchiveKeys {
            object: if encrypted {
                format!("{base}{AGE_SUFFIX}")
            } else {
                base.clone()
            },
            manifest: format!("{base}{MANIFEST_SUFFIX}"),
            verified: format!("{base}{VERIFIED_SUFFIX}"),
        }
    }
}

/// Size and SHA-256 of a byte stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Bytes.
    pub size: u64,
    /// Lowercase hex SHA-256.
    pub sha256: String,
}

/// The stored object's size, SHA-256, and what its provider reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Stored {
    /// The object's key relative to the destination.
    pub key: String,
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of the stored bytes (the ciphertext when encrypted), lowercase hex.
    pub sha256: String,
    /// The whole-object checksum the provider reports, when it computes one. A form this
    /// build does not know (a newer build's) reads as none: quick verify then compares the
    /// size, and deep verify still proves the bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "known_checksum"
    )]
    pub provider_checksum: Option<Checksum>,
    /// Storage class or access tier asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// The entity tag the provider gave the committed object. A listing that shows the same
    /// tag and size shows the object that was committed, so quick verify needs no HEAD; any
    /// other tag (metadata changed, or a provider that re-tags) falls back to the HEAD check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// Encryption details: the scheme and the public keys it was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// Always `age` (v1 format).
    pub scheme: String,
    /// Public keys only.
    pub recipients: Vec<String>,
}

/// A provider checksum in a form this build knows, else none (see [`Stored`]).
fn known_checksum<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Checksum>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

/// Where the creation time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CreatedFrom {
    /// A timestamp in the archive's name.
    Name,
    /// The source file's modification time.
    Mtime,
    /// The time of the push (stdin without a timestamp in `--name`).
    PushTime,
    /// A source a newer build named; the time itself is still `created`.
    #[serde(other)]
    Other,
}

/// The manifest: written after the data object is complete, it is the commit point. A data
/// object without a manifest is an incomplete upload and never counts.
///
/// `format` is the major version. Within it the format only grows: fields a newer build adds
/// are ignored here (so an older build still reads every manifest of its major version), and a
/// field is never removed or given another meaning without a new major version, which older
/// builds refuse with "upgrade offsite".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The archive's name (the source file name, or `--name`).
    pub archive: String,
    /// When the archive was made (UTC).
    pub created: DateTime<Utc>,
    /// Where `created` came from.
    pub created_from: CreatedFrom,
    /// The original bytes.
    pub plaintext: Digest,
    /// The bytes on the store.
    pub stored: Stored,
    /// `None` for an unencrypted push.
    pub encryption: Option<Encryption>,
    /// The policy that placed it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The object's retention lock, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<DateTime<Utc>>,
    /// The backup job's own `metadata.json` (`push --metadata`), carried as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// When this copy was committed.
    pub pushed: DateTime<Utc>,
    /// How long the push took to store this copy, and its throughput (absent from manifests
    /// of older builds and of replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushTiming>,
    /// `offsite X.Y.Z`.
    pub tool: String,
}

/// How long a push took to store one copy: from the push's start (reading, encrypting and
/// sending overlap) until the provider held the whole data object, before the manifest.
/// `{"seconds": 4.2, "bytes_per_second": 25000000.0}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PushTiming {
    /// Seconds.
    pub seconds: f64,
    /// Stored bytes per second (absent for a copy too quick to time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<f64>,
}

// Measured times and JSON numbers are never NaN (JSON has none): equality is total.
impl Eq for PushTiming {}

impl PushTiming {
    /// The timing of `bytes` stored in `took`.
    pub fn of(bytes: u64, took: std::time::Duration) -> PushTiming {
        let seconds = took.as_secs_f64();
        PushTiming {
            seconds,
            bytes_per_second: (seconds > 0.0).then(|| bytes as f64 / seconds),
        }
    }
}

impl Manifest {
    /// Parses a manifest, signed or not (see [`ManifestFile::parse`]), refusing formats from
    /// the future with a clear message. A signature is not checked here.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, String> {
        ManifestFile::parse(bytes).map(|f| f.manifest)
    }

    /// Whether the stored object is age-encrypted.
    pub fn encrypted(&self) -> bool {
        self.encryption.is_some()
    }
}

/// A signed manifest's parts, as stored: the exact bytes signed and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The format-1 manifest's JSON text, exactly the bytes signed.
    pub signed: String,
    /// The armored SSH signature (`-----BEGIN SSH SIGNATURE-----`) over `signed`, in the
    /// namespace [`offsite_policies::signing::NAMESPACE`].
    pub signature: String,
}

/// A manifest object as stored: a plain format-1 manifest, or a format-2 envelope
/// `{"format": 2, "signed": "<format-1 manifest JSON>", "signature": "<armored SSH
/// signature over exactly those bytes>"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    /// The manifest (for a signed one, parsed from `signed`).
    pub manifest: Manifest,
    /// The signed bytes and the signature, when the manifest is signed. Parsing does not
    /// check the signature.
    pub signature: Option<Signed>,
}

/// The envelope of a signed manifest, as written.
#[derive(Serialize)]
struct Envelope<'a> {
    format: u32,
    signed: &'a str,
    signature: &'a str,
}

impl ManifestFile {
    /// Parses a manifest object: a plain manifest (format 1) or a signed envelope (format 2,
    /// whose `signed` text must itself be a format-1 manifest). A newer format is refused with
    /// "upgrade offsite". The signature is kept, not checked.
    pub fn parse(bytes: &[u8]) -> Result<ManifestFile, String> {
        match probe(bytes)? {
            SIGNED_MANIFEST_FORMAT => {
                #[derive(Deserialize)]
                struct Parts {
                    signed: String,
                    signature: String,
                }
                let parts: Parts = serde_json::from_slice(bytes)
                    .map_err(|e| format!("malformed signed manifest: {e}"))?;
                let manifest = match probe(parts.signed.as_bytes()) {
                    Ok(MANIFEST_FORMAT) => plain(parts.signed.as_bytes()),
                    Ok(f) => Err(format!(
                        "the manifest a signed manifest holds must be format {MANIFEST_FORMAT}, not {f}"
                    )),
                    Err(e) => Err(e),
                }
                .map_err(|e| format!("in its \"signed\" text: {e}"))?;
                Ok(ManifestFile {
                    manifest,
                    signature: Some(Signed {
                        signed: parts.signed,
                        signature: parts.signature,
                    }),
                })
            }
            _ => Ok(ManifestFile {
                manifest: plain(bytes)?,
                signature: None,
            }),
        }
    }

    /// The bytes of an unsigned manifest object: the format-1 manifest, as push has always
    /// written it.
    pub fn unsigned_bytes(manifest: &Manifest) -> Vec<u8> {
        serde_json::to_vec_pretty(manifest).expect("manifest serializes")
    }

    /// The bytes of a signed manifest object: the envelope holding the format-1 manifest's
    /// text (exactly [`ManifestFile::unsigned_bytes`]) and `key`'s signature over it.
    pub fn signed_bytes(
        manifest: &Manifest,
        key: &offsite_policies::signing::SigningKey,
    ) -> Vec<u8> {
        Self::sign_stored(&Self::unsigned_bytes(manifest), key)
            .expect("an unsigned manifest is a format-1 manifest")
    }

    /// The bytes of a signed manifest object holding exactly `stored`, an unsigned manifest
    /// object as it was stored (`offsite sign`: not a byte of it changes), and `key`'s
    /// signature over it. Refuses bytes that are not a format-1 manifest.
    pub fn sign_stored(
        stored: &[u8],
        key: &offsite_policies::signing::SigningKey,
    ) -> Result<Vec<u8>, String> {
        let signed =
            std::str::from_utf8(stored).map_err(|e| format!("the manifest is not UTF-8: {e}"))?;
        match probe(stored)? {
            MANIFEST_FORMAT => plain(stored)?,
            f => {
                return Err(format!(
                    "only a format-{MANIFEST_FORMAT} manifest is signed, not format {f}"
                ))
            }
        };
        let signature = key.sign(signed.as_bytes());
        Ok(serde_json::to_vec_pretty(&Envelope {
            format: SIGNED_MANIFEST_FORMAT,
            signed,
            signature: &signature,
        })
        .expect("envelope serializes"))
    }
}

/// A manifest object's `format`, refusing what is not JSON, has none, or is newer than this
/// build reads.
fn probe(bytes: &[u8]) -> Result<u32, String> {
    #[derive(Deserialize)]
    struct Probe {
        format: Option<u32>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
    match probe.format {
        Some(f) if f > SIGNED_MANIFEST_FORMAT => Err(format!(
            "manifest format {f} is newer than this offsite understands ({SIGNED_MANIFEST_FORMAT}); upgrade offsite"
        )),
        None => Err("no \"format\" field: this is not an offsite manifest".into()),
        Some(f) => Ok(f),
    }
}

/// A plain (format-1) manifest.
fn plain(bytes: &[u8]) -> Result<Manifest, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("malformed manifest: {e}"))
}

/// The record `verify --deep` and restore drills write beside the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct VerifiedRecord {
    /// When the check ran.
    pub time: DateTime<Utc>,
    /// `deep` (downloaded, hashed, decrypted, hashed again) or `drill`.
    pub depth: RecordedDepth,
    /// `ok` or `failed`.
    pub result: RecordedResult,
    /// What failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `offsite X.Y.Z`.
    pub tool: String,
    /// The archive checked: a signed record binds its archive's name...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// ...and the stored bytes' SHA-256 its manifest recorded, so that a record cannot be
    /// moved to another archive, nor outlive a replaced copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_sha256: Option<String>,
    /// What the check found inside the plaintext: a tar's member count and size, or why the
    /// contents were not opened. Older records have none; a form this build does not know
    /// reads as none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "known_contents"
    )]
    pub contents: Option<RecordedContents>,
    /// How long a drill's restore took (absent from deep verifies and older builds' records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreTiming>,
}

/// What a deep check or drill found inside an archive's plaintext, as recorded:
/// `{"opened": true, "format": "tar.gz", "members": 12, "bytes": 3456}`, or
/// `{"opened": false, "reason": "..."}` for bytes that are no tar; a tar that could not be read
/// to its end also carries the `reason` (and the members read before it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RecordedContents {
    /// Whether the plaintext was read as a tar.
    pub opened: bool,
    /// `tar`, `tar.gz` or `tar.zst` (decided by the bytes, not the name); `gzip` or `zstd`
    /// for a compressed stream that broke before it could be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Members read (files, directories, links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<u64>,
    /// The members' total size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Why the contents were not opened, or what made the tar unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Recorded contents in a form this build knows, else none (see [`VerifiedRecord`]).
fn known_contents<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<RecordedContents>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

/// A drill's restore, measured: the stored bytes read back, decrypted and hashed, and how
/// long that took. `{"seconds": 12.3, "bytes": N, "bytes_per_second": X}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RestoreTiming {
    /// Seconds.
    pub seconds: f64,
    /// Stored bytes restored.
    pub bytes: u64,
    /// Stored bytes per second (absent for a restore too quick to time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_second: Option<f64>,
}

// Measured times and JSON numbers are never NaN (JSON has none): equality is total.
impl Eq for RestoreTiming {}

impl RestoreTiming {
    /// The timing of `bytes` restored in `took`.
    pub fn of(bytes: u64, took: std::time::Duration) -> RestoreTiming {
        let seconds = took.as_secs_f64();
        RestoreTiming {
            seconds,
            bytes,
            bytes_per_second: (seconds > 0.0).then(|| bytes as f64 / seconds),
        }
    }

    /// The measurement as status reads it, taken at `at`; `None` for a time no clock gives
    /// (negative or not finite: a damaged or forged record).
    pub fn measured(&self, at: DateTime<Utc>) -> Option<offsite_policies::rto::Measured> {
        let took = std::time::Duration::try_from_secs_f64(self.seconds).ok()?;
        Some(offsite_policies::rto::Measured {
            at,
            bytes: self.bytes,
            took,
        })
    }
}

impl VerifiedRecord {
    /// The record object's bytes: the record's JSON, or with `key` the envelope
    /// `{"signed": "<record JSON>", "signature": "<armored SSH signature over it>"}` (the
    /// manifest's namespace; a record's text never parses as a manifest, nor the reverse).
    pub fn to_bytes(&self, key: Option<&offsite_policies::signing::SigningKey>) -> Vec<u8> {
        let text = serde_json::to_vec_pretty(self).expect("record serializes");
        let Some(key) = key else { return text };
        let signed = String::from_utf8(text).expect("JSON is UTF-8");
        let signature = key.sign(signed.as_bytes());
        serde_json::to_vec_pretty(&Signed { signed, signature }).expect("envelope serializes")
    }

    /// Parses a record object, signed or not; a signed one's parts are returned unchecked.
    pub fn parse(bytes: &[u8]) -> Result<(VerifiedRecord, Option<Signed>), String> {
        if let Ok(s) = serde_json::from_slice::<Signed>(bytes) {
            let r = serde_json::from_str(&s.signed)
                .map_err(|e| format!("malformed signed verification record: {e}"))?;
            return Ok((r, Some(s)));
        }
        serde_json::from_slice(bytes)
            .map(|r| (r, None))
            .map_err(|e| format!("malformed verification record: {e}"))
    }
}

/// How far a recorded check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedDepth {
    /// `verify --deep`: downloaded, hashed, decrypted, hashed again.
    Deep,
    /// A restore drill: the same as deep.
    Drill,
    /// A word this version does not know (never written): not a deep proof.
    #[serde(other)]
    Unknown,
}

/// What a recorded check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedResult {
    /// The copy was proven good.
    Ok,
    /// The copy was found damaged.
    Failed,
    /// A word this version does not know (never written): not a pass.
    #[serde(other)]
    Unknown,
}

/// The tool version string recorded in manifests.
pub fn tool_version() -> String {
    format!("offsite {}", env!("CARGO_PKG_VERSION"))
}

/// Finds a timestamp in an archive name (the forms [`timestamp_in_name`] reads).
///
/// [`timestamp_in_name`]: offsite_policies::inventory::timestamp_in_name
pub fn time_from_name(name: &str) -> Option<DateTime<Utc>> {
    offsite_policies::inventory::timestamp_in_name(name).map(|(_, t)| t)
}

/// Parses `--at`: RFC 3339, or `YYYY-MM-DD[THH:MM[:SS]]` taken as UTC, or the compact form
/// archive names carry, `YYYYMMDD[_HHMM[SS]]` (also with `T` for `_`).
pub fn parse_time_arg(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc());
        }
    }
    // The compact forms, only where every field has its full width (chrono would read
    // `2026125` as well).
    if let Some((d, t)) = s.split_once(['_', 'T']) {
        if d.len() == 8 && digits(d) && matches!(t.len(), 4 | 6) && digits(t) {
            let f = if t.len() == 6 {
                "%Y%m%d_%H%M%S"
            } else {
                "%Y%m%d_%H%M"
            };
            if let Ok(t) = NaiveDateTime::parse_from_str(&format!("{d}_{t}"), f) {
                return Ok(t.and_utc());
            }
        }
    }
    let date = if s.len() == 8 && digits(s) {
        NaiveDate::parse_from_str(s, "%Y%m%d")
    } else {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
    };
    if let Ok(d) = date {
        // A bare date means the end of that day: "the state as of 2026-11-20".
        return Ok(d.and_hms_opt(23, 59, 59).expect("valid time").and_utc());
    }
    Err(format!(
        "{s:?} is not a time: write RFC 3339 (2026-11-20T14:00:00Z), YYYY-MM-DD[THH:MM] or YYYYMMDD[_HHMMSS] (as in archive names), in UTC"
    ))
}

/// Checks an archive name: one path segment that a store can hold, not ending in `.age` (an
/// encrypted archive `X` keeps its data in `X.age`, so an archive named `X.age` could collide).
pub fn validate_name(name: &str, encrypted: bool) -> Result<(), String> {
    if name.is_empty() {
        return Err("the archive name is empty".into());
    }
    if name.chars().any(char::is_control) {
        return Err(format!(
            "archive name {name:?} contains a control character (a newline, tab, escape or the like), which would garble listings; give a name of printable characters (--name)"
        ));
    }
    if name.contains('/') || name.contains('\\') {
        return Err(format!(
            "archive name {name:?} contains a path separator; give a plain file name"
        ));
    }
    if name.starts_with('.') {
        return Err(format!(
            "archive name {name:?} starts with '.'; hidden names are reserved"
        ));
    }
    for suffix in [MANIFEST_SUFFIX, VERIFIED_SUFFIX] {
        if name.ends_with(suffix) {
            return Err(format!(
                "archive name {name:?} ends with {suffix}, which offsite uses for its own files"
            ));
        }
    }
    if name.ends_with(AGE_SUFFIX) {
        return Err(if encrypted {
            format!(
                "archive name {name:?} already ends with .age; push the unencrypted archive (offsite encrypts it), or rename the file"
            )
        } else {
            format!(
                "archive name {name:?} ends with .age, which is where the encrypted archive {:?} keeps its data; rename it (--name) so the two can never share an object",
                name.trim_end_matches(AGE_SUFFIX)
            )
        });
    }
    offsite_storage::validate_key(name, "archive", offsite_storage::Operation::Put)
        .map_err(|e| e.message().to_string())
}

/// Manifests for unit tests elsewhere in the crate.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A manifest of `name` for tests: encrypted, pushed and created 2026-11-26T02:00:00Z.
    pub fn sample(name: &str) -> Manifest {
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 26, 2, 0, 0).unwrap();
        Manifest {
            format: MANIFEST_FORMAT,
            archive: name.into(),
            created: at,
            created_from: CreatedFrom::Name,
            plaintext: Digest {
                size: 3,
                sha256: "ab".repeat(32),
            },
            stored: Stored {
                key: format!("{name}.age"),
                size: 200,
                sha256: "cd".repeat(32),
                provider_checksum: None,
                storage_class: None,
                etag: None,
            },
            encryption: Some(Encryption {
                scheme: "age".into(),
                recipients: vec!["age1x".into()],
            }),
            policy: Some("app".into()),
            retain_until: None,
            metadata: None,
            pushed: at,
            push: None,
            tool: tool_version(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::sample;
    use super::*;
    use chrono::TimeZone;
    use offsite_policies::signing::{SigningKey, TrustedSigners, Verdict};

    fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<DateTime<Utc>> {
        Some(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap())
    }

    #[test]
    fn times_from_names() {
        let cases = [
            (
                "app-backup-20261126_020000.tar.gz",
                t(2026, 11, 26, 2, 0, 0),
            ),
            ("db-2026-11-26T02:00:00Z.sql.gz", t(2026, 11, 26, 2, 0, 0)),
            ("db_2026-11-26_02-30-15.dump", t(2026, 11, 26, 2, 30, 15)),
            ("snap-20261126T023000Z", t(2026, 11, 26, 2, 30, 0)),
            ("weekly-2026-11-26.tar", t(2026, 11, 26, 0, 0, 0)),
            ("v2-app-20261126.tgz", t(2026, 11, 26, 0, 0, 0)),
            ("app-backup.tar.gz", None),
            ("build-123456789.tar", None),
            ("app-20261399_020000.tar", None),
        ];
        for (name, want) in cases {
            assert_eq!(time_from_name(name), want, "{name}");
        }
    }

    #[test]
    fn at_arguments() {
        assert_eq!(
            parse_time_arg("2026-11-20T14:00").ok(),
            t(2026, 11, 20, 14, 0, 0)
        );
        assert_eq!(
            parse_time_arg("2026-11-20T14:00:00+01:00").ok(),
            t(2026, 11, 20, 13, 0, 0)
        );
        assert_eq!(
            parse_time_arg("2026-11-20").ok(),
            t(2026, 11, 20, 23, 59, 59)
        );
        // The form archive names carry.
        assert_eq!(parse_time_arg("20261205").ok(), t(2026, 12, 5, 23, 59, 59));
        assert_eq!(
            parse_time_arg("20261205_020000").ok(),
            t(2026, 12, 5, 2, 0, 0)
        );
        assert_eq!(
            parse_time_arg("20261205T0200").ok(),
            t(2026, 12, 5, 2, 0, 0)
        );
        for bad in ["2026125", "20261305", "20261205_0200000", "20261205_2500"] {
            assert!(parse_time_arg(bad).is_err(), "{bad}");
        }
        assert!(parse_time_arg("yesterday")
            .unwrap_err()
            .contains("RFC 3339"));
    }

    #[test]
    fn keys_and_names() {
        let k = ArchiveKeys::new("app", "a.tar.gz", true);
        assert_eq!(k.object, "app/a.tar.gz.age");
        assert_eq!(k.manifest, "app/a.tar.gz.manifest.json");
        assert_eq!(ArchiveKeys::new("", "a.tar.gz", false).object, "a.tar.gz");
        assert!(validate_name("x/y", true).is_err());
        assert!(validate_name("x.age", true)
            .unwrap_err()
            .contains("offsite encrypts it"));
        assert!(validate_name("x.age", false)
            .unwrap_err()
            .contains("share an object"));
        assert!(validate_name("app-backup-20261126_020000.tar.gz", true).is_ok());
    }

    #[test]
    fn future_manifest_formats_are_refused_clearly() {
        let e = Manifest::from_json(br#"{"format": 99}"#).unwrap_err();
        assert!(e.contains("upgrade offsite"), "{e}");
        assert!(Manifest::from_json(b"{")
            .unwrap_err()
            .contains("not valid JSON"));
    }

    #[test]
    fn fields_a_newer_build_adds_are_ignored_within_the_major_version() {
        let m = br#"{
            "format": 1,
            "archive": "a-20261126.tgz",
            "created": "2026-11-26T00:00:00Z",
            "created-from": "a-future-source",
            "plaintext": {"size": 3, "sha256": "ab", "entropy": 1},
            "stored": {
                "key": "a-20261126.tgz.age", "size": 9, "sha256": "cd",
                "provider-checksum": {"algorithm": "crc32c-composite", "value": "x"},
                "replica-of": "s3://elsewhere"
            },
            "encryption": {"scheme": "age", "recipients": ["age1x"]},
            "pushed": "2026-11-26T00:01:00Z",
            "tool": "offsite 9.0.0",
            "placement": {"copies": 3}
        }"#;
        let m = Manifest::from_json(m).unwrap();
        assert_eq!(m.plaintext.size, 3);
        assert_eq!(m.created_from, CreatedFrom::Other);
        assert_eq!(
            m.stored.provider_checksum, None,
            "an unknown form reads as none"
        );
        let known = br#"{"format": 1, "archive": "a", "created": "2026-11-26T00:00:00Z",
            "created-from": "name", "plaintext": {"size": 1, "sha256": "ab"},
            "stored": {"key": "a", "size": 1, "sha256": "ab",
                "provider-checksum": {"algorithm": "sha256", "value": "ab"}},
            "encryption": null, "pushed": "2026-11-26T00:00:00Z", "tool": "offsite 0.1.0"}"#;
        let m = Manifest::from_json(known).unwrap();
        assert_eq!(
            m.stored.provider_checksum,
            Some(Checksum::Sha256("ab".into()))
        );
    }

    fn trusting(key: &SigningKey) -> TrustedSigners {
        TrustedSigners::parse(&[key.public_line()], "test", None).unwrap()
    }

    #[test]
    fn unsigned_manifests_are_written_as_before_and_read_back() {
        let m = sample("app-20261126_020000.tgz");
        let bytes = ManifestFile::unsigned_bytes(&m);
        assert_eq!(bytes, serde_json::to_vec_pretty(&m).unwrap());
        let f = ManifestFile::parse(&bytes).unwrap();
        assert_eq!(f.manifest, m);
        assert_eq!(f.signature, None);
        assert_eq!(Manifest::from_json(&bytes).unwrap(), m);
    }

    #[test]
    fn a_stored_manifest_is_signed_byte_for_byte() {
        let key = SigningKey::generate("host-a");
        let m = sample("app-20261126_020000.tgz");
        // Compact, with a field this build does not know: kept exactly, not re-serialized.
        let mut v = serde_json::to_value(&m).unwrap();
        v["from-a-newer-build"] = serde_json::json!(1);
        let stored = serde_json::to_vec(&v).unwrap();
        let bytes = ManifestFile::sign_stored(&stored, &key).unwrap();
        let f = ManifestFile::parse(&bytes).unwrap();
        assert_eq!(f.manifest, m);
        let s = f.signature.unwrap();
        assert_eq!(s.signed.as_bytes(), stored);
        assert!(matches!(
            trusting(&key).verify(&stored, Some(&s.signature), Utc::now()),
            Verdict::Trusted { .. }
        ));
        // An envelope is not signed again, nor what is not a manifest.
        assert!(ManifestFile::sign_stored(&bytes, &key).is_err());
        assert!(ManifestFile::sign_stored(b"{\"format\": 1}", &key).is_err());
    }

    #[test]
    fn the_push_timing_is_optional_and_signed_with_the_manifest() {
        let key = SigningKey::generate("host-a");
        let m = Manifest {
            push: Some(PushTiming::of(
                10_000,
                std::time::Duration::from_millis(2500),
            )),
            ..sample("app-20261126_020000.tgz")
        };
        let bytes = ManifestFile::signed_bytes(&m, &key);
        let f = ManifestFile::parse(&bytes).unwrap();
        assert_eq!(f.manifest, m);
        let signed: serde_json::Value = serde_json::from_str(&f.signature.unwrap().signed).unwrap();
        assert_eq!(
            signed["push"],
            serde_json::json!({"seconds": 2.5, "bytes_per_second": 4000.0})
        );
        // An older build's manifest has none, and says none.
        let old = sample("app-20261126_020000.tgz");
        assert_eq!(old.push, None);
        let v = serde_json::to_value(&old).unwrap();
        assert!(v.get("push").is_none(), "{v}");
        assert_eq!(
            PushTiming::of(5, std::time::Duration::ZERO).bytes_per_second,
            None
        );
    }

    #[test]
    fn signed_manifests_are_an_envelope_over_the_format_1_bytes() {
        let key = SigningKey::generate("host-a");
        let m = sample("app-20261126_020000.tgz");
        let bytes = ManifestFile::signed_bytes(&m, &key);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["format"], 2);
        let f = ManifestFile::parse(&bytes).unwrap();
        assert_eq!(f.manifest, m);
        assert_eq!(Manifest::from_json(&bytes).unwrap(), m);
        let s = f.signature.unwrap();
        assert_eq!(s.signed.as_bytes(), ManifestFile::unsigned_bytes(&m));
        assert_eq!(v["signed"], s.signed.as_str());
        assert!(
            s.signature.starts_with("-----BEGIN SSH SIGNATURE-----"),
            "{}",
            s.signature
        );
        assert!(matches!(
            trusting(&key).verify(s.signed.as_bytes(), Some(&s.signature), Utc::now()),
            Verdict::Trusted { .. }
        ));
    }

    #[test]
    fn a_tampered_signed_manifest_parses_but_does_not_verify() {
        let key = SigningKey::generate("host-a");
        let bytes = ManifestFile::signed_bytes(&sample("app-20261126_020000.tgz"), &key);
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let tampered = v["signed"]
            .as_str()
            .unwrap()
            .replace("abababab", "00000000");
        v["signed"] = tampered.into();
        let f = ManifestFile::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(f.manifest.plaintext.sha256.starts_with("00000000"));
        let s = f.signature.unwrap();
        assert!(matches!(
            trusting(&key).verify(s.signed.as_bytes(), Some(&s.signature), Utc::now()),
            Verdict::Untrusted { .. }
        ));
        // Another archive's signature over this one's bytes does not verify either.
        let other = ManifestFile::signed_bytes(&sample("app-20261127_020000.tgz"), &key);
        let other = ManifestFile::parse(&other).unwrap().signature.unwrap();
        let this = ManifestFile::parse(&bytes).unwrap().signature.unwrap();
        assert!(matches!(
            trusting(&key).verify(this.signed.as_bytes(), Some(&other.signature), Utc::now()),
            Verdict::Untrusted { .. }
        ));
    }

    #[test]
    fn newer_and_nested_formats_are_refused() {
        let e =
            ManifestFile::parse(br#"{"format": 3, "signed": "{}", "signature": ""}"#).unwrap_err();
        assert!(e.contains("upgrade offsite"), "{e}");
        let inner = serde_json::to_string(
            &serde_json::json!({"format": 2, "signed": "{}", "signature": ""}),
        )
        .unwrap();
        let nested = serde_json::json!({"format": 2, "signed": inner, "signature": ""});
        let e = ManifestFile::parse(&serde_json::to_vec(&nested).unwrap()).unwrap_err();
        assert!(e.contains("must be format 1"), "{e}");
        let e =
            ManifestFile::parse(br#"{"format": 2, "signed": "{\"format\": 0}", "signature": ""}"#)
                .unwrap_err();
        assert!(e.contains("must be format 1, not 0"), "{e}");
        let e = ManifestFile::parse(br#"{"format": 2, "signed": "{\"format\": 1}"}"#).unwrap_err();
        assert!(e.contains("malformed signed manifest"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_bytes_as_a_manifest_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = Manifest::from_json(&b);
        }

        #[test]
        fn manifests_round_trip_exactly(
            name in "[a-z][a-z0-9._-]{0,30}",
            size in 0u64..u64::MAX / 2,
            secs in 0i64..4_102_444_800i64,
            encrypted in proptest::prelude::any::<bool>(),
        ) {
            let t = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let m = Manifest {
                format: MANIFEST_FORMAT,
                archive: name.clone(),
                created: t,
                created_from: CreatedFrom::Name,
                plaintext: Digest { size, sha256: "ab".repeat(32) },
                stored: Stored {
                    key: format!("{name}.age"),
                    size: size + 1,
                    sha256: "cd".repeat(32),
                    provider_checksum: Some(Checksum::Sha256Composite { hex: "ef".repeat(32), parts: 3 }),
                    etag: Some("\"abc-3\"".into()),
                    storage_class: None,
                },
                encryption: encrypted.then(|| Encryption { scheme: "age".into(), recipients: vec!["age1x".into()] }),
                policy: None,
                retain_until: Some(t),
                metadata: encrypted.then(|| serde_json::json!({"host": "db1", "size": 3})),
                pushed: t,
                push: None,
                tool: tool_version(),
            };
            let json = serde_json::to_vec(&m).unwrap();
            proptest::prop_assert_eq!(Manifest::from_json(&json).unwrap(), m);
        }
    }
}
