//! The cache directory and its layout, in one place: every module that keeps files in the
//! cache asks here for its directory.
//!
//! ```text
//! $OFFSITE_CACHE_DIR | $XDG_CACHE_HOME/offsite | ~/.cache/offsite
//! ├── spool/<archive>-<tag>/   one push's work directory: lock, journal.json, data.spool
//! ├── inventory/<id>.jsonl     a remote location's listing cache
//! └── replicate/               replication journals
//! ```

use std::path::PathBuf;

/// The cache directory: `$OFFSITE_CACHE_DIR`, else `$XDG_CACHE_HOME/offsite`, else
/// `~/.cache/offsite`.
pub fn root() -> PathBuf {
    if let Some(d) = std::env::var_os("OFFSITE_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("offsite");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("offsite")
}

/// Where pushes keep their work directories (spools and journals), one per archive and
/// destination set.
pub fn spools() -> PathBuf {
    root().join("spool")
}

/// Where the listing caches of remote locations are.
pub fn inventory() -> PathBuf {
    root().join("inventory")
}

/// Where replication keeps its journals.
pub fn replicate_journals() -> PathBuf {
    root().join("replicate")
}
