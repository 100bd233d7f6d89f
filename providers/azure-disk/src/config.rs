//! What configures the Azure managed-disk adapter: the Resource Manager endpoint
//! (`OFFSITE_AZURE_ARM_ENDPOINT`, else Azure's public cloud), the location new snapshots and
//! copies go to, and the resource group they are made and listed in. Credentials are read when
//! the client is built.

/// The provider name in errors.
pub(crate) const PROVIDER: &str = "azure-disk";

/// Azure's public-cloud Resource Manager.
pub(crate) const ARM_ENDPOINT: &str = "https://management.azure.com";
/// Replaces [`ARM_ENDPOINT`].
pub(crate) const ENDPOINT_VAR: &str = "OFFSITE_AZURE_ARM_ENDPOINT";

/// The adapter's settings.
#[derive(Debug, Clone)]
pub(crate) struct AzureDiskConfig {
    /// The Resource Manager endpoint.
    pub(crate) endpoint: String,
    /// Where new snapshots and copies go; `None`: the disk's location.
    pub(crate) location: Option<String>,
    /// `/subscriptions/S/resourceGroups/RG`: where snapshots are made and listed; `None`: the
    /// disk's.
    pub(crate) resource_group: Option<String>,
}

impl AzureDiskConfig {
    /// The settings given, completed from `var` (the process environment in production).
    pub(crate) fn new(
        location: Option<&str>,
        resource_group: Option<&str>,
        var: impl Fn(&str) -> Option<String>,
    ) -> AzureDiskConfig {
        AzureDiskConfig {
            endpoint: var(ENDPOINT_VAR)
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| ARM_ENDPOINT.to_string()),
            location: location.map(str::to_string),
            resource_group: resource_group.map(str::to_string),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_variable_replaces_the_public_cloud() {
        let c = AzureDiskConfig::new(None, None, |_| None);
        assert_eq!(c.endpoint, "https://management.azure.com");
        let c = AzureDiskConfig::new(Some("westus"), None, |k| {
            (k == "OFFSITE_AZURE_ARM_ENDPOINT").then(|| "http://127.0.0.1:9".to_string())
        });
        assert_eq!(c.endpoint, "http://127.0.0.1:9");
        assert_eq!(c.location.as_deref(), Some("westus"));
    }
}
