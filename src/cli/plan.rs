//! `offsite plan`: validate a policy and show what its destinations can reach against its
//! placement rule, naming each rule that cannot be met.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use offsite_policies::placement::{reach, slots, Reach, Slot};
use offsite_policies::policy::{Keep, Policy, Retention};
use offsite_policies::rto::{RtoPlan, Thaw};
use serde::Serialize;

use crate::engine::access::{probe, Access, ProbeRequest};
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
        ("keep-within-hourly", r.keep_within_hourly),
        ("keep-within-daily", r.keep_within_daily),
        ("keep-within-weekly", r.keep_within_weekly),
        ("keep-within-monthly", r.keep_within_monthly),
        ("keep-within-yearly", r.keep_within_yearly),
        ("max-age", r.max_age),
        ("min-age", r.min_age),
    ] {
        if let Some(s) = s {
            w.push(format!("{name} {}", span_words(s)));
        }
    }
    if w.is_empty() {
        "keep everything".into()
    } else {
        w.join(", ")
    }
}

/// A duration as written and in words, so that no unit is misread: `26h (26 hours)`,
/// `6mo (6 months)`.
fn span_words(s: offsite_policies::duration::Span) -> String {
    format!("{s} ({})", s.words())
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

/// The destination table, each destination's retention and thaw time, and the placement line.
fn destinations_text(
    text: &mut String,
    policy: &Policy,
    slots: &[Slot],
    reach: &Reach,
    rto: &RtoPlan,
) {
    use std::fmt::Write as _;
    let _ = writeln!(
        text,
        "{:<12} {:<6} {:<9} {:<14} {:<16} {:<8} URL",
        "DESTINATION", "KIND", "SITE", "CLASS", "LOCK", "ROLE"
    );
    for (i, (d, s)) in policy.destinations.iter().zip(slots).enumerate() {
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
        if let Some(line) = restore_words(policy, rto, i) {
            let _ = writeln!(text, "{:<12} restore: {line}", "");
        }
    }
    let rule = policy.placement;
    let _ = writeln!(
        text,
        "placement: copies {} (of {} destinations), media {} (of {} kinds), offsite {} (of {}), immutable {} (of {} locked)",
        rule.copies, reach.copies, rule.media, reach.media, rule.offsite, reach.offsite, rule.immutable, reach.immutable
    );
}

/// A destination's thaw time in words, and whether that alone keeps it from the rto: `S3
/// GLACIER needs up to 5 hours to thaw first`, or `can never restore within rto 1h (1 hour):
/// ...`. `None` for a class read directly.
fn restore_words(policy: &Policy, rto: &RtoPlan, i: usize) -> Option<String> {
    let thaw: Thaw = rto.thaws[i]?;
    Some(match policy.rto {
        Some(span) if rto.never[i] => {
            format!("can never restore within rto {}: {thaw}", span_words(span))
        }
        _ => format!("{thaw} first"),
    })
}

/// What `plan` found: the policy read and judged, and each destination probed when asked.
struct Found<'a> {
    policy: &'a Policy,
    file: &'a std::path::Path,
    encryption: String,
    slots: Vec<Slot>,
    reach: Reach,
    /// Each destination's thaw time against the rto.
    rto: RtoPlan,
    access: Option<Vec<Access>>,
    /// Whether readers check signatures (`[signing] trusted` or `trusted-file`).
    checks_signatures: bool,
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
    // A key push could not read fails the plan, as it would fail every push.
    crate::policy::write_key(&policy)?;
    // So does a trusted key (or file) readers could not read.
    let checks_signatures = crate::policy::trusted_signers(Some(&policy), &[], &[])?.configured();
    let slots = slots(&policy);
    let reach = reach(&policy, &slots);
    let rto = offsite_policies::rto::plan(&policy, &slots, chrono::Utc::now());
    let access = if args.check_access || args.create {
        let req = ProbeRequest {
            create: args.create,
            check_access: args.check_access,
            project: args.project.clone(),
        };
        Some(probe(&policy, &req).await)
    } else {
        None
    };
    let code = if access.as_ref().is_some_and(|a| a.iter().any(|a| !a.ok)) {
        exit::FAILED
    } else if reach.problems.is_empty() && rto.problem.is_none() {
        exit::OK
    } else {
        exit::PARTIAL
    };
    let found = Found {
        policy: &policy,
        file: &args.policy,
        encryption,
        slots,
        reach,
        rto,
        access,
        checks_signatures,
    };
    if out.json {
        out.print_json(&serde_json::to_value(json(&found, code))?)?;
    } else {
        print_text(&found)?;
    }
    Ok(code)
}

/// `--json`.
#[derive(Serialize)]
struct Json<'a> {
    policy: &'a str,
    file: String,
    prefix: Option<&'a str>,
    encryption: Option<&'a str>,
    /// The key file that signs manifests (`[signing] key-file`), if any.
    signing: Option<String>,
    /// Whether readers check manifests' signatures (`[signing] trusted` / `trusted-file`):
    /// without it, anyone who can write to a destination can plant an archive.
    signatures_checked: bool,
    rpo: Option<String>,
    rto: Option<String>,
    /// The rto cannot be met: every destination's thaw time alone is that long.
    rto_problem: Option<&'a str>,
    verify_every: Option<String>,
    /// How far a creation time may run ahead of the clocks before it is future-dated.
    clock_tolerance: String,
    destinations: Vec<JsonDestination<'a>>,
    placement: Option<JsonPlacement<'a>>,
    access: Option<&'a [Access]>,
    snapshots: Vec<String>,
    exit: u8,
}

/// One destination in `--json`.
#[derive(Serialize)]
struct JsonDestination<'a> {
    name: &'a str,
    url: String,
    kind: &'static str,
    offsite: bool,
    storage_class: Option<&'a str>,
    lock: Option<&'static str>,
    lock_days: Option<u32>,
    role: &'static str,
    retention: Option<String>,
    /// The storage class's thaw time, for an archive class.
    thaw: Option<Thaw>,
    /// Whether its thaw time alone keeps it from restoring within the rto.
    rto_never: bool,
}

/// The placement rule against what the destinations reach, in `--json`.
#[derive(Serialize)]
struct JsonPlacement<'a> {
    copies: Wanted,
    media: Wanted,
    offsite: Wanted,
    immutable: Wanted,
    problems: &'a [String],
}

/// A rule's number and what the destinations can reach.
#[derive(Serialize)]
struct Wanted {
    wanted: u32,
    possible: u32,
}

fn json<'a>(f: &'a Found<'a>, code: u8) -> Json<'a> {
    let policy = f.policy;
    let (rule, reach) = (policy.placement, &f.reach);
    let wanted = |wanted, possible| Wanted { wanted, possible };
    Json {
        policy: &policy.name,
        file: f.file.display().to_string(),
        prefix: policy.prefix.as_deref(),
        encryption: policy.has_archives().then_some(f.encryption.as_str()),
        signing: policy
            .signing
            .as_ref()
            .and_then(|s| s.key_file.as_ref())
            .map(|k| k.display().to_string()),
        signatures_checked: f.checks_signatures,
        rpo: policy.rpo.map(|s| s.to_string()),
        rto: policy.rto.map(|s| s.to_string()),
        rto_problem: f.rto.problem.as_deref(),
        verify_every: policy.verify_every.map(|s| s.to_string()),
        clock_tolerance: policy.tolerance().to_string(),
        destinations: policy
            .destinations
            .iter()
            .zip(&f.slots)
            .enumerate()
            .map(|(i, (d, s))| JsonDestination {
                name: &d.name,
                url: crate::policy::destination_url(d),
                kind: s.kind.as_str(),
                offsite: s.offsite,
                storage_class: d.storage_class.as_deref(),
                lock: d.lock.map(|l| l.as_str()),
                lock_days: d.lock_days,
                role: if s.replica { "replica" } else { "push" },
                retention: policy.retention_of(d).map(retention_words),
                thaw: f.rto.thaws[i],
                rto_never: f.rto.never[i],
            })
            .collect(),
        placement: policy.has_archives().then(|| JsonPlacement {
            copies: wanted(rule.copies, reach.copies),
            media: wanted(rule.media, reach.media),
            offsite: wanted(rule.offsite, reach.offsite),
            immutable: wanted(rule.immutable, reach.immutable),
            problems: &reach.problems,
        }),
        access: f.access.as_deref(),
        snapshots: snapshot_words(policy),
        exit: code,
    }
}

/// The policy in words, what each destination's probe found, and the problems on stderr.
fn print_text(f: &Found) -> Result<()> {
    use std::fmt::Write as _;
    let (policy, reach) = (f.policy, &f.reach);
    let mut text = String::new();
    let rpo = policy.rpo.map_or("not set".into(), span_words);
    if policy.has_archives() {
        let _ = writeln!(
            text,
            "policy {} ({}), prefix {}, encryption {}",
            policy.name,
            f.file.display(),
            policy.prefix.as_deref().unwrap_or("none"),
            f.encryption,
        );
        let _ = writeln!(text, "{}", signing_words(policy, f.checks_signatures));
        let _ = writeln!(
            text,
            "rpo {rpo}, rto {}, verify-every {}, clock-tolerance {}",
            policy.rto.map_or("not set".into(), span_words),
            policy.verify_every.map_or("not set".into(), span_words),
            span_words(policy.tolerance())
        );
        destinations_text(&mut text, policy, &f.slots, reach, &f.rto);
    } else {
        let _ = writeln!(
            text,
            "policy {} ({}), rpo {rpo}\nno [[destination]]: this policy makes volume snapshots only",
            policy.name,
            f.file.display()
        );
    }
    for line in snapshot_words(policy) {
        let _ = writeln!(text, "snapshots: {line}");
    }
    if !policy.has_archives() {
        let _ = writeln!(text, "the policy is valid.");
    } else if reach.problems.is_empty() && f.rto.problem.is_none() {
        let _ = writeln!(text, "the policy is valid and its placement can be met.");
    }
    access_text(&mut text, f.access.as_deref().unwrap_or_default());
    crate::report::outln!("{}", text.trim_end())?;
    print_problems(f);
    Ok(())
}

/// Each probed destination's lines.
fn access_text(text: &mut String, access: &[Access]) {
    use std::fmt::Write as _;
    for a in access {
        let _ = writeln!(text, "{} ({}):", a.name, a.url);
        if let Some(c) = &a.create {
            let _ = writeln!(text, "  create   {c}");
        }
        for c in &a.checks {
            let _ = writeln!(text, "  {:<8} {}", c.step.word(), c.outcome);
        }
    }
}

/// The placement problems and the destinations that could not be checked, on stderr.
fn print_problems(f: &Found) {
    let problems = &f.reach.problems;
    // Each is a rule of `[placement]` against the destinations: told at the table's line.
    let at = std::fs::read_to_string(f.file)
        .ok()
        .and_then(|text| {
            offsite_policies::policy::line_at(
                &text,
                &[offsite_policies::policy::Step::Key("placement")],
            )
        })
        .map(|l| format!("{}:{l}: ", f.file.display()))
        .unwrap_or_default();
    for p in problems {
        eprintln!("error: {at}{p}");
    }
    for a in f.access.iter().flatten().filter(|a| !a.ok) {
        eprintln!(
            "error: destination {} could not be checked: see its lines above; fix its credentials, bucket or permissions (plan --create makes a missing bucket)",
            a.name
        );
    }
    if !problems.is_empty() {
        eprintln!(
            "error: the policy is valid, but {} placement rule(s) cannot be met: add destinations or lower [placement]",
            problems.len()
        );
    }
    if let Some(p) = &f.rto.problem {
        eprintln!("error: {p}");
    }
}

/// What the policy's `[signing]` does, in one line; without trusted keys, what that allows.
fn signing_words(policy: &Policy, checks: bool) -> String {
    let key = policy
        .signing
        .as_ref()
        .and_then(|s| s.key_file.as_ref())
        .map(|k| format!("manifests signed with {}", k.display()));
    match (key, checks) {
        (Some(k), true) => format!("signing: {k}; readers trust only signed archives"),
        (Some(k), false) => format!(
            "signing: {k}, but no trusted keys: readers do not check signatures (add trusted or trusted-file under [signing])"
        ),
        (None, true) => "signing: this host signs nothing; readers trust only signed archives".into(),
        (None, false) => "signing: archives are not signed: anyone who can write to a destination and knows the recipient can plant an archive that restore --latest would return (see README, Signing)".into(),
    }
}
