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
pub async fn open(url: &str, prefix: Option<&str>) -> Result<Opened, Error> {
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
        #[cfg(feature = "s3")]
        Scheme::S3 => {
            let cfg = offsite_s3::S3Config::from_location(&location)?;
            let store = Arc::new(offsite_s3::S3Store::open(cfg, location.as_str()).await);
            Ok(Opened { location, store, local: None })
        }
        scheme => Err(Error::new(
            ErrorKind::Unsupported,
            "registry",
            Operation::Open,
            format!("{scheme}:// locations are not supported by this build of offsite"),
        )
        .with_key(location.as_str())
        .with_hint(if scheme == Scheme::S3 {
            "this build was made without the `s3` feature; rebuild with default features"
        } else {
            "this version supports file:// and s3://; gs:// and az:// are not in it yet"
        })),
    }
}

/// The key prefix inside the store that the location names: empty where the store itself is
/// rooted at the location's prefix (`file://`, `s3://`), the prefix for `memory://`.
pub fn key_prefix(location: &Location) -> &str {
    match location.scheme {
        Scheme::Memory => &location.prefix,
        _ => "",
    }
}
