//! `offsite push`: encrypt an archive and store it at every destination.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use offsite_policies::encryption::{self, Recipient};
use offsite_policies::placement::{judge, slots, Held, Verdict};
use offsite_policies::policy::Policy;
use offsite_policies::signing::SigningKey;
use serde::Serialize;

use super::interrupt::{Ran, Signals, Stop};
use crate::archive::{validate_name, CreatedFrom, Digest};
use crate::engine::push::{
    self, Annotations, DestinationReport, PushReport, PushRequest, Source, Status,
};
use crate::metrics::{Metrics, MetricsArgs};
use crate::registry::Opened;
use crate::report::{exit, human_bytes, outln, time, usage, Output};

/// Arguments of `offsite push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The archive file, or `-` for standard input (then --name is required).
    #[arg(value_name = "FILE|-")]
    source: String,
    /// A destination URL; repeat for several: file:///var/backups/app (or /var/backups/app),
    /// s3://bucket/prefix?region=eu-west-1, gs://bucket/prefix, az://account/container/prefix,
    /// memory://name. Options go in the query (storage-class, lock, endpoint...; README.md).
    #[arg(long = "to", value_name = "URL")]
    to: Vec<String>,
    /// A policy file: destinations, encryption, prefix, storage classes and locks come from
    /// it, and the exit status says whether its placement was met. Without --to, the
    /// OFFSITE_POLICY environment variable names it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["to", "recipients", "recipients_files", "no_encrypt", "prefix", "sign_with"])]
    policy: Option<PathBuf>,
    /// The backup job's checksum file (`sha256sum` output, such as checksums.sha256): the
    /// source must match its line for the archive before anything is stored.
    #[arg(long, value_name = "FILE")]
    checksums: Option<PathBuf>,
    /// The backup job's metadata.json, carried into every manifest (at most 64 KiB of JSON).
    #[arg(long, value_name = "FILE")]
    metadata: Option<PathBuf>,
    #[command(flatten)]
    pub(super) metrics: MetricsArgs,
    /// An age recipient: an `age1...` key, or an `ssh-ed25519` / `ssh-rsa` public key line.
    #[arg(short = 'r', long = "recipient", value_name = "KEY")]
    recipients: Vec<String>,
    /// A file of recipients, one per line (`#` comments allowed), as `age -R` reads.
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    recipients_files: Vec<PathBuf>,
    /// Store the archive as it is, unencrypted. An explicit choice: push refuses to run without
    /// recipients otherwise.
    #[arg(long, conflicts_with_all = ["recipients", "recipients_files"])]
    no_encrypt: bool,
    /// Sign every manifest with this SSH signing key (`offsite keygen --signing -o FILE`; mode
    /// 0600): each manifest is then written as a signed envelope. With --policy, the policy's
    /// `[signing] key-file` says it instead.
    #[arg(long, value_name = "FILE", env = "OFFSITE_SIGNING_KEY_FILE")]
    sign_with: Option<PathBuf>,
    /// The archive's name (default: the file's name; required for stdin).
    #[arg(long)]
    name: Option<String>,
    /// A sub-prefix under every destination URL.
    #[arg(long)]
    prefix: Option<String>,
    /// Replace a different archive stored under the same name, at every destination (never a
    /// locked one). Without it, a different archive at any destination stops the whole push.
    #[arg(long)]
    overwrite: bool,
    /// Send the stream from memory to every destination without writing a spool first (for a
    /// stdin stream larger than the local disk). Nothing can then be resumed: a destination
    /// that fails, or a killed push, means pushing again. A name already stored anywhere is
    /// refused unless --overwrite (the stream cannot be compared before it is read).
    #[arg(long)]
    no_spool: bool,
}

/// Where a push goes: the URLs given, or a policy's destinations.
struct Destinations {
    policy: Option<Policy>,
    /// (name, url) per destination; the name is the URL without a policy.
    named: Vec<(String, String)>,
    prefix: Option<String>,
    recipients: Vec<Recipient>,
    no_encrypt: bool,
    /// The key that signs the manifests, read before anything else is.
    signing: Option<Arc<SigningKey>>,
}

fn destinations(args: &PushArgs) -> Result<Destinations> {
    // clap refuses --policy beside --to, -r, -R, --no-encrypt and --prefix.
    let chosen = crate::policy::resolve(args.policy.as_deref(), !args.to.is_empty(), false)?;
    if let Some(policy) = chosen {
        if let Some(f) = &args.sign_with {
            // OFFSITE_POLICY beside OFFSITE_SIGNING_KEY_FILE: clap sees no --policy to refuse.
            return Err(usage(format!(
                "--sign-with {} (or OFFSITE_SIGNING_KEY_FILE) cannot be combined with a policy: write key-file under [signing] in the policy instead",
                f.display()
            )));
        }
        crate::policy::need_archives(&policy, "push")?;
        let recipients = crate::policy::recipients(&policy)?;
        let no_encrypt = crate::policy::unencrypted(&policy);
        let named = crate::policy::locations(&policy, false);
        let signing = crate::policy::write_key(&policy)?.map(Arc::new);
        return Ok(Destinations {
            signing,
            prefix: policy.prefix.clone(),
            policy: Some(policy),
            named,
            recipients,
            no_encrypt,
        });
    }
    if args.to.is_empty() {
        return Err(usage(
            "push needs somewhere to go: --to URL (repeat for several), or --policy FILE (or OFFSITE_POLICY)",
        ));
    }
    let signing = match &args.sign_with {
        Some(f) => Some(Arc::new(crate::signing::read_signing_key(f)?)),
        None => None,
    };
    let mut recipients: Vec<Recipient> = Vec::new();
    for r in &args.recipients {
        recipients.push(Recipient::parse(r, "--recipient").map_err(|e| usage(e.to_string()))?);
    }
    for f in &args.recipients_files {
        recipients
            .extend(crate::policy::read_recipients_file(f).map_err(|e| usage(e.to_string()))?);
    }
    Ok(Destinations {
        policy: None,
        named: args.to.iter().map(|u| (u.clone(), u.clone())).collect(),
        prefix: args.prefix.clone(),
        recipients: encryption::dedup(recipients),
        no_encrypt: args.no_encrypt,
        signing,
    })
}

/// A request ready to run, with what the CLI needs to word its report.
struct Prepared {
    request: PushRequest,
    policy: Option<Policy>,
    named: Vec<(String, String)>,
    /// The source's size, for the progress bar.
    len: Option<u64>,
}

pub(super) async fn run(args: PushArgs, out: Output, m: &mut Metrics) -> Result<u8> {
    let signals = Signals::catch()?;
    let Prepared {
        mut request,
        policy,
        named,
        len,
    } = prepare(&args, &out, m).await?;
    let progress = out.progress(len, &request.name);
    request.progress = crate::report::observer(&progress);
    let name = request.name.clone();
    let urls: Vec<String> = named.iter().map(|(_, u)| u.clone()).collect();
    let ran = signals.run(push::run(request)).await;
    if let Some(pb) = progress {
        pb.finish_and_clear();
    }
    let report = match ran {
        Ran::Done(report) => report?,
        Ran::Stopped(stop, removed) => return Ok(stopped(&name, &urls, stop, &removed, out)),
    };
    let verdict = policy
        .as_ref()
        .map(|p| placement_verdict(p, &named, &report));
    record_metrics(m, &report, &named, verdict.as_ref());
    let code = exit_code(&report, verdict.as_ref());
    let warnings = warnings(&report);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let shown = Shown {
        report: &report,
        policy: policy.as_ref(),
        named: &named,
        verdict: verdict.as_ref(),
    };
    if out.json {
        out.print_json(&serde_json::to_value(shown.json(code, &warnings))?)?;
    } else {
        shown.text()?;
    }
    shown.errors();
    Ok(code)
}

/// A push stopped by a signal: what it left, and what a rerun does.
fn stopped(name: &str, urls: &[String], stop: Stop, removed: &[PathBuf], out: Output) -> u8 {
    let kept = push::stopped(name, urls);
    let rerun = match &kept {
        Some(k) => format!(
            "the complete spool {} ({}) is kept: running the same push again resumes from it, sending the same bytes and continuing any multipart upload it started",
            k.path.display(),
            human_bytes(k.size)
        ),
        None => "running the same push again encrypts the archive anew and stores it where it is not stored yet".into(),
    };
    if out.json {
        let v = serde_json::json!({
            "archive": name,
            "stopped": stop.name(),
            "removed": removed,
            "kept_spool": kept,
            "exit": stop.exit_code(),
        });
        let _ = out.print_json(&v);
    }
    eprintln!(
        "push of {name} stopped by {}{}; {rerun}",
        stop.name(),
        super::interrupt::removed_words(removed)
    );
    stop.exit_code()
}

/// Turns the arguments into a request: destinations, recipients, the source (checked against
/// `--checksums`), the metadata, the opened stores.
async fn prepare(args: &PushArgs, out: &Output, m: &mut Metrics) -> Result<Prepared> {
    let Destinations {
        policy,
        named,
        prefix,
        recipients,
        no_encrypt,
        signing,
    } = destinations(args)?;
    if let Some(p) = &policy {
        m.set_policy(&p.name);
    }
    if recipients.is_empty() && policy.is_some() && !no_encrypt {
        return Err(usage(
            "the policy names no recipients: add recipients or recipients-file to [encryption], or unencrypted = true to store archives unencrypted on purpose",
        ));
    }
    if recipients.is_empty() && !no_encrypt {
        return Err(usage(
            "no recipients: push encrypts by default; give --recipient KEY or --recipients-file FILE \
             (offsite keygen makes a key), or --no-encrypt to store the archive unencrypted on purpose",
        ));
    }
    let (source, name, len) = open_source(args)?;
    validate_name(&name, !recipients.is_empty()).map_err(usage)?;
    let clock = crate::engine::inventory::Clock {
        now: chrono::Utc::now(),
        tolerance: policy
            .as_ref()
            .map_or(offsite_policies::clock::DEFAULT_TOLERANCE, |p| {
                p.tolerance()
            }),
    };
    // Before a byte is read: a creation time ahead of the clock is refused.
    crate::engine::push::refuse_future(&name, &source, clock)?;
    let metadata = match &args.metadata {
        Some(f) => Some(read_metadata(f)?),
        None => None,
    };
    let (source, expect_plaintext) = match (&args.checksums, source) {
        (None, source) => (source, None),
        (Some(_), Source::Stdin) => return Err(usage(
            "--checksums needs a file source: standard input cannot be checked before it is stored",
        )),
        (Some(f), Source::File(file, path)) => {
            let want = checksum_for(f, &path, &name)?;
            let (source, digest) = check_source(file, path, &want, f, len, out).await?;
            (source, Some(digest))
        }
    };
    let urls: Vec<String> = named.iter().map(|(_, u)| u.clone()).collect();
    let destinations = crate::registry::open_all(&urls, prefix.as_deref()).await?;
    refuse_twice(&destinations)?;
    refuse_long_name(&name, &destinations)?;
    let request = PushRequest {
        source,
        name,
        recipients,
        destinations,
        overwrite: args.overwrite,
        progress: None,
        annotations: Annotations {
            policy: policy.as_ref().map(|p| p.name.clone()),
            metadata,
            signing,
        },
        expect_plaintext,
        no_spool: args.no_spool,
        clock,
    };
    Ok(Prepared {
        request,
        policy,
        named,
        len,
    })
}

/// The source, its archive name and its size (`None` for standard input).
fn open_source(args: &PushArgs) -> Result<(Source, String, Option<u64>)> {
    if args.source == "-" {
        let name = args.name.clone().ok_or_else(|| {
            usage("reading standard input needs --name NAME (the archive's name on the stores)")
        })?;
        return Ok((Source::Stdin, name, None));
    }
    let path = PathBuf::from(&args.source);
    let file = std::fs::File::open(&path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => {
                "it does not exist; check the path the backup job wrote".to_string()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied; run offsite as a user that can read it".to_string()
            }
            _ => e.to_string(),
        };
        usage(format!("cannot read the source {}: {why}", path.display()))
    })?;
    let md = file.metadata()?;
    if md.is_dir() {
        return Err(usage(format!(
            "the source {} is a directory; offsite pushes archive files (make one with tar first)",
            path.display()
        )));
    }
    let name = match &args.name {
        Some(n) => n.clone(),
        None => path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                usage(format!(
                    "{} has no usable file name; give --name",
                    path.display()
                ))
            })?
            .to_string(),
    };
    Ok((Source::File(file, path), name, Some(md.len())))
}

/// A name too long for a destination would fail there after the whole archive was read and
/// encrypted: refused before, with the limit.
fn refuse_long_name(name: &str, destinations: &[Opened]) -> Result<()> {
    for d in destinations {
        let (limit, why) = d.longest_name();
        if name.len() > limit {
            return Err(usage(format!(
                "the archive name is {} bytes, and {} takes names of at most {limit} bytes ({why}); give a shorter --name",
                name.len(),
                d.url()
            )));
        }
    }
    Ok(())
}

/// One destination given twice is a mistake: file:///x and file:///x/ are one directory, and
/// counting it twice would report two copies where there is one.
fn refuse_twice(destinations: &[Opened]) -> Result<()> {
    let mut seen: std::collections::HashMap<offsite_storage::Place, &str> =
        std::collections::HashMap::new();
    for d in destinations {
        if let Some(first) = seen.insert(d.location.place(), d.url()) {
            return Err(usage(format!(
                "destinations {first} and {} are one location: each copy must be in a different place; remove one",
                d.url()
            )));
        }
    }
    Ok(())
}

fn record_metrics(
    m: &mut Metrics,
    report: &PushReport,
    named: &[(String, String)],
    verdict: Option<&PushVerdict>,
) {
    if let Some(d) = &report.plaintext {
        m.set("offsite_archive_size_bytes", &[], d.size as f64);
    }
    if let Some(d) = &report.stored {
        m.set("offsite_archive_stored_bytes", &[], d.size as f64);
    }
    for (d, (dest_name, _)) in report.destinations.iter().zip(named) {
        let l = [("destination", dest_name.as_str())];
        m.flag(
            "offsite_destination_up",
            &l,
            matches!(d.status, Status::Stored | Status::AlreadyStored),
        );
        if let Some(t) = d.push {
            m.set("offsite_push_seconds", &l, t.seconds);
            if let Some(bps) = t.bytes_per_second {
                m.set("offsite_push_bytes_per_second", &l, bps);
            }
        }
    }
    if let Some(pv) = verdict {
        m.flag("offsite_placement_met", &[], pv.verdict.met);
    }
}

/// 0 when every destination holds the archive and the placement is met, 1 when none does, 3
/// in between.
fn exit_code(report: &PushReport, verdict: Option<&PushVerdict>) -> u8 {
    let held = report.stored_count();
    let met = verdict.is_none_or(|v| v.verdict.met);
    if held == 0 {
        exit::FAILED
    } else if held == report.destinations.len() && met {
        exit::OK
    } else {
        exit::PARTIAL
    }
}

/// An empty archive is stored (it may be what the job meant), but never without a word: it
/// is most often a backup job that failed before writing.
fn warnings(report: &PushReport) -> Vec<String> {
    let empty = report.plaintext.as_ref().is_some_and(|d| d.size == 0);
    empty
        .then(|| {
            format!(
                "{} is empty (0 bytes); it was stored as it is, but check the job that wrote it",
                report.archive
            )
        })
        .into_iter()
        .collect()
}

/// A push's report with what the CLI adds to it: the policy's names and its placement.
struct Shown<'a> {
    report: &'a PushReport,
    policy: Option<&'a Policy>,
    named: &'a [(String, String)],
    verdict: Option<&'a PushVerdict>,
}

/// `push --json`: the report, each destination named by the policy, the placement reached.
#[derive(Serialize)]
struct PushJson<'a> {
    archive: &'a str,
    created: DateTime<Utc>,
    created_from: CreatedFrom,
    encrypted: bool,
    plaintext: &'a Option<Digest>,
    stored: &'a Option<Digest>,
    resumed: bool,
    destinations: Vec<DestinationJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    placement: Option<PlacementJson<'a>>,
    exit: u8,
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    kept_spool: &'a Option<push::KeptSpool>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    swept: &'a [crate::engine::leftovers::Swept],
}

#[derive(Serialize)]
struct DestinationJson<'a> {
    #[serde(flatten)]
    report: &'a DestinationReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct PlacementJson<'a> {
    #[serde(flatten)]
    verdict: &'a Verdict,
    pending_replicas: &'a [String],
}

impl<'a> Shown<'a> {
    fn json(&self, exit: u8, warnings: &'a [String]) -> PushJson<'a> {
        let r = self.report;
        PushJson {
            archive: &r.archive,
            created: r.created,
            created_from: r.created_from,
            encrypted: r.encrypted,
            plaintext: &r.plaintext,
            stored: &r.stored,
            resumed: r.resumed,
            destinations: r
                .destinations
                .iter()
                .zip(self.named)
                .map(|(d, (n, _))| DestinationJson {
                    report: d,
                    name: self.policy.map(|_| n.as_str()),
                })
                .collect(),
            policy: self.policy.map(|p| p.name.as_str()),
            placement: self.verdict.map(|pv| PlacementJson {
                verdict: &pv.verdict,
                pending_replicas: &pv.pending,
            }),
            exit,
            warnings,
            kept_spool: &r.kept_spool,
            swept: &r.swept,
        }
    }

    fn text(&self) -> Result<()> {
        let report = self.report;
        // The size is unknown when nothing was read (every destination failed first).
        let size = report
            .plaintext
            .as_ref()
            .map(|d| format!("{}, ", human_bytes(d.size)))
            .unwrap_or_default();
        let how = if report.encrypted {
            "encrypted with age"
        } else {
            "unencrypted"
        };
        let resumed = if report.resumed {
            ", resumed from the spool of an earlier run"
        } else {
            ""
        };
        outln!(
            "{} ({size}created {}, {how}){resumed}",
            report.archive,
            time(&report.created),
        )?;
        for (d, (dest_name, _)) in report.destinations.iter().zip(self.named) {
            self.destination_lines(d, dest_name)?;
        }
        outln!(
            "{} of {} destinations hold the archive.",
            report.stored_count(),
            report.destinations.len()
        )?;
        if let (Some(p), Some(pv)) = (self.policy, self.verdict) {
            outln!("{}", placement_words(p, pv))?;
        }
        for s in &report.swept {
            let what = super::ls::leftover_words(&s.leftover);
            match &s.error {
                None => outln!("removed at {}: {what}", s.url)?,
                Some(e) => outln!("could not remove at {}: {what}: {e}", s.url)?,
            }
        }
        Ok(())
    }

    fn destination_lines(&self, d: &DestinationReport, dest_name: &str) -> Result<()> {
        let word = match d.status {
            Status::Stored => "stored",
            Status::AlreadyStored => "already stored",
            Status::Refused => "REFUSED",
            Status::Failed => "FAILED",
        };
        if self.policy.is_some() {
            outln!("  {word:<15} {dest_name:<12} {}  {}", d.url, d.key)?;
        } else {
            outln!("  {word:<15} {}  {}", d.url, d.key)?;
        }
        if let Some(m) = &d.message {
            outln!("  {:<15} {m}", "")?;
        }
        if let Some(t) = d.push {
            outln!(
                "  {:<15} stored in {} at {}",
                "",
                crate::units::seconds(t.seconds),
                crate::units::rate(t.bytes_per_second)
            )?;
        }
        if let Some((reused, total)) = d.resumed_parts {
            outln!(
                "  {:<15} resumed the earlier upload: {reused} of {total} parts were already on the server",
                ""
            )?;
        }
        Ok(())
    }

    /// What went wrong, on stderr: the placement missed, each destination refused or failed,
    /// and the spool kept for a rerun.
    fn errors(&self) {
        if let Some(k) = &self.report.kept_spool {
            eprintln!(
                "note: the spool {} ({}) is kept: running the same push again (same archive, same destinations) resumes from it, sending the same bytes where the copy failed instead of encrypting again",
                k.path.display(),
                human_bytes(k.size)
            );
        }
        if let Some(pv) = self.verdict.filter(|pv| !pv.verdict.met) {
            eprintln!(
                "error: placement not met: {}",
                pv.verdict.missing.join("; ")
            );
        }
        for d in self
            .report
            .destinations
            .iter()
            .filter(|d| matches!(d.status, Status::Failed | Status::Refused))
        {
            eprintln!(
                "error: {}: {}",
                d.url,
                d.message.as_deref().unwrap_or("failed")
            );
        }
    }
}

/// Reads a backup job's metadata.json: JSON, at most 64 KiB (it goes into every manifest).
fn read_metadata(path: &std::path::Path) -> Result<serde_json::Value> {
    const MAX: u64 = 64 << 10;
    let bytes = std::fs::read(path).map_err(|e| {
        usage(format!(
            "cannot read --metadata {}: {e}; give the metadata.json the backup job wrote",
            path.display()
        ))
    })?;
    if bytes.len() as u64 > MAX {
        return Err(usage(format!(
            "--metadata {} is {} bytes; at most {MAX} bytes of JSON go into a manifest",
            path.display(),
            bytes.len()
        )));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        usage(format!(
            "--metadata {} is not JSON ({e}); give the job's metadata.json",
            path.display()
        ))
    })
}

/// The SHA-256 that the checksum file `list` gives for the archive: the line whose file name
/// is the source's (or the archive's) name. `sha256sum` lines (`HEX  NAME`, `HEX *NAME`) and
/// BSD tags (`SHA256 (NAME) = HEX`) are read.
fn checksum_for(list: &std::path::Path, source: &std::path::Path, name: &str) -> Result<String> {
    let text = std::fs::read_to_string(list).map_err(|e| {
        usage(format!(
            "cannot read --checksums {}: {e}; give the checksums.sha256 the backup job wrote",
            list.display()
        ))
    })?;
    let file_name = source.file_name().and_then(|n| n.to_str()).unwrap_or(name);
    match find_checksum(&text, &[file_name, name]) {
        Ok(Some(hex)) => Ok(hex),
        Ok(None) => Err(usage(format!(
            "--checksums {} has no line for {file_name}; it lists {}",
            list.display(),
            listed_names(&text)
        ))),
        Err(line) => Err(usage(format!(
            "--checksums {}: line {line} is not a SHA-256 line (`HEX  NAME`, as sha256sum writes)",
            list.display()
        ))),
    }
}

/// The parsed lines of a checksum file: (hex, file name), or `Err(line number)`.
fn checksum_lines(text: &str) -> impl Iterator<Item = Result<(String, &str), usize>> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            return None;
        }
        let parsed = if let Some(rest) = line.strip_prefix("SHA256 (") {
            rest.rsplit_once(") = ")
                .map(|(n, h)| (h.trim().to_string(), n))
        } else {
            line.split_once(' ').map(|(h, n)| {
                let n = n
                    .strip_prefix(' ')
                    .or_else(|| n.strip_prefix('*'))
                    .unwrap_or(n);
                (h.to_string(), n)
            })
        };
        Some(match parsed {
            Some((h, n)) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok((h.to_ascii_lowercase(), n))
            }
            _ => Err(i + 1),
        })
    })
}

fn find_checksum(text: &str, names: &[&str]) -> Result<Option<String>, usize> {
    for line in checksum_lines(text) {
        let (hex, n) = line?;
        let base = n.rsplit('/').next().unwrap_or(n);
        if names.contains(&base) {
            return Ok(Some(hex));
        }
    }
    Ok(None)
}

fn listed_names(text: &str) -> String {
    let names: Vec<&str> = checksum_lines(text)
        .filter_map(|l| l.ok().map(|(_, n)| n))
        .collect();
    if names.is_empty() {
        "no files".into()
    } else {
        names.join(", ")
    }
}

/// Hashes the source and compares it with the checksum file's line; a mismatch stores nothing.
async fn check_source(
    file: std::fs::File,
    path: PathBuf,
    want: &str,
    list: &std::path::Path,
    len: Option<u64>,
    out: &Output,
) -> Result<(Source, Digest)> {
    let pb = out.progress(len, "checking");
    let (digest, rewound) = push::hash_file(file, path, crate::report::observer(&pb)).await?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    if digest.sha256 != want {
        return Err(anyhow::anyhow!(
            "the source does not match {}: it lists SHA-256 {want}, the file has {} ({} bytes); nothing was stored. The backup job's output is damaged or was changed after it was checksummed: rerun the job",
            list.display(),
            digest.sha256,
            digest.size
        ));
    }
    Ok((rewound, digest))
}

/// The placement a push reached: the copies it holds now, and replicas still to be filled by
/// `replicate` counted as pending (status judges them once they exist).
struct PushVerdict {
    verdict: Verdict,
    pending: Vec<String>,
}

fn placement_verdict(
    policy: &Policy,
    named: &[(String, String)],
    report: &PushReport,
) -> PushVerdict {
    let slots = slots(policy);
    let now = chrono::Utc::now();
    let mut held: Vec<Held> = Vec::new();
    for (d, (name, _)) in report.destinations.iter().zip(named) {
        if !matches!(d.status, Status::Stored | Status::AlreadyStored) {
            continue;
        }
        if let Some(slot) = slots.iter().position(|s| &s.name == name) {
            held.push(Held {
                slot,
                locked: d.retain_until.is_some_and(|t| t > now),
            });
        }
    }
    let mut pending = Vec::new();
    for (slot, s) in slots.iter().enumerate().filter(|(_, s)| s.replica) {
        held.push(Held {
            slot,
            locked: s.locked,
        });
        pending.push(s.name.clone());
    }
    PushVerdict {
        verdict: judge(policy.placement, &slots, &held),
        pending,
    }
}

fn placement_words(policy: &Policy, pv: &PushVerdict) -> String {
    let r = policy.placement;
    let v = &pv.verdict;
    let counts = format!(
        "copies {}/{}, media {}/{}, offsite {}/{}, immutable {}/{}",
        v.copies, r.copies, v.media, r.media, v.offsite, r.offsite, v.immutable, r.immutable
    );
    let pending = if pv.pending.is_empty() {
        String::new()
    } else {
        format!(
            ", counting {} as replicated (offsite replicate fills {})",
            pv.pending.join(", "),
            if pv.pending.len() == 1 { "it" } else { "them" }
        )
    };
    if v.met {
        format!(
            "placement of policy {} met: {counts}{pending}.",
            policy.name
        )
    } else {
        format!(
            "placement of policy {} NOT met: {counts}{pending}; missing: {}.",
            policy.name,
            v.missing.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const B: &str = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";

    #[test]
    fn reads_sha256sum_and_bsd_lines() {
        let text = format!(
            "# made by backup.sh\n{A}  ./out/db-backup.tar.gz\n{B} *app-backup-20261126_020000.tar.gz\nSHA256 (metadata.json) = {A}\n"
        );
        assert_eq!(
            find_checksum(&text, &["app-backup-20261126_020000.tar.gz"]),
            Ok(Some(B.to_ascii_lowercase()))
        );
        assert_eq!(
            find_checksum(&text, &["db-backup.tar.gz"]),
            Ok(Some(A.into()))
        );
        assert_eq!(find_checksum(&text, &["metadata.json"]), Ok(Some(A.into())));
        assert_eq!(find_checksum(&text, &["other.tar.gz"]), Ok(None));
        assert_eq!(find_checksum("nonsense here\n", &["x"]), Err(1));
        assert_eq!(
            listed_names(&text),
            "./out/db-backup.tar.gz, app-backup-20261126_020000.tar.gz, metadata.json"
        );
    }
}
