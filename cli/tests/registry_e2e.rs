//! strata and a real registry (Debian's `docker-registry` on 127.0.0.1):
//! FROM pulls, `build --push`, `push`, `pull`, `login`, multi-platform
//! indexes, `save`/`load`, each checked with skopeo where it can be.

use std::time::{Duration, Instant};

use strata_fixtures::registry::{Registry, copy_to_layout, inspect, push_layout};

use serde_json::Value;

use crate::common::{Env, R, Res, tool};

/// `(uploaded, mounted, skipped)` from a `pushed NAME DIGEST (...)` line.
fn push_counts(text: &str) -> Res<(usize, usize, usize)> {
    let line = text
        .lines()
        .find(|l| l.contains("pushed ") && l.contains("(uploaded "))
        .ok_or_else(|| format!("no push summary in {text}"))?;
    let inner = line
        .rsplit_once('(')
        .map(|(_, r)| r.trim_end_matches(')'))
        .unwrap_or_default();
    let mut counts = [0usize; 3];
    for (i, part) in inner.split(", ").enumerate().take(3) {
        counts[i] = part
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .parse()
            .map_err(|_| format!("bad push summary {line}"))?;
    }
    Ok((counts[0], counts[1], counts[2]))
}

#[test]
fn build_pulls_from_and_pushes_to_a_registry() -> R {
    let env = Env::new()?;
    let mut registry = Registry::start(None)?;
    let host = registry.host();
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    push_layout(&layout, &format!("{host}/busybox:latest"), &[])?;

    let ctx = env
        .context(
            "app",
            &format!(
                "FROM {host}/busybox:latest\nRUN echo built > /built.txt\nCOPY a.txt /a.txt\n"
            ),
        )?
        .display()
        .to_string();
    let app = format!("{host}/app:1");
    let meta = env.path("meta.json");
    let progress = env
        .strata_in(
            "root",
            &[
                "build",
                "--progress=plain",
                "-t",
                &app,
                "--push",
                "--metadata-file",
                &meta.display().to_string(),
                &ctx,
            ],
        )
        .ok()?
        .stderr;
    assert!(progress.contains("pulling sha256:"), "{progress}");
    let (uploaded, _, _) = push_counts(&progress)?;
    assert!(
        uploaded >= 2,
        "config and the new layers are uploaded: {progress}"
    );
    let meta: Value = serde_json::from_slice(&std::fs::read(&meta)?)?;
    let digest = meta["containerimage.digest"]
        .as_str()
        .ok_or("no containerimage.digest")?
        .to_string();
    assert_eq!(meta["image.name"], app.as_str());

    // skopeo sees the same manifest, and so does a pull into a fresh root.
    let remote = inspect(&app, &[])?;
    assert_eq!(remote["Digest"], digest.as_str());
    let copied = env.path("copied");
    copy_to_layout(&app, &copied)?;
    let index: Value = serde_json::from_slice(&std::fs::read(copied.join("index.json"))?)?;
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let pulled = env.strata_in("fresh", &["pull", &app]).ok()?.stdout;
    assert_eq!(pulled.trim(), digest);
    let inspected = env
        .strata_in("fresh", &["inspect", "--format", "{{.Digest}}", &app])
        .ok()?
        .stdout;
    assert_eq!(inspected.trim(), digest);
    // The pulled manifest is the registry's, byte for byte, and so are its layers.
    let hex = digest.trim_start_matches("sha256:");
    let pulled_manifest: Value = serde_json::from_slice(&std::fs::read(
        env.path("fresh/store/blobs/sha256").join(hex),
    )?)?;
    let pulled_layers: Vec<Value> = pulled_manifest["layers"]
        .as_array()
        .ok_or("no layers")?
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    assert_eq!(Some(&pulled_layers), remote["Layers"].as_array());
    for layer in &pulled_layers {
        let hex = layer
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("sha256:");
        assert!(env.path("fresh/store/blobs/sha256").join(hex).is_file());
        assert!(copied.join("blobs/sha256").join(hex).is_file());
    }

    // Pushing again transfers nothing.
    let pushed = env.strata_in("root", &["push", &app]).ok()?;
    let (out, err) = (pushed.stdout, pushed.stderr);
    assert_eq!(out.trim(), digest);
    let blobs = 1 + remote["Layers"].as_array().map_or(0, Vec::len);
    assert_eq!(push_counts(&err)?, (0, 0, blobs), "{err}");

    // The base is in the store now: a build works with the registry gone.
    registry.kill();
    let ctx2 = env
        .context(
            "offline",
            &format!("FROM {host}/busybox:latest\nRUN echo again > /again.txt\n"),
        )?
        .display()
        .to_string();
    env.strata_in("root", &["build", "-t", "offline", &ctx2])
        .ok()?;
    Ok(())
}

#[test]
fn digest_pinned_from_with_local_blobs_needs_no_registry() -> R {
    let env = Env::new()?;
    let mut registry = Registry::start(None)?;
    let host = registry.host();
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    push_layout(&layout, &format!("{host}/busybox:latest"), &[])?;
    let digest = env
        .strata_in("root", &["pull", &format!("{host}/busybox:latest")])
        .ok()?
        .stdout;
    registry.kill();
    let ctx = env
        .context(
            "pinned",
            &format!("FROM {host}/busybox@{}\nRUN true\n", digest.trim()),
        )?
        .display()
        .to_string();
    env.strata_in("root", &["build", "-t", "pinned", &ctx])
        .ok()?;
    Ok(())
}

#[test]
fn login_with_password_stdin_then_push_and_a_wrong_password_fails() -> R {
    let env = Env::new()?;
    let password = "s3cret-Pa55word";
    let registry = Registry::start(Some(("alice", password)))?;
    let host = registry.host();
    let name = format!("{host}/private:1");
    let ctx = env
        .context("private", "FROM scratch\nCOPY a.txt /a.txt\n")?
        .display()
        .to_string();
    env.strata_in("root", &["build", "-t", &name, &ctx]).ok()?;

    let anonymous = env.strata_in("root", &["push", &name]).output()?;
    assert_eq!(anonymous.code, Some(3));

    let wrong = env
        .strata_in("root", &["login", "-u", "alice", "--password-stdin", &host])
        .stdin("wrong-password\n")
        .output()?;
    let err = &wrong.stderr;
    assert_eq!(wrong.code, Some(3), "{err}");
    assert!(err.contains(&host) && err.contains("401"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");

    let good = env
        .strata_in("root", &["login", "-u", "alice", "--password-stdin", &host])
        .stdin(&format!("{password}\n"))
        .output()?;
    let out = format!("{}{}", good.stdout, good.stderr);
    assert_eq!(good.code, Some(0), "{out}");
    assert!(!out.contains(password), "{out}");
    let digest = env.strata_in("root", &["push", &name]).ok()?.stdout;
    assert_eq!(
        inspect(&name, &["--creds", &format!("alice:{password}")])?["Digest"],
        digest.trim()
    );

    env.strata_in("root", &["logout", &host]).ok()?;
    let after = env.strata_in("root", &["push", &name]).output()?;
    assert_eq!(after.code, Some(3));
    Ok(())
}

#[test]
fn unreachable_registry_fails_fast_naming_the_host() -> R {
    let env = Env::new()?;
    let ctx = env
        .context("down", "FROM 127.0.0.1:1/x\nRUN true\n")?
        .display()
        .to_string();
    let start = Instant::now();
    let out = env.strata_in("root", &["build", &ctx]).output()?;
    let took = start.elapsed();
    let err = &out.stderr;
    assert_eq!(out.code, Some(3), "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {err}");
    Ok(())
}

#[test]
fn pull_chooses_the_platform_of_an_index() -> R {
    let env = Env::new()?;
    let registry = Registry::start(None)?;
    let host = registry.host();
    let layout = strata_fixtures::busybox_index(
        &env.path("multi"),
        &[("linux", "amd64"), ("linux", "arm64")],
    )?;
    let name = format!("{host}/multi:latest");
    push_layout(&layout, &name, &["--all"])?;
    for arch in ["arm64", "amd64"] {
        let root = format!("root-{arch}");
        env.strata_in(
            &root,
            &["pull", "--platform", &format!("linux/{arch}"), &name],
        )
        .ok()?;
        let got = env
            .strata_in(&root, &["inspect", "--format", "{{.Architecture}}", &name])
            .ok()?
            .stdout;
        assert_eq!(got.trim(), arch);
    }
    // A build for another platform takes that platform's base and says so.
    let ctx = env
        .context(
            "cross",
            &format!("FROM {name}\nARG TARGETARCH\nLABEL arch=$TARGETARCH\nCOPY a.txt /a.txt\n"),
        )?
        .display()
        .to_string();
    env.strata_in(
        "cross-root",
        &["build", "--platform", "linux/arm64", "-t", "cross", &ctx],
    )
    .ok()?;
    let arch = env
        .strata_in(
            "cross-root",
            &[
                "inspect",
                "--format",
                "{{.Architecture}} {{.Config.Labels.arch}}",
                "cross",
            ],
        )
        .ok()?
        .stdout;
    assert_eq!(arch.trim(), "arm64 arm64");
    let base = env
        .strata_in(
            "cross-root",
            &["inspect", "--format", "{{.Architecture}}", &name],
        )
        .ok()?
        .stdout;
    assert_eq!(base.trim(), "arm64");

    let missing = env
        .strata_in("root-x", &["pull", "--platform", "linux/s390x", &name])
        .output()?;
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("s390x"));
    Ok(())
}

#[test]
fn save_and_load_round_trip_between_roots() -> R {
    let env = Env::new()?;
    let ctx = env
        .context("saved", "FROM scratch\nCOPY a.txt /a.txt\n")?
        .display()
        .to_string();
    env.strata_in("one", &["build", "-t", "saved:1", &ctx])
        .ok()?;
    let digest = env
        .strata_in("one", &["inspect", "--format", "{{.Digest}}", "saved:1"])
        .ok()?
        .stdout;

    let oci = env.path("saved.tar");
    env.strata_in(
        "one",
        &["save", "-o", &oci.display().to_string(), "saved:1"],
    )
    .ok()?;
    let loaded = env
        .strata_in("two", &["load", "-i", &oci.display().to_string()])
        .ok()?
        .stdout;
    assert!(loaded.contains("saved:1"), "{loaded}");
    let again = env
        .strata_in("two", &["inspect", "--format", "{{.Digest}}", "saved:1"])
        .ok()?
        .stdout;
    assert_eq!(again, digest);

    // A docker archive comes back with its tag and the same image ID.
    let docker = env.path("saved-docker.tar");
    env.strata_in(
        "one",
        &[
            "save",
            "--format",
            "docker",
            "-o",
            &docker.display().to_string(),
            "saved:1",
        ],
    )
    .ok()?;
    env.strata_in("three", &["load", "-i", &docker.display().to_string()])
        .ok()?;
    let id = |root: &str| {
        env.strata_in(root, &["inspect", "--format", "{{.Id}}", "saved:1"])
            .ok()
    };
    assert_eq!(id("three")?.stdout, id("one")?.stdout);

    // Archives written by skopeo load too, and the image builds on.
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    let archive = env.path("skopeo-docker.tar");
    tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            &format!("oci:{}:latest", layout.display()),
            &format!("docker-archive:{}:from-skopeo:1", archive.display()),
        ],
    )?;
    let loaded = env
        .strata_in("four", &["load", "-i", &archive.display().to_string()])
        .ok()?
        .stdout;
    assert!(loaded.contains("from-skopeo:1"), "{loaded}");
    let ctx = env
        .context("on-loaded", "FROM from-skopeo:1\nRUN echo ok > /ok\n")?
        .display()
        .to_string();
    env.strata_in("four", &["build", &ctx]).ok()?;
    let qualified = env
        .context(
            "qualified",
            "FROM docker.io/library/from-skopeo:1\nRUN echo ok > /ok\n",
        )?
        .display()
        .to_string();
    env.strata_in("four", &["build", &qualified]).ok()?;
    Ok(())
}

#[test]
fn pull_flag_re_resolves_a_moved_tag() -> R {
    let env = Env::new()?;
    let registry = Registry::start(None)?;
    let host = registry.host();
    let base = format!("{host}/base:latest");
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    push_layout(&layout, &base, &[])?;
    let ctx = env
        .context("user", &format!("FROM {base}\nRUN true\n"))?
        .display()
        .to_string();
    env.strata_in("root", &["build", &ctx]).ok()?;
    let digest = |root: &str| {
        env.strata_in(root, &["inspect", "--format", "{{.Digest}}", &base])
            .ok()
    };
    let first = digest("root")?.stdout;

    // Another image takes the tag in the registry.
    let other = env
        .context("other", "FROM scratch\nCOPY a.txt /a.txt\n")?
        .display()
        .to_string();
    env.strata_in("pusher", &["build", "-t", &base, "--push", &other])
        .ok()?;
    let moved = digest("pusher")?.stdout;
    assert_ne!(first, moved);

    let plain = env
        .context("plain", &format!("FROM {base}\nCOPY a.txt /b.txt\n"))?
        .display()
        .to_string();
    env.strata_in("root", &["build", &plain]).ok()?;
    assert_eq!(
        digest("root")?.stdout,
        first,
        "without --pull the local tag is used"
    );
    env.strata_in("root", &["build", "--pull", &plain]).ok()?;
    assert_eq!(digest("root")?.stdout, moved, "--pull re-resolves the tag");

    // An image that was built here and never pushed is used as it is.
    let local = format!("{host}/local-only:1");
    env.strata_in("root", &["build", "-t", &local, &other])
        .ok()?;
    let on_local = env
        .context("on-local", &format!("FROM {local}\nCOPY a.txt /c.txt\n"))?
        .display()
        .to_string();
    let progress = env
        .strata_in("root", &["build", "--pull", &on_local])
        .ok()?
        .stderr;
    assert!(progress.contains("using the local image"), "{progress}");
    Ok(())
}

#[test]
fn a_corrupt_blob_fails_the_pull_and_never_enters_the_store() -> R {
    let env = Env::new()?;
    let registry = Registry::start(None)?;
    let host = registry.host();
    let name = format!("{host}/busybox:latest");
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    push_layout(&layout, &name, &[])?;
    let remote = inspect(&name, &[])?;
    let layer = remote["Layers"][0].as_str().ok_or("no layer")?.to_string();
    let hex = layer.trim_start_matches("sha256:");
    let data = registry.blob_data(&layer);
    let mut bytes = std::fs::read(&data)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes)?;

    let out = env.strata_in("root", &["pull", &name]).output()?;
    let err = &out.stderr;
    assert_eq!(out.code, Some(1), "{err}");
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    assert!(!env.path("root/store/blobs/sha256").join(hex).exists());
    let tagged = env.strata_in("root", &["inspect", &name]).output()?;
    assert_ne!(tagged.code, Some(0), "a failed pull tags nothing");
    Ok(())
}

#[test]
fn docker_v2_schema2_base_images_build_and_push() -> R {
    let env = Env::new()?;
    let registry = Registry::start(None)?;
    let host = registry.host();
    let base = format!("{host}/hub-like:latest");
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    push_layout(&layout, &base, &["--format", "v2s2"])?;
    assert_eq!(
        inspect(&base, &["--raw"])?["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let ctx = env
        .context("v2", &format!("FROM {base}\nRUN echo ok > /ok\n"))?
        .display()
        .to_string();
    let app = format!("{host}/v2app:1");
    env.strata_in("root", &["build", "-t", &app, "--push", &ctx])
        .ok()?;
    let remote = inspect(&app, &[])?;
    assert_eq!(remote["Layers"].as_array().map(Vec::len), Some(2));
    let copied = env.path("v2copy");
    copy_to_layout(&app, &copied)?;
    Ok(())
}

/// The machine's hostname and the loopback address it resolves to (in
/// /etc/hosts: 127.0.0.1 here, 127.0.1.1 on a stock Debian install). The
/// registry client treats only `localhost`, `*.localhost` and IP literals as
/// loopback, so this name is not.
fn loopback_hostname() -> Res<(String, std::net::Ipv4Addr)> {
    use std::net::{IpAddr, ToSocketAddrs};
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")?
        .trim()
        .to_string();
    let addrs: Vec<_> = (name.as_str(), 1).to_socket_addrs()?.collect();
    let ip = addrs.iter().find_map(|a| match a.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => Some(ip),
        _ => None,
    });
    match ip {
        Some(ip) if name != "localhost" && !name.ends_with(".localhost") => Ok((name, ip)),
        _ => Err(format!(
            "this test needs the hostname ({name}) to resolve to a 127.x address \
             (it resolves to {addrs:?}): add `127.0.0.1 {name}` to /etc/hosts"
        )
        .into()),
    }
}

#[test]
fn a_non_loopback_name_is_refused_without_insecure_registry() -> R {
    let env = Env::new()?;
    let (name, ip) = loopback_hostname()?;
    let registry = Registry::start_on(ip, None)?;
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    push_layout(&layout, &format!("{}/busybox:latest", registry.host()), &[])?;
    let host = format!("{name}:{}", registry.port);
    let image = format!("{host}/busybox:latest");
    let want = inspect(&image, &[])?["Digest"].clone();

    // Without the flag strata speaks TLS to it, which a plain HTTP registry refuses.
    let refused = env.strata(&["pull", &image]).output()?;
    assert_eq!(refused.code, Some(3), "{}", refused.stderr);
    assert!(refused.stderr.contains(&host), "{}", refused.stderr);
    let ctx = env.context("insecure", &format!("FROM {image}\nRUN echo ok > /ok\n"))?;
    let ctx = ctx.to_string_lossy();
    let refused = env.strata(&["build", &ctx]).output()?;
    assert_eq!(refused.code, Some(3), "{}", refused.stderr);

    let pulled = env
        .strata(&["pull", "--insecure-registry", &host, &image])
        .ok()?;
    assert_eq!(pulled.stdout.trim(), want.as_str().unwrap_or_default());
    let app = format!("{host}/app:1");
    env.strata_in(
        "builder",
        &[
            "build",
            "--insecure-registry",
            &host,
            "-t",
            &app,
            "--push",
            &ctx,
        ],
    )
    .ok()?;
    inspect(&app, &[])?;
    Ok(())
}

#[test]
fn docker_hub_names_are_pulled_through_a_mirror() -> R {
    let env = Env::new()?;
    let registry = Registry::start(None)?;
    let host = registry.host();
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    // Where Docker Hub keeps `busybox`: library/busybox.
    push_layout(&layout, &format!("{host}/library/busybox:latest"), &[])?;
    let want = inspect(&format!("{host}/library/busybox:latest"), &[])?["Digest"].clone();
    let mirror = format!("docker.io={host}");

    let ctx = env.context("hub", "FROM busybox\nRUN echo ok > /ok\n")?;
    let built = env
        .strata(&[
            "build",
            "--progress=plain",
            "-t",
            "hub",
            &ctx.to_string_lossy(),
        ])
        .env("STRATA_REGISTRY_MIRRORS", &mirror)
        .ok()?;
    assert!(built.stderr.contains("pulling sha256:"), "{}", built.stderr);
    // Stored under the short name `docker build` shows.
    for name in ["busybox", "busybox:latest"] {
        let digest = env
            .strata(&["inspect", "--format", "{{.Digest}}", name])
            .ok()?;
        assert_eq!(digest.stdout.trim(), want.as_str().unwrap_or_default());
    }
    let pulled = env
        .strata_in("fresh", &["pull", "library/busybox"])
        .env("STRATA_REGISTRY_MIRRORS", &mirror)
        .ok()?;
    assert_eq!(pulled.stdout.trim(), want.as_str().unwrap_or_default());

    let bad = env
        .strata_in("bad", &["pull", "busybox"])
        .env("STRATA_REGISTRY_MIRRORS", "docker.io")
        .output()?;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("STRATA_REGISTRY_MIRRORS"),
        "{}",
        bad.stderr
    );
    Ok(())
}

#[test]
fn output_type_registry_and_image_push_true_push_like_push() -> R {
    let env = Env::new()?;
    let registry = Registry::start(None)?;
    let host = registry.host();
    let base = format!("{host}/busybox:latest");
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    push_layout(&layout, &base, &[])?;
    let ctx = env
        .context("outs", &format!("FROM {base}\nRUN echo out > /out.txt\n"))?
        .display()
        .to_string();
    for (repo, output) in [
        ("by-registry", "type=registry,name={name}"),
        ("by-image", "type=image,name={name},push=true"),
    ] {
        let name = format!("{host}/{repo}:1");
        let iid = env.path(&format!("{repo}.iid"));
        let progress = env
            .strata(&[
                "build",
                "--progress=plain",
                "-o",
                &output.replace("{name}", &name),
                "--iidfile",
                &iid.display().to_string(),
                &ctx,
            ])
            .ok()?
            .stderr;
        push_counts(&progress)?;
        assert!(progress.contains(&format!("pushed {name} ")), "{progress}");
        // The registry holds the image built: its config is the image ID.
        let remote = inspect(&name, &["--raw"])?;
        assert_eq!(
            remote["config"]["digest"].as_str(),
            Some(std::fs::read_to_string(&iid)?.trim()),
            "{output}"
        );
        // And the local store has it under that name too.
        env.strata(&["inspect", &name]).ok()?;
    }
    Ok(())
}
