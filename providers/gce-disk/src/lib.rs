//! The GCP persistent-disk adapter for the offsite [`Snapshots`](offsite_storage::Snapshots)
//! contract, through `google-cloud-compute-v1` (the snapshot and disk clients only).
//!
//! Snapshots are global resources stored in one storage location (a region or a multi-region
//! such as `us`), chosen when they are made: GCP has no copy of a standard snapshot between
//! regions, so `copy` is `Unsupported` and a policy says where its snapshots live instead.
//! Names are derived from the volume and the client token, and every insert carries a
//! `requestId` derived from the token, so a rerun finds what the first run made. Inserts return
//! a global operation, which `poll` follows before the snapshot's own status.
//!
//! Credentials are Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's
//! user credentials, the metadata server). `OFFSITE_GCP_COMPUTE_ENDPOINT` replaces
//! `https://compute.googleapis.com` (a loopback endpoint is used without credentials).

mod client;
mod config;
mod error;
mod store;

pub use store::GceSnapshots;
