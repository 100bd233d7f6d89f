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

pub(super) async fn run(args: PlanArgs, out: Output) -> Result<u8> {
    let policy = crate::policy::load(&args.policy)?;
    let encryption = recipients_words(&policy)?;
    let slots = slots(&policy);
    let reach = reach(&policy, &slots);
    let code = if reach.problems.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    };
    let rule = policy.placement;
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
            "encryption": encryption,
            "rpo": policy.rpo.map(|s| s.to_string()),
            "verify_every": policy.verify_every.map(|s| s.to_string()),
            "destinations": dests,
            "placement": {
                "copies": {"wanted": rule.copies, "possible": reach.copies},
                "media": {"wanted": rule.media, "possible": reach.media},
                "offsite": {"wanted": rule.offsite, "possible": reach.offsite},
                "immutable": {"wanted": rule.immutable, "possible": reach.immutable},
                "problems": reach.problems,
            },
            "exit": code,
        }))?;
        return Ok(code);
    }
    let mut text = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        text,
        "policy {} ({}), prefix {}, encryption {encryption}",
        policy.name,
        args.policy.display(),
        policy.prefix.as_deref().unwrap_or("none"),
    );
    let _ = writeln!(
        text,
        "rpo {}, verify-every {}",
        policy.rpo.map_or("not set".into(), |s| s.to_string()),
        policy
            .verify_every
            .map_or("not set".into(), |s| s.to_string())
    );
    let _ = writeln!(
        text,
        "{:<12} {:<6} {:<9} {:<14} {:<16} {:<8} URL",
        "DESTINATION", "KIND", "SITE", "CLASS", "LOCK", "ROLE"
    );
    for (d, s) in policy.destinations.iter().zip(&slots) {
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
    let _ = writeln!(
        text,
        "placement: copies {} (of {} destinations), media {} (of {} kinds), offsite {} (of {}), immutable {} (of {} locked)",
        rule.copies, reach.copies, rule.media, reach.media, rule.offsite, reach.offsite, rule.immutable, reach.immutable
    );
    if reach.problems.is_empty() {
        let _ = writeln!(text, "the policy is valid and its placement can be met.");
    }
    crate::report::outln!("{}", text.trim_end())?;
    for p in &reach.problems {
        eprintln!("error: {p}");
    }
    if !reach.problems.is_empty() {
        eprintln!(
            "error: the policy is valid, but {} placement rule(s) cannot be met: add destinations or lower [placement]",
            reach.problems.len()
        );
    }
    Ok(code)
}
