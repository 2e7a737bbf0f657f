//! `strata build` end to end on the busybox base: every instruction and
//! flag of `fixtures/dockerfiles/everything`, checked through clients we did
//! not write (umoci, skopeo, crun), plus the outputs, ONBUILD, reproducible
//! digests and failures.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use std::time::{Duration, Instant};

use crate::common::{Env, Gate, R, Res, fixtures, procs, run_with_crun, tool};

/// A copy of `everything` with what git cannot hold: archives in five
/// compressions and a hard link.
fn everything_context(into: &Path) -> Res<PathBuf> {
    let ctx = into.join("ctx");
    tool(
        "cp",
        &[
            "-a",
            fixtures().join("everything").to_str().ok_or("path")?,
            ctx.to_str().ok_or("path")?,
        ],
    )?;
    let c = ctx.to_str().ok_or("path")?;
    let src = format!("{c}/archive-src");
    for (flag, name) in [
        ("-czf", "archive.tar.gz"),
        ("-cjf", "archive.tar.bz2"),
        ("-cJf", "archive.tar.xz"),
        ("--zstd -cf", "archive.tar.zst"),
        ("-cf", "archive.tar"),
    ] {
        let mut args: Vec<&str> = flag.split(' ').collect();
        let dest = format!("{c}/{name}");
        args.extend_from_slice(&[&dest, "-C", &src, "pkg"]);
        tool("tar", &args)?;
    }
    fs::hard_link(ctx.join("dir/plain"), ctx.join("dir/plain-hardlink"))?;
    Ok(ctx)
}

fn mode(p: &Path) -> Result<u32, std::io::Error> {
    Ok(fs::symlink_metadata(p)?.permissions().mode() & 0o7777)
}

fn owner(p: &Path) -> Result<(u32, u32), std::io::Error> {
    let m = fs::symlink_metadata(p)?;
    Ok((m.uid(), m.gid()))
}

#[test]
fn every_instruction_checked_with_umoci_skopeo_and_crun() -> R {
    let env = Env::new()?;
    let ctx = everything_context(&env.path(""))?;
    let log = env.build(
        &ctx,
        &["-t", "e2e-everything", "--build-arg", "GREETING=hi"],
    )?;
    assert!(log.contains("RUN rm /bin/vi"), "{log}");
    assert!(log.contains("naming to e2e-everything:latest"), "{log}");

    let bundle = env.unpack("e2e-everything:latest")?;
    let rootfs = bundle.join("rootfs");
    let app = rootfs.join("srv/app");
    // COPY --chown=app:staff --chmod=640 config.ini etc/
    let ini = app.join("etc/config.ini");
    assert_eq!(fs::read_to_string(&ini)?, "[app]\nname = strata\n");
    assert_eq!(mode(&ini)?, 0o640);
    assert_eq!(owner(&ini)?, (1000, 50));
    // COPY dir/ data/: contents, modes, symlinks as symlinks, hard links kept.
    assert_eq!(fs::read_to_string(app.join("data/plain"))?, "plain\n");
    assert_eq!(mode(&app.join("data/sub/run.sh"))?, 0o755);
    assert_eq!(
        fs::read_link(app.join("data/link-to-script"))?,
        PathBuf::from("sub/run.sh")
    );
    assert_eq!(
        fs::metadata(app.join("data/plain"))?.ino(),
        fs::metadata(app.join("data/plain-hardlink"))?.ino(),
        "hard link not kept"
    );
    assert_eq!(owner(&app.join("data/plain"))?, (0, 0));
    // COPY *.txt texts/: the wildcard, and only it.
    assert_eq!(fs::read_to_string(app.join("texts/a.txt"))?, "A\n");
    assert_eq!(fs::read_to_string(app.join("texts/b.txt"))?, "B\n");
    assert!(!app.join("texts/c.md").exists());
    assert_eq!(owner(&rootfs.join("numeric-owner.txt"))?, (1234, 4321));
    // ADD of local archives, recognised by content; another file is copied.
    for sub in ["gz", "bz2", "xz", "zst", "plain"] {
        let f = rootfs.join("opt").join(sub).join("pkg/file.txt");
        assert_eq!(
            fs::read_to_string(&f)?,
            "from the archive\n",
            "{}",
            f.display()
        );
    }
    assert_eq!(
        fs::read_to_string(rootfs.join("opt/not-an-archive.gz"))?,
        "this is not gzip\n"
    );
    // RUN: ARG, ENV, WORKDIR, hostname; USER app; SHELL.
    assert_eq!(
        fs::read_to_string(app.join("greeting.txt"))?,
        "hi from root in /srv/app on buildkitsandbox\n"
    );
    assert_eq!(mode(&app.join("bin/tool"))?, 0o755);
    assert!(
        !rootfs.join("bin/vi").exists(),
        "the whiteout of /bin/vi was not applied"
    );
    assert!(rootfs.join("bin/sh").exists());
    let id = fs::read_to_string(rootfs.join("tmp/id.txt"))?;
    assert!(id.starts_with("uid=1000(app) gid=1000(app)"), "{id}");
    assert!(id.contains("50(staff)"), "{id}");
    assert_eq!(
        fs::read_to_string(rootfs.join("tmp/tool.txt"))?,
        "tool ran\n"
    );
    assert_eq!(owner(&rootfs.join("home/app/by-app"))?, (1000, 1000));
    assert_eq!(
        fs::read_to_string(app.join("shell.txt"))?,
        "shell is /bin/sh\n"
    );

    // The config, as docker inspect would show it.
    let config = env.config("e2e-everything:latest")?;
    let c = &config["config"];
    let env_list: Vec<&str> = c["Env"]
        .as_array()
        .ok_or("Env")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env_list.contains(&"APP_HOME=/srv/app"), "{env_list:?}");
    assert!(
        env_list
            .iter()
            .any(|e| e.starts_with("PATH=/srv/app/bin:/usr/local/sbin")),
        "{env_list:?}"
    );
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat /srv/app/greeting.txt"]));
    assert_eq!(c["User"], "root");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["Labels"]["org.example.title"], "strata e2e");
    assert_eq!(c["Labels"]["team"], "build");
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["CMD", "true"]));
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Timeout"], 5_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 3);
    assert_eq!(
        c["OnBuild"],
        serde_json::json!(["RUN echo \"trigger ran\" > /onbuild.txt"])
    );
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-c"]));
    let history = config["history"].as_array().ok_or("history")?;
    let layers = config["rootfs"]["diff_ids"].as_array().ok_or("diff_ids")?;
    let with_layer = history.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(with_layer, layers.len());
    assert!(
        history.iter().any(|h| h["created_by"].as_str().is_some_and(|s| s == "RUN /bin/sh -c rm /bin/vi && rm -r /home/app && mkdir /home/app && chown app:app /home/app # buildkit")),
        "{history:?}"
    );

    // The image runs under crun: its entrypoint and cmd print the greeting.
    let out = run_with_crun(&bundle)?;
    assert_eq!(out, "hi from root in /srv/app on buildkitsandbox\n");

    // ONBUILD: a child image built FROM this one runs the trigger.
    let child = env.build(&fixtures().join("onbuild-child"), &["-t", "e2e-child"])?;
    assert!(
        child.contains("RUN echo \"trigger ran\" > /onbuild.txt"),
        "{child}"
    );
    assert!(child.contains(" trigger ran"), "{child}");
    let child_config = env.config("e2e-child:latest")?;
    assert_eq!(
        child_config["config"].get("OnBuild"),
        None,
        "triggers are not inherited"
    );
    Ok(())
}

#[test]
fn outputs_oci_docker_local_and_tar() -> R {
    let env = Env::new()?;
    let out_dir = env.path("out");
    fs::create_dir_all(&out_dir)?;
    let oci = out_dir.join("image-oci.tar");
    let docker = out_dir.join("image-docker.tar");
    let local = out_dir.join("fs");
    let tar = out_dir.join("fs.tar");
    let iid = out_dir.join("iid");
    let spec = |kind: &str, p: &Path| format!("type={kind},dest={}", p.display());
    let log = env.build(
        &fixtures().join("run-output"),
        &[
            "-t",
            "outputs:1",
            "-o",
            &spec("oci", &oci),
            "-o",
            &spec("docker", &docker),
            "-o",
            &spec("local", &local),
            "-o",
            &spec("tar", &tar),
            "--iidfile",
            iid.to_str().ok_or("path")?,
        ],
    )?;
    assert!(log.contains("hello from strata"), "{log}");
    let image_id = fs::read_to_string(&iid)?;
    assert!(
        image_id.starts_with("sha256:") && image_id.len() == 71,
        "{image_id}"
    );
    let config_digest = format!("sha256:{}", sha256_hex(&env.config_bytes("outputs:1")?));
    assert_eq!(
        image_id, config_digest,
        "the image ID is the config's digest"
    );

    // OCI archive: skopeo reads it; the ref name is the tag.
    let info = tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}:1", oci.display())],
    )?;
    let info: Value = serde_json::from_slice(&info.stdout)?;
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(2));
    // Docker archive: the files docker load reads, and skopeo agrees.
    let listing = tool("tar", &["-tf", docker.to_str().ok_or("path")?])?;
    let listing = String::from_utf8(listing.stdout)?;
    assert!(listing.lines().any(|l| l == "manifest.json"), "{listing}");
    assert!(listing.lines().any(|l| l == "repositories"), "{listing}");
    let manifest = tool(
        "tar",
        &["-xOf", docker.to_str().ok_or("path")?, "manifest.json"],
    )?;
    let manifest: Value = serde_json::from_slice(&manifest.stdout)?;
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["outputs:1"]));
    tool(
        "skopeo",
        &["inspect", &format!("docker-archive:{}", docker.display())],
    )?;
    // The filesystem, as a directory and as a tar.
    assert!(local.join("bin/busybox").is_file());
    let files = tool("tar", &["-tf", tar.to_str().ok_or("path")?])?;
    assert!(
        String::from_utf8(files.stdout)?
            .lines()
            .any(|l| l.trim_start_matches("./") == "bin/busybox")
    );

    // images / inspect / tag / rmi
    let out = env
        .strata(&["inspect", "--format", "{{.Id}}", "outputs:1"])
        .output()?;
    assert_eq!(out.stdout.trim(), image_id);
    assert_eq!(
        env.strata(&["tag", "outputs:1", "other:2"]).output()?.code,
        Some(0)
    );
    let list = env.strata(&["images"]).output()?.stdout;
    assert!(list.contains("outputs") && list.contains("other"), "{list}");
    assert_eq!(env.strata(&["rmi", "other:2"]).output()?.code, Some(0));
    let gone = env.strata(&["inspect", "other:2"]).output()?;
    assert_eq!(gone.code, Some(1));
    assert!(gone.stderr.contains("no such image: other:2"));
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn source_date_epoch_makes_digests_reproducible() -> R {
    let digest = |env: &Env| -> Res<String> {
        let ctx = fixtures().join("env-arg");
        let out = env
            .strata(&[
                "build",
                "-q",
                "--build-context",
                &env.base,
                "-t",
                "repro",
                ctx.to_str().ok_or("path")?,
            ])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()?;
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        let d = env
            .strata(&["inspect", "--format", "{{.Digest}}", "repro"])
            .output()?;
        Ok(d.stdout.trim().to_string())
    };
    let (a, b) = (Env::new()?, Env::new()?);
    let first = digest(&a)?;
    assert!(first.starts_with("sha256:"), "{first}");
    assert_eq!(
        first,
        digest(&b)?,
        "two builds with SOURCE_DATE_EPOCH differ"
    );
    let created = a.config("repro:latest")?;
    assert_eq!(created["created"], "2023-11-14T22:13:20Z");
    Ok(())
}

#[test]
fn multistage_target_and_build_args() -> R {
    let env = Env::new()?;
    let out_dir = env.path("fs");
    let dest = format!("type=local,dest={}", out_dir.display());
    env.build(&fixtures().join("multistage"), &["-o", &dest])?;
    assert_eq!(fs::read_to_string(out_dir.join("artifact"))?, "built\n");
    assert_eq!(
        fs::read_to_string(out_dir.join("artifact-by-index"))?,
        "built\n"
    );

    let out_dir = env.path("fs2");
    let dest = format!("type=local,dest={}", out_dir.display());
    env.build(
        &fixtures().join("env-arg"),
        &["--build-arg", "NAME=strata", "-o", &dest],
    )?;
    assert_eq!(
        fs::read_to_string(out_dir.join("greeting"))?,
        "hello strata v1\n"
    );
    Ok(())
}

#[test]
fn failing_run_exits_1_with_step_code_and_output() -> R {
    let env = Env::new()?;
    let ctx = fixtures().join("failing-run");
    let out = env.build_command(&ctx, &[])?.output()?;
    let err = &out.stderr;
    assert_eq!(out.code, Some(1), "{err}");
    assert!(
        err.contains("RUN echo \"about to fail\" && exit 7"),
        "{err}"
    );
    assert!(err.contains("exited with code 7"), "{err}");
    assert!(err.contains("> about to fail"), "{err}");
    assert!(!err.contains("never"), "{err}");
    Ok(())
}

#[test]
fn runc_and_crun_runtimes_run_steps() -> R {
    let env = Env::new()?;
    for rt in ["runc", "crun"] {
        let log = env.build(&fixtures().join("run-output"), &["--runtime", rt])?;
        assert!(log.contains("hello from strata"), "{rt}: {log}");
    }
    // Which runtime ran: seen from the host, the step's process runs under
    // a runc or crun process, and under neither with the builtin sandbox.
    for rt in ["runc", "crun", "builtin"] {
        let above = programs_above_a_step(&env, rt)?;
        let names: Vec<String> = above
            .iter()
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        for other in ["runc", "crun"] {
            assert_eq!(
                names.iter().any(|n| n == other),
                rt == other,
                "--runtime {rt}: the step ran under {above:?}"
            );
        }
    }
    Ok(())
}

/// The executables between `strata build --runtime RT` and a RUN step's
/// process, found while the step waits at a gate.
fn programs_above_a_step(env: &Env, rt: &str) -> Res<Vec<PathBuf>> {
    let gate = Gate::start()?;
    let ctx = env.context(
        &format!("which-{rt}"),
        &format!(
            "FROM busybox\nRUN --network=host wget -q -O /gate.txt {}\n",
            gate.url()
        ),
    )?;
    let mut child = env
        .build_command(
            &ctx,
            &["--runtime", rt, "--no-cache", "--allow", "network.host"],
        )?
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        if gate.requests() > 0 {
            // The step's wget, not the test's own threads.
            let pids = procs::with_arg(&gate.url())?;
            let mut chains = pids
                .into_iter()
                .filter_map(|p| procs::ancestor_programs(p, child.id()).ok());
            if let Some(chain) = chains.next() {
                break Ok(chain);
            }
        }
        if Instant::now() > deadline || child.try_wait()?.is_some() {
            break Err(format!("--runtime {rt}: the step never waited at the gate"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    gate.open();
    let out = child.wait_with_output()?;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{rt}: {log}");
    Ok(found?)
}
