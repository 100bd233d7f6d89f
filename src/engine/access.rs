//! Reaching a location: creating it (`offsite create`, `plan --create`) and probing what the
//! credentials may do there (`plan --check-access`). Each outcome is a value the CLI prints.

use anyhow::Result;
use offsite_policies::policy::{Destination, Policy};
use offsite_storage::{CreateOptions, ErrorKind, PutOptions, StorageExt};
use serde::Serialize;

use crate::error::usage;
use crate::registry::Opened;

/// Makes the location `loc` points into, with `options`: `true` when it was created, `false`
/// when it existed. An option the store cannot honour is a usage error.
pub async fn create(loc: &Opened, options: &CreateOptions) -> Result<bool> {
    match loc.store.create_location(options).await {
        Ok(created) => Ok(created),
        Err(e) if matches!(e.kind(), ErrorKind::Unsupported | ErrorKind::InvalidConfig) => {
            Err(usage(format!("cannot create {} as asked: {e}", loc.url())))
        }
        Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", loc.url())),
    }
}

/// What `plan` asks of each destination.
#[derive(Debug, Clone, Default)]
pub struct ProbeRequest {
    /// Create missing locations with what the policy needs.
    pub create: bool,
    /// List, write, read back and delete a small object.
    pub check_access: bool,
    /// The project new GCS buckets belong to.
    pub project: Option<String>,
}

/// What `--create` did at a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Created (`locked`: with versioning and object lock).
    Created {
        /// With versioning and object lock, for a locked destination.
        locked: bool,
    },
    /// It was there already.
    Exists,
    /// It could not be created: why.
    Failed(String),
}

impl std::fmt::Display for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Created::Created { locked: true } => {
                f.write_str("created, with versioning and object lock")
            }
            Created::Created { locked: false } => f.write_str("created"),
            Created::Exists => f.write_str("exists already; nothing changed"),
            Created::Failed(e) => write!(f, "could not be created: {e}"),
        }
    }
}

impl Serialize for Created {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One step of the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Opening the store (credentials, configuration).
    Open,
    /// Listing under the prefix.
    List,
    /// Writing the probe object.
    Write,
    /// Reading it back.
    Read,
    /// Deleting it.
    Delete,
}

impl Step {
    /// The step's word in the report.
    pub fn word(self) -> &'static str {
        match self {
            Step::Open => "open",
            Step::List => "list",
            Step::Write => "write",
            Step::Read => "read",
            Step::Delete => "delete",
        }
    }
}

/// How one step went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It worked.
    Ok,
    /// It failed: why.
    Failed(String),
    /// Not tried on a locked destination (its default retention would keep the probe).
    NotProbedLocked,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Failed(e) => f.write_str(e),
            Outcome::NotProbedLocked => f.write_str("not probed: a locked destination's default retention would keep the probe object; checked with read-only calls"),
        }
    }
}

/// A step and how it went; in JSON, `[step, outcome]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The step.
    pub step: Step,
    /// How it went.
    pub outcome: Outcome,
}

impl Serialize for Check {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (self.step.word(), self.outcome.to_string()).serialize(s)
    }
}

/// What probing one destination found.
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    /// The destination's name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// What `--create` did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<Created>,
    /// Each step and how it went.
    pub checks: Vec<Check>,
    /// Whether everything asked worked.
    pub ok: bool,
}

impl Access {
    /// Records a step; `true` when it worked.
    fn check(&mut self, step: Step, r: std::result::Result<(), String>) -> bool {
        let ok = r.is_ok();
        let outcome = r.map_or_else(Outcome::Failed, |()| Outcome::Ok);
        self.checks.push(Check { step, outcome });
        self.ok &= ok;
        ok
    }
}

/// Creates (with `create`) and probes (with `check_access`) every destination of the policy.
pub async fn probe(policy: &Policy, req: &ProbeRequest) -> Vec<Access> {
    let mut out = Vec::new();
    for d in &policy.destinations {
        let url = crate::policy::destination_url(d);
        let mut a = Access {
            name: d.name.clone(),
            url: url.clone(),
            create: None,
            checks: Vec::new(),
            ok: true,
        };
        match crate::registry::open(&url, policy.prefix.as_deref()).await {
            Ok(loc) => probe_one(&mut a, d, &loc, req).await,
            Err(e) => {
                a.check(Step::Open, Err(e.to_string()));
            }
        }
        out.push(a);
    }
    out
}

async fn probe_one(a: &mut Access, d: &Destination, loc: &Opened, req: &ProbeRequest) {
    if req.create {
        let mut o = CreateOptions::default();
        o.object_lock = d.lock.is_some();
        o.versioning = d.lock.is_some();
        o.project = req.project.clone();
        let created = match loc.store.create_location(&o).await {
            Ok(true) => Created::Created {
                locked: d.lock.is_some(),
            },
            Ok(false) => Created::Exists,
            Err(e) => {
                a.ok = false;
                Created::Failed(e.to_string())
            }
        };
        a.create = Some(created);
    }
    if !req.check_access {
        return;
    }
    let prefix = crate::registry::key_prefix(&loc.location).to_string();
    let listed = {
        use futures::StreamExt;
        match loc.store.list(&prefix).next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e.to_string()),
        }
    };
    let can_list = a.check(Step::List, listed);
    if d.lock.is_some() {
        a.checks.push(Check {
            step: Step::Write,
            outcome: Outcome::NotProbedLocked,
        });
    } else if can_list {
        write_read_delete(a, loc, &prefix).await;
    }
}

/// Writes a small object under `prefix`, reads it back and deletes it.
async fn write_read_delete(a: &mut Access, loc: &Opened, prefix: &str) {
    const BODY: &[u8] = b"offsite plan --check-access\n";
    let key = offsite_storage::join_key(
        prefix,
        &format!(
            "offsite-access-check-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        ),
    );
    let wrote = loc
        .store
        .put_bytes(&key, bytes::Bytes::from_static(BODY), PutOptions::default())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    if !a.check(Step::Write, wrote) {
        return;
    }
    let read = match loc.store.get_bytes(&key).await {
        Ok(b) if b.as_ref() == BODY => Ok(()),
        Ok(_) => Err("read back different bytes than were written".to_string()),
        Err(e) => Err(e.to_string()),
    };
    a.check(Step::Read, read);
    let deleted = loc.store.delete(&key).await.map_err(|e| e.to_string());
    a.check(Step::Delete, deleted);
}
