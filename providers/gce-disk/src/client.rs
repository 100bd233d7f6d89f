//! The only file that builds the SDK clients.

use google_cloud_compute_v1::client::{Disks, Snapshots};
use offsite_storage::{Error, ErrorKind, Operation};

/// The variable that replaces the Compute Engine endpoint (tests, private endpoints).
pub const ENDPOINT_VAR: &str = "OFFSITE_GCP_COMPUTE_ENDPOINT";

/// The snapshot and disk clients, with ADC credentials (none for a loopback endpoint).
pub async fn build() -> Result<(Snapshots, Disks), Error> {
    let endpoint = std::env::var(ENDPOINT_VAR).ok().filter(|e| !e.is_empty());
    let loopback = endpoint.as_deref().is_some_and(|e| {
        let rest = e
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        rest.starts_with("127.") || rest.starts_with("localhost") || rest.starts_with("[::1]")
    });
    let creds = if loopback {
        google_cloud_auth::credentials::anonymous::Builder::new().build()
    } else {
        google_cloud_auth::credentials::Builder::default()
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Unauthenticated,
                    "gce-disk",
                    Operation::Open,
                    format!("no usable Google credentials: {e}"),
                )
                .with_hint("set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, run `gcloud auth application-default login`, or run with a workload identity")
            })?
    };
    let fail = |what: &str, e: google_cloud_gax::client_builder::Error| {
        Error::new(
            ErrorKind::InvalidConfig,
            "gce-disk",
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
