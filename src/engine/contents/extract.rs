//! `restore --extract`: the chosen members written into a staging directory inside the output
//! directory while the archive streams, and moved into place only after the whole plaintext's
//! SHA-256 held. Nothing is ever written outside the output directory: a chosen member whose
//! path is absolute or climbs with `..`, a link that points out, or a path through a link is
//! refused by name, and nothing is put in place.

use std::io::{self, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::{Kind, Visit};

/// Writes the members under the chosen paths into a staging directory.
pub struct Extract {
    /// The staging directory (removed when this is dropped, whatever it still holds).
    staging: PathBuf,
    /// The paths asked for, normalized (no `./`, no trailing `/`).
    select: Vec<PathBuf>,
    /// Per path asked for: whether a member matched it.
    matched: Vec<bool>,
    /// Members written.
    pub members: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Why extraction stopped: a member refused (the archive is unsafe to extract as asked).
    pub refused: Option<String>,
    /// Why extraction stopped: writing failed (disk full, permissions).
    pub output_error: Option<String>,
    /// The output directory, when extraction created it (removed again if left empty).
    created: Option<PathBuf>,
}

/// The staging directory's name inside the output directory.
const STAGING_PREFIX: &str = ".offsite-extract-";

impl Extract {
    /// Prepares extraction of `paths` into `dir` (created if missing): makes the staging
    /// directory inside it. A path asked for that can never match (absolute, `..`) is refused.
    pub fn new(dir: &Path, paths: &[String]) -> Result<Extract, String> {
        let mut select = Vec::new();
        for p in paths {
            match relative(Path::new(p)) {
                Some(n) if n.as_os_str().is_empty() => {
                    return Err(format!("--extract {p:?} names no member: give a member's path or a directory in the archive (as --list shows them)"))
                }
                Some(n) => select.push(n),
                None => {
                    return Err(format!("--extract {p:?}: give a path inside the archive, without a leading / or `..` (as --list shows them)"))
                }
            }
        }
        let created = (!dir.exists()).then(|| dir.to_path_buf());
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let staging = dir.join(format!("{STAGING_PREFIX}{:08x}", tag()));
        std::fs::create_dir(&staging).map_err(|e| {
            format!(
                "cannot write in {} ({e}): give an output directory you can write to",
                dir.display()
            )
        })?;
        Ok(Extract {
            matched: vec![false; select.len()],
            select,
            staging,
            members: 0,
            bytes: 0,
            refused: None,
            output_error: None,
            created,
        })
    }

    /// The paths asked for that matched no member.
    pub fn unmatched(&self) -> Vec<String> {
        self.select
            .iter()
            .zip(&self.matched)
            .filter(|(_, m)| !**m)
            .map(|(p, _)| p.display().to_string())
            .collect()
    }

    /// Writes one chosen member under the staging directory, or says why it may not be.
    fn write<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, rel: &Path) -> Result<(), Stop> {
        let name = rel.display();
        let kind = Kind::of(e.header().entry_type());
        let dest = self.staging.join(rel);
        self.through_no_link(rel)?;
        let link = || -> Result<PathBuf, Stop> {
            let l = e.link_name_bytes().ok_or_else(|| {
                Stop::Refused(format!("member {name} is a link without a target"))
            })?;
            Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&l)))
        };
        match kind {
            Kind::Dir => std::fs::create_dir_all(&dest).map_err(|e| out(&dest, e))?,
            Kind::File => {
                self.parent(&dest)?;
                replace(&dest)?;
                let mut f = std::fs::File::create(&dest).map_err(|er| out(&dest, er))?;
                copy(e, &mut f, &dest)?;
                use std::os::unix::fs::PermissionsExt;
                let mode = e.header().mode().unwrap_or(0o644) & 0o777;
                let _ = f.set_permissions(std::fs::Permissions::from_mode(mode));
                if let Ok(t) = e.header().mtime() {
                    let _ = f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t));
                }
            }
            Kind::Symlink => {
                let target = link()?;
                if !stays_inside(rel, &target) {
                    return Err(Stop::Refused(format!(
                        "member {name} is a symbolic link to {}, which points outside the output directory",
                        target.display()
                    )));
                }
                self.parent(&dest)?;
                replace(&dest)?;
                std::os::unix::fs::symlink(&target, &dest).map_err(|e| out(&dest, e))?;
            }
            Kind::Hardlink => {
                let target = link()?;
                let Some(target) = relative(&target) else {
                    return Err(Stop::Refused(format!(
                        "member {name} is a hard link to {}, which is outside the output directory",
                        target.display()
                    )));
                };
                self.through_no_link(&target)?;
                let src = self.staging.join(&target);
                if std::fs::symlink_metadata(&src).is_err() {
                    return Err(Stop::Refused(format!(
                        "member {name} is a hard link to {}, which --extract did not write: add --extract {}",
                        target.display(),
                        target.display()
                    )));
                }
                self.parent(&dest)?;
                replace(&dest)?;
                std::fs::hard_link(&src, &dest).map_err(|e| out(&dest, e))?;
            }
            Kind::Other => {
                return Err(Stop::Refused(format!(
                    "member {name} is a {:?} entry (a device, FIFO or the like): --extract writes files, directories and links only",
                    e.header().entry_type()
                )))
            }
        }
        self.members += 1;
        self.bytes += e.size();
        Ok(())
    }

    /// Refuses a path that goes through a symbolic link already written: a link inside the
    /// output directory is written as it is, never written through.
    fn through_no_link(&self, rel: &Path) -> Result<(), Stop> {
        let mut at = self.staging.clone();
        let parts: Vec<_> = rel.components().collect();
        for c in parts.iter().take(parts.len().saturating_sub(1)) {
            at.push(c);
            if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(Stop::Refused(format!(
                    "member {} goes through the symbolic link {}: refused, so that nothing is written outside the output directory",
                    rel.display(),
                    at.strip_prefix(&self.staging).unwrap_or(&at).display()
                )));
            }
        }
        Ok(())
    }

    fn parent(&self, dest: &Path) -> Result<(), Stop> {
        match dest.parent() {
            Some(p) => std::fs::create_dir_all(p).map_err(|e| out(p, e)),
            None => Ok(()),
        }
    }

    /// Puts what was written in place under `dir`: first every conflict is looked for (an
    /// existing file is replaced only with `force`; a directory, or a link on the way, never),
    /// so that a refusal leaves `dir` as it was; then each entry is renamed into place.
    pub fn publish(&self, dir: &Path, force: bool) -> Result<Published, PublishError> {
        let mut conflicts = Vec::new();
        conflicts_in(&self.staging, dir, force, &mut conflicts)
            .map_err(|e| PublishError::Output(format!("{}: {e}", dir.display())))?;
        if !conflicts.is_empty() {
            return Err(PublishError::Conflict(conflicts));
        }
        let mut top = Vec::new();
        move_into(&self.staging, dir, &mut top).map_err(|e| {
            PublishError::Output(format!(
                "cannot put the extracted members in place under {}: {e}",
                dir.display()
            ))
        })?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(Published {
            members: self.members,
            bytes: self.bytes,
            written: top,
        })
    }
}

impl Drop for Extract {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.staging);
        if let Some(dir) = &self.created {
            // Only when empty: nothing was put in place.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl Visit for Extract {
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> ControlFlow<Option<String>> {
        // Gone: the restore was stopped and cleaned up; write nothing more.
        if !self.staging.is_dir() {
            return ControlFlow::Break(None);
        }
        let raw = PathBuf::from(std::ffi::OsStr::from_bytes(&e.path_bytes()));
        // Matched on the path with any leading `/` and `./` taken off, so that an unsafe
        // member is chosen (and refused) where the same safe path would be.
        let stripped: PathBuf = raw
            .components()
            .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
            .collect();
        let mut chosen = false;
        for (p, m) in self.select.iter().zip(self.matched.iter_mut()) {
            if stripped.starts_with(p) {
                *m = true;
                chosen = true;
            }
        }
        if !chosen || e.header().entry_type() == tar::EntryType::XGlobalHeader {
            return ControlFlow::Continue(());
        }
        let Some(rel) = relative(&raw) else {
            self.refused = Some(format!(
                "member {} has an absolute path or climbs with `..`: refused, so that nothing is written outside the output directory",
                raw.display()
            ));
            return ControlFlow::Break(None);
        };
        match self.write(e, &rel) {
            Ok(()) => ControlFlow::Continue(()),
            Err(Stop::Refused(why)) => {
                self.refused = Some(why);
                ControlFlow::Break(None)
            }
            Err(Stop::Output(why)) => {
                self.output_error = Some(why);
                ControlFlow::Break(None)
            }
            // Reading the archive failed: the walk reports it as damage.
            Err(Stop::Read(e)) => ControlFlow::Break(Some(e)),
        }
    }
}

/// Why writing a member stopped.
enum Stop {
    Refused(String),
    Output(String),
    /// The archive's bytes could not be read (damage, reported as the tar's).
    Read(String),
}

fn out(path: &Path, e: io::Error) -> Stop {
    Stop::Output(format!("cannot write {}: {e}", path.display()))
}

/// A member's path made relative and plain (`./` dropped), or `None` when it is absolute or
/// has a `..`.
fn relative(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether a symbolic link at `rel` (whose directories hold no link) to `target` resolves
/// inside the output directory: relative, and its `..` only leading and no more of them than
/// the link is deep (a `..` after a name could climb out through a link).
fn stays_inside(rel: &Path, target: &Path) -> bool {
    let depth = rel.components().count().saturating_sub(1);
    let mut ups = 0;
    let mut named = false;
    for c in target.components() {
        match c {
            Component::ParentDir if !named => ups += 1,
            Component::CurDir => {}
            Component::Normal(_) => named = true,
            _ => return false,
        }
    }
    ups <= depth
}

/// Removes a file or link a later member of the same path replaces (tar's own rule: the last
/// one wins); a directory there is left, and the write that follows fails.
fn replace(dest: &Path) -> Result<(), Stop> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if !m.is_dir() => std::fs::remove_file(dest).map_err(|e| out(dest, e)),
        _ => Ok(()),
    }
}

/// Copies a member's data, telling a read error (the archive) from a write error (the disk).
fn copy<R: Read>(from: &mut R, to: &mut std::fs::File, dest: &Path) -> Result<(), Stop> {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Stop::Read(e.to_string())),
        };
        to.write_all(&buf[..n]).map_err(|e| out(dest, e))?;
    }
}

/// What `--extract` put in place.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// Members written (files, directories, links).
    pub members: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The entries made directly under the output directory or merged into one there.
    pub written: Vec<PathBuf>,
}

/// Why the extracted members were not put in place.
#[derive(Debug)]
pub enum PublishError {
    /// Paths that exist already (a file without `--force`, a directory where a file goes, a
    /// link on the way).
    Conflict(Vec<String>),
    /// Moving failed.
    Output(String),
}

/// Finds what stands in the way of moving `from`'s entries into `to`.
fn conflicts_in(from: &Path, to: &Path, force: bool, found: &mut Vec<String>) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        let Ok(there) = std::fs::symlink_metadata(&dest) else {
            continue;
        };
        let is_dir = entry.file_type()?.is_dir();
        if is_dir && there.is_dir() {
            conflicts_in(&entry.path(), &dest, force, found)?;
        } else if there.is_dir() {
            found.push(format!("{} is a directory", dest.display()));
        } else if is_dir && there.file_type().is_symlink() {
            found.push(format!(
                "{} is a symbolic link (restore does not write through links)",
                dest.display()
            ));
        } else if !force {
            found.push(format!("{} exists", dest.display()));
        }
    }
    Ok(())
}

/// Moves `from`'s entries into `to`, merging into directories that exist; records the
/// entries of the top level.
fn move_into(from: &Path, to: &Path, top: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        top.push(dest.clone());
        let there = std::fs::symlink_metadata(&dest).ok();
        if entry.file_type()?.is_dir() && there.as_ref().is_some_and(|m| m.is_dir()) {
            move_into(&entry.path(), &dest, &mut Vec::new())?;
            continue;
        }
        if there.is_some() {
            std::fs::remove_file(&dest)?;
        }
        std::fs::rename(entry.path(), &dest)?;
    }
    Ok(())
}

fn tag() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ std::process::id())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_could_leave_the_directory_are_told() {
        assert_eq!(relative(Path::new("./a/b/")), Some(PathBuf::from("a/b")));
        assert_eq!(relative(Path::new("a/../../x")), None);
        assert_eq!(relative(Path::new("/etc/passwd")), None);
        assert!(stays_inside(Path::new("a/b/l"), Path::new("../../x")));
        assert!(!stays_inside(Path::new("a/l"), Path::new("../../x")));
        assert!(!stays_inside(Path::new("l"), Path::new("/etc")));
        assert!(!stays_inside(Path::new("a/l"), Path::new("d/../../..")));
        assert!(stays_inside(Path::new("l"), Path::new("./d/e")));
    }
}
