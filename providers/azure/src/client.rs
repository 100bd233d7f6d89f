//! The only file that builds the SDK client: the container client with the location's
//! authentication (shared key, SAS, or a Microsoft Entra ID credential chain), and `Inner`,
//! what every request needs.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::{RetryOptions, Url};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use offsite_azure_auth::{is_loopback_http, Credential, LoopbackBearer};
use offsite_storage::{Error, ErrorKind, Operation, Result, RetryPolicy};

use crate::auth::SharedKeyPolicy;
use crate::config::{AzureAuth, AzureConfig};
use crate::error::ENTRA_HINT;

/// The provider name in errors.
pub(crate) const PROVIDER: &str = "azure";

/// What every request needs: the container client, the location, the retry policy.
pub(crate) struct Inner {
    pub(crate) container: BlobContainerClient,
    pub(crate) cfg: AzureConfig,
    pub(crate) url: String,
    pub(crate) retry: RetryPolicy,
}

/// The token scope for Azure Storage.
const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// The container client for `cfg`, with the authentication it names.
pub(crate) fn build(cfg: AzureConfig, url: &str) -> Result<Inner> {
    let bad = |e: String| {
        Error::new(ErrorKind::InvalidConfig, PROVIDER, Operation::Open, e).with_key(url)
    };
    let mut container_url = Url::parse(&format!("{}/{}", cfg.endpoint, cfg.container))
        .map_err(|e| bad(format!("the endpoint {:?} is not a URL: {e}", cfg.endpoint)))?;
    let mut options = BlobContainerClientOptions::default();
    // One retry layer: ours (offsite_storage::RetryPolicy), not the SDK's as well.
    options.client_options.retry = RetryOptions::none();
    let credential = match &cfg.auth {
        AzureAuth::SharedKey { key } => {
            options
                .client_options
                .per_try_policies
                .push(Arc::new(SharedKeyPolicy::new(&cfg.account, key)));
            None
        }
        AzureAuth::Sas { token } => {
            container_url.set_query(Some(token));
            None
        }
        AzureAuth::EntraId => {
            // The chain the managed-disk adapter uses too (offsite-azure-auth).
            let credential = Credential::from_env().map_err(|e| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    PROVIDER,
                    Operation::Open,
                    format!("no Microsoft Entra ID credential: {e}"),
                )
                .with_key(url)
                .with_hint(ENTRA_HINT)
            })?;
            if is_loopback_http(&container_url) {
                // The SDK sends tokens over https only; an emulator on this machine
                // (Azurite) is plain http.
                options
                    .client_options
                    .per_try_policies
                    .push(Arc::new(LoopbackBearer::new(credential, STORAGE_SCOPE)));
                None
            } else {
                Some(Arc::new(credential) as Arc<dyn TokenCredential>)
            }
        }
    };
    let container = BlobContainerClient::new(container_url, credential, Some(options))
        .map_err(|e| bad(e.to_string()))?;
    Ok(Inner {
        container,
        cfg,
        url: url.to_string(),
        retry: RetryPolicy::default().at(url),
    })
}
