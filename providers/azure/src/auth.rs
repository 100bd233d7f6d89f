//! Shared key signing, written here because Microsoft's SDK signs only with Entra ID tokens:
//! <https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key>.

use std::sync::Arc;

use azure_core::credentials::Secret;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};

/// Signs every try of every request with the account key (`Authorization: SharedKey
/// ACCOUNT:SIGNATURE`), after setting `x-ms-date`.
pub(crate) struct SharedKeyPolicy {
    account: String,
    key: Secret,
}

impl std::fmt::Debug for SharedKeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedKeyPolicy")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl SharedKeyPolicy {
    /// A policy for `account` with its base64 key.
    pub(crate) fn new(account: impl Into<String>, key: impl Into<String>) -> SharedKeyPolicy {
        SharedKeyPolicy {
            account: account.into(),
            key: Secret::new(key.into()),
        }
    }
}

/// The string to sign for a request (the "Blob, Queue, and File services" form, version
/// 2015-02-21 and later): the verb, eleven standard headers (Content-Length empty when zero),
/// the canonicalized `x-ms-` headers and the canonicalized resource.
pub(crate) fn string_to_sign(
    method: &str,
    url: &url::Url,
    headers: &[(String, String)],
    account: &str,
) -> String {
    let get = |name: &str| -> String {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let content_length = match get("content-length").as_str() {
        "0" => String::new(),
        v => v.to_string(),
    };
    let mut ms: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    ms.sort();
    let canonical_headers: String = ms.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();

    let mut resource = format!("/{account}{}", url.path());
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in url.query_pairs() {
        let k = k.to_ascii_lowercase();
        match params.iter_mut().find(|(n, _)| *n == k) {
            Some((_, vals)) => vals.push(v.into_owned()),
            None => params.push((k, vec![v.into_owned()])),
        }
    }
    params.sort();
    for (k, mut vals) in params {
        vals.sort();
        resource.push_str(&format!("\n{k}:{}", vals.join(",")));
    }
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}{}",
        method.to_ascii_uppercase(),
        get("content-encoding"),
        get("content-language"),
        content_length,
        get("content-md5"),
        get("content-type"),
        get("date"),
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
        canonical_headers,
        resource
    )
}

#[async_trait::async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let now = azure_core::time::OffsetDateTime::now_utc();
        request.insert_header("x-ms-date", azure_core::time::to_rfc7231(&now));
        let mut headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.as_str().to_string()))
            .collect();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            let len = match request.body() {
                azure_core::http::Body::Bytes(b) => b.len() as u64,
                azure_core::http::Body::SeekableStream(s) => s.len().unwrap_or(0),
            };
            if len > 0 {
                headers.push(("content-length".into(), len.to_string()));
            }
        }
        let method = request.method().as_str().to_string();
        let to_sign = string_to_sign(&method, request.url(), &headers, &self.account);
        let signature = azure_core::hmac::hmac_sha256(&to_sign, &self.key)?;
        request.insert_header(
            "authorization",
            format!("SharedKey {}:{signature}", self.account),
        );
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonicalized resource example of the Shared Key reference: for
    /// `GET https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata`
    /// the resource part is `/myaccount/mycontainer\ncomp:metadata\nrestype:container`.
    #[test]
    fn canonical_string_follows_the_reference() {
        let url = url::Url::parse(
            "https://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata",
        )
        .unwrap();
        let headers = vec![
            (
                "x-ms-date".to_string(),
                "Sun, 11 Oct 2009 21:49:13 GMT".to_string(),
            ),
            ("x-ms-version".to_string(), "2009-09-19".to_string()),
        ];
        let s = string_to_sign("GET", &url, &headers, "myaccount");
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Sun, 11 Oct 2009 21:49:13 GMT\nx-ms-version:2009-09-19\n/myaccount/mycontainer\ncomp:metadata\nrestype:container"
        );
    }

    #[test]
    fn content_length_zero_is_empty_and_headers_are_sorted_and_trimmed() {
        let url = url::Url::parse(
            "http://127.0.0.1:10000/devstoreaccount1/c/b?comp=block&blockid=QQ%3D%3D",
        )
        .unwrap();
        let headers = vec![
            ("Content-Length".to_string(), "0".to_string()),
            ("x-ms-version".to_string(), "2025-01-05".to_string()),
            ("X-MS-Meta-A".to_string(), "  two   words ".to_string()),
            ("Content-MD5".to_string(), "abc==".to_string()),
        ];
        let s = string_to_sign("put", &url, &headers, "devstoreaccount1");
        let lines: Vec<&str> = s.split('\n').collect();
        assert_eq!(lines[0], "PUT");
        assert_eq!(lines[3], "", "content-length 0 is empty");
        assert_eq!(lines[4], "abc==");
        assert_eq!(lines[12], "x-ms-meta-a:two words");
        assert_eq!(lines[13], "x-ms-version:2025-01-05");
        assert_eq!(lines[14], "/devstoreaccount1/devstoreaccount1/c/b");
        assert_eq!(lines[15], "blockid:QQ==");
        assert_eq!(lines[16], "comp:block");
    }
}
