//! Committing a copy: check what a provider answered against what offsite computed from the
//! bytes it sent, and write the manifest that makes the copy count. Push commits each
//! destination's copy through it, and replication each copy it streams.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use offsite_policies::encryption::Recipient;
use offsite_policies::signing::SigningKey;
use offsite_storage::{Checksum, ErrorKind, PutOptions, Receipt, Retention, StorageExt};

use crate::archive::{
    tool_version, ArchiveKeys, CreatedFrom, Digest, Encryption, Manifest, ManifestFile, PushTiming,
    Stored, MANIFEST_FORMAT,
};
use crate::registry::Opened;

/// What every manifest of one archive shares.
pub struct ArchiveFacts {
    /// The archive's name.
    pub name: String,
    /// Its creation time.
    pub created: DateTime<Utc>,
    /// Where that came from.
    pub created_from: CreatedFrom,
    /// Who can decrypt it; empty when stored unencrypted.
    pub recipients: Vec<Recipient>,
    /// The plaintext's size and SHA-256.
    pub plaintext: Digest,
    /// The stored bytes' size and SHA-256.
    pub stored: Digest,
    /// When the copy is committed, by the writer's clock (an input: simulated in tests).
    pub pushed: DateTime<Utc>,
    /// The policy's name and the job's metadata, recorded in every manifest, and the signing
    /// key, if any.
    pub annotations: Annotations,
}

/// What a push records in its manifests beside the archive's own facts, and the key that
/// signs them.
#[derive(Debug, Clone, Default)]
pub struct Annotations {
    /// The policy that placed the archive (`push --policy`).
    pub policy: Option<String>,
    /// The backup job's `metadata.json` (`push --metadata`).
    pub metadata: Option<serde_json::Value>,
    /// This host's signing key (`push --sign-with`, the policy's `[signing] key-file`): each
    /// manifest is then written signed, as a format-2 envelope ([`ManifestFile`]). `None`
    /// writes the plain format-1 manifest.
    pub signing: Option<Arc<SigningKey>>,
}

/// One copy to commit: where, what the provider said, and what was computed locally.
pub struct Finished<'a> {
    /// The destination.
    pub dest: &'a Opened,
    /// The archive's keys there.
    pub keys: &'a ArchiveKeys,
    /// The provider's receipt for the data object.
    pub receipt: Receipt,
    /// Checksums offsite computed from the bytes it sent, in the provider's forms (composite
    /// over the same part boundaries, CRC32C, MD5); the whole SHA-256 is `facts.stored`.
    pub computed: Vec<Checksum>,
    /// The lock on the data object, which the manifest gets too.
    pub retention: Option<Retention>,
    /// Write the manifest only where none is (a new archive): of two pushes of one name, one
    /// commits and the other learns it lost. `false` replaces (`--overwrite`, a repair,
    /// replication).
    pub create_only: bool,
    /// Whether the data was written over an object that was there (`--overwrite`, an upload
    /// that never committed): a create-only commit then reads the data back even where the
    /// receipt has no ETag or checksum to compare (a local disk).
    pub overwrote: bool,
    /// How long the push took to get the data object stored here, recorded in the manifest
    /// with its throughput; `None` for a copy that is not a push's (a replica).
    pub took: Option<std::time::Duration>,
}

/// Why a receipt does not match the spool, or `None` when every form the provider reported
/// is what offsite computed. A form offsite did not compute is not trusted: `Err` names it, and
/// the copy is committed without a provider checksum (quick verify then checks the size, and
/// only deep verify proves the bytes).
pub fn check_receipt(
    receipt: &Receipt,
    stored: &Digest,
    computed: &[Checksum],
) -> Result<Option<String>, String> {
    if receipt.size != stored.size {
        return Ok(Some(format!(
            "stored {} bytes, but the spool has {}",
            receipt.size, stored.size
        )));
    }
    let Some(reported) = &receipt.checksum else {
        return Ok(None);
    };
    let ours = std::iter::once(Checksum::Sha256(stored.sha256.clone()))
        .chain(computed.iter().cloned())
        .find(|c| same_form(c, reported));
    match ours {
        Some(c) if equal(&c, reported) => Ok(None),
        Some(c) => Ok(Some(format!(
            "the store reports {reported}, offsite computed {c}"
        ))),
        None => Err(format!(
            "the store reports {reported}, a form offsite did not compute"
        )),
    }
}

fn same_form(a: &Checksum, b: &Checksum) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

fn equal(a: &Checksum, b: &Checksum) -> bool {
    match (a, b) {
        (Checksum::Sha256(x), Checksum::Sha256(y)) => x.eq_ignore_ascii_case(y),
        (
            Checksum::Sha256Composite { hex: x, parts: p },
            Checksum::Sha256Composite { hex: y, parts: q },
        ) => x.eq_ignore_ascii_case(y) && p == q,
        (x, y) => x == y,
    }
}

/// A committed copy: its manifest is written.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The provider's checksum, recorded in the manifest when it matched what offsite computed.
    pub provider_checksum: Option<Checksum>,
    /// The copy's retention lock, when it has one.
    pub retain_until: Option<DateTime<Utc>>,
    /// How long the push took to store it, as its manifest records.
    pub push: Option<PushTiming>,
}

/// Why a copy was not committed. The `Display` text is the message a report shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCommitted {
    /// The receipt does not match the bytes sent: the object got no manifest, and was removed
    /// where the store allows (`removed`).
    NotIntact {
        /// What differs.
        why: String,
        /// Whether the object was removed.
        removed: bool,
    },
    /// The data is stored, but its manifest could not be written: the copy does not count.
    ManifestNotWritten(String),
    /// Another push committed a manifest under this name first (a create-only commit): its
    /// manifest, when it could be read.
    Contested(Box<Manifest>),
    /// The manifest was written, but the data object under it is no longer the one sent
    /// (another push wrote over it meanwhile, on a store that does not honour create-only
    /// writes): the manifest was taken back, and the copy does not count.
    Replaced(String),
}

impl std::fmt::Display for NotCommitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotCommitted::NotIntact { why, removed } => {
                let removed = if *removed {
                    "it was removed"
                } else {
                    "it has no manifest, so it does not count"
                };
                write!(f, "the upload did not arrive intact ({why}); {removed}; push again")
            }
            NotCommitted::ManifestNotWritten(e) => write!(
                f,
                "the data was stored but its manifest could not be written, so the copy does not count: {e}"
            ),
            NotCommitted::Contested(m) => write!(
                f,
                "another push stored an archive under {} here first (plaintext SHA-256 {})",
                m.archive, m.plaintext.sha256
            ),
            NotCommitted::Replaced(why) => write!(
                f,
                "another push wrote over the data while this one committed ({why}); this push's manifest was taken back, so nothing of it counts here: push again"
            ),
        }
    }
}

/// Checks `done`'s receipt and writes its manifest. A copy that did not arrive intact is
/// removed where the store allows, and never gets a manifest.
pub async fn commit(facts: &ArchiveFacts, done: Finished<'_>) -> Result<Committed, NotCommitted> {
    let Finished {
        dest,
        keys,
        receipt,
        computed,
        retention,
        create_only,
        overwrote,
        took,
    } = done;
    let provider_checksum = match check_receipt(&receipt, &facts.stored, &computed) {
        Ok(None) => receipt.checksum.clone(),
        Ok(Some(why)) => {
            // Never leave an object that could be mistaken for this archive: it has no
            // manifest, and it is removed too where the store allows.
            let removed = dest.store.delete(&keys.object).await.is_ok();
            return Err(NotCommitted::NotIntact { why, removed });
        }
        Err(why) => {
            tracing::warn!(url = %dest.url(), "{why}; recording no provider checksum for this copy");
            None
        }
    };
    let mut manifest = manifest(
        facts,
        keys,
        dest,
        &receipt,
        provider_checksum.clone(),
        retention,
    );
    manifest.push = took.map(|t| PushTiming::of(facts.stored.size, t));
    let bytes = match &facts.annotations.signing {
        Some(key) => ManifestFile::signed_bytes(&manifest, key),
        None => ManifestFile::unsigned_bytes(&manifest),
    };
    // The manifest carries the same lock as its data: an immutable copy must keep counting.
    let mut options = PutOptions::default();
    options.retention = retention;
    options.legal_hold = dest.options.legal_hold;
    options.if_not_exists = create_only;
    match dest
        .store
        .put_bytes(&keys.manifest, bytes.into(), options)
        .await
    {
        Err(e) if e.kind() == ErrorKind::AlreadyExists && create_only => {
            return Err(contested(dest, keys).await)
        }
        Ok(_) if create_only => {
            if let Some(why) =
                replaced(dest, keys, &receipt, overwrote.then_some(&facts.stored)).await
            {
                // Ours is the manifest just written: taken back, so nothing looks complete.
                let _ = dest.store.delete(&keys.manifest).await;
                return Err(NotCommitted::Replaced(why));
            }
            tracing::info!(url = %dest.url(), manifest = %keys.manifest, size = facts.stored.size, "committed: the data is stored and its manifest written last, create-only");
            Ok(Committed {
                provider_checksum,
                retain_until: manifest.retain_until,
                push: manifest.push,
            })
        }
        Ok(_) => {
            tracing::info!(url = %dest.url(), manifest = %keys.manifest, size = facts.stored.size, "committed: the data is stored and its manifest written last");
            Ok(Committed {
                provider_checksum,
                retain_until: manifest.retain_until,
                push: manifest.push,
            })
        }
        Err(e) => Err(NotCommitted::ManifestNotWritten(e.to_string())),
    }
}

/// The manifest of one committed copy.
fn manifest(
    facts: &ArchiveFacts,
    keys: &ArchiveKeys,
    dest: &Opened,
    receipt: &Receipt,
    provider_checksum: Option<Checksum>,
    retention: Option<Retention>,
) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        archive: facts.name.clone(),
        created: facts.created,
        created_from: facts.created_from,
        plaintext: facts.plaintext.clone(),
        stored: Stored {
            key: keys
                .object
                .rsplit('/')
                .next()
                .unwrap_or(&keys.object)
                .to_string(),
            size: facts.stored.size,
            sha256: facts.stored.sha256.clone(),
            provider_checksum,
            storage_class: dest.options.storage_class.clone(),
            etag: receipt.etag.clone(),
        },
        encryption: (!facts.recipients.is_empty()).then(|| Encryption {
            scheme: "age".into(),
            recipients: facts.recipients.iter().map(|r| r.to_string()).collect(),
        }),
        policy: facts.annotations.policy.clone(),
        retain_until: retention.map(|r| r.retain_until),
        metadata: facts.annotations.metadata.clone(),
        pushed: facts.pushed,
        push: None,
        tool: tool_version(),
    }
}

/// Why a create-only manifest write found one there: the manifest another push committed.
async fn contested(dest: &Opened, keys: &ArchiveKeys) -> NotCommitted {
    match crate::engine::inventory::read_manifest(dest.store.as_ref(), &keys.manifest).await {
        Ok(Some(Ok(f))) => NotCommitted::Contested(Box::new(f.manifest)),
        _ => NotCommitted::ManifestNotWritten(
            "another push wrote a manifest under this name first, and it cannot be read".into(),
        ),
    }
}

/// After a create-only commit: whether the data object under the manifest is still the one
/// this push sent (its size, and its ETag or checksum where the receipt has one; with
/// `hashed`, for data written over an object that was there, its SHA-256 where there is
/// neither). A store that honours create-only writes never fails this; data written
/// unconditionally (an overwrite) or a store that does not honour them can let a concurrent
/// push write over the data between its upload and its commit.
async fn replaced(
    dest: &Opened,
    keys: &ArchiveKeys,
    receipt: &Receipt,
    hashed: Option<&Digest>,
) -> Option<String> {
    let head = match dest.store.head(&keys.object).await {
        Ok(h) => h,
        Err(e) => return Some(format!("the data object cannot be read back: {e}")),
    };
    if head.size != receipt.size {
        return Some(format!(
            "it is {} bytes, this push sent {}",
            head.size, receipt.size
        ));
    }
    match (&head.etag, &receipt.etag) {
        (Some(a), Some(b)) if a.trim_matches('"') != b.trim_matches('"') => {
            return Some(format!("its ETag is {a}, this push's was {b}"))
        }
        _ => {}
    }
    match (&head.checksum, &receipt.checksum) {
        (Some(a), Some(b)) if same_form(a, b) && !equal(a, b) => {
            return Some(format!("its checksum is {a}, this push's was {b}"))
        }
        (Some(_), Some(_)) => return None,
        _ => {}
    }
    if head.etag.is_some() && receipt.etag.is_some() {
        return None;
    }
    let want = hashed?;
    match crate::engine::hashing::object_digest(dest.store.as_ref(), &keys.object).await {
        Ok(d) if d.sha256 == want.sha256 => None,
        Ok(d) => Some(format!(
            "its SHA-256 is {}, this push's was {}",
            d.sha256, want.sha256
        )),
        Err(e) => Some(format!("the data object cannot be read back: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Digest {
        Digest {
            size: 3,
            sha256: "ab".repeat(32),
        }
    }

    fn receipt(c: Option<Checksum>) -> Receipt {
        Receipt::new("k", 3, c)
    }

    #[test]
    fn every_reported_form_is_compared_with_ours() {
        let composite = Checksum::Sha256Composite {
            hex: "cd".repeat(32),
            parts: 2,
        };
        let ours = [composite.clone()];
        assert_eq!(check_receipt(&receipt(None), &stored(), &ours), Ok(None));
        assert_eq!(
            check_receipt(
                &receipt(Some(Checksum::Sha256("AB".repeat(32)))),
                &stored(),
                &ours
            ),
            Ok(None)
        );
        assert_eq!(
            check_receipt(&receipt(Some(composite)), &stored(), &ours),
            Ok(None)
        );
        let wrong_parts = Checksum::Sha256Composite {
            hex: "cd".repeat(32),
            parts: 3,
        };
        assert!(matches!(
            check_receipt(&receipt(Some(wrong_parts)), &stored(), &ours),
            Ok(Some(_))
        ));
        let wrong = Checksum::Sha256Composite {
            hex: "ee".repeat(32),
            parts: 2,
        };
        assert!(matches!(
            check_receipt(&receipt(Some(wrong)), &stored(), &ours),
            Ok(Some(_))
        ));
        assert!(matches!(
            check_receipt(
                &receipt(Some(Checksum::Sha256("00".repeat(32)))),
                &stored(),
                &ours
            ),
            Ok(Some(_))
        ));
    }

    #[test]
    fn a_composite_we_did_not_compute_and_a_wrong_size_are_not_trusted() {
        let c = Checksum::Sha256Composite {
            hex: "cd".repeat(32),
            parts: 2,
        };
        assert!(check_receipt(&receipt(Some(c)), &stored(), &[]).is_err());
        assert!(check_receipt(
            &receipt(Some(Checksum::Crc64Nvme("x".into()))),
            &stored(),
            &[]
        )
        .is_err());
        let mut short = receipt(None);
        short.size = 2;
        assert!(matches!(check_receipt(&short, &stored(), &[]), Ok(Some(_))));
    }

    #[test]
    fn crc32c_and_md5_are_compared() {
        let ours = [
            Checksum::Crc32c("AAAA".into()),
            Checksum::Md5("BBBB".into()),
        ];
        assert_eq!(
            check_receipt(
                &receipt(Some(Checksum::Md5("BBBB".into()))),
                &stored(),
                &ours
            ),
            Ok(None)
        );
        assert!(matches!(
            check_receipt(
                &receipt(Some(Checksum::Crc32c("AAAB".into()))),
                &stored(),
                &ours
            ),
            Ok(Some(_))
        ));
    }
}
