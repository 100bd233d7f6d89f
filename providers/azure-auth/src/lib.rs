//! What offsite's Azure adapters share, so that blobs and managed-disk snapshots authenticate
//! alike and neither leans on the other: one Microsoft Entra ID credential chain
//! ([`Credential`]) and the bearer policy that sends its tokens over plain http to a loopback
//! address only ([`LoopbackBearer`], for emulators and local test servers).
//!
//! The chain, in order, takes the first method the environment configures:
//! `OFFSITE_AZURE_ACCESS_TOKEN` (a bearer token got elsewhere, for the resource being used),
//! Kubernetes workload identity (`AZURE_FEDERATED_TOKEN_FILE`), a service principal
//! (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), a managed identity
//! (`IDENTITY_ENDPOINT`, `MSI_ENDPOINT`, or `OFFSITE_AZURE_MANAGED_IDENTITY=1` on a VM), else
//! the developer's `az` / `azd` login. When it gives no token, the error names every method in
//! that order and why it was not used or what it answered.

mod chain;
mod loopback;

pub use chain::{ChainError, Credential, Method, TOKEN_VAR};
pub use loopback::{is_loopback_http, LoopbackBearer};
