//! `offsite ls`: the archives at a location.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::engine::inventory::{scan, State};
use crate::report::{exit, human_bytes, outln, time, Output};

/// Arguments of `offsite ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The location: file:///var/backups/app, s3://bucket/prefix, gs://bucket/prefix,
    /// az://account/container/prefix or memory://name.
    #[arg(value_name = "URL")]
    url: String,
    /// A sub-prefix under the URL.
    #[arg(long)]
    prefix: Option<String>,
}

pub(super) async fn run(args: LsArgs, out: Output) -> Result<u8> {
    let loc = super::open_all(std::slice::from_ref(&args.url), args.prefix.as_deref())
        .await?
        .remove(0);
    let entries = scan(&loc)
        .await
        .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", loc.url()))?;
    if out.json {
        let items: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "archive": e.name,
                    "series": offsite_policies::inventory::series_of(&e.name),
                    "state": e.state,
                    "created": e.created(),
                    "size": e.manifest.as_ref().map(|m| m.plaintext.size),
                    "stored_size": e.object.as_ref().map(|o| o.size),
                    "encrypted": e.manifest.as_ref().map(|m| m.encrypted()),
                    "key": e.object.as_ref().map(|o| o.key.clone()),
                })
            })
            .collect();
        out.print_json(&json!({ "url": loc.url(), "archives": items }))?;
        return Ok(exit::OK);
    }
    if entries.is_empty() {
        outln!("no archives at {}", loc.url())?;
        return Ok(exit::OK);
    }
    outln!(
        "{:<21} {:>10} {:>10} {:<9} {:<12} NAME",
        "CREATED",
        "SIZE",
        "STORED",
        "ENCRYPTED",
        "STATE"
    )?;
    for e in &entries {
        let created = e.created().map(|t| time(&t)).unwrap_or_else(|| "-".into());
        let size = e
            .manifest
            .as_ref()
            .map(|m| human_bytes(m.plaintext.size))
            .unwrap_or_else(|| "-".into());
        let stored = e
            .object
            .as_ref()
            .map(|o| human_bytes(o.size))
            .unwrap_or_else(|| "-".into());
        let enc = match e.manifest.as_ref().map(|m| m.encrypted()) {
            Some(true) => "age",
            Some(false) => "no",
            None => "?",
        };
        outln!(
            "{created:<21} {size:>10} {stored:>10} {enc:<9} {:<12} {}",
            e.state.as_str(),
            e.name
        )?;
    }
    let incomplete = entries
        .iter()
        .filter(|e| e.state == State::Incomplete)
        .count();
    if incomplete > 0 {
        outln!("{incomplete} incomplete upload(s): data without a manifest never counts as a copy; push again to complete.")?;
    }
    Ok(exit::OK)
}
