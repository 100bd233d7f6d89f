//! The policy file (DESIGN.md "A complete policy file"): TOML, every table closed to unknown
//! keys. Parsing checks what can be checked without a store: types, units, names that refer to
//! each other, lock options that need a lock, credential sources that fit the destination's
//! kind. An identity (a secret key) anywhere in the file is refused before the TOML is even
//! parsed, and never echoed: a parse error message must not carry it either.
//!
//! Optional keys and their defaults: `prefix` (none), `rpo`, `rto` and `verify-every` (not
//! checked),
//! `[encryption]` (required, or `unencrypted = true`, when there is a destination), a destination's `offsite` (false for
//! `file://` and `memory://`, true for clouds), `storage-class` (the provider's default), `lock`
//! (none), `lock-days` (7 with a lock), `legal-hold` (false), `retention` (the policy's),
//! `[placement]` (copies 1, media 1, offsite 0, immutable 0), `[retention]` (keep everything),
//! `[replication]` and `[[snapshots]]` (none). A policy has a `[[destination]]`, a
//! `[[snapshots]]` section, or both; one of snapshots alone has no `[encryption]`,
//! `[placement]` or `[replication]` to give.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::duration::Span;
use crate::inventory::Kind;

/// The policy format this build reads.
pub const POLICY_VERSION: u32 = 1;

/// A parsed, checked policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Policy {
    /// [`POLICY_VERSION`].
    pub version: u32,
    /// The policy's name: labels metrics and lock periods; letters, digits, `.`, `_`, `-`.
    pub name: String,
    /// A sub-prefix under every destination URL.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The newest complete archive must be younger than this.
    #[serde(default)]
    pub rpo: Option<Span>,
    /// A deep verify or drill must have proven a copy this recently.
    #[serde(default)]
    pub verify_every: Option<Span>,
    /// Some destination holding the newest archive of each series must be able to restore
    /// it this fast, by what drills measured there and its storage class's thaw time
    /// ([`crate::rto`]).
    #[serde(default)]
    pub rto: Option<Span>,
    /// How far an archive's creation time may run ahead of the clocks that judge it (this
    /// host's, the store's, the push time) before it is future-dated; default 1h.
    #[serde(default)]
    pub clock_tolerance: Option<Span>,
    /// Who can decrypt.
    #[serde(default)]
    pub encryption: Option<Encryption>,
    /// Where copies go, in the order restore tries them.
    #[serde(default, rename = "destination")]
    pub destinations: Vec<Destination>,
    /// 3-2-1-1-0.
    #[serde(default)]
    pub placement: Placement,
    /// Grandfather-father-son retention.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Replicas filled from one destination.
    #[serde(default)]
    pub replication: Option<Replication>,
    /// Volume snapshots under the same rules.
    #[serde(default)]
    pub snapshots: Vec<Snapshots>,
    /// This host's key for signing the manifests push writes.
    #[serde(default)]
    pub signing: Option<Signing>,
}

/// `[signing]`: the key this host signs manifests with, and the keys whose signatures readers
/// trust. At least one of the three is given.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Signing {
    /// This host's OpenSSH Ed25519 private key (`offsite keygen --signing -o FILE`), private
    /// to its owner: push, replicate, sign and the verification records of `verify --deep` and
    /// `drill` are signed with it.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Public lines (`ssh-ed25519 AAAA... host-a`) of the keys whose signatures are trusted.
    #[serde(default)]
    pub trusted: Vec<String>,
    /// An OpenSSH `allowed_signers` file of trusted keys (`valid-after` / `valid-before`
    /// honoured), read with `trusted`.
    #[serde(default)]
    pub trusted_file: Option<PathBuf>,
}

impl Signing {
    /// Whether readers check signatures: some key is trusted.
    pub fn has_trust(&self) -> bool {
        !self.trusted.is_empty() || self.trusted_file.is_some()
    }
}

/// `[encryption]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Encryption {
    /// age recipients (`age1...`) and SSH public keys.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// A file of recipients, one a line.
    #[serde(default)]
    pub recipients_file: Option<PathBuf>,
    /// Store archives as they are, without age: must be said, never a default.
    #[serde(default)]
    pub unencrypted: bool,
}

/// An S3 Object Lock mode, or its Azure / GCS counterpart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockMode {
    /// Removable by a privileged principal.
    Governance,
    /// Removable by no one until it expires.
    Compliance,
}

impl LockMode {
    /// The word the URL option and the file use.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        }
    }
}

/// `[[destination]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Destination {
    /// Its name in reports, metrics and `[replication]`.
    pub name: String,
    /// The location URL (its query options are allowed, but not the ones set here as keys).
    pub url: String,
    /// Whether it counts as off site; default by kind.
    #[serde(default)]
    pub offsite: Option<bool>,
    /// Storage class or access tier.
    #[serde(default)]
    pub storage_class: Option<String>,
    /// Lock copies at push.
    #[serde(default)]
    pub lock: Option<LockMode>,
    /// Days the push-time lock lasts, from the archive's creation.
    #[serde(default)]
    pub lock_days: Option<u32>,
    /// Put a legal hold on each copy.
    #[serde(default)]
    pub legal_hold: Option<bool>,
    /// S3 SSE-KMS key.
    #[serde(default)]
    pub sse_kms_key: Option<String>,
    /// This destination's own retention.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// S3: the AWS profile its credentials come from.
    #[serde(default)]
    pub aws_profile: Option<String>,
    /// GCS: the service-account credentials file.
    #[serde(default)]
    pub gcp_credentials_file: Option<PathBuf>,
    /// Azure: the name of the environment variable holding its connection string.
    #[serde(default)]
    pub azure_connection_string_env: Option<String>,
}

impl Destination {
    /// Its kind, from the URL's scheme (checked by [`Policy::parse`]).
    pub fn kind(&self) -> Kind {
        kind_of(&self.url).expect("checked at parse")
    }

    /// Whether it counts as off site.
    pub fn is_offsite(&self) -> bool {
        self.offsite
            .unwrap_or_else(|| self.kind().offsite_by_default())
    }
}

/// `[placement]`: how many complete copies, of how many kinds, how many off site and locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Placement {
    /// Complete copies.
    #[serde(default = "one")]
    pub copies: u32,
    /// Distinct kinds of storage among them.
    #[serde(default = "one")]
    pub media: u32,
    /// Copies at destinations off site.
    #[serde(default)]
    pub offsite: u32,
    /// Copies under a retention lock.
    #[serde(default)]
    pub immutable: u32,
}

fn one() -> u32 {
    1
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            copies: 1,
            media: 1,
            offsite: 0,
            immutable: 0,
        }
    }
}

/// A count rule: a number, or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Keep this many.
    N(u32),
    /// Keep every one.
    Unlimited,
}

impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keep, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u32),
            S(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("a keep rule is a whole number or \"unlimited\"")
        })? {
            Raw::N(n) => Ok(Keep::N(n)),
            Raw::S(s) if s == "unlimited" => Ok(Keep::Unlimited),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "`{s}` is not a keep rule: write a whole number or \"unlimited\""
            ))),
        }
    }
}

/// `[retention]`, restic `forget` semantics plus `max-age` and `min-age`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Retention {
    /// The newest N.
    #[serde(default)]
    pub keep_last: Option<Keep>,
    /// The newest of each of the last N hours with archives.
    #[serde(default)]
    pub keep_hourly: Option<Keep>,
    /// ... days.
    #[serde(default)]
    pub keep_daily: Option<Keep>,
    /// ... ISO weeks.
    #[serde(default)]
    pub keep_weekly: Option<Keep>,
    /// ... months.
    #[serde(default)]
    pub keep_monthly: Option<Keep>,
    /// ... years.
    #[serde(default)]
    pub keep_yearly: Option<Keep>,
    /// Everything within this span of the newest archive.
    #[serde(default, deserialize_with = "crate::duration::restic")]
    pub keep_within: Option<Span>,
    /// The newest of each hour with archives, within this span of the newest archive.
    #[serde(default, deserialize_with = "crate::duration::restic")]
    pub keep_within_hourly: Option<Span>,
    /// ... of each day.
    #[serde(default, deserialize_with = "crate::duration::restic")]
    pub keep_within_daily: Option<Span>,
    /// ... of each ISO week.
    #[serde(default, deserialize_with = "crate::duration::restic")]
    pub keep_within_weekly: Option<Span>,
    /// ... of each month.
    #[serde(default, deserialize_with = "crate::duration::restic")]
    pub keep_within_monthly: Option<Span>,
    /// ... of each year.
    #[serde(default, deserialize_with = "crate::duration::restic")]
    pub keep_within_yearly: Option<Span>,
    /// Deleted when older, whatever the keep rules say (the newest complete never).
    #[serde(default, deserialize_with = "crate::duration::restic")]
    pub max_age: Option<Span>,
    /// Never touched when younger.
    #[serde(default)]
    pub min_age: Option<Span>,
    /// Prune deletes nothing when its plan would delete more archives than this (at one
    /// destination); `--max-delete` overrides it.
    #[serde(default)]
    pub max_delete: Option<u32>,
}

impl Retention {
    /// Whether any keep rule is set (without one, only `max-age` deletes). A count of 0 and a
    /// zero span are no rule, as restic treats them: `keep-last = 0` alone keeps everything,
    /// it does not delete all but the newest.
    pub fn has_keep_rules(&self) -> bool {
        [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(|k| matches!(k, Some(Keep::Unlimited) | Some(Keep::N(1..))))
            || [
                self.keep_within,
                self.keep_within_hourly,
                self.keep_within_daily,
                self.keep_within_weekly,
                self.keep_within_monthly,
                self.keep_within_yearly,
            ]
            .iter()
            .any(|s| s.is_some_and(|s| s != Span::default()))
    }
}

/// `[replication]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Replication {
    /// The destination replicas are filled from.
    pub from: String,
    /// The replicas: destinations filled by `replicate`, not by push.
    pub to: Vec<String>,
}

/// A cloud whose volumes are snapshotted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotProvider {
    /// EBS.
    Aws,
    /// GCP persistent disks.
    Gcp,
    /// Azure managed disks.
    Azure,
}

impl SnapshotProvider {
    /// The word the file uses: `aws`, `gcp`, `azure`.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotProvider::Aws => "aws",
            SnapshotProvider::Gcp => "gcp",
            SnapshotProvider::Azure => "azure",
        }
    }
}

/// `[[snapshots]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Snapshots {
    /// The section's name (lowercase letters, digits, `-`, `_`): its snapshots carry it as the
    /// `offsite-section` tag and each named section judges only its own, so two sections of one
    /// provider may share a region with their own retentions. Default none.
    #[serde(default)]
    pub name: Option<String>,
    /// Whose volumes.
    pub provider: SnapshotProvider,
    /// Where they are: the EBS region and Azure location (else the provider's usual setting:
    /// `AWS_REGION`, the disk's location); for GCP the snapshots' storage location (a region
    /// or multi-region such as `us`; else the disk's region).
    #[serde(default)]
    pub region: Option<String>,
    /// Volume ids, as the provider names them.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Or a tag selector, `key=value`: every volume in the region (GCP: in `project`; Azure:
    /// in `resource-group`) carrying it.
    #[serde(default)]
    pub select: Option<String>,
    /// Or EBS instances whose volumes are snapshotted together, crash-consistent across them
    /// (CreateSnapshots).
    #[serde(default)]
    pub instances: Vec<String>,
    /// GCP: the project `select` looks in.
    #[serde(default)]
    pub project: Option<String>,
    /// Azure: the resource group `select` looks in, and where snapshots are made (else the
    /// disk's own), as `/subscriptions/S/resourceGroups/RG`.
    #[serde(default)]
    pub resource_group: Option<String>,
    /// Regions each snapshot is copied to: names, or tables with their own retention and key.
    #[serde(default)]
    pub copy_to: Vec<CopyTo>,
    /// Their retention; default the policy's `[retention]`.
    #[serde(default)]
    pub retention: Option<Retention>,
}

impl Snapshots {
    /// The retention of the snapshots in the section's own region.
    pub fn retention_here<'a>(&'a self, policy: &'a Policy) -> Option<&'a Retention> {
        self.retention.as_ref().or(policy.retention.as_ref())
    }

    /// The retention of the copies in `copy`'s region: its own, else the section's.
    pub fn retention_of<'a>(
        &'a self,
        copy: &'a CopyTo,
        policy: &'a Policy,
    ) -> Option<&'a Retention> {
        copy.retention.as_ref().or(self.retention_here(policy))
    }
}

/// One `copy-to` entry: `"us-west-2"`, or `{ region = "us-west-2", retention = {...},
/// kms-key = "..." }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyTo {
    /// The target region.
    pub region: String,
    /// Its own retention; default the section's.
    pub retention: Option<Retention>,
    /// EBS: a KMS key of the target region to encrypt the copy with.
    pub kms_key: Option<String>,
}

impl<'de> Deserialize<'de> for CopyTo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CopyTo, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        struct Table {
            region: String,
            #[serde(default)]
            retention: Option<Retention>,
            #[serde(default)]
            kms_key: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            // Boxed: a table (with its retention) is far larger than a name.
            Table(Box<Table>),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "a copy-to entry is a region name or { region = \"...\", retention = { ... }, kms-key = \"...\" } (keys: region, retention, kms-key)",
            )
        })? {
            Raw::Name(region) => Ok(CopyTo {
                region,
                retention: None,
                kms_key: None,
            }),
            Raw::Table(t) => Ok(CopyTo {
                region: t.region,
                retention: t.retention,
                kms_key: t.kms_key,
            }),
        }
    }
}

/// Why a policy file cannot be used. The message names the file, the line and column where it
/// knows them, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// The kind a URL's scheme names.
pub fn kind_of(url: &str) -> Option<Kind> {
    let scheme = url.split_once("://")?.0;
    Some(match scheme {
        "file" => Kind::File,
        "memory" => Kind::Memory,
        "s3" => Kind::S3,
        "gs" | "gcs" => Kind::Gcs,
        "az" | "azure" => Kind::Azure,
        _ => return None,
    })
}

/// Line and column (1-based) of a byte offset.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Lines that hold a secret key; the key itself is never returned.
fn secret_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let u = l.to_ascii_uppercase();
            u.contains("AGE-SECRET-KEY-")
                || u.contains("AGE-PLUGIN-")
                || (u.contains("-----BEGIN") && u.contains("PRIVATE KEY"))
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// The closest of `candidates` to `word`, when close enough to be what was meant.
fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min()
        .map(|(_, c)| c)
}

/// The key whose value starts at byte `at`: the word before the last `=` before it on its line
/// (`copies = "3"`, or `keep-daily` in `retention = { keep-daily = "x" }`).
fn key_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..at];
    let eq = before.rfind('=')?;
    let key = before[..eq]
        .rsplit(['{', ','])
        .next()?
        .trim()
        .trim_matches('"');
    (!key.is_empty() && !key.contains(char::is_whitespace)).then(|| key.to_string())
}

/// The line (1-based) where `key` is set in `table` (`None`: the top level), if written there.
fn line_of(text: &str, table: Option<&str>, key: &str) -> Option<usize> {
    let mut current: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            current = Some(t.trim_matches(['[', ']']).trim().to_string());
            continue;
        }
        let Some(rest) = t.strip_prefix(key) else {
            continue;
        };
        if current.as_deref() == table && rest.trim_start().starts_with('=') {
            return Some(i + 1);
        }
    }
    None
}

/// One step of the path to a key in a policy file: a key, or an index into an array (of
/// tables: `[[destination]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// A key of a table.
    Key(&'a str),
    /// The Nth (0-based) element of an array, such as the Nth `[[destination]]`.
    Index(usize),
}

/// The line (1-based) where the key at `path` is written in `text`, read from the TOML
/// document's own spans (the key's, or an array element's: a `[[destination]]` table's); `None`
/// when the path is not written there (a default) or the text does not parse.
pub fn line_at(text: &str, path: &[Step<'_>]) -> Option<usize> {
    use toml::de::{DeArray, DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut at: Option<std::ops::Range<usize>> = None;
    let (mut table, mut array): (Option<&DeTable<'_>>, Option<&DeArray<'_>>) =
        (Some(root.get_ref()), None);
    for step in path {
        let value = match (step, table, array) {
            (Step::Key(k), Some(t), _) => {
                let (key, v) = t.iter().find(|(key, _)| {
                    let name: &str = key.get_ref();
                    name == *k
                })?;
                at = Some(key.span());
                v
            }
            (Step::Index(i), _, Some(a)) => {
                let v = a.get(*i)?;
                at = Some(v.span());
                v
            }
            _ => return None,
        };
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(a)),
            _ => (None, None),
        };
    }
    at.map(|r| line_col(text, r.start).0)
}

/// A check across keys that failed: what is wrong and the fix, and the key it is told at.
#[derive(Debug)]
struct Semantic {
    /// The key the message is about (empty: the file as a whole).
    at: Vec<Step<'static>>,
    message: String,
}

impl Semantic {
    fn at(at: &[Step<'static>], message: impl Into<String>) -> Semantic {
        Semantic {
            at: at.to_vec(),
            message: message.into(),
        }
    }
}

impl From<String> for Semantic {
    fn from(message: String) -> Semantic {
        Semantic {
            at: Vec::new(),
            message,
        }
    }
}

impl From<&str> for Semantic {
    fn from(message: &str) -> Semantic {
        Semantic::from(message.to_string())
    }
}

/// serde's "wrong type: string \"3\", expected u32" for `key`, in words: "copies must be a
/// whole number, at least 1 (not the text \"3\": write copies = 3, without quotes)".
fn type_in_words(message: &str, key: &str) -> Option<String> {
    let (got, expected) = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))?
        .split_once(", expected ")?;
    let at_least = match key {
        "copies" | "lock-days" => "at least 1",
        _ => "0 or more",
    };
    let want = match expected.trim() {
        "u8" | "u16" | "u32" | "u64" | "usize" | "an integer" => {
            format!("a whole number, {at_least}")
        }
        "a string" => "text in quotes".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "a list in brackets, such as [\"...\"]".into(),
        _ => return None,
    };
    let got_words = if let Some(q) = got.strip_prefix("string ") {
        let inner = q.trim_matches('"');
        if !inner.is_empty()
            && (inner.parse::<u64>().is_ok() || inner == "true" || inner == "false")
        {
            format!("not the text {q}: write {key} = {inner}, without quotes")
        } else {
            format!("not the text {q}")
        }
    } else if let Some(n) = got
        .strip_prefix("integer ")
        .or_else(|| got.strip_prefix("floating point "))
    {
        format!("not {}", n.trim_matches('`'))
    } else {
        format!("not {got}")
    };
    Some(format!("{key} must be {want} ({got_words})"))
}

/// A value one key may not hold, with where the key is written.
struct ValueError {
    /// The table it is in (`None`: the top level).
    table: Option<&'static str>,
    /// The key.
    key: &'static str,
    /// What is wrong, and the fix.
    message: String,
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" as "unknown key `x`, did you
/// mean `b`?" (or the list, when nothing is close).
fn explain(message: &str, key: Option<&str>) -> String {
    let message = message.trim();
    let Some(rest) = message.strip_prefix("unknown field `") else {
        if let Some(words) = key.and_then(|k| type_in_words(message, k)) {
            return words;
        }
        let message = message.replace("invalid type", "wrong type");
        return match key {
            Some(k) if !message.contains(k) => format!("{k}: {message}"),
            _ => message,
        };
    };
    let Some((word, tail)) = rest.split_once('`') else {
        return message.to_string();
    };
    let candidates: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    match nearest(word, &candidates) {
        Some(c) => format!("unknown key `{word}`, did you mean `{c}`?"),
        None if candidates.is_empty() => format!("unknown key `{word}`"),
        None => format!(
            "unknown key `{word}`; this table takes {}",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

impl Policy {
    /// Parses and checks a policy; `origin` (the file's path) starts every message.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let secrets = secret_lines(text);
        if !secrets.is_empty() {
            return Err(PolicyError(format!(
                "{origin}:{}: holds a secret key (an age or SSH identity), refused and not shown; a policy names recipients (public keys) only: keep the identity in a file given to restore and drill with --identity or OFFSITE_IDENTITY_FILE, and remove it from the policy",
                secrets.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")
            )));
        }
        let mut policy: Policy = toml::from_str(text).map_err(|e| {
            let at = match e.span() {
                Some(s) => {
                    let (l, c) = line_col(text, s.start);
                    format!("{origin}:{l}:{c}")
                }
                None => origin.to_string(),
            };
            let key = e.span().and_then(|s| key_at(text, s.start));
            PolicyError(format!("{at}: {}", explain(e.message(), key.as_deref())))
        })?;
        // Values each key must hold on its own, with the key's line.
        policy.check_values().map_err(|e| {
            let line = line_of(text, e.table, e.key)
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            PolicyError(format!("{origin}{line}: {}", e.message))
        })?;
        // Azure names a location both ways (`West Europe`, `westeurope`); one spelling, so the
        // checks below compare places, not spellings.
        for sec in policy
            .snapshots
            .iter_mut()
            .filter(|s| s.provider == SnapshotProvider::Azure)
        {
            let norm = |r: &str| r.to_ascii_lowercase().replace(' ', "");
            sec.region = sec.region.as_deref().map(norm);
            for c in sec.copy_to.iter_mut() {
                c.region = norm(&c.region);
            }
        }
        policy.check().map_err(|e| {
            let line = line_at(text, &e.at)
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            PolicyError(format!("{origin}{line}: {}", e.message))
        })?;
        // A lock without lock-days locks for the default period from the archive's creation.
        for d in policy.destinations.iter_mut() {
            if d.lock.is_some() && d.lock_days.is_none() {
                d.lock_days = Some(DEFAULT_LOCK_DAYS);
            }
        }
        Ok(policy)
    }

    /// The checks across keys, each failure with the key it is told at.
    fn check(&self) -> Result<(), Semantic> {
        if self.version != POLICY_VERSION {
            return Err(Semantic::at(
                &[Step::Key("version")],
                if self.version > POLICY_VERSION {
                    format!("version = {} is newer than this offsite understands ({POLICY_VERSION}); upgrade offsite", self.version)
                } else {
                    format!(
                        "version = {} is not a policy version; write version = {POLICY_VERSION}",
                        self.version
                    )
                },
            ));
        }
        self.check_durations()?;
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        };
        if !name_ok(&self.name) {
            return Err(Semantic::at(
                &[Step::Key("name")],
                format!(
                    "name = {:?}: a policy name is letters, digits, '.', '_' and '-'",
                    self.name
                ),
            ));
        }
        if let Some(p) = &self.prefix {
            if p.is_empty() || p.starts_with('/') || p.ends_with('/') || p.contains("//") {
                return Err(Semantic::at(&[Step::Key("prefix")], format!(
                    "prefix = {p:?}: write path segments without leading or trailing '/', such as \"app\""
                )));
            }
        }
        if self.destinations.is_empty() {
            // A policy of volume snapshots only: nothing in it speaks of archives.
            if self.snapshots.is_empty() {
                return Err(
                    "no [[destination]] and no [[snapshots]]: a policy needs a destination for archives (a name and a url), a [[snapshots]] section for volumes, or both".into(),
                );
            }
            if self.placement != Placement::default() {
                return Err(Semantic::at(&[Step::Key("placement")], "[placement] counts copies of archives, and this policy has no [[destination]]: add destinations or remove [placement]"));
            }
            if self.replication.is_some() {
                return Err(Semantic::at(&[Step::Key("replication")], "[replication] copies archives between destinations, and this policy has no [[destination]]: add destinations or remove [replication]"));
            }
            // The archive keys, said where nothing reads them, are a mistake to point out.
            for (given, at, key) in [
                (
                    self.encryption.is_some(),
                    "encryption",
                    "[encryption] encrypts archives",
                ),
                (
                    self.signing.is_some(),
                    "signing",
                    "[signing] signs archives' manifests",
                ),
                (
                    self.prefix.is_some(),
                    "prefix",
                    "prefix places archives under each destination",
                ),
                (
                    self.verify_every.is_some(),
                    "verify-every",
                    "verify-every asks for proof of archives",
                ),
                (
                    self.rto.is_some(),
                    "rto",
                    "rto asks how fast archives restore",
                ),
            ] {
                if given {
                    return Err(Semantic::at(&[Step::Key(at)], format!("{key}, and this policy has no [[destination]]: add destinations or remove it")));
                }
            }
            return self.check_snapshots();
        }
        match &self.encryption {
            None => {
                return Err(
                    "no [encryption]: give recipients (or a recipients-file), or write unencrypted = true under [encryption] to store archives as they are".into(),
                )
            }
            Some(e) if e.unencrypted && (!e.recipients.is_empty() || e.recipients_file.is_some()) => {
                return Err(Semantic::at(&[Step::Key("encryption"), Step::Key("unencrypted")], "[encryption] has recipients and unencrypted = true: choose one"))
            }
            Some(e) if !e.unencrypted && e.recipients.is_empty() && e.recipients_file.is_none() => {
                return Err(Semantic::at(&[Step::Key("encryption")], "[encryption] names no recipients: add recipients = [\"age1...\"] or recipients-file"))
            }
            Some(e) => {
                for (i, r) in e.recipients.iter().enumerate() {
                    crate::encryption::Recipient::parse(r, &format!("[encryption] recipients[{i}]"))
                        .map_err(|e| Semantic::at(&[Step::Key("encryption"), Step::Key("recipients"), Step::Index(i)], e.to_string()))?;
                }
            }
        }
        if let Some(sig) = &self.signing {
            if sig.key_file.is_none() && !sig.has_trust() {
                return Err(Semantic::at(&[Step::Key("signing")], "[signing] is empty: give key-file (this host's signing key) and trusted or trusted-file (the keys readers trust)"));
            }
            crate::signing::TrustedSigners::parse(&sig.trusted, "[signing] trusted", None)
                .map_err(|e| Semantic::at(&[Step::Key("signing"), Step::Key("trusted")], e.0))?;
        }
        let mut names = BTreeSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let name_at = [Step::Key("destination"), Step::Index(i), Step::Key("name")];
            if !name_ok(&d.name) {
                return Err(Semantic::at(
                    &name_at,
                    format!(
                        "destination name = {:?}: letters, digits, '.', '_' and '-'",
                        d.name
                    ),
                ));
            }
            if !names.insert(d.name.as_str()) {
                return Err(Semantic::at(
                    &name_at,
                    format!("two destinations are named `{}`: names must differ", d.name),
                ));
            }
            d.check().map_err(|m| {
                Semantic::at(
                    &[Step::Key("destination"), Step::Index(i)],
                    format!("destination `{}`: {m}", d.name),
                )
            })?;
        }
        if let Some(r) = &self.replication {
            let known: Vec<&str> = names.iter().copied().collect();
            let exists = |n: &str, what: &'static str| -> Result<(), Semantic> {
                if names.contains(n) {
                    return Ok(());
                }
                Err(Semantic::at(
                    &[Step::Key("replication"), Step::Key(what)],
                    match nearest(n, &known) {
                        Some(c) => format!(
                            "[replication] {what} = `{n}` is no destination; did you mean `{c}`?"
                        ),
                        None => format!(
                        "[replication] {what} = `{n}` is no destination; the destinations are {}",
                        known.join(", ")
                    ),
                    },
                ))
            };
            exists(&r.from, "from")?;
            if r.to.is_empty() {
                return Err(Semantic::at(
                    &[Step::Key("replication"), Step::Key("to")],
                    "[replication] to = []: name at least one replica",
                ));
            }
            for t in &r.to {
                exists(t, "to")?;
                if *t == r.from {
                    return Err(Semantic::at(
                        &[Step::Key("replication"), Step::Key("to")],
                        format!("[replication] `{t}` is both from and to"),
                    ));
                }
            }
        }
        self.check_snapshots()
    }

    /// Values a key may not hold whatever the rest says: an `rpo`, `rto` or `verify-every` of
    /// no time (never met), `copies = 0` (a policy that keeps nothing).
    fn check_values(&self) -> Result<(), ValueError> {
        for (key, span, example) in [
            ("rpo", self.rpo, "26h"),
            ("rto", self.rto, "30min"),
            ("verify-every", self.verify_every, "7d"),
        ] {
            if let Some(s) = span.filter(Span::is_zero) {
                return Err(ValueError {
                    table: None,
                    key,
                    message: format!(
                        "{key} = \"{s}\": no time can never be met; write how long may pass, such as {key} = \"{example}\""
                    ),
                });
            }
        }
        if self.has_archives() && self.placement.copies == 0 {
            return Err(ValueError {
                table: Some("placement"),
                key: "copies",
                message: "copies = 0: a policy keeps at least one copy of each archive; write copies = 1 or more".into(),
            });
        }
        Ok(())
    }

    /// Durations that cannot mean what was written: a `min-age` above `max-age` in any
    /// retention table.
    fn check_durations(&self) -> Result<(), Semantic> {
        use Step::{Index, Key};
        // (how the message names the table, where its min-age is written, the table)
        type Table<'p> = (String, Vec<Step<'static>>, &'p Retention);
        let mut tables: Vec<Table<'_>> = Vec::new();
        tables.extend(
            self.retention
                .iter()
                .map(|r| ("[retention]".to_string(), vec![Key("retention")], r)),
        );
        for (i, d) in self.destinations.iter().enumerate() {
            tables.extend(d.retention.iter().map(|r| {
                (
                    format!("destination `{}` retention", d.name),
                    vec![Key("destination"), Index(i), Key("retention")],
                    r,
                )
            }));
        }
        for (i, sec) in self.snapshots.iter().enumerate() {
            let at = format!("[[snapshots]] #{}", i + 1);
            let path = vec![Key("snapshots"), Index(i)];
            tables.extend(sec.retention.iter().map(|r| {
                let mut p = path.clone();
                p.push(Key("retention"));
                (format!("{at} retention"), p, r)
            }));
            for (j, c) in sec.copy_to.iter().enumerate() {
                tables.extend(c.retention.iter().map(|r| {
                    let mut p = path.clone();
                    p.extend([Key("copy-to"), Index(j), Key("retention")]);
                    (format!("{at} copy-to {:?} retention", c.region), p, r)
                }));
            }
        }
        for (at, mut path, r) in tables {
            path.push(Key("min-age"));
            if let (Some(min), Some(max)) = (r.min_age, r.max_age) {
                // Compared over one fixed stretch of calendar: `1mo` and `30d` are close
                // enough that either order is plausible, `1y` and `2d` are not.
                let t0 = DateTime::<Utc>::UNIX_EPOCH;
                if min.after(t0) > max.after(t0) {
                    return Err(Semantic::at(&path, format!(
                        "{at}: min-age = \"{min}\" ({}) is longer than max-age = \"{max}\" ({}): an archive would have to be deleted before it may be touched; lower min-age or raise max-age",
                        min.words(),
                        max.words()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Whether the policy places archives (it has a `[[destination]]`); a policy of
    /// `[[snapshots]]` alone has none, and the archive commands refuse it.
    pub fn has_archives(&self) -> bool {
        !self.destinations.is_empty()
    }

    /// The checks of the `[[snapshots]]` sections.
    fn check_snapshots(&self) -> Result<(), Semantic> {
        // Each problem is told at its section's `[[snapshots]]` line.
        let sec = |i: usize, m: String| Semantic::at(&[Step::Key("snapshots"), Step::Index(i)], m);
        let mut names = BTreeSet::new();
        for (i, s) in self.snapshots.iter().enumerate() {
            let Some(n) = &s.name else { continue };
            let ok = !n.is_empty()
                && n.len() <= 63
                && n.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')
                });
            if !ok {
                return Err(sec(i, format!(
                    "[[snapshots]] #{}: name = {n:?}: lowercase letters, digits, '-' and '_', at most 63 (a tag value every provider takes as it is)",
                    i + 1
                )));
            }
            if !names.insert(n.as_str()) {
                return Err(sec(
                    i,
                    format!("two [[snapshots]] sections are named `{n}`: names must differ"),
                ));
            }
        }
        // Snapshots are found by the policy's tag in each region, and a named section's also by
        // its name: two sections keeping one provider's snapshots in one region would each judge
        // the other's by its own retention, unless both are named. A section without a region
        // lists where the provider's setting says (EBS), or every location of its project or
        // resource group (GCP, Azure): it may meet any region of its provider.
        for (i, s) in self.snapshots.iter().enumerate() {
            if s.provider == SnapshotProvider::Azure && s.region.is_none() && !s.copy_to.is_empty()
            {
                return Err(sec(i, format!(
                    "[[snapshots]] #{}: copy-to needs region = \"...\" (the disks' location): without one the section's own listing takes in every location of the resource group, its copies too, and would prune them by its own retention",
                    i + 1
                )));
            }
            for (j, other) in self.snapshots.iter().enumerate().take(i) {
                if other.provider != s.provider || (s.name.is_some() && other.name.is_some()) {
                    continue;
                }
                let regions = |x: &Snapshots| -> Vec<Option<String>> {
                    std::iter::once(x.region.clone())
                        .chain(x.copy_to.iter().map(|c| Some(c.region.clone())))
                        .collect()
                };
                let (mine, theirs) = (regions(s), regions(other));
                let shared = mine.iter().find_map(|a| {
                    theirs.iter().find_map(|b| match (a, b) {
                        (Some(a), Some(b)) if a == b => Some(a.clone()),
                        (None, _) | (_, None) => Some(
                            b.clone()
                                .or_else(|| a.clone())
                                .unwrap_or_else(|| "the provider's default region".into()),
                        ),
                        _ => None,
                    })
                });
                if let Some(r) = shared {
                    return Err(sec(i, format!(
                        "[[snapshots]] #{} and #{} both keep {} snapshots in {r}{}: prune would judge each one's snapshots by the other's retention; give each section a name = \"...\" (its snapshots carry it, and each section judges only its own), or put their volumes in one section",
                        j + 1,
                        i + 1,
                        s.provider.as_str(),
                        if s.region.is_none() || other.region.is_none() {
                            " (a section without region may list any region of its provider)"
                        } else {
                            ""
                        }
                    )));
                }
            }
        }
        for (i, s) in self.snapshots.iter().enumerate() {
            let at = format!("[[snapshots]] #{}", i + 1);
            let ways = usize::from(!s.volumes.is_empty())
                + usize::from(s.select.is_some())
                + usize::from(!s.instances.is_empty());
            if ways == 0 {
                return Err(sec(
                    i,
                    format!(
                    "{at}: give volumes = [...], select = \"key=value\" or (aws) instances = [...]"
                ),
                ));
            }
            if ways > 1 {
                return Err(sec(i, format!(
                    "{at}: volumes, select and instances are three ways to choose volumes: choose one"
                )));
            }
            if let Some(sel) = &s.select {
                if !sel.contains('=') || sel.starts_with('=') {
                    return Err(sec(
                        i,
                        format!(
                            "{at}: select = {sel:?} is not a tag selector: write \"key=value\""
                        ),
                    ));
                }
            }
            if !s.instances.is_empty() && s.provider != SnapshotProvider::Aws {
                return Err(sec(i, format!(
                    "{at}: instances = [...] snapshots an EBS instance's volumes together; for {} list the volumes",
                    s.provider.as_str()
                )));
            }
            match s.provider {
                SnapshotProvider::Gcp if !s.copy_to.is_empty() => {
                    return Err(sec(i, format!(
                        "{at}: GCP standard snapshots cannot be copied between regions: each is stored where it is made; set region = \"us\" (a multi-region storage location) or the region it must live in, and remove copy-to"
                    )));
                }
                SnapshotProvider::Gcp if s.select.is_some() && s.project.is_none() => {
                    return Err(sec(
                        i,
                        format!(
                        "{at}: select needs project = \"...\": the GCP project to look for disks in"
                    ),
                    ));
                }
                SnapshotProvider::Azure if s.select.is_some() && s.resource_group.is_none() => {
                    return Err(sec(i, format!(
                        "{at}: select needs resource-group = \"/subscriptions/S/resourceGroups/RG\": where to look for disks"
                    )));
                }
                _ => {}
            }
            if s.project.is_some() && s.provider != SnapshotProvider::Gcp {
                return Err(sec(i, format!("{at}: project is a GCP key; remove it")));
            }
            if s.resource_group.is_some() && s.provider != SnapshotProvider::Azure {
                return Err(sec(
                    i,
                    format!("{at}: resource-group is an Azure key; remove it"),
                ));
            }
            let mut seen = BTreeSet::new();
            for c in &s.copy_to {
                if c.region.trim().is_empty() {
                    return Err(sec(i, format!("{at}: a copy-to region is empty")));
                }
                if s.region.as_deref() == Some(c.region.as_str()) {
                    return Err(sec(
                        i,
                        format!("{at}: copy-to {:?} is the snapshots' own region", c.region),
                    ));
                }
                if !seen.insert(c.region.as_str()) {
                    return Err(sec(i, format!("{at}: copy-to names {:?} twice", c.region)));
                }
                if c.kms_key.is_some() && s.provider != SnapshotProvider::Aws {
                    return Err(sec(
                        i,
                        format!("{at}: kms-key in copy-to is for EBS; remove it"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether a destination is a replica (filled by `replicate`, not by push).
    pub fn is_replica(&self, name: &str) -> bool {
        self.replication
            .as_ref()
            .is_some_and(|r| r.to.iter().any(|t| t == name))
    }

    /// The destinations push writes to, in order.
    pub fn push_destinations(&self) -> impl Iterator<Item = &Destination> {
        self.destinations
            .iter()
            .filter(|d| !self.is_replica(&d.name))
    }

    /// The clock tolerance: `clock-tolerance`, else [`crate::clock::DEFAULT_TOLERANCE`].
    pub fn tolerance(&self) -> Span {
        self.clock_tolerance
            .unwrap_or(crate::clock::DEFAULT_TOLERANCE)
    }

    /// A destination's retention: its own, else the policy's.
    pub fn retention_of<'a>(&'a self, d: &'a Destination) -> Option<&'a Retention> {
        d.retention.as_ref().or(self.retention.as_ref())
    }
}

/// `lock-days` when a destination sets `lock` without it.
pub const DEFAULT_LOCK_DAYS: u32 = 7;

/// URL query options a key of the destination table replaces.
const TABLE_KEYS_IN_QUERY: [(&str, &str); 8] = [
    ("storage-class", "storage-class"),
    ("lock", "lock"),
    ("lock-days", "lock-days"),
    ("legal-hold", "legal-hold"),
    ("sse-kms-key", "sse-kms-key"),
    ("profile", "aws-profile"),
    ("credentials-file", "gcp-credentials-file"),
    ("connection-string-env", "azure-connection-string-env"),
];

impl Destination {
    fn check(&self) -> Result<(), String> {
        let kind = kind_of(&self.url).ok_or_else(|| {
            format!(
                "url = {:?} is not a location URL: write file:///path, s3://bucket/prefix, gs://bucket/prefix or az://account/container/prefix",
                self.url
            )
        })?;
        if let Some((_, query)) = self.url.split_once('?') {
            for pair in query.split('&') {
                let key = pair.split('=').next().unwrap_or_default();
                if let Some((_, table)) = TABLE_KEYS_IN_QUERY.iter().find(|(q, _)| *q == key) {
                    return Err(format!(
                        "the url sets {key}= and policies set it as a key: write {table} = ... in the destination table and drop it from the url"
                    ));
                }
            }
        }
        if self.lock_days.is_some() && self.lock.is_none() {
            return Err(
                "lock-days without lock: add lock = \"governance\" or \"compliance\"".into(),
            );
        }
        if self.lock.is_some() {
            if self.lock_days == Some(0) {
                return Err("lock-days = 0: a lock lasts at least 1 day".into());
            }
            // memory:// holds locks as the clouds do (for tests and simulations); a local
            // disk cannot.
            if kind == Kind::File {
                return Err(format!(
                    "lock on a {}:// destination: only S3 (Object Lock), GCS (object retention) and Azure (version-level immutability) can lock",
                    kind.as_str()
                ));
            }
        }
        if self.legal_hold == Some(true) && kind == Kind::File {
            return Err(
                "legal-hold on a local destination: only S3, GCS and Azure hold objects".into(),
            );
        }
        if self.storage_class.is_some() && matches!(kind, Kind::File | Kind::Memory) {
            return Err(
                "storage-class on a local destination: only S3, GCS and Azure have storage classes"
                    .into(),
            );
        }
        let wrong = |key: &str, fits: Kind| -> Result<(), String> {
            Err(format!(
                "{key} is for {}:// destinations, and this one is {}://",
                match fits {
                    Kind::S3 => "s3",
                    Kind::Gcs => "gs",
                    _ => "az",
                },
                kind.as_str()
            ))
        };
        if self.sse_kms_key.is_some() && kind != Kind::S3 {
            wrong("sse-kms-key", Kind::S3)?;
        }
        if self.aws_profile.is_some() && kind != Kind::S3 {
            wrong("aws-profile", Kind::S3)?;
        }
        if self.gcp_credentials_file.is_some() && kind != Kind::Gcs {
            wrong("gcp-credentials-file", Kind::Gcs)?;
        }
        if let Some(var) = &self.azure_connection_string_env {
            if kind != Kind::Azure {
                wrong("azure-connection-string-env", Kind::Azure)?;
            }
            if var.is_empty()
                || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                || var.contains(';')
            {
                return Err(
                    "azure-connection-string-env names an environment variable (such as DR_AZURE_CONNECTION), never the connection string itself".into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn base(extra: &str) -> String {
        format!(
            "version = 1\nname = \"app\"\n[encryption]\nrecipients = [\"{RECIPIENT}\"]\n[[destination]]\nname = \"local\"\nurl = \"file:///var/backups/app\"\n{extra}"
        )
    }

    fn err(text: &str) -> String {
        Policy::parse(text, "p.toml").unwrap_err().0
    }

    #[test]
    fn a_check_across_keys_names_the_line_of_its_key() {
        // base: the destination's url is line 7; `extra` starts on line 8.
        let e = err(&base("[retention]\nmax-age = \"1d\"\nmin-age = \"2d\"\n"));
        assert!(
            e.starts_with(
                "p.toml:10: [retention]: min-age = \"2d\" (2 days) is longer than max-age"
            ),
            "{e}"
        );
        let e = err(&base(
            "retention = { max-age = \"1d\", min-age = \"2d\" }\n",
        ));
        assert!(
            e.starts_with("p.toml:8: destination `local` retention: min-age"),
            "{e}"
        );
        let e = err(&base(
            "[[destination]]\nname = \"local\"\nurl = \"file:///x\"\n",
        ));
        assert_eq!(
            e,
            "p.toml:9: two destinations are named `local`: names must differ"
        );
        let e = err(&base(
            "[[destination]]\nname = \"two\"\nurl = \"file:///x\"\n\n[replication]\nfrom = \"lcoal\"\nto = [\"two\"]\n",
        ));
        assert_eq!(
            e,
            "p.toml:13: [replication] from = `lcoal` is no destination; did you mean `local`?"
        );
        let e = err(&base("[replication]\nfrom = \"local\"\nto = []\n"));
        assert_eq!(
            e,
            "p.toml:10: [replication] to = []: name at least one replica"
        );
        let e = err(&base("").replace("version = 1", "version = 9"));
        assert!(e.starts_with("p.toml:1: version = 9 is newer"), "{e}");
        let e = err(&base("").replace("name = \"app\"", "name = \"a b\""));
        assert!(e.starts_with("p.toml:2: name = \"a b\""), "{e}");
        // A table's own problem, at its header.
        let e = err("version = 1\nname = \"app\"\n[encryption]\nrecipients = []\n[[destination]]\nname = \"l\"\nurl = \"file:///x\"\n");
        assert!(
            e.starts_with("p.toml:3: [encryption] names no recipients"),
            "{e}"
        );
    }

    #[test]
    fn line_at_follows_keys_and_arrays_of_tables() {
        let text = "a = 1\n[t]\nb = 2\n[[d]]\nn = 1\n[[d]]\nn = 2\nm = { k = 3 }\n";
        let at = |p: &[Step<'_>]| line_at(text, p);
        assert_eq!(at(&[Step::Key("a")]), Some(1));
        assert_eq!(at(&[Step::Key("t"), Step::Key("b")]), Some(3));
        assert_eq!(
            at(&[Step::Key("d"), Step::Index(1), Step::Key("n")]),
            Some(7)
        );
        assert_eq!(
            at(&[
                Step::Key("d"),
                Step::Index(1),
                Step::Key("m"),
                Step::Key("k")
            ]),
            Some(8)
        );
        assert_eq!(at(&[Step::Key("d"), Step::Index(2)]), None);
        assert_eq!(at(&[Step::Key("zz")]), None);
    }

    #[test]
    fn a_minimal_policy_takes_the_defaults() {
        let p = Policy::parse(&base(""), "p.toml").unwrap();
        assert_eq!(p.placement, Placement::default());
        assert!(!p.destinations[0].is_offsite());
        assert_eq!(p.push_destinations().count(), 1);
    }

    #[test]
    fn rto_is_a_duration_whose_bare_m_and_zero_are_refused() {
        let with = |rto: &str| {
            base("").replacen(
                "name = \"app\"",
                &format!("name = \"app\"\nrto = \"{rto}\""),
                1,
            )
        };
        let p = Policy::parse(&with("30min"), "p.toml").unwrap();
        assert_eq!(p.rto, Some(Span::parse("30min").unwrap()));
        assert_eq!(Policy::parse(&base(""), "p.toml").unwrap().rto, None);
        let e = err(&with("30m"));
        assert!(
            e.contains("30m could be 30 minutes or 30 months; write 30min or 30mo"),
            "{e}"
        );
        let e = err(&with("0min"));
        assert!(
            e.contains("rto = \"0h\": no time can never be met; write how long may pass, such as rto = \"30min\""),
            "{e}"
        );
        // A policy of snapshots alone restores no archives.
        let only = "version = 1\nname = \"vols\"\nrto = \"1h\"\n[[snapshots]]\nprovider = \"aws\"\nvolumes = [\"vol-1\"]\n";
        assert!(err(only).contains("rto asks how fast archives restore"));
    }

    #[test]
    fn signing_takes_a_key_file_and_trusted_keys() {
        let p = Policy::parse(
            &base("[signing]\nkey-file = \"/etc/offsite/signing.key\"\n"),
            "p.toml",
        )
        .unwrap();
        assert_eq!(
            p.signing.unwrap().key_file,
            Some(PathBuf::from("/etc/offsite/signing.key"))
        );
        assert!(Policy::parse(&base(""), "p.toml")
            .unwrap()
            .signing
            .is_none());
        let line = crate::signing::SigningKey::generate("host-a").public_line();
        let p = Policy::parse(
            &base(&format!("[signing]\ntrusted = [\"{line}\"]\ntrusted-file = \"/etc/offsite/allowed_signers\"\n")),
            "p.toml",
        )
        .unwrap();
        let s = p.signing.unwrap();
        assert!(s.key_file.is_none() && s.has_trust());
        assert_eq!(s.trusted, [line]);
        let e = err(&base(
            "[signing]\ntrusted = [\"ssh-ed25519 AAAA host-a\"]\n",
        ));
        assert!(e.contains("[signing] trusted, entry 1"), "{e}");
        let e = err(&base("[signing]\nkey-file = \"/k\"\ntrust = []\n"));
        assert!(e.contains("unknown key `trust`"), "{e}");
        let e = err(&base("[signing]\n"));
        assert!(e.contains("key-file") && e.contains("trusted"), "{e}");
    }

    #[test]
    fn an_unknown_key_names_its_line_and_the_nearest_key() {
        let e = err(&base("[retention]\nkeep-dayly = 7\n"));
        assert_eq!(
            e,
            "p.toml:9:1: unknown key `keep-dayly`, did you mean `keep-daily`?"
        );
        let e = err(&base("[placement]\ncopies = \"three\"\n"));
        assert_eq!(
            e,
            "p.toml:9:10: copies must be a whole number, at least 1 (not the text \"three\")"
        );
        let e = err(&base("[placement]\ncopies = \"3\"\n"));
        assert_eq!(e, "p.toml:9:10: copies must be a whole number, at least 1 (not the text \"3\": write copies = 3, without quotes)");
        let e = err(&base("[placement]\ncopies = -1\n"));
        assert_eq!(
            e,
            "p.toml:9:10: copies must be a whole number, at least 1 (not -1)"
        );
        let e = err(&base("[placement]\nmedia = 1.5\n"));
        assert_eq!(
            e,
            "p.toml:9:9: media must be a whole number, 0 or more (not 1.5)"
        );
        let e = err(&base("[retention]\nmin-age = 5\n"));
        assert!(
            e.starts_with("p.toml:9:11: min-age must be text in quotes (not 5)"),
            "{e}"
        );
        let e = err(&base("[[destination]]\nname = \"b\"\nurl = \"s3://bkt\"\nretention = { keep-daily = 1, keep-weekly = \"4\" }\n"));
        assert_eq!(e, "p.toml:11:45: keep-weekly: `4` is not a keep rule: write a whole number or \"unlimited\"");
        // A value no key may hold names its line too.
        let e = err(&base("[placement]\ncopies = 0\n"));
        assert_eq!(e, "p.toml:9: copies = 0: a policy keeps at least one copy of each archive; write copies = 1 or more");
        let e = err(&base("").replacen("name = \"app\"", "name = \"app\"\nrpo = \"26x\"", 1));
        assert!(e.contains("`26x` is not a duration"), "{e}");
    }

    #[test]
    fn a_secret_key_is_refused_and_never_echoed() {
        let secret = "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ";
        for text in [
            base(&format!("# identity = \"{secret}\"\n")),
            format!("version = 1\nname = \"app\nkey = {secret}"),
        ] {
            let e = err(&text);
            assert!(e.contains("holds a secret key"), "{e}");
            assert!(!e.contains("QQQQ"), "{e}");
        }
    }

    #[test]
    fn cross_key_mistakes_are_named() {
        assert!(err(&base("lock-days = 7\n")).contains("lock-days without lock"));
        assert!(err(&base("lock = \"compliance\"\nlock-days = 7\n")).contains("only S3"));
        assert!(err(&base("aws-profile = \"dr\"\n")).contains("aws-profile is for s3://"));
        let e = err(&base("[replication]\nfrom = \"locl\"\nto = [\"local\"]\n"));
        assert!(e.contains("did you mean `local`?"), "{e}");
        let e = err("version = 2\nname = \"a\"\n");
        assert!(e.contains("newer than this offsite understands"), "{e}");
        let e = err("version = 1\nname = \"a\"\n[encryption]\nrecipients = []\n[[destination]]\nname = \"x\"\nurl = \"file:///x\"\n");
        assert!(e.contains("names no recipients"), "{e}");
        let e = err(&base(
            "[[destination]]\nname = \"s3\"\nurl = \"s3://b/app?storage-class=GLACIER\"\n",
        ));
        assert!(e.contains("write storage-class = ..."), "{e}");
    }

    #[test]
    fn keep_rules_take_numbers_and_unlimited() {
        let p = Policy::parse(
            &base("[retention]\nkeep-daily = 7\nkeep-yearly = \"unlimited\"\nmax-age = \"3y\"\n"),
            "p.toml",
        )
        .unwrap();
        let r = p.retention.unwrap();
        assert_eq!(r.keep_daily, Some(Keep::N(7)));
        assert_eq!(r.keep_yearly, Some(Keep::Unlimited));
        assert_eq!(r.max_age.unwrap().years, 3);
        assert!(err(&base("[retention]\nkeep-daily = \"lots\"\n")).contains("not a keep rule"));
    }

    #[test]
    fn snapshot_sections_are_checked() {
        let snap = |body: &str| base(&format!("[[snapshots]]\n{body}\n"));
        let p = Policy::parse(
            &snap("provider = \"aws\"\nregion = \"us-east-1\"\nvolumes = [\"vol-1\"]\ncopy-to = [\"eu-west-1\", { region = \"us-west-2\", retention = { keep-weekly = 8 }, kms-key = \"alias/dr\" }]"),
            "p.toml",
        )
        .unwrap();
        let c = &p.snapshots[0].copy_to;
        assert_eq!(
            (c[0].region.as_str(), c[0].retention.is_none()),
            ("eu-west-1", true)
        );
        assert_eq!(
            c[1].retention.as_ref().unwrap().keep_weekly,
            Some(Keep::N(8))
        );
        assert_eq!(c[1].kms_key.as_deref(), Some("alias/dr"));
        for (body, want) in [
            ("provider = \"aws\"", "give volumes = [...], select"),
            ("provider = \"aws\"\nvolumes = [\"v\"]\nselect = \"a=b\"", "choose one"),
            ("provider = \"aws\"\nselect = \"ab\"", "not a tag selector"),
            ("provider = \"gcp\"\nvolumes = [\"v\"]\ncopy-to = [\"eu\"]", "cannot be copied between regions"),
            ("provider = \"gcp\"\nselect = \"a=b\"", "select needs project"),
            ("provider = \"azure\"\nselect = \"a=b\"", "select needs resource-group"),
            ("provider = \"azure\"\ninstances = [\"i-1\"]", "for azure list the volumes"),
            ("provider = \"aws\"\nvolumes = [\"v\"]\nproject = \"p\"", "project is a GCP key"),
            ("provider = \"aws\"\nregion = \"r1\"\nvolumes = [\"v\"]\ncopy-to = [\"r1\"]", "the snapshots' own region"),
            ("provider = \"aws\"\nvolumes = [\"v\"]\ncopy-to = [\"r2\", \"r2\"]", "names \"r2\" twice"),
            ("provider = \"azure\"\nregion = \"r1\"\nvolumes = [\"v\"]\ncopy-to = [{ region = \"r2\", kms-key = \"k\" }]", "kms-key in copy-to is for EBS"),
            ("provider = \"aws\"\nvolumes = [\"v\"]\ncopy-to = [{ region = \"r2\", keep = 1 }]", "a copy-to entry is a region name or"),
        ] {
            let e = err(&snap(body));
            assert!(e.contains(want), "{body}: {e}");
        }
        // Two sections keeping one provider's snapshots in one region would prune each other's.
        let e = err(&base(
            "[[snapshots]]\nprovider = \"aws\"\nregion = \"r1\"\nvolumes = [\"a\"]\ncopy-to = [\"r2\"]\n\
             [[snapshots]]\nprovider = \"aws\"\nregion = \"r2\"\nvolumes = [\"b\"]\n",
        ));
        assert!(e.contains("#1 and #2 both keep aws snapshots in r2"), "{e}");
        assert!(e.contains("give each section a name"), "{e}");
        // Told at the second section's line (base's extra starts on line 8).
        assert!(e.starts_with("p.toml:13: [[snapshots]] #1 and #2"), "{e}");
        // Named, they may share the region: each judges only the snapshots carrying its name.
        let named = base(
            "[[snapshots]]\nname = \"db\"\nprovider = \"aws\"\nregion = \"r1\"\nvolumes = [\"a\"]\ncopy-to = [\"r2\"]\n\
             [[snapshots]]\nname = \"web\"\nprovider = \"aws\"\nregion = \"r2\"\nvolumes = [\"b\"]\n",
        );
        let p = Policy::parse(&named, "p.toml").unwrap();
        assert_eq!(p.snapshots[1].name.as_deref(), Some("web"));
        let e = err(&named.replace("\"web\"", "\"db\""));
        assert!(
            e.contains("two [[snapshots]] sections are named `db`"),
            "{e}"
        );
        let e = err(&named.replace("\"web\"", "\"Web\""));
        assert!(e.contains("lowercase letters, digits"), "{e}");
        let e = err(&named.replace("name = \"web\"\n", ""));
        assert!(e.contains("both keep aws snapshots in r2"), "{e}");
        // A section without a region may list any region of its provider (GCP and Azure list a
        // whole project or resource group): it meets every other section of that provider.
        let e = err(&base(
            "[[snapshots]]\nprovider = \"gcp\"\nvolumes = [\"a\"]\n\
             [[snapshots]]\nprovider = \"gcp\"\nregion = \"us\"\nvolumes = [\"b\"]\n",
        ));
        assert!(
            e.contains("#1 and #2 both keep gcp snapshots in us (a section without region"),
            "{e}"
        );
        let e = err(&base(
            "[[snapshots]]\nprovider = \"azure\"\nvolumes = [\"a\"]\n\
             [[snapshots]]\nprovider = \"azure\"\nvolumes = [\"b\"]\n",
        ));
        assert!(e.contains("in the provider's default region"), "{e}");
        let e = err(&base(
            "[[snapshots]]\nprovider = \"azure\"\nvolumes = [\"a\"]\ncopy-to = [\"westus2\"]\n",
        ));
        assert!(e.contains("copy-to needs region"), "{e}");
        // Azure's two spellings of a location are one place.
        let e = err(&base(
            "[[snapshots]]\nprovider = \"azure\"\nregion = \"westeurope\"\nvolumes = [\"a\"]\n\
             [[snapshots]]\nprovider = \"azure\"\nregion = \"West Europe\"\nvolumes = [\"b\"]\n",
        ));
        assert!(e.contains("both keep azure snapshots in westeurope"), "{e}");
        let e = err(&base(
            "[[snapshots]]\nprovider = \"azure\"\nregion = \"westeurope\"\nvolumes = [\"a\"]\ncopy-to = [\"West Europe\"]\n",
        ));
        assert!(e.contains("own region"), "{e}");
        assert!(Policy::parse(
            &base("[[snapshots]]\nprovider = \"aws\"\nregion = \"r1\"\nvolumes = [\"a\"]\n[[snapshots]]\nprovider = \"azure\"\nregion = \"r1\"\nvolumes = [\"b\"]\n"),
            "p.toml"
        )
        .is_ok());
    }

    #[test]
    fn a_policy_of_snapshots_alone_needs_no_destination_nor_encryption() {
        let only = "version = 1\nname = \"vols\"\nrpo = \"26h\"\n[[snapshots]]\nprovider = \"aws\"\nvolumes = [\"vol-1\"]\n";
        let p = Policy::parse(only, "p.toml").unwrap();
        assert!(!p.has_archives());
        assert!(Policy::parse(&base(""), "p.toml").unwrap().has_archives());
        let e = err("version = 1\nname = \"x\"\n");
        assert!(e.contains("no [[destination]] and no [[snapshots]]"), "{e}");
        // The snapshot checks still run, and the archive tables are refused without destinations.
        let e = err(&only.replace("volumes = [\"vol-1\"]", ""));
        assert!(e.contains("give volumes = [...], select"), "{e}");
        let e = err(&format!("{only}[placement]\ncopies = 2\n"));
        assert!(e.contains("[placement] counts copies of archives"), "{e}");
        let e = err(&format!(
            "{only}[replication]\nfrom = \"a\"\nto = [\"b\"]\n"
        ));
        assert!(e.contains("[replication] copies archives"), "{e}");
        let e = err(&format!("{only}[encryption]\nunencrypted = true\n"));
        assert!(e.contains("[encryption] encrypts archives"), "{e}");
        let e = err(&only.replace("rpo = ", "prefix = \"app\"\nrpo = "));
        assert!(e.contains("prefix places archives"), "{e}");
        let e = err(&only.replace("rpo = ", "verify-every = \"7d\"\nrpo = "));
        assert!(e.contains("verify-every asks for proof"), "{e}");
        // With a destination, [encryption] is required as before.
        let e = err(&format!(
            "{only}[[destination]]\nname = \"d\"\nurl = \"file:///b\"\n"
        ));
        assert!(e.contains("no [encryption]"), "{e}");
    }
}

#[cfg(test)]
mod presets {
    use super::Policy;

    /// Every preset shipped in `policies/presets/` parses.
    #[test]
    fn every_preset_parses() {
        let dir = std::path::PathBuf::from(
            // At run time, not env!: a test binary reused by a clone at another path (one
            // target dir for several clones) must read this clone's files.
            std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
        )
        .join("presets");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                Policy::parse(&text, &path.display().to_string()).unwrap();
                n += 1;
            }
        }
        assert!(n >= 4, "the presets are there: {n}");
    }
}
