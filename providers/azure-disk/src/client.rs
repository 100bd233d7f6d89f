//! The only file that builds the client: the ARM pipeline for the configured endpoint, with
//! the Microsoft Entra ID credential chain both Azure adapters share.

use offsite_azure_auth::Credential;
use offsite_storage::{Error, ErrorKind, Operation, Result};

use crate::arm::Arm;
use crate::config::{AzureDiskConfig, PROVIDER};

/// The ARM client for `cfg`, with the credential chain of the crate docs.
pub(crate) fn build(cfg: &AzureDiskConfig) -> Result<Arm> {
    // The chain the blob adapter uses too (offsite-azure-auth).
    let credential = Credential::from_env().map_err(|e| {
        Error::new(
            ErrorKind::Unauthenticated,
            PROVIDER,
            Operation::Open,
            format!("no Microsoft Entra ID credential: {e}"),
        )
        .with_hint("run `az login`, use a workload or managed identity, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET")
    })?;
    Arm::new(&cfg.endpoint, credential)
        .map_err(|e| Error::new(ErrorKind::InvalidConfig, PROVIDER, Operation::Open, e))
}
