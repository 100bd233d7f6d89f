//! From a location URL to a store.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use offsite_storage::{
    Capabilities, Error, ErrorKind, LocalStore, Location, LockMode, MemoryStore, Operation,
    Retention, Scheme, Storage,
};

/// An opened destination or source.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The URL as the user wrote it, with `--prefix` applied.
    pub location: Location,
    /// The store, rooted at the location's prefix.
    pub store: Arc<dyn Storage>,
    /// For `file://`: the concrete store, so push can link its spool into it.
    pub local: Option<Arc<LocalStore>>,
    /// Placement options from the URL's query.
    pub options: DestinationOptions,
}

/// The push-time lock when a destination sets `lock` without `lock-days`.
pub const DEFAULT_LOCK_DAYS: u32 = 7;

/// Per-destination placement options, written in the URL's query so that a push needs no
/// policy file: `?storage-class=GLACIER_IR&lock=compliance&lock-days=7`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationOptions {
    /// Storage class or access tier of the data object (the manifest stays in the default
    /// class, so that listing and verifying never wait for a thaw).
    pub storage_class: Option<String>,
    /// A retention lock on the data object and its manifest alike.
    pub lock: Option<LockMode>,
    /// How long the lock lasts, in days from the archive's creation (or from now, for an
    /// archive older than that); [`DEFAULT_LOCK_DAYS`] when a lock is set without it.
    pub lock_days: Option<u32>,
    /// A legal hold on the data object and its manifest (`legal-hold=true`).
    pub legal_hold: bool,
}

impl DestinationOptions {
    /// The options a location's query sets, checked.
    pub fn from_location(loc: &Location) -> Result<DestinationOptions, Error> {
        let bad = |msg: String, hint: &str| {
            Error::new(ErrorKind::InvalidConfig, "url", Operation::Open, msg)
                .with_key(loc.as_str())
                .with_hint(hint.to_string())
        };
        // A parameter meant for a cloud (region=, endpoint=) or mistyped (storage_class=) would
        // be ignored on a local disk; ignored is wrong, so it is refused, as s3:// does.
        let engine_keys = offsite_storage::adapter::ENGINE_KEYS;
        if loc.scheme == Scheme::File {
            if let Some(k) = loc
                .query
                .keys()
                .find(|k| !engine_keys.contains(&k.as_str()))
            {
                return Err(bad(
                    format!("unknown parameter {k:?} in a file:// location"),
                    &format!("file:// takes only {}; remove {k}", engine_keys.join(", ")),
                ));
            }
        }
        let mut o = DestinationOptions::default();
        if let Some(c) = loc.query.get("storage-class") {
            if let Some((classes, what)) = loc.scheme.storage_classes() {
                if !classes.contains(&c.as_str()) {
                    let hint = match classes.iter().find(|k| k.eq_ignore_ascii_case(c)) {
                        Some(k) => format!("write storage-class={k}"),
                        None => format!("use one of {}", classes.join(", ")),
                    };
                    return Err(bad(format!("storage-class={c:?} is not {what}"), &hint));
                }
            }
            o.storage_class = Some(c.clone());
        }
        if let Some(l) = loc.query.get("lock") {
            o.lock = Some(match l.to_ascii_lowercase().as_str() {
                "governance" => LockMode::Governance,
                "compliance" => LockMode::Compliance,
                _ => {
                    return Err(bad(
                        format!("lock={l:?} is not a lock mode"),
                        "write lock=governance or lock=compliance",
                    ))
                }
            });
        }
        if let Some(d) = loc.query.get("lock-days") {
            o.lock_days = Some(d.parse().ok().filter(|d| *d > 0).ok_or_else(|| {
                bad(
                    format!("lock-days={d:?} is not a positive number of days"),
                    "write lock-days=7",
                )
            })?);
        }
        if let Some(h) = loc.query.get("legal-hold") {
            o.legal_hold = match h.as_str() {
                "true" | "1" | "" => true,
                "false" | "0" => false,
                _ => {
                    return Err(bad(
                        format!("legal-hold={h:?} is not true or false"),
                        "write legal-hold=true",
                    ))
                }
            };
        }
        match (o.lock, o.lock_days) {
            (Some(_), None) => {
                o.lock_days = Some(DEFAULT_LOCK_DAYS);
                Ok(o)
            }
            (None, Some(_)) => Err(bad(
                "lock-days needs lock".into(),
                "add lock=governance or lock=compliance",
            )),
            _ => Ok(o),
        }
    }

    /// The retention for an archive created at `created`, pushed at `now`: `lock-days` from
    /// the creation, or from `now` for an archive already older than that. Computed once per
    /// archive and destination, for the data object and its manifest alike.
    pub fn retention_at(&self, created: DateTime<Utc>, now: DateTime<Utc>) -> Option<Retention> {
        let (mode, days) = (self.lock?, self.lock_days?);
        let period = chrono::Duration::days(i64::from(days));
        let from = if created + period < now { now } else { created };
        Some(Retention {
            mode,
            retain_until: from + period,
        })
    }

    /// Refuses options the store cannot honour, before any byte is written: a storage class
    /// where there are none, a lock or legal hold where objects cannot carry one.
    pub fn check_against(&self, caps: &Capabilities) -> Result<(), String> {
        if self.storage_class.is_some() && !caps.storage_classes {
            return Err(
                "this store has no storage classes; remove storage-class from its URL".into(),
            );
        }
        if (self.lock.is_some() || self.legal_hold) && !caps.retention {
            return Err("objects here cannot carry a retention lock or legal hold; remove lock, lock-days and legal-hold from its URL".into());
        }
        Ok(())
    }
}

impl Opened {
    /// The longest archive name this destination can store, in bytes, and why: its objects'
    /// names add offsite's suffixes (`.manifest.json` the longest) and, on a cloud, the prefix.
    pub fn longest_name(&self) -> (usize, &'static str) {
        let suffix = crate::archive::MANIFEST_SUFFIX.len();
        match self.location.scheme {
            Scheme::File => (
                LocalStore::MAX_FILE_NAME - suffix,
                "a file name is at most 255 bytes, with offsite's temporary prefix and suffix",
            ),
            _ => {
                let prefix = match self.location.prefix.len() {
                    0 => 0,
                    n => n + 1,
                };
                (
                    1024usize.saturating_sub(prefix + suffix),
                    "an object key is at most 1024 bytes, with the prefix and offsite's suffix",
                )
            }
        }
    }

    /// The URL for messages.
    pub fn url(&self) -> &str {
        self.location.as_str()
    }

    /// The local directory, for `file://`.
    pub fn local_root(&self) -> Option<PathBuf> {
        self.local.as_ref().map(|l| l.root().to_path_buf())
    }
}

/// Opens `url`, with `prefix` (from `--prefix` or a policy) added under its path. Placement
/// options the store cannot honour are refused here, for every command and every route.
pub async fn open(url: &str, prefix: Option<&str>) -> Result<Opened, Error> {
    let opened = open_store(url, prefix).await?;
    opened
        .options
        .check_against(&opened.store.capabilities())
        .map_err(|why| {
            Error::new(ErrorKind::InvalidConfig, "url", Operation::Open, why).with_key(opened.url())
        })?;
    Ok(opened)
}

/// Opens each URL, as [`open`] does. A URL or option that is wrong is a usage error (exit 2);
/// a store that cannot be reached or will not take the credentials (network, auth) is a failure
/// (exit 1), as DESIGN.md's exit codes say: the command line was right, the world was not.
pub async fn open_all(urls: &[String], prefix: Option<&str>) -> anyhow::Result<Vec<Opened>> {
    let mut out = Vec::new();
    for u in urls {
        out.push(open(u, prefix).await.map_err(crate::error::store_error)?);
    }
    Ok(out)
}

async fn open_store(url: &str, prefix: Option<&str>) -> Result<Opened, Error> {
    let mut location = Location::parse(url)?;
    if let Some(p) = prefix {
        location = location.join_prefix(p)?;
    }
    let options = DestinationOptions::from_location(&location)?;
    match location.scheme {
        Scheme::File => {
            let path = location.path.clone().unwrap_or_default();
            let local = Arc::new(LocalStore::new(path));
            Ok(Opened {
                location,
                store: local.clone(),
                local: Some(local),
                options,
            })
        }
        Scheme::Memory => {
            // The memory store's "prefix" is applied by the engine through the location.
            let store = Arc::new(MemoryStore::named(&location.bucket));
            Ok(Opened {
                location,
                store,
                local: None,
                options,
            })
        }
        #[cfg(feature = "s3")]
        Scheme::S3 => {
            let cfg = offsite_s3::S3Config::from_location(&location)?;
            let store = Arc::new(offsite_s3::S3Store::open(cfg, location.as_str()).await);
            Ok(Opened {
                location,
                store,
                local: None,
                options,
            })
        }
        #[cfg(feature = "gcs")]
        Scheme::Gcs => {
            let cfg = offsite_gcs::GcsConfig::from_location(&location)?;
            let store = Arc::new(offsite_gcs::GcsStore::open(cfg, location.as_str()).await?);
            Ok(Opened {
                location,
                store,
                local: None,
                options,
            })
        }
        #[cfg(feature = "azure")]
        Scheme::Azure => {
            let cfg = offsite_azure::AzureConfig::from_location(&location)?;
            let store = Arc::new(offsite_azure::AzureStore::open(cfg, location.as_str())?);
            Ok(Opened {
                location,
                store,
                local: None,
                options,
            })
        }
        #[allow(unreachable_patterns)]
        scheme => Err(Error::new(
            ErrorKind::Unsupported,
            "registry",
            Operation::Open,
            format!("{scheme}:// locations are not supported by this build of offsite"),
        )
        .with_key(location.as_str())
        .with_hint(
            "this build was made without that provider's cargo feature; rebuild with default features",
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_days_run_from_creation_or_from_now_for_an_older_archive() {
        let o = DestinationOptions {
            lock: Some(LockMode::Compliance),
            lock_days: Some(7),
            ..Default::default()
        };
        let now = Utc::now();
        let recent = now - chrono::Duration::days(2);
        let old = now - chrono::Duration::days(30);
        let r = o.retention_at(recent, now).unwrap();
        assert_eq!(r.retain_until, recent + chrono::Duration::days(7));
        assert_eq!(
            o.retention_at(old, now).unwrap().retain_until,
            now + chrono::Duration::days(7)
        );
        assert!(DestinationOptions::default()
            .retention_at(recent, now)
            .is_none());
    }

    #[test]
    fn options_a_store_cannot_honour_are_refused() {
        let caps = Capabilities::default();
        let class = DestinationOptions {
            storage_class: Some("GLACIER".into()),
            ..Default::default()
        };
        assert!(class
            .check_against(&caps)
            .unwrap_err()
            .contains("storage-class"));
        let hold = DestinationOptions {
            legal_hold: true,
            ..Default::default()
        };
        assert!(hold
            .check_against(&caps)
            .unwrap_err()
            .contains("legal-hold"));
        assert!(DestinationOptions::default().check_against(&caps).is_ok());
    }
}
