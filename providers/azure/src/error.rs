//! Azure errors to the storage error kinds, in one place, by HTTP status and the service's
//! `x-ms-error-code` (never by matching message text).

use offsite_storage::{Error, ErrorKind, Operation};

/// What to do when Entra ID gives no credential.
pub(crate) const ENTRA_HINT: &str = "run `az login`, use a workload or managed identity, set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, or set AZURE_STORAGE_CONNECTION_STRING";

/// Where a request went, for messages.
pub(crate) struct Ctx<'a> {
    pub account: &'a str,
    pub container: &'a str,
    pub key: &'a str,
    pub auth: &'a str,
}

pub(crate) fn map(err: azure_core::Error, op: Operation, ctx: &Ctx<'_>) -> Error {
    use azure_core::error::ErrorKind as K;
    let (status, code) = match err.kind() {
        K::HttpResponse {
            status, error_code, ..
        } => (Some(u16::from(*status)), error_code.clone()),
        _ => (None, None),
    };
    let (account, container) = (ctx.account, ctx.container);
    let (kind, hint): (ErrorKind, Option<String>) = match (status, code.as_deref()) {
        (_, Some("ContainerNotFound")) => (
            ErrorKind::NotFound,
            Some(format!("container {container:?} does not exist in account {account:?}; create it or fix the URL")),
        ),
        (_, Some("BlobNotFound")) | (Some(404), _) => (ErrorKind::NotFound, None),
        (_, Some("AuthenticationFailed" | "InvalidAuthenticationInfo" | "NoAuthenticationInformation")) | (Some(401), _) => (
            ErrorKind::Unauthenticated,
            Some(format!(
                "authentication with {} failed; check AZURE_STORAGE_CONNECTION_STRING / AZURE_STORAGE_KEY / AZURE_STORAGE_SAS_TOKEN, or the Entra ID login",
                ctx.auth
            )),
        ),
        (_, Some("BlobArchived")) => (
            ErrorKind::Archived,
            Some("the blob is in the Archive tier and must be rehydrated first; run the restore again with --thaw to start that (hours), then once more".into()),
        ),
        (_, Some("BlobImmutableDueToPolicy" | "BlobImmutableDueToLegalHold" | "ImmutabilityPolicyDeleteOnLockedPolicy")) => (
            ErrorKind::Locked,
            Some("the blob is under an immutability policy or legal hold and cannot be changed before it expires".into()),
        ),
        (_, Some("BlobAlreadyExists")) => (ErrorKind::AlreadyExists, None),
        (_, Some("ConditionNotMet")) | (Some(412), _) => (ErrorKind::PreconditionFailed, None),
        (_, Some("Md5Mismatch" | "Crc64Mismatch" | "InvalidMd5")) => (
            ErrorKind::Corrupt,
            Some("the service received different bytes than were sent; the block is sent again from the spool".into()),
        ),
        (_, Some("ServerBusy" | "OperationTimedOut")) | (Some(429 | 503), _) => (ErrorKind::RateLimited, None),
        (_, Some("AuthorizationFailure" | "AuthorizationPermissionMismatch" | "InsufficientAccountPermissions")) | (Some(403), _) => (
            ErrorKind::PermissionDenied,
            Some(format!(
                "the {} credentials were refused or may not do this on container {container:?}; check the key, the SAS's permissions and expiry, or the role assignment",
                ctx.auth
            )),
        ),
        (_, Some("InvalidBlobTier" | "InvalidHeaderValue" | "InvalidQueryParameterValue")) | (Some(400), _) => (ErrorKind::InvalidConfig, None),
        (Some(s), _) if s >= 500 => (ErrorKind::Transient, None),
        // The Entra ID chain gave no token: its message names every method it tried.
        (None, _) if matches!(err.kind(), K::Credential) => (
            ErrorKind::Unauthenticated,
            Some(ENTRA_HINT.to_string()),
        ),
        (None, _) if matches!(err.kind(), K::Io | K::Connection) => (
            ErrorKind::Transient,
            Some("cannot reach the Azure endpoint; check the network and the endpoint URL".into()),
        ),
        _ => (ErrorKind::Other, None),
    };
    // The SDK's error chain can end in the request URL, which carries the SAS token when one
    // is used: say what happened without it, and attach no source.
    let what = match (&code, status) {
        (Some(c), _) => c.clone(),
        (None, Some(s)) => format!("HTTP {s}"),
        (None, None) => match err.kind() {
            K::Io => "an I/O error on the connection".to_string(),
            K::Connection => "cannot connect".to_string(),
            // Written by offsite-azure-auth: the methods tried, no secret, no URL.
            K::Credential => err.to_string(),
            other => format!("{other:?}").chars().take(80).collect(),
        },
    };
    let mut e = Error::new(
        kind,
        "azure",
        op,
        format!("az://{account}/{container}: {what}"),
    )
    .with_key(ctx.key);
    if kind == ErrorKind::Corrupt {
        e = e.retryable(true);
    }
    if let Some(h) = hint {
        e = e.with_hint(h);
    }
    if let Some(c) = code {
        e = e.with_code(c);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_carry_no_url_and_no_source() {
        // What the SDK builds from reqwest: the message ends in the request URL, SAS and all.
        let sdk = azure_core::Error::with_message(
            azure_core::error::ErrorKind::Io,
            "error sending request for url (https://acct.blob.core.windows.net/c/x.age?comp=block&sig=TOPSECRET)",
        );
        let ctx = Ctx {
            account: "acct",
            container: "c",
            key: "x.age",
            auth: "SAS token",
        };
        let e = map(sdk, Operation::Put, &ctx);
        assert_eq!(e.kind(), ErrorKind::Transient);
        assert!(
            std::error::Error::source(&e).is_none(),
            "no SDK error chain attached"
        );
        assert!(!e.to_string().contains("TOPSECRET"), "{e}");
        assert!(!format!("{e:?}").contains("TOPSECRET"), "{e:?}");
    }

    #[test]
    fn the_service_error_code_is_kept_for_decisions() {
        // create_location tells "already there" from other conflicts by this code.
        let sdk = azure_core::error::ErrorKind::HttpResponse {
            status: azure_core::http::StatusCode::Conflict,
            error_code: Some("ContainerAlreadyExists".into()),
            raw_response: None,
        }
        .into_error();
        let ctx = Ctx {
            account: "acct",
            container: "c",
            key: "",
            auth: "shared key",
        };
        let e = map(sdk, Operation::Open, &ctx);
        assert_eq!(e.code(), Some("ContainerAlreadyExists"));
        assert_eq!(e.message(), "az://acct/c: ContainerAlreadyExists");
        let io = azure_core::Error::with_message(azure_core::error::ErrorKind::Io, "reset");
        assert_eq!(map(io, Operation::Open, &ctx).code(), None);
    }
}
