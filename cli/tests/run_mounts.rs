//! `RUN --mount` end to end on the busybox base, each test naming the behaviour of the
//! Dockerfile reference (BuildKit) it checks: cache mounts kept across builds and shared
//! between concurrent builds as `sharing` says, binds from the context (keyed by exactly
//! the files they expose) and from a stage, tmpfs, secrets that leave no trace anywhere,
//! and an ssh agent listed by the real `ssh-add` inside a step. Images are unpacked with
//! umoci and configs read with skopeo.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Env, Gate, R, Res, procs, ran_steps, step_cached, tool};

/// Whether `needle` occurs in any file under `dir` (`grep -r`, binary files included).
fn grep_r(needle: &str, dir: &Path) -> Res<bool> {
    let out = Command::new("grep")
        .args(["-r", "-a", "-l", "-F", needle])
        .arg(dir)
        .output()?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!(
            "grep -r in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into()),
    }
}

/// The lines a step printed (`#N 0.123 text` in plain progress).
fn printed(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ' ');
            let (n, t, rest) = (parts.next()?, parts.next()?, parts.next()?);
            (n.starts_with('#') && t.parse::<f64>().is_ok()).then(|| rest.to_string())
        })
        .collect()
}

#[test]
fn cache_mount_persists_across_builds_and_never_reaches_the_image() -> R {
    // Reference: type=cache "cache directories for compilers and package managers";
    // `id` defaults to the target; the contents are kept between builds and are not part of
    // the image.
    let env = Env::new()?;
    let ctx = env.context(
        "cache",
        "FROM busybox\nARG N\nRUN --mount=type=cache,target=/var/cache/thing \
         echo run $N >> /var/cache/thing/runs && cat /var/cache/thing/runs\n",
    )?;
    env.build(&ctx, &["-t", "c:1", "--build-arg", "N=1"])?;
    let second = env.build(&ctx, &["-t", "c:2", "--build-arg", "N=2"])?;
    let lines = printed(&second);
    assert!(
        lines.contains(&"run 1".to_string()) && lines.contains(&"run 2".to_string()),
        "the second build did not see the first one's cache:\n{second}"
    );
    let rootfs = env.unpack("c:2")?.join("rootfs");
    assert!(
        !rootfs.join("var/cache/thing").exists(),
        "the cache mount's target is in the image"
    );
    assert!(
        !grep_r("run 1", &rootfs)?,
        "the cache's content is in the image"
    );

    // `strata du` lists it under its id, with its size.
    let du = env.strata(&["du"]).ok()?.stdout;
    assert!(
        du.lines().any(|l| l.starts_with("/var/cache/thing ")),
        "du does not list the cache mount:\n{du}"
    );
    // BuildKit's filter for cache mounts removes it, and only it.
    let pruned = env
        .strata(&["prune", "--filter", "type=exec.cachemount"])
        .ok()?
        .stdout;
    assert!(pruned.contains("cache-mounts"), "{pruned}");
    assert!(
        !pruned.contains("deleted: s-"),
        "snapshots went too:\n{pruned}"
    );
    let third = env.build(&ctx, &["-t", "c:3", "--build-arg", "N=3"])?;
    assert_eq!(
        printed(&third)
            .iter()
            .filter(|l| l.starts_with("run "))
            .count(),
        1,
        "the pruned cache came back:\n{third}"
    );
    // The cache's content is no part of the key: the same step with the same inputs hits.
    let again = env.build(&ctx, &["-t", "c:3", "--build-arg", "N=3"])?;
    assert!(step_cached(&again, "RUN --mount=type=cache")?, "{again}");
    Ok(())
}

#[test]
fn cache_mount_options_mode_owner_ro_and_seed() -> R {
    // Reference: `mode` (default 0755), `uid`/`gid` (default 0) of a new cache directory;
    // `ro`; `from`/`source`: the stage and path a new cache starts from.
    let env = Env::new()?;
    let ctx = env.context(
        "opts",
        concat!(
            "FROM busybox AS seed\n",
            "RUN mkdir -p /s && echo seeded > /s/f\n",
            "FROM busybox\n",
            "RUN --mount=type=cache,id=owned,target=/o,mode=0750,uid=1000,gid=50 ",
            "stat -c 'owned %a %u %g' /o\n",
            "RUN --mount=type=cache,id=plain,target=/p stat -c 'plain %a %u %g' /p\n",
            "RUN --mount=type=cache,id=ro,target=/r,ro touch /r/x 2>/dev/null; echo ro=$?\n",
            "RUN --mount=type=cache,id=seeded,target=/c,from=seed,source=/s cat /c/f\n",
        ),
    )?;
    let log = env.build(&ctx, &["-t", "opts:1"])?;
    let lines = printed(&log);
    for want in ["owned 750 1000 50", "plain 755 0 0", "ro=1", "seeded"] {
        assert!(lines.iter().any(|l| l == want), "no {want:?} in:\n{log}");
    }
    Ok(())
}

/// Inodes of the cache mount folders of a root.
fn cache_mount_inodes(root: &Path) -> Res<HashSet<u64>> {
    let mut out = HashSet::new();
    if let Ok(entries) = fs::read_dir(root.join("cache-mounts")) {
        for entry in entries {
            out.insert(entry?.metadata()?.ino());
        }
    }
    Ok(out)
}

/// Two builds (different steps, so no key lock joins them) using one cache id with
/// `sharing`, each waiting at the gate inside its step. Returns how many steps were at the
/// gate at once and whether the other build was seen waiting on the cache mount's lock.
fn two_builds_at_a_gate(sharing: &str) -> Res<(usize, bool)> {
    let env = Env::new()?;
    let gate = Gate::start()?;
    let mut children = Vec::new();
    for i in 0..2 {
        let ctx = env.context(
            &format!("ctx{i}"),
            &format!(
                "FROM busybox\nRUN --network=host --mount=type=cache,id=shared-id,target=/c,\
                 sharing={sharing} wget -q -O /c/gate{i} {} && echo build {i}\n",
                gate.url()
            ),
        )?;
        children.push(
            env.build_command(&ctx, &["-t", &format!("g{i}"), "--allow", "network.host"])?
                .spawn()?,
        );
    }
    let pids: Vec<u32> = children.iter().map(std::process::Child::id).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut waiting = false;
    // Both at the gate (shared), or one there and the other blocked on the lock (locked).
    while Instant::now() < deadline && gate.requests() < 2 {
        if gate.requests() == 1
            && !procs::blocked_on(&pids, &cache_mount_inodes(&env.root())?)?.is_empty()
        {
            waiting = true;
            // Give a wrongly unlocked second step the time to arrive too.
            std::thread::sleep(Duration::from_secs(2));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let at_once = gate.requests();
    gate.open();
    for child in children {
        let out = child.wait_with_output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((at_once, waiting))
}

#[test]
fn locked_cache_mounts_serialise_concurrent_builds() -> R {
    // Reference: sharing=locked "pauses the second writer until the first one releases
    // the mount".
    let (at_once, waiting) = two_builds_at_a_gate("locked")?;
    assert_eq!(at_once, 1, "two steps used a locked cache mount at once");
    assert!(
        waiting,
        "the second build was never seen waiting on the cache mount"
    );
    Ok(())
}

#[test]
fn shared_cache_mounts_are_used_at_once() -> R {
    // Reference: sharing=shared (the default) lets concurrent writers use the mount at once.
    let (at_once, waiting) = two_builds_at_a_gate("shared")?;
    assert_eq!(at_once, 2, "shared cache mount users were serialised");
    assert!(!waiting);
    Ok(())
}

#[test]
fn bind_from_the_context_is_keyed_by_exactly_what_it_exposes() -> R {
    // Reference: type=bind (the default) "allows binding files or directories to the build
    // container", read-only, from the context by default, `source` inside it; BuildKit's
    // context honours .dockerignore.
    let env = Env::new()?;
    let ctx = env.context(
        "bind",
        "FROM busybox\nRUN --mount=type=bind,source=src,target=/src \
         ls /src && cat /src/a.txt > /copied && touch /src/new 2>/dev/null; echo ro=$?\n",
    )?;
    fs::create_dir(ctx.join("src"))?;
    fs::write(ctx.join("src/a.txt"), "version 1")?;
    fs::write(ctx.join("src/skip.log"), "ignored")?;
    fs::write(ctx.join(".dockerignore"), "src/*.log\n")?;
    let log = env.build(&ctx, &["-t", "bind:1"])?;
    let lines = printed(&log);
    assert!(lines.contains(&"a.txt".to_string()), "{log}");
    assert!(
        !lines.contains(&"skip.log".to_string()),
        "an ignored file was shown:\n{log}"
    );
    assert!(
        lines.contains(&"ro=1".to_string()),
        "the bind was writable:\n{log}"
    );
    let rootfs = env.unpack("bind:1")?.join("rootfs");
    assert_eq!(fs::read_to_string(rootfs.join("copied"))?, "version 1");
    assert!(
        !rootfs.join("src").exists(),
        "the mountpoint is in the image"
    );

    // Files it does not expose change nothing; one it exposes runs the step again.
    fs::write(ctx.join("src/skip.log"), "changed but ignored")?;
    fs::write(ctx.join("a.txt"), "outside the source")?;
    let log = env.build(&ctx, &["-t", "bind:2"])?;
    assert!(step_cached(&log, "RUN --mount=type=bind")?, "{log}");
    fs::write(ctx.join("src/a.txt"), "version 2")?;
    let log = env.build(&ctx, &["-t", "bind:3"])?;
    assert_eq!(ran_steps(&log).len(), 1, "{log}");
    let rootfs = env.unpack("bind:3")?.join("rootfs");
    assert_eq!(fs::read_to_string(rootfs.join("copied"))?, "version 2");
    Ok(())
}

#[test]
fn rw_bind_writes_are_discarded_and_binds_come_from_stages() -> R {
    // Reference: `rw` "allow writes on the mount; written data will be discarded"; `from`
    // "build stage, context, or image name for the root of the source".
    let env = Env::new()?;
    let ctx = env.context(
        "binds",
        concat!(
            "FROM busybox AS build\n",
            "RUN mkdir /out && echo built > /out/artifact\n",
            "FROM busybox\n",
            "RUN --mount=type=bind,target=/w,rw echo scribble > /w/a.txt && touch /w/new\n",
            "RUN --mount=type=bind,from=build,source=/out,target=/in cp /in/artifact /artifact\n",
        ),
    )?;
    env.build(&ctx, &["-t", "binds:1"])?;
    assert_eq!(fs::read_to_string(ctx.join("a.txt"))?, "binds");
    assert!(
        !ctx.join("new").exists(),
        "a rw bind wrote into the context"
    );
    let rootfs = env.unpack("binds:1")?.join("rootfs");
    assert_eq!(fs::read_to_string(rootfs.join("artifact"))?, "built\n");
    for gone in ["w", "in", "out"] {
        assert!(!rootfs.join(gone).exists(), "/{gone} is in the image");
    }
    Ok(())
}

#[test]
fn tmpfs_mount_is_sized_and_leaves_nothing() -> R {
    // Reference: type=tmpfs "mounts tmpfs in the build container"; `size` its upper limit.
    let env = Env::new()?;
    let ctx = env.context(
        "tmpfs",
        "FROM busybox\nRUN --mount=type=tmpfs,target=/scratch,size=1m \
         grep -c ' /scratch tmpfs ' /proc/mounts; echo x > /scratch/f; \
         dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>/dev/null; echo dd=$?\n",
    )?;
    let log = env.build(&ctx, &["-t", "tmpfs:1"])?;
    let lines = printed(&log);
    assert!(
        lines.contains(&"1".to_string()),
        "no tmpfs at /scratch:\n{log}"
    );
    assert!(
        lines.contains(&"dd=1".to_string()),
        "the size limit did not hold:\n{log}"
    );
    let rootfs = env.unpack("tmpfs:1")?.join("rootfs");
    assert!(!rootfs.join("scratch").exists());
    Ok(())
}

const MARKER: &str = "strata-secret-marker-5e1f0a9c";

#[test]
fn secrets_reach_the_step_and_nothing_else() -> R {
    // Reference: type=secret "allows the build container to access secure files such as
    // private keys without baking them into the image or build cache"; target defaults to
    // /run/secrets/<id>, `env=` exposes it as a variable, mode defaults to 0400, uid to 0;
    // an optional secret that was not given is simply absent.
    let env = Env::new()?;
    let secret = env.path("token.txt");
    fs::write(&secret, MARKER)?;
    // The steps check the value by its tail only, so the Dockerfile (and the image's
    // history) never holds the whole marker.
    let ctx = env.context(
        "secret",
        concat!(
            "FROM busybox\n",
            "RUN --mount=type=secret,id=tok grep -q -- '-5e1f0a9c$' /run/secrets/tok ",
            "&& stat -c 'mode %a %u' /run/secrets/tok && echo file-ok\n",
            "RUN --mount=type=secret,id=tok,env=TOKEN,target=/etc/tok.conf,mode=0440,uid=1000 ",
            "case \"$TOKEN\" in *-5e1f0a9c) echo env-ok;; esac; stat -c 'conf %a %u' /etc/tok.conf\n",
            "RUN --mount=type=secret,id=absent ls /run/secrets/absent 2>/dev/null; echo optional=$?\n",
        ),
    )?;
    let src = format!("id=tok,src={}", secret.display());
    let run = env
        .build_command(&ctx, &["-t", "sec:1", "--secret", &src])?
        .ok()?;
    let lines = printed(&run.stderr);
    for want in [
        "mode 400 0",
        "file-ok",
        "conf 440 1000",
        "env-ok",
        "optional=1",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "no {want:?} in:\n{}",
            run.stderr
        );
    }
    let rootfs = env.unpack("sec:1")?.join("rootfs");
    assert!(
        !rootfs.join("run/secrets").exists(),
        "/run/secrets is in the image"
    );
    assert!(
        !rootfs.join("etc/tok.conf").exists(),
        "the secret's target is in the image"
    );
    assert!(
        !grep_r(MARKER, &rootfs)?,
        "the secret is in the image's files"
    );
    let config = String::from_utf8(env.config_bytes("sec:1")?)?;
    assert!(
        !config.contains(MARKER),
        "the secret is in the config or history"
    );
    assert!(
        !config.contains("TOKEN="),
        "the secret's variable is in the config"
    );
    Ok(())
}

#[test]
fn a_secret_leaves_no_trace_in_the_root_output_or_key() -> R {
    let env = Env::new()?;
    let secret = env.path("token.txt");
    fs::write(&secret, MARKER)?;
    let ctx = env.context(
        "secret2",
        "FROM busybox\nRUN --mount=type=secret,id=tok,required,env=TOK,target=/run/secrets/tok \
         wc -c /run/secrets/tok && test -n \"$TOK\" && cp /run/secrets/tok /tok-len-check \
         && wc -c < /tok-len-check > /len && rm /tok-len-check\n",
    )?;
    let src = format!("id=tok,src={}", secret.display());
    let run = env
        .build_command(&ctx, &["-t", "s:1", "--secret", &src, "--explain-cache"])?
        .ok()?;
    assert!(!run.stdout.contains(MARKER) && !run.stderr.contains(MARKER));
    assert!(
        !grep_r(MARKER, &env.root())?,
        "the secret is under $STRATA_ROOT"
    );
    let rootfs = env.unpack("s:1")?.join("rootfs");
    assert!(!grep_r(MARKER, &rootfs)?, "the secret is in the image");
    assert_eq!(
        fs::read_to_string(rootfs.join("len"))?.trim(),
        MARKER.len().to_string()
    );
    // A new value does not invalidate the step (BuildKit keys secrets by id only).
    fs::write(&secret, "another value")?;
    let run = env
        .build_command(&ctx, &["-t", "s:2", "--secret", &src])?
        .ok()?;
    assert!(
        step_cached(&run.stderr, "RUN --mount=type=secret")?,
        "{}",
        run.stderr
    );
    // `required`: a build without it fails naming the id.
    let run = env
        .build_command(&ctx, &["-t", "s:3", "--no-cache"])?
        .output()?;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("secret tok is required"),
        "{}",
        run.stderr
    );
    Ok(())
}

/// The real `ssh-add` with its libraries and loader, for a busybox step to run.
fn ssh_add_tools(into: &Path) -> Res<()> {
    let ssh_add = Path::new("/usr/bin/ssh-add");
    let lib = into.join("lib");
    fs::create_dir_all(&lib)?;
    fs::copy(ssh_add, into.join("ssh-add"))?;
    let ldd = tool("ldd", &["/usr/bin/ssh-add"])?;
    for line in String::from_utf8(ldd.stdout)?.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` or `/lib64/ld-linux… (0x…)`.
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        if let Some(path) = path {
            let name = path.file_name().ok_or("a library without a name")?;
            let dest = if name.to_string_lossy().starts_with("ld-linux") {
                into.join("ld.so")
            } else {
                lib.join(name)
            };
            fs::copy(&path, dest)?;
        }
    }
    Ok(())
}

#[test]
fn ssh_agent_is_forwarded_and_lists_its_key() -> R {
    // Reference: type=ssh "allows the build container to access SSH keys via SSH agents";
    // the socket is at /run/buildkit/ssh_agent.0 with SSH_AUTH_SOCK set; `required`.
    let env = Env::new()?;
    let agent_dir = env.path("agent");
    fs::create_dir(&agent_dir)?;
    let sock = agent_dir.join("agent.sock");
    let key = agent_dir.join("id_ed25519");
    let sock_s = sock.to_str().ok_or("non-UTF-8 path")?;
    let key_s = key.to_str().ok_or("non-UTF-8 path")?;
    tool(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "strata-ssh-test-key",
            "-f",
            key_s,
        ],
    )?;
    let agent = tool("ssh-agent", &["-a", sock_s])?;
    let agent_pid: Option<i32> = String::from_utf8_lossy(&agent.stdout)
        .split(';')
        .find_map(|f| f.trim().strip_prefix("SSH_AGENT_PID=").map(str::to_string))
        .and_then(|p| p.parse().ok());
    // Ends the agent this test started, by the pid it printed, even when an assertion fails.
    struct Agent(i32);
    impl Drop for Agent {
        fn drop(&mut self) {
            let _ = Command::new("kill").arg(self.0.to_string()).status();
        }
    }
    let _agent = Agent(agent_pid.ok_or("ssh-agent printed no pid")?);
    {
        let add = Command::new("ssh-add")
            .arg(key_s)
            .env("SSH_AUTH_SOCK", &sock)
            .output()?;
        assert!(
            add.status.success(),
            "{}",
            String::from_utf8_lossy(&add.stderr)
        );
        let ctx = env.context(
            "ssh",
            "FROM busybox\nRUN --mount=type=bind,source=tools,target=/tools --mount=type=ssh \
             echo sock=$SSH_AUTH_SOCK && /tools/ld.so --library-path /tools/lib /tools/ssh-add -l\n\
             RUN --mount=type=ssh,id=other,required true\n",
        )?;
        ssh_add_tools(&ctx.join("tools"))?;
        let ssh = format!("default={sock_s}");
        let run = env
            .build_command(&ctx, &["-t", "ssh:1", "--ssh", &ssh])?
            .output()?;
        // The second RUN requires an agent `other` that was not given.
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(
            run.stderr.contains("ssh agent other is required"),
            "{}",
            run.stderr
        );
        let lines = printed(&run.stderr);
        assert!(
            lines.iter().any(|l| l == "sock=/run/buildkit/ssh_agent.0"),
            "{}",
            run.stderr
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("strata-ssh-test-key") && l.contains("ED25519")),
            "ssh-add -l inside the step did not list the agent's key:\n{}",
            run.stderr
        );
    }
    // Reference (`docker build --ssh`): `default=KEYFILE` gives the key itself; strata
    // loads it into an agent of its own for the build, ended with it.
    let ctx = env.context(
        "ssh-key",
        "FROM busybox\nRUN --mount=type=bind,source=tools,target=/tools --mount=type=ssh \
         /tools/ld.so --library-path /tools/lib /tools/ssh-add -l\n",
    )?;
    ssh_add_tools(&ctx.join("tools"))?;
    let by_key = format!("default={key_s}");
    let run = env
        .build_command(&ctx, &["-t", "ssh:2", "--ssh", &by_key])?
        .ok()?;
    assert!(
        printed(&run.stderr)
            .iter()
            .any(|l| l.contains("strata-ssh-test-key")),
        "the key file's agent did not list it:\n{}",
        run.stderr
    );
    let root = env.root().to_string_lossy().into_owned();
    for entry in fs::read_dir("/proc")?.flatten() {
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !(cmdline.starts_with("ssh-agent") && cmdline.contains(&root)),
                "the build's ssh-agent is still running: {cmdline}"
            );
        }
    }
    Ok(())
}

#[test]
fn oci_runtimes_make_the_same_mounts() -> R {
    // The same cache, bind, tmpfs and secret mounts under runc and crun.
    let env = Env::new()?;
    let secret = env.path("token.txt");
    fs::write(&secret, MARKER)?;
    let ctx = env.context(
        "oci",
        "FROM busybox\nRUN --mount=type=cache,target=/c --mount=type=bind,target=/ctx \
         --mount=type=tmpfs,target=/t --mount=type=secret,id=tok \
         cat /ctx/a.txt && echo && wc -c < /run/secrets/tok && grep -c ' /t tmpfs ' /proc/mounts \
         && echo hit >> /c/hits && wc -l < /c/hits\n",
    )?;
    let src = format!("id=tok,src={}", secret.display());
    for (i, rt) in ["runc", "crun"].iter().enumerate() {
        let log = env.build(&ctx, &["--runtime", rt, "--no-cache", "--secret", &src])?;
        let lines = printed(&log);
        let want = [
            "oci".to_string(),
            MARKER.len().to_string(),
            "1".to_string(),
            (i + 1).to_string(),
        ];
        assert!(
            want.iter().all(|w| lines.contains(w)),
            "--runtime {rt}: want {want:?} in:\n{log}"
        );
    }
    assert!(!grep_r(MARKER, &env.root())?);
    Ok(())
}
