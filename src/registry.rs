//! From a location URL to a store.

use std::path::PathBuf;
use std::sync::Arc;

use offsite_storage::{
    Error, ErrorKind, LocalStore, Location, MemoryStore, Operation, Scheme, Storage,
};

/// An opened destination or source.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The URL as the user wrote it, with `--prefix` applied.
    pub location: Location,
    /// The store, rooted at the location's prefix.
    pub store: Arc<dyn Storage>,
    /// For `file://`: the concrete store, so push can place its spool there.
    pub local: Option<Arc<LocalStore>>,
}

impl Opened {
    /// The URL for messages.
    pub fn url(&self) -> &str {
        self.location.as_str()
    }

    /// The local directory, for `file://`.
    pub fn local_root(&self) -> Option<PathBuf> {
        self.local.as_ref().map(|l| l.root().to_path_buf())
    }
}

/// Opens `url`, with `prefix` (from `--prefix` or a policy) added under its path.
pub fn open(url: &str, prefix: Option<&str>) -> Result<Opened, Error> {
    let mut location = Location::parse(url)?;
    if let Some(p) = prefix {
        location = location.join_prefix(p)?;
    }
    match location.scheme {
        Scheme::File => {
            let path = location.path.clone().unwrap_or_default();
            let local = Arc::new(LocalStore::new(path));
            Ok(Opened {
                location,
                store: local.clone(),
                local: Some(local),
            })
        }
        Scheme::Memory => {
            // The memory store's "prefix" is applied by the engine through the location.
            let store = Arc::new(MemoryStore::named(&location.bucket));
            Ok(Opened {
                location,
                store,
                local: None,
            })
        }
        Scheme::S3 | Scheme::Gcs | Scheme::Azure => Err(Error::new(
            ErrorKind::Unsupported,
            "registry",
            Operation::Open,
            format!(
                "{}:// locations are not supported by this version of offsite",
                location.scheme
            ),
        )
        .with_key(location.as_str())
        .with_hint(
            "use a file:// destination for now; cloud providers arrive as separate features",
        )),
    }
}

/// The key prefix inside the store that the location names (empty for `file://`, whose path
/// is the store root).
pub fn key_prefix(location: &Location) -> &str {
    match location.scheme {
        Scheme::File => "",
        _ => &location.prefix,
    }
}
