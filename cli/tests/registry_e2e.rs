//! strata and a real registry (Debian's `docker-registry` on 127.0.0.1):
//! FROM pulls, `build --push`, `push`, `pull`, `login`, multi-platform
//! indexes, `save`/`load`, each checked with skopeo where it can be.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_fixtures::registry::Registry;

type R = Result<(), Box<dyn std::error::Error>>;
type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs a tool we did not write; fails saying what to install when it is missing.
fn tool(program: &str, args: &[&str]) -> Res<Output> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        format!("{program} is needed by this test (apt-get install {program}): {e}")
    })?;
    if !out.status.success() {
        return Err(format!(
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(out)
}

/// A temporary folder holding strata roots, a docker config and contexts.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Res<Env> {
        Ok(Env {
            dir: tempfile::tempdir()?,
        })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `strata ARGS` with state in `root` and credentials in this folder.
    fn strata_in(&self, root: &str, args: &[&str], stdin: &str) -> Res<Output> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .env("STRATA_ROOT", self.path(root))
            .env("DOCKER_CONFIG", self.path("docker"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        Ok(child.wait_with_output()?)
    }

    /// Like [`Env::strata_in`], failing on a non-zero exit.
    fn ok(&self, root: &str, args: &[&str]) -> Res<(String, String)> {
        let out = self.strata_in(root, args, "")?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(
                format!("strata {args:?} failed ({}): {stdout}{stderr}", out.status).into(),
            );
        }
        Ok((stdout, stderr))
    }

    /// A build context whose Dockerfile is `dockerfile`.
    fn context(&self, name: &str, dockerfile: &str) -> Res<String> {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("Dockerfile"), dockerfile)?;
        std::fs::write(dir.join("a.txt"), name)?;
        Ok(dir.display().to_string())
    }
}

/// Copies an OCI layout's `latest` into the registry with skopeo.
fn skopeo_push(layout: &Path, dest: &str, all: bool) -> R {
    skopeo_push_with(layout, dest, if all { &["--all"] } else { &[] })
}

fn skopeo_push_with(layout: &Path, dest: &str, extra: &[&str]) -> R {
    let src = format!("oci:{}:latest", layout.display());
    let dst = format!("docker://{dest}");
    let mut args = vec!["copy", "--quiet", "--dest-tls-verify=false"];
    args.extend(extra);
    args.extend([src.as_str(), dst.as_str()]);
    tool("skopeo", &args)?;
    Ok(())
}

fn skopeo_inspect(reference: &str) -> Res<Value> {
    let out = tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ],
    )?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

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
    skopeo_push(&layout, &format!("{host}/busybox:latest"), false)?;

    let ctx = env.context(
        "app",
        &format!("FROM {host}/busybox:latest\nRUN echo built > /built.txt\nCOPY a.txt /a.txt\n"),
    )?;
    let app = format!("{host}/app:1");
    let meta = env.path("meta.json");
    let (_, progress) = env.ok(
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
    )?;
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
    let remote = skopeo_inspect(&app)?;
    assert_eq!(remote["Digest"], digest.as_str());
    let copied = env.path("copied");
    tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{app}"),
            &format!("oci:{}:x", copied.display()),
        ],
    )?;
    let index: Value = serde_json::from_slice(&std::fs::read(copied.join("index.json"))?)?;
    assert_eq!(index["manifests"][0]["digest"], digest.as_str());
    let (pulled, _) = env.ok("fresh", &["pull", &app])?;
    assert_eq!(pulled.trim(), digest);
    let (inspected, _) = env.ok("fresh", &["inspect", "--format", "{{.Digest}}", &app])?;
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
    let (out, err) = env.ok("root", &["push", &app])?;
    assert_eq!(out.trim(), digest);
    let blobs = 1 + remote["Layers"].as_array().map_or(0, Vec::len);
    assert_eq!(push_counts(&err)?, (0, 0, blobs), "{err}");

    // The base is in the store now: a build works with the registry gone.
    registry.kill();
    let ctx2 = env.context(
        "offline",
        &format!("FROM {host}/busybox:latest\nRUN echo again > /again.txt\n"),
    )?;
    env.ok("root", &["build", "-t", "offline", &ctx2])?;
    Ok(())
}

#[test]
fn digest_pinned_from_with_local_blobs_needs_no_registry() -> R {
    let env = Env::new()?;
    let mut registry = Registry::start(None)?;
    let host = registry.host();
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    skopeo_push(&layout, &format!("{host}/busybox:latest"), false)?;
    let (digest, _) = env.ok("root", &["pull", &format!("{host}/busybox:latest")])?;
    registry.kill();
    let ctx = env.context(
        "pinned",
        &format!("FROM {host}/busybox@{}\nRUN true\n", digest.trim()),
    )?;
    env.ok("root", &["build", "-t", "pinned", &ctx])?;
    Ok(())
}

#[test]
fn login_with_password_stdin_then_push_and_a_wrong_password_fails() -> R {
    let env = Env::new()?;
    let password = "s3cret-Pa55word";
    let registry = Registry::start(Some(("alice", password)))?;
    let host = registry.host();
    let name = format!("{host}/private:1");
    let ctx = env.context("private", "FROM scratch\nCOPY a.txt /a.txt\n")?;
    env.ok("root", &["build", "-t", &name, &ctx])?;

    let anonymous = env.strata_in("root", &["push", &name], "")?;
    assert_eq!(anonymous.status.code(), Some(3));

    let wrong = env.strata_in(
        "root",
        &["login", "-u", "alice", "--password-stdin", &host],
        "wrong-password\n",
    )?;
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(3), "{err}");
    assert!(err.contains(&host) && err.contains("401"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");

    let good = env.strata_in(
        "root",
        &["login", "-u", "alice", "--password-stdin", &host],
        &format!("{password}\n"),
    )?;
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&good.stdout),
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(good.status.success(), "{out}");
    assert!(!out.contains(password), "{out}");
    let (digest, _) = env.ok("root", &["push", &name])?;
    assert_eq!(
        skopeo_inspect_auth(&name, password)?["Digest"],
        digest.trim()
    );

    env.ok("root", &["logout", &host])?;
    let after = env.strata_in("root", &["push", &name], "")?;
    assert_eq!(after.status.code(), Some(3));
    Ok(())
}

fn skopeo_inspect_auth(reference: &str, password: &str) -> Res<Value> {
    let out = tool(
        "skopeo",
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("alice:{password}"),
            &format!("docker://{reference}"),
        ],
    )?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn unreachable_registry_fails_fast_naming_the_host() -> R {
    let env = Env::new()?;
    let ctx = env.context("down", "FROM 127.0.0.1:1/x\nRUN true\n")?;
    let start = Instant::now();
    let out = env.strata_in("root", &["build", &ctx], "")?;
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
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
    skopeo_push(&layout, &name, true)?;
    for arch in ["arm64", "amd64"] {
        let root = format!("root-{arch}");
        env.ok(
            &root,
            &["pull", "--platform", &format!("linux/{arch}"), &name],
        )?;
        let (got, _) = env.ok(&root, &["inspect", "--format", "{{.Architecture}}", &name])?;
        assert_eq!(got.trim(), arch);
    }
    // A build for another platform takes that platform's base and says so.
    let ctx = env.context(
        "cross",
        &format!("FROM {name}\nARG TARGETARCH\nLABEL arch=$TARGETARCH\nCOPY a.txt /a.txt\n"),
    )?;
    env.ok(
        "cross-root",
        &["build", "--platform", "linux/arm64", "-t", "cross", &ctx],
    )?;
    let (arch, _) = env.ok(
        "cross-root",
        &[
            "inspect",
            "--format",
            "{{.Architecture}} {{.Config.Labels.arch}}",
            "cross",
        ],
    )?;
    assert_eq!(arch.trim(), "arm64 arm64");
    let (base, _) = env.ok(
        "cross-root",
        &["inspect", "--format", "{{.Architecture}}", &name],
    )?;
    assert_eq!(base.trim(), "arm64");

    let missing = env.strata_in("root-x", &["pull", "--platform", "linux/s390x", &name], "")?;
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("s390x"));
    Ok(())
}

#[test]
fn save_and_load_round_trip_between_roots() -> R {
    let env = Env::new()?;
    let ctx = env.context("saved", "FROM scratch\nCOPY a.txt /a.txt\n")?;
    env.ok("one", &["build", "-t", "saved:1", &ctx])?;
    let (digest, _) = env.ok("one", &["inspect", "--format", "{{.Digest}}", "saved:1"])?;

    let oci = env.path("saved.tar");
    env.ok(
        "one",
        &["save", "-o", &oci.display().to_string(), "saved:1"],
    )?;
    let (loaded, _) = env.ok("two", &["load", "-i", &oci.display().to_string()])?;
    assert!(loaded.contains("saved:1"), "{loaded}");
    let (again, _) = env.ok("two", &["inspect", "--format", "{{.Digest}}", "saved:1"])?;
    assert_eq!(again, digest);

    // A docker archive comes back with its tag and the same image ID.
    let docker = env.path("saved-docker.tar");
    env.ok(
        "one",
        &[
            "save",
            "--format",
            "docker",
            "-o",
            &docker.display().to_string(),
            "saved:1",
        ],
    )?;
    env.ok("three", &["load", "-i", &docker.display().to_string()])?;
    let id = |root: &str| env.ok(root, &["inspect", "--format", "{{.Id}}", "saved:1"]);
    assert_eq!(id("three")?.0, id("one")?.0);

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
    let (loaded, _) = env.ok("four", &["load", "-i", &archive.display().to_string()])?;
    assert!(loaded.contains("from-skopeo:1"), "{loaded}");
    let ctx = env.context("on-loaded", "FROM from-skopeo:1\nRUN echo ok > /ok\n")?;
    env.ok("four", &["build", &ctx])?;
    let qualified = env.context(
        "qualified",
        "FROM docker.io/library/from-skopeo:1\nRUN echo ok > /ok\n",
    )?;
    env.ok("four", &["build", &qualified])?;
    Ok(())
}

#[test]
fn pull_flag_re_resolves_a_moved_tag() -> R {
    let env = Env::new()?;
    let registry = Registry::start(None)?;
    let host = registry.host();
    let base = format!("{host}/base:latest");
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    skopeo_push(&layout, &base, false)?;
    let ctx = env.context("user", &format!("FROM {base}\nRUN true\n"))?;
    env.ok("root", &["build", &ctx])?;
    let digest = |root: &str| env.ok(root, &["inspect", "--format", "{{.Digest}}", &base]);
    let first = digest("root")?.0;

    // Another image takes the tag in the registry.
    let other = env.context("other", "FROM scratch\nCOPY a.txt /a.txt\n")?;
    env.ok("pusher", &["build", "-t", &base, "--push", &other])?;
    let moved = digest("pusher")?.0;
    assert_ne!(first, moved);

    let plain = env.context("plain", &format!("FROM {base}\nCOPY a.txt /b.txt\n"))?;
    env.ok("root", &["build", &plain])?;
    assert_eq!(
        digest("root")?.0,
        first,
        "without --pull the local tag is used"
    );
    env.ok("root", &["build", "--pull", &plain])?;
    assert_eq!(digest("root")?.0, moved, "--pull re-resolves the tag");

    // An image that was built here and never pushed is used as it is.
    let local = format!("{host}/local-only:1");
    env.ok("root", &["build", "-t", &local, &other])?;
    let on_local = env.context("on-local", &format!("FROM {local}\nCOPY a.txt /c.txt\n"))?;
    let (_, progress) = env.ok("root", &["build", "--pull", &on_local])?;
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
    skopeo_push(&layout, &name, false)?;
    let remote = skopeo_inspect(&name)?;
    let layer = remote["Layers"][0].as_str().ok_or("no layer")?.to_string();
    let hex = layer.trim_start_matches("sha256:");
    let data = registry
        .storage
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes)?;

    let out = env.strata_in("root", &["pull", &name], "")?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    assert!(!env.path("root/store/blobs/sha256").join(hex).exists());
    let tagged = env.strata_in("root", &["inspect", &name], "")?;
    assert!(!tagged.status.success(), "a failed pull tags nothing");
    Ok(())
}

#[test]
fn docker_v2_schema2_base_images_build_and_push() -> R {
    let env = Env::new()?;
    let registry = Registry::start(None)?;
    let host = registry.host();
    let base = format!("{host}/hub-like:latest");
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    skopeo_push_with(&layout, &base, &["--format", "v2s2"])?;
    assert_eq!(
        skopeo_raw(&base)?["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let ctx = env.context("v2", &format!("FROM {base}\nRUN echo ok > /ok\n"))?;
    let app = format!("{host}/v2app:1");
    env.ok("root", &["build", "-t", &app, "--push", &ctx])?;
    let remote = skopeo_inspect(&app)?;
    assert_eq!(remote["Layers"].as_array().map(Vec::len), Some(2));
    let copied = env.path("v2copy");
    tool(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{app}"),
            &format!("oci:{}:x", copied.display()),
        ],
    )?;
    Ok(())
}

fn skopeo_raw(reference: &str) -> Res<Value> {
    let out = tool(
        "skopeo",
        &[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ],
    )?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn output_type_registry_and_image_push_true_push_like_push() -> R {
    let env = Env::new()?;
    let registry = Registry::start(None)?;
    let host = registry.host();
    let base = format!("{host}/busybox:latest");
    let layout = strata_fixtures::busybox_image(&env.path("busybox"))?;
    skopeo_push(&layout, &base, false)?;
    let ctx = env.context("outs", &format!("FROM {base}\nRUN echo out > /out.txt\n"))?;
    for (repo, output) in [
        ("by-registry", "type=registry,name={name}"),
        ("by-image", "type=image,name={name},push=true"),
    ] {
        let name = format!("{host}/{repo}:1");
        let iid = env.path(&format!("{repo}.iid"));
        let (_, progress) = env.ok(
            "root",
            &[
                "build",
                "--progress=plain",
                "-o",
                &output.replace("{name}", &name),
                "--iidfile",
                &iid.display().to_string(),
                &ctx,
            ],
        )?;
        push_counts(&progress)?;
        assert!(progress.contains(&format!("pushed {name} ")), "{progress}");
        // The registry holds the image built: its config is the image ID.
        let remote = skopeo_raw(&name)?;
        assert_eq!(
            remote["config"]["digest"].as_str(),
            Some(std::fs::read_to_string(&iid)?.trim()),
            "{output}"
        );
        // And the local store has it under that name too.
        env.ok("root", &["inspect", &name])?;
    }
    Ok(())
}
