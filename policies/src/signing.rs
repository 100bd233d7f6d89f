//! Signing keys, trusted signers and signature verdicts for signed manifests (issue 27).
//!
//! Pure: the caller reads files and passes their text with an origin (a path, or `[signing]
//! trusted`) that errors name. Keys are OpenSSH Ed25519 keys and signatures are the SSH
//! signature format (`-----BEGIN SSH SIGNATURE-----`, [PROTOCOL.sshsig]) in the namespace
//! [`NAMESPACE`] with SHA-512, as `ssh-keygen -Y sign` makes them, so a user can check one with
//! `ssh-keygen -Y verify -f allowed_signers -I PRINCIPAL -n offsite-manifest -s SIG < BYTES`.
//! Both come from RustCrypto's `ssh-key`; nothing here computes a signature by hand.
//!
//! [`TrustedSigners`] is built from public key lines (`ssh-ed25519 AAAA... comment`, as a
//! policy's `trusted = [...]` lists them) and/or the text of an OpenSSH `allowed_signers` file
//! (`PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]`, with `namespaces="..."`, `valid-after=` and
//! `valid-before=` understood as `ssh-keygen` understands them). [`TrustedSigners::verify`]
//! returns a [`Verdict`]: trusted and by whom, or untrusted and why.
//!
//! Neither errors nor `Debug` output ever show private key material.
//!
//! [PROTOCOL.sshsig]: https://cvsweb.openbsd.org/src/usr.bin/ssh/PROTOCOL.sshsig

use std::fmt;

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

/// The SSH signature namespace of every offsite manifest signature (`ssh-keygen -Y ... -n`).
pub const NAMESPACE: &str = "offsite-manifest";

/// A key or trusted-signers text that cannot be used: the message names its origin (and line)
/// and what to do instead, and never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SigningError(pub String);

/// An unencrypted OpenSSH Ed25519 private key that signs manifests.
pub struct SigningKey {
    key: PrivateKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint())
            .field("comment", &self.key.comment())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random Ed25519 key (from the operating system's generator) with `comment`.
    pub fn generate(comment: &str) -> SigningKey {
        let mut key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519)
            .expect("ssh-key generates Ed25519 keys (its ed25519 feature is on)");
        key.set_comment(comment);
        SigningKey { key }
    }

    /// Reads the OpenSSH private key `text` (the contents of `origin`, named in errors). Refuses
    /// a passphrase-protected key (offsite signs unattended), a key of another type than
    /// Ed25519, and anything that is not an OpenSSH private key (a public key, an age
    /// identity, a PEM key of another format), saying what to use instead.
    pub fn from_openssh(text: &str, origin: &str) -> Result<SigningKey, SigningError> {
        const MAKE: &str =
            "make a signing key with `offsite keygen --signing -o FILE` (or `ssh-keygen -t ed25519`)";
        let trimmed = text.trim_start();
        if !trimmed.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
            let what = if trimmed.starts_with("ssh-") || trimmed.starts_with("ecdsa-") {
                "holds a public key, not the private key a host signs with"
            } else if trimmed.to_ascii_uppercase().contains("AGE-SECRET-KEY-") {
                "holds an age identity (for decrypting), not a signing key"
            } else if trimmed.starts_with("-----BEGIN ") {
                "is a PEM key of another format; offsite reads OpenSSH private keys (-----BEGIN OPENSSH PRIVATE KEY-----)"
            } else {
                "is not an OpenSSH private key"
            };
            return Err(SigningError(format!("{origin} {what}; {MAKE}")));
        }
        let key = PrivateKey::from_openssh(trimmed).map_err(|e| match e {
            // Built with Ed25519 alone, ssh-key knows no other key type.
            ssh_key::Error::AlgorithmUnknown => SigningError(format!(
                "{origin} is not an Ed25519 key; offsite signs with Ed25519 keys only: {MAKE}"
            )),
            e => SigningError(format!(
                "{origin} is not a readable OpenSSH private key ({e}); {MAKE}"
            )),
        })?;
        if key.is_encrypted() {
            return Err(SigningError(format!(
                "{origin} is protected by a passphrase; offsite signs unattended and cannot ask for it. \
                 Use a key without a passphrase, kept mode 0600: `offsite keygen --signing -o FILE`, \
                 or remove the passphrase from a copy with `ssh-keygen -p -N '' -f COPY`"
            )));
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(SigningError(format!(
                "{origin} is an {} key; offsite signs with Ed25519 keys only: {MAKE}",
                key.algorithm()
            )));
        }
        Ok(SigningKey { key })
    }

    /// The key in OpenSSH private key format (unencrypted), as `offsite keygen --signing`
    /// writes it. Wiped from memory when dropped.
    pub fn to_openssh(&self) -> age::secrecy::SecretString {
        let text = self
            .key
            .to_openssh(LineEnding::LF)
            .expect("an unencrypted Ed25519 key always encodes");
        age::secrecy::SecretString::from(text.as_str())
    }

    /// The armored SSH signature (`-----BEGIN SSH SIGNATURE-----`) over exactly `bytes`, in
    /// the namespace [`NAMESPACE`] with SHA-512, as `ssh-keygen -Y sign -n offsite-manifest`
    /// makes it.
    pub fn sign(&self, bytes: &[u8]) -> String {
        self.key
            .sign(NAMESPACE, HashAlg::Sha512, bytes)
            .and_then(|sig| sig.to_pem(LineEnding::LF))
            .expect("signing with an unencrypted Ed25519 key cannot fail")
    }

    /// The public line `ssh-ed25519 AAAA... COMMENT` that readers put in their trusted list.
    pub fn public_line(&self) -> String {
        self.key
            .public_key()
            .to_openssh()
            .expect("an Ed25519 public key always encodes")
    }

    /// The key's fingerprint as `ssh-keygen -l` shows it (`SHA256:...`).
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }
}

/// One trusted key: a `trusted` entry or an `allowed_signers` line.
#[derive(Debug, Clone)]
struct Signer {
    /// The principals of an `allowed_signers` line, or a public line's comment (its
    /// fingerprint when it has none).
    name: String,
    key: PublicKey,
    /// `namespaces="..."` patterns; `None` allows every namespace.
    namespaces: Option<Vec<String>>,
    valid_after: Option<DateTime<Utc>>,
    valid_before: Option<DateTime<Utc>>,
}

/// The keys whose manifest signatures a reader trusts, each with its name, namespaces and
/// validity window.
#[derive(Debug, Clone, Default)]
pub struct TrustedSigners {
    signers: Vec<Signer>,
}

/// What [`TrustedSigners::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The signature verifies under a trusted key, in its validity window.
    Trusted {
        /// The principals of its `allowed_signers` line, or its public line's comment.
        signer: String,
        /// The signing key's fingerprint (`SHA256:...`).
        fingerprint: String,
    },
    /// The bytes are not trusted; the reason says why.
    Untrusted {
        /// Why.
        reason: UntrustedReason,
    },
}

/// Why bytes are untrusted. Its `Display` is a sentence for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UntrustedReason {
    /// No signature was given.
    Unsigned,
    /// The signature text is not an SSH signature.
    Malformed {
        /// What is wrong with it.
        detail: String,
    },
    /// The signature was made in another namespace than [`NAMESPACE`].
    WrongNamespace {
        /// The namespace it was made in.
        namespace: String,
    },
    /// The signing key is not trusted (not listed, or listed for other namespaces only).
    KeyNotTrusted {
        /// The signing key's fingerprint (`SHA256:...`).
        fingerprint: String,
    },
    /// The key is trusted, but not at the time checked (`valid-after` / `valid-before`).
    OutsideValidity {
        /// Its principals or comment.
        signer: String,
        /// The signing key's fingerprint (`SHA256:...`).
        fingerprint: String,
        /// The time checked.
        at: DateTime<Utc>,
        /// Its `valid-after`, if any.
        valid_after: Option<DateTime<Utc>>,
        /// Its `valid-before`, if any.
        valid_before: Option<DateTime<Utc>>,
    },
    /// The signature is by a trusted key but does not match the bytes.
    BadSignature {
        /// Its principals or comment.
        signer: String,
        /// The signing key's fingerprint (`SHA256:...`).
        fingerprint: String,
    },
}

impl fmt::Display for UntrustedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = |d: &DateTime<Utc>| d.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        match self {
            UntrustedReason::Unsigned => write!(f, "unsigned"),
            UntrustedReason::Malformed { detail } => write!(f, "malformed signature: {detail}"),
            UntrustedReason::WrongNamespace { namespace } => write!(
                f,
                "signed in the namespace {namespace:?}, not {NAMESPACE:?}"
            ),
            UntrustedReason::KeyNotTrusted { fingerprint } => {
                write!(f, "signed by a key that is not trusted ({fingerprint})")
            }
            UntrustedReason::OutsideValidity {
                signer,
                fingerprint,
                at,
                valid_after,
                valid_before,
            } => {
                write!(
                    f,
                    "signed by {signer} ({fingerprint}), whose key is not trusted at {}",
                    t(at)
                )?;
                match (valid_after, valid_before) {
                    (Some(a), Some(b)) => write!(f, " (valid from {} to {})", t(a), t(b)),
                    (Some(a), None) => write!(f, " (valid from {})", t(a)),
                    (None, Some(b)) => write!(f, " (valid until {})", t(b)),
                    (None, None) => Ok(()),
                }
            }
            UntrustedReason::BadSignature {
                signer,
                fingerprint,
            } => write!(
                f,
                "the signature by {signer} ({fingerprint}) does not match the signed bytes"
            ),
        }
    }
}

/// The start of the base64 of `openssh-key-v1\0`, the body of an OpenSSH private key.
const PRIVATE_BODY: &str = "b3BlbnNzaC1rZXktdjE";

/// Whether `text` looks like (part of) a private key of any kind.
fn looks_private(text: &str) -> bool {
    let upper = text.to_ascii_uppercase();
    upper.contains("PRIVATE KEY")
        || upper.contains("AGE-SECRET-KEY-")
        || text.contains(PRIVATE_BODY)
}

fn private_refusal(at: &str) -> SigningError {
    SigningError(format!(
        "{at}: this is a PRIVATE key (not shown); trusted keys are public lines such as \
         `ssh-ed25519 AAAA... host-a` (the line `offsite keygen --signing` printed, or \
         `ssh-keygen -y -f KEY`). Remove it from there, and treat the key as exposed if that text was shared"
    ))
}

/// Splits `line` at whitespace outside double quotes (quotes kept).
fn tokens(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            if let Some(s) = start.take() {
                out.push(&line[s..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(&line[s..]);
    }
    out
}

/// Reads the Ed25519 public key `keytype base64` at `at` (never echoing it).
fn public_key(keytype: &str, base64: &str, at: &str) -> Result<PublicKey, SigningError> {
    if keytype != "ssh-ed25519" {
        let shown = if keytype.len() <= 40
            && keytype
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-@._".contains(c))
        {
            format!("a `{keytype}` key")
        } else {
            "no key type offsite knows".to_string()
        };
        return Err(SigningError(format!(
            "{at}: {shown}; offsite trusts ssh-ed25519 keys only (lines such as `ssh-ed25519 AAAA... host-a`)"
        )));
    }
    let key = PublicKey::from_openssh(&format!("{keytype} {base64}")).map_err(|_| {
        SigningError(format!(
            "{at}: the ssh-ed25519 key does not decode (is its base64 cut short or altered?)"
        ))
    })?;
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(SigningError(format!(
            "{at}: the key is not the ssh-ed25519 key its type says"
        )));
    }
    Ok(key)
}

/// `YYYYMMDD[HHMM[SS]][Z]` as `ssh-keygen` reads `valid-after` / `valid-before`: in UTC with
/// `Z`, else in local time.
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    let (digits, utc) = match value.strip_suffix(['Z', 'z']) {
        Some(d) => (d, true),
        None => (value, false),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let naive = match digits.len() {
        8 => NaiveDate::parse_from_str(digits, "%Y%m%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?,
        12 => NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M").ok()?,
        14 => NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S").ok()?,
        _ => return None,
    };
    if utc {
        Some(Utc.from_utc_datetime(&naive))
    } else {
        Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|d| d.with_timezone(&Utc))
    }
}

/// `*` and `?` patterns, as OpenSSH matches `namespaces=` (a leading `!` negates).
fn pattern_matches(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some((b'?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

fn namespace_allowed(patterns: &[String], namespace: &str) -> bool {
    let mut allowed = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if pattern_matches(neg, namespace) {
                return false;
            }
        } else if pattern_matches(p, namespace) {
            allowed = true;
        }
    }
    allowed
}

impl TrustedSigners {
    /// The trusted signers of `trusted` (public lines `ssh-ed25519 AAAA... comment`, from
    /// `trusted_origin`, such as `policy.toml [signing] trusted`) and of `allowed_signers`
    /// (the text of an OpenSSH `allowed_signers` file and its path), together.
    pub fn parse(
        trusted: &[String],
        trusted_origin: &str,
        allowed_signers: Option<(&str, &str)>,
    ) -> Result<TrustedSigners, SigningError> {
        let mut signers = TrustedSigners::default();
        for (i, line) in trusted.iter().enumerate() {
            signers.add_public_line(line, &format!("{trusted_origin}, entry {}", i + 1))?;
        }
        if let Some((text, origin)) = allowed_signers {
            signers.add_allowed_signers(text, origin)?;
        }
        Ok(signers)
    }

    /// Adds one public line `ssh-ed25519 AAAA... [COMMENT]`; `at` names it in errors. The
    /// comment (or, without one, the fingerprint) is the signer's name.
    pub fn add_public_line(&mut self, line: &str, at: &str) -> Result<(), SigningError> {
        if looks_private(line) {
            return Err(private_refusal(at));
        }
        let parts = tokens(line.trim());
        let (keytype, base64) = match parts.as_slice() {
            [k, b, ..] => (*k, *b),
            [] => {
                return Err(SigningError(format!(
                    "{at}: empty; give a public line such as `ssh-ed25519 AAAA... host-a`"
                )))
            }
            [_] => {
                return Err(SigningError(format!(
                "{at}: a key type and its base64 are needed, such as `ssh-ed25519 AAAA... host-a`"
            )))
            }
        };
        let key = public_key(keytype, base64, at)?;
        let comment = parts[2..].join(" ");
        let name = if comment.is_empty() {
            key.fingerprint(HashAlg::Sha256).to_string()
        } else {
            comment
        };
        self.signers.push(Signer {
            name,
            key,
            namespaces: None,
            valid_after: None,
            valid_before: None,
        });
        Ok(())
    }

    /// Adds the lines of an OpenSSH `allowed_signers` file (`origin` names it in errors):
    /// `PRINCIPALS [OPTIONS] ssh-ed25519 BASE64 [COMMENT]`, with the options `namespaces="..."`,
    /// `valid-after="YYYYMMDD[HHMM[SS]][Z]"` and `valid-before=...` (in local time without `Z`,
    /// as `ssh-keygen` reads them). `cert-authority` lines are refused: offsite trusts keys, not
    /// certificate authorities.
    pub fn add_allowed_signers(&mut self, text: &str, origin: &str) -> Result<(), SigningError> {
        for (n, raw) in text.lines().enumerate() {
            let at = format!("{origin}, line {}", n + 1);
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if looks_private(line) {
                return Err(private_refusal(&at));
            }
            let parts = tokens(line);
            let is_keytype =
                |s: &str| s.starts_with("ssh-") || s.starts_with("ecdsa-") || s.starts_with("sk-");
            let (principals, rest) = match parts.split_first() {
                Some((p, rest)) if !is_keytype(p) => (p.trim_matches('"').to_string(), rest),
                _ => {
                    return Err(SigningError(format!(
                        "{at}: no principals; an allowed_signers line is `PRINCIPALS [OPTIONS] ssh-ed25519 AAAA...`, such as `host-a ssh-ed25519 AAAA...`"
                    )))
                }
            };
            let (options, rest) = match rest.split_first() {
                Some((o, rest)) if !is_keytype(o) => (Some(*o), rest),
                _ => (None, rest),
            };
            let (keytype, base64) = match rest {
                [k, b, ..] => (*k, *b),
                _ => {
                    return Err(SigningError(format!(
                        "{at}: no key; an allowed_signers line is `PRINCIPALS [OPTIONS] ssh-ed25519 AAAA...`"
                    )))
                }
            };
            let mut signer = Signer {
                name: principals,
                key: public_key(keytype, base64, &at)?,
                namespaces: None,
                valid_after: None,
                valid_before: None,
            };
            if let Some(options) = options {
                for opt in split_options(options) {
                    let (name, value) = match opt.split_once('=') {
                        Some((n, v)) => (n, Some(v.trim_matches('"'))),
                        None => (opt, None),
                    };
                    match (name.to_ascii_lowercase().as_str(), value) {
                        ("cert-authority", None) => {
                            return Err(SigningError(format!(
                                "{at}: cert-authority is not supported; offsite trusts the signing keys themselves: list each host's key (`PRINCIPALS ssh-ed25519 AAAA...`) instead of a certificate authority"
                            )))
                        }
                        ("namespaces", Some(v)) => {
                            signer.namespaces =
                                Some(v.split(',').map(|s| s.trim().to_string()).collect())
                        }
                        ("valid-after", Some(v)) => {
                            signer.valid_after = Some(parse_time(v).ok_or_else(|| bad_time(&at, "valid-after"))?)
                        }
                        ("valid-before", Some(v)) => {
                            signer.valid_before = Some(parse_time(v).ok_or_else(|| bad_time(&at, "valid-before"))?)
                        }
                        _ => {
                            return Err(SigningError(format!(
                                "{at}: unknown option; offsite understands namespaces=\"...\", valid-after=\"YYYYMMDD[HHMM[SS]][Z]\" and valid-before=\"...\""
                            )))
                        }
                    }
                }
            }
            self.signers.push(signer);
        }
        Ok(())
    }

    /// Whether no signer is trusted (every archive then counts as trusted, as before signing).
    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// How many keys (entries and lines) are trusted.
    pub fn len(&self) -> usize {
        self.signers.len()
    }

    /// Checks the armored SSH signature `armored_sig` (`None`: unsigned) over exactly `bytes`
    /// at the time `at`: made in [`NAMESPACE`], by a trusted key whose namespaces allow it and
    /// whose validity window (`valid-after` ≤ `at` ≤ `valid-before`, bounds included, as
    /// `ssh-keygen -Y verify` counts them) holds `at`, and matching the bytes.
    pub fn verify(&self, bytes: &[u8], armored_sig: Option<&str>, at: DateTime<Utc>) -> Verdict {
        let untrusted = |reason| Verdict::Untrusted { reason };
        let armored = match armored_sig.map(str::trim) {
            None | Some("") => return untrusted(UntrustedReason::Unsigned),
            Some(a) => a,
        };
        let sig = match SshSig::from_pem(armored) {
            Ok(s) => s,
            Err(e) => {
                return untrusted(UntrustedReason::Malformed {
                    detail: format!("not an SSH signature ({e})"),
                })
            }
        };
        if sig.namespace() != NAMESPACE {
            return untrusted(UntrustedReason::WrongNamespace {
                namespace: sig.namespace().to_string(),
            });
        }
        let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
        let matching: Vec<&Signer> = self
            .signers
            .iter()
            .filter(|s| s.key.key_data() == sig.public_key())
            .filter(|s| {
                s.namespaces
                    .as_deref()
                    .is_none_or(|ns| namespace_allowed(ns, NAMESPACE))
            })
            .collect();
        let Some(first) = matching.first() else {
            return untrusted(UntrustedReason::KeyNotTrusted { fingerprint });
        };
        if first.key.verify(NAMESPACE, bytes, &sig).is_err() {
            return untrusted(UntrustedReason::BadSignature {
                signer: first.name.clone(),
                fingerprint,
            });
        }
        let within = |s: &&&Signer| {
            s.valid_after.is_none_or(|a| a <= at) && s.valid_before.is_none_or(|b| at <= b)
        };
        match matching.iter().find(within) {
            Some(s) => Verdict::Trusted {
                signer: s.name.clone(),
                fingerprint,
            },
            None => untrusted(UntrustedReason::OutsideValidity {
                signer: first.name.clone(),
                fingerprint,
                at,
                valid_after: first.valid_after,
                valid_before: first.valid_before,
            }),
        }
    }
}

fn bad_time(at: &str, option: &str) -> SigningError {
    SigningError(format!(
        "{at}: {option} is not a time; write it as YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, with Z for UTC (such as {option}=\"20270101Z\")"
    ))
}

/// Splits an options field at commas outside double quotes.
fn split_options(options: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in options.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&options[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&options[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ssh-keygen -t ed25519 -N pass -C enc`: a test key, passphrase-protected.
    const ENCRYPTED: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABCittWiUY
NRBbrZGOr/7X3EAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIFuDsgrI9J44h3NP
CPgvK3ROh4lZorFu0AlWScaq17hOAAAAkADiFJQAGZ1j5F5489Vg9wAhivUx0S81NpI+zG
uv7NtwijLeMEKP/s+p4PrfMKKCWxwSzXAN3qwLZpmC7XH1NOuy7IywyXCKtB93Sd9n+GwE
PL0HZxKtmpiV4rgx6x1W4XtSNE2dsFa8/gJafQkashW1oS9GBinttcjg0GKcU4nBXA8+jX
9tOCXtuHYRPTDcoA==
-----END OPENSSH PRIVATE KEY-----
";
    /// `ssh-keygen -t ecdsa -b 256 -N '' -C ec`: a test key of another type.
    const ECDSA: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAaAAAABNlY2RzYS
1zaGEyLW5pc3RwMjU2AAAACG5pc3RwMjU2AAAAQQTysnmtYl26u2rsFDF00yZ9u0AvD1Of
qREJlDrEO8x3uTmqga9Dq5+n5ACTvY79/2d9Zp0tfKtQSA3qQGdsvN6eAAAAoHtGwg97Rs
IPAAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPKyea1iXbq7auwU
MXTTJn27QC8PU5+pEQmUOsQ7zHe5OaqBr0Orn6fkAJO9jv3/Z31mnS18q1BIDepAZ2y83p
4AAAAgPQzXEWTXzktLGxHTuGXzNztPA4tEG+x7aos3Hca8JtEAAAACZWMBAgMEBQY=
-----END OPENSSH PRIVATE KEY-----
";
    const ECDSA_PUBLIC: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPKyea1iXbq7auwUMXTTJn27QC8PU5+pEQmUOsQ7zHe5OaqBr0Orn6fkAJO9jv3/Z31mnS18q1BIDepAZ2y83p4= ec";

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        at("2026-11-26T02:00:00Z")
    }

    /// The base64 body of `key`'s public line.
    fn body(key: &SigningKey) -> String {
        key.public_line().split(' ').nth(1).unwrap().to_string()
    }

    fn trusting(key: &SigningKey) -> TrustedSigners {
        TrustedSigners::parse(&[key.public_line()], "policy.toml [signing] trusted", None).unwrap()
    }

    fn untrusted(v: Verdict) -> UntrustedReason {
        match v {
            Verdict::Untrusted { reason } => reason,
            v => panic!("expected untrusted, got {v:?}"),
        }
    }

    #[test]
    fn a_generated_key_round_trips_through_openssh_text_and_signs_what_it_trusts() {
        use age::secrecy::ExposeSecret;
        let key = SigningKey::generate("offsite@host-a");
        let text = key.to_openssh();
        assert!(text
            .expose_secret()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        let again = SigningKey::from_openssh(text.expose_secret(), "key").unwrap();
        assert_eq!(again.public_line(), key.public_line());
        assert!(key.public_line().starts_with("ssh-ed25519 AAAA"));
        assert!(key.public_line().ends_with(" offsite@host-a"));
        let sig = key.sign(b"manifest bytes");
        assert!(sig.starts_with("-----BEGIN SSH SIGNATURE-----\n"), "{sig}");
        assert_eq!(
            trusting(&key).verify(b"manifest bytes", Some(&sig), now()),
            Verdict::Trusted {
                signer: "offsite@host-a".into(),
                fingerprint: key.fingerprint(),
            }
        );
        assert!(key.fingerprint().starts_with("SHA256:"));
    }

    #[test]
    fn debug_and_errors_never_show_key_material() {
        use age::secrecy::ExposeSecret;
        let key = SigningKey::generate("c");
        let text = key.to_openssh().expose_secret().to_string();
        let dbg = format!("{key:?}");
        for line in text.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!dbg.contains(line), "{dbg}");
        }
        assert!(dbg.contains("SHA256:"), "{dbg}");
        // A private key pasted where public lines belong: refused, never echoed.
        let secret_line = text.lines().nth(2).unwrap().to_string();
        let e = TrustedSigners::parse(
            std::slice::from_ref(&text),
            "policy.toml [signing] trusted",
            None,
        )
        .unwrap_err();
        assert!(
            e.0.contains("policy.toml [signing] trusted, entry 1"),
            "{e}"
        );
        assert!(e.0.contains("PRIVATE key (not shown)"), "{e}");
        assert!(!e.0.contains(&secret_line), "{e}");
        let file = format!("# keys\nhost-a {}\n{text}", key.public_line());
        let e = TrustedSigners::parse(&[], "t", Some((&file, "/etc/offsite/allowed_signers")))
            .unwrap_err();
        assert!(
            e.0.starts_with("/etc/offsite/allowed_signers, line 3: this is a PRIVATE key"),
            "{e}"
        );
        // Only the body of the key, without its armor, is caught too.
        let e = TrustedSigners::parse(&[], "t", Some((&secret_line, "f"))).unwrap_err();
        assert!(
            e.0.contains("f, line 1") && !e.0.contains(&secret_line[20..]),
            "{e}"
        );
        let body_only = text.lines().nth(1).unwrap();
        let e = TrustedSigners::parse(&[body_only.to_string()], "t", None).unwrap_err();
        assert!(
            e.0.contains("PRIVATE key") && !e.0.contains(body_only),
            "{e}"
        );
        let e = TrustedSigners::parse(&["AGE-SECRET-KEY-1QQQ".into()], "t", None).unwrap_err();
        assert!(e.0.contains("PRIVATE key") && !e.0.contains("1QQQ"), "{e}");
    }

    #[test]
    fn a_passphrase_protected_key_is_refused_with_what_to_do() {
        let e = SigningKey::from_openssh(ENCRYPTED, "/etc/offsite/signing.key").unwrap_err();
        assert!(
            e.0.starts_with("/etc/offsite/signing.key is protected by a passphrase"),
            "{e}"
        );
        assert!(e.0.contains("offsite keygen --signing -o FILE"), "{e}");
        assert!(!e.0.contains("b3BlbnNzaC1rZXkt"), "{e}");
    }

    #[test]
    fn other_keys_and_texts_are_refused_as_signing_keys() {
        let e = SigningKey::from_openssh(ECDSA, "k").unwrap_err();
        assert!(e.0.contains("Ed25519 keys only"), "{e}");
        assert!(!e.0.contains("b3BlbnNzaC1rZXkt"), "{e}");
        let key = SigningKey::generate("c");
        let e = SigningKey::from_openssh(&key.public_line(), "k").unwrap_err();
        assert!(e.0.contains("k holds a public key"), "{e}");
        let e = SigningKey::from_openssh("AGE-SECRET-KEY-1ABCDEF", "k").unwrap_err();
        assert!(
            e.0.contains("age identity") && !e.0.contains("ABCDEF"),
            "{e}"
        );
        let e =
            SigningKey::from_openssh("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n", "k").unwrap_err();
        assert!(
            e.0.contains("PEM key of another format") && !e.0.contains("MIIE"),
            "{e}"
        );
        let e = SigningKey::from_openssh(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
            "k",
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("k is not a readable OpenSSH private key"),
            "{e}"
        );
        assert!(SigningKey::from_openssh("", "k").is_err());
    }

    #[test]
    fn unsigned_and_malformed_signatures_are_untrusted() {
        let key = SigningKey::generate("a");
        let t = trusting(&key);
        assert_eq!(
            untrusted(t.verify(b"x", None, now())),
            UntrustedReason::Unsigned
        );
        assert_eq!(
            untrusted(t.verify(b"x", Some(" \n"), now())),
            UntrustedReason::Unsigned
        );
        let r = untrusted(t.verify(b"x", Some("garbage"), now()));
        assert!(matches!(r, UntrustedReason::Malformed { .. }), "{r:?}");
        assert!(r.to_string().starts_with("malformed signature"), "{r}");
        // Armor intact, body cut short.
        let sig = key.sign(b"x");
        let cut: String = sig
            .lines()
            .take(2)
            .chain(sig.lines().last())
            .collect::<Vec<_>>()
            .join("\n");
        let r = untrusted(t.verify(b"x", Some(&cut), now()));
        assert!(matches!(r, UntrustedReason::Malformed { .. }), "{r:?}");
    }

    #[test]
    fn a_signature_in_another_namespace_is_named() {
        let key = SigningKey::generate("a");
        let sig = key
            .key
            .sign("file", HashAlg::Sha512, b"x")
            .unwrap()
            .to_pem(LineEnding::LF)
            .unwrap();
        let r = untrusted(trusting(&key).verify(b"x", Some(&sig), now()));
        assert_eq!(
            r,
            UntrustedReason::WrongNamespace {
                namespace: "file".into()
            }
        );
        assert_eq!(
            r.to_string(),
            "signed in the namespace \"file\", not \"offsite-manifest\""
        );
    }

    #[test]
    fn a_key_not_trusted_is_named_by_its_fingerprint() {
        let key = SigningKey::generate("a");
        let other = SigningKey::generate("b");
        let r = untrusted(trusting(&other).verify(b"x", Some(&key.sign(b"x")), now()));
        assert_eq!(
            r,
            UntrustedReason::KeyNotTrusted {
                fingerprint: key.fingerprint()
            }
        );
        assert!(r.to_string().contains(&key.fingerprint()), "{r}");
        // No trusted signers at all: nothing verifies (the caller decides what empty means).
        let none = TrustedSigners::default();
        assert!(none.is_empty());
        assert!(matches!(
            untrusted(none.verify(b"x", Some(&key.sign(b"x")), now())),
            UntrustedReason::KeyNotTrusted { .. }
        ));
    }

    #[test]
    fn a_signature_over_one_byte_string_does_not_verify_another() {
        let key = SigningKey::generate("host-a");
        let t = trusting(&key);
        let first = key.sign(b"{\"name\":\"a.tar.gz\"}");
        assert!(matches!(
            t.verify(b"{\"name\":\"a.tar.gz\"}", Some(&first), now()),
            Verdict::Trusted { .. }
        ));
        let r = untrusted(t.verify(b"{\"name\":\"b.tar.gz\"}", Some(&first), now()));
        assert_eq!(
            r,
            UntrustedReason::BadSignature {
                signer: "host-a".into(),
                fingerprint: key.fingerprint()
            }
        );
        assert!(r.to_string().contains("does not match"), "{r}");
        assert!(matches!(
            untrusted(t.verify(b"{\"name\":\"a.tar.gz\"} ", Some(&first), now())),
            UntrustedReason::BadSignature { .. }
        ));
        assert!(matches!(
            untrusted(t.verify(b"", Some(&first), now())),
            UntrustedReason::BadSignature { .. }
        ));
    }

    #[test]
    fn allowed_signers_validity_bounds_are_inclusive_as_ssh_keygen_counts_them() {
        let key = SigningKey::generate("c");
        let file = format!(
            "# retired host\nhost-a,backup@host-a valid-after=\"20260101Z\",valid-before=\"20261126020000Z\" ssh-ed25519 {} retired\n",
            body(&key)
        );
        let t = TrustedSigners::parse(&[], "t", Some((&file, "allowed_signers"))).unwrap();
        assert_eq!(t.len(), 1);
        let sig = key.sign(b"m");
        let trusted = Verdict::Trusted {
            signer: "host-a,backup@host-a".into(),
            fingerprint: key.fingerprint(),
        };
        assert_eq!(
            t.verify(b"m", Some(&sig), at("2026-11-26T02:00:00Z")),
            trusted
        );
        assert_eq!(
            t.verify(b"m", Some(&sig), at("2026-01-01T00:00:00Z")),
            trusted
        );
        let r = untrusted(t.verify(b"m", Some(&sig), at("2026-11-26T02:00:01Z")));
        assert!(
            matches!(r, UntrustedReason::OutsideValidity { .. }),
            "{r:?}"
        );
        assert_eq!(
            r.to_string(),
            format!(
                "signed by host-a,backup@host-a ({}), whose key is not trusted at 2026-11-26T02:00:01Z (valid from 2026-01-01T00:00:00Z to 2026-11-26T02:00:00Z)",
                key.fingerprint()
            )
        );
        let r = untrusted(t.verify(b"m", Some(&sig), at("2025-12-31T23:59:59Z")));
        assert!(
            matches!(r, UntrustedReason::OutsideValidity { .. }),
            "{r:?}"
        );
        // A bad signature is reported as such even outside the window.
        let r = untrusted(t.verify(b"other", Some(&sig), at("2027-01-01T00:00:00Z")));
        assert!(matches!(r, UntrustedReason::BadSignature { .. }), "{r:?}");
    }

    #[test]
    fn a_rotated_key_listed_twice_is_trusted_in_either_window() {
        let key = SigningKey::generate("c");
        let file = format!(
            "host-a valid-before=\"202603010000Z\" ssh-ed25519 {b}\nhost-a-again valid-after=\"20260601Z\" ssh-ed25519 {b}\n",
            b = body(&key)
        );
        let t = TrustedSigners::parse(&[], "t", Some((&file, "f"))).unwrap();
        let sig = key.sign(b"m");
        assert!(
            matches!(t.verify(b"m", Some(&sig), at("2026-02-01T00:00:00Z")), Verdict::Trusted { signer, .. } if signer == "host-a")
        );
        assert!(
            matches!(t.verify(b"m", Some(&sig), at("2026-07-01T00:00:00Z")), Verdict::Trusted { signer, .. } if signer == "host-a-again")
        );
        assert!(matches!(
            untrusted(t.verify(b"m", Some(&sig), at("2026-04-01T00:00:00Z"))),
            UntrustedReason::OutsideValidity { .. }
        ));
    }

    #[test]
    fn namespaces_restrict_a_key_as_ssh_keygen_does() {
        let key = SigningKey::generate("c");
        let sig = key.sign(b"m");
        let with = |opts: &str| {
            let file = format!("host-a {opts} ssh-ed25519 {}\n", body(&key));
            TrustedSigners::parse(&[], "t", Some((&file, "f"))).unwrap()
        };
        for ok in [
            "namespaces=\"offsite-manifest\"",
            "namespaces=\"git,offsite-*\"",
            "namespaces=\"*\",valid-after=\"20200101\"",
        ] {
            assert!(
                matches!(
                    with(ok).verify(b"m", Some(&sig), now()),
                    Verdict::Trusted { .. }
                ),
                "{ok}"
            );
        }
        for no in ["namespaces=\"git\"", "namespaces=\"*,!offsite-manifest\""] {
            assert!(
                matches!(
                    untrusted(with(no).verify(b"m", Some(&sig), now())),
                    UntrustedReason::KeyNotTrusted { .. }
                ),
                "{no}"
            );
        }
    }

    #[test]
    fn a_public_line_without_a_comment_is_named_by_its_fingerprint() {
        let key = SigningKey::generate("");
        let line = format!("ssh-ed25519 {}", body(&key));
        let t = TrustedSigners::parse(&[line], "t", None).unwrap();
        assert_eq!(
            t.verify(b"m", Some(&key.sign(b"m")), now()),
            Verdict::Trusted {
                signer: key.fingerprint(),
                fingerprint: key.fingerprint()
            }
        );
    }

    #[test]
    fn bad_trusted_lines_name_their_origin_and_line() {
        let key = SigningKey::generate("c");
        let b = body(&key);
        let cases: &[(&str, &str)] = &[
            ("host-a ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "does not decode"),
            (
                "host-a cert-authority ssh-ed25519 KEY",
                "cert-authority is not supported",
            ),
            (
                "host-a valid-after=\"2026\" ssh-ed25519 KEY",
                "valid-after is not a time",
            ),
            (
                "host-a valid-before=\"20261340Z\" ssh-ed25519 KEY",
                "valid-before is not a time",
            ),
            ("host-a no-touch-required ssh-ed25519 KEY", "unknown option"),
            ("ssh-ed25519 KEY", "no principals"),
            ("host-a", "no key"),
            (
                "host-a ssh-rsa AAAAB3NzaC1yc2E",
                "a `ssh-rsa` key; offsite trusts ssh-ed25519 keys only",
            ),
        ];
        for (line, want) in cases {
            let text = format!(
                "# ok\n\nhost-b ssh-ed25519 {b}\n{}\n",
                line.replace("KEY", &b)
            );
            let e = TrustedSigners::parse(&[], "t", Some((&text, "/etc/offsite/allowed_signers")))
                .unwrap_err();
            assert!(
                e.0.starts_with("/etc/offsite/allowed_signers, line 4: "),
                "{line}: {e}"
            );
            assert!(e.0.contains(want), "{line}: {e}");
        }
        let e = TrustedSigners::parse(
            &[key.public_line(), ECDSA_PUBLIC.into()],
            "policy.toml [signing] trusted",
            None,
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("policy.toml [signing] trusted, entry 2: a `ecdsa-sha2-nistp256` key"),
            "{e}"
        );
        for bad in ["", "ssh-ed25519", "ssh-ed25519 not-base64!"] {
            let e = TrustedSigners::parse(&[bad.into()], "trusted", None).unwrap_err();
            assert!(e.0.starts_with("trusted, entry 1: "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn times_read_as_ssh_keygen_reads_them() {
        assert_eq!(parse_time("20261126Z"), Some(at("2026-11-26T00:00:00Z")));
        assert_eq!(
            parse_time("202611260230Z"),
            Some(at("2026-11-26T02:30:00Z"))
        );
        assert_eq!(
            parse_time("20261126023015Z"),
            Some(at("2026-11-26T02:30:15Z"))
        );
        let local = parse_time("20261126").unwrap();
        assert_eq!(
            local.with_timezone(&Local).naive_local(),
            NaiveDate::from_ymd_opt(2026, 11, 26)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
        );
        for bad in [
            "",
            "Z",
            "2026112",
            "2026-11-26",
            "20261126T0000Z",
            "202611262500Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_never_panics(
            text in "(host-a |\\* )?(namespaces=\"[a-z*,!-]{0,12}\" |valid-after=\"[0-9Z]{0,15}\" |cert-authority )?(ssh-ed25519 |ssh-rsa )?(AAAAC3NzaC1lZDI1NTE5AAAAI)?[A-Za-z0-9+/=\"\n ,#-]{0,80}",
        ) {
            let _ = TrustedSigners::parse(std::slice::from_ref(&text), "t", Some((&text, "f")));
            let _ = SigningKey::from_openssh(&text, "k");
            let t = TrustedSigners::default();
            let _ = t.verify(text.as_bytes(), Some(&text), now());
            let armored = format!("-----BEGIN SSH SIGNATURE-----\n{text}\n-----END SSH SIGNATURE-----\n");
            let _ = t.verify(b"x", Some(&armored), now());
        }
    }
}
