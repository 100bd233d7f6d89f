//! The one error type every store returns.
//!
//! An error names what happened ([`ErrorKind`]), where (provider, operation, key), and whether
//! trying again can help ([`Error::is_retryable`]). The retry wrapper in [`crate::retry`] reads
//! only that flag; adapters decide it once, where they map their SDK's errors.

use std::fmt;

/// What went wrong, independent of the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object, bucket or container does not exist.
    NotFound,
    /// A create-only write found the key already taken.
    AlreadyExists,
    /// A conditional request's precondition did not hold.
    PreconditionFailed,
    /// The credentials are valid but not allowed to do this.
    PermissionDenied,
    /// No usable credentials, or they expired.
    Unauthenticated,
    /// The provider asked us to slow down.
    RateLimited,
    /// The object is under a retention lock or legal hold and cannot be changed or deleted.
    Locked,
    /// This store cannot do this operation at all (see [`crate::Capabilities`]).
    Unsupported,
    /// The object is in an archive tier (S3 Glacier, Azure Archive) and must be restored or
    /// rehydrated before it can be read.
    Archived,
    /// The store's configuration or URL is wrong; retrying cannot help.
    InvalidConfig,
    /// The data read back does not match what was written or recorded.
    Corrupt,
    /// A network or server failure that may pass.
    Transient,
    /// Anything else, including local I/O errors such as a full disk.
    Other,
}

impl ErrorKind {
    /// Whether an error of this kind is worth retrying by default.
    pub fn default_retryable(self) -> bool {
        matches!(self, ErrorKind::RateLimited | ErrorKind::Transient)
    }

    /// A short lowercase name, stable for `--json` output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::AlreadyExists => "already-exists",
            ErrorKind::PreconditionFailed => "precondition-failed",
            ErrorKind::PermissionDenied => "permission-denied",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::RateLimited => "rate-limited",
            ErrorKind::Locked => "locked",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Archived => "archived",
            ErrorKind::InvalidConfig => "invalid-config",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Transient => "transient",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation that failed, for messages and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Opening a store from its URL.
    Open,
    /// [`crate::Storage::head`].
    Head,
    /// [`crate::Storage::get`].
    Get,
    /// [`crate::Storage::writer`] and the writer's methods.
    Put,
    /// [`crate::Storage::list`].
    List,
    /// [`crate::Storage::delete`].
    Delete,
    /// [`crate::Storage::copy`].
    Copy,
    /// [`crate::Storage::create_location`].
    Create,
    /// [`crate::Storage::list_versions`] and [`crate::Storage::delete_version`].
    Versions,
    /// [`crate::Storage::extend_retention`].
    Retention,
    /// [`crate::Storage::list_uploads`].
    Uploads,
    /// [`crate::Snapshots::create`] and [`crate::Snapshots::create_group`].
    SnapshotCreate,
    /// [`crate::Snapshots::get`] and [`crate::Snapshots::list`].
    SnapshotList,
    /// [`crate::Snapshots::copy`].
    SnapshotCopy,
    /// [`crate::Snapshots::delete`].
    SnapshotDelete,
    /// [`crate::SnapshotsExt::wait`] and [`crate::Snapshots::poll`].
    SnapshotWait,
    /// [`crate::Snapshots::restore`] and [`crate::Snapshots::volumes`].
    Volume,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Open => "open",
            Operation::Head => "head",
            Operation::Get => "get",
            Operation::Put => "put",
            Operation::List => "list",
            Operation::Delete => "delete",
            Operation::Copy => "copy",
            Operation::Create => "create",
            Operation::Versions => "versions",
            Operation::Retention => "retention",
            Operation::Uploads => "uploads",
            Operation::SnapshotCreate => "snapshot create",
            Operation::SnapshotList => "snapshot list",
            Operation::SnapshotCopy => "snapshot copy",
            Operation::SnapshotDelete => "snapshot delete",
            Operation::SnapshotWait => "snapshot wait",
            Operation::Volume => "volume",
        })
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a store: kind, provider, operation, key, a message, and what to try next.
///
/// Messages never carry secrets: adapters build them from names (bucket, key, region), never
/// from credentials or signed URLs. `Debug` shows the same fields without the SDK's error,
/// whose own `Debug` can hold a signed request URL.
pub struct Error {
    kind: ErrorKind,
    provider: &'static str,
    operation: Operation,
    key: Option<String>,
    message: String,
    // `hint` and `code` are boxed, not `String`s, to keep `Error` under clippy's
    // `result_large_err` bound (128 bytes): every `Result` in the crate carries one.
    hint: Option<Box<str>>,
    code: Option<Box<str>>,
    retryable: bool,
    source: Option<Source>,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("provider", &self.provider)
            .field("operation", &self.operation)
            .field("key", &self.key)
            .field("message", &self.message)
            .field("hint", &self.hint)
            .field("code", &self.code)
            .field("retryable", &self.retryable)
            .field("has_cause", &self.source.is_some())
            .finish()
    }
}

/// Result with the storage [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error of an `if_not_exists` write whose key is taken (every store says it alike).
    pub fn already_exists(provider: &'static str, key: &str) -> Error {
        Error::new(
            ErrorKind::AlreadyExists,
            provider,
            Operation::Put,
            "an object with this key already exists",
        )
        .with_key(key)
    }

    /// A new error; retryable when the kind is ([`ErrorKind::default_retryable`]).
    pub fn new(
        kind: ErrorKind,
        provider: &'static str,
        operation: Operation,
        message: impl Into<String>,
    ) -> Self {
        Error {
            kind,
            provider,
            operation,
            key: None,
            message: message.into(),
            hint: None,
            code: None,
            retryable: kind.default_retryable(),
            source: None,
        }
    }

    /// Names the key (or bucket path) the operation was on.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds the guidance sentence: what the user should try next.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into().into_boxed_str());
        self
    }

    /// Records the provider's own error code (S3 `Code`, Azure `x-ms-error-code`, GCS
    /// `reason`), so that an adapter decides between two answers of one kind by the code, never
    /// by the message text. `Display` does not show it.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into().into_boxed_str());
        self
    }

    /// Overrides whether retrying can help.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Maps a local I/O error to a kind (used by the local store and the spool).
    pub fn from_io(
        err: std::io::Error,
        provider: &'static str,
        operation: Operation,
        what: impl fmt::Display,
    ) -> Self {
        use std::io::ErrorKind as Io;
        let (kind, hint) = match err.kind() {
            Io::NotFound => (ErrorKind::NotFound, None),
            Io::AlreadyExists => (ErrorKind::AlreadyExists, None),
            Io::PermissionDenied => (
                ErrorKind::PermissionDenied,
                Some("check the directory's owner and mode, or run as a user that may write there"),
            ),
            Io::StorageFull => (
                ErrorKind::Other,
                Some("the disk is full: free space or choose another destination; nothing partial was kept"),
            ),
            Io::Interrupted | Io::TimedOut | Io::WouldBlock => (ErrorKind::Transient, None),
            Io::ReadOnlyFilesystem => (
                ErrorKind::PermissionDenied,
                Some("the file system is mounted read-only: choose a writable destination"),
            ),
            _ => (ErrorKind::Other, None),
        };
        let mut e = Error::new(kind, provider, operation, format!("{what}: {err}"));
        if let Some(h) = hint {
            e = e.with_hint(h);
        }
        e.with_source(err)
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// Which provider reported it (`file`, `memory`, `s3`, `gcs`, `azure`).
    pub fn provider(&self) -> &'static str {
        self.provider
    }
    /// Which operation failed.
    pub fn operation(&self) -> Operation {
        self.operation
    }
    /// The key it was about, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    /// The guidance sentence, if any.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
    /// The message without provider, key or hint.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// The provider's error code, when the adapter recorded one ([`Error::with_code`]).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }
    /// Whether trying the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
    /// Shorthand for `kind() == NotFound`.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A location that cannot be opened: the message names the URL already, and
        // "url open" would be jargon. Everything else says where (provider, operation, key);
        // the kind is for `--json` and code, the message says it in words.
        if self.operation != Operation::Open {
            write!(f, "{} {}", self.provider, self.operation)?;
            if let Some(key) = &self.key {
                write!(f, " {key:?}")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// `source()` is `None` on purpose: the adapter's mapping already put what the SDK said into
/// the message, once and stripped of URLs. Exposing the SDK's error as the source would make
/// every `{:#}` and anyhow chain print it a second time, raw, and an SDK chain can end in a
/// request URL that carries a SAS token. [`Error::cause`] gives it to code that must look.
impl std::error::Error for Error {}

impl Error {
    /// The SDK or I/O error this one was mapped from, for code that inspects it (never for
    /// messages: see the `std::error::Error` impl).
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_kept_for_code_but_never_printed() {
        let sdk = std::io::Error::other(
            "request to https://acct.blob.core.windows.net/c/k?sv=2025&sig=SECRETSIG failed",
        );
        let e = Error::new(
            ErrorKind::Transient,
            "azure",
            Operation::Get,
            "cannot connect",
        )
        .with_key("k")
        .with_source(sdk);
        assert!(e.cause().unwrap().to_string().contains("SECRETSIG"));
        let printed = [
            format!("{e}"),
            format!("{e:?}"),
            format!("{e:#?}"),
            anyhow_like_chain(&e),
        ];
        for p in printed {
            assert!(!p.contains("SECRETSIG"), "{p}");
            assert!(p.contains("cannot connect"), "{p}");
        }
        assert_eq!(format!("{e}"), "azure get \"k\": cannot connect");
    }

    /// What anyhow's `{:#}` prints: the error and each `source()` after it.
    fn anyhow_like_chain(e: &(dyn std::error::Error + 'static)) -> String {
        let mut out = e.to_string();
        let mut src = e.source();
        while let Some(s) = src {
            out.push_str(&format!(": {s}"));
            src = s.source();
        }
        out
    }
}
