//! What configures the GCP persistent-disk adapter: the storage location of new snapshots,
//! the project listings look in (else `GOOGLE_CLOUD_PROJECT`), and the Compute Engine endpoint
//! (`OFFSITE_GCP_COMPUTE_ENDPOINT`, else Google's). Credentials are Application Default
//! Credentials, read when the clients are built.

/// The provider name in errors.
pub(crate) const PROVIDER: &str = "gce-disk";

/// The variable that replaces the Compute Engine endpoint (tests, private endpoints).
pub(crate) const ENDPOINT_VAR: &str = "OFFSITE_GCP_COMPUTE_ENDPOINT";

/// The project variable listings fall back on.
const PROJECT_VAR: &str = "GOOGLE_CLOUD_PROJECT";

/// The adapter's settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct GceConfig {
    /// The storage location of new snapshots (`us`, `europe-west1`); `None`: GCP's default.
    pub(crate) location: Option<String>,
    /// The project listings look in.
    pub(crate) project: Option<String>,
    /// Replaces `https://compute.googleapis.com`.
    pub(crate) endpoint: Option<String>,
}

impl GceConfig {
    /// The settings given, completed from `var` (the process environment in production).
    pub(crate) fn new(
        location: Option<&str>,
        project: Option<&str>,
        var: impl Fn(&str) -> Option<String>,
    ) -> GceConfig {
        let var = |k: &str| var(k).filter(|v| !v.is_empty());
        GceConfig {
            location: location.map(str::to_string),
            project: project.map(str::to_string).or_else(|| var(PROJECT_VAR)),
            endpoint: var(ENDPOINT_VAR),
        }
    }

    /// Whether the endpoint is on this machine (an emulator or a test server): used without
    /// credentials.
    pub(crate) fn loopback(&self) -> bool {
        self.endpoint.as_deref().is_some_and(|e| {
            let rest = e
                .trim_start_matches("http://")
                .trim_start_matches("https://");
            rest.starts_with("127.") || rest.starts_with("localhost") || rest.starts_with("[::1]")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_fills_what_is_not_given() {
        let env = |k: &str| match k {
            "GOOGLE_CLOUD_PROJECT" => Some("from-env".to_string()),
            "OFFSITE_GCP_COMPUTE_ENDPOINT" => Some("http://127.0.0.1:9/".to_string()),
            _ => None,
        };
        let c = GceConfig::new(Some("us"), None, env);
        assert_eq!(c.project.as_deref(), Some("from-env"));
        assert!(c.loopback());
        let c = GceConfig::new(None, Some("given"), env);
        assert_eq!(c.project.as_deref(), Some("given"));
        let c = GceConfig::new(None, None, |_| None);
        assert!(!c.loopback());
        assert_eq!(c.endpoint, None);
    }
}
