//! The blocking registry client: pull (resolve, manifests, blobs), push
//! (blobs, mounts, manifests) and login/logout.

use std::io::{self, Read, Write};
use std::time::Duration;

use oci_spec::image::{Descriptor, MediaType, Platform};
use ureq::http::Method;

use crate::auth::{self, AuthSource};
use crate::digest::{Digest, Hasher, HashingWriter};
use crate::error::{Error, Result};
use crate::manifest::{self, Kind};
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API, Reference};
use crate::transport::{Req, Transport, TransportConfig, check};

/// Manifests larger than this are refused (the distribution spec suggests 4 MiB).
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// How the client connects and authenticates.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Registries (`host[:port]`) reached over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Mirrors: a registry name as written in references (`docker.io`) and
    /// the `host[:port]` that serves its API instead.
    pub mirrors: Vec<(String, String)>,
    /// Where credentials come from.
    pub auth: AuthSource,
    /// Tries per request (and per streamed blob) before giving up; at least 1.
    pub attempts: u32,
    /// First backoff delay; it doubles after each failed try.
    pub backoff_base: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Blobs up to this size are uploaded in one PUT; larger ones in PATCH chunks of this size.
    pub chunk_size: usize,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure_registries: Vec::new(),
            mirrors: Vec::new(),
            auth: AuthSource::DockerConfigDefault,
            attempts: 4,
            backoff_base: Duration::from_millis(200),
            connect_timeout: Duration::from_secs(5),
            chunk_size: 16 * 1024 * 1024,
            user_agent: concat!("strata/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// A manifest as stored in the registry.
#[derive(Clone, Debug)]
pub struct RawManifest {
    /// Its digest (verified against the bytes).
    pub digest: Digest,
    /// Its media type.
    pub media_type: MediaType,
    /// The exact bytes.
    pub bytes: Vec<u8>,
}

/// An image manifest chosen for a platform, with what it points to.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Digest of the image manifest.
    pub manifest_digest: Digest,
    /// The image manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// Its media type (OCI or Docker v2 schema 2).
    pub media_type: MediaType,
    /// Digest of the index or manifest list it was selected from, if any.
    pub index_digest: Option<Digest>,
    /// The image config blob (its digest checked to be a sha256).
    pub config: Descriptor,
    /// The layer blobs, base first (their digests checked to be sha256s).
    pub layers: Vec<Descriptor>,
}

/// A blocking client for the OCI distribution API. It is `Sync`: share it
/// between threads to transfer blobs in parallel.
pub struct Client {
    pub(crate) transport: Transport,
    pub(crate) config: ClientConfig,
}

/// `repository:<repo>:<actions>`.
fn scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}

/// The API host for a registry name given to `login`.
fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB || registry == "index.docker.io" {
        DOCKER_HUB_API
    } else {
        registry
    }
}

impl Client {
    /// A client with this configuration.
    pub fn new(config: ClientConfig) -> Client {
        let transport = Transport::new(TransportConfig {
            insecure_registries: config.insecure_registries.clone(),
            auth: config.auth.clone(),
            attempts: config.attempts.max(1),
            backoff_base: config.backoff_base,
            connect_timeout: config.connect_timeout,
            user_agent: config.user_agent.clone(),
        });
        Client { transport, config }
    }

    /// The `host[:port]` serving `reference`'s API and the registry name
    /// its credentials and messages go by: a configured mirror's (for both,
    /// so a registry's credentials never go to its mirror), else its own.
    fn endpoint<'a>(&'a self, reference: &'a Reference) -> (&'a str, &'a str) {
        match self
            .config
            .mirrors
            .iter()
            .find(|(registry, _)| registry == reference.registry())
        {
            Some((_, mirror)) => (mirror, mirror),
            None => (reference.api_host(), reference.registry()),
        }
    }

    fn req<'a>(
        &'a self,
        method: Method,
        reference: &'a Reference,
        path: String,
        what: String,
    ) -> Req<'a> {
        Req::new(
            method,
            self.endpoint(reference).0,
            self.endpoint(reference).1,
            format!("/v2/{}/{path}", reference.repository()),
            what,
        )
    }

    /// Fetch the manifest (or index) `reference` names, checking its digest
    /// against the pinned digest or the registry's `Docker-Content-Digest`.
    pub fn fetch_manifest_raw(&self, reference: &Reference) -> Result<RawManifest> {
        let what = format!("manifest {reference}");
        let req = self
            .req(
                Method::GET,
                reference,
                format!("manifests/{}", reference.manifest_ref()),
                what.clone(),
            )
            .header("accept", manifest::accept_manifests())
            .scope(scope(reference.repository(), "pull"));
        let mut resp = check(self.transport.send(&req)?, &what)?;
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v.trim()).ok());
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .map_err(|e| Error::Unreachable {
                host: self.endpoint(reference).0.to_string(),
                during: what.clone(),
                reason: format!("connection lost while reading: {e}"),
            })?;
        let digest = Digest::of(&bytes);
        if let Some(expected) = reference.digest().or(header_digest.as_ref())
            && *expected != digest
        {
            return Err(Error::DigestMismatch {
                what,
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        let (media_type, _) =
            manifest::classify(&reference.to_string(), content_type.as_deref(), &bytes)?;
        Ok(RawManifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// Resolve `reference` to the image manifest for `platform`, going
    /// through an index or manifest list when there is one.
    pub fn resolve(&self, reference: &Reference, platform: &Platform) -> Result<Resolved> {
        let top = self.fetch_manifest_raw(reference)?;
        let name = reference.to_string();
        let (_, kind) = manifest::classify(&name, Some(top.media_type.as_ref()), &top.bytes)?;
        let (image, index_digest) = match kind {
            Kind::Image => (top, None),
            Kind::Index => {
                let index: manifest::Index = parse_json(&name, &top.bytes)?;
                let chosen = manifest::select(&name, &index, platform)?;
                let pinned = reference.with_digest(Digest::try_from(chosen.digest())?);
                let image = self.fetch_manifest_raw(&pinned)?;
                if image.bytes.len() as u64 != chosen.size() {
                    return Err(Error::SizeMismatch {
                        what: format!("manifest {pinned}"),
                        expected: chosen.size(),
                        actual: image.bytes.len() as u64,
                    });
                }
                (image, Some(top.digest))
            }
        };
        let (media_type, kind) =
            manifest::classify(&name, Some(image.media_type.as_ref()), &image.bytes)?;
        if kind != Kind::Image {
            return Err(Error::InvalidManifest {
                reference: format!("{name}@{}", image.digest),
                reason: "an index entry points to another index".to_string(),
            });
        }
        let parsed: manifest::ImageManifest = parse_json(&name, &image.bytes)?;
        for blob in std::iter::once(&parsed.config).chain(&parsed.layers) {
            Digest::try_from(blob.digest())?;
        }
        Ok(Resolved {
            manifest_digest: image.digest,
            manifest_bytes: image.bytes,
            media_type,
            index_digest,
            config: parsed.config,
            layers: parsed.layers,
        })
    }

    /// Stream a blob into `out`, verifying its size and sha256. Data is
    /// written as it arrives, so on error the caller must discard what was
    /// written. A connection lost mid-transfer resumes with a Range request.
    pub fn fetch_blob(
        &self,
        repo: &Reference,
        blob: &Descriptor,
        out: &mut dyn Write,
    ) -> Result<()> {
        let expected = Digest::try_from(blob.digest())?;
        let what = format!("blob {expected} in {}", repo.name());
        let mut hashing = HashingWriter::new(out);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let offset = hashing.written();
            let mut req = self
                .req(Method::GET, repo, format!("blobs/{expected}"), what.clone())
                .scope(scope(repo.repository(), "pull"));
            if offset > 0 {
                req = req.header("range", format!("bytes={offset}-"));
            }
            let resp = check(self.transport.send(&req)?, &what)?;
            // A server that ignores Range resends from the start.
            let skip = if offset > 0 && resp.status().as_u16() != 206 {
                offset
            } else {
                0
            };
            let mut body = resp.into_body().into_reader();
            match copy_body(&mut body, &mut hashing, skip, blob.size()) {
                Ok(()) => break,
                Err(CopyError::Write(e)) => {
                    return Err(Error::Io {
                        what: format!("writing {what}"),
                        source: e,
                    });
                }
                Err(CopyError::Read(e)) => {
                    if attempt >= self.config.attempts.max(1) {
                        return Err(Error::Unreachable {
                            host: self.endpoint(repo).0.to_string(),
                            during: what.clone(),
                            reason: format!("connection lost while reading: {e}"),
                        });
                    }
                    std::thread::sleep(self.config.backoff_base * 2u32.saturating_pow(attempt - 1));
                }
            }
        }
        let (digest, size) = hashing.finish();
        if size != blob.size() {
            return Err(Error::SizeMismatch {
                what,
                expected: blob.size(),
                actual: size,
            });
        }
        if digest != expected {
            return Err(Error::DigestMismatch {
                what,
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        Ok(())
    }

    /// Whether the repository already has this blob (HEAD).
    pub fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool> {
        let what = format!("blob {digest} in {}", repo.name());
        let req = self
            .req(Method::HEAD, repo, format!("blobs/{digest}"), what.clone())
            .scope(scope(repo.repository(), "pull,push"));
        let resp = self.transport.send(&req)?;
        if resp.status().as_u16() == 404 {
            return Ok(false);
        }
        check(resp, &what).map(|_| true)
    }

    /// Ask the registry to link a blob from `from_repo` (same registry) into
    /// `repo`; false when it could not (the blob must then be uploaded).
    pub fn mount_blob(&self, repo: &Reference, from_repo: &str, digest: &Digest) -> Result<bool> {
        let what = format!(
            "mounting blob {digest} from {from_repo} into {}",
            repo.name()
        );
        let query =
            crate::transport::encode_query(&[("mount", digest.as_str()), ("from", from_repo)]);
        let req = self
            .req(
                Method::POST,
                repo,
                format!("blobs/uploads/?{query}"),
                what.clone(),
            )
            .header("content-length", "0")
            .scope(scope(repo.repository(), "pull,push"))
            .scope(scope(from_repo, "pull"));
        let resp = check(self.transport.send(&req)?, &what)?;
        if resp.status().as_u16() == 201 {
            return Ok(true);
        }
        // 202: the registry opened an upload session instead; close it.
        if let Some(location) = location(&resp) {
            let cancel = Req::new(
                Method::DELETE,
                self.endpoint(repo).0,
                self.endpoint(repo).1,
                location,
                what,
            )
            .scope(scope(repo.repository(), "pull,push"));
            // Best effort: an abandoned session is garbage-collected by the registry anyway.
            let _ = self.transport.send(&cancel);
        }
        Ok(false)
    }

    fn start_upload(&self, repo: &Reference, what: &str) -> Result<String> {
        let req = self
            .req(
                Method::POST,
                repo,
                "blobs/uploads/".to_string(),
                what.to_string(),
            )
            .header("content-length", "0")
            .scope(scope(repo.repository(), "pull,push"));
        let resp = check(self.transport.send(&req)?, what)?;
        location(&resp).ok_or_else(|| Error::Http {
            what: what.to_string(),
            status: resp.status().as_u16(),
            detail: ": no Location header for the upload session".to_string(),
        })
    }

    /// Upload a blob of `size` bytes read from `reader`: one PUT up to
    /// `chunk_size`, PATCH chunks above. The data is hashed as it is read and
    /// must match `digest` before the upload is committed.
    pub fn push_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        reader: &mut dyn Read,
    ) -> Result<()> {
        let what = format!("uploading blob {digest} to {}", repo.name());
        let mut location = self.start_upload(repo, &what)?;
        let chunk_size = self.config.chunk_size.max(1);
        let mut hasher = Hasher::new();
        let mut buf = vec![
            0u8;
            chunk_size
                .min(usize::try_from(size).unwrap_or(usize::MAX))
                .max(1)
        ];
        let mut sent: u64 = 0;
        let read_err = |e: io::Error| Error::Io {
            what: format!("reading the source of blob {digest}"),
            source: e,
        };
        let final_body: Vec<u8> = if size <= chunk_size as u64 {
            let mut data = Vec::with_capacity(buf.len());
            reader
                .take(size + 1)
                .read_to_end(&mut data)
                .map_err(read_err)?;
            hasher.update(&data);
            sent = data.len() as u64;
            data
        } else {
            loop {
                let n = read_full(reader, &mut buf).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                let chunk = &buf[..n];
                hasher.update(chunk);
                let range = format!("{sent}-{}", sent + n as u64 - 1);
                let req = Req::new(
                    Method::PATCH,
                    self.endpoint(repo).0,
                    self.endpoint(repo).1,
                    location.clone(),
                    what.clone(),
                )
                .header("content-type", "application/octet-stream")
                .header("content-range", range)
                .body(chunk)
                .scope(scope(repo.repository(), "pull,push"));
                let resp = check(self.transport.send(&req)?, &what)?;
                location = crate::client::location(&resp).unwrap_or(location);
                sent += n as u64;
                if sent > size {
                    break;
                }
            }
            Vec::new()
        };
        if sent != size {
            return Err(Error::SizeMismatch {
                what: format!("source of blob {digest}"),
                expected: size,
                actual: sent,
            });
        }
        let actual = hasher.finish();
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what: format!("source of blob {digest}"),
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let target = format!(
            "{location}{sep}{}",
            crate::transport::encode_query(&[("digest", digest.as_str())])
        );
        let req = Req::new(
            Method::PUT,
            self.endpoint(repo).0,
            self.endpoint(repo).1,
            target,
            what.clone(),
        )
        .header("content-type", "application/octet-stream")
        .body(&final_body)
        .scope(scope(repo.repository(), "pull,push"));
        check(self.transport.send(&req)?, &what)?;
        Ok(())
    }

    /// Store a manifest under the reference's tag (or digest); returns its digest.
    pub fn push_manifest(
        &self,
        reference: &Reference,
        media_type: &MediaType,
        bytes: &[u8],
    ) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let what = format!("pushing manifest {reference}");
        if let Some(pinned) = reference.digest()
            && *pinned != digest
        {
            return Err(Error::DigestMismatch {
                what: format!("manifest {reference}"),
                expected: pinned.to_string(),
                actual: digest.to_string(),
            });
        }
        let req = self
            .req(
                Method::PUT,
                reference,
                format!("manifests/{}", reference.manifest_ref()),
                what.clone(),
            )
            .header("content-type", media_type.as_ref())
            .body(bytes)
            .scope(scope(reference.repository(), "pull,push"));
        check(self.transport.send(&req)?, &what)?;
        Ok(digest)
    }

    /// Check `username`/`password` against the registry's `/v2/` endpoint and
    /// store them (base64 `auth`, file mode 0600) in the configured
    /// `config.json`. `registry` is written as in references (`docker.io`, `host:5000`).
    pub fn login(&self, registry: &str, username: &str, password: &str) -> Result<()> {
        let host = api_host(registry);
        let what = format!("login to {registry}");
        let probe = Req::new(
            Method::GET,
            host,
            registry,
            "/v2/".to_string(),
            what.clone(),
        );
        let resp = self.transport.send_unauthenticated(&probe, None)?;
        let status = resp.status().as_u16();
        if status == 401 {
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .and_then(auth::parse_challenge);
            let credential = auth::Credential {
                secret: auth::Secret::Basic {
                    username: username.to_string(),
                    password: password.to_string(),
                },
                source: format!("given to login for user {username}"),
            };
            let header = credential.basic_header().unwrap_or_default();
            let denied = |status: u16| Error::Unauthorized {
                registry: registry.to_string(),
                source_desc: credential.source.clone(),
                status,
            };
            match challenge {
                Some(auth::Challenge::Bearer { realm, service }) => {
                    self.transport.fetch_token(
                        &probe,
                        &realm,
                        service.as_deref(),
                        Some(&credential),
                    )?;
                }
                _ => {
                    let resp = self.transport.send_unauthenticated(&probe, Some(&header))?;
                    let status = resp.status().as_u16();
                    if status == 401 || status == 403 {
                        return Err(denied(status));
                    }
                    check(resp, &what)?;
                }
            }
        } else {
            check(resp, &what)?;
        }
        let path = self.config_path(registry)?;
        auth::store(&path, registry, Some((username, password)))?;
        self.transport.forget(registry);
        Ok(())
    }

    /// Remove the stored credentials for `registry`; false if there were none.
    pub fn logout(&self, registry: &str) -> Result<bool> {
        let path = self.config_path(registry)?;
        let removed = auth::store(&path, registry, None)?;
        self.transport.forget(registry);
        Ok(removed)
    }

    fn config_path(&self, registry: &str) -> Result<std::path::PathBuf> {
        self.transport.auth_source().config_path().ok_or_else(|| Error::Credentials {
            registry: registry.to_string(),
            reason: "no docker config file is configured (anonymous client, or neither DOCKER_CONFIG nor HOME set)"
                .to_string(),
        })
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(reference: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::InvalidManifest {
        reference: reference.to_string(),
        reason: e.to_string(),
    })
}

fn location(resp: &ureq::http::Response<ureq::Body>) -> Option<String> {
    resp.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Fill `buf` as far as the reader allows; returns bytes read (0 at EOF).
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copy a response body into `out`, first discarding `skip` bytes, and
/// stopping one byte past `limit` so an over-long body cannot fill the disk.
fn copy_body(
    body: &mut dyn Read,
    out: &mut HashingWriter<'_>,
    mut skip: u64,
    limit: u64,
) -> Result<(), CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        let mut data = &buf[..n];
        if skip > 0 {
            let k = (skip.min(n as u64)) as usize;
            skip -= k as u64;
            data = &data[k..];
        }
        out.write_all(data).map_err(CopyError::Write)?;
        if out.written() > limit {
            return Ok(());
        }
    }
}
