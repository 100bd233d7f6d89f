//! ARM failures to the storage error kinds, by HTTP status and ARM's `error.code` (never by
//! message text).

use azure_core::http::RawResponse;
use offsite_storage::{Error, ErrorKind, Operation};
use serde::Deserialize;

/// `{"error": {"code", "message", ...}}`.
#[derive(Debug, Deserialize)]
struct ArmErrorBody {
    error: Option<ArmErrorDetail>,
}

/// ARM's error detail.
#[derive(Debug, Clone, Deserialize)]
pub struct ArmErrorDetail {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// An ARM failure: HTTP status and ARM's code, or a transport error.
#[derive(Debug, Clone)]
pub struct ArmError {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
    /// The request may not have reached ARM (connection, I/O).
    pub transport: bool,
}

impl ArmError {
    pub fn from_response(resp: &RawResponse) -> ArmError {
        let status = u16::from(resp.status());
        let detail = serde_json::from_slice::<ArmErrorBody>(resp.body())
            .ok()
            .and_then(|b| b.error);
        ArmError {
            status: Some(status),
            code: detail.as_ref().and_then(|d| d.code.clone()),
            message: detail
                .and_then(|d| d.message)
                .unwrap_or_else(|| format!("HTTP {status}")),
            transport: false,
        }
    }

    pub fn transport(e: azure_core::Error) -> ArmError {
        use azure_core::error::ErrorKind as K;
        let credential = matches!(e.kind(), K::Credential);
        ArmError {
            status: None,
            code: credential.then(|| "CredentialUnavailable".to_string()),
            message: e.to_string(),
            transport: matches!(e.kind(), K::Io | K::Connection),
        }
    }

    pub fn protocol(message: String) -> ArmError {
        ArmError {
            status: None,
            code: None,
            message,
            transport: false,
        }
    }

    /// The storage error, on `key` (a disk or snapshot id).
    pub fn into_error(self, op: Operation, key: &str) -> Error {
        let (kind, hint): (ErrorKind, Option<&str>) = match (self.status, self.code.as_deref()) {
            (_, Some("ResourceNotFound" | "NotFound" | "ResourceGroupNotFound" | "ParentResourceNotFound"))
            | (Some(404), _) => (ErrorKind::NotFound, Some("check the resource id (`az disk list`, `az snapshot list`)")),
            (_, Some("CredentialUnavailable")) => (
                ErrorKind::Unauthenticated,
                Some("no Azure credential: run `az login`, use a workload or managed identity (OFFSITE_AZURE_MANAGED_IDENTITY=1 on a VM), or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"),
            ),
            (_, Some("InvalidAuthenticationToken" | "ExpiredAuthenticationToken" | "InvalidAuthenticationTokenTenant" | "AuthenticationFailed"))
            | (Some(401), _) => (
                ErrorKind::Unauthenticated,
                Some("the Azure token was refused or has expired: sign in again (az login) or refresh OFFSITE_AZURE_ACCESS_TOKEN"),
            ),
            (_, Some("AuthorizationFailed" | "LinkedAuthorizationFailed" | "RequestDisallowedByPolicy"))
            | (Some(403), _) => (
                ErrorKind::PermissionDenied,
                Some("the identity needs Microsoft.Compute/snapshots/read, write and delete, disks/read and write, disks/beginGetAccess/action and locations/DiskOperations/read (the Disk Snapshot Contributor role)"),
            ),
            (_, Some("LocationNotAvailableForResourceType" | "NoRegisteredProviderFound" | "MissingSubscriptionRegistration" | "MissingRegistrationForLocation" | "InvalidLocation" | "LocationRequired")) => (
                ErrorKind::InvalidConfig,
                Some("an unknown or unavailable region: `az account list-locations -o table` lists them"),
            ),
            // Not allowed in the resource's present state (a disk being attached, a snapshot
            // being copied): a state error to report, not a limit to back off from.
            (_, Some("OperationNotAllowed")) => (
                ErrorKind::PreconditionFailed,
                Some("Azure does not allow this in the resource's present state (attached, busy or being copied); run again once it has settled"),
            ),
            (_, Some("ResourceQuotaExceeded" | "QuotaExceeded")) => (
                ErrorKind::RateLimited,
                Some("an Azure quota or limit: delete old snapshots (offsite snapshot prune) or ask for a higher quota"),
            ),
            (_, Some("SubscriptionRequestsThrottled" | "TooManyRequests")) | (Some(429), _) => (ErrorKind::RateLimited, None),
            (_, Some("InvalidParameter" | "InvalidResourceName" | "InvalidRequestContent" | "LinkedInvalidPropertyId" | "BadRequest"))
            | (Some(400), _) => (ErrorKind::InvalidConfig, None),
            (Some(409), _) => (ErrorKind::PreconditionFailed, None),
            (Some(s), _) if s >= 500 => (ErrorKind::Transient, None),
            (None, _) if self.transport => (ErrorKind::Transient, Some("cannot reach Azure Resource Manager; check the network")),
            _ => (ErrorKind::Other, None),
        };
        let what = match &self.code {
            Some(c) => format!("{c}: {}", self.message),
            None => self.message.clone(),
        };
        let mut e = Error::new(kind, "azure-disk", op, what).with_key(key);
        if kind == ErrorKind::RateLimited
            && self.code.as_deref() != Some("SubscriptionRequestsThrottled")
            && self.status != Some(429)
        {
            e = e.retryable(false);
        }
        if let Some(h) = hint {
            e = e.with_hint(h);
        }
        if let Some(c) = self.code {
            e = e.with_code(c);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(status: u16, code: &str) -> ArmError {
        ArmError {
            status: Some(status),
            code: Some(code.into()),
            message: "m".into(),
            transport: false,
        }
    }

    #[test]
    fn a_state_refusal_is_not_a_quota() {
        let e = arm(409, "OperationNotAllowed").into_error(Operation::Delete, "snap");
        assert_eq!(e.kind(), ErrorKind::PreconditionFailed);
        assert!(!e.is_retryable());
        let e = arm(409, "QuotaExceeded").into_error(Operation::Create, "snap");
        assert_eq!(e.kind(), ErrorKind::RateLimited);
    }
}
