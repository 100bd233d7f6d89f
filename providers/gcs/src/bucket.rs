//! Creating the bucket a store points into (`buckets.insert`, with versioning and object
//! retention when asked), and checking a bucket that is there already.

use offsite_storage::{CreateOptions, Error, ErrorKind, Operation, Result};
use serde_json::{json, Value};

use crate::client::{Inner, PROVIDER};
use crate::error::{from_response, transport};
use crate::metadata::enc;

/// The environment variable read for the project when none is given.
pub(crate) const PROJECT_VAR: &str = "GOOGLE_CLOUD_PROJECT";

/// The project a new bucket belongs to: the one asked for, else the environment's.
fn project(options: &CreateOptions, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    options
        .project
        .clone()
        .or_else(|| env(PROJECT_VAR))
        .filter(|p| !p.trim().is_empty())
}

/// The `buckets.insert` request: its URL query and its body.
fn insert_request(
    base: &str,
    bucket: &str,
    project: &str,
    options: &CreateOptions,
) -> (String, Value) {
    let mut url = format!("{base}/storage/v1/b?project={}", enc(project));
    if options.object_lock {
        // Object retention can only be turned on when the bucket is created.
        url.push_str("&enableObjectRetention=true");
    }
    let mut body = json!({ "name": bucket });
    if options.versioning {
        body["versioning"] = json!({ "enabled": true });
    }
    (url, body)
}

impl Inner {
    fn bucket_url(&self) -> String {
        format!(
            "{}/storage/v1/b/{}",
            self.clients.base,
            enc(&self.cfg.bucket)
        )
    }

    fn location(&self) -> String {
        format!("gs://{}", self.cfg.bucket)
    }

    fn create_error(&self, kind: ErrorKind, message: String, hint: &str) -> Error {
        Error::new(kind, PROVIDER, Operation::Create, message)
            .with_key(self.location())
            .with_hint(hint.to_string())
    }

    /// Creates the bucket, or checks the one there (see `Storage::create_location`).
    pub(crate) async fn create_bucket(&self, options: &CreateOptions) -> Result<bool> {
        let Some(project) = project(options, |k| std::env::var(k).ok()) else {
            // Without a project nothing can be created, but a bucket that is there can still
            // be checked and reported as existing.
            return match self.retry.run(|| self.bucket_json()).await {
                Ok(b) => self.check_existing(&b, options).await.map(|()| false),
                Err(e) if e.is_not_found() => Err(self.create_error(
                    ErrorKind::InvalidConfig,
                    format!(
                        "{}: the bucket does not exist and no project is given to create it in",
                        self.location()
                    ),
                    &format!("pass --project PROJECT_ID or set {PROJECT_VAR}"),
                )),
                Err(e) => Err(e),
            };
        };
        let (url, body) = insert_request(&self.clients.base, &self.cfg.bucket, &project, options);
        let rb = self.clients.http.post(url).json(&body);
        // Not retried: a bucket insert is not idempotent (a retry of one that worked is a 409,
        // which the check below would then have to explain).
        let resp = self
            .authed(rb, Operation::Create, "")
            .await?
            .send()
            .await
            .map_err(|e| transport(&e, Operation::Create, &self.ctx("")))?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            // The name is taken: by these credentials' own project, or by someone else.
            409 => match self.retry.run(|| self.bucket_json()).await {
                Ok(b) => self.check_existing(&b, options).await.map(|()| false),
                Err(e) if e.is_retryable() => Err(e),
                Err(e) => Err(self.create_error(
                    ErrorKind::AlreadyExists,
                    format!(
                        "{}: the bucket name is taken, and not by a bucket these credentials can read ({})",
                        self.location(),
                        e.message()
                    ),
                    "bucket names are global across all of GCS: choose another name",
                )),
            },
            _ => Err(from_response(resp, Operation::Create, &self.ctx("")).await),
        }
    }

    /// The bucket resource (`buckets.get`).
    async fn bucket_json(&self) -> Result<Value> {
        let rb = self.clients.http.get(self.bucket_url());
        let resp = self.call(rb, Operation::Create, "").await?;
        resp.json()
            .await
            .map_err(|e| transport(&e, Operation::Create, &self.ctx("")))
    }

    /// An existing bucket: versioning can be turned on now, object retention cannot.
    async fn check_existing(&self, bucket: &Value, options: &CreateOptions) -> Result<()> {
        if options.object_lock && bucket["objectRetention"]["mode"].as_str() != Some("Enabled") {
            return Err(self.create_error(
                ErrorKind::InvalidConfig,
                format!(
                    "{}: the bucket exists without object retention, and GCS turns it on only when a bucket is created",
                    self.location()
                ),
                "create a new bucket with --object-lock and push there",
            ));
        }
        if options.versioning && bucket["versioning"]["enabled"].as_bool() != Some(true) {
            let rb = self
                .clients
                .http
                .patch(self.bucket_url())
                .json(&json!({ "versioning": { "enabled": true } }));
            self.call(rb, Operation::Create, "").await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(versioning: bool, object_lock: bool, project: Option<&str>) -> CreateOptions {
        let mut o = CreateOptions::default();
        o.versioning = versioning;
        o.object_lock = object_lock;
        o.project = project.map(str::to_string);
        o
    }

    #[test]
    fn the_project_comes_from_the_options_then_the_environment() {
        let env = |k: &str| (k == PROJECT_VAR).then(|| "from-env".to_string());
        let none = |_: &str| None;
        assert_eq!(
            project(&opts(false, false, Some("asked")), env).as_deref(),
            Some("asked")
        );
        assert_eq!(
            project(&opts(false, false, None), env).as_deref(),
            Some("from-env")
        );
        assert_eq!(project(&opts(false, false, None), none), None);
        assert_eq!(project(&opts(false, false, Some(" ")), none), None);
    }

    #[test]
    fn insert_asks_for_versioning_and_object_retention() {
        let (url, body) = insert_request("http://h", "bkt", "my proj", &opts(true, true, None));
        assert_eq!(
            url,
            "http://h/storage/v1/b?project=my%20proj&enableObjectRetention=true"
        );
        assert_eq!(
            body,
            json!({"name": "bkt", "versioning": {"enabled": true}})
        );
        let (url, body) = insert_request("http://h", "bkt", "p", &opts(false, false, None));
        assert_eq!(url, "http://h/storage/v1/b?project=p");
        assert_eq!(body, json!({"name": "bkt"}));
    }
}
