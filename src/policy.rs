//! A policy file as the binary uses it: read and checked by `offsite_policies::policy`, then
//! each destination turned into the location URL a one-off push would be given (the table's
//! placement keys written into its query), so push, ls, verify and restore open a policy's
//! destinations exactly as they open a URL.

use std::path::Path;

use anyhow::Result;
use offsite_policies::policy::{Destination, Policy};
use offsite_storage::Location;

use crate::error::usage;

/// Reads and checks the policy at `path`; every problem is a usage error (exit 2).
pub fn load(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read the policy {}: {e}; give --policy FILE or set OFFSITE_POLICY",
            path.display()
        ))
    })?;
    let policy = Policy::parse(&text, &path.display().to_string()).map_err(|e| usage(e.0))?;
    let mut places = std::collections::HashMap::new();
    for (i, d) in policy.destinations.iter().enumerate() {
        // `policy.toml:12`: where this destination's url is written.
        let at = {
            use offsite_policies::policy::{line_at, Step};
            let line = line_at(
                &text,
                &[Step::Key("destination"), Step::Index(i), Step::Key("url")],
            );
            match line {
                Some(l) => format!("{}:{l}", path.display()),
                None => path.display().to_string(),
            }
        };
        let url = destination_url(d);
        let loc = Location::parse(&url)
            .map_err(|e| usage(format!("{at}: destination `{}`: {e}", d.name)))?;
        if let Some(first) = places.insert(loc.place(), d) {
            return Err(usage(format!(
                "{at}: destinations `{}` ({}) and `{}` ({}) are one location: each copy must be in a different place; remove one or change its url",
                first.name,
                first.url,
                d.name,
                d.url
            )));
        }
        if let Some(p) = &policy.prefix {
            loc.join_prefix(p).map_err(|e| {
                usage(format!(
                    "{at}: prefix {p:?} under destination `{}`: {e}",
                    d.name
                ))
            })?;
        }
        crate::registry::DestinationOptions::from_location(&loc)
            .map_err(|e| usage(format!("{at}: destination `{}`: {e}", d.name)))?;
    }
    Ok(policy)
}

/// Refuses a policy of `[[snapshots]]` alone (it has no `[[destination]]`) for a command about
/// archives, naming the commands that do read it.
pub fn need_archives(policy: &Policy, command: &str) -> Result<()> {
    if policy.has_archives() {
        return Ok(());
    }
    Err(usage(format!(
        "policy `{}` has no [[destination]], only [[snapshots]]: `offsite {command}` works on archives; its volumes are handled by `offsite snapshot create|list|prune --policy` and reported by `offsite status --policy`, or add a [[destination]] to place archives",
        policy.name
    )))
}

/// The destination as a location URL: its `url` with `storage-class`, `lock`, `lock-days`,
/// `legal-hold` and `sse-kms-key` from the table in the query (the policy's `prefix` is applied
/// when the location is opened).
pub fn destination_url(d: &Destination) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(c) = &d.storage_class {
        pairs.push(("storage-class", c.clone()));
    }
    if let Some(l) = d.lock {
        pairs.push(("lock", l.as_str().to_string()));
    }
    if let Some(n) = d.lock_days {
        pairs.push(("lock-days", n.to_string()));
    }
    if d.legal_hold == Some(true) {
        pairs.push(("legal-hold", "true".into()));
    }
    if let Some(k) = &d.sse_kms_key {
        pairs.push(("sse-kms-key", k.clone()));
    }
    // Where the credentials come from, by name: the providers read these query keys.
    if let Some(p) = &d.aws_profile {
        pairs.push(("profile", p.clone()));
    }
    if let Some(f) = &d.gcp_credentials_file {
        pairs.push(("credentials-file", f.display().to_string()));
    }
    if let Some(v) = &d.azure_connection_string_env {
        pairs.push(("connection-string-env", v.clone()));
    }
    let mut url = d.url.clone();
    for (i, (k, v)) in pairs.iter().enumerate() {
        let sep = if i == 0 && !d.url.contains('?') {
            '?'
        } else {
            '&'
        };
        url.push(sep);
        url.push_str(k);
        url.push('=');
        url.push_str(&percent_encode(v));
    }
    url
}

/// Percent-encodes what a query value cannot hold as is.
fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The one "policy or URLs" choice every command makes. `--policy FILE` (or `OFFSITE_POLICY`
/// when no URL was given) loads and checks the policy; a policy together with
/// URLs, or with `--prefix` (the policy's own prefix applies), is a usage error. `None` means the
/// URLs given are the locations: the caller says what is missing when there are none.
pub fn resolve(
    flag: Option<&Path>,
    urls_given: bool,
    prefix_given: bool,
) -> Result<Option<Policy>> {
    if flag.is_some() && urls_given {
        return Err(usage("give locations as URLs or --policy FILE, not both"));
    }
    let Some(path) = chosen(flag, urls_given) else {
        return Ok(None);
    };
    if prefix_given {
        return Err(usage(
            "--prefix cannot be combined with --policy: the policy's prefix applies",
        ));
    }
    load(&path).map(Some)
}

/// The policy file a command uses: `--policy FILE`, else `OFFSITE_POLICY` when the command
/// was given no location of its own (a URL on the command line is a one-off run, and wins over
/// the environment).
fn chosen(flag: Option<&Path>, locations_given: bool) -> Option<std::path::PathBuf> {
    if let Some(p) = flag {
        return Some(p.to_path_buf());
    }
    if locations_given {
        return None;
    }
    std::env::var_os("OFFSITE_POLICY")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// The policy's age recipients (`recipients` and `recipients-file`), or none for
/// `unencrypted = true`. A recipients file that cannot be read is a usage error.
pub fn recipients(policy: &Policy) -> Result<Vec<offsite_policies::encryption::Recipient>> {
    use offsite_policies::encryption::{dedup, Recipient};
    let Some(e) = &policy.encryption else {
        return Ok(Vec::new());
    };
    if e.unencrypted {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for r in &e.recipients {
        out.push(Recipient::parse(r, "[encryption] recipients").map_err(|e| usage(e.to_string()))?);
    }
    if let Some(f) = &e.recipients_file {
        out.extend(
            read_recipients_file(f)
                .map_err(|e| usage(format!("[encryption] recipients-file: {e}")))?,
        );
    }
    Ok(dedup(out))
}

/// Reads a recipients file (`-R`, `recipients-file`): one key per line, as `age -R` reads it.
pub fn read_recipients_file(
    path: &Path,
) -> Result<
    Vec<offsite_policies::encryption::Recipient>,
    offsite_policies::encryption::RecipientError,
> {
    use offsite_policies::encryption::{parse_recipients, RecipientError};
    let text = std::fs::read_to_string(path).map_err(|source| RecipientError::File {
        path: path.display().to_string(),
        source,
    })?;
    parse_recipients(&text, &path.display().to_string())
}

/// The policy's signing key (`[signing] key-file`), read and checked as `push --sign-with`
/// reads it (a usage error when it is missing, unreadable, or readable by others), or `None`
/// when the policy has no `[signing]`.
pub fn signing_key(policy: &Policy) -> Result<Option<offsite_policies::signing::SigningKey>> {
    policy
        .signing
        .as_ref()
        .and_then(|s| s.key_file.as_deref())
        .map(crate::signing::read_signing_key)
        .transpose()
}

/// The key this host signs what it writes with (`[signing] key-file`), checked against the
/// policy's trusted keys: where the policy trusts keys, a host without a key, or with one not
/// among them, would write archives (and records) its own readers call untrusted, so that is a
/// usage error naming the fix. `None` when the policy neither signs nor trusts.
pub fn write_key(policy: &Policy) -> Result<Option<offsite_policies::signing::SigningKey>> {
    let key = signing_key(policy)?;
    let signers = trusted_signers(Some(policy), &[], &[])?;
    if !signers.configured() {
        return Ok(key);
    }
    match &key {
        None => Err(usage(format!(
            "policy `{}` trusts only signed archives but gives this host no key to sign with: add key-file = \"FILE\" under [signing] (make one with `offsite keygen --signing -o FILE` and add its public line to trusted)",
            policy.name
        ))),
        Some(k) if !signers.trusts(k) => Err(usage(format!(
            "the signing key {} ({}) is not among policy `{}`'s trusted keys, so what this host writes would be untrusted: add its public line `{}` to [signing] trusted (or the trusted-file)",
            policy
                .signing
                .as_ref()
                .and_then(|s| s.key_file.as_ref())
                .map(|f| f.display().to_string())
                .unwrap_or_default(),
            k.fingerprint(),
            policy.name,
            k.public_line()
        ))),
        Some(_) => Ok(key),
    }
}

/// The keys a reader trusts: the policy's `[signing] trusted` and `trusted-file` (when a policy
/// is used), with `--trust` lines and `--trusted-file` files. A file that cannot be read, a
/// malformed line (named by file and line) or a private key given where a public one belongs
/// (never echoed) is a usage error.
pub fn trusted_signers(
    policy: Option<&Policy>,
    trust: &[String],
    trusted_files: &[std::path::PathBuf],
) -> Result<crate::engine::inventory::Signers> {
    use offsite_policies::signing::TrustedSigners;
    let mut set = TrustedSigners::default();
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    if let Some(s) = policy.and_then(|p| p.signing.as_ref()) {
        for (i, line) in s.trusted.iter().enumerate() {
            set.add_public_line(line, &format!("[signing] trusted, entry {}", i + 1))
                .map_err(|e| usage(e.0))?;
        }
        files.extend(s.trusted_file.clone());
    }
    for (i, line) in trust.iter().enumerate() {
        set.add_public_line(line, &format!("--trust (the {} given)", ordinal(i + 1)))
            .map_err(|e| usage(e.0))?;
    }
    files.extend(trusted_files.iter().cloned());
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| {
            usage(format!(
                "cannot read the trusted signers file {}: {e}; it holds OpenSSH allowed_signers lines such as `host-a ssh-ed25519 AAAA...`",
                f.display()
            ))
        })?;
        set.add_allowed_signers(&text, &f.display().to_string())
            .map_err(|e| usage(e.0))?;
    }
    Ok(crate::engine::inventory::Signers::new(set))
}

fn ordinal(n: usize) -> String {
    match n {
        1 => "first".into(),
        2 => "second".into(),
        3 => "third".into(),
        n => format!("{n}th"),
    }
}

/// Whether the policy stores archives unencrypted on purpose.
pub fn unencrypted(policy: &Policy) -> bool {
    policy.encryption.as_ref().is_some_and(|e| e.unencrypted)
}

/// The locations of the policy's destinations, in its order, with their names: `all` gives
/// replicas too (where restore, ls and verify look), else only those push fills.
pub fn locations(policy: &Policy, all: bool) -> Vec<(String, String)> {
    policy
        .destinations
        .iter()
        .filter(|d| all || !policy.is_replica(&d.name))
        .map(|d| (d.name.clone(), destination_url(d)))
        .collect()
}
