//! The crate's error type: every message names the reference, blob, registry or
//! file that failed, and never contains a credential.

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while talking to a registry or reading local auth state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image reference that Docker would reject.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text as given.
        reference: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A digest string that is not `sha256:<64 lowercase hex>`.
    #[error(transparent)]
    InvalidDigest(#[from] crate::digest::InvalidDigest),
    /// A platform string that is not `os/arch[/variant]`.
    #[error("invalid platform {platform:?}: expected os/arch[/variant]")]
    InvalidPlatform {
        /// The text as given.
        platform: String,
    },
    /// The registry host did not answer (DNS, refused, timeout, TLS).
    #[error("cannot reach registry {host} ({during}): {reason}")]
    Unreachable {
        /// `host[:port]` of the registry.
        host: String,
        /// The operation, e.g. `manifest 127.0.0.1:5000/app:1`.
        during: String,
        /// The transport error, one line.
        reason: String,
    },
    /// 404 for a manifest, blob or repository.
    #[error("{what} not found")]
    NotFound {
        /// The missing thing, e.g. `manifest 127.0.0.1:5000/app:1.0`.
        what: String,
    },
    /// The registry refused the credentials that were sent.
    #[error("registry {registry} refused the credentials {source_desc} (HTTP {status})")]
    Unauthorized {
        /// `host[:port]` of the registry.
        registry: String,
        /// Where the credentials came from, e.g. `from /root/.docker/config.json`.
        source_desc: String,
        /// 401 or 403.
        status: u16,
    },
    /// The registry requires credentials and none were found.
    #[error(
        "registry {registry} requires authentication and no credentials were found (tried anonymous access; run `strata login {registry}`)"
    )]
    NoCredentials {
        /// `host[:port]` of the registry.
        registry: String,
    },
    /// Content whose sha256 is not the digest it was asked for under.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The blob or manifest.
        what: String,
        /// The digest requested.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// Content whose length is not the size its descriptor announced.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob or manifest.
        what: String,
        /// Size from the descriptor.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// An index has no manifest for the requested platform.
    #[error("{reference} has no image for platform {wanted} (available: {available})")]
    PlatformNotFound {
        /// The reference that resolved to an index.
        reference: String,
        /// The requested platform.
        wanted: String,
        /// The platforms the index offers, comma separated.
        available: String,
    },
    /// A manifest that cannot be understood.
    #[error("invalid manifest for {reference}: {reason}")]
    InvalidManifest {
        /// The reference or digest being resolved.
        reference: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Any other unexpected HTTP answer.
    #[error("{what}: registry answered HTTP {status}{detail}")]
    Http {
        /// The operation, naming its target.
        what: String,
        /// HTTP status code.
        status: u16,
        /// `: <registry error text>` or empty.
        detail: String,
    },
    /// A local read or write failed (blob source, destination, config file).
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The docker config file or a credential helper misbehaved.
    #[error("credentials for {registry}: {reason}")]
    Credentials {
        /// `host[:port]` of the registry.
        registry: String,
        /// What failed (file path or helper name included, never a secret).
        reason: String,
    },
}

impl Error {
    /// Whether trying again later could succeed (unreachable host, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
