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
    /// The subcommand whose page to print (`offsite man push` is offsite-push(1)); without it,
    /// offsite(1), which lists the others.
    #[arg(value_name = "COMMAND")]
    command: Option<String>,
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
    let page = match &args.command {
        None => cmd,
        Some(name) => cmd
            .get_subcommands()
            .find(|s| s.get_name() == name)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<_> = Cli::command()
                    .get_subcommands()
                    .map(|s| s.get_name().to_string())
                    .collect();
                usage(format!(
                    "there is no subcommand {name:?}; pages exist for {}",
                    known.join(", ")
                ))
            })?,
    };
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf)?;
    std::io::stdout()
        .lock()
        .write_all(&buf)
        .map_err(stdout_failed)?;
    Ok(0)
}
