//! RUN's network through the real binary on every runtime: by default a private namespace
//! with outbound NAT (slirp4netns) that reaches a server standing in for the internet (in a
//! network namespace of its own, on a veth pair with TEST-NET-2 addresses) but neither a
//! server on the host's 127.0.0.1 nor a host abstract unix socket; the host's network and
//! insecure steps only with their entitlements (`--allow`), refused before anything runs
//! with the Dockerfile line and the flag. Every test checks the host canaries.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use strata_fixtures::network::{
    AbstractCanary, CANARY_BODY, INTERNET_BODY, Internet, LoopbackCanary, abstract_probe,
};

use crate::common::{Env, R, Res, procs};

const RUNTIMES: [&str; 3] = ["builtin", "runc", "crun"];

/// Builds `ctx` with `flags` and returns the file `/out.txt` of the result.
fn build_out(env: &Env, ctx: &Path, name: &str, flags: &[&str]) -> Res<String> {
    let dest = env.path(&format!("out-{name}"));
    let out = format!("type=local,dest={}", dest.display());
    let mut args = vec!["--no-cache", "-o", &out];
    args.extend_from_slice(flags);
    env.build(ctx, &args)?;
    Ok(fs::read_to_string(dest.join("out.txt"))?)
}

#[test]
fn run_reaches_neither_the_hosts_loopback_nor_its_abstract_sockets() -> R {
    let env = Env::new()?;
    let http = LoopbackCanary::start()?;
    let socket = AbstractCanary::start()?;
    let port = http.port;
    let probe = format!(
        "FROM busybox\nCOPY abstract-connect /bin/\n\
         RUN (timeout 10 wget -q -O- http://127.0.0.1:{port}/; echo \"loopback rc=$?\"; \
         timeout 10 wget -q -O- http://10.0.2.2:{port}/; echo \"gateway rc=$?\"; \
         abstract-connect {name}; echo \"abstract rc=$?\") > /out.txt 2>&1\n",
        name = socket.name
    );
    let ctx = env.context("probe", &probe)?;
    abstract_probe(&ctx)?;
    for rt in RUNTIMES {
        let seen = build_out(&env, &ctx, rt, &["--runtime", rt])?;
        assert!(!seen.contains(CANARY_BODY), "{rt}: {seen}");
        assert!(!seen.contains("connected\n"), "{rt}: {seen}");
        assert!(seen.contains("connect: Connection refused"), "{rt}: {seen}");
        for probe in ["loopback", "gateway", "abstract"] {
            assert!(
                seen.contains(&format!("{probe} rc=")) && !seen.contains(&format!("{probe} rc=0")),
                "{rt}: {probe}: {seen}"
            );
        }
        assert_eq!(
            http.hits(),
            0,
            "{rt}: the host's loopback server was reached"
        );
        assert_eq!(
            socket.hits(),
            0,
            "{rt}: the host's abstract socket was reached"
        );
    }
    // With the host's network (and its entitlement) the same probes do get through.
    let seen = build_out(
        &env,
        &ctx,
        "host",
        &["--network=host", "--allow", "network.host"],
    )?;
    assert!(seen.contains(CANARY_BODY), "{seen}");
    assert!(seen.contains("connected\n"), "{seen}");
    assert_eq!((http.hits(), socket.hits()), (1, 1));
    Ok(())
}

#[test]
fn an_outbound_fetch_goes_through_the_nat() -> R {
    let env = Env::new()?;
    let canary = LoopbackCanary::start()?;
    // Blocks 40.. of 198.51.100.0/24: the sandbox's tests use the first ones.
    let internet = Internet::start(40)?;
    let ctx = env.context(
        "fetch",
        &format!(
            "FROM busybox\nRUN timeout 20 wget -q -O /out.txt {}\n",
            internet.url()
        ),
    )?;
    for rt in RUNTIMES {
        let fetched = build_out(&env, &ctx, rt, &["--runtime", rt])?;
        assert_eq!(fetched, format!("{INTERNET_BODY}\n"), "{rt}");
        assert_eq!(
            canary.hits(),
            0,
            "{rt}: the host's loopback server was reached"
        );
    }
    Ok(())
}

#[test]
fn host_networking_needs_its_entitlement() -> R {
    let env = Env::new()?;
    let canary = LoopbackCanary::start()?;
    let url = format!("http://127.0.0.1:{}/", canary.port);
    let ctx = env.context(
        "host-run",
        &format!("FROM busybox\nRUN echo first\nRUN --network=host wget -q -O /out.txt {url}\n"),
    )?;
    let refused = env.build_command(&ctx, &[])?.output()?;
    let err = &refused.stderr;
    assert_eq!(refused.code, Some(2), "{err}");
    assert!(err.contains("Dockerfile:3:5]"), "the line is named: {err}");
    // miette's caret: the flag underlined, pointing down to "here".
    assert!(
        err.contains("·     ───────┬──────\n") && err.contains("╰── here"),
        "the flag is underlined: {err}"
    );
    assert!(err.contains("RUN --network=host"), "{err}");
    assert!(
        err.contains("--allow network.host"),
        "the flag is named: {err}"
    );
    assert!(!err.contains("2/3] RUN echo first"), "a step ran: {err}");
    assert_eq!(canary.hits(), 0);

    // The build's own --network=host needs it too.
    let plain = env.context("host-flag", "FROM busybox\nRUN echo hello\n")?;
    let refused = env.build_command(&plain, &["--network=host"])?.output()?;
    let err = &refused.stderr;
    assert_eq!(refused.code, Some(2), "{err}");
    assert!(
        err.contains("--network=host needs the network.host entitlement"),
        "{err}"
    );
    assert!(err.contains("--allow network.host"), "{err}");
    assert!(!err.contains("] RUN echo hello"), "a step ran: {err}");

    let fetched = build_out(&env, &ctx, "allowed", &["--allow", "network.host"])?;
    assert_eq!(fetched, format!("{CANARY_BODY}\n"));
    assert_eq!(canary.hits(), 1, "only the entitled build reached the host");
    Ok(())
}

#[test]
fn insecure_steps_need_their_entitlement() -> R {
    let env = Env::new()?;
    let canary = LoopbackCanary::start()?;
    let caps = "grep -E '^(CapEff|Seccomp):' /proc/self/status";
    let ctx = env.context(
        "insecure",
        &format!("FROM busybox\nRUN --security=insecure {caps} > /out.txt\n"),
    )?;
    let refused = env.build_command(&ctx, &[])?.output()?;
    let err = &refused.stderr;
    assert_eq!(refused.code, Some(2), "{err}");
    assert!(err.contains("Dockerfile:2:5]"), "{err}");
    assert!(err.contains("╰── here"), "{err}");
    assert!(err.contains("RUN --security=insecure"), "{err}");
    assert!(err.contains("--allow security.insecure"), "{err}");

    // Every capability the host lets us (and so strata) have.
    let status = fs::read_to_string("/proc/self/status")?;
    let all = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:\t"))
        .ok_or("no CapBnd in /proc/self/status")?;
    for rt in RUNTIMES {
        let seen = build_out(
            &env,
            &ctx,
            &format!("insecure-{rt}"),
            &["--runtime", rt, "--allow", "security.insecure"],
        )?;
        assert_eq!(seen, format!("CapEff:\t{all}\nSeccomp:\t0\n"), "{rt}");
    }
    // --security=sandbox is the default, and allowed as such.
    let sandboxed = env.context(
        "sandboxed",
        &format!("FROM busybox\nRUN --security=sandbox {caps} > /out.txt\n"),
    )?;
    let seen = build_out(&env, &sandboxed, "sandboxed", &[])?;
    assert_eq!(seen, "CapEff:\t00000000a80425fb\nSeccomp:\t2\n");
    assert_eq!(canary.hits(), 0);
    Ok(())
}

#[test]
fn unknown_entitlements_are_refused() -> R {
    let env = Env::new()?;
    let ctx = env.context("unknown", "FROM busybox\nRUN echo hello\n")?;
    let out = env
        .build_command(&ctx, &["--allow", "network.everything"])?
        .output()?;
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("network.everything"), "{}", out.stderr);
    Ok(())
}

#[test]
fn the_nat_helper_dies_with_a_killed_strata() -> R {
    let env = Env::new()?;
    let ctx = env.context("killed", "FROM busybox\nRUN echo started && sleep 5\n")?;
    // A killed build's sandbox folder lands here, inside the test's folder.
    let tmp = env.path("tmp");
    fs::create_dir_all(&tmp)?;
    let mut child = env
        .build_command(&ctx, &["--no-cache"])?
        .env("TMPDIR", &tmp)
        .spawn()?;
    // slirp4netns names its namespace through strata's descriptor: /proc/<strata>/fd/N.
    let needle = format!("/proc/{}/fd/", child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    let helpers = loop {
        let found = procs::with_arg(&needle)?;
        if !found.is_empty() || Instant::now() > deadline || child.try_wait()?.is_some() {
            break found;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let killed = child.kill();
    child.wait()?;
    killed?;
    let [helper] = helpers[..] else {
        return Err(format!("expected one slirp4netns serving the step, found {helpers:?}").into());
    };
    let gone_by = Instant::now() + Duration::from_secs(5);
    while fs::metadata(format!("/proc/{helper}")).is_ok() {
        if Instant::now() > gone_by {
            return Err(format!("slirp4netns {helper} outlived the killed strata").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}
