//! Reference parsing, compared with what `docker pull` accepts.

use strata_registry::{Reference, platform};

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// (input, registry, repository, tag, has the digest, familiar Display)
type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, bool, &'a str);

#[test]
fn valid_references_normalize_like_docker() -> Result<(), Box<dyn std::error::Error>> {
    let with_digest = |s: &str| s.replace("{D}", D);
    let cases: &[Case<'_>] = &[
        (
            "alpine",
            "docker.io",
            "library/alpine",
            None,
            false,
            "alpine",
        ),
        (
            "alpine:3.19",
            "docker.io",
            "library/alpine",
            Some("3.19"),
            false,
            "alpine:3.19",
        ),
        (
            "library/alpine",
            "docker.io",
            "library/alpine",
            None,
            false,
            "alpine",
        ),
        (
            "docker.io/alpine",
            "docker.io",
            "library/alpine",
            None,
            false,
            "alpine",
        ),
        (
            "index.docker.io/library/alpine:edge",
            "docker.io",
            "library/alpine",
            Some("edge"),
            false,
            "alpine:edge",
        ),
        (
            "bitnami/redis:7",
            "docker.io",
            "bitnami/redis",
            Some("7"),
            false,
            "bitnami/redis:7",
        ),
        (
            "alpine@{D}",
            "docker.io",
            "library/alpine",
            None,
            true,
            "alpine@{D}",
        ),
        (
            "alpine:3@{D}",
            "docker.io",
            "library/alpine",
            Some("3"),
            true,
            "alpine:3@{D}",
        ),
        ("localhost/x", "localhost", "x", None, false, "localhost/x"),
        (
            "localhost:5000/x/y:z",
            "localhost:5000",
            "x/y",
            Some("z"),
            false,
            "localhost:5000/x/y:z",
        ),
        (
            "127.0.0.1:5000/app:1.0",
            "127.0.0.1:5000",
            "app",
            Some("1.0"),
            false,
            "127.0.0.1:5000/app:1.0",
        ),
        (
            "ghcr.io/org/team/tool:v1_2-3",
            "ghcr.io",
            "org/team/tool",
            Some("v1_2-3"),
            false,
            "ghcr.io/org/team/tool:v1_2-3",
        ),
        (
            "localhost:5000/a/b:v1.0",
            "localhost:5000",
            "a/b",
            Some("v1.0"),
            false,
            "localhost:5000/a/b:v1.0",
        ),
        (
            "quay.io/a.b/c__d/e---f",
            "quay.io",
            "a.b/c__d/e---f",
            None,
            false,
            "quay.io/a.b/c__d/e---f",
        ),
        (
            "[::1]:5000/img",
            "[::1]:5000",
            "img",
            None,
            false,
            "[::1]:5000/img",
        ),
        (
            "Example.COM/app",
            "Example.COM",
            "app",
            None,
            false,
            "Example.COM/app",
        ),
        (
            "localhost:5000",
            "docker.io",
            "library/localhost",
            Some("5000"),
            false,
            "localhost:5000",
        ),
    ];
    for (input, registry, repository, tag, has_digest, display) in cases {
        let input = with_digest(input);
        let r = Reference::parse(&input)?;
        assert_eq!(r.registry(), *registry, "{input}");
        assert_eq!(r.repository(), *repository, "{input}");
        assert_eq!(r.tag(), *tag, "{input}");
        assert_eq!(
            r.digest().map(|d| d.as_str()),
            has_digest.then_some(D),
            "{input}"
        );
        assert_eq!(r.to_string(), with_digest(display), "{input}");
        assert_eq!(
            Reference::parse(&r.to_string())?,
            r,
            "{input} does not round-trip"
        );
    }
    let hub = Reference::parse("alpine")?;
    assert_eq!(hub.api_host(), "registry-1.docker.io");
    assert_eq!(hub.canonical(), "docker.io/library/alpine");
    assert_eq!(hub.manifest_ref(), "latest");
    assert_eq!(
        Reference::parse("127.0.0.1:5000/a")?.api_host(),
        "127.0.0.1:5000"
    );
    Ok(())
}

#[test]
fn invalid_references_are_rejected_naming_the_reference() {
    let cases = [
        ("", "at least one component"),
        ("Alpine", "must be lowercase"),
        ("docker.io/Library/alpine", "must be lowercase"),
        ("alpine:", "invalid tag"),
        ("alpine:-x", "invalid tag"),
        ("alpine:a/b", "invalid registry host"),
        ("alpine@sha256:abc", "64 lowercase hex"),
        ("alpine@md5:0123456789abcdef0123456789abcdef", "only sha256"),
        ("a//b", "invalid repository path component"),
        ("-a", "invalid repository path component"),
        ("a-", "invalid repository path component"),
        ("a..b", "invalid repository path component"),
        ("a___b", "invalid repository path component"),
        ("host:port/x", "invalid registry host"),
        ("-bad.host/x", "invalid registry host"),
        ("[::1/x", "invalid registry host"),
        ("foo_bar.baz/x:TAG", "invalid registry host"),
        ("localhost:5000/", "at least one component"),
        // The names of issue 9, once stored as tags.
        ("UPPER", "must be lowercase"),
        ("a:b:c", "invalid repository path component"),
        ("name@sha256:bad", "64 lowercase hex"),
        ("../../x", "invalid registry host"),
        ("a-_b", "invalid repository path component"),
        ("a.-b", "invalid repository path component"),
        ("a:.tag", "invalid tag"),
        ("host:5000:1/a", "invalid registry host"),
        (
            "a@sha256:0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
            "64 lowercase hex",
        ),
        (
            "a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
            "64 lowercase hex",
        ),
        (
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "64-byte hexadecimal",
        ),
    ];
    for (input, reason) in cases {
        match Reference::parse(input) {
            Ok(r) => panic!("{input:?} parsed as {r:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("{input:?}")),
                    "{msg} does not name {input:?}"
                );
                assert!(msg.contains(reason), "{input:?}: {msg} (wanted {reason})");
            }
        }
    }
    let long = format!("{}/x", "a".repeat(260));
    let msg = Reference::parse(&long)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("255"), "{msg}");
    let long_tag = format!("a:{}", "t".repeat(129));
    assert!(Reference::parse(&long_tag).is_err());
}

#[test]
fn platforms_parse_and_match() -> Result<(), Box<dyn std::error::Error>> {
    let p = platform::parse("linux/arm64/v8")?;
    assert_eq!(
        (
            p.os().to_string(),
            p.architecture().to_string(),
            p.variant().as_deref()
        ),
        ("linux".to_string(), "arm64".to_string(), Some("v8"))
    );
    assert!(platform::matches(&p, &platform::parse("linux/arm64")?));
    assert!(platform::matches(&platform::parse("Linux/AArch64")?, &p));
    assert!(!platform::matches(&p, &platform::parse("linux/amd64")?));
    assert!(!platform::matches(
        &platform::parse("linux/arm/v6")?,
        &platform::parse("linux/arm/v7")?
    ));
    // An omitted arm variant is v7, not any.
    assert!(!platform::matches(
        &platform::parse("linux/arm")?,
        &platform::parse("linux/arm/v6")?
    ));
    assert_eq!(
        platform::display(&platform::parse("linux/x86_64")?).to_string(),
        "linux/amd64"
    );
    assert_eq!(
        platform::display(&platform::parse("linux/arm/V7")?).to_string(),
        "linux/arm/v7"
    );
    for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux//v7", ""] {
        assert!(platform::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(platform::host().os().to_string(), "linux");
    Ok(())
}
