//! The errors the engine hands back that say whose move it is: a [`UsageError`] is the user's
//! to fix (what they wrote: a URL, a name, an option), anything else is the world's (a store
//! that cannot be reached, a copy that is damaged). The CLI maps them to exit codes; the engine
//! never prints.

/// A usage or configuration error: what the user wrote cannot work (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for a usage error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// A store's or snapshot provider's error as the command's: what the user wrote (a URL, an id,
/// a region, an option the store cannot honour: `InvalidConfig`, `Unsupported`) is a usage error
/// (exit 2); a store that cannot be reached or refuses the credentials is a failure (exit 1).
pub fn store_error(e: offsite_storage::Error) -> anyhow::Error {
    use offsite_storage::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidConfig | ErrorKind::Unsupported => usage(e.to_string()),
        _ => anyhow::anyhow!("{e}"),
    }
}
