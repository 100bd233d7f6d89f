//! Bearer tokens over plain http, to this machine only.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use azure_core::http::headers::AUTHORIZATION;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request, Url};

use crate::Credential;

/// Plain http to this machine (an emulator or a local test server).
pub fn is_loopback_http(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        }
}

/// The SDK's bearer policy refuses every non-https URL; this one sends the chain's token over
/// http, and only to a loopback address (any other request fails before a token is asked for).
#[derive(Debug)]
pub struct LoopbackBearer {
    credential: Credential,
    scope: &'static str,
}

impl LoopbackBearer {
    /// A policy that asks `credential` for tokens for `scope`.
    pub fn new(credential: Credential, scope: &'static str) -> LoopbackBearer {
        LoopbackBearer { credential, scope }
    }
}

#[async_trait::async_trait]
impl Policy for LoopbackBearer {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if !is_loopback_http(request.url()) {
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "bearer tokens go over plain http only to a loopback address",
            ));
        }
        let token = self.credential.get_token(&[self.scope], None).await?;
        request.insert_header(AUTHORIZATION, format!("Bearer {}", token.token.secret()));
        next[0].send(ctx, request, &next[1..]).await
    }
}
