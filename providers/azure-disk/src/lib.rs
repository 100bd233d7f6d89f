//! The Azure managed-disk adapter for the offsite [`Snapshots`](offsite_storage::Snapshots)
//! contract: Azure Resource Manager REST (`Microsoft.Compute/snapshots` and `disks`, api-version
//! 2024-03-02) through an `azure_core` pipeline, since no maintained crate covers it.
//!
//! Snapshots are incremental (only they can be copied across regions), named from the disk and
//! the client token: a rerun finds the snapshot the first run made by its name. Copies to other
//! regions are CopyStart snapshots, usable once their `completionPercent` reaches 100. PUTs and
//! DELETEs are long-running: the `Azure-AsyncOperation` (else `Location`) URL is followed, and
//! only ever on the ARM endpoint's own host, so the token never goes elsewhere.
//!
//! Credentials, in order: `OFFSITE_AZURE_ACCESS_TOKEN` (a bearer token got elsewhere, such as
//! `az account get-access-token`), Kubernetes workload identity (`AZURE_FEDERATED_TOKEN_FILE`), a
//! service principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), a managed
//! identity (`IDENTITY_ENDPOINT`, or `OFFSITE_AZURE_MANAGED_IDENTITY=1` on a VM), else the
//! developer's `az` / `azd` login. `OFFSITE_AZURE_ARM_ENDPOINT` replaces
//! `https://management.azure.com` (plain http only to a loopback address).

mod arm;
mod client;
mod config;
mod error;
mod store;

pub use store::AzureDiskSnapshots;
