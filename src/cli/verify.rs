//! `offsite verify`: check stored copies.

use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use futures::{stream, StreamExt};
use serde_json::json;

use super::{IdentityArgs, InventoryArgs};
use crate::engine::identity::Identities;
use crate::engine::inventory::{one, scan, Reader, State};
use crate::engine::verify::{check, CopyReport, Depth, Verdict};
use crate::report::{exit, outln, usage, Output};

/// Arguments of `offsite verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Locations to check.
    #[arg(value_name = "URL")]
    urls: Vec<String>,
    #[command(flatten)]
    policy: super::PolicyArgs,
    /// Check only this archive (default: every archive at each location).
    #[arg(long, value_name = "NAME")]
    archive: Option<String>,
    /// Download, hash, decrypt and hash again; records the result beside the manifest.
    #[arg(long)]
    deep: bool,
    #[command(flatten)]
    identity: IdentityArgs,
    /// A sub-prefix under every URL.
    #[arg(long)]
    prefix: Option<String>,
    #[command(flatten)]
    inventory: InventoryArgs,
}

pub(super) async fn run(args: VerifyArgs, out: Output) -> Result<u8> {
    let locations = args
        .policy
        .resolve("verify", &args.urls, args.prefix.as_deref())?
        .open()
        .await?;
    let identities = match (&args.identity.identity, args.deep) {
        (Some(p), true) => Some(Arc::new(
            Identities::load(p).map_err(|e| usage(format!("{e:#}")))?,
        )),
        _ => None,
    };
    let mut reports: Vec<CopyReport> = Vec::new();
    // Findings about a location as a whole (cannot list it, nothing there): not copies, so
    // they are not counted as copies, but they decide the exit code as much as a bad copy.
    let mut places: Vec<CopyReport> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for loc in &locations {
        // One archive: only its manifest is read. Every archive: a full scan (cached).
        let listed = match &args.archive {
            Some(name) => one(loc, args.inventory.options(), name)
                .await
                .map(|e| e.into_iter().collect::<Vec<_>>()),
            None => scan(loc, args.inventory.options()).await,
        };
        let selected = match listed {
            Ok(e) => e,
            Err(e) => {
                let verdict = if e.is_not_found() {
                    Verdict::Missing
                } else {
                    Verdict::Unchecked
                };
                places.push(CopyReport {
                    url: loc.url().into(),
                    archive: args.archive.clone().unwrap_or_default(),
                    depth: if args.deep { "deep" } else { "quick" },
                    verdict,
                    detail: format!("cannot list the location: {e}"),
                });
                continue;
            }
        };
        if selected.is_empty() {
            places.push(CopyReport {
                url: loc.url().into(),
                archive: args.archive.clone().unwrap_or_default(),
                depth: if args.deep { "deep" } else { "quick" },
                verdict: Verdict::Missing,
                detail: match &args.archive {
                    Some(a) => format!("no archive named {a:?} here"),
                    None => "no archives here".into(),
                },
            });
            continue;
        }
        if !selected.iter().any(|e| e.state == State::Complete) {
            places.push(CopyReport {
                url: loc.url().into(),
                archive: args.archive.clone().unwrap_or_default(),
                depth: if args.deep { "deep" } else { "quick" },
                verdict: Verdict::Missing,
                detail:
                    "no complete copy here: only uploads that never committed or damaged manifests"
                        .into(),
            });
        }
        if args.deep
            && identities.is_none()
            && selected
                .iter()
                .any(|e| e.manifest.as_ref().is_some_and(|m| m.encrypted()))
        {
            return Err(usage(
                "deep verify of encrypted archives needs the identity: give --identity FILE or set OFFSITE_IDENTITY_FILE",
            ));
        }
        // Quick checks run `jobs` at a time (a HEAD each at most); deep ones download whole
        // archives, one after another. Reports keep the inventory's order.
        let in_flight = if args.deep {
            1
        } else {
            Reader::new(loc, args.inventory.options()).jobs()
        };
        let checked: Vec<CopyReport> = stream::iter(&selected)
            .map(|entry| {
                check(
                    loc,
                    entry,
                    if args.deep { Depth::Deep } else { Depth::Quick },
                    identities.clone(),
                )
            })
            .buffered(in_flight)
            .collect()
            .await;
        reports.extend(checked);
    }
    let all = || reports.iter().chain(&places);
    let damaged = all().any(|r| matches!(r.verdict, Verdict::Missing | Verdict::Corrupt));
    let unchecked = all().any(|r| r.verdict == Verdict::Unchecked);
    let code = if damaged {
        exit::DAMAGED
    } else if unchecked {
        exit::FAILED
    } else {
        exit::OK
    };
    if out.json {
        out.print_json(&json!({ "copies": reports, "locations": places, "exit": code }))?;
    } else {
        for r in all() {
            let word = match r.verdict {
                Verdict::Ok => "ok",
                Verdict::Missing => "MISSING",
                Verdict::Corrupt => "CORRUPT",
                Verdict::Unchecked => "UNCHECKED",
                Verdict::Incomplete => "incomplete",
            };
            outln!(
                "{word:<10} {} {}  ({} verify) {}",
                r.url,
                r.archive,
                r.depth,
                r.detail
            )?;
            if matches!(
                r.verdict,
                Verdict::Missing | Verdict::Corrupt | Verdict::Unchecked
            ) {
                problems.push(format!("{} {}: {}", r.url, r.archive, r.detail));
            }
        }
        let good = reports.iter().filter(|r| r.verdict == Verdict::Ok).count();
        let copies = reports
            .iter()
            .filter(|r| r.verdict != Verdict::Incomplete)
            .count();
        let unusable = places
            .iter()
            .map(|p| &p.url)
            .collect::<std::collections::BTreeSet<_>>();
        if unusable.is_empty() {
            outln!("{good} of {copies} copies checked good.")?;
        } else {
            outln!(
                "{good} of {copies} copies checked good; {} of {} locations had no copy to check.",
                unusable.len(),
                locations.len()
            )?;
        }
    }
    for p in problems {
        eprintln!("error: {p}");
    }
    Ok(code)
}
