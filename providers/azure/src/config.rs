//! What an `az://account/container/prefix` location configures, and which credentials apply.

use offsite_storage::adapter::ENGINE_KEYS;
use offsite_storage::{AzureConnection, Error, ErrorKind, Location, Operation, Result, Scheme};

/// Default block size.
pub const DEFAULT_BLOCK: u64 = 4 << 20;

/// How requests are authorized. `Debug` never shows a key or a SAS.
#[derive(Clone, PartialEq, Eq)]
pub enum AzureAuth {
    /// Shared key (HMAC-SHA256 over the canonical request), base64 account key.
    SharedKey {
        /// The account key, base64.
        key: String,
    },
    /// A SAS token appended to every URL.
    Sas {
        /// The query string, without `?`.
        token: String,
    },
    /// Microsoft Entra ID tokens (https only).
    EntraId,
}

impl std::fmt::Debug for AzureAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.method())
    }
}

impl AzureAuth {
    /// The method's name, for messages ("auth failed with ...").
    pub fn method(&self) -> &'static str {
        match self {
            AzureAuth::SharedKey { .. } => "shared key",
            AzureAuth::Sas { .. } => "SAS token",
            AzureAuth::EntraId => "Microsoft Entra ID",
        }
    }
}

/// An Azure location's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureConfig {
    /// The storage account.
    pub account: String,
    /// The container.
    pub container: String,
    /// The blob name prefix.
    pub prefix: String,
    /// The blob endpoint, `https://ACCOUNT.blob.core.windows.net` unless a connection string,
    /// `?endpoint=` or `AZURE_STORAGE_BLOB_ENDPOINT` says otherwise (Azurite:
    /// `http://127.0.0.1:10000/devstoreaccount1`).
    pub endpoint: String,
    /// How to authorize.
    pub auth: AzureAuth,
    /// Block size (`?block-size-mib=`).
    pub block_size: u64,
    /// Blocks in flight per upload.
    pub concurrency: usize,
}

impl AzureConfig {
    /// Reads a location and the environment's credentials.
    pub fn from_location(loc: &Location) -> Result<AzureConfig> {
        Self::from_location_with(loc, |k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// The same with an explicit environment (tests).
    pub fn from_location_with(
        loc: &Location,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<AzureConfig> {
        let bad = |msg: String, hint: &str| {
            Error::new(ErrorKind::InvalidConfig, "azure", Operation::Open, msg)
                .with_key(loc.as_str())
                .with_hint(hint.to_string())
        };
        if loc.scheme != Scheme::Azure {
            return Err(bad(
                format!("{} is not an az:// location", loc.as_str()),
                "write az://account/container/prefix",
            ));
        }
        let account = loc.bucket.clone();
        // One resolution of the endpoint, the one that tells places apart too.
        let endpoint = loc.azure_endpoint(&env);
        let mut auth = None;
        // `connection-string-env=VAR` (a policy's `azure-connection-string-env`): this
        // destination's connection string is in VAR, not in AZURE_STORAGE_CONNECTION_STRING.
        let cs_var = match loc.query.get("connection-string-env") {
            Some(var) => {
                if env(var).is_none() {
                    return Err(bad(
                        format!("connection-string-env names {var}, which is not set"),
                        &format!("export {var} with the account's connection string, or remove azure-connection-string-env to use the default chain"),
                    ));
                }
                var.as_str()
            }
            None => "AZURE_STORAGE_CONNECTION_STRING",
        };
        if let Some(cs) = env(cs_var) {
            let AzureConnection {
                account: acct,
                key,
                sas,
                ..
            } = AzureConnection::parse(&cs);
            if acct.as_deref().is_some_and(|a| a == account) || acct.is_none() {
                auth = match (key, sas) {
                    (Some(key), _) => Some(AzureAuth::SharedKey { key }),
                    (None, Some(token)) => Some(AzureAuth::Sas { token }),
                    _ => None,
                };
            }
        }
        if auth.is_none() {
            auth = env("AZURE_STORAGE_KEY")
                .map(|key| AzureAuth::SharedKey { key })
                .or_else(|| {
                    env("AZURE_STORAGE_SAS_TOKEN").map(|t| AzureAuth::Sas {
                        token: t.trim_start_matches('?').to_string(),
                    })
                });
        }
        let mut cfg = AzureConfig {
            account: account.clone(),
            container: loc.container.clone().unwrap_or_default(),
            prefix: loc.prefix.clone(),
            endpoint,
            auth: auth.unwrap_or(AzureAuth::EntraId),
            block_size: DEFAULT_BLOCK,
            concurrency: 4,
        };
        for (k, v) in &loc.query {
            match k.as_str() {
                "endpoint" | "connection-string-env" => {}
                "block-size-mib" => {
                    let mib: u64 = v.parse().ok().filter(|m| (1..=4000).contains(m)).ok_or_else(|| {
                        bad(format!("block-size-mib={v:?} is out of range"), "give a whole number of MiB from 1 to 4000")
                    })?;
                    cfg.block_size = mib << 20;
                }
                k if ENGINE_KEYS.contains(&k) => {}
                other => {
                    return Err(bad(
                        format!("unknown parameter {other:?} in an az:// location"),
                        "az:// takes endpoint, connection-string-env, block-size-mib, storage-class, lock, lock-days, legal-hold",
                    ))
                }
            }
        }
        let loopback =
            url::Url::parse(&cfg.endpoint).is_ok_and(|u| offsite_azure_auth::is_loopback_http(&u));
        if cfg.auth == AzureAuth::EntraId && cfg.endpoint.starts_with("http://") && !loopback {
            return Err(bad(
                "Microsoft Entra ID tokens are only sent over https (or plain http to this machine), and the endpoint is http".into(),
                "set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_KEY for an emulator, or use an https endpoint",
            ));
        }
        Ok(cfg)
    }

    /// The blob name of a store-relative key.
    pub fn full_key(&self, key: &str) -> String {
        offsite_storage::join_key(&self.prefix, key)
    }

    /// The store-relative key of a blob name under the prefix.
    pub fn relative_key<'a>(&self, full: &'a str) -> Option<&'a str> {
        offsite_storage::strip_store_prefix(&self.prefix, full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AZURITE: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;";

    #[test]
    fn a_named_variable_holds_this_destinations_connection_string() {
        let loc =
            Location::parse("az://devstoreaccount1/backups/app?connection-string-env=DR_AZURE")
                .unwrap();
        let c = AzureConfig::from_location_with(&loc, |k| {
            (k == "DR_AZURE").then(|| AZURITE.to_string())
        })
        .unwrap();
        assert_eq!(c.auth, AzureAuth::SharedKey { key: "a2V5".into() });
        let e = AzureConfig::from_location_with(&loc, |k| {
            (k == "AZURE_STORAGE_CONNECTION_STRING").then(|| AZURITE.to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("DR_AZURE, which is not set"), "{e}");
        assert!(!e.contains("a2V5"), "{e}");
    }

    #[test]
    fn connection_string_gives_endpoint_and_key() {
        let loc = Location::parse("az://devstoreaccount1/backups/app").unwrap();
        let c = AzureConfig::from_location_with(&loc, |k| {
            (k == "AZURE_STORAGE_CONNECTION_STRING").then(|| AZURITE.to_string())
        })
        .unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        assert_eq!(c.auth, AzureAuth::SharedKey { key: "a2V5".into() });
        assert!(
            !format!("{c:?}").contains("a2V5"),
            "the key never shows in Debug"
        );
        assert_eq!(c.full_key("x"), "app/x");
    }

    #[test]
    fn entra_id_needs_https_or_this_machine() {
        let loc = Location::parse("az://acct/cont?endpoint=http://blob.example.net").unwrap();
        let e = AzureConfig::from_location_with(&loc, |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("only sent over https"), "{e}");
        let loc = Location::parse("az://acct/cont?endpoint=http://127.0.0.1:1").unwrap();
        let c = AzureConfig::from_location_with(&loc, |_| None).unwrap();
        assert_eq!(c.auth, AzureAuth::EntraId);
        let loc = Location::parse("az://acct/cont").unwrap();
        let c = AzureConfig::from_location_with(&loc, |_| None).unwrap();
        assert_eq!(c.endpoint, "https://acct.blob.core.windows.net");
        assert_eq!(c.auth, AzureAuth::EntraId);
    }
}
