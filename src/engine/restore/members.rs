//! `restore --list` and `restore --extract`: a tar's members read from the stream that is
//! being checked, and shown or put in place only when every check passed.

use std::sync::Arc;

use anyhow::{anyhow, Result};

use super::{Delivered, Target};
use crate::engine::contents::{read_through, Extract, Found, List, PublishError};
use crate::engine::identity::Identities;
use crate::engine::progress::Progress;
use crate::engine::readback::{Proven, ReadbackError, StoredCopy};
use crate::error::usage;

/// Reads one copy as a tar for `--list` or `--extract`. The inner `Err` is the copy's (the
/// next copy may do); the outer one ends the restore: the archive itself is no tar, is broken
/// or unsafe to extract, or a path asked for is not in it (every copy has the same bytes).
pub(super) async fn read_members(
    copy: &StoredCopy<'_>,
    identities: Option<Arc<Identities>>,
    target: &Target,
    pb: Progress,
) -> Result<Result<(Proven, Delivered), ReadbackError>> {
    let name = &copy.manifest.archive;
    match target {
        Target::List => {
            let (read, found, list) =
                read_through(copy, identities, pb, false, List::default()).await;
            let proven = match read {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            usable(name, &found, "--list")?;
            Ok(Ok((proven, Delivered::Listed(list.0))))
        }
        Target::Extract { dir, paths, force } => {
            let extract = Extract::new(dir, paths).map_err(usage)?;
            let (read, found, extract) = read_through(copy, identities, pb, false, extract).await;
            let proven = match read {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            let nothing = format!("nothing was written under {}", dir.display());
            if let Some(why) = &extract.refused {
                return Err(anyhow!("{name}: {why}; {nothing}"));
            }
            if let Some(why) = &extract.output_error {
                return Err(anyhow!("{why}; {nothing}"));
            }
            usable(name, &found, "--extract")?;
            let unmatched = extract.unmatched();
            if !unmatched.is_empty() {
                return Err(usage(format!(
                    "no member of {name} is at {}; {nothing} (`offsite restore ... --list` shows the members)",
                    unmatched.join(", ")
                )));
            }
            match extract.publish(dir, *force) {
                Ok(published) => Ok(Ok((proven, Delivered::Extracted(published)))),
                Err(PublishError::Conflict(c)) => Err(usage(format!(
                    "{}; restore never overwrites a file unless --force is given (and never a directory or through a link); {nothing}",
                    c.join(", ")
                ))),
                Err(PublishError::Output(m)) => Err(anyhow!("{m}")),
            }
        }
        _ => unreachable!("only --list and --extract read members"),
    }
}

/// The archive is a tar that read to its end, or why `flag` cannot serve it.
fn usable(name: &str, found: &Found, flag: &str) -> Result<()> {
    if let Some(damage) = found.damage() {
        return Err(anyhow!("{name}: {damage}"));
    }
    match found {
        Found::NotTar(reason) => Err(usage(format!(
            "{name} is not a tar ({reason}); {flag} reads tar archives (plain, gzip or zstd): restore it whole with -o PATH instead"
        ))),
        _ => Ok(()),
    }
}
