//! `offsite sign`: adopting history when signing is turned on. Each complete, unsigned
//! archive at a policy's destinations is checked against its manifest (the stored bytes'
//! size and SHA-256, and with an identity the plaintext's too) and only then its manifest is
//! rewritten as a signed envelope of exactly the bytes that were stored.

use std::sync::Arc;

use chrono::Utc;
use offsite_policies::signing::SigningKey;
use offsite_storage::{PutOptions, Retention, StorageExt};
use serde::Serialize;

use super::hashing::object_digest;
use super::identity::Identities;
use super::inventory::{scan, Entry, ReadOptions};
use super::readback::{read_copy, ReadbackError, StoredCopy};
use super::verify::{committed, Verdict};
use crate::archive::{ArchiveKeys, Manifest, ManifestFile};
use crate::registry::{key_prefix, Opened};

/// What `offsite sign` does.
pub struct SignRequest<'a> {
    /// The policy's destinations (replicas included), opened, in its order.
    pub locations: &'a [Opened],
    /// Their names in the policy, in the same order.
    pub names: Vec<String>,
    /// The policy's signing key.
    pub key: &'a SigningKey,
    /// With an identity, the plaintext is checked too.
    pub identities: Option<Arc<Identities>>,
    /// Check and report, write nothing.
    pub dry_run: bool,
    /// How inventories are read.
    pub options: ReadOptions,
}

/// What became of one archive at one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Checked good and its manifest signed.
    Signed,
    /// Checked good; `--dry-run` would sign it.
    WouldSign,
    /// Its manifest is signed already.
    AlreadySigned,
    /// Not an archive to sign (an upload that never completed).
    Skipped,
    /// Missing or damaged: not signed (exit 4).
    Damaged,
    /// Could not be checked or written (store, key): not signed (exit 1).
    Failed,
}

/// One archive at one destination (or, with no archive, the destination as a whole).
#[derive(Debug, Clone, Serialize)]
pub struct SignedCopy {
    /// The destination's name in the policy.
    pub destination: String,
    /// Its URL.
    pub url: String,
    /// The archive; empty for a finding about the destination.
    pub archive: String,
    /// What became of it.
    pub outcome: Outcome,
    /// What was checked, or why not.
    pub detail: String,
}

/// What `offsite sign` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SignReport {
    /// Destination by destination, archives in the inventory's order.
    pub copies: Vec<SignedCopy>,
    /// Whether nothing was written.
    pub dry_run: bool,
}

impl SignReport {
    /// How many copies came to `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.copies.iter().filter(|c| c.outcome == outcome).count()
    }
}

/// Checks and signs every unsigned archive at every destination.
pub async fn run(req: &SignRequest<'_>) -> SignReport {
    let mut report = SignReport {
        copies: Vec::new(),
        dry_run: req.dry_run,
    };
    for (loc, name) in req.locations.iter().zip(&req.names) {
        let of = |archive: &str, (outcome, detail): (Outcome, String)| SignedCopy {
            destination: name.clone(),
            url: loc.url().to_string(),
            archive: archive.to_string(),
            outcome,
            detail,
        };
        match scan(loc, &req.options).await {
            Ok(entries) => {
                for entry in &entries {
                    let found = sign_one(loc, entry, req).await;
                    report.copies.push(of(&entry.name, found));
                }
            }
            Err(e) => report.copies.push(of(
                "",
                (Outcome::Failed, format!("cannot list the destination: {e}")),
            )),
        }
    }
    report
}

/// One archive: read its manifest as stored, check the bytes, sign.
async fn sign_one(loc: &Opened, entry: &Entry, req: &SignRequest<'_>) -> (Outcome, String) {
    match committed(entry) {
        Ok(_) => {}
        Err((Verdict::Incomplete, why)) => return (Outcome::Skipped, why),
        Err((_, why)) => return (Outcome::Damaged, format!("{why}: not signed")),
    }
    let keys = ArchiveKeys::new(
        key_prefix(&loc.location),
        &entry.name,
        entry.manifest.as_ref().is_some_and(Manifest::encrypted),
    );
    let stored = match loc.store.get_bytes(&keys.manifest).await {
        Ok(b) => b,
        Err(e) => return (Outcome::Failed, format!("cannot read the manifest: {e}")),
    };
    let manifest = match ManifestFile::parse(&stored) {
        Ok(f) if f.signature.is_some() => {
            return (Outcome::AlreadySigned, "already signed".into());
        }
        Ok(f) => f.manifest,
        Err(e) => {
            return (
                Outcome::Damaged,
                format!("the manifest is unreadable: {e}: not signed"),
            )
        }
    };
    let checked = match check(loc, &manifest, req.identities.clone()).await {
        Ok(checked) => checked,
        Err(found) => return found,
    };
    if req.dry_run {
        return (Outcome::WouldSign, format!("{checked}; would sign"));
    }
    let bytes = match ManifestFile::sign_stored(&stored, req.key) {
        Ok(b) => b,
        Err(e) => return (Outcome::Failed, format!("cannot sign the manifest: {e}")),
    };
    match loc
        .store
        .put_bytes(&keys.manifest, bytes.into(), placement(loc, &manifest))
        .await
    {
        Ok(_) => (Outcome::Signed, format!("{checked}; signed")),
        Err(e) => (
            Outcome::Failed,
            format!("cannot write the signed manifest: {e}"),
        ),
    }
}

/// The manifest keeps the lock and hold it was committed with.
fn placement(loc: &Opened, manifest: &Manifest) -> PutOptions {
    let mut options = PutOptions::default();
    options.retention = match (loc.options.lock, manifest.retain_until) {
        (Some(mode), Some(until)) if until > Utc::now() => Some(Retention {
            mode,
            retain_until: until,
        }),
        _ => None,
    };
    options.legal_hold = loc.options.legal_hold;
    options
}

/// The stored bytes against the manifest (size and SHA-256), and with identities the
/// plaintext too: what was proven, or the outcome of a copy that is not good.
async fn check(
    loc: &Opened,
    manifest: &Manifest,
    identities: Option<Arc<Identities>>,
) -> Result<String, (Outcome, String)> {
    let object_key = offsite_storage::join_key(key_prefix(&loc.location), &manifest.stored.key);
    let damaged = |why: String| {
        (
            Outcome::Damaged,
            format!("stored bytes do not match the manifest: not signed ({why})"),
        )
    };
    if identities.is_none() {
        let d = object_digest(&*loc.store, &object_key)
            .await
            .map_err(|e| (Outcome::Failed, format!("cannot read {object_key}: {e}")))?;
        if d.size != manifest.stored.size || d.sha256 != manifest.stored.sha256 {
            return Err(damaged(format!(
                "{} bytes hashing to {}, the manifest records {} bytes hashing to {}",
                d.size, d.sha256, manifest.stored.size, manifest.stored.sha256
            )));
        }
        return Ok(format!(
            "{} stored bytes, SHA-256 matches the manifest",
            d.size
        ));
    }
    let copy = StoredCopy {
        loc,
        object_key: &object_key,
        version: None,
        manifest,
    };
    match read_copy(&copy, identities, std::io::sink(), None, true).await {
        Ok((proven, _)) => Ok(format!(
            "{} stored bytes, SHA-256 matches; decrypted {} bytes, SHA-256 matches",
            proven.stored.map(|d| d.size).unwrap_or_default(),
            proven.plaintext.size
        )),
        Err(ReadbackError::Corrupt(m)) => Err(damaged(m)),
        Err(e) => Err((Outcome::Failed, e.to_string())),
    }
}
