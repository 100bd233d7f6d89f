//! One archive: its keys on both sides, decided by both manifests, then copied as a unit: the
//! data, checked against the source manifest's SHA-256, then the destination's own manifest
//! through commit.

use chrono::Utc;
use offsite_policies::encryption::Recipient;
use offsite_policies::replication::{decide_archive, ArchiveAction, Decision, Held, Reason};
use offsite_storage::{PutOptions, Retention, StorageExt};

use super::{commit, copy, sha256_form, Copied, Ctx, Outcome, Route};
use super::{Annotations, ArchiveFacts, Finished, NotCommitted};
use super::{ArchiveKeys, Digest, Manifest, MANIFEST_SUFFIX};
use super::{ItemAction, ItemReport, Opened, Verified};
use crate::archive::ManifestFile;
use crate::engine::hashing::object_digest;
use offsite_policies::signing::SigningKey;
use std::sync::Arc;

/// One archive's keys carried out: copied, skipped, left out, or (only at the destination,
/// with `--delete`) held for the deletions.
pub(super) async fn archive(ctx: &Ctx<'_>, name: &str, keys: Vec<Decision>) -> Outcome {
    if keys.iter().all(|d| d.source.is_none()) {
        return only_at_destination(ctx, name, keys);
    }
    let manifest_key = format!("{name}{MANIFEST_SUFFIX}");
    let manifest = keys.iter().find(|d| d.key == manifest_key);
    let m = match manifest.and_then(|d| d.source.as_ref()) {
        None => None,
        Some(_) => match read_manifest_file(ctx.src, &manifest_key).await {
            Ok(f) => match untrusted(ctx, name, &f) {
                Some(why) => {
                    return Outcome::one(ItemReport::new(name, ItemAction::Untrusted, why))
                }
                None => Some(f.manifest),
            },
            Err(e) => {
                let why = format!("cannot read the source manifest: {e}");
                return Outcome::one(ItemReport::new(name, ItemAction::Failed, why));
            }
        },
    };
    let Some(m) = m else {
        let (_, why) = decide_archive(None, None, ctx.opts.checksum, None);
        return Outcome::one(ItemReport::new(name, ItemAction::NotReplicated, why));
    };
    let sides = survey(ctx, name, &m, &keys, manifest).await;
    let (action, why) = decide_archive(
        Some(&sides.source),
        sides.destination.as_ref(),
        ctx.opts.checksum,
        sides.proven,
    );
    Outcome::one(match action {
        ArchiveAction::NoManifest => ItemReport::new(name, ItemAction::NotReplicated, why),
        ArchiveAction::Skip => ItemReport::new(name, ItemAction::Skipped, why),
        ArchiveAction::Copy if ctx.opts.dry_run => {
            let inside = copy::goes_server_side(ctx.src, ctx.dst, &placement(ctx, &m).0);
            ItemReport::would_copy(name, why, m.stored.size, inside)
        }
        ArchiveAction::Copy => copy_archive(ctx, name, &m, &sides, why).await,
    })
}

/// An archive only at the destination: deleted with `--delete` (its manifest first, so
/// nothing is ever left looking complete), else kept.
fn only_at_destination(ctx: &Ctx<'_>, name: &str, mut keys: Vec<Decision>) -> Outcome {
    if !ctx.opts.delete {
        return Outcome::one(ItemReport::new(
            name,
            ItemAction::Skipped,
            Reason::OnlyAtDestination,
        ));
    }
    keys.sort_by_key(|d| !d.key.ends_with(MANIFEST_SUFFIX));
    Outcome::Delete(keys)
}

/// An archive at both ends, as the source manifest places it.
struct Sides {
    /// Its keys (the same at both ends).
    keys: ArchiveKeys,
    /// The source's data object's ETag, when listed with one.
    source_etag: Option<String>,
    /// The source's copy.
    source: Held,
    /// The destination's copy, when it has a readable manifest.
    destination: Option<Held>,
    /// With `--checksum`: whether the destination's data is what its manifest says.
    proven: Option<bool>,
}

/// Both ends' copies of the archive the source manifest `m` describes.
async fn survey(
    ctx: &Ctx<'_>,
    name: &str,
    m: &Manifest,
    keys: &[Decision],
    manifest: Option<&Decision>,
) -> Sides {
    let prefix = name.rsplit_once('/').map_or("", |(p, _)| p);
    let here = ArchiveKeys::new(prefix, &m.archive, m.encrypted());
    let data = keys.iter().find(|d| d.key == here.object);
    let src_data_size = match data.and_then(|d| d.source.as_ref()) {
        Some(i) => Some(i.size),
        // An unencrypted archive's data has no suffix: not in this group.
        None => size_at(ctx.src, &here.object).await,
    };
    let dst_manifest = match manifest.and_then(|d| d.destination.as_ref()) {
        // A manifest there that cannot be read is replaced.
        Some(_) => read_manifest(ctx.dst, &format!("{name}{MANIFEST_SUFFIX}"))
            .await
            .ok(),
        None => None,
    };
    let dst_data_size = match data {
        Some(d) => d.destination.as_ref().map(|i| i.size),
        None => size_at(ctx.dst, &here.object).await,
    };
    let proven = match (&dst_manifest, ctx.opts.checksum) {
        (Some(dm), true) if dst_data_size == Some(m.stored.size) => {
            prove(ctx, &here.object, dm).await
        }
        _ => None,
    };
    Sides {
        source_etag: data
            .and_then(|d| d.source.as_ref())
            .and_then(|i| i.etag.clone()),
        source: held(m, src_data_size),
        destination: dst_manifest.as_ref().map(|dm| held(dm, dst_data_size)),
        proven,
        keys: here,
    }
}

/// An object's size by a HEAD, when it is there.
async fn size_at(at: &Opened, key: &str) -> Option<u64> {
    at.store.head(key).await.ok().map(|h| h.size)
}

async fn read_manifest(at: &Opened, key: &str) -> Result<Manifest, String> {
    read_manifest_file(at, key).await.map(|f| f.manifest)
}

async fn read_manifest_file(at: &Opened, key: &str) -> Result<ManifestFile, String> {
    let bytes = at.store.get_bytes(key).await.map_err(|e| e.to_string())?;
    ManifestFile::parse(&bytes)
}

/// Why the source's manifest of `name` (its key relative to the prefix) is not to be copied,
/// where keys are trusted.
fn untrusted(ctx: &Ctx<'_>, name: &str, f: &ManifestFile) -> Option<String> {
    let base = name.rsplit('/').next().unwrap_or(name);
    let verdict = ctx
        .signing
        .signers
        .judge(base, &f.manifest, f.signature.as_ref());
    verdict
        .untrusted()
        .map(|why| format!("the source's manifest is untrusted ({why}): not replicated"))
}

fn held(m: &Manifest, data_size: Option<u64>) -> Held {
    Held {
        plaintext_sha256: m.plaintext.sha256.clone(),
        stored_sha256: m.stored.sha256.clone(),
        stored_size: m.stored.size,
        data_size,
    }
}

/// Whether the destination's data is what its manifest says: the provider's checksum where it
/// keeps one in a form the manifest has, else the bytes read and hashed. `None` when it could
/// not be read.
async fn prove(ctx: &Ctx<'_>, key: &str, dm: &Manifest) -> Option<bool> {
    let head = ctx.dst.store.head(key).await.ok()?;
    if let (Some(have), Some(rec)) = (&head.checksum, &dm.stored.provider_checksum) {
        if std::mem::discriminant(have) == std::mem::discriminant(rec) {
            return Some(have == rec);
        }
    }
    if let Some(h) = sha256_form(head.checksum.as_ref()) {
        return Some(h.eq_ignore_ascii_case(&dm.stored.sha256));
    }
    let d = object_digest(&*ctx.dst.store, key).await.ok()?;
    let (n, sha) = (d.size, d.sha256);
    Some(n == dm.stored.size && sha.eq_ignore_ascii_case(&dm.stored.sha256))
}

/// Copies an archive's data, checks it against the source manifest, and commits the
/// destination's own manifest.
async fn copy_archive(
    ctx: &Ctx<'_>,
    name: &str,
    m: &Manifest,
    sides: &Sides,
    why: Reason,
) -> ItemReport {
    let (options, retention) = placement(ctx, m);
    let fingerprint = sides
        .source_etag
        .clone()
        .unwrap_or_else(|| m.stored.sha256.clone());
    let object = &sides.keys.object;
    let copied = match copy::copy(
        ctx.src,
        ctx.dst,
        object,
        m.stored.size,
        &fingerprint,
        options,
        &ctx.shared,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            let why = format!("the data did not copy: {e}");
            return ItemReport::new(name, ItemAction::Failed, why);
        }
    };
    let verified = match check_sent(ctx, m, object, &copied).await {
        Ok(v) => v,
        Err(why) => return ItemReport::new(name, ItemAction::VerifyFailed, why),
    };
    match commit_copy(ctx, m, &sides.keys, &copied, retention).await {
        Settled::Stored => ItemReport::copied(name, why, m.stored.size, &copied, verified),
        Settled::NotIntact(msg) => ItemReport::new(name, ItemAction::VerifyFailed, msg),
        Settled::Failed(msg) => ItemReport::new(name, ItemAction::Failed, msg),
    }
}

/// How the copy is placed at the destination: its storage class, and the lock and hold its
/// options give an archive created when `m` says.
fn placement(ctx: &Ctx<'_>, m: &Manifest) -> (PutOptions, Option<Retention>) {
    let retention = ctx.dst.options.retention_at(m.created, Utc::now());
    let mut options = PutOptions::default();
    options.storage_class = ctx.dst.options.storage_class.clone();
    options.retention = retention;
    options.legal_hold = ctx.dst.options.legal_hold;
    (options, retention)
}

/// Whether the bytes that went are the ones the source manifest names (the SHA-256 of a
/// streamed copy, read back when it was not hashed on its way), and how the copy is checked.
/// A copy that is not is removed: `Err` says so.
async fn check_sent(
    ctx: &Ctx<'_>,
    m: &Manifest,
    object: &str,
    copied: &Copied,
) -> Result<Verified, String> {
    let sent = match &copied.sha256 {
        Some(h) => Some(h.clone()),
        None if copied.route == Route::Streamed => object_digest(&*ctx.dst.store, object)
            .await
            .ok()
            .map(|d| d.sha256),
        None => None,
    };
    match sent {
        Some(h) if !h.eq_ignore_ascii_case(&m.stored.sha256) => {
            let _ = ctx.dst.store.delete(object).await;
            Err(format!(
                "the bytes copied have SHA-256 {h}, but the source manifest records {}; the copy was removed (verify the source: offsite verify --deep)",
                m.stored.sha256
            ))
        }
        Some(_) => Ok(Verified::Sha256),
        None if copied.receipt.checksum.is_some() => Ok(Verified::ProviderChecksum),
        None => Ok(Verified::Size),
    }
}

/// How committing the destination's manifest went.
enum Settled {
    /// The manifest is written: the copy counts.
    Stored,
    /// The provider's receipt does not match what the source manifest records: the copy was
    /// removed (or does not count), with commit's message.
    NotIntact(String),
    /// The manifest could not be written, with commit's message.
    Failed(String),
}

/// Writes the destination's own manifest through commit, which checks the copy's receipt
/// against the source manifest's digests first.
async fn commit_copy(
    ctx: &Ctx<'_>,
    m: &Manifest,
    keys: &ArchiveKeys,
    copied: &Copied,
    retention: Option<Retention>,
) -> Settled {
    // Server-side: what the provider reports of the copy against the source's forms.
    let mut computed = copied.computed.clone();
    computed.extend(m.stored.provider_checksum.clone());
    let facts = facts(m, ctx.signing.key.as_ref());
    let done = Finished {
        dest: ctx.dst,
        keys,
        receipt: copied.receipt.clone(),
        computed,
        retention,
        create_only: false,
        overwrote: false,
        took: None,
    };
    match commit::commit(&facts, done).await {
        Ok(_) => Settled::Stored,
        Err(e @ NotCommitted::NotIntact { .. }) => Settled::NotIntact(e.to_string()),
        Err(e) => Settled::Failed(e.to_string()),
    }
}

/// What the destination's manifest keeps of the source's.
fn facts(m: &Manifest, key: Option<&Arc<SigningKey>>) -> ArchiveFacts {
    ArchiveFacts {
        name: m.archive.clone(),
        created: m.created,
        created_from: m.created_from,
        recipients: m
            .encryption
            .iter()
            .flat_map(|e| e.recipients.iter())
            .filter_map(|r| Recipient::parse(r, "the source manifest").ok())
            .collect(),
        plaintext: m.plaintext.clone(),
        stored: Digest {
            size: m.stored.size,
            sha256: m.stored.sha256.clone(),
        },
        pushed: Utc::now(),
        annotations: Annotations {
            policy: m.policy.clone(),
            metadata: m.metadata.clone(),
            // Signed by this host, after the source's signature was checked (where keys are
            // trusted).
            signing: key.cloned(),
        },
    }
}
