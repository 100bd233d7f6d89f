//! The only file that talks HTTP: an ARM pipeline with bearer auth, requests, long-running
//! operations, and the resource shapes offsite reads
//! (<https://learn.microsoft.com/rest/api/compute/snapshots>).

use std::collections::BTreeMap;
use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::headers::HeaderName;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::Policy;
use azure_core::http::{
    ClientOptions, Context, Method, Pipeline, PipelineSendOptions, RawResponse, Request,
    RetryOptions, Url,
};
use offsite_azure_auth::{is_loopback_http, Credential, LoopbackBearer};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ArmError;

/// The token scope for Resource Manager.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// The Compute API version every request names.
pub const API_VERSION: &str = "2024-03-02";

const AZURE_ASYNC_OPERATION: HeaderName = HeaderName::from_static("azure-asyncoperation");
const LOCATION: HeaderName = HeaderName::from_static("location");
const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");

/// The longest wait a `Retry-After` gets: a longer one is cut to this.
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(120);

/// A Microsoft.Compute/snapshots resource (the fields offsite reads).
#[derive(Debug, Clone, Deserialize)]
pub struct ArmSnapshot {
    pub id: String,
    pub location: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: SnapshotProperties,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotProperties {
    #[serde(default)]
    pub creation_data: Option<CreationData>,
    #[serde(rename = "diskSizeGB")]
    pub disk_size_gb: Option<u64>,
    pub time_created: Option<String>,
    pub provisioning_state: Option<String>,
    /// CopyStart copies: usable at 100.
    pub completion_percent: Option<f64>,
    pub copy_completion_error: Option<CopyCompletionError>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationData {
    pub create_option: String,
    pub source_resource_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyCompletionError {
    pub error_code: String,
    pub error_message: String,
}

/// A Microsoft.Compute/disks resource (the fields offsite reads).
#[derive(Debug, Clone, Deserialize)]
pub struct ArmDisk {
    pub id: String,
    pub location: String,
    #[serde(default)]
    pub zones: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: DiskProperties,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskProperties {
    #[serde(rename = "diskSizeGB")]
    pub disk_size_gb: Option<u64>,
    pub disk_state: Option<String>,
    pub provisioning_state: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    next_link: Option<String>,
}

/// The body of a GET on an `Azure-AsyncOperation` URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AsyncOperation {
    status: String,
    percent_complete: Option<f64>,
    error: Option<crate::error::ArmErrorDetail>,
}

/// Where a long-running operation is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lro {
    /// `Azure-AsyncOperation`: a status document.
    AsyncOperation(Url),
    /// `Location`: 202 while running.
    Location(Url),
}

impl Lro {
    /// The form kept in `Snapshot::operation`.
    pub fn encode(&self) -> String {
        match self {
            Lro::AsyncOperation(u) => format!("azure-asyncoperation {u}"),
            Lro::Location(u) => format!("location {u}"),
        }
    }
}

/// An operation's state after one poll.
#[derive(Debug, Clone, PartialEq)]
pub enum LroStatus {
    /// Still running, this far.
    Running(Option<f64>),
    /// Done.
    Succeeded,
    /// Failed or canceled, with ARM's code and words.
    Failed(String),
}

/// An ARM client: one pipeline, one endpoint.
#[derive(Debug, Clone)]
pub struct Arm {
    pipeline: Pipeline,
    endpoint: Url,
}

impl Arm {
    /// A client for `endpoint` (https, or http to a loopback address). The SDK's retries are
    /// off: the adapter retries idempotent requests through `offsite_storage::RetryPolicy`.
    pub fn new(endpoint: &str, credential: Credential) -> Result<Arm, String> {
        let endpoint = Url::parse(endpoint.trim_end_matches('/'))
            .map_err(|e| format!("the ARM endpoint {endpoint:?} is not a URL: {e}"))?;
        let auth: Arc<dyn Policy> = if endpoint.scheme() == "https" {
            let credential: Arc<dyn TokenCredential> = Arc::new(credential);
            Arc::new(BearerTokenAuthorizationPolicy::new(credential, [ARM_SCOPE]))
        } else if is_loopback_http(&endpoint) {
            Arc::new(LoopbackBearer::new(credential, ARM_SCOPE))
        } else {
            return Err(format!(
                "the ARM endpoint {endpoint} must be https (or plain http to a loopback address)"
            ));
        };
        let options = ClientOptions {
            retry: RetryOptions::none(),
            ..Default::default()
        };
        let pipeline = Pipeline::new(
            option_env!("CARGO_PKG_NAME"),
            option_env!("CARGO_PKG_VERSION"),
            options,
            Vec::new(),
            vec![auth],
            None,
        );
        Ok(Arm { pipeline, endpoint })
    }

    /// `{endpoint}{path}?api-version=...`.
    pub fn url(&self, path: &str) -> Url {
        let mut url = self.endpoint.clone();
        url.set_path(path);
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        url
    }

    /// A URL ARM handed back (nextLink, operation URLs): followed only on the endpoint's own
    /// scheme, host and port, so the token never goes anywhere else.
    pub fn same_origin(&self, s: &str) -> Result<Url, ArmError> {
        let url = Url::parse(s)
            .map_err(|e| ArmError::protocol(format!("a URL from ARM that does not parse: {e}")))?;
        if url.origin() != self.endpoint.origin() {
            return Err(ArmError::protocol(format!(
                "ARM pointed at another host ({}); not followed",
                url.host_str().unwrap_or("-")
            )));
        }
        Ok(url)
    }

    /// Sends one request; any status but 2xx is an [`ArmError`] with ARM's code.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<RawResponse, ArmError> {
        let mut req = Request::new(url, method);
        req.insert_header("accept", "application/json");
        if let Some(body) = body {
            req.insert_header("content-type", "application/json");
            req.set_json(body).map_err(ArmError::transport)?;
        }
        let options = PipelineSendOptions {
            skip_checks: true,
            ..Default::default()
        };
        let resp = self
            .pipeline
            .send(&Context::new(), &mut req, Some(options))
            .await
            .map_err(ArmError::transport)?;
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(ArmError::from_response(&resp))
        }
    }

    /// GET, parsed.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, ArmError> {
        parse(&self.send(Method::Get, self.url(path), None).await?)
    }

    /// Every item of a paged list.
    pub async fn list<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Vec<T>, ArmError> {
        let mut url = self.url(path);
        let mut out = Vec::new();
        loop {
            let page: Page<T> = parse(&self.send(Method::Get, url, None).await?)?;
            out.extend(page.value);
            match page.next_link.filter(|n| !n.is_empty()) {
                Some(next) => url = self.same_origin(&next)?,
                None => return Ok(out),
            }
        }
    }

    /// PUT a resource; its body as ARM answered, and the operation to follow, if any.
    pub async fn put<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<(T, Option<Lro>), ArmError> {
        let resp = self.send(Method::Put, self.url(path), Some(body)).await?;
        let lro = self.lro(&resp)?;
        Ok((parse(&resp)?, lro))
    }

    /// DELETE a resource: `Ok(false)` when ARM says there was nothing (204); else the
    /// operation to follow, if any, and how long ARM asks to wait before the first poll.
    pub async fn delete(
        &self,
        path: &str,
    ) -> Result<(bool, Option<Lro>, Option<std::time::Duration>), ArmError> {
        let resp = self.send(Method::Delete, self.url(path), None).await?;
        if u16::from(resp.status()) == 204 {
            return Ok((false, None, None));
        }
        Ok((true, self.lro(&resp)?, retry_after(&resp)))
    }

    fn lro(&self, resp: &RawResponse) -> Result<Option<Lro>, ArmError> {
        if let Some(u) = resp.headers().get_optional_str(&AZURE_ASYNC_OPERATION) {
            return Ok(Some(Lro::AsyncOperation(self.same_origin(u)?)));
        }
        if u16::from(resp.status()) == 202 {
            if let Some(u) = resp.headers().get_optional_str(&LOCATION) {
                return Ok(Some(Lro::Location(self.same_origin(u)?)));
            }
        }
        Ok(None)
    }

    /// Reads [`Lro::encode`]'s form back.
    pub fn decode(&self, op: &str) -> Result<Lro, ArmError> {
        match op.split_once(' ') {
            Some(("azure-asyncoperation", u)) => Ok(Lro::AsyncOperation(self.same_origin(u)?)),
            Some(("location", u)) => Ok(Lro::Location(self.same_origin(u)?)),
            _ => Err(ArmError::protocol(format!("not an ARM operation: {op}"))),
        }
    }

    /// Polls an operation once: its state, and how long ARM asks to wait before the next poll
    /// (`Retry-After`).
    pub async fn poll(
        &self,
        lro: &Lro,
    ) -> Result<(LroStatus, Option<std::time::Duration>), ArmError> {
        match lro {
            Lro::AsyncOperation(url) => {
                let resp = self.send(Method::Get, url.clone(), None).await?;
                let op: AsyncOperation = parse(&resp)?;
                let status = match op.status.to_ascii_lowercase().as_str() {
                    "succeeded" => LroStatus::Succeeded,
                    "failed" | "canceled" | "cancelled" => LroStatus::Failed(match op.error {
                        Some(e) => format!(
                            "{}: {}",
                            e.code.unwrap_or_else(|| op.status.clone()),
                            e.message.unwrap_or_default()
                        ),
                        None => op.status,
                    }),
                    _ => LroStatus::Running(op.percent_complete),
                };
                Ok((status, retry_after(&resp)))
            }
            Lro::Location(url) => {
                let resp = self.send(Method::Get, url.clone(), None).await?;
                let status = if u16::from(resp.status()) == 202 {
                    LroStatus::Running(None)
                } else {
                    LroStatus::Succeeded
                };
                Ok((status, retry_after(&resp)))
            }
        }
    }
}

/// `Retry-After` in its seconds form, at most [`MAX_RETRY_AFTER`]; ARM sends no date form
/// (<https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations>).
fn retry_after(resp: &RawResponse) -> Option<std::time::Duration> {
    let secs: u64 = resp
        .headers()
        .get_optional_str(&RETRY_AFTER)?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn parse<T: serde::de::DeserializeOwned>(resp: &RawResponse) -> Result<T, ArmError> {
    serde_json::from_slice(resp.body())
        .map_err(|e| ArmError::protocol(format!("an ARM answer offsite cannot read: {e}")))
}
