//! `offsite restore`: an archive back from the first healthy copy.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use clap::{ArgGroup, Args};
use serde::Serialize;

use super::interrupt::{Ran, Signals, Stop};
use super::IdentityArgs;
use crate::archive::parse_time_arg;
use crate::engine::identity::{Identities, IdentityFile};
use crate::engine::restore::{
    self, AttemptResult, RestoreReport, RestoreRequest, Selector, Target,
};
use crate::report::{exit, usage, Output};

/// Arguments of `offsite restore`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").required(true).args(["archive", "latest", "at"])))]
pub struct RestoreArgs {
    /// Locations, in the order to try them; the first healthy copy wins.
    #[arg(value_name = "URL")]
    urls: Vec<String>,
    #[command(flatten)]
    policy: super::PolicyArgs,
    /// The archive's name.
    #[arg(long, value_name = "NAME")]
    archive: Option<String>,
    /// The newest complete archive.
    #[arg(long)]
    latest: bool,
    /// The newest archive created at or before TIME (RFC 3339, YYYY-MM-DD[THH:MM], or
    /// YYYYMMDD[_HHMMSS] as in archive names; UTC).
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Where to write the archive: a file, an existing directory (the archive is written into
    /// it under its name), or `-` for standard output. With --extract: the directory the
    /// members are written into (created if missing). Not needed with --list or --metadata.
    #[arg(
        short,
        long,
        value_name = "PATH|-",
        required_unless_present_any = ["list", "metadata"]
    )]
    output: Option<String>,
    /// Replace PATH if it exists (with --extract: files that exist under the directory).
    #[arg(long)]
    force: bool,
    /// Write only this member of a tar archive (plain, gzip or zstd), or everything under this
    /// directory in it, into -o DIR at its path in the archive (`-o x --extract src/patterns`
    /// writes x/src/patterns/...). Repeatable. The whole archive is still read and its SHA-256
    /// verified before anything is put in place; a member that would land outside DIR (an
    /// absolute path, `..`, a link pointing out) is refused by name and nothing is written.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["list", "metadata"])]
    extract: Vec<String>,
    /// Print the members of a tar archive (type, size, path) without writing anything; the
    /// whole archive is still read and its SHA-256 verified before the list is printed.
    #[arg(long, conflicts_with_all = ["output", "force", "metadata"])]
    list: bool,
    /// Print the chosen archive's `metadata` (the backup job's metadata.json, `push
    /// --metadata`) from its manifest, without downloading the archive.
    #[arg(long, conflicts_with_all = ["output", "force", "thaw"])]
    metadata: bool,
    /// When a copy is in an archive tier (S3 GLACIER / DEEP_ARCHIVE, Azure Archive), ask the
    /// provider to bring it back (S3 RestoreObject; Azure rehydration to Hot) so that a later
    /// run can read it. GCS reads every class directly and needs no thaw.
    #[arg(long)]
    thaw: bool,
    /// How many days a thawed S3 copy stays readable (Azure keeps a rehydrated blob in Hot).
    #[arg(long, value_name = "DAYS", default_value_t = 3, requires = "thaw")]
    thaw_days: u32,
    #[command(flatten)]
    identity: IdentityArgs,
    #[command(flatten)]
    trust: super::TrustArgs,
    /// Restore the archive --archive names even when its manifest is untrusted (not signed
    /// by a trusted key): only after checking where it came from.
    #[arg(long, requires = "archive")]
    allow_untrusted: bool,
    /// A sub-prefix under every URL.
    #[arg(long)]
    prefix: Option<String>,
}

pub(super) async fn run(args: RestoreArgs, out: Output) -> Result<u8> {
    let signals = Signals::catch()?;
    // clap lets --allow-untrusted through beside --latest / --at despite `requires`.
    if args.allow_untrusted && args.archive.is_none() {
        return Err(usage(
            "--allow-untrusted needs --archive NAME: --latest and --at never restore an untrusted archive; name the one you checked",
        ));
    }
    let selector = match (&args.archive, args.latest, &args.at) {
        (Some(n), _, _) => Selector::Name(n.clone()),
        (_, true, _) => Selector::Latest,
        (_, _, Some(t)) => {
            Selector::At(parse_time_arg(t).map_err(|e| usage(format!("--at: {e}")))?)
        }
        _ => unreachable!("clap requires one of --archive, --latest, --at"),
    };
    let target = target(&args, out)?;
    let identities = args
        .identity
        .identity
        .as_deref()
        .map(identities)
        .transpose()?;
    // A policy's destinations are tried in the order it lists them, replicas included.
    let place = args
        .policy
        .resolve("restore", &args.urls, args.prefix.as_deref())?;
    let judge = args.trust.judge(place.policy.as_ref())?;
    let locations = place.open().await?;
    let pb = (!args.metadata)
        .then(|| out.progress(None, "restore"))
        .flatten();
    let request = RestoreRequest {
        locations: &locations,
        selector,
        target,
        identities,
        thaw_days: args.thaw.then_some(args.thaw_days),
        progress: crate::report::observer(&pb),
        judge,
        allow_untrusted: args.allow_untrusted,
    };
    if args.metadata {
        return print_metadata(&restore::metadata(&request).await?, out);
    }
    let ran = signals.run(restore::run(&request)).await;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let output = args.output.as_deref();
    match ran {
        Ran::Done(res) => {
            print(&res?, out)?;
            Ok(exit::OK)
        }
        Ran::Stopped(stop, removed) => Ok(stopped(output, stop, &removed, out)),
    }
}

/// Where the restore goes: a file, a directory, standard output, the members of `--extract`,
/// or nowhere (`--list`, `--metadata`).
fn target(args: &RestoreArgs, out: Output) -> Result<Target> {
    let output = args.output.as_deref();
    if !args.extract.is_empty() {
        return match output {
            Some("-") | None => Err(usage(
                "--extract writes members into a directory: give -o DIR (not -)",
            )),
            Some(dir) if Path::new(dir).exists() && !Path::new(dir).is_dir() => Err(usage(
                format!("-o {dir} is not a directory; --extract writes members into a directory (created if missing)"),
            )),
            Some(dir) => Ok(Target::Extract {
                dir: PathBuf::from(dir),
                paths: args.extract.clone(),
                force: args.force,
            }),
        };
    }
    if args.list || args.metadata {
        return Ok(Target::List);
    }
    let output = output.expect("clap requires -o without --list or --metadata");
    Ok(if output == "-" {
        if out.json {
            return Err(usage(
                "--json cannot share standard output with -o -; write to a file",
            ));
        }
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            return Err(usage(
                "-o - would write the archive's bytes onto this terminal; redirect standard output (> FILE, | tar x) or give -o FILE",
            ));
        }
        Target::Stdout
    } else {
        Target::File {
            path: PathBuf::from(output),
            force: args.force,
        }
    })
}

/// `--metadata`: the manifest's `metadata` as JSON on standard output (`--json`: inside the
/// report), the archive and where it was read on stderr. An archive pushed without
/// `--metadata` has none: exit 1.
fn print_metadata(report: &restore::MetadataReport, out: Output) -> Result<u8> {
    let Some(metadata) = &report.metadata else {
        return Err(anyhow::anyhow!(
            "{} (from {}) was pushed without --metadata: its manifest holds no metadata",
            report.archive,
            report.from
        ));
    };
    if out.json {
        let mut v = serde_json::to_value(report)?;
        v["exit"] = exit::OK.into();
        out.print_json(&v)?;
        return Ok(exit::OK);
    }
    crate::report::dataln!("{}", serde_json::to_string_pretty(metadata)?)?;
    if !crate::report::quiet() {
        eprintln!(
            "metadata of {} (created {}) from the manifest at {}; the archive was not downloaded",
            report.archive,
            report.created.format("%Y-%m-%dT%H:%M:%SZ"),
            report.from
        );
    }
    Ok(exit::OK)
}

/// A restore stopped by a signal: its partial file is gone, nothing is at the target.
fn stopped(output: Option<&str>, stop: Stop, removed: &[PathBuf], out: Output) -> u8 {
    if out.json {
        let v = serde_json::json!({
            "stopped": stop.name(),
            "removed": removed,
            "exit": stop.exit_code(),
        });
        let _ = out.print_json(&v);
    }
    let left = match output {
        Some("-") => "standard output has part of the archive, which must not be used".to_string(),
        Some(output) => format!("nothing was written at {output}"),
        None => "nothing was written".to_string(),
    };
    eprintln!(
        "restore stopped by {}{}; {left}: running the same restore again restores it from the start",
        stop.name(),
        super::interrupt::removed_words(removed)
    );
    stop.exit_code()
}

/// Loads an identity file for the engine, showing the warning about a file others can read
/// (before a parse error, as that comes second).
pub(super) fn identities(path: &Path) -> Result<Arc<Identities>> {
    let file = IdentityFile::read(path).map_err(|e| usage(format!("{e:#}")))?;
    if let Some(warning) = &file.warning {
        eprintln!("warning: {warning}");
    }
    Ok(Arc::new(file.parse().map_err(|e| usage(format!("{e:#}")))?))
}

/// The report as `--json` (with the exit status) or text.
fn print(report: &RestoreReport, out: Output) -> Result<()> {
    for p in &report.swept {
        eprintln!(
            "removed {}: the partial file of an earlier restore to the same target that was killed",
            p.display()
        );
    }
    for why in &report.passed_over {
        eprintln!("warning: passed over {why}");
    }
    if out.json {
        #[derive(Serialize)]
        struct Json<'a> {
            #[serde(flatten)]
            report: &'a RestoreReport,
            exit: u8,
        }
        let json = Json {
            report,
            exit: exit::OK,
        };
        return out.print_json(&serde_json::to_value(json)?);
    }
    for a in report
        .attempts
        .iter()
        .filter(|a| a.result != AttemptResult::Restored)
    {
        eprintln!("warning: {} {}: {}", a.result, a.url, a.detail);
    }
    if let Some(members) = &report.members {
        for m in members {
            let link = m
                .link
                .as_deref()
                .map(|l| format!(" -> {}", escaped(l)))
                .unwrap_or_default();
            crate::report::dataln!("{:<8} {:>12} {}{link}", m.kind, m.size, escaped(&m.path))?;
        }
    }
    if crate::report::quiet() {
        return Ok(());
    }
    let verified = format!(
        "SHA-256 {} of the whole archive ({}) verified",
        report.sha256.as_deref().unwrap_or(""),
        crate::units::human_bytes(report.size.unwrap_or(0)),
    );
    let from = report.from.as_deref().unwrap_or("?");
    if let Some(members) = &report.members {
        eprintln!(
            "listed {} member(s) of {} from {from}: {verified}; nothing was written",
            members.len(),
            report.archive
        );
        return Ok(());
    }
    if let Some(x) = &report.extracted {
        let written: Vec<String> = x.written.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "extracted {} member(s) ({}) of {} from {from} into {}: {}; {verified} before they were put in place",
            x.members,
            crate::units::human_bytes(x.bytes),
            report.archive,
            report.output.as_deref().map(|p| p.display().to_string()).unwrap_or_default(),
            written.join(", ")
        );
        return Ok(());
    }
    let dest = match &report.output {
        None => "standard output".to_string(),
        Some(path) => path.display().to_string(),
    };
    eprintln!(
        "restored {} from {} to {dest}: {}, SHA-256 {} verified{}",
        report.archive,
        report.from.as_deref().unwrap_or("?"),
        crate::units::human_bytes(report.size.unwrap_or(0)),
        report.sha256.as_deref().unwrap_or(""),
        if report.fell_back() {
            " (after falling back past a bad copy)"
        } else {
            ""
        }
    );
    Ok(())
}

/// A member's path as one line: control characters (a newline in a file name would forge a
/// row) written as escapes (`\n`, `\t`, `\u{1b}`), as `tar -t` escapes them.
fn escaped(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.chars().any(char::is_control) {
        return path.into();
    }
    path.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn listed_paths_are_one_line_each() {
        assert_eq!(super::escaped("a/b.txt"), "a/b.txt");
        assert_eq!(super::escaped("a\nfake 0 row"), "a\\nfake 0 row");
        assert_eq!(super::escaped("x\u{1b}[2J"), "x\\u{1b}[2J");
    }
}
