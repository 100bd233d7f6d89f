//! The plan stage: what each destination holds under the archive's name, and what the push
//! does there. Every destination is decided before a byte moves: a name that holds a different
//! archive at one destination stops the push at all of them (unless `--overwrite`), so that one
//! name never means two archives.
//!
//! [`survey`] reads (a manifest GET and a HEAD per destination); [`decide`] is pure, so the
//! rules are tested without a store.

use offsite_policies::encryption::Recipient;
use offsite_storage::{ErrorKind, PutOptions, Retention};

use super::Status;
use crate::archive::{ArchiveKeys, Digest, Manifest};
use crate::engine::inventory::read_manifest;
use crate::registry::{key_prefix, Opened};

/// What the survey found at a destination under the archive's name, before the push.
#[derive(Debug, Clone)]
pub enum Found {
    /// Nothing: no manifest.
    Nothing,
    /// A complete copy: a manifest and its data object at the recorded size.
    Complete(Box<Manifest>),
    /// A manifest whose data object is gone or the wrong size: not a copy.
    DataMissing(Box<Manifest>),
    /// A manifest that does not parse.
    Unreadable(String),
    /// The destination could not be read.
    Unreachable(String),
}

impl Found {
    /// The manifest found there, if it parsed.
    fn manifest(&self) -> Option<&Manifest> {
        match self {
            Found::Complete(m) | Found::DataMissing(m) => Some(m),
            _ => None,
        }
    }

    /// Whether deciding what to do here needs the plaintext digest.
    pub fn needs_digest(&self) -> bool {
        self.manifest().is_some()
    }
}

/// What the push does at one destination.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send the archive and commit it (nothing was there).
    Upload,
    /// The manifest is there but its data is not: send the same archive again and commit.
    Repair,
    /// `--overwrite`: remove the old manifest first, then send and commit.
    Replace,
    /// The same archive for the same recipients is there: nothing to send.
    Keep(Box<Manifest>),
    /// A different archive of this name is here: refused, and the push sends it nowhere.
    Conflict(String),
    /// Nothing is sent here, and why (refused or failed).
    Skip(Status, String),
}

impl Action {
    /// Whether bytes are sent to this destination.
    pub fn uploads(&self) -> bool {
        matches!(self, Action::Upload | Action::Repair | Action::Replace)
    }
}

/// One destination's step of the plan: its decided action and the lock its copy gets.
#[derive(Debug, Clone)]
pub struct Step {
    /// What to do.
    pub action: Action,
    /// The lock on the data object and its manifest alike, computed once for the archive.
    pub retention: Option<Retention>,
}

/// The plan of a spooled push.
#[derive(Debug)]
pub enum Plan {
    /// Every destination decided before a byte moves.
    Decided(Vec<Step>),
    /// Standard input met a manifest of its name: it is spooled first, and decided on the
    /// digest the spool gives (nothing is sent before).
    Gated,
}

/// The archive's keys at each destination.
pub fn archive_keys(destinations: &[Opened], name: &str, encrypted: bool) -> Vec<ArchiveKeys> {
    destinations
        .iter()
        .map(|d| ArchiveKeys::new(key_prefix(&d.location), name, encrypted))
        .collect()
}

/// The recipients as the journal and the manifests record them: strings, sorted.
pub fn sorted_recipients(recipients: &[Recipient]) -> Vec<String> {
    let mut v: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

/// What the survey found at every destination, with its URL, in the order given.
pub struct Survey {
    found: Vec<(String, Found)>,
}

impl Survey {
    /// Reads every destination at once.
    pub async fn read(destinations: &[Opened], keys: &[ArchiveKeys]) -> Survey {
        let found = futures::future::join_all(
            destinations
                .iter()
                .zip(keys)
                .map(|(d, k)| async move { (d.url().to_string(), survey(d, k).await) }),
        )
        .await;
        Survey { found }
    }

    /// The first destination that holds a manifest of this name: deciding there needs the
    /// plaintext digest (see [`Found::needs_digest`]).
    pub fn holding_a_manifest(&self) -> Option<&str> {
        self.found
            .iter()
            .find(|(_, f)| f.needs_digest())
            .map(|(url, _)| url.as_str())
    }

    /// The plan: [`decide`]'s actions, each with the lock its destination's copy gets.
    pub fn steps(
        &self,
        plaintext: Option<&Digest>,
        recipients: &[String],
        overwrite: bool,
        retentions: &[Option<Retention>],
    ) -> Vec<Step> {
        decide(&self.found, plaintext, recipients, overwrite)
            .into_iter()
            .zip(retentions)
            .map(|(action, retention)| Step {
                action,
                retention: *retention,
            })
            .collect()
    }
}

/// The options a copy at `dest` is written with: its placement options, the archive's lock,
/// and the expected size when known.
/// How the data object is written: with the destination's class and locks, and for a new
/// archive (`create_only`) only where no object of its key is: two hosts pushing one name at
/// once never write over each other's data.
pub fn put_options(
    dest: &Opened,
    retention: Option<Retention>,
    size_hint: Option<u64>,
    create_only: bool,
) -> PutOptions {
    let mut options = PutOptions::default();
    options.if_not_exists = create_only;
    options.size_hint = size_hint;
    options.storage_class = dest.options.storage_class.clone();
    options.retention = retention;
    options.legal_hold = dest.options.legal_hold;
    options
}

/// Reads what `dest` holds under `keys`.
pub async fn survey(dest: &Opened, keys: &ArchiveKeys) -> Found {
    let manifest = match read_manifest(dest.store.as_ref(), &keys.manifest).await {
        Err(e) => return Found::Unreachable(format!("cannot read {}: {e}", keys.manifest)),
        Ok(None) => return Found::Nothing,
        Ok(Some(Err(bad))) => return Found::Unreadable(bad),
        Ok(Some(Ok(f))) => f.manifest,
    };
    // A manifest alone is not a copy: the data must be there, whole.
    let object_key = offsite_storage::join_key(key_prefix(&dest.location), &manifest.stored.key);
    match dest.store.head(&object_key).await {
        Ok(meta) if meta.size == manifest.stored.size => Found::Complete(Box::new(manifest)),
        Ok(_) => Found::DataMissing(Box::new(manifest)),
        Err(e) if e.is_not_found() => Found::DataMissing(Box::new(manifest)),
        Err(e) => Found::Unreachable(format!("cannot check {object_key}: {e}")),
    }
}

/// The rules, for every destination at once. `plaintext` is the archive's digest; it is needed
/// only where a destination holds a manifest (see [`Found::needs_digest`]) and `overwrite` is
/// off. `recipients` are sorted.
pub fn decide(
    found: &[(String, Found)],
    plaintext: Option<&Digest>,
    recipients: &[String],
    overwrite: bool,
) -> Vec<Action> {
    let mut actions: Vec<Action> = found
        .iter()
        .map(|(_, h)| decide_one(h, plaintext, recipients, overwrite))
        .collect();
    // A different archive under this name anywhere: send it nowhere.
    let conflict = found
        .iter()
        .zip(&actions)
        .find(|(_, a)| matches!(a, Action::Conflict(_)))
        .map(|((url, _), _)| url.clone());
    if let Some(url) = conflict {
        for a in &mut actions {
            if a.uploads() {
                *a = Action::Skip(
                    Status::Refused,
                    format!("not sent: a different archive of this name is stored at {url} (see there); pass --overwrite to replace it everywhere, or push under another --name"),
                );
            }
        }
    }
    actions
}

fn decide_one(
    found: &Found,
    plaintext: Option<&Digest>,
    recipients: &[String],
    overwrite: bool,
) -> Action {
    match found {
        Found::Nothing => Action::Upload,
        Found::Unreachable(why) => Action::Skip(Status::Failed, why.clone()),
        Found::Unreadable(_) | Found::Complete(_) | Found::DataMissing(_) if overwrite => {
            Action::Replace
        }
        Found::Unreadable(bad) => Action::Skip(
            Status::Refused,
            format!("the manifest here is unreadable ({bad}); inspect that copy, or pass --overwrite to replace it"),
        ),
        Found::Complete(m) | Found::DataMissing(m) => {
            let same =
                plaintext.is_some_and(|p| p.sha256 == m.plaintext.sha256 && p.size == m.plaintext.size);
            if !same {
                let short: String = m.plaintext.sha256.chars().take(16).collect();
                return Action::Conflict(
                    format!(
                        "a different archive named {:?} is already stored here (pushed {}, plaintext SHA-256 {short}...){}; pass --overwrite to replace it, or push under another --name",
                        m.archive,
                        m.pushed.format("%Y-%m-%dT%H:%M:%SZ"),
                        if matches!(found, Found::DataMissing(_)) { ", its data object gone" } else { "" },
                    ),
                );
            }
            if matches!(found, Found::DataMissing(_)) {
                return Action::Repair;
            }
            let mut theirs: Vec<String> = m
                .encryption
                .as_ref()
                .map(|e| e.recipients.clone())
                .unwrap_or_default();
            theirs.sort();
            if theirs != recipients {
                return Action::Skip(
                    Status::Refused,
                    format!(
                        "this archive is already stored here, but {}; pass --overwrite to store it again for the recipients given now",
                        if theirs.is_empty() { "unencrypted".to_string() } else { format!("encrypted for {}", theirs.join(", ")) }
                    ),
                );
            }
            Action::Keep(m.clone())
        }
    }
}

/// Carries out the part of an action that comes before any byte moves: `Replace` removes the
/// old manifest first, so that while the new data replaces the old no manifest describes bytes
/// that are no longer there. A locked copy is never replaced.
pub async fn prepare(dest: &Opened, keys: &ArchiveKeys, action: Action) -> Action {
    if action != Action::Replace {
        return action;
    }
    match dest.store.delete(&keys.manifest).await {
        Ok(()) => Action::Replace,
        Err(e) if e.is_not_found() => Action::Replace,
        Err(e) if e.kind() == ErrorKind::Locked => Action::Skip(
            Status::Refused,
            format!("the copy here is locked and cannot be replaced: {e}"),
        ),
        Err(e) => Action::Skip(
            Status::Failed,
            format!("cannot remove the old manifest {}: {e}", keys.manifest),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{CreatedFrom, Encryption, Stored, MANIFEST_FORMAT};
    use chrono::Utc;

    fn digest(s: &str) -> Digest {
        Digest {
            size: 10,
            sha256: s.repeat(64 / s.len()),
        }
    }

    fn manifest(plain: &str, recipients: &[&str]) -> Box<Manifest> {
        Box::new(Manifest {
            format: MANIFEST_FORMAT,
            archive: "a".into(),
            created: Utc::now(),
            created_from: CreatedFrom::Name,
            plaintext: digest(plain),
            stored: Stored {
                key: "a.age".into(),
                size: 20,
                sha256: "0".repeat(64),
                provider_checksum: None,
                storage_class: None,
                etag: None,
            },
            encryption: Some(Encryption {
                scheme: "age".into(),
                recipients: recipients.iter().map(|r| r.to_string()).collect(),
            }),
            policy: None,
            retain_until: None,
            metadata: None,
            pushed: Utc::now(),
            push: None,
            tool: "t".into(),
        })
    }

    fn h(list: Vec<Found>) -> Vec<(String, Found)> {
        list.into_iter()
            .enumerate()
            .map(|(i, h)| (format!("d{i}"), h))
            .collect()
    }

    #[test]
    fn empty_destinations_upload_and_same_archive_is_kept() {
        let r = vec!["age1x".to_string()];
        let a = decide(
            &h(vec![
                Found::Nothing,
                Found::Complete(manifest("a", &["age1x"])),
            ]),
            Some(&digest("a")),
            &r,
            false,
        );
        assert_eq!(a[0], Action::Upload);
        assert!(matches!(a[1], Action::Keep(_)));
    }

    #[test]
    fn a_different_archive_anywhere_stops_every_upload() {
        let r = vec!["age1x".to_string()];
        let a = decide(
            &h(vec![
                Found::Nothing,
                Found::Complete(manifest("b", &["age1x"])),
                Found::DataMissing(manifest("a", &["age1x"])),
            ]),
            Some(&digest("a")),
            &r,
            false,
        );
        assert!(
            matches!(&a[0], Action::Skip(Status::Refused, m) if m.contains("stored at d1")),
            "{a:?}"
        );
        assert!(matches!(&a[1], Action::Conflict(m) if m.starts_with("a different archive named")));
        assert!(matches!(&a[2], Action::Skip(Status::Refused, m) if m.contains("stored at d1")));
    }

    #[test]
    fn a_different_archive_whose_data_is_gone_also_conflicts() {
        let a = decide(
            &h(vec![Found::Nothing, Found::DataMissing(manifest("b", &[]))]),
            Some(&digest("a")),
            &[],
            false,
        );
        assert!(matches!(&a[0], Action::Skip(Status::Refused, _)));
        assert!(matches!(&a[1], Action::Conflict(m) if m.contains("data object gone")));
    }

    #[test]
    fn overwrite_replaces_whatever_is_there_and_needs_no_digest() {
        let a = decide(
            &h(vec![
                Found::Complete(manifest("b", &[])),
                Found::Unreadable("bad json".into()),
                Found::Nothing,
            ]),
            None,
            &[],
            true,
        );
        assert_eq!(a, vec![Action::Replace, Action::Replace, Action::Upload]);
    }

    #[test]
    fn other_recipients_and_unreadable_manifests_refuse_only_there() {
        let r = vec!["age1x".to_string()];
        let a = decide(
            &h(vec![
                Found::Complete(manifest("a", &["age1y"])),
                Found::Unreadable("bad".into()),
                Found::Nothing,
                Found::Unreachable("down".into()),
            ]),
            Some(&digest("a")),
            &r,
            false,
        );
        assert!(
            matches!(&a[0], Action::Skip(Status::Refused, m) if m.contains("encrypted for age1y"))
        );
        assert!(matches!(&a[1], Action::Skip(Status::Refused, m) if m.contains("unreadable")));
        assert_eq!(a[2], Action::Upload);
        assert!(matches!(&a[3], Action::Skip(Status::Failed, _)));
    }
}
