//! A plain object (one that belongs to no archive): compared, copied as it is, and checked
//! against what the source said of it.

use offsite_policies::replication::{compare, Action, Decision, Item, Reason};
use offsite_storage::PutOptions;

use super::{check_receipt, copy, sha256_form, Copied, Ctx, Digest, Outcome};
use super::{ItemAction, ItemReport, Verified};

/// One plain object's decision carried out (a delete waits for the guards).
pub(super) async fn object(ctx: &Ctx<'_>, d: Decision) -> Outcome {
    match d.action {
        Action::Skip => Outcome::one(ItemReport::new(&d.key, ItemAction::Skipped, d.reason)),
        Action::Delete => Outcome::Delete(vec![d]),
        Action::Copy => Outcome::one(copy_object(ctx, d).await),
    }
}

/// Copies one object unless `--checksum` finds it the same, and checks the copy; a copy that
/// does not match is removed.
async fn copy_object(ctx: &Ctx<'_>, d: Decision) -> ItemReport {
    let (s, reason) = match recheck(ctx, &d).await {
        Ok(go) => go,
        Err(skipped) => return skipped,
    };
    let mut options = PutOptions::default();
    options.storage_class = ctx.dst.options.storage_class.clone();
    if ctx.opts.dry_run {
        let inside = copy::goes_server_side(ctx.src, ctx.dst, &options);
        return ItemReport::would_copy(&d.key, reason, s.size, inside);
    }
    let fingerprint = s.etag.clone().unwrap_or_default();
    let copied = match copy::copy(
        ctx.src,
        ctx.dst,
        &s.key,
        s.size,
        &fingerprint,
        options,
        &ctx.shared,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return ItemReport::new(&d.key, ItemAction::Failed, e.to_string()),
    };
    match check_plain(&s, &copied) {
        Ok(how) => ItemReport::copied(&d.key, reason, s.size, &copied, how),
        Err(why) => {
            let _ = ctx.dst.store.delete(&s.key).await;
            ItemReport::new(
                &d.key,
                ItemAction::VerifyFailed,
                format!("{why}; the copy was removed"),
            )
        }
    }
}

/// The source's item and why it goes; with `--checksum` and a copy at the destination, the
/// providers' SHA-256s first (one HEAD per side), which may find it the same: `Err` is then
/// the skipped item.
async fn recheck(ctx: &Ctx<'_>, d: &Decision) -> Result<(Item, Reason), ItemReport> {
    let mut s = d.source.clone().expect("a copy has a source");
    let t = match &d.destination {
        Some(t) if ctx.opts.checksum => t,
        _ => return Ok((s, d.reason)),
    };
    let mut t = t.clone();
    let (a, b) = futures::join!(ctx.src.store.head(&s.key), ctx.dst.store.head(&t.key));
    s.sha256 = a.ok().and_then(|m| sha256_form(m.checksum.as_ref()));
    t.sha256 = b.ok().and_then(|m| sha256_form(m.checksum.as_ref()));
    let options = offsite_policies::replication::Options {
        delete: ctx.opts.delete,
        checksum: true,
    };
    match compare(&s, &t, options) {
        (Action::Skip, why) => Err(ItemReport::new(&d.key, ItemAction::Skipped, why)),
        (_, why) => Ok((s, why)),
    }
}

/// Checks a plain object's copy against what the source said of it: the SHA-256 of the bytes
/// streamed, else (server-side) the provider's checksum of the copy or its ETag, else its size.
/// `Err` is why it does not match.
fn check_plain(s: &Item, c: &Copied) -> Result<Verified, String> {
    if c.receipt.size != s.size {
        return Err(format!(
            "the copy has {} bytes, the source {}",
            c.receipt.size, s.size
        ));
    }
    if let Some(sent) = &c.sha256 {
        return check_streamed(s, c, sent);
    }
    // Server-side: the provider's checksum of the copy, else its ETag, against the source's.
    let got = sha256_form(c.receipt.checksum.as_ref());
    match (&got, &s.sha256) {
        (Some(a), Some(b)) if a == b => return Ok(Verified::Sha256),
        (Some(a), Some(b)) => {
            return Err(format!("the copy has SHA-256 {a}, the source {b}"));
        }
        _ => {}
    }
    let etag = c.receipt.etag.as_deref().map(|e| e.trim_matches('"'));
    match (etag, s.etag.as_deref().map(|e| e.trim_matches('"'))) {
        (Some(a), Some(b)) if a == b => Ok(Verified::Etag),
        (Some(a), Some(b)) if !a.contains('-') => {
            Err(format!("the copy has ETag {a}, the source {b}"))
        }
        _ => Ok(Verified::Size),
    }
}

/// A streamed copy: the SHA-256 of the bytes read against the source's, and the
/// destination's receipt against the bytes sent.
fn check_streamed(s: &Item, c: &Copied, sent: &str) -> Result<Verified, String> {
    if let Some(want) = &s.sha256 {
        if !sent.eq_ignore_ascii_case(want) {
            return Err(format!(
                "the bytes read have SHA-256 {sent}, the source reports {want}"
            ));
        }
    }
    let digest = Digest {
        size: s.size,
        sha256: sent.to_string(),
    };
    match check_receipt(&c.receipt, &digest, &c.computed) {
        Ok(None) => Ok(Verified::Sha256),
        Ok(Some(why)) => Err(why),
        Err(_) => Ok(Verified::Size),
    }
}
