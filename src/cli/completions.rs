//! `offsite completions SHELL` and `offsite man`, from the same clap definitions as `--help`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;
use crate::report::{stdout_failed, usage};

/// Arguments of `offsite completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

/// Arguments of `offsite man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The subcommand whose page to print (`offsite man push` is offsite-push(1); a nested one
    /// as `snapshot-create` or `snapshot create`, offsite-snapshot-create(1)); without it,
    /// offsite(1), which lists the others.
    #[arg(value_name = "COMMAND", num_args = 0..)]
    command: Vec<String>,
    /// Write every page (offsite.1, offsite-push.1, ...) into DIR instead of printing one,
    /// e.g. `offsite man --dir /usr/local/share/man/man1`.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    dir: Option<PathBuf>,
}

pub(super) fn completions(args: CompletionsArgs) -> anyhow::Result<u8> {
    let mut cmd = Cli::command();
    // Generated into memory first: clap_complete panics on a write error, and a closed pipe
    // must end the program quietly.
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "offsite", &mut buf);
    std::io::stdout()
        .lock()
        .write_all(&buf)
        .map_err(stdout_failed)?;
    Ok(0)
}

pub(super) fn man(args: ManArgs) -> anyhow::Result<u8> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building names the subcommands `offsite-push` and so on, as the pages refer to them.
    cmd.build();
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        clap_mangen::generate_to(Cli::command(), dir)
            .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        eprintln!("wrote the man pages into {}", dir.display());
        return Ok(0);
    }
    let page = if args.command.is_empty() {
        cmd
    } else {
        // `snapshot create`, `snapshot-create` and `offsite-snapshot-create` name one page.
        let wanted = args.command.join("-");
        let wanted = wanted.strip_prefix("offsite-").unwrap_or(&wanted);
        let pages = pages(&cmd);
        match pages.iter().find(|(name, _)| name == wanted) {
            Some((_, page)) => page.clone(),
            None => {
                let known: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
                return Err(usage(format!(
                    "there is no subcommand {:?}; pages exist for {}",
                    args.command.join(" "),
                    known.join(", ")
                )));
            }
        }
    };
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    std::io::stdout()
        .lock()
        .write_all(&buf)
        .map_err(stdout_failed)?;
    Ok(0)
}

/// Every page below `cmd` (built, so that each has its display name `offsite-snapshot-create`),
/// as `--dir` writes them, depth first: (`snapshot-create`, its command).
fn pages(cmd: &clap::Command) -> Vec<(String, clap::Command)> {
    let mut out = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let display = sub.get_display_name().unwrap_or(sub.get_name());
        let name = display.strip_prefix("offsite-").unwrap_or(display);
        out.push((name.to_string(), sub.clone()));
        out.extend(pages(sub));
    }
    out
}
