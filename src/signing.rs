//! Reading this host's signing key file: private to its owner, then parsed and checked by
//! `offsite_policies::signing` (for `push --sign-with FILE` and the policy's `[signing]
//! key-file`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::Result;
use offsite_policies::signing::SigningKey;

use crate::error::usage;

/// Reads the OpenSSH Ed25519 private key at `path`. Refuses, as usage errors (exit 2), a file
/// that is missing or unreadable, readable by group or others (with the `chmod 600` that
/// fixes it), protected by a passphrase, or not an unencrypted Ed25519 key. No message shows
/// the key.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        usage(format!(
            "cannot read the signing key {shown}: {e}; make one with `offsite keygen --signing -o {shown}`"
        ))
    })?;
    if !meta.is_file() {
        return Err(usage(format!(
            "the signing key {shown} is not a file; give the private key file `offsite keygen --signing -o FILE` wrote"
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(usage(format!(
            "the signing key {shown} is readable by group or others (mode {mode:04o}); anyone who can read it can sign archives as this host. Fix it with `chmod 600 {shown}`"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read the signing key {shown}: {e}")))?;
    SigningKey::from_openssh(&text, &format!("the signing key {shown}")).map_err(|e| usage(e.0))
}
