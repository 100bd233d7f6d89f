//! The Azure Blob Storage adapter for the offsite Storage contract (block blobs).
//!
//! Archives are staged as blocks with a per-block MD5 (Azure refuses a corrupted block) and
//! committed by one block list; each block id carries the upload's id, the block's number and
//! its SHA-256, so a killed push resumes by reading the uncommitted block list and re-sends
//! only the blocks that are missing or differ from the spool. Azure computes no whole-blob hash
//! for a block list: quick verify compares size (and Content-MD5 for single-shot uploads) and
//! says so; `--deep` proves the bytes.
//!
//! Authentication, in this order: `AZURE_STORAGE_CONNECTION_STRING` (account key or SAS),
//! `AZURE_STORAGE_KEY` (shared key, signed by offsite's own policy), `AZURE_STORAGE_SAS_TOKEN`,
//! else Microsoft Entra ID through the chain the managed-disk adapter uses too
//! (`offsite-azure-auth`: a bearer token, workload identity, a service principal, a managed
//! identity, the developer's `az` / `azd` login). A chain that gives no token says which
//! methods it tried.
//!
//! `create_location` creates the container. Blob versioning (an account setting) and
//! version-level immutability (a container made through the management plane) cannot be asked
//! of Create Container: those options are `Unsupported`, with the `az` command that turns them
//! on. Retention is extended with Set Blob Immutability Policy. Versions are not listed (Azurite,
//! which the adapter is tested on, has no blob versions), nor open uploads (uncommitted block
//! lists have no listing by prefix).

mod auth;
mod client;
mod config;
mod error;
mod store;

pub use config::{AzureAuth, AzureConfig};
pub use store::AzureStore;
