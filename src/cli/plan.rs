//! `offsite plan`: validate a policy and show what its destinations can reach against its
//! placement rule, naming each rule that cannot be met.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use offsite_policies::placement::{reach, slots};
use offsite_policies::policy::{Keep, Policy, Retention};
use serde_json::json;

use crate::report::{exit, Output};

/// Arguments of `offsite plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The policy file (TOML; README "Policy file").
    #[arg(long, env = "OFFSITE_POLICY", value_name = "FILE")]
    policy: PathBuf,
    /// Probe each destination: list, then write, read back and delete a small object (on a
    /// locked destination only read-only calls: its default retention would keep the probe).
    /// Exit 1 when a destination could not be checked.
    #[arg(long)]
    check_access: bool,
    /// Create missing buckets, containers and directories with what the policy needs:
    /// versioning and Object Lock (S3), object retention (GCS) or version-level immutability
    /// (Azure) where a destination has a lock. Says what it created.
    #[arg(long)]
    create: bool,
    /// The project new GCS buckets belong to (else GOOGLE_CLOUD_PROJECT), with --create.
    #[arg(long, value_name = "ID", requires = "create")]
    project: Option<String>,
}

/// What probing one destination found.
#[derive(Debug, Clone, serde::Serialize)]
struct Access {
    name: String,
    url: String,
    /// `created`, `exists`, or why it could not be created (with --create).
    #[serde(skip_serializing_if = "Option::is_none")]
    create: Option<String>,
    /// Each probe and its result (`ok`, or the error).
    checks: Vec<(String, String)>,
    ok: bool,
}

/// Creates (with `create`) and probes (with `check`) every destination of the policy.
async fn probe(policy: &Policy, args: &PlanArgs) -> Vec<Access> {
    use offsite_storage::{CreateOptions, PutOptions, StorageExt};
    let mut out = Vec::new();
    for d in &policy.destinations {
        let url = crate::policy::destination_url(d);
        let mut a = Access {
            name: d.name.clone(),
            url: url.clone(),
            create: None,
            checks: Vec::new(),
            ok: true,
        };
        let loc = match crate::registry::open(&url, policy.prefix.as_deref()).await {
            Ok(l) => l,
            Err(e) => {
                a.ok = false;
                a.checks.push(("open".into(), e.to_string()));
                out.push(a);
                continue;
            }
        };
        if args.create {
            let mut o = CreateOptions::default();
            o.object_lock = d.lock.is_some();
            o.versioning = d.lock.is_some();
            o.project = args.project.clone();
            a.create = Some(match loc.store.create_location(&o).await {
                Ok(true) if d.lock.is_some() => "created, with versioning and object lock".into(),
                Ok(true) => "created".into(),
                Ok(false) => "exists already; nothing changed".into(),
                Err(e) => {
                    a.ok = false;
                    format!("could not be created: {e}")
                }
            });
        }
        if args.check_access {
            let mut check = |what: &str, r: Result<(), String>| {
                let ok = r.is_ok();
                a.checks
                    .push((what.to_string(), r.err().unwrap_or_else(|| "ok".into())));
                a.ok &= ok;
                ok
            };
            let prefix = crate::registry::key_prefix(&loc.location).to_string();
            let listed = {
                use futures::StreamExt;
                match loc.store.list(&prefix).next().await {
                    None | Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => Err(e.to_string()),
                }
            };
            let can_list = check("list", listed);
            if d.lock.is_some() {
                a.checks.push((
                    "write".into(),
                    "not probed: a locked destination's default retention would keep the probe object; checked with read-only calls".into(),
                ));
            } else if can_list {
                let key = offsite_storage::join_key(
                    &prefix,
                    &format!(
                        "offsite-access-check-{}-{}",
                        std::process::id(),
                        chrono::Utc::now().timestamp_millis()
                    ),
                );
                let wrote = loc
                    .store
                    .put_bytes(
                        &key,
                        bytes::Bytes::from_static(b"offsite plan --check-access\n"),
                        PutOptions::default(),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                if check("write", wrote) {
                    let read = loc
                        .store
                        .get_bytes(&key)
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|b| {
                            (b.as_ref() == b"offsite plan --check-access\n")
                                .then_some(())
                                .ok_or_else(|| {
                                    "read back different bytes than were written".to_string()
                                })
                        });
                    check("read", read);
                    check(
                        "delete",
                        loc.store.delete(&key).await.map_err(|e| e.to_string()),
                    );
                }
            }
        }
        out.push(a);
    }
    out
}

/// `keep-daily 7, keep-weekly 4, max-age 3y`.
fn retention_words(r: &Retention) -> String {
    let keep = |k: Keep| match k {
        Keep::N(n) => n.to_string(),
        Keep::Unlimited => "unlimited".into(),
    };
    let mut w = Vec::new();
    for (name, k) in [
        ("keep-last", r.keep_last),
        ("keep-hourly", r.keep_hourly),
        ("keep-daily", r.keep_daily),
        ("keep-weekly", r.keep_weekly),
        ("keep-monthly", r.keep_monthly),
        ("keep-yearly", r.keep_yearly),
    ] {
        if let Some(k) = k {
            w.push(format!("{name} {}", keep(k)));
        }
    }
    for (name, s) in [
        ("keep-within", r.keep_within),
        ("max-age", r.max_age),
        ("min-age", r.min_age),
    ] {
        if let Some(s) = s {
            w.push(format!("{name} {s}"));
        }
    }
    if w.is_empty() {
        "keep everything".into()
    } else {
        w.join(", ")
    }
}

/// One line per `[[snapshots]]` section: `aws us-east-1: volumes tagged backup=db; copy-to
/// us-west-2 (keep-weekly 8); retention keep-daily 7`.
fn snapshot_words(policy: &Policy) -> Vec<String> {
    policy
        .snapshots
        .iter()
        .map(|s| {
            let what = if let Some(sel) = &s.select {
                format!("volumes tagged {sel}")
            } else if !s.instances.is_empty() {
                format!("the volumes of instance(s) {}", s.instances.join(", "))
            } else {
                format!("volume(s) {}", s.volumes.join(", "))
            };
            let copies = s
                .copy_to
                .iter()
                .map(|c| {
                    format!(
                        "{} ({})",
                        c.region,
                        s.retention_of(c, policy)
                            .map_or("keep everything".into(), retention_words)
                    )
                })
                .collect::<Vec<_>>();
            format!(
                "{}{} {}: {what}; retention {}{}",
                s.name
                    .as_ref()
                    .map(|n| format!("{n}: "))
                    .unwrap_or_default(),
                s.provider.as_str(),
                s.region
                    .as_deref()
                    .unwrap_or("(the provider's default region)"),
                s.retention_here(policy)
                    .map_or("keep everything".into(), retention_words),
                if copies.is_empty() {
                    String::new()
                } else {
                    format!("; copy-to {}", copies.join(", "))
                }
            )
        })
        .collect()
}

fn recipients_words(policy: &Policy) -> Result<String> {
    let Some(e) = &policy.encryption else {
        return Ok("none".into());
    };
    if e.unencrypted {
        return Ok("unencrypted (unencrypted = true)".into());
    }
    let n = crate::policy::recipients(policy)?.len();
    Ok(format!("age, {n} recipient(s)"))
}

/// The destination table, each destination's retention, and the placement line.
fn destinations_text(
    text: &mut String,
    policy: &Policy,
    slots: &[offsite_policies::placement::Slot],
    reach: &offsite_policies::placement::Reach,
) {
    use std::fmt::Write as _;
    let _ = writeln!(
        text,
        "{:<12} {:<6} {:<9} {:<14} {:<16} {:<8} URL",
        "DESTINATION", "KIND", "SITE", "CLASS", "LOCK", "ROLE"
    );
    for (d, s) in policy.destinations.iter().zip(slots) {
        let lock = match (d.lock, d.lock_days) {
            (Some(l), Some(n)) => format!("{} {n}d", l.as_str()),
            _ => "-".into(),
        };
        let _ = writeln!(
            text,
            "{:<12} {:<6} {:<9} {:<14} {:<16} {:<8} {}",
            d.name,
            s.kind.as_str(),
            if s.offsite { "off site" } else { "on site" },
            d.storage_class.as_deref().unwrap_or("-"),
            lock,
            if s.replica { "replica" } else { "push" },
            crate::policy::destination_url(d),
        );
        let _ = writeln!(
            text,
            "{:<12} retention: {}",
            "",
            policy
                .retention_of(d)
                .map_or("keep everything".into(), retention_words)
        );
    }
    let rule = policy.placement;
    let _ = writeln!(
        text,
        "placement: copies {} (of {} destinations), media {} (of {} kinds), offsite {} (of {}), immutable {} (of {} locked)",
        rule.copies, reach.copies, rule.media, reach.media, rule.offsite, reach.offsite, rule.immutable, reach.immutable
    );
}

pub(super) async fn run(args: PlanArgs, out: Output) -> Result<u8> {
    let policy = crate::policy::load(&args.policy)?;
    if !policy.has_archives() && (args.check_access || args.create) {
        return Err(crate::report::usage(format!(
            "policy `{}` has no [[destination]] for --check-access or --create to probe; `offsite snapshot list --policy` reaches each [[snapshots]] region",
            policy.name
        )));
    }
    let encryption = recipients_words(&policy)?;
    let slots = slots(&policy);
    let reach = reach(&policy, &slots);
    let code = if reach.problems.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    };
    let rule = policy.placement;
    let access = if args.check_access || args.create {
        Some(probe(&policy, &args).await)
    } else {
        None
    };
    let code = if access.as_ref().is_some_and(|a| a.iter().any(|a| !a.ok)) {
        exit::FAILED
    } else {
        code
    };
    if out.json {
        let dests: Vec<_> = policy
            .destinations
            .iter()
            .zip(&slots)
            .map(|(d, s)| {
                json!({
                    "name": d.name,
                    "url": crate::policy::destination_url(d),
                    "kind": s.kind.as_str(),
                    "offsite": s.offsite,
                    "storage_class": d.storage_class,
                    "lock": d.lock.map(|l| l.as_str()),
                    "lock_days": d.lock_days,
                    "role": if s.replica { "replica" } else { "push" },
                    "retention": policy.retention_of(d).map(retention_words),
                })
            })
            .collect();
        out.print_json(&json!({
            "policy": policy.name,
            "file": args.policy.display().to_string(),
            "prefix": policy.prefix,
            "encryption": policy.has_archives().then_some(&encryption),
            "rpo": policy.rpo.map(|s| s.to_string()),
            "verify_every": policy.verify_every.map(|s| s.to_string()),
            "destinations": dests,
            "placement": policy.has_archives().then(|| json!({
                "copies": {"wanted": rule.copies, "possible": reach.copies},
                "media": {"wanted": rule.media, "possible": reach.media},
                "offsite": {"wanted": rule.offsite, "possible": reach.offsite},
                "immutable": {"wanted": rule.immutable, "possible": reach.immutable},
                "problems": reach.problems,
            })),
            "access": access,
            "snapshots": snapshot_words(&policy),
            "exit": code,
        }))?;
        return Ok(code);
    }
    let mut text = String::new();
    use std::fmt::Write as _;
    let rpo = policy.rpo.map_or("not set".into(), |s| s.to_string());
    if policy.has_archives() {
        let _ = writeln!(
            text,
            "policy {} ({}), prefix {}, encryption {encryption}",
            policy.name,
            args.policy.display(),
            policy.prefix.as_deref().unwrap_or("none"),
        );
        let _ = writeln!(
            text,
            "rpo {rpo}, verify-every {}",
            policy
                .verify_every
                .map_or("not set".into(), |s| s.to_string())
        );
        destinations_text(&mut text, &policy, &slots, &reach);
    } else {
        let _ = writeln!(
            text,
            "policy {} ({}), rpo {rpo}\nno [[destination]]: this policy makes volume snapshots only",
            policy.name,
            args.policy.display()
        );
    }
    for line in snapshot_words(&policy) {
        let _ = writeln!(text, "snapshots: {line}");
    }
    if !policy.has_archives() {
        let _ = writeln!(text, "the policy is valid.");
    } else if reach.problems.is_empty() {
        let _ = writeln!(text, "the policy is valid and its placement can be met.");
    }
    for a in access.iter().flatten() {
        let _ = writeln!(text, "{} ({}):", a.name, a.url);
        if let Some(c) = &a.create {
            let _ = writeln!(text, "  create   {c}");
        }
        for (what, result) in &a.checks {
            let _ = writeln!(text, "  {what:<8} {result}");
        }
    }
    crate::report::outln!("{}", text.trim_end())?;
    for p in &reach.problems {
        eprintln!("error: {p}");
    }
    for a in access.iter().flatten().filter(|a| !a.ok) {
        eprintln!(
            "error: destination {} could not be checked: see its lines above; fix its credentials, bucket or permissions (plan --create makes a missing bucket)",
            a.name
        );
    }
    if !reach.problems.is_empty() {
        eprintln!(
            "error: the policy is valid, but {} placement rule(s) cannot be met: add destinations or lower [placement]",
            reach.problems.len()
        );
    }
    Ok(code)
}
