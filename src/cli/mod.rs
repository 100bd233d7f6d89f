//! The command line: one file per subcommand; help, man page and completions come from these
//! clap definitions.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::metrics::Metrics;
use crate::report::{exit, Output};

mod completions;
mod create;
mod drill;
mod interrupt;
mod keygen;
mod ls;
mod plan;
mod prune;
mod push;
mod replicate;
mod restore;
mod sign;
mod snapshot;
mod status;
mod verify;

/// Get backups off the machine that made them: encrypt with age, place copies on local disk
/// and cloud stores, verify them, restore them.
#[derive(Debug, Parser)]
#[command(
    name = "offsite",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit codes: 0 success; 1 failed or could not read; 2 usage or configuration; \
3 stored, created or valid, but a destination or a snapshot copy failed, or a rule (placement, rpo, rto, verify-every) is not met; \
4 a copy is missing or corrupt (or, for replicate, failed verification); 5 prune, snapshot prune \
or replicate refused by a safety rail (nothing deleted); 130 / 143 push or restore stopped by SIGINT / SIGTERM \
(what it was writing removed). \
See README.md for each command's meaning."
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Print JSON on stdout instead of text: one document with `exit` (ls and replicate: JSON
    /// Lines, one object a line with a `type`, the last one carrying `exit`); a failure too.
    #[arg(long, global = true)]
    json: bool,
    /// More of offsite's own logging on stderr (-v info, -vv debug, -vvv trace); the SDKs
    /// underneath log only through RUST_LOG (such as RUST_LOG=aws_smithy_runtime=debug), which
    /// replaces these levels.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Errors and warnings only: no report on stdout (a key's recipient and --json are still
    /// printed), no progress bar, no retry lines; for cron jobs and hooks.
    #[arg(
        short,
        long,
        global = true,
        env = "OFFSITE_QUIET",
        conflicts_with = "verbose"
    )]
    quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Encrypt an archive and store it at every destination.
    Push(push::PushArgs),
    /// List the archives at a location.
    Ls(ls::LsArgs),
    /// Check stored copies: quick (no download) or --deep (download, decrypt, hash).
    Verify(verify::VerifyArgs),
    /// Restore an archive from the first healthy copy.
    Restore(restore::RestoreArgs),
    /// Create the directory, bucket or container a URL points into.
    Create(create::CreateArgs),
    /// Validate a policy: what its destinations can reach (placement, rto) and its snapshots.
    Plan(plan::PlanArgs),
    /// Judge a policy's rules over its destinations and snapshots: a monitoring probe.
    Status(status::StatusArgs),
    /// Restore each destination's newest archive to nowhere: prove it and time the restore.
    Drill(drill::DrillArgs),
    /// Delete what a policy's retention no longer keeps, behind safety rails; extend locks.
    Prune(prune::PruneArgs),
    /// Copy what a source holds to other locations: incremental, verified, resumable.
    Replicate(replicate::ReplicateArgs),
    /// Volume snapshots (EBS, GCP disks, Azure disks): create, list, restore, delete, prune.
    Snapshot(snapshot::SnapshotArgs),
    /// Sign the manifests of a policy's unsigned archives after checking their bytes.
    Sign(sign::SignArgs),
    /// Make an age identity and print its recipient, or with --signing an SSH signing key.
    Keygen(keygen::KeygenArgs),
    /// Print shell completions.
    Completions(completions::CompletionsArgs),
    /// Print a man page (roff), or write them all with --dir.
    Man(completions::ManArgs),
}

/// Identity selection shared by verify and restore.
#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// age identity file (AGE-SECRET-KEY-1... lines, or an unencrypted SSH private key).
    #[arg(long, short = 'i', env = "OFFSITE_IDENTITY_FILE", value_name = "FILE")]
    identity: Option<PathBuf>,
}

/// How the inventory of a location is read, shared by the commands that read every manifest.
#[derive(Debug, Clone, Copy, Args)]
pub struct InventoryArgs {
    /// Manifest reads (and quick checks) in flight at once per location [default: 32 for s3://,
    /// 16 for gs:// and az://, 8 for file://].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=512))]
    jobs: Option<u16>,
    /// Read every manifest from the store, and neither use nor update the local inventory
    /// cache (kept for s3://, gs:// and az:// under the cache directory's `inventory/`).
    #[arg(long)]
    no_cache: bool,
}

impl InventoryArgs {
    fn options(
        self,
        judge: crate::engine::inventory::Judge,
    ) -> crate::engine::inventory::ReadOptions {
        crate::engine::inventory::ReadOptions {
            jobs: self.jobs.map(usize::from),
            no_cache: self.no_cache,
            judge,
        }
    }
}

/// Whose signatures a reading command trusts, with the policy's `[signing] trusted` and
/// `trusted-file`. Where any key is trusted, an archive whose manifest no trusted key signed
/// is untrusted: never restored by --latest, never counted, never pruned by the rules.
#[derive(Debug, Clone, Args)]
pub struct TrustArgs {
    /// Trust manifests signed by this public key: a line `ssh-ed25519 AAAA... host-a` as
    /// `offsite keygen --signing` prints it (repeat for more keys).
    #[arg(long = "trust", value_name = "KEY", allow_hyphen_values = true)]
    trust: Vec<String>,
    /// Trust the keys of this OpenSSH allowed_signers file (`host-a ssh-ed25519 AAAA...`, with
    /// valid-after / valid-before honoured at each archive's signed push time); repeatable.
    #[arg(long, value_name = "FILE", env = "OFFSITE_TRUSTED_FILE")]
    trusted_file: Vec<PathBuf>,
}

impl TrustArgs {
    /// What copies are judged by: these keys with the policy's, at the system clock, with the
    /// policy's `clock-tolerance` (by URL, the default).
    fn judge(
        &self,
        policy: Option<&offsite_policies::policy::Policy>,
    ) -> anyhow::Result<crate::engine::inventory::Judge> {
        let clock = crate::engine::inventory::Clock {
            now: chrono::Utc::now(),
            tolerance: policy.map_or(offsite_policies::clock::DEFAULT_TOLERANCE, |p| {
                p.tolerance()
            }),
        };
        Ok(crate::engine::inventory::Judge::new(
            self.signers(policy)?,
            clock,
        ))
    }

    /// The trusted keys: these flags with the policy's.
    fn signers(
        &self,
        policy: Option<&offsite_policies::policy::Policy>,
    ) -> anyhow::Result<crate::engine::inventory::Signers> {
        crate::policy::trusted_signers(policy, &self.trust, &self.trusted_file)
    }
}

/// A policy as the set of locations to read (ls, verify, restore, status, drill).
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// A policy file: its destinations (replicas included), in its order, under its prefix,
    /// instead of URLs. Without URLs, the OFFSITE_POLICY environment variable names it.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
}

/// Where a reading command looks: the URLs given, or a policy's destinations.
pub struct Where {
    /// The policy, when one was used.
    pub policy: Option<offsite_policies::policy::Policy>,
    /// (name, url): the destination's name under a policy, else the URL itself.
    pub named: Vec<(String, String)>,
    /// The sub-prefix under every URL.
    pub prefix: Option<String>,
}

impl PolicyArgs {
    /// Resolves URLs or the policy; exactly one of them must be there. `command` names the
    /// archive command in the error for a policy of snapshots alone.
    fn resolve(
        &self,
        command: &str,
        urls: &[String],
        prefix: Option<&str>,
    ) -> anyhow::Result<Where> {
        let chosen =
            crate::policy::resolve(self.policy.as_deref(), !urls.is_empty(), prefix.is_some())?;
        match chosen {
            Some(policy) => {
                crate::policy::need_archives(&policy, command)?;
                Ok(Where {
                    named: crate::policy::locations(&policy, true),
                    prefix: policy.prefix.clone(),
                    policy: Some(policy),
                })
            }
            None if urls.is_empty() => Err(crate::report::usage(
                "no location: give a URL, or --policy FILE (or set OFFSITE_POLICY)",
            )),
            None => Ok(Where {
                policy: None,
                named: urls.iter().map(|u| (u.clone(), u.clone())).collect(),
                prefix: prefix.map(str::to_string),
            }),
        }
    }

    /// For the commands that work only by policy (status, drill, prune): the policy, and its
    /// destinations as locations (none for a policy of `[[snapshots]]` alone, which drill and
    /// prune refuse with [`crate::policy::need_archives`]).
    fn required(&self, command: &str) -> anyhow::Result<(offsite_policies::policy::Policy, Where)> {
        let Some(policy) = crate::policy::resolve(self.policy.as_deref(), false, false)? else {
            return Err(crate::report::usage(format!(
                "{command} works by policy: give --policy FILE or set OFFSITE_POLICY"
            )));
        };
        let place = Where {
            named: crate::policy::locations(&policy, true),
            prefix: policy.prefix.clone(),
            policy: None,
        };
        Ok((policy, place))
    }
}

impl Where {
    /// The URLs, in order.
    pub fn urls(&self) -> Vec<String> {
        self.named.iter().map(|(_, u)| u.clone()).collect()
    }

    /// Opens every location.
    pub async fn open(&self) -> anyhow::Result<Vec<crate::registry::Opened>> {
        crate::registry::open_all(&self.urls(), self.prefix.as_deref()).await
    }
}

/// The `--json` document of a command that ended in an error; for the commands that print
/// JSON lines (ls, replicate), one line with `"type": "error"`.
#[derive(serde::Serialize)]
struct Failed {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    error: String,
    exit: u8,
}

/// The program: parse, run, map the outcome to an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::report::set_quiet(cli.global.quiet);
    init_logging(cli.global.verbose, cli.global.quiet);
    let out = Output {
        json: cli.global.json,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILED);
        }
    };
    let json_lines = matches!(cli.command, Command::Ls(_) | Command::Replicate(_));
    let result = runtime.block_on(async {
        match cli.command {
            Command::Push(a) => {
                let metrics = a.metrics.clone();
                Metrics::around("push", &metrics, async |m| push::run(a, out, m).await).await
            }
            Command::Ls(a) => ls::run(a, out).await,
            Command::Verify(a) => verify::run(a, out).await,
            Command::Restore(a) => restore::run(a, out).await,
            Command::Create(a) => create::run(a, out).await,
            Command::Plan(a) => plan::run(a, out).await,
            Command::Status(a) => {
                Metrics::around("status", &a.metrics, async |m| {
                    status::run(&a, out, m).await
                })
                .await
            }
            Command::Drill(a) => {
                Metrics::around("drill", &a.metrics, async |m| drill::run(&a, out, m).await).await
            }
            Command::Prune(a) => {
                Metrics::around("prune", &a.metrics, async |m| prune::run(&a, out, m).await).await
            }
            Command::Replicate(a) => {
                Metrics::around("replicate", &a.metrics, async |m| {
                    replicate::run(&a, out, m).await
                })
                .await
            }
            Command::Snapshot(a) => snapshot::run(a, out).await,
            Command::Sign(a) => sign::run(a, out).await,
            Command::Keygen(a) => keygen::run(a, out),
            Command::Completions(a) => completions::completions(a),
            Command::Man(a) => completions::man(a),
        }
    });
    // Blocking tasks a command stopped by a signal left running (reading the source into a
    // spool that is no longer wanted) are not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.downcast_ref::<crate::report::StdoutClosed>().is_some() => {
            ExitCode::from(exit::OK)
        }
        Err(e) => {
            let code = exit::of(&e);
            if out.json {
                let failed = Failed {
                    kind: json_lines.then_some("error"),
                    error: format!("{e:#}"),
                    exit: code,
                };
                if let Ok(v) = serde_json::to_value(failed) {
                    let _ = if json_lines {
                        out.print_json_line(&v)
                    } else {
                        out.print_json(&v)
                    };
                }
            }
            if e.downcast_ref::<crate::engine::restore::ThawPending>()
                .is_some()
            {
                // Waiting on the provider is not an error of anything the user did or has.
                eprintln!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::from(code)
        }
    }
}

/// Logging on stderr. Without `-v`, offsite's own warnings; `-v` its info, `-vv` its debug,
/// `-vvv` its trace: the cloud SDKs and HTTP stacks underneath (aws_*, hyper, reqwest,
/// azure_*, gcloud...) log only through `RUST_LOG`, which replaces all of this. A retry is one
/// short line of its own (`retrying s3://bucket/key (2 of 6): connection refused`), printed
/// unless `-q`, never a log line.
fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    if !quiet {
        offsite_storage::on_retry(|r| eprintln!("{r}"));
    }
    let ours = match verbose {
        0 if quiet => "error",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // `offsite` matches every target that starts with it: this crate, offsite_storage, the
    // adapters and the policy engine.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("off,offsite={ours}")));
    // Colour only on a terminal: cron mail and journald get plain lines. NO_COLOR (any
    // non-empty value, https://no-color.org) turns it off on a terminal too.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        // Which crate said it, once there is detail to tell apart.
        .with_target(verbose >= 2 || std::env::var_os("RUST_LOG").is_some())
        .try_init();
}
