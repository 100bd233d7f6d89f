//! `offsite replicate`: make one or more destinations hold what a source holds (see
//! `engine::replicate`), from URLs or a policy's `[replication]` section.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use offsite_policies::policy::Policy;

use crate::engine::replicate::{self, ItemAction, ItemReport, Options, Summary};
use crate::error::usage;
use crate::metrics::{Metrics, MetricsArgs};
use crate::registry::Opened;
use crate::report::{exit, human_bytes, outln, Output};

/// Arguments of `offsite replicate`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 everything copied and verified; 1 some items failed or a \
listing failed; 2 usage; 4 a copy failed verification (removed, never counted), or a source \
archive is untrusted (not copied); 5 deletions refused by a guard (nothing deleted). 4 wins \
over 1, and 1 over 5."
)]
pub struct ReplicateArgs {
    /// The source location, then one or more destinations (or --policy).
    #[arg(value_name = "URL")]
    urls: Vec<String>,
    /// Replicate a policy's `[replication]`: from its `from` destination to each of its `to`,
    /// under its prefix. Without URLs, OFFSITE_POLICY names it.
    #[arg(long, value_name = "FILE")]
    policy: Option<std::path::PathBuf>,
    /// A sub-prefix under every URL (with URLs only).
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Delete at each destination what the source does not have (behind the guards: never
    /// when the source lists nothing or a listing fails, never more than --max-delete, never
    /// an object under a lock or legal hold).
    #[arg(long)]
    delete: bool,
    /// With --delete: delete nothing when more than N keys would go.
    #[arg(long, value_name = "N", requires = "delete")]
    max_delete: Option<u64>,
    /// Compare SHA-256s instead of trusting size (and ETag): one HEAD per object on each
    /// side, and for an archive the destination's data checked against its manifest (read and
    /// hashed where the store keeps no checksum).
    #[arg(long)]
    checksum: bool,
    /// Show what would be copied and deleted, and change nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Objects and archives copied at once.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=512))]
    jobs: u16,
    /// Limit the bytes streamed through this process per second across all copies (512K,
    /// 50M, 1G: powers of 1024); server-side copies do not pass through it.
    #[arg(long, value_name = "RATE", value_parser = replicate::copy::parse_bwlimit)]
    bwlimit: Option<u64>,
    /// Replicate only shard I of N (I from 0, as a Kubernetes Indexed Job's
    /// JOB_COMPLETION_INDEX): keys are split by archive, so n runs together cover each once.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(u32, u32)>,
    /// Sign each replica's manifest with this SSH signing key (`offsite keygen --signing`;
    /// mode 0600). With --policy, the policy's `[signing] key-file` says it instead. Where
    /// keys are trusted, a key is required and must be one of them.
    #[arg(long, value_name = "FILE", env = "OFFSITE_SIGNING_KEY_FILE")]
    sign_with: Option<std::path::PathBuf>,
    #[command(flatten)]
    trust: super::TrustArgs,
    #[command(flatten)]
    pub(super) metrics: MetricsArgs,
}

fn parse_shard(s: &str) -> std::result::Result<(u32, u32), String> {
    let bad = || format!("{s:?} is no shard: write I/N with 0 <= I < N, like 3/8");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// A location as the user named it (a policy's destination name, else its URL) and its URL.
#[derive(Debug, Clone)]
struct Named {
    name: String,
    url: String,
}

impl Named {
    fn url(url: &str) -> Named {
        Named {
            name: url.to_string(),
            url: url.to_string(),
        }
    }
}

/// What `offsite replicate` was asked: from where to where, under which prefix, for which
/// policy (`-` for URLs), and how.
struct Request {
    from: Named,
    to: Vec<Named>,
    prefix: Option<String>,
    policy: String,
    options: Options,
    signing: replicate::Signing,
}

impl Request {
    /// The request `args` make, refused as a usage error where they name no source or
    /// destination.
    fn new(args: &ReplicateArgs) -> Result<Request> {
        let options = Options {
            delete: args.delete,
            max_delete: args.max_delete,
            checksum: args.checksum,
            dry_run: args.dry_run,
            jobs: usize::from(args.jobs),
            shard: args.shard,
            bwlimit: args.bwlimit,
        };
        let chosen = crate::policy::resolve(
            args.policy.as_deref(),
            !args.urls.is_empty(),
            args.prefix.is_some(),
        )?;
        if let Some(policy) = chosen {
            if let Some(f) = &args.sign_with {
                return Err(usage(format!(
                    "--sign-with {} (or OFFSITE_SIGNING_KEY_FILE) cannot be combined with a policy: write key-file under [signing] in the policy instead",
                    f.display()
                )));
            }
            let signing = signing(
                crate::policy::signing_key(&policy)?,
                args.trust.signers(Some(&policy))?,
                args.dry_run,
            )?;
            return Request::from_policy(&policy, options, signing);
        }
        let key = args
            .sign_with
            .as_deref()
            .map(crate::signing::read_signing_key)
            .transpose()?;
        let signing = signing(key, args.trust.signers(None)?, args.dry_run)?;
        match args.urls.as_slice() {
            [] => Err(usage(
                "no source: give SOURCE DESTINATION..., or --policy FILE (or set OFFSITE_POLICY)",
            )),
            [_] => Err(usage("no destination: give SOURCE DESTINATION...")),
            [src, dsts @ ..] => Ok(Request {
                from: Named::url(src),
                to: dsts.iter().map(|d| Named::url(d)).collect(),
                prefix: args.prefix.clone(),
                policy: "-".into(),
                options,
                signing,
            }),
        }
    }

    /// A policy's `[replication]`: its `from` destination to each of its `to`, under its
    /// prefix.
    fn from_policy(
        policy: &Policy,
        options: Options,
        signing: replicate::Signing,
    ) -> Result<Request> {
        crate::policy::need_archives(policy, "replicate")?;
        let Some(r) = &policy.replication else {
            return Err(usage(format!(
                "policy `{}` has no [replication] section: add one with from = \"<destination>\" and to = [\"<replica>\", ...]",
                policy.name
            )));
        };
        let all = crate::policy::locations(policy, true);
        let find = |n: &str| {
            all.iter()
                .find(|(name, _)| name == n)
                .map(|(name, url)| Named {
                    name: name.clone(),
                    url: url.clone(),
                })
        };
        Ok(Request {
            from: find(&r.from).expect("validated: from names a destination"),
            to: r.to.iter().filter_map(|t| find(t)).collect(),
            prefix: policy.prefix.clone(),
            policy: policy.name.clone(),
            options,
            signing,
        })
    }

    /// The source's URL, then each destination's; a usage error for a memory:// store, which
    /// no other run could see.
    fn urls(&self) -> Result<Vec<String>> {
        let urls: Vec<String> = std::iter::once(&self.from)
            .chain(&self.to)
            .map(|n| n.url.clone())
            .collect();
        if let Some(u) = urls.iter().find(|u| u.starts_with("memory://")) {
            return Err(usage(format!(
                "{u}: a memory:// store lives inside one process; replicate between stores that outlast it"
            )));
        }
        Ok(urls)
    }
}

pub(super) async fn run(args: &ReplicateArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let req = Request::new(args)?;
    m.set_policy(&req.policy);
    let opened = crate::registry::open_all(&req.urls()?, req.prefix.as_deref()).await?;
    let (src, dests) = opened.split_first().expect("a source");
    for (d, to) in dests.iter().zip(&req.to) {
        if d.url() == src.url() {
            return Err(usage(format!(
                "{} is the source itself: give another destination",
                to.url
            )));
        }
    }
    let mut summaries = Vec::new();
    for (dst, to) in dests.iter().zip(&req.to) {
        let s = replicate_one(out, src, (dst, &to.name), &req).await?;
        print_summary(out, &to.name, &s)?;
        record(m, &to.name, &s);
        summaries.push(s);
    }
    Ok(code(&summaries))
}

/// One source to one destination, each item printed as it is done (above a progress bar on
/// a terminal).
async fn replicate_one(
    out: Output,
    src: &Opened,
    (dst, dst_name): (&Opened, &str),
    req: &Request,
) -> Result<Summary> {
    let progress = out.progress(None, &format!("{} -> {dst_name}", req.from.name));
    let mut printed = Ok(());
    let mut on_item = |i: &ItemReport| {
        if let Some(p) = &progress {
            p.inc(i.bytes);
        }
        if printed.is_err() {
            return;
        }
        printed = print_item(out, src.url(), dst.url(), i, progress.as_ref());
    };
    let s = replicate::run(src, dst, req.options, &req.signing, &mut on_item).await;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    printed?;
    Ok(s)
}

/// 4 when a copy failed verification, else 1 when anything failed, else 5 when deletions
/// were refused, else 0.
fn code(summaries: &[Summary]) -> u8 {
    if summaries
        .iter()
        .any(|s| s.verify_failures > 0 || s.untrusted > 0)
    {
        exit::DAMAGED
    } else if summaries
        .iter()
        .any(|s| s.failures > 0 || s.listing_error.is_some())
    {
        exit::FAILED
    } else if summaries.iter().any(|s| s.deletes_refused.is_some()) {
        exit::REFUSED
    } else {
        exit::OK
    }
}

/// One `--json` line of an item: `"type": "item"`, the two URLs, and the item's fields.
#[derive(Serialize)]
struct ItemLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'a str,
    destination: &'a str,
    #[serde(flatten)]
    item: &'a ItemReport,
}

/// The `--json` line of one destination's summary: `"type": "summary"`, its name, and the
/// summary's fields.
#[derive(Serialize)]
struct SummaryLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    destination_name: &'a str,
    #[serde(flatten)]
    summary: &'a Summary,
}

fn print_item(
    out: Output,
    src: &str,
    dst: &str,
    i: &ItemReport,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<()> {
    if out.json {
        let line = ItemLine {
            kind: "item",
            source: src,
            destination: dst,
            item: i,
        };
        return outln!("{}", serde_json::to_string(&line)?);
    }
    if i.action == ItemAction::Skipped {
        return Ok(());
    }
    let mut how = Vec::new();
    if let Some(r) = i.route {
        how.push(match r {
            replicate::copy::Route::ServerSide => "server-side".to_string(),
            replicate::copy::Route::Streamed => "streamed".to_string(),
        });
    }
    if let Some(v) = i.verified {
        how.push(format!("checked by {v}"));
    }
    if let Some((n, of)) = i.resumed_parts {
        how.push(format!(
            "resumed: {n} of {of} parts were already on the server"
        ));
    }
    let size = if i.bytes > 0 {
        format!(" {}", human_bytes(i.bytes))
    } else {
        String::new()
    };
    let how = if how.is_empty() {
        String::new()
    } else {
        format!(" ({})", how.join(", "))
    };
    let line = format!(
        "{:<14} {}{size}{how}: {}",
        i.action.as_str(),
        i.key,
        i.reason
    );
    match progress {
        Some(p) => {
            p.println(line);
            Ok(())
        }
        None => outln!("{line}"),
    }
}

fn print_summary(out: Output, dst_name: &str, s: &Summary) -> Result<()> {
    if out.json {
        let line = SummaryLine {
            kind: "summary",
            destination_name: dst_name,
            summary: s,
        };
        return outln!("{}", serde_json::to_string(&line)?);
    }
    let verb = if s.dry_run { "would copy" } else { "copied" };
    let del = if s.dry_run { "would delete" } else { "deleted" };
    outln!(
        "{} -> {dst_name}: {verb} {} ({}, {} server-side{}), skipped {}, {del} {}, failed {}{}",
        s.source,
        s.copied,
        human_bytes(s.bytes),
        s.server_side,
        if s.resumed > 0 {
            format!(", {} resumed", s.resumed)
        } else {
            String::new()
        },
        s.skipped,
        s.deleted,
        s.failures,
        if s.not_replicated > 0 {
            format!(
                ", {} archive(s) without a manifest at the source not replicated",
                s.not_replicated
            )
        } else {
            String::new()
        }
    )?;
    if s.untrusted > 0 {
        outln!(
            "  {} source archive(s) untrusted (not signed by a trusted key): not replicated",
            s.untrusted
        )?;
    }
    if s.verify_failures > 0 {
        outln!(
            "  {} copy(ies) did not match the source's checksum: removed, not counted",
            s.verify_failures
        )?;
    }
    if let Some(e) = &s.listing_error {
        outln!("  listing failed: {e}")?;
    }
    if let Some(why) = &s.deletes_refused {
        outln!("  deletions refused: {why}")?;
    }
    Ok(())
}

fn record(m: &mut Metrics, dst: &str, s: &Summary) {
    let l = [("destination", dst)];
    m.set("offsite_replicate_copied", &l, s.copied as f64);
    m.set("offsite_replicate_skipped", &l, s.skipped as f64);
    m.set("offsite_replicate_deleted", &l, s.deleted as f64);
    m.set("offsite_replicate_bytes", &l, s.bytes as f64);
    m.set("offsite_replicate_failures", &l, s.failures as f64);
    m.set("offsite_replicate_untrusted", &l, s.untrusted as f64);
    m.set(
        "offsite_replicate_not_replicated",
        &l,
        s.not_replicated as f64,
    );
    m.flag(
        "offsite_replicate_deletes_refused",
        &l,
        s.deletes_refused.is_some(),
    );
    m.flag("offsite_destination_up", &l, s.listing_error.is_none());
}

/// How replicas are signed: where keys are trusted, replicate copies only what they signed
/// and signs each replica with this host's key, which must be there and trusted (else every
/// replica would be untrusted); a dry run writes nothing and needs no key.
fn signing(
    key: Option<offsite_policies::signing::SigningKey>,
    signers: crate::engine::inventory::Signers,
    dry_run: bool,
) -> Result<replicate::Signing> {
    if signers.configured() && !dry_run {
        match &key {
            None => {
                return Err(usage(
                    "replicate checks signatures (keys are trusted) but has no key to sign replicas with: give --sign-with FILE, or key-file under [signing] (make one with `offsite keygen --signing -o FILE`)",
                ))
            }
            Some(k) if !signers.trusts(k) => {
                return Err(usage(format!(
                    "the signing key {} is not among the trusted keys, so every replica it signed would be untrusted: add its public line to [signing] trusted (or the trusted-file), or sign with a trusted key",
                    k.fingerprint()
                )))
            }
            Some(_) => {}
        }
    }
    Ok(replicate::Signing {
        signers,
        key: key.map(std::sync::Arc::new),
    })
}
