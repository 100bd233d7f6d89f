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
use crate::report::{exit, outln, Output};

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
    pub(super) metrics: MetricsArgs,
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

pub(super) async fn run(args: &PruneArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let (policy, place) = args.policy.required("prune")?;
    crate::policy::need_archives(&policy, "prune")?;
    let policy = &policy;
    m.set_policy(&policy.name);
    let locations = place.open().await?;
    let (inv, reads) =
        crate::engine::holdings::read_inventory(policy, &locations, args.inventory.options()).await;
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
    // By name; where a stray object shares an archive's name, the entry with the manifest wins.
    let entries: Vec<BTreeMap<&str, &Entry>> = reads
        .iter()
        .map(|r| {
            let mut m: BTreeMap<&str, &Entry> = BTreeMap::new();
            for e in r.entries.as_deref().unwrap_or_default() {
                let keep_old = m
                    .get(e.name.as_str())
                    .is_some_and(|old| old.manifest.is_some());
                if !keep_old {
                    m.insert(e.name.as_str(), e);
                }
            }
            m
        })
        .collect();
    let mut orphans = orphans(policy, &entries, now);
    let uploads = open_uploads(policy, &locations, now).await;
    for (d, key, id, why) in &uploads {
        let _ = id;
        orphans.push((*d, key.clone(), why.clone()));
    }

    let mut planned = planned;
    for (di, d) in policy.destinations.iter().enumerate() {
        let cap = args
            .max_delete
            .or_else(|| policy.retention_of(d).and_then(|r| r.max_delete));
        let n = planned.deletions().filter(|p| p.destination == di).count()
            + orphans.iter().filter(|(o, _, _)| *o == di).count();
        if let Some(cap) = cap {
            if n as u32 > cap
                && !planned
                    .refusals
                    .iter()
                    .any(|r| r.contains(&format!("at {}", d.name)))
            {
                planned.refusals.push(format!(
                    "max-delete {cap}: the plan deletes {n} archives and orphans at {}; nothing is deleted (check with --dry-run, then raise --max-delete)",
                    d.name
                ));
            }
        }
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

/// What an orphan must be older than: `min-age`, and never less than a day (a large upload can
/// run for hours, and S3 dates a multipart object by the start of its upload).
fn orphan_cutoff(rule: &offsite_policies::policy::Retention, now: DateTime<Utc>) -> DateTime<Utc> {
    let day = now - chrono::Duration::days(1);
    rule.min_age.map(|s| s.before(now)).unwrap_or(day).min(day)
}

/// Encrypted data objects without a manifest (what a killed push leaves) older than
/// [`orphan_cutoff`], at destinations with a retention.
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
        let cutoff = orphan_cutoff(rule, now);
        for e in entries[di].values() {
            if e.state != State::Incomplete {
                continue;
            }
            let Some(o) = &e.object else { continue };
            // Only what offsite writes: encrypted data (`.age`). An unencrypted file without a
            // manifest may be anyone's (an old script's archives) and is never touched.
            if !o.key.ends_with(crate::archive::AGE_SUFFIX) {
                continue;
            }
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

/// Multipart uploads started before [`orphan_cutoff`] and never completed or aborted, where the store can list them (S3): a killed push that is never rerun leaves one,
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
        let cutoff = orphan_cutoff(rule, now);
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

/// Every version id of every key at a versioned location, listed once per prune.
type Versions = BTreeMap<String, Vec<String>>;

async fn versions_of(
    loc: &Opened,
) -> std::result::Result<Option<Versions>, offsite_storage::Error> {
    use futures::TryStreamExt;
    if !loc.store.capabilities().versions {
        return Ok(None);
    }
    let mut out: Versions = BTreeMap::new();
    let mut s = loc.store.list_versions(key_prefix(&loc.location));
    while let Some(v) = s.try_next().await? {
        out.entry(v.key).or_default().push(v.version);
    }
    Ok(Some(out))
}

/// Deletes every version of `key` on a versioned store (a plain delete there only adds a
/// marker over data that stays), else the key. Missing is fine.
async fn delete_all(
    loc: &Opened,
    versions: Option<&Versions>,
    key: &str,
) -> std::result::Result<(), offsite_storage::Error> {
    if let Some(map) = versions {
        for v in map.get(key).into_iter().flatten() {
            match loc.store.delete_version(key, v).await {
                Ok(()) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(());
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
    let now = Utc::now();
    // Version lists, once per destination that deletes on a versioned store.
    let mut versions: BTreeMap<usize, Option<Versions>> = BTreeMap::new();
    let mut failed_listing: Vec<usize> = Vec::new();
    for di in planned
        .deletions()
        .map(|p| p.destination)
        .chain(orphans.iter().map(|o| o.0))
    {
        if versions.contains_key(&di) || failed_listing.contains(&di) {
            continue;
        }
        match versions_of(&locations[di]).await {
            Ok(v) => {
                versions.insert(di, v);
            }
            Err(e) => {
                done.push(Done {
                    destination: policy.destinations[di].name.clone(),
                    name: String::new(),
                    action: "deleted",
                    detail: format!("nothing deleted here: cannot list versions: {e}"),
                    ok: false,
                });
                failed_listing.push(di);
            }
        }
    }
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
            // A hidden copy's current version is a marker: nothing to extend there.
            if entry.hidden {
                continue;
            }
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
        if failed_listing.contains(&item.destination) {
            continue;
        }
        if entry.hidden {
            done.push(Done {
                destination: dest.name.clone(),
                name: item.name.clone(),
                action: "kept",
                detail:
                    "a locked copy under a delete marker: left in place until its lock runs out"
                        .into(),
                ok: true,
            });
            continue;
        }
        // The store's own lock decides, not the manifest's record of the push-time one (a
        // prune may have extended it since, and a legal hold is not in the manifest).
        if loc.store.capabilities().retention && !entry.hidden {
            match loc.store.head(&keys.object).await {
                Ok(meta) => {
                    let until = meta.retention.map(|r| r.retain_until).filter(|t| *t > now);
                    if meta.legal_hold || until.is_some() {
                        done.push(Done {
                            destination: dest.name.clone(),
                            name: item.name.clone(),
                            action: "kept",
                            detail: match until {
                                Some(t) => format!(
                                    "locked at the store until {}: left in place",
                                    crate::report::time(&t)
                                ),
                                None => "under a legal hold at the store: left in place".into(),
                            },
                            ok: true,
                        });
                        continue;
                    }
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    done.push(Done {
                        destination: dest.name.clone(),
                        name: item.name.clone(),
                        action: "deleted",
                        detail: format!("not deleted: cannot read its lock: {e}"),
                        ok: false,
                    });
                    continue;
                }
            }
        }
        let v = versions.get(&item.destination).and_then(|v| v.as_ref());
        // The manifest first: from then on the archive no longer looks complete there, so a
        // crash between the two deletes leaves an orphan (cleaned next time), never a
        // complete-looking archive without its data.
        let mut res = delete_all(loc, v, &keys.manifest).await;
        if res.is_ok() {
            res = delete_all(loc, v, &keys.object).await;
        }
        if res.is_ok() {
            if let Some(key) = &entry.verified_key {
                let _ = delete_all(loc, v, key).await;
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
        if failed_listing.contains(di) {
            continue;
        }
        let v = versions.get(di).and_then(|v| v.as_ref());
        let res = delete_all(&locations[*di], v, key).await;
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
    let root = crate::engine::cache_dir::spools();
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
