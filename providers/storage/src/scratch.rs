//! The temporary files this process is writing: a `file://` destination's `.offsite-tmp-*`
//! and a restore's hidden partial file.
//!
//! A command stopped by a signal drops its work, and with it the owners of these files; but
//! a blocking file task already under way (creating a temporary file, copying into one) runs
//! to its end regardless. So every temporary file is registered here before it is created,
//! and [`remove_all`] — called once the work is dropped — removes whatever is still
//! registered and refuses every later registration, so that no task can create one
//! afterwards.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

struct Registry {
    paths: BTreeSet<PathBuf>,
    closed: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    paths: BTreeSet::new(),
    closed: false,
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// A registered temporary file: removed when dropped (a file already renamed or linked into
/// place is no longer there under this name, so that is a no-op), and unregistered.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Registers `path` before it is created; fails (`Interrupted`) once the process is
    /// stopping, so that nothing new is left behind.
    pub fn register(path: &Path) -> std::io::Result<Scratch> {
        let mut r = registry();
        if r.closed {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "offsite is stopping: no new temporary file",
            ));
        }
        r.paths.insert(path.to_path_buf());
        Ok(Scratch {
            path: path.to_path_buf(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut r = registry();
        // Under the lock: `remove_all` never sees a path half-removed.
        let _ = std::fs::remove_file(&self.path);
        r.paths.remove(&self.path);
    }
}

/// The temporary files registered now.
pub fn registered() -> Vec<PathBuf> {
    registry().paths.iter().cloned().collect()
}

/// Removes every temporary file still registered, and refuses registrations from now on.
/// Returns the files that were there and are gone.
pub fn remove_all() -> Vec<PathBuf> {
    let mut r = registry();
    r.closed = true;
    let mut removed = Vec::new();
    for p in std::mem::take(&mut r.paths) {
        if std::fs::remove_file(&p).is_ok() {
            removed.push(p);
        }
    }
    removed
}
