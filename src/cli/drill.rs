//! `offsite drill`: the restore drill behind the zero of 3-2-1-1-0. The newest complete
//! archive at each of a policy's destinations is restored to nowhere (downloaded, hashed,
//! decrypted, hashed again) and the proof recorded beside its manifest, where `status` reads it.

use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::{IdentityArgs, InventoryArgs, PolicyArgs};
use crate::engine::identity::Identities;
use crate::engine::inventory::{scan, State};
use crate::engine::verify::{check, CopyReport, Depth, Verdict};
use crate::metrics::{Metrics, MetricsArgs};
use crate::report::{exit, outln, usage, Output};

/// Arguments of `offsite drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    identity: IdentityArgs,
    #[command(flatten)]
    inventory: InventoryArgs,
    #[command(flatten)]
    pub(super) metrics: MetricsArgs,
}

pub(super) async fn run(args: &DrillArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let (policy, place) = args.policy.required("drill")?;
    crate::policy::need_archives(&policy, "drill")?;
    let policy = &policy;
    let identities = match &args.identity.identity {
        Some(p) => Some(Arc::new(
            Identities::load(p).map_err(|e| usage(format!("{e:#}")))?,
        )),
        None if crate::policy::unencrypted(policy) => None,
        None => {
            return Err(usage(
                "a drill decrypts what it restores: give --identity FILE or set OFFSITE_IDENTITY_FILE (a Kubernetes Secret mounted as a file)",
            ))
        }
    };
    m.set_policy(&policy.name);
    let locations = place.open().await?;
    let pb = out.progress(None, "drill");
    let mut results: Vec<(String, CopyReport)> = Vec::new();
    for (loc, (name, _)) in locations.iter().zip(&place.named) {
        let report = match scan(loc, args.inventory.options()).await {
            Err(e) => CopyReport {
                url: loc.url().into(),
                archive: String::new(),
                depth: Depth::Drill.as_str(),
                verdict: Verdict::Unchecked,
                detail: format!("cannot list the destination: {e}"),
            },
            Ok(entries) => {
                let newest = entries
                    .iter()
                    .filter(|e| e.state == State::Complete)
                    .max_by(|a, b| a.created().cmp(&b.created()).then(a.name.cmp(&b.name)));
                match newest {
                    None => CopyReport {
                        url: loc.url().into(),
                        archive: String::new(),
                        depth: Depth::Drill.as_str(),
                        verdict: Verdict::Missing,
                        detail: "no complete archive here to restore".into(),
                    },
                    Some(e) => check(loc, e, Depth::Drill, identities.clone()).await,
                }
            }
        };
        results.push((name.clone(), report));
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let proven = results
        .iter()
        .filter(|(_, r)| r.verdict == Verdict::Ok)
        .count();
    let failed = results
        .iter()
        .filter(|(_, r)| matches!(r.verdict, Verdict::Missing | Verdict::Corrupt))
        .count();
    let unread = results
        .iter()
        .filter(|(_, r)| r.verdict == Verdict::Unchecked)
        .count();
    let code = if failed > 0 {
        exit::DAMAGED
    } else if unread > 0 {
        exit::FAILED
    } else {
        exit::OK
    };
    m.set("offsite_drill_copies_proven", &[], proven as f64);
    m.set("offsite_drill_copies_failed", &[], (failed + unread) as f64);
    for (name, r) in &results {
        m.flag(
            "offsite_destination_up",
            &[("destination", name)],
            r.verdict != Verdict::Unchecked,
        );
    }
    if out.json {
        let items: Vec<_> = results
            .iter()
            .map(|(n, r)| {
                let mut v = serde_json::to_value(r).expect("serializes");
                v["destination"] = n.clone().into();
                v
            })
            .collect();
        out.print_json(&json!({
            "policy": policy.name,
            "copies": items,
            "proven": proven,
            "failed": failed,
            "unchecked": unread,
            "exit": code,
        }))?;
    } else {
        for (n, r) in &results {
            let word = match r.verdict {
                Verdict::Ok => "proven",
                Verdict::Missing => "MISSING",
                Verdict::Corrupt => "CORRUPT",
                Verdict::Unchecked => "UNCHECKED",
                Verdict::Incomplete => "incomplete",
            };
            outln!("{word:<10} {n:<12} {} {}  {}", r.url, r.archive, r.detail)?;
        }
        outln!(
            "{proven} of {} destinations proven by restoring their newest archive.",
            results.len()
        )?;
    }
    for (n, r) in results.iter().filter(|(_, r)| r.verdict != Verdict::Ok) {
        eprintln!("error: {n}: {}", r.detail);
    }
    Ok(code)
}
