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
        let key = PrivateKey::from_openssh(trimmed).map_err(|e| {
            SigningError(format!(
                "{origin} is not a readable OpenSSH private key ({e}); {MAKE}"
            ))
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
            [_] => return Err(SigningError(format!(
                "{at}: a key type and its base64 are needed, such as `ssh-ed25519 AAAA... host-a`"
            ))),
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
