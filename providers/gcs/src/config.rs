//! What a `gs://` location configures.

use offsite_storage::adapter::ENGINE_KEYS;
use offsite_storage::{Error, ErrorKind, Location, Operation, Result, Scheme};

/// GCS wants every chunk but the last to be a multiple of 256 KiB.
pub const GRANULARITY: u64 = 256 << 10;
/// Default chunk size.
pub const DEFAULT_CHUNK: u64 = 8 << 20;

/// A GCS location's settings (no credentials in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsConfig {
    /// The bucket.
    pub bucket: String,
    /// The object prefix (no leading or trailing `/`).
    pub prefix: String,
    /// An emulator or private endpoint (`?endpoint=`, else `STORAGE_EMULATOR_HOST`); with one,
    /// requests carry no credentials.
    pub endpoint: Option<String>,
    /// Resumable upload chunk size (`?chunk-size-mib=`, at least 8).
    pub chunk_size: u64,
    /// A service account or external account JSON file (`?credentials-file=`, a policy's
    /// `gcp-credentials-file`) instead of the default chain (`GOOGLE_APPLICATION_CREDENTIALS`,
    /// gcloud's login, workload identity). Only its path is kept.
    pub credentials_file: Option<std::path::PathBuf>,
}

impl GcsConfig {
    /// Reads a `gs://bucket/prefix?...` location.
    pub fn from_location(loc: &Location) -> Result<GcsConfig> {
        let bad = |msg: String, hint: &str| {
            Error::new(ErrorKind::InvalidConfig, "gcs", Operation::Open, msg)
                .with_key(loc.as_str())
                .with_hint(hint.to_string())
        };
        if loc.scheme != Scheme::Gcs {
            return Err(bad(
                format!("{} is not a gs:// location", loc.as_str()),
                "write gs://bucket/prefix",
            ));
        }
        let mut cfg = GcsConfig {
            bucket: loc.bucket.clone(),
            prefix: loc.prefix.clone(),
            endpoint: std::env::var("STORAGE_EMULATOR_HOST")
                .ok()
                .filter(|e| !e.is_empty())
                .map(|e| {
                    if e.starts_with("http://") || e.starts_with("https://") {
                        e
                    } else {
                        format!("http://{e}")
                    }
                }),
            chunk_size: DEFAULT_CHUNK,
            credentials_file: None,
        };
        for (k, v) in &loc.query {
            match k.as_str() {
                "endpoint" => cfg.endpoint = Some(v.trim_end_matches('/').to_string()),
                "credentials-file" if !v.is_empty() => cfg.credentials_file = Some(v.into()),
                "chunk-size-mib" => {
                    let mib: u64 = v
                        .parse()
                        .ok()
                        .filter(|m| (8..=1024).contains(m))
                        .ok_or_else(|| {
                            bad(
                                format!("chunk-size-mib={v:?} is out of range"),
                                "give a whole number of MiB from 8 to 1024",
                            )
                        })?;
                    cfg.chunk_size = mib << 20;
                }
                k if ENGINE_KEYS.contains(&k) => {}
                other => {
                    return Err(bad(
                        format!("unknown parameter {other:?} in a gs:// location"),
                        "gs:// takes endpoint, credentials-file, chunk-size-mib, storage-class, lock, lock-days",
                    ))
                }
            }
        }
        Ok(cfg)
    }

    /// The object name of a store-relative key.
    pub fn full_key(&self, key: &str) -> String {
        offsite_storage::join_key(&self.prefix, key)
    }

    /// The store-relative key of an object name under the prefix.
    pub fn relative_key<'a>(&self, full: &'a str) -> Option<&'a str> {
        offsite_storage::strip_store_prefix(&self.prefix, full)
    }

    /// The API base URL.
    pub fn base(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| "https://storage.googleapis.com".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_query() {
        let loc = Location::parse("gs://bkt/app?endpoint=http://127.0.0.1:9023/&chunk-size-mib=16")
            .unwrap();
        let c = GcsConfig::from_location(&loc).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9023"));
        assert_eq!(c.chunk_size, 16 << 20);
        assert_eq!(c.full_key("a"), "app/a");
        assert_eq!(c.relative_key("app/a"), Some("a"));
        let e = GcsConfig::from_location(&Location::parse("gs://bkt/a?chunk-size-mib=1").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }
}
