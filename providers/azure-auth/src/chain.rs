//! The credential chain: which method the environment configures, and a failure that says
//! what was tried.

use std::sync::Arc;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};

/// A bearer token got elsewhere (`az account get-access-token`), used as it is.
pub const TOKEN_VAR: &str = "OFFSITE_AZURE_ACCESS_TOKEN";

/// A method of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// The bearer token in `OFFSITE_AZURE_ACCESS_TOKEN`.
    AccessToken,
    /// Kubernetes workload identity (`AZURE_FEDERATED_TOKEN_FILE`).
    WorkloadIdentity,
    /// A service principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`).
    ServicePrincipal,
    /// A managed identity (App Service, Functions, Arc, or a VM's IMDS).
    ManagedIdentity,
    /// The developer's `az` / `azd` login.
    DeveloperTools,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::AccessToken => "the bearer token in OFFSITE_AZURE_ACCESS_TOKEN",
            Method::WorkloadIdentity => "workload identity (AZURE_FEDERATED_TOKEN_FILE)",
            Method::ServicePrincipal => {
                "the service principal in AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
            }
            Method::ManagedIdentity => "a managed identity",
            Method::DeveloperTools => "the az / azd developer login",
        })
    }
}

/// The chain's method could not even be set up (a malformed tenant id, say).
#[derive(Debug, Clone)]
pub struct ChainError {
    method: Method,
    reason: String,
}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} could not be set up: {}", self.method, self.reason)
    }
}

impl std::error::Error for ChainError {}

/// The Entra ID credential the environment configures (see the crate docs for the order).
/// A token failure names every method of the chain and why it was passed over.
#[derive(Clone)]
pub struct Credential {
    inner: Arc<dyn TokenCredential>,
    method: Method,
    /// The methods before `method`, each with why it was not used.
    passed_over: Vec<&'static str>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// The chain as the process environment configures it.
    pub fn from_env() -> Result<Credential, ChainError> {
        Credential::from_vars(|k| std::env::var(k).ok())
    }

    /// The chain as `var` configures it (the process environment in [`Credential::from_env`]).
    /// Workload and managed identities read their own variables from the process
    /// environment.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Credential, ChainError> {
        let env = |k: &str| var(k).filter(|v| !v.is_empty());
        let mut passed_over = Vec::new();
        let made = |method: Method,
                    r: azure_core::Result<Arc<dyn TokenCredential>>,
                    passed_over: Vec<&'static str>| {
            r.map(|inner| Credential {
                inner,
                method,
                passed_over,
            })
            .map_err(|e| ChainError {
                method,
                reason: one_line(&e.to_string()),
            })
        };
        if let Some(t) = env(TOKEN_VAR) {
            let token: Arc<dyn TokenCredential> = Arc::new(FixedToken(Secret::new(t)));
            return made(Method::AccessToken, Ok(token), passed_over);
        }
        passed_over.push("OFFSITE_AZURE_ACCESS_TOKEN is not set");
        if env("AZURE_FEDERATED_TOKEN_FILE").is_some() {
            let c = azure_identity::WorkloadIdentityCredential::new(None)
                .map(|c| c as Arc<dyn TokenCredential>);
            return made(Method::WorkloadIdentity, c, passed_over);
        }
        passed_over.push("no workload identity (AZURE_FEDERATED_TOKEN_FILE is not set)");
        if let (Some(tenant), Some(client), Some(secret)) = (
            env("AZURE_TENANT_ID"),
            env("AZURE_CLIENT_ID"),
            env("AZURE_CLIENT_SECRET"),
        ) {
            let c = azure_identity::ClientSecretCredential::new(
                &tenant,
                client,
                Secret::new(secret),
                None,
            )
            .map(|c| c as Arc<dyn TokenCredential>);
            return made(Method::ServicePrincipal, c, passed_over);
        }
        passed_over.push(
            "no service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET are not all set)",
        );
        if env("IDENTITY_ENDPOINT").is_some()
            || env("MSI_ENDPOINT").is_some()
            || env("OFFSITE_AZURE_MANAGED_IDENTITY").is_some()
        {
            let options =
                env("AZURE_CLIENT_ID").map(|id| azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: Some(azure_identity::UserAssignedId::ClientId(id)),
                    ..Default::default()
                });
            let c = azure_identity::ManagedIdentityCredential::new(options)
                .map(|c| c as Arc<dyn TokenCredential>);
            return made(Method::ManagedIdentity, c, passed_over);
        }
        passed_over.push(
            "no managed identity (IDENTITY_ENDPOINT, MSI_ENDPOINT and OFFSITE_AZURE_MANAGED_IDENTITY are not set)",
        );
        let c = azure_identity::DeveloperToolsCredential::new(None)
            .map(|c| c as Arc<dyn TokenCredential>);
        made(Method::DeveloperTools, c, passed_over)
    }

    /// The method that gives this credential's tokens.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The methods tried, in order, for a message: those passed over and why, then the one
    /// used and what it answered.
    fn tried(&self, answer: &str) -> String {
        let mut all: Vec<String> = self.passed_over.iter().map(|s| s.to_string()).collect();
        all.push(format!("{} failed: {answer}", self.method));
        all.join("; ")
    }
}

#[async_trait::async_trait]
impl TokenCredential for Credential {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        self.inner.get_token(scopes, options).await.map_err(|e| {
            azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                format!(
                    "no Azure credential gave a token; tried in this order: {}",
                    self.tried(&one_line(&e.to_string()))
                ),
            )
        })
    }
}

/// A message on one line (the SDK's can span several).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A bearer token from [`TOKEN_VAR`]: for jobs that got one elsewhere (and for tests).
#[derive(Clone)]
struct FixedToken(Secret);

impl std::fmt::Debug for FixedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FixedToken(..)")
    }
}

#[async_trait::async_trait]
impl TokenCredential for FixedToken {
    async fn get_token(
        &self,
        _scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.0.clone(),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn a_service_principal_is_picked_when_its_three_variables_are_set() {
        let c = Credential::from_vars(vars(&[
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_CLIENT_ID", "c0ffee00-0000-4000-8000-000000000001"),
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
        ]))
        .unwrap();
        assert_eq!(c.method(), Method::ServicePrincipal);
        assert!(!format!("{c:?}").contains("s3cr3t"), "{c:?}");
    }

    #[test]
    fn two_of_the_three_service_principal_variables_are_not_a_service_principal() {
        let c = Credential::from_vars(vars(&[
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_CLIENT_ID", "c0ffee00-0000-4000-8000-000000000001"),
        ]))
        .unwrap();
        assert_eq!(c.method(), Method::DeveloperTools);
    }

    #[test]
    fn the_access_token_comes_first() {
        let c = Credential::from_vars(vars(&[
            (TOKEN_VAR, "eyJ0eXAi"),
            ("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("AZURE_CLIENT_ID", "c0ffee00-0000-4000-8000-000000000001"),
            ("AZURE_CLIENT_SECRET", "s3cr3t-value"),
        ]))
        .unwrap();
        assert_eq!(c.method(), Method::AccessToken);
    }

    #[test]
    fn a_failure_names_every_method_in_order() {
        let c = Credential::from_vars(vars(&[])).unwrap();
        let tried = c.tried("az: command not found");
        let order = [
            "OFFSITE_AZURE_ACCESS_TOKEN is not set",
            "no workload identity",
            "no service principal",
            "no managed identity",
            "the az / azd developer login failed: az: command not found",
        ];
        let mut at = 0;
        for want in order {
            let found = tried[at..]
                .find(want)
                .unwrap_or_else(|| panic!("{want:?} in {tried}"));
            at += found + want.len();
        }
    }

    #[test]
    fn an_empty_variable_is_not_set() {
        let c = Credential::from_vars(vars(&[(TOKEN_VAR, "")])).unwrap();
        assert_eq!(c.method(), Method::DeveloperTools);
    }
}
