//! The only file that builds clients, and `Inner`, what every request needs (the clients,
//! the location, key and storage-class checks). It builds `gcloud-storage` for reads, lists, deletes and rewrites,
//! and a plain HTTP client (with the same token) for the JSON API calls that crate lacks.

use std::sync::Arc;

use gcloud_storage::client::google_cloud_auth;
use gcloud_storage::client::{Client, ClientConfig};
use offsite_storage::{adapter, Operation, PutOptions, Result, RetryPolicy};
use token_source::{TokenSource, TokenSourceProvider};

use crate::config::GcsConfig;

/// The provider name in errors.
pub(crate) const PROVIDER: &str = "gcs";

/// Storage classes GCS accepts.
const CLASSES: &[&str] = match offsite_storage::Scheme::Gcs.storage_classes() {
    Some((c, _)) => c,
    None => &[],
};

/// What every request needs; shared by the store, its writers, upload sessions and bucket calls.
pub(crate) struct Inner {
    pub(crate) clients: Clients,
    pub(crate) cfg: GcsConfig,
    pub(crate) url: String,
    pub(crate) retry: RetryPolicy,
}

impl Inner {
    pub(crate) fn check(&self, key: &str, op: Operation) -> Result<String> {
        offsite_storage::validate_key(key, PROVIDER, op)?;
        Ok(self.cfg.full_key(key))
    }

    pub(crate) fn check_class(&self, options: &PutOptions, key: &str) -> Result<()> {
        adapter::check_storage_class(
            PROVIDER,
            key,
            options.storage_class.as_deref(),
            CLASSES,
            "a GCS storage class",
        )
    }
}

/// Everything a store needs to talk to GCS.
pub struct Clients {
    /// The crate's client.
    pub storage: Client,
    /// For upload sessions, retention and object metadata.
    pub http: reqwest::Client,
    /// Bearer tokens; `None` against an emulator.
    pub token: Option<Arc<dyn TokenSource>>,
    /// `https://storage.googleapis.com` or the emulator.
    pub base: String,
}

/// Builds the clients: anonymous against an endpoint, else application default credentials.
pub async fn build(cfg: &GcsConfig) -> std::result::Result<Clients, String> {
    let base = cfg.base();
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(20))
        // A stalled connection fails (and is retried) instead of hanging the push forever.
        .read_timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    let mut config = ClientConfig {
        storage_endpoint: base.clone(),
        ..ClientConfig::default()
    };
    let token = if cfg.endpoint.is_some() {
        config = config.anonymous();
        None
    } else {
        let auth = google_cloud_auth::project::Config::default()
            .with_scopes(&["https://www.googleapis.com/auth/devstorage.full_control"]);
        let provider = match &cfg.credentials_file {
            Some(path) => {
                let file = google_cloud_auth::credentials::CredentialsFile::new_from_file(
                    path.display().to_string(),
                )
                .await
                .map_err(|e| {
                    format!(
                        "cannot read the Google credentials file {} ({e}); check the destination's gcp-credentials-file (credentials-file=) path",
                        path.display()
                    )
                })?;
                google_cloud_auth::token::DefaultTokenSourceProvider::new_with_credentials(
                    auth,
                    Box::new(file),
                )
                .await
                .map_err(|e| {
                    format!(
                        "the Google credentials file {} was not accepted ({e})",
                        path.display()
                    )
                })?
            }
            None => google_cloud_auth::token::DefaultTokenSourceProvider::new(auth)
                .await
                .map_err(|e| format!("no Google credentials found ({e}); run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or run with a workload identity"))?,
        };
        let ts = provider.token_source();
        config.token_source_provider = Some(Box::new(provider));
        Some(ts)
    };
    Ok(Clients {
        storage: Client::new(config),
        http,
        token,
        base,
    })
}
