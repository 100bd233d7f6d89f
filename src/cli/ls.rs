//! `offsite ls`: the archives at a location.

use std::io::Write;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use serde::Serialize;

use super::InventoryArgs;
use crate::engine::inventory::{scan, Entry, Signature, State};
use crate::engine::leftovers::{self, Leftover, LeftoverKind};
use crate::report::{exit, human_bytes, stdout_failed, time, Output};

/// Arguments of `offsite ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The location: file:///var/backups/app, s3://bucket/prefix, gs://bucket/prefix,
    /// az://account/container/prefix or memory://name.
    #[arg(value_name = "URL")]
    url: Option<String>,
    #[command(flatten)]
    policy: super::PolicyArgs,
    /// A sub-prefix under the URL.
    #[arg(long)]
    prefix: Option<String>,
    #[command(flatten)]
    inventory: InventoryArgs,
    #[command(flatten)]
    trust: super::TrustArgs,
}

pub(super) async fn run(args: LsArgs, out: Output) -> Result<u8> {
    let urls: Vec<String> = args.url.iter().cloned().collect();
    let place = args.policy.resolve("ls", &urls, args.prefix.as_deref())?;
    let options = args
        .inventory
        .options(args.trust.judge(place.policy.as_ref())?);
    let locations = place.open().await?;
    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
    let mut summary = JsonSummary {
        kind: "summary",
        policy: place.policy.as_ref().map(|p| p.name.as_str()),
        locations: locations.len(),
        archives: 0,
        errors: 0,
        exit: exit::OK,
    };
    if place.policy.is_none() {
        let loc = &locations[0];
        let entries = scan(loc, &options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot list {}: {e}", loc.url()))?;
        let left = stale(loc).await;
        summary.archives = entries.len();
        let res = if out.json {
            write_json(&mut w, loc.url(), None, &entries, &left)
                .and_then(|()| json_line(&mut w, &summary))
        } else {
            write_text(&mut w, loc.url(), &entries, &left)
        };
        res.and_then(|()| w.flush()).map_err(stdout_failed)?;
        return Ok(exit::OK);
    }
    // A policy: every destination in its order, each listed on its own; one that cannot be
    // listed is reported and the others still are (exit 1).
    for (i, (loc, (name, _))) in locations.iter().zip(&place.named).enumerate() {
        let listed = scan(loc, &options).await;
        let left = stale(loc).await;
        let res = match (&listed, out.json) {
            (Ok(entries), true) => {
                summary.archives += entries.len();
                write_json(&mut w, loc.url(), Some(name), entries, &left)
            }
            (Ok(entries), false) => writeln!(
                w,
                "{}== {name} ({})",
                if i == 0 { "" } else { "\n" },
                loc.url()
            )
            .and_then(|()| write_text(&mut w, loc.url(), entries, &left)),
            (Err(e), true) => {
                summary.exit = exit::FAILED;
                summary.errors += 1;
                json_line(
                    &mut w,
                    &JsonError {
                        kind: "error",
                        url: loc.url(),
                        destination: name,
                        error: e.to_string(),
                    },
                )
            }
            (Err(e), false) => {
                summary.exit = exit::FAILED;
                eprintln!("error: cannot list destination {name} ({}): {e}", loc.url());
                Ok(())
            }
        };
        res.map_err(stdout_failed)?;
    }
    if out.json {
        json_line(&mut w, &summary).map_err(stdout_failed)?;
    }
    w.flush().map_err(stdout_failed)?;
    Ok(summary.exit)
}

/// What killed writes left at a location more than a day ago (a location whose uploads or
/// temporary files cannot be listed shows none, with a warning).
async fn stale(loc: &crate::registry::Opened) -> Vec<Leftover> {
    let before = Utc::now() - leftovers::stale_after();
    match leftovers::find(loc, before).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "warning: cannot look for what killed pushes left at {}: {e}",
                loc.url()
            );
            Vec::new()
        }
    }
}

/// A leftover in words: what it is, and that it is no copy.
pub(super) fn leftover_words(l: &Leftover) -> String {
    match &l.kind {
        LeftoverKind::Temporary { size } => format!(
            "temporary file {} ({}, last written {}): a write that was killed before it finished, not a copy",
            l.key,
            human_bytes(*size),
            time(&l.since)
        ),
        LeftoverKind::Upload { id } => format!(
            "open multipart upload of {} (id {id}, started {}): an upload that never completed, not a copy",
            l.key,
            time(&l.since)
        ),
    }
}

/// One archive in `--json`.
#[derive(Serialize)]
struct JsonArchive<'a> {
    archive: &'a str,
    series: String,
    state: State,
    created: Option<DateTime<Utc>>,
    size: Option<u64>,
    sha256: Option<&'a str>,
    stored_size: Option<u64>,
    encrypted: Option<bool>,
    key: Option<&'a str>,
    /// `trusted`, `untrusted`, or where no key is trusted `signed` / `unsigned`; `None`
    /// without a readable manifest.
    signature: Option<&'static str>,
    /// The signer, for a trusted manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<&'a str>,
    /// Why, for an untrusted one.
    #[serde(skip_serializing_if = "Option::is_none")]
    untrusted: Option<&'a str>,
    /// Why its creation time is not believed, for a future-dated one.
    #[serde(skip_serializing_if = "Option::is_none")]
    future_dated: Option<String>,
}

impl<'a> JsonArchive<'a> {
    fn of(e: &'a Entry) -> JsonArchive<'a> {
        JsonArchive {
            archive: &e.name,
            series: offsite_policies::inventory::series_of(&e.name),
            state: e.state,
            created: e.created(),
            size: e.manifest.as_ref().map(|m| m.plaintext.size),
            sha256: e.manifest.as_ref().map(|m| m.plaintext.sha256.as_str()),
            stored_size: e.object.as_ref().map(|o| o.size),
            encrypted: e.manifest.as_ref().map(|m| m.encrypted()),
            key: e.object.as_ref().map(|o| o.key.as_str()),
            signature: e.manifest.as_ref().map(|_| e.signature.as_str()),
            signer: match &e.signature {
                Signature::Trusted { signer } => Some(signer),
                _ => None,
            },
            untrusted: e.signature.untrusted(),
            future_dated: e.future.map(|f| f.to_string()),
        }
    }
}

/// A destination that could not be listed: a `--json` line of its own.
#[derive(Serialize)]
struct JsonError<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
    destination: &'a str,
    error: String,
}

/// The last `--json` line of a listing that ran to its end.
#[derive(Serialize)]
struct JsonSummary<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a str>,
    locations: usize,
    archives: usize,
    errors: usize,
    exit: u8,
}

/// An archive or a leftover, as a `--json` line: its `type`, where it is, and its fields.
#[derive(Serialize)]
struct JsonItem<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<&'a str>,
    #[serde(flatten)]
    item: T,
}

/// One JSON object and a newline.
fn json_line(w: &mut impl Write, line: &impl Serialize) -> std::io::Result<()> {
    // Through a `Value`, as every other document: its keys in the map's order.
    serde_json::to_writer(&mut *w, &serde_json::to_value(line)?)?;
    writeln!(w)
}

/// JSON Lines, written as the listing goes rather than built in memory: one
/// `{"type": "archive", "url", ...}` line an archive, then one `{"type": "leftover", ...}`
/// line for each thing a killed write left.
fn write_json(
    w: &mut impl Write,
    url: &str,
    destination: Option<&str>,
    entries: &[Entry],
    left: &[Leftover],
) -> std::io::Result<()> {
    for e in entries {
        let line = JsonItem {
            kind: "archive",
            url,
            destination,
            item: JsonArchive::of(e),
        };
        json_line(w, &line)?;
    }
    for l in left {
        let line = JsonItem {
            kind: "leftover",
            url,
            destination,
            item: l,
        };
        json_line(w, &line)?;
    }
    Ok(())
}

fn write_text(
    w: &mut impl Write,
    url: &str,
    entries: &[Entry],
    left: &[Leftover],
) -> std::io::Result<()> {
    write_archives(w, url, entries)?;
    for l in left {
        writeln!(
            w,
            "left behind: {}; the next push or prune here removes it",
            leftover_words(l)
        )?;
    }
    Ok(())
}

fn write_archives(w: &mut impl Write, url: &str, entries: &[Entry]) -> std::io::Result<()> {
    if entries.is_empty() {
        return writeln!(w, "no archives at {url}");
    }
    writeln!(
        w,
        "{:<21} {:>10} {:>10} {:<9} {:<12} NAME",
        "CREATED", "SIZE", "STORED", "ENCRYPTED", "STATE"
    )?;
    for e in entries {
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
        writeln!(
            w,
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
        writeln!(w, "{incomplete} incomplete upload(s): data without a manifest never counts as a copy; push again to complete.")?;
    }
    for e in entries.iter().filter(|e| e.state == State::FutureDated) {
        if let Some(f) = &e.future {
            writeln!(
                w,
                "{} is future-dated: {f}; it is never the newest, counts as no copy, and prune leaves it",
                e.name
            )?;
        }
    }
    for e in entries.iter().filter(|e| e.state == State::Untrusted) {
        writeln!(
            w,
            "{} is untrusted: {}; it counts as no copy, and restore --latest passes over it",
            e.name,
            e.signature
                .untrusted()
                .unwrap_or("not signed by a trusted key")
        )?;
    }
    Ok(())
}
