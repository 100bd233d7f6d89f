//! What GCS's JSON API says about an object (`ObjectMeta` from an object resource) and how a
//! name goes into a JSON API path. Imports nothing else of this crate.

use chrono::{DateTime, Utc};
use offsite_storage::{Checksum, LockMode, ObjectMeta, Retention};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// Everything but RFC 3986's unreserved characters, so that `/` in an object name is `%2F`.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn enc(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// An object resource (JSON) as metadata.
pub(crate) fn meta_from_json(key: &str, o: &Value) -> ObjectMeta {
    let size = o["size"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .or(o["size"].as_u64())
        .unwrap_or(0);
    let mut m = ObjectMeta::new(key, size);
    m.last_modified = time(&o["updated"]);
    m.etag = o["etag"].as_str().map(str::to_string);
    m.checksum = o["crc32c"]
        .as_str()
        .map(|c| Checksum::Crc32c(c.to_string()));
    m.storage_class = o["storageClass"].as_str().map(str::to_string);
    m.version = o["generation"]
        .as_str()
        .map(str::to_string)
        .or(o["generation"].as_i64().map(|g| g.to_string()));
    if let Some(md) = o["metadata"].as_object() {
        m.metadata = md
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
    }
    m.legal_hold =
        o["temporaryHold"].as_bool() == Some(true) || o["eventBasedHold"].as_bool() == Some(true);
    if let Some(until) = time(&o["retention"]["retainUntilTime"]) {
        let mode = if o["retention"]["mode"].as_str() == Some("Locked") {
            LockMode::Compliance
        } else {
            LockMode::Governance
        };
        m.retention = Some(Retention {
            mode,
            retain_until: until,
        });
    }
    m
}
