//! Store locations as URLs: `file:///var/backups/app`, `s3://bucket/prefix?region=us-east-1`,
//! `gs://bucket/prefix`, `az://account/container/prefix`, `memory://name/prefix`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

use crate::error::{Error, ErrorKind, Operation, Result};

/// Which kind of store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `file://`: a directory on this machine.
    File,
    /// `memory://`: an in-process store (tests).
    Memory,
    /// `s3://`: Amazon S3 and S3-compatible stores.
    S3,
    /// `gs://`: Google Cloud Storage.
    Gcs,
    /// `az://`: Azure Blob Storage.
    Azure,
}

impl Scheme {
    /// The URL scheme as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::File => "file",
            Scheme::Memory => "memory",
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::Azure => "az",
        }
    }

    /// The storage classes (Azure: access tiers) a cloud store takes for a data object, and
    /// what they are called, so that a wrong one is refused when a URL or policy is read,
    /// before a byte moves. `None` for stores without classes of their own.
    pub const fn storage_classes(self) -> Option<(&'static [&'static str], &'static str)> {
        match self {
            Scheme::S3 => Some((
                &[
                    "STANDARD",
                    "STANDARD_IA",
                    "ONEZONE_IA",
                    "INTELLIGENT_TIERING",
                    "GLACIER",
                    "GLACIER_IR",
                    "DEEP_ARCHIVE",
                    "REDUCED_REDUNDANCY",
                ],
                "an S3 storage class",
            )),
            Scheme::Gcs => Some((
                &["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"],
                "a GCS storage class",
            )),
            Scheme::Azure => Some((&["Hot", "Cool", "Cold", "Archive"], "an Azure access tier")),
            Scheme::File | Scheme::Memory => None,
        }
    }

    /// Whether copies here count as off site by default (every remote store does).
    pub fn offsite_by_default(self) -> bool {
        matches!(self, Scheme::S3 | Scheme::Gcs | Scheme::Azure)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The kind of store.
    pub scheme: Scheme,
    /// Bucket (S3, GCS), account (Azure) or store name (memory); empty for `file://`.
    pub bucket: String,
    /// Azure only: the container.
    pub container: Option<String>,
    /// `file://` only: the directory.
    pub path: Option<PathBuf>,
    /// The key prefix inside the bucket or container, without leading or trailing `/`.
    pub prefix: String,
    /// Query parameters (`region`, `endpoint`, ...), for the adapter to interpret.
    pub query: BTreeMap<String, String>,
    original: String,
}

/// Where a [`Location`] points: its scheme, endpoint, bucket (or account) and container, and
/// its prefix or directory in one spelling. Two locations with one place are one destination;
/// the query's placement options (storage class, lock) do not make another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Place {
    scheme: Scheme,
    endpoint: String,
    bucket: String,
    container: Option<String>,
    path: String,
}

/// The parts of an Azure storage connection string
/// (`DefaultEndpointsProtocol=...;AccountName=...;AccountKey=...;BlobEndpoint=...`) that offsite
/// uses. `Debug` shows the account and endpoint, never the key or the SAS.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AzureConnection {
    /// `AccountName`.
    pub account: Option<String>,
    /// `AccountKey`, base64.
    pub key: Option<String>,
    /// `BlobEndpoint`, without a trailing `/`.
    pub endpoint: Option<String>,
    /// `SharedAccessSignature`, without a leading `?`.
    pub sas: Option<String>,
}

impl fmt::Debug for AzureConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureConnection")
            .field("account", &self.account)
            .field("endpoint", &self.endpoint)
            .field("has_key", &self.key.is_some())
            .field("has_sas", &self.sas.is_some())
            .finish()
    }
}

impl AzureConnection {
    /// Reads the `Key=Value;` pairs offsite uses; others are ignored.
    pub fn parse(cs: &str) -> AzureConnection {
        let mut c = AzureConnection::default();
        for part in cs.split(';').filter(|p| !p.is_empty()) {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            match k.trim() {
                "AccountName" => c.account = Some(v.to_string()),
                "AccountKey" => c.key = Some(v.to_string()),
                "BlobEndpoint" => c.endpoint = Some(v.trim_end_matches('/').to_string()),
                "SharedAccessSignature" => c.sas = Some(v.trim_start_matches('?').to_string()),
                _ => {}
            }
        }
        c
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

fn invalid(url: &str, why: impl fmt::Display, hint: &str) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        "url",
        Operation::Open,
        format!("cannot use {url:?} as a location: {why}"),
    )
    .with_hint(hint.to_string())
}

/// The error for credentials written into a URL, naming where without repeating them.
fn credentials_in_url(scheme: &str, place: &str) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        "url",
        Operation::Open,
        format!(
            "a {scheme}:// location carries credentials in {place} (not repeated here); they were not used"
        ),
    )
    .with_hint(
        "remove them from the URL: credentials come from the provider's standard chain \
         (environment, profile, workload identity), never from a URL that ends up in logs, \
         reports and manifests; rotate them if this command line was recorded",
    )
}

const EXAMPLES: &str = "write file:///var/backups/app, s3://bucket/prefix?region=us-east-1, \
                        gs://bucket/prefix, az://account/container/prefix or memory://name";

impl Location {
    /// Parses a location URL. A plain absolute path (`/var/backups`) is taken as `file://`.
    pub fn parse(input: &str) -> Result<Location> {
        let input = input.trim();
        if input.is_empty() {
            return Err(invalid(input, "it is empty", EXAMPLES));
        }
        if input.starts_with('/') {
            return Self::parse(&format!("file://{input}"));
        }
        let Some((scheme, rest)) = input.split_once("://") else {
            // `backups`, `./backups` and `file:backups` are relative paths: a location must
            // not depend on the directory a cron job happens to start in.
            let relative = input.strip_prefix("file:").unwrap_or(input);
            if !relative.contains(':') || input.starts_with("file:") {
                let abs = std::env::current_dir()
                    .map(|d| d.join(relative.trim_start_matches("./")))
                    .map(|p| format!(" (here that is file://{})", p.display()))
                    .unwrap_or_default();
                return Err(invalid(
                    input,
                    "it is a relative path",
                    &format!(
                        "use an absolute path: file:///var/backups/app or /var/backups/app{abs}"
                    ),
                ));
            }
            return Err(invalid(input, "it has no scheme", EXAMPLES));
        };
        // Credentials in a URL's user part (s3://KEY:SECRET@bucket, endpoint=http://u:p@host)
        // are refused before anything else looks at the URL, and never echoed: URLs end up in
        // logs, reports and manifests.
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(credentials_in_url(
                &scheme.to_ascii_lowercase(),
                "its user part",
            ));
        }
        if let Some((_, q)) = rest.split_once('?') {
            for pair in q.split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
                if let Some((_, after)) = v.split_once("://") {
                    if after.split(['/', '?']).next().unwrap_or("").contains('@') {
                        return Err(credentials_in_url(
                            &scheme.to_ascii_lowercase(),
                            &format!("the user part of its {k:?} parameter"),
                        ));
                    }
                }
            }
        }
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "file" => Scheme::File,
            "memory" => Scheme::Memory,
            "s3" => Scheme::S3,
            "gs" | "gcs" => Scheme::Gcs,
            "az" | "azure" => Scheme::Azure,
            other => {
                return Err(invalid(
                    input,
                    format!("unknown scheme {other:?}"),
                    "offsite knows file://, s3://, gs://, az:// and memory://",
                ))
            }
        };
        if rest.contains('#') {
            return Err(invalid(
                input,
                "it has a fragment ('#')",
                "remove the '#...' part",
            ));
        }
        let (path_part, query_part) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut query = BTreeMap::new();
        if let Some(q) = query_part {
            for pair in q.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let k = decode(input, k)?;
                if looks_like_credential(&k) {
                    let redacted =
                        format!("{}?...", &input[..input.find('?').unwrap_or(input.len())]);
                    return Err(invalid(
                        &redacted,
                        format!("query parameter {k:?} looks like a credential"),
                        "credentials come from the provider's standard chain (environment, profile, \
                         workload identity), never from a URL that ends up in logs and manifests",
                    ));
                }
                query.insert(k, decode(input, v)?);
            }
        }
        let mut loc = Location {
            scheme,
            bucket: String::new(),
            container: None,
            path: None,
            prefix: String::new(),
            query,
            original: input.to_string(),
        };
        match scheme {
            Scheme::File => {
                let (host, path) = match path_part.find('/') {
                    Some(i) => (&path_part[..i], &path_part[i..]),
                    None => (path_part, ""),
                };
                if !host.is_empty() && host != "localhost" {
                    return Err(invalid(
                        input,
                        format!("file URLs name a local path, but this one has the host {host:?}"),
                        "write file:///absolute/path (three slashes)",
                    ));
                }
                let path = decode(input, path)?;
                if path.is_empty() {
                    return Err(invalid(
                        input,
                        "it has no path",
                        "write file:///absolute/path",
                    ));
                }
                if path.split('/').any(|s| s == "..") {
                    return Err(invalid(
                        input,
                        "'..' is not allowed in a location",
                        "write the absolute path",
                    ));
                }
                loc.path = Some(PathBuf::from(path));
            }
            Scheme::Memory | Scheme::S3 | Scheme::Gcs => {
                let (bucket, prefix) = path_part.split_once('/').unwrap_or((path_part, ""));
                if bucket.is_empty() {
                    return Err(invalid(
                        input,
                        "the bucket name is missing",
                        &format!("write {}://BUCKET/prefix", scheme.as_str()),
                    ));
                }
                if matches!(scheme, Scheme::S3 | Scheme::Gcs) {
                    check_bucket_name(input, bucket)?;
                }
                loc.bucket = bucket.to_string();
                loc.prefix = clean_prefix(input, &decode(input, prefix)?)?;
            }
            Scheme::Azure => {
                let mut it = path_part.splitn(3, '/');
                let account = it.next().unwrap_or("");
                let container = it.next().unwrap_or("");
                if account.is_empty() || container.is_empty() {
                    return Err(invalid(
                        input,
                        "Azure locations need an account and a container",
                        "write az://ACCOUNT/CONTAINER/prefix",
                    ));
                }
                check_azure_names(input, account, container)?;
                loc.bucket = account.to_string();
                loc.container = Some(container.to_string());
                loc.prefix = clean_prefix(input, &decode(input, it.next().unwrap_or(""))?)?;
            }
        }
        Ok(loc)
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// What the location points at, for telling two spellings of one place apart
    /// (`file:///x` and `file:///x/`, `file:///x/./y` and `file:///x//y`). An Azure location's
    /// endpoint is the one it resolves to (see [`Location::azure_endpoint`]), so two
    /// `connection-string-env` variables that hold one account's connection string are one
    /// place. Reads the process environment; [`Location::place_with`] takes another.
    pub fn place(&self) -> Place {
        self.place_with(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// [`Location::place`] with an explicit environment (tests).
    pub fn place_with(&self, env: impl Fn(&str) -> Option<String>) -> Place {
        let endpoint = if self.scheme == Scheme::Azure {
            format!("endpoint={}", self.azure_endpoint(env).to_ascii_lowercase())
        } else {
            ["endpoint", "connection-string-env"]
                .iter()
                .filter_map(|k| {
                    self.query
                        .get(*k)
                        .map(|v| format!("{k}={}", v.trim_end_matches('/').to_ascii_lowercase()))
                })
                .collect::<Vec<_>>()
                .join("&")
        };
        let path = match &self.path {
            Some(p) => p
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect::<PathBuf>()
                .display()
                .to_string(),
            None => self.prefix.clone(),
        };
        Place {
            scheme: self.scheme,
            endpoint,
            bucket: self.bucket.to_ascii_lowercase(),
            container: self.container.as_ref().map(|c| c.to_ascii_lowercase()),
            path,
        }
    }

    /// The blob endpoint an `az://` location's requests go to, without a trailing `/`: the
    /// URL's `endpoint=`, else the `BlobEndpoint` of the connection string in the variable
    /// `connection-string-env=` names (default `AZURE_STORAGE_CONNECTION_STRING`) when that
    /// string is for this account or names none, else `AZURE_STORAGE_BLOB_ENDPOINT`, else
    /// `https://ACCOUNT.blob.core.windows.net`. Only the endpoint is read from the connection
    /// string; its key never leaves [`AzureConnection`].
    pub fn azure_endpoint(&self, env: impl Fn(&str) -> Option<String>) -> String {
        if let Some(ep) = self.query.get("endpoint") {
            return ep.trim_end_matches('/').to_string();
        }
        let var = self
            .query
            .get("connection-string-env")
            .map_or("AZURE_STORAGE_CONNECTION_STRING", String::as_str);
        env(var)
            .map(|cs| AzureConnection::parse(&cs))
            .filter(|c| c.account.as_deref().is_none_or(|a| a == self.bucket))
            .and_then(|c| c.endpoint)
            .or_else(|| {
                env("AZURE_STORAGE_BLOB_ENDPOINT").map(|e| e.trim_end_matches('/').to_string())
            })
            .unwrap_or_else(|| format!("https://{}.blob.core.windows.net", self.bucket))
    }

    /// A copy with `sub` added under the prefix (the policy's `prefix`, `--prefix`).
    pub fn join_prefix(&self, sub: &str) -> Result<Location> {
        let sub = clean_prefix(&self.original, sub)?;
        if sub.is_empty() {
            return Ok(self.clone());
        }
        let mut loc = self.clone();
        match loc.scheme {
            Scheme::File => {
                let p = loc.path.take().unwrap_or_default().join(&sub);
                loc.path = Some(p);
            }
            _ => {
                loc.prefix = if loc.prefix.is_empty() {
                    sub.clone()
                } else {
                    format!("{}/{sub}", loc.prefix)
                };
            }
        }
        let (base, query) = match self.original.split_once('?') {
            Some((b, q)) => (b.trim_end_matches('/').to_string(), Some(q)),
            None => (self.original.trim_end_matches('/').to_string(), None),
        };
        loc.original = match query {
            Some(q) => format!("{base}/{sub}?{q}"),
            None => format!("{base}/{sub}"),
        };
        Ok(loc)
    }
}

/// Query parameters that would put a credential into a URL (which ends up in logs and manifests).
/// Names of keys (`sse-kms-key`) are fine; key material is not.
fn looks_like_credential(k: &str) -> bool {
    let k = k.to_ascii_lowercase().replace('_', "-");
    // `credentials-file=PATH` and `connection-string-env=VAR` say where a secret is, not what.
    if k.ends_with("-file") || k.ends_with("-env") {
        return false;
    }
    ["secret", "password", "token", "credential", "signature"]
        .iter()
        .any(|w| k.contains(w))
        || [
            "sig",
            "key",
            "access-key",
            "account-key",
            "access-key-id",
            "shared-key",
            "sas",
        ]
        .contains(&k.as_str())
}

fn decode(url: &str, s: &str) -> Result<String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| {
            invalid(
                url,
                "a percent-escape does not decode to UTF-8",
                "fix the %XX escapes",
            )
        })
}

fn clean_prefix(url: &str, prefix: &str) -> Result<String> {
    let p = prefix.trim_matches('/');
    if p.split('/').any(|s| s == "." || s == "..") {
        return Err(invalid(
            url,
            "'.' and '..' are not allowed in a prefix",
            "write the prefix plainly",
        ));
    }
    if p.contains("//") {
        return Err(invalid(
            url,
            "the prefix has an empty segment ('//')",
            "remove the doubled '/'",
        ));
    }
    Ok(p.to_string())
}

/// Azure's naming rules, checked before any request: an account is 3-24 lowercase letters and
/// digits; a container 3-63 lowercase letters, digits and single hyphens, starting and ending
/// with a letter or digit (`$root` and `$web` are Azure's own).
fn check_azure_names(url: &str, account: &str, container: &str) -> Result<()> {
    let lower_digit = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !(3..=24).contains(&account.len()) || !account.chars().all(lower_digit) {
        return Err(invalid(
            url,
            format!("{account:?} is not a valid Azure storage account name"),
            "account names are 3-24 lowercase letters and digits",
        ));
    }
    let special = matches!(container, "$root" | "$web");
    let ok = (3..=63).contains(&container.len())
        && container.chars().all(|c| lower_digit(c) || c == '-')
        && container.starts_with(lower_digit)
        && container.ends_with(lower_digit)
        && !container.contains("--");
    if !ok && !special {
        return Err(invalid(
            url,
            format!("{container:?} is not a valid Azure container name"),
            "container names are 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit (such as \"backups\" or \"dr-backups\")",
        ));
    }
    Ok(())
}

fn check_bucket_name(url: &str, bucket: &str) -> Result<()> {
    let ok_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'));
    if !(3..=222).contains(&bucket.len()) || !ok_chars {
        return Err(invalid(
            url,
            format!("{bucket:?} is not a valid bucket name"),
            "bucket names are 3-63 characters of lowercase letters, digits, '-' and '.'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_place_in_two_spellings_is_one_place() {
        let place = |u: &str| Location::parse(u).unwrap().place();
        for (a, b) in [
            ("file:///x", "file:///x/"),
            ("file:///x/y", "file:///x/./y"),
            ("file:///x/y", "file:///x//y/"),
            ("/x", "file://localhost/x"),
            (
                "s3://bkt/p",
                "s3://bkt/p/?region=us-east-1&storage-class=GLACIER",
            ),
            (
                "s3://bkt/p?endpoint=http://h:9/",
                "s3://bkt/p?endpoint=HTTP://H:9",
            ),
            ("gs://bkt", "gcs://bkt/"),
            ("az://acct/cont/p", "azure://acct/cont/p/"),
        ] {
            assert_eq!(place(a), place(b), "{a} {b}");
        }
        for (a, b) in [
            ("file:///x", "file:///xy"),
            ("s3://bkt/p", "s3://bkt/q"),
            ("s3://bkt/p", "gs://bkt/p"),
            ("s3://bkt/p", "s3://bkt/p?endpoint=http://h:9"),
            ("az://acct/cont", "az://acct/dont"),
        ] {
            assert_ne!(place(a), place(b), "{a} {b}");
        }
    }

    #[test]
    fn two_connection_string_variables_for_one_account_are_one_place() {
        const AZURITE: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=c2VjcmV0;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;";
        const OTHER: &str = "AccountName=devstoreaccount1;AccountKey=c2VjcmV0;BlobEndpoint=http://127.0.0.1:20000/devstoreaccount1";
        let env = |k: &str| match k {
            "A" | "B" => Some(AZURITE.to_string()),
            "C" => Some(OTHER.to_string()),
            _ => None,
        };
        let place = |u: &str| Location::parse(u).unwrap().place_with(env);
        let a = place("az://devstoreaccount1/cont/p?connection-string-env=A");
        assert_eq!(
            a,
            place("az://devstoreaccount1/cont/p/?connection-string-env=B")
        );
        assert_eq!(
            a,
            place("az://devstoreaccount1/cont/p?endpoint=http://127.0.0.1:10000/devstoreaccount1")
        );
        assert_ne!(
            a,
            place("az://devstoreaccount1/cont/p?connection-string-env=C")
        );
        assert_ne!(
            a,
            place("az://devstoreaccount1/cont/q?connection-string-env=B")
        );
        // Without a connection string, the account's public endpoint.
        assert_eq!(
            Location::parse("az://acct/cont")
                .unwrap()
                .azure_endpoint(|_| None),
            "https://acct.blob.core.windows.net"
        );
        assert!(!format!("{:?}", AzureConnection::parse(AZURITE)).contains("c2VjcmV0"));
    }

    #[test]
    fn parses_each_scheme() {
        let l = Location::parse("file:///var/backups/app").unwrap();
        assert_eq!(l.scheme, Scheme::File);
        assert_eq!(
            l.path.as_deref(),
            Some(std::path::Path::new("/var/backups/app"))
        );

        let l = Location::parse("/tmp/x y").unwrap();
        assert_eq!(l.path.as_deref(), Some(std::path::Path::new("/tmp/x y")));

        let l = Location::parse("s3://acme-backups/app/db?region=us-east-1").unwrap();
        assert_eq!(
            (l.scheme, l.bucket.as_str(), l.prefix.as_str()),
            (Scheme::S3, "acme-backups", "app/db")
        );
        assert_eq!(l.query.get("region").map(String::as_str), Some("us-east-1"));

        let l = Location::parse("s3://bkt/p?sse-kms-key=alias/backups").unwrap();
        assert_eq!(
            l.query.get("sse-kms-key").map(String::as_str),
            Some("alias/backups")
        );

        let l = Location::parse("gs://acme-dr").unwrap();
        assert_eq!((l.scheme, l.prefix.as_str()), (Scheme::Gcs, ""));

        let l = Location::parse("az://acct/cont/a/b/").unwrap();
        assert_eq!(l.container.as_deref(), Some("cont"));
        assert_eq!(l.prefix, "a/b");

        let l = Location::parse("memory://t1/p").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("t1", "p"));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases = [
            ("", "it is empty"),
            ("backups", "it is a relative path"),
            ("file:backups", "it is a relative path"),
            ("./backups", "use an absolute path"),
            ("s3:bucket", "no scheme"),
            ("ftp://x/y", "unknown scheme \"ftp\""),
            ("s3:///prefix", "bucket name is missing"),
            ("s3://Bad_Bucket!/x", "not a valid bucket name"),
            ("az://acmebackups/dr", "not a valid Azure container name"),
            (
                "az://acmebackups/Backups",
                "not a valid Azure container name",
            ),
            ("az://acmebackups/dr--x", "not a valid Azure container name"),
            (
                "az://acmebackups/-backups",
                "not a valid Azure container name",
            ),
            (
                "az://Acme/backups",
                "not a valid Azure storage account name",
            ),
            (
                "az://acme-backups/backups",
                "not a valid Azure storage account name",
            ),
            ("az://acct", "need an account and a container"),
            ("file://host/x", "has the host \"host\""),
            ("s3://bucket/a/../b", "'.' and '..'"),
            ("s3://bucket/x?secret_key=abc", "looks like a credential"),
            ("s3://bucket/x?access-key=abc", "looks like a credential"),
        ];
        for (url, want) in cases {
            let e = Location::parse(url).unwrap_err().to_string();
            assert!(e.contains(want), "{url:?}: {e}");
            assert!(!e.contains("abc\""), "secret echoed: {e}");
        }
    }

    #[test]
    fn join_prefix_adds_a_segment() {
        let l = Location::parse("s3://bkt/base?region=x")
            .unwrap()
            .join_prefix("app")
            .unwrap();
        assert_eq!(l.prefix, "base/app");
        assert_eq!(l.as_str(), "s3://bkt/base/app?region=x");
        let l = Location::parse("file:///tmp/x/")
            .unwrap()
            .join_prefix("/app/")
            .unwrap();
        assert_eq!(l.path.as_deref(), Some(std::path::Path::new("/tmp/x/app")));
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn credentials_in_a_url_are_refused_and_never_repeated() {
        for url in [
            "s3://AKIAEXAMPLE:wJalrSECRET@bucket/app",
            "ftp://user:hunter2SECRET@host/x",
            "az://me:SECRETkey@account/container",
            "s3://bucket/app?endpoint=http://user:passSECRET@127.0.0.1:9000",
            "s3://bucket/app?endpoint=http%3A%2F%2Fuser%3ApassSECRET%40127.0.0.1",
        ] {
            let e = Location::parse(url).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{url}");
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("SECRET"), "{shown}");
            assert!(shown.contains("carries credentials"), "{shown}");
        }
        // An @ in a path or a prefix is a name, not credentials.
        assert!(Location::parse("file:///var/backups/a@b").is_ok());
        assert!(Location::parse("s3://bucket/team@x/app").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_never_panics(s in "\\PC{0,80}") {
            let _ = Location::parse(&s);
        }

        #[test]
        fn parsing_url_shaped_text_never_panics(
            scheme in "(s3|gs|az|file|memory|ftp)",
            rest in "[a-zA-Z0-9@:/?&=%._~+-]{0,60}",
        ) {
            let _ = Location::parse(&format!("{scheme}://{rest}"));
        }

        #[test]
        fn bucket_and_prefix_round_trip(
            bucket in "[a-z0-9][a-z0-9-]{2,20}[a-z0-9]",
            prefix in "([a-z0-9_-]{1,8}/){0,3}[a-z0-9_-]{1,8}",
        ) {
            let loc = Location::parse(&format!("s3://{bucket}/{prefix}")).unwrap();
            proptest::prop_assert_eq!(&loc.bucket, &bucket);
            proptest::prop_assert_eq!(&loc.prefix, &prefix);
        }

        #[test]
        fn key_validation_never_panics(s in "\\PC{0,80}") {
            let _ = crate::validate_key(&s, "memory", Operation::Put);
        }
    }
}
