//! What an `s3://` location configures.

use offsite_storage::adapter::ENGINE_KEYS;
use offsite_storage::{Error, ErrorKind, Location, Operation, Result, Scheme};

/// The provider name in errors.
pub(crate) const PROVIDER: &str = "s3";

/// Default part size: large enough to keep request overhead low, small enough for memory.
pub const DEFAULT_PART_SIZE: u64 = 6 << 20;
/// Parts in flight per upload.
pub const DEFAULT_CONCURRENCY: usize = 3;

/// An S3 location's settings. Holds no credentials, so `Debug` shows everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The key prefix inside the bucket (no leading or trailing `/`).
    pub prefix: String,
    /// The bucket's region (`?region=`), else the default chain's (`AWS_REGION`, profile).
    pub region: Option<String>,
    /// An explicit endpoint (`?endpoint=`), else `AWS_ENDPOINT_URL`, else AWS.
    pub endpoint: Option<String>,
    /// Path-style addressing (`?path-style=true`); defaults to on whenever an endpoint is set,
    /// which S3-compatible servers expect.
    pub path_style: Option<bool>,
    /// KMS key for SSE-KMS (`?sse-kms-key=alias/backups`): a key's name, not key material.
    pub sse_kms_key: Option<String>,
    /// Multipart part size (`?part-size-mib=`).
    pub part_size: u64,
    /// Parts in flight per upload (`?concurrency=`).
    pub concurrency: usize,
    /// A named profile of the AWS config files (`?profile=`, a policy's `aws-profile`),
    /// instead of `AWS_PROFILE` or the default: a DR copy in another account.
    pub profile: Option<String>,
}

impl S3Config {
    /// Reads an `s3://bucket/prefix?...` location.
    pub fn from_location(loc: &Location) -> Result<S3Config> {
        let bad = |msg: String, hint: &str| {
            Error::new(ErrorKind::InvalidConfig, PROVIDER, Operation::Open, msg)
                .with_key(loc.as_str())
                .with_hint(hint.to_string())
        };
        if loc.scheme != Scheme::S3 {
            return Err(bad(
                format!("{} is not an s3:// location", loc.as_str()),
                "write s3://bucket/prefix",
            ));
        }
        let mut cfg = S3Config {
            bucket: loc.bucket.clone(),
            prefix: loc.prefix.clone(),
            region: None,
            endpoint: None,
            path_style: None,
            sse_kms_key: None,
            part_size: DEFAULT_PART_SIZE,
            concurrency: DEFAULT_CONCURRENCY,
            profile: None,
        };
        for (k, v) in &loc.query {
            match k.as_str() {
                "region" => cfg.region = Some(v.clone()),
                "endpoint" => cfg.endpoint = Some(v.clone()),
                "path-style" => {
                    cfg.path_style = Some(match v.as_str() {
                        "true" | "1" | "" => true,
                        "false" | "0" => false,
                        _ => return Err(bad(format!("path-style={v:?} is not true or false"), "write path-style=true")),
                    })
                }
                "sse-kms-key" => cfg.sse_kms_key = Some(v.clone()),
                "profile" if !v.is_empty() => cfg.profile = Some(v.clone()),
                "part-size-mib" => {
                    let mib: u64 = v.parse().ok().filter(|m| (5..=5120).contains(m)).ok_or_else(|| {
                        bad(format!("part-size-mib={v:?} is not a size S3 accepts"), "give a whole number of MiB from 5 to 5120")
                    })?;
                    cfg.part_size = mib << 20;
                }
                "concurrency" => {
                    cfg.concurrency = v.parse().ok().filter(|c| (1..=64).contains(c)).ok_or_else(|| {
                        bad(format!("concurrency={v:?} is not a number from 1 to 64"), "write concurrency=4")
                    })?
                }
                k if ENGINE_KEYS.contains(&k) => {}
                other => {
                    return Err(bad(
                        format!("unknown parameter {other:?} in an s3:// location"),
                        "s3:// takes region, endpoint, path-style, profile, sse-kms-key, part-size-mib, concurrency, storage-class, lock, lock-days, legal-hold",
                    ))
                }
            }
        }
        Ok(cfg)
    }

    /// The full key of a store-relative key.
    pub fn full_key(&self, key: &str) -> String {
        offsite_storage::join_key(&self.prefix, key)
    }

    /// The store-relative key of a full key, if it lies under the prefix.
    pub fn relative_key<'a>(&self, full: &'a str) -> Option<&'a str> {
        offsite_storage::strip_store_prefix(&self.prefix, full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_query() {
        let loc = Location::parse("s3://bkt/app?region=eu-west-1&endpoint=http://127.0.0.1:9000&sse-kms-key=alias/b&part-size-mib=8&storage-class=GLACIER").unwrap();
        let c = S3Config::from_location(&loc).unwrap();
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(c.part_size, 8 << 20);
        assert_eq!(c.full_key("x/y"), "app/x/y");
        assert_eq!(c.relative_key("app/x/y"), Some("x/y"));
        assert_eq!(c.relative_key("apple/x"), None);
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        for (url, want) in [
            ("s3://bkt/a?regoin=x", "unknown parameter \"regoin\""),
            ("s3://bkt/a?part-size-mib=1", "not a size S3 accepts"),
            ("s3://bkt/a?path-style=maybe", "not true or false"),
        ] {
            let e = S3Config::from_location(&Location::parse(url).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{url}: {e}");
        }
    }
}
