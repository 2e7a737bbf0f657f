//! HTTP to registries: scheme choice, authentication (basic and bearer
//! tokens), retries with exponential backoff, and one-line errors.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{self, Response};
use ureq::{Agent, Body};

use crate::auth::{self, AuthSource, Challenge, Credential, Secret};
use crate::error::{Error, Result};

/// Longest `Retry-After` the client is willing to wait.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// One request, described so it can be replayed for retries and auth.
pub(crate) struct Req<'a> {
    pub(crate) method: http::Method,
    /// `host[:port]` the API is served from.
    pub(crate) host: &'a str,
    /// Registry name as in references (for credential lookup and messages).
    pub(crate) registry: &'a str,
    /// Path and query (`/v2/…`), or an absolute URL from a `Location` header.
    pub(crate) target: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: &'a [u8],
    /// Token scopes, e.g. `repository:app:pull,push`.
    pub(crate) scopes: Vec<String>,
    /// What the request is for, used in error messages.
    pub(crate) what: String,
}

impl<'a> Req<'a> {
    pub(crate) fn new(
        method: http::Method,
        host: &'a str,
        registry: &'a str,
        target: String,
        what: String,
    ) -> Self {
        Req {
            method,
            host,
            registry,
            target,
            headers: Vec::new(),
            body: &[],
            scopes: Vec::new(),
            what,
        }
    }
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub(crate) fn body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }
    pub(crate) fn scope(mut self, scope: String) -> Self {
        self.scopes.push(scope);
        self
    }
}

/// Connection settings shared by every request.
pub(crate) struct TransportConfig {
    pub(crate) insecure_registries: Vec<String>,
    pub(crate) auth: AuthSource,
    pub(crate) attempts: u32,
    pub(crate) backoff_base: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) user_agent: String,
}

pub(crate) struct Transport {
    agent: Agent,
    config: TransportConfig,
    /// `Authorization` values by host and scope set.
    authorizations: Mutex<HashMap<(String, String), String>>,
    /// Credentials by registry, looked up once.
    credentials: Mutex<HashMap<String, Option<Credential>>>,
}

impl Transport {
    pub(crate) fn new(config: TransportConfig) -> Self {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .user_agent(config.user_agent.clone())
            .build()
            .into();
        Transport {
            agent,
            config,
            authorizations: Mutex::new(HashMap::new()),
            credentials: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn auth_source(&self) -> &AuthSource {
        &self.config.auth
    }

    /// `http://` for loopback and listed insecure registries, else `https://`.
    pub(crate) fn base_url(&self, host: &str) -> String {
        let insecure =
            is_loopback(host) || self.config.insecure_registries.iter().any(|h| h == host);
        format!("{}://{host}", if insecure { "http" } else { "https" })
    }

    fn url(&self, req: &Req<'_>) -> String {
        if req.target.starts_with("http://") || req.target.starts_with("https://") {
            req.target.clone()
        } else {
            format!("{}{}", self.base_url(req.host), req.target)
        }
    }

    fn auth_key(req: &Req<'_>) -> (String, String) {
        (req.host.to_string(), req.scopes.join(" "))
    }

    /// Send with retries and authentication; any final status is returned
    /// (use [`check`] to turn failures into errors). PATCH is never retried
    /// because the registry may already have appended part of the chunk.
    pub(crate) fn send(&self, req: &Req<'_>) -> Result<Response<Body>> {
        let retryable = req.method != http::Method::PATCH;
        let mut authenticated = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = !retryable || attempt >= self.config.attempts;
            let authorization = self.lock_auth().get(&Self::auth_key(req)).cloned();
            let resp = match self.send_once(req, authorization.as_deref()) {
                Ok(resp) => resp,
                Err(e) if !last && e.is_transient() => {
                    std::thread::sleep(self.backoff(attempt));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status().as_u16();
            if status == 401 && !authenticated {
                authenticated = true;
                attempt -= 1;
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .and_then(auth::parse_challenge);
                let Some(challenge) = challenge else {
                    return Err(self.unauthorized(req, status));
                };
                let header = self.authorize(req, &challenge)?;
                self.lock_auth().insert(Self::auth_key(req), header);
                continue;
            }
            if (status == 429 || status >= 500) && !last {
                let wait = retry_after(&resp).unwrap_or_else(|| self.backoff(attempt));
                drop(resp);
                std::thread::sleep(wait);
                continue;
            }
            if status == 401 || status == 403 {
                return Err(self.unauthorized(req, status));
            }
            return Ok(resp);
        }
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        // A poisoned cache only means another thread panicked mid-insert; the map is still usable.
        self.authorizations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.config.backoff_base * 2u32.saturating_pow(attempt.saturating_sub(1))
    }

    fn send_once(&self, req: &Req<'_>, authorization: Option<&str>) -> Result<Response<Body>> {
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(self.url(req));
        for (name, value) in &req.headers {
            builder = builder.header(*name, value);
        }
        if let Some(a) = authorization {
            builder = builder.header("authorization", a);
        }
        let unreachable = |reason: String| Error::Unreachable {
            host: req.host.to_string(),
            during: req.what.clone(),
            reason,
        };
        let request = builder
            .body(req.body)
            .map_err(|e| unreachable(format!("cannot build the request: {e}")))?;
        self.agent
            .run(request)
            .map_err(|e| unreachable(describe(&e)))
    }

    /// Send with an explicit (or no) `Authorization`, retrying transient failures.
    pub(crate) fn send_unauthenticated(
        &self,
        req: &Req<'_>,
        authorization: Option<&str>,
    ) -> Result<Response<Body>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.send_once(req, authorization) {
                Err(e) if e.is_transient() && attempt < self.config.attempts => {
                    std::thread::sleep(self.backoff(attempt));
                }
                other => return other,
            }
        }
    }

    /// Drop cached credentials and tokens after `login`/`logout` changed them.
    pub(crate) fn forget(&self, registry: &str) {
        self.credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(registry);
        self.lock_auth().clear();
    }

    fn credential(&self, registry: &str) -> Result<Option<Credential>> {
        let mut cache = self.credentials.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(registry) {
            return Ok(c.clone());
        }
        let found = auth::lookup(&self.config.auth, registry)?;
        cache.insert(registry.to_string(), found.clone());
        Ok(found)
    }

    fn unauthorized(&self, req: &Req<'_>, status: u16) -> Error {
        match self.credential(req.registry) {
            Ok(Some(c)) => Error::Unauthorized {
                registry: req.registry.to_string(),
                source_desc: c.source,
                status,
            },
            Ok(None) => Error::NoCredentials {
                registry: req.registry.to_string(),
            },
            Err(e) => e,
        }
    }

    /// The `Authorization` value answering `challenge` for this request.
    fn authorize(&self, req: &Req<'_>, challenge: &Challenge) -> Result<String> {
        let credential = self.credential(req.registry)?;
        match challenge {
            Challenge::Basic => credential
                .as_ref()
                .and_then(Credential::basic_header)
                .ok_or_else(|| Error::NoCredentials {
                    registry: req.registry.to_string(),
                }),
            Challenge::Bearer { realm, service } => {
                let token =
                    self.fetch_token(req, realm, service.as_deref(), credential.as_ref())?;
                Ok(format!("Bearer {token}"))
            }
        }
    }

    /// The token endpoint: GET with basic credentials (or anonymously), or
    /// the OAuth2 refresh-token POST for identity tokens.
    pub(crate) fn fetch_token(
        &self,
        req: &Req<'_>,
        realm: &str,
        service: Option<&str>,
        credential: Option<&Credential>,
    ) -> Result<String> {
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            params.push(("service", s));
        }
        for scope in &req.scopes {
            params.push(("scope", scope));
        }
        let realm_host = realm
            .split("://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or(req.host);
        let what = format!("token for {} from {realm}", req.registry);
        let mut token_req = Req::new(
            http::Method::GET,
            realm_host,
            req.registry,
            String::new(),
            what,
        );
        let form;
        match credential.map(|c| &c.secret) {
            Some(Secret::IdentityToken(token)) => {
                params.push(("grant_type", "refresh_token"));
                params.push(("client_id", "strata"));
                params.push(("refresh_token", token));
                form = encode_query(&params);
                token_req.method = http::Method::POST;
                token_req.target = realm.to_string();
                token_req = token_req
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form.as_bytes());
            }
            _ => {
                let sep = if realm.contains('?') { '&' } else { '?' };
                token_req.target = format!("{realm}{sep}{}", encode_query(&params));
            }
        }
        let basic = credential.and_then(Credential::basic_header);
        let resp = self.send_unauthenticated(&token_req, basic.as_deref())?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(match credential {
                Some(c) => Error::Unauthorized {
                    registry: req.registry.to_string(),
                    source_desc: c.source.clone(),
                    status,
                },
                None => Error::NoCredentials {
                    registry: req.registry.to_string(),
                },
            });
        }
        let mut resp = check(resp, &token_req.what)?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let text = resp
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .map_err(|e| Error::Credentials {
                registry: req.registry.to_string(),
                reason: format!("cannot read the answer of token endpoint {realm}: {e}"),
            })?;
        let answer: TokenAnswer = serde_json::from_str(&text).map_err(|e| Error::Credentials {
            registry: req.registry.to_string(),
            reason: format!("bad answer from token endpoint {realm}: {e}"),
        })?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Credentials {
                registry: req.registry.to_string(),
                reason: format!("token endpoint {realm} returned no token"),
            })
    }
}

/// Map a non-2xx response to an error; 2xx passes through.
pub(crate) fn check(mut resp: Response<Body>, what: &str) -> Result<Response<Body>> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    if status == 404 {
        return Err(Error::NotFound {
            what: what.to_string(),
        });
    }
    let text = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    Err(Error::Http {
        what: what.to_string(),
        status,
        detail: registry_message(&text)
            .map(|m| format!(": {m}"))
            .unwrap_or_default(),
    })
}

/// The first message of a distribution-spec error body.
fn registry_message(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
        message: Option<String>,
    }
    let parsed: Errors = serde_json::from_str(text).ok()?;
    let e = parsed.errors.into_iter().next()?;
    match (e.code, e.message) {
        (Some(c), Some(m)) => Some(format!("{c}: {m}")),
        (c, m) => c.or(m),
    }
}

fn retry_after(resp: &Response<Body>) -> Option<Duration> {
    let secs: u64 = resp
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// One line for a transport error.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        ureq::Error::HostNotFound => "host not found (DNS)".to_string(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        other => other.to_string(),
    }
}

/// 127.0.0.0/8, ::1 and localhost, with or without a port.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else if host.parse::<std::net::Ipv6Addr>().is_ok() {
        host
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// `a=b&c=d` with values percent-encoded.
pub(crate) fn encode_query(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost",
            "localhost:80",
            "[::1]:5000",
            "::1",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "registry-1.docker.io",
            "10.0.0.1:5000",
            "example.com:5000",
            "[2001:db8::1]:5000",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn https_unless_loopback_or_listed_insecure() {
        let t = Transport::new(TransportConfig {
            insecure_registries: vec!["10.0.0.1:5000".to_string()],
            auth: AuthSource::Anonymous,
            attempts: 1,
            backoff_base: Duration::from_millis(1),
            connect_timeout: Duration::from_secs(1),
            user_agent: "test".to_string(),
        });
        assert_eq!(
            t.base_url("registry-1.docker.io"),
            "https://registry-1.docker.io"
        );
        assert_eq!(t.base_url("10.0.0.1:5001"), "https://10.0.0.1:5001");
        assert_eq!(t.base_url("10.0.0.1:5000"), "http://10.0.0.1:5000");
        assert_eq!(t.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(t.base_url("[::1]:5000"), "http://[::1]:5000");
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            encode_query(&[("scope", "repository:a/b:pull,push"), ("service", "x y")]),
            "scope=repository%3Aa%2Fb%3Apull%2Cpush&service=x%20y"
        );
    }
}
