//! The JSON API calls `gcloud-storage` does not make: resumable upload sessions with
//! whole-object hashes on the final chunk, object metadata with retention, retention changes.
//! What an object resource means is read in `metadata`.

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use offsite_storage::adapter;
use offsite_storage::{
    Checksum, Error, ErrorKind, LockMode, ObjectDigest, ObjectMeta, Operation, PutOptions, Receipt,
    Result, Retention, Sequential, SessionState,
};
use serde_json::{json, Value};

use crate::client::Inner;
use crate::config::GRANULARITY;
use crate::error::{from_response, transport, Ctx};
use crate::metadata::{enc, meta_from_json};

/// CRC32C of a whole object, as GCS reports it (base64, big-endian). GCS checks it at
/// finalize and refuses a mismatched object. No MD5: it would cost about 1.5 CPU-seconds per
/// GiB for a second check of the same transfer, and quick verify compares the CRC32C.
#[derive(Clone)]
pub struct GcsDigest {
    crc: u32,
}

impl GcsDigest {
    pub fn new() -> GcsDigest {
        GcsDigest { crc: 0 }
    }
}

impl ObjectDigest for GcsDigest {
    fn update(&mut self, data: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, data);
    }

    fn fork(&self) -> Box<dyn ObjectDigest> {
        Box::new(self.clone())
    }

    fn finish(self: Box<Self>) -> Vec<Checksum> {
        vec![Checksum::Crc32c(B64.encode(self.crc.to_be_bytes()))]
    }
}

/// The receipt for a finalized object, after checking its digests against what was sent.
fn receipt_from_json(inner: &Inner, key: &str, o: &Value, sent: &[Checksum]) -> Result<Receipt> {
    let crc = o["crc32c"]
        .as_str()
        .map(|c| Checksum::Crc32c(c.to_string()));
    let md5 = o["md5Hash"].as_str().map(|c| Checksum::Md5(c.to_string()));
    for expected in sent {
        let reported = match expected {
            Checksum::Crc32c(_) => &crc,
            Checksum::Md5(_) => &md5,
            _ => continue,
        };
        if let Some(r) = reported {
            if r != expected {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    "gcs",
                    Operation::Put,
                    format!(
                        "gs://{}: the stored object reports {r} but {expected} was sent",
                        inner.cfg.bucket
                    ),
                )
                .with_key(key));
            }
        }
    }
    let meta = meta_from_json(key, o);
    let mut r = Receipt::new(key, meta.size, crc);
    r.etag = meta.etag;
    r.version = meta.version;
    Ok(r)
}

impl Inner {
    pub(crate) fn ctx<'a>(&'a self, key: &'a str) -> Ctx<'a> {
        Ctx {
            bucket: &self.cfg.bucket,
            key,
        }
    }

    pub(crate) async fn authed(
        &self,
        rb: reqwest::RequestBuilder,
        op: Operation,
        key: &str,
    ) -> Result<reqwest::RequestBuilder> {
        match &self.clients.token {
            None => Ok(rb),
            Some(ts) => {
                let token = ts.token().await.map_err(|e| {
                    Error::new(ErrorKind::Unauthenticated, "gcs", op, format!("gs://{}: cannot get a token: {e}", self.cfg.bucket))
                        .with_key(key)
                        .with_hint("run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS")
                })?;
                Ok(rb.header("Authorization", token))
            }
        }
    }

    /// Sends an authorized JSON API request whose only answer of interest is success: a
    /// transport failure or an error status is the mapped error.
    pub(crate) async fn call(
        &self,
        rb: reqwest::RequestBuilder,
        op: Operation,
        key: &str,
    ) -> Result<reqwest::Response> {
        let resp = self
            .authed(rb, op, key)
            .await?
            .send()
            .await
            .map_err(|e| transport(&e, op, &self.ctx(key)))?;
        if !resp.status().is_success() {
            return Err(from_response(resp, op, &self.ctx(key)).await);
        }
        Ok(resp)
    }

    fn object_url(&self, key: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.clients.base,
            enc(&self.cfg.bucket),
            enc(&self.cfg.full_key(key))
        )
    }

    /// Object metadata, with retention (which `gcloud-storage` does not model).
    pub(crate) async fn head_json(&self, key: &str) -> Result<ObjectMeta> {
        self.head_generation(key, None).await
    }

    /// Metadata of one generation of an object (`None`: the live one), or `NotFound`.
    pub(crate) async fn head_generation(
        &self,
        key: &str,
        generation: Option<i64>,
    ) -> Result<ObjectMeta> {
        let mut url = self.object_url(key);
        if let Some(g) = generation {
            url.push_str(&format!("?generation={g}"));
        }
        let rb = self.clients.http.get(url);
        let resp = self.call(rb, Operation::Head, key).await?;
        let o: Value = resp
            .json()
            .await
            .map_err(|e| transport(&e, Operation::Head, &self.ctx(key)))?;
        Ok(meta_from_json(key, &o))
    }

    fn resource(&self, key: &str, options: &PutOptions) -> Value {
        let mut o = json!({ "name": self.cfg.full_key(key) });
        if let Some(c) = &options.storage_class {
            o["storageClass"] = json!(c);
        }
        if !options.metadata.is_empty() {
            o["metadata"] = json!(options.metadata);
        }
        if let Some(ct) = &options.content_type {
            o["contentType"] = json!(ct);
        }
        if options.legal_hold {
            o["temporaryHold"] = json!(true);
        }
        if let Some(r) = &options.retention {
            o["retention"] = json!({
                "mode": if r.mode == LockMode::Compliance { "Locked" } else { "Unlocked" },
                "retainUntilTime": r.retain_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
        }
        o
    }

    async fn parse_state(
        &self,
        resp: reqwest::Response,
        key: &str,
        sent: &[Checksum],
    ) -> Result<SessionState> {
        let status = resp.status().as_u16();
        match status {
            200 | 201 => {
                let o: Value = resp
                    .json()
                    .await
                    .map_err(|e| transport(&e, Operation::Put, &self.ctx(key)))?;
                Ok(SessionState::Complete(receipt_from_json(
                    self, key, &o, sent,
                )?))
            }
            308 => {
                // "Range: bytes=0-N" means N+1 bytes persisted; no header means none.
                let persisted = resp
                    .headers()
                    .get("range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit('-').next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .map(|n| n + 1)
                    .unwrap_or(0);
                Ok(SessionState::Persisted(persisted))
            }
            // A session's only precondition is the `ifGenerationMatch=0` it was started with
            // (create-only): a 412 when the object is assembled means the key was taken.
            412 => Err(Error::already_exists("gcs", key)),
            _ => Err(from_response(resp, Operation::Put, &self.ctx(key)).await),
        }
    }
}

#[async_trait]
impl Sequential for Inner {
    fn granularity(&self) -> u64 {
        GRANULARITY
    }

    fn chunk_size(&self) -> u64 {
        self.cfg.chunk_size
    }

    fn digest(&self) -> Box<dyn ObjectDigest> {
        Box::new(GcsDigest::new())
    }

    async fn start_session(&self, key: &str, options: &PutOptions) -> Result<String> {
        offsite_storage::validate_key(key, "gcs", Operation::Put)?;
        let mut url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=resumable",
            self.clients.base,
            enc(&self.cfg.bucket)
        );
        if options.if_not_exists {
            url.push_str("&ifGenerationMatch=0");
        }
        let rb = self
            .clients
            .http
            .post(url)
            .json(&self.resource(key, options));
        let resp = self
            .authed(rb, Operation::Put, key)
            .await?
            .send()
            .await
            .map_err(|e| transport(&e, Operation::Put, &self.ctx(key)))?;
        if !resp.status().is_success() {
            let e = from_response(resp, Operation::Put, &self.ctx(key)).await;
            let e = adapter::create_only(e, options.if_not_exists, "gcs", key);
            return Err(match e.kind() {
                ErrorKind::NotFound => e.with_hint(format!(
                    "bucket {:?} does not exist; create it or fix the URL",
                    self.cfg.bucket
                )),
                _ => e,
            });
        }
        resp.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Other,
                    "gcs",
                    Operation::Put,
                    "the server gave no resumable session URL",
                )
                .with_key(key)
            })
    }

    async fn session_state(&self, key: &str, session: &str) -> Result<SessionState> {
        let resp = self
            .clients
            .http
            .put(session)
            .header("Content-Range", "bytes */*")
            .header("Content-Length", "0")
            .send()
            .await
            .map_err(|e| transport(&e, Operation::Put, &self.ctx(key)))?;
        if matches!(resp.status().as_u16(), 404 | 410) {
            return Err(Error::new(
                ErrorKind::NotFound,
                "gcs",
                Operation::Put,
                "the resumable upload session is gone (expired or cancelled)",
            )
            .with_key(key));
        }
        self.parse_state(resp, key, &[]).await
    }

    async fn put_chunk(
        &self,
        key: &str,
        session: &str,
        offset: u64,
        data: Bytes,
        last: Option<(u64, Vec<Checksum>)>,
    ) -> Result<SessionState> {
        let len = data.len() as u64;
        let total = last
            .as_ref()
            .map(|(t, _)| t.to_string())
            .unwrap_or_else(|| "*".into());
        let range = if len == 0 {
            format!("bytes */{total}")
        } else {
            format!("bytes {offset}-{}/{total}", offset + len - 1)
        };
        let mut rb = self
            .clients
            .http
            .put(session)
            .header("Content-Range", range)
            .header("Content-Length", len.to_string());
        let mut sent = Vec::new();
        if let Some((_, sums)) = &last {
            // GCS verifies these against the assembled object and refuses it on a mismatch.
            let parts: Vec<String> = sums
                .iter()
                .filter_map(|c| match c {
                    Checksum::Crc32c(v) => Some(format!("crc32c={v}")),
                    Checksum::Md5(v) => Some(format!("md5={v}")),
                    _ => None,
                })
                .collect();
            if !parts.is_empty() {
                rb = rb.header("x-goog-hash", parts.join(","));
            }
            sent = sums.clone();
        }
        let resp = rb
            .body(data)
            .send()
            .await
            .map_err(|e| transport(&e, Operation::Put, &self.ctx(key)))?;
        self.parse_state(resp, key, &sent).await
    }

    async fn cancel_session(&self, key: &str, session: &str) -> Result<()> {
        let resp = self
            .clients
            .http
            .delete(session)
            .header("Content-Length", "0")
            .send()
            .await
            .map_err(|e| transport(&e, Operation::Put, &self.ctx(key)))?;
        // 499 is GCS's answer to a cancelled session; 404/410 mean it is gone already.
        match resp.status().as_u16() {
            200..=299 | 499 | 404 | 410 => Ok(()),
            // A session's only precondition is the `ifGenerationMatch=0` it was started with
            // (create-only): a 412 when the object is assembled means the key was taken.
            412 => Err(Error::already_exists("gcs", key)),
            _ => Err(from_response(resp, Operation::Put, &self.ctx(key)).await),
        }
    }
}

/// Sets or extends an object's retention (`PATCH` with `retention`); used when a lock must be
/// extended after the fact. `op` names the operation in errors.
pub(crate) async fn set_retention(
    inner: &Inner,
    key: &str,
    retention: &Retention,
    op: Operation,
) -> Result<()> {
    let body = json!({
        "retention": {
            "mode": if retention.mode == LockMode::Compliance { "Locked" } else { "Unlocked" },
            "retainUntilTime": retention.retain_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    });
    let rb = inner.clients.http.patch(inner.object_url(key)).json(&body);
    inner.call(rb, op, key).await.map(|_| ())
}

/// Places or releases a temporary hold (`PATCH` with `temporaryHold`).
pub(crate) async fn set_hold(inner: &Inner, key: &str, hold: bool) -> Result<()> {
    let rb = inner
        .clients
        .http
        .patch(inner.object_url(key))
        .json(&json!({ "temporaryHold": hold }));
    inner.call(rb, Operation::Put, key).await.map(|_| ())
}
