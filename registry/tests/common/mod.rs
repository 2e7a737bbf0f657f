//! Test helpers: a real `docker-registry` on 127.0.0.1, test images, and a
//! loopback HTTP proxy that can inject faults.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[allow(unused_imports)]
pub use strata_fixtures::registry::{Registry, free_port};
use strata_registry::{BlobSource, Descriptor, Digest, MediaType, Platform, PushBlob};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Pseudo-random bytes, different for every call in the process.
pub fn random_bytes(len: usize) -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An image built in memory: config, layers and an OCI manifest.
pub struct TestImage {
    pub manifest: Vec<u8>,
    pub manifest_digest: Digest,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub blobs: Vec<PushBlob>,
}

pub fn descriptor(media_type: MediaType, data: &[u8]) -> Descriptor {
    Descriptor::new(media_type, data.len() as u64, Digest::of(data))
}

/// The strata digest of a descriptor (all of these tests' are sha256).
pub fn digest(d: &Descriptor) -> Result<Digest, strata_registry::InvalidDigest> {
    Digest::try_from(d.digest())
}

/// An image for `platform` whose layers are these byte strings.
pub fn image(platform: &Platform, layers: Vec<Vec<u8>>) -> TestImage {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": platform.architecture(),
        "os": platform.os(),
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| Digest::of(l).to_string()).collect::<Vec<_>>()},
        "config": {"Env": [format!("NONCE={}", Digest::of(&random_bytes(16)))]},
    }))
    .unwrap_or_default();
    let config_desc = descriptor(MediaType::ImageConfig, &config);
    let layer_descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| descriptor(MediaType::ImageLayer, l))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": &MediaType::ImageManifest,
        "config": config_desc,
        "layers": layer_descs,
    }))
    .unwrap_or_default();
    let mut blobs = vec![PushBlob {
        descriptor: config_desc.clone(),
        source: BlobSource::Bytes(Arc::from(config)),
    }];
    for (d, l) in layer_descs.iter().zip(layers) {
        blobs.push(PushBlob {
            descriptor: d.clone(),
            source: BlobSource::Bytes(Arc::from(l)),
        });
    }
    TestImage {
        manifest_digest: Digest::of(&manifest),
        manifest,
        config: config_desc,
        layers: layer_descs,
        blobs,
    }
}

/// An OCI index over (manifest digest, size, platform) entries.
pub fn index(entries: &[(&TestImage, &Platform)]) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(img, p)| {
            serde_json::json!({
                "mediaType": &MediaType::ImageManifest,
                "digest": img.manifest_digest.to_string(),
                "size": img.manifest.len(),
                "platform": p,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": &MediaType::ImageIndex,
        "manifests": manifests,
    }))
    .unwrap_or_default()
}

/// What the proxy does with one request.
pub enum Action {
    /// Pass it to the registry and the answer back.
    Forward,
    /// Answer 503 without contacting the registry.
    ServiceUnavailable,
    /// Forward, but flip the last byte of the response body.
    CorruptBody,
    /// Forward, but send only the headers and the first half of the body, then hang up.
    TruncateBody,
    /// Answer this status, extra headers and body without contacting the registry.
    Respond(u16, Vec<(String, String)>, Vec<u8>),
}

/// The request the proxy saw.
pub struct Head {
    pub method: String,
    pub path: String,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Decide = dyn Fn(&Head) -> Action + Send + Sync;

/// A one-request-per-connection HTTP proxy on 127.0.0.1 in front of a port.
pub struct Proxy {
    pub port: u16,
}

impl Proxy {
    pub fn start(upstream: u16, decide: Arc<Decide>) -> Result<Proxy, Box<dyn std::error::Error>> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let decide = Arc::clone(&decide);
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, &*decide);
                });
            }
        });
        Ok(Proxy { port })
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn serve(mut client: TcpStream, upstream: u16, decide: &Decide) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut raw_headers = Vec::new();
    let mut headers = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_string();
            if name == "content-length" {
                content_length = value.parse().unwrap_or(0);
            }
            if name == "connection" {
                continue;
            }
            headers.push((name, value));
        }
        raw_headers.push(line);
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    let head = Head {
        method,
        path,
        headers,
        body,
    };
    let action = decide(&head);
    match action {
        Action::ServiceUnavailable => {
            return respond(&mut client, 503, &[], b"");
        }
        Action::Respond(status, extra, body) => {
            return respond(&mut client, status, &extra, &body);
        }
        _ => {}
    }
    let mut up = match TcpStream::connect(("127.0.0.1", upstream)) {
        Ok(up) => up,
        // The registry is down: drop the client's connection like a dead server.
        Err(_) => return client.shutdown(Shutdown::Both),
    };
    up.write_all(request_line.as_bytes())?;
    for h in raw_headers
        .iter()
        .filter(|h| !h.to_ascii_lowercase().starts_with("connection:"))
    {
        up.write_all(h.as_bytes())?;
    }
    up.write_all(b"Connection: close\r\n\r\n")?;
    up.write_all(&head.body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    let body_start = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    match action {
        Action::CorruptBody if response.len() > body_start => {
            if let Some(last) = response.last_mut() {
                *last ^= 0xff;
            }
        }
        Action::TruncateBody => {
            let half = body_start + (response.len() - body_start) / 2;
            response.truncate(half);
        }
        _ => {}
    }
    client.write_all(&response)?;
    client.shutdown(Shutdown::Both)
}

fn respond(
    client: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} Test\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    client.write_all(out.as_bytes())?;
    client.write_all(body)?;
    client.shutdown(Shutdown::Both)
}
