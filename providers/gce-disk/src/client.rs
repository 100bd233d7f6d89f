//! The only file that builds the SDK clients.

use google_cloud_compute_v1::client::{Disks, Snapshots};
use offsite_storage::{Error, ErrorKind, Operation};

use crate::config::{GceConfig, PROVIDER};

/// The snapshot and disk clients, with ADC credentials (none for a loopback endpoint).
pub async fn build(cfg: &GceConfig) -> Result<(Snapshots, Disks), Error> {
    let endpoint = &cfg.endpoint;
    let creds = if cfg.loopback() {
        google_cloud_auth::credentials::anonymous::Builder::new().build()
    } else {
        google_cloud_auth::credentials::Builder::default()
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    PROVIDER,
                    Operation::Open,
                    format!("no usable Google credentials: {e}"),
                )
                .with_hint("set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run `gcloud auth application-default login`, or run with a workload identity")
            })?
    };
    let fail = |what: &str, e: google_cloud_gax::client_builder::Error| {
        Error::new(
            ErrorKind::InvalidConfig,
            PROVIDER,
            Operation::Open,
            format!("cannot make the Compute Engine {what} client: {e}"),
        )
    };
    let mut sb = Snapshots::builder().with_credentials(creds.clone());
    let mut db = Disks::builder().with_credentials(creds);
    if let Some(ep) = &endpoint {
        sb = sb.with_endpoint(ep.clone());
        db = db.with_endpoint(ep.clone());
    }
    let snaps = sb.build().await.map_err(|e| fail("snapshots", e))?;
    let disks = db.build().await.map_err(|e| fail("disks", e))?;
    Ok((snaps, disks))
}
