//! `offsite prune`: delete what a policy's retention no longer keeps, behind the rails of
//! `offsite_policies::retention::plan`, extend the locks of archives kept as weekly, monthly or
//! yearly, and clean what killed pushes leave (data without a manifest, stale local spools).

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use offsite_policies::policy::Policy;
use offsite_policies::retention::{plan, Options, Plan};
use offsite_storage::{ErrorKind, Retention};
use serde_json::json;

use super::{InventoryArgs, PolicyArgs};
use crate::engine::inventory::{Entry, State};
use crate::metrics::{Metrics, MetricsArgs};
use crate::registry::{key_prefix, Opened};
use crate::report::{exit, outln, usage, Output};

/// Arguments of `offsite prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    policy: PolicyArgs,
    /// Print the plan (keep or delete per archive, with the rules that keep it) and change
    /// nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Delete nothing when the plan would delete more than N archives at one destination
    /// [default: the retention's max-delete, else no cap].
    #[arg(long, value_name = "N")]
    max_delete: Option<u32>,
    /// Prune even when the newest complete archive is older than the policy's rpo (backups
    /// seem to have stopped; by default prune then deletes nothing).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    inventory: InventoryArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// What was done to one archive or object.
#[derive(Debug, Clone, serde::Serialize)]
struct Done {
    destination: String,
    name: String,
    action: &'static str,
    detail: String,
    ok: bool,
}

pub(super) async fn run(args: PruneArgs, out: Output) -> Result<u8> {
    let mut m = Metrics::new("prune", "-");
    let res = run_inner(&args, out, &mut m).await;
    m.finish(&args.metrics, res.as_ref().map_or_else(exit::of, |c| *c))
        .await;
    res
}

async fn run_inner(args: &PruneArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let place = args.policy.resolve(&[], None)?;
    let Some(policy) = place.policy.as_ref() else {
        return Err(usage("prune needs --policy FILE (or OFFSITE_POLICY)"));
    };
    m.set_policy(&policy.name);
    let locations = place.open().await?;
    let (inv, reads) =
        super::status::read_inventory(policy, &locations, args.inventory.options()).await;
    // Prune decides from everything there is: a destination that cannot be read could hold
    // the newest archive of a series, so nothing is deleted anywhere.
    for (r, (name, _)) in reads.iter().zip(&place.named) {
        if let Err(e) = &r.entries {
            anyhow::bail!("cannot read destination {name}: {e}; prune deletes nothing while a destination cannot be read");
        }
    }
    let now = Utc::now();
    let options = Options {
        force: args.force,
        max_delete: args.max_delete,
    };
    let planned = plan(policy, &inv, now, options);
    let entries: Vec<BTreeMap<&str, &Entry>> = reads
        .iter()
        .map(|r| {
            r.entries
                .as_ref()
                .map(|es| es.iter().map(|e| (e.name.as_str(), e)).collect())
                .unwrap_or_default()
        })
        .collect();
    let mut orphans = orphans(policy, &entries, now);
    let uploads = open_uploads(policy, &locations, now).await;
    for (d, key, id, why) in &uploads {
        let _ = id;
        orphans.push((*d, key.clone(), why.clone()));
    }

    let refused = !planned.refusals.is_empty();
    let mut done: Vec<Done> = Vec::new();
    if !refused && !args.dry_run {
        let files = orphans.len() - uploads.len();
        done = execute(policy, &locations, &entries, &planned, &orphans[..files]).await;
        done.extend(abort_uploads(policy, &locations, &uploads).await);
        done.extend(sweep_spools(now));
    }
    let failed = done.iter().filter(|d| !d.ok).count();
    let code = if refused {
        exit::REFUSED
    } else if failed > 0 {
        exit::FAILED
    } else {
        exit::OK
    };
    let deletes = planned.deletions().count();
    m.set(
        "offsite_prune_archives_kept",
        &[],
        (planned.items.len() - deletes) as f64,
    );
    m.set(
        "offsite_prune_archives_deleted",
        &[],
        done.iter()
            .filter(|d| d.ok && d.action == "deleted")
            .count() as f64,
    );
    m.set("offsite_prune_archives_planned", &[], deletes as f64);
    m.flag("offsite_prune_refused", &[], refused);

    if out.json {
        let items: Vec<_> = planned
            .items
            .iter()
            .map(|i| {
                json!({
                    "destination": policy.destinations[i.destination].name,
                    "archive": i.name,
                    "series": i.series,
                    "created": i.created,
                    "action": if i.keep { "keep" } else { "delete" },
                    "reasons": i.reasons,
                    "locked_until": i.locked_until,
                    "extend_lock_to": i.extend_lock_to,
                })
            })
            .collect();
        out.print_json(&json!({
            "policy": policy.name,
            "dry_run": args.dry_run,
            "plan": items,
            "orphans": orphans.iter().map(|(d, k, why)| json!({"destination": policy.destinations[*d].name, "key": k, "reason": why})).collect::<Vec<_>>(),
            "refusals": planned.refusals,
            "done": done,
            "exit": code,
        }))?;
    } else {
        print_plan(policy, &planned, &orphans, args.dry_run)?;
        for d in &done {
            outln!(
                "{:<10} {:<12} {}  {}",
                if d.ok { d.action } else { "FAILED" },
                d.destination,
                d.name,
                d.detail
            )?;
        }
        if !refused {
            let deleted = done
                .iter()
                .filter(|d| d.ok && d.action == "deleted")
                .count();
            if args.dry_run {
                outln!(
                    "dry run: would delete {deletes} archive(s) and {} orphan(s); nothing changed.",
                    orphans.len()
                )?;
            } else {
                outln!("deleted {deleted} archive(s) or orphan(s).")?;
            }
        }
    }
    for r in &planned.refusals {
        eprintln!("error: refused: {r}");
    }
    for d in done.iter().filter(|d| !d.ok) {
        eprintln!("error: {} {}: {}", d.destination, d.name, d.detail);
    }
    Ok(code)
}

fn print_plan(
    policy: &Policy,
    planned: &Plan,
    orphans: &[(usize, String, String)],
    dry_run: bool,
) -> Result<()> {
    let mut last: Option<(usize, &str)> = None;
    for i in &planned.items {
        if last != Some((i.destination, i.series.as_str())) {
            outln!(
                "== {} {} (retention: {})",
                policy.destinations[i.destination].name,
                i.series,
                if policy.destinations[i.destination].retention.is_some() {
                    "its own"
                } else {
                    "the policy's"
                }
            )?;
            last = Some((i.destination, i.series.as_str()));
        }
        let mut why = i.reasons.join(", ");
        if let Some(t) = i.extend_lock_to {
            why.push_str(&format!("; lock extended to {}", crate::report::time(&t)));
        }
        outln!(
            "  {:<6} {}  {:<44} {}",
            if i.keep {
                "keep"
            } else if dry_run {
                "delete"
            } else {
                "DELETE"
            },
            crate::report::time(&i.created),
            i.name,
            why
        )?;
    }
    for (d, key, why) in orphans {
        outln!(
            "  {:<6} orphan at {}: {key} ({why})",
            "delete",
            policy.destinations[*d].name
        )?;
    }
    Ok(())
}

/// Data objects without a manifest (what a killed push leaves) older than `min-age` (one day
/// without it), at destinations with a retention.
fn orphans(
    policy: &Policy,
    entries: &[BTreeMap<&str, &Entry>],
    now: DateTime<Utc>,
) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (di, d) in policy.destinations.iter().enumerate() {
        let Some(rule) = policy.retention_of(d) else {
            continue;
        };
        let cutoff = rule
            .min_age
            .map(|s| s.before(now))
            .unwrap_or(now - chrono::Duration::days(1));
        for e in entries[di].values() {
            if e.state != State::Incomplete {
                continue;
            }
            let Some(o) = &e.object else { continue };
            if o.last_modified.is_some_and(|t| t < cutoff) {
                out.push((
                    di,
                    o.key.clone(),
                    "data without a manifest: an upload that never committed".into(),
                ));
            }
        }
    }
    out
}

/// Multipart uploads started before `min-age` (one day without it) and never completed or
/// aborted, where the store can list them (S3): a killed push that is never rerun leaves one,
/// and the provider bills for its parts.
async fn open_uploads(
    policy: &Policy,
    locations: &[Opened],
    now: DateTime<Utc>,
) -> Vec<(usize, String, String, String)> {
    use futures::TryStreamExt;
    let mut out = Vec::new();
    for (di, d) in policy.destinations.iter().enumerate() {
        let Some(rule) = policy.retention_of(d) else {
            continue;
        };
        let loc = &locations[di];
        if !loc.store.capabilities().list_uploads {
            continue;
        }
        let cutoff = rule
            .min_age
            .map(|s| s.before(now))
            .unwrap_or(now - chrono::Duration::days(1));
        let prefix = key_prefix(&loc.location);
        match loc.store.list_uploads(prefix).try_collect::<Vec<_>>().await {
            Ok(list) => {
                for u in list
                    .into_iter()
                    .filter(|u| u.started.is_some_and(|t| t < cutoff))
                {
                    let why = format!(
                        "a multipart upload started {} and never completed",
                        crate::report::time(&u.started.expect("filtered"))
                    );
                    out.push((di, u.key, u.id, why));
                }
            }
            Err(e) => tracing::warn!(destination = %d.name, error = %e, "cannot list open uploads"),
        }
    }
    out
}

async fn abort_uploads(
    policy: &Policy,
    locations: &[Opened],
    uploads: &[(usize, String, String, String)],
) -> Vec<Done> {
    let mut done = Vec::new();
    for (di, key, id, why) in uploads {
        let Some(mp) = locations[*di].store.multipart() else {
            continue;
        };
        let res = mp.abort_upload(key, id).await;
        done.push(Done {
            destination: policy.destinations[*di].name.clone(),
            name: key.clone(),
            action: "aborted",
            detail: match &res {
                Ok(()) => why.clone(),
                Err(e) => e.to_string(),
            },
            ok: res.is_ok(),
        });
    }
    done
}

/// Deletes every version of `key` on a versioned store (a plain delete there only adds a
/// marker over data that stays), else the key. Missing is fine.
async fn delete_all(loc: &Opened, key: &str) -> std::result::Result<(), offsite_storage::Error> {
    use futures::TryStreamExt;
    if loc.store.capabilities().versions {
        let versions: Vec<_> = loc
            .store
            .list_versions(key)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .filter(|v| v.key == key)
            .collect();
        if !versions.is_empty() {
            for v in versions {
                match loc.store.delete_version(key, &v.version).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
    }
    match loc.store.delete(key).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

async fn execute(
    policy: &Policy,
    locations: &[Opened],
    entries: &[BTreeMap<&str, &Entry>],
    planned: &Plan,
    orphans: &[(usize, String, String)],
) -> Vec<Done> {
    let mut done = Vec::new();
    for item in &planned.items {
        let (loc, dest) = (
            &locations[item.destination],
            &policy.destinations[item.destination],
        );
        let Some(entry) = entries[item.destination].get(item.name.as_str()) else {
            continue;
        };
        let Some(manifest) = &entry.manifest else {
            continue;
        };
        let prefix = key_prefix(&loc.location);
        let keys = crate::archive::ArchiveKeys::new(prefix, &item.name, manifest.encrypted());
        if item.keep {
            if let (Some(until), Some(mode)) = (item.extend_lock_to, dest.lock) {
                let r = Retention {
                    mode: match mode {
                        offsite_policies::policy::LockMode::Governance => {
                            offsite_storage::LockMode::Governance
                        }
                        offsite_policies::policy::LockMode::Compliance => {
                            offsite_storage::LockMode::Compliance
                        }
                    },
                    retain_until: until,
                };
                let mut res = Ok(());
                for key in [&keys.object, &keys.manifest] {
                    if let Err(e) = loc.store.extend_retention(key, r).await {
                        res = Err(e);
                        break;
                    }
                }
                done.push(Done {
                    destination: dest.name.clone(),
                    name: item.name.clone(),
                    action: "extended",
                    detail: match &res {
                        Ok(()) => format!("lock extended to {}", crate::report::time(&until)),
                        Err(e) if e.kind() == ErrorKind::Unsupported => {
                            format!("lock not extended: {e}")
                        }
                        Err(e) => format!("lock not extended: {e}"),
                    },
                    ok: res.as_ref().is_ok()
                        || res
                            .as_ref()
                            .is_err_and(|e| e.kind() == ErrorKind::Unsupported),
                });
            }
            continue;
        }
        // The manifest first: from then on the archive no longer looks complete there, so a
        // crash between the two deletes leaves an orphan (cleaned next time), never a
        // complete-looking archive without its data.
        let mut res = delete_all(loc, &keys.manifest).await;
        if res.is_ok() {
            res = delete_all(loc, &keys.object).await;
        }
        if res.is_ok() {
            if let Some(v) = &entry.verified_key {
                let _ = delete_all(loc, v).await;
            }
        }
        done.push(Done {
            destination: dest.name.clone(),
            name: item.name.clone(),
            action: "deleted",
            detail: match &res {
                Ok(()) => item.reasons.join(", "),
                Err(e) if e.kind() == ErrorKind::Locked => {
                    format!("locked: left in place ({e})")
                }
                Err(e) => e.to_string(),
            },
            ok: res.is_ok(),
        });
    }
    for (di, key, why) in orphans {
        let res = delete_all(&locations[*di], key).await;
        done.push(Done {
            destination: policy.destinations[*di].name.clone(),
            name: key.clone(),
            action: "deleted",
            detail: match &res {
                Ok(()) => format!("orphan: {why}"),
                Err(e) => e.to_string(),
            },
            ok: res.is_ok(),
        });
    }
    done
}

/// Removes local spools of pushes never run again: a work directory under the cache's
/// `spool/` untouched for 7 days whose lock no push holds.
fn sweep_spools(now: DateTime<Utc>) -> Vec<Done> {
    let root = crate::engine::spool::cache_dir().join("spool");
    let Ok(dirs) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for d in dirs.flatten() {
        let path = d.path();
        let newest = std::fs::read_dir(&path)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|f| f.metadata().ok()?.modified().ok())
            .max();
        let Some(newest) = newest else { continue };
        if DateTime::<Utc>::from(newest) > now - chrono::Duration::days(7) {
            continue;
        }
        let name = d.file_name().to_string_lossy().to_string();
        let Ok(_lock) = crate::engine::spool::lock_work_dir(&path, &name) else {
            continue;
        };
        let ok = std::fs::remove_dir_all(&path).is_ok();
        out.push(Done {
            destination: "local spool".into(),
            name,
            action: "deleted",
            detail: "the spool of a push not run again for 7 days".into(),
            ok,
        });
    }
    out
}
