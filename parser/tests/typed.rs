//! The typed layer: each instruction and flag lands in its field, and each
//! validation error names the right place.
#![allow(clippy::unwrap_used)]

use std::time::Duration;
use strata_parser::*;

/// The instructions of the last stage.
fn instrs(src: &str) -> Vec<InstructionKind> {
    let df = parse(src).unwrap_or_else(|e| panic!("{}", render(&e, "Dockerfile", src)));
    df.stages
        .last()
        .unwrap()
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect()
}

fn one(body: &str) -> InstructionKind {
    instrs(&format!("FROM busybox\n{body}\n")).remove(0)
}

/// The message and (line, column) of the error `src` gives.
fn error(src: &str) -> (String, (u32, u32)) {
    let e = parse(src).expect_err("must be rejected");
    (e.message, (e.span.line, e.span.column))
}

#[test]
fn stages_names_platform_and_global_args() {
    let df = parse(
        "ARG V=1\nARG W\nFROM --platform=$BUILDPLATFORM img:$V AS Build\nRUN true\nFROM build\n",
    )
    .unwrap();
    assert_eq!(df.global_args.len(), 2);
    assert_eq!(df.stages.len(), 2);
    assert_eq!(df.stages[0].name.as_deref(), Some("Build"));
    assert_eq!(df.stages[0].base, "img:$V");
    assert_eq!(
        df.stages[0].platform.as_ref().unwrap().value,
        "$BUILDPLATFORM"
    );
    assert_eq!(df.stages[1].name, None);
    assert_eq!(df.stages[1].base, "build");
    assert_eq!(df.stages[0].span.line, 3);
}

#[test]
fn run_forms_and_flags() {
    assert_eq!(
        one("RUN echo hi"),
        InstructionKind::Run {
            mounts: vec![],
            network: None,
            security: None,
            command: Command::Shell("echo hi".into()),
            heredocs: vec![],
        }
    );
    let InstructionKind::Run {
        command,
        network,
        security,
        ..
    } = one(r#"RUN --network=none --security=insecure ["sh", "-c", "true"]"#)
    else {
        panic!()
    };
    assert_eq!(
        command,
        Command::Exec(vec!["sh".into(), "-c".into(), "true".into()])
    );
    assert_eq!(network.unwrap().value, NetworkMode::None);
    assert_eq!(security.unwrap().value, Security::Insecure);
    // Invalid JSON falls back to the shell form, as in BuildKit.
    let InstructionKind::Run { command, .. } = one(r#"RUN ["echo", "hello"]this is invalid"#)
    else {
        panic!()
    };
    assert!(matches!(command, Command::Shell(_)));
}

fn mount(spec: &str) -> Mount {
    let InstructionKind::Run { mut mounts, .. } = one(&format!("RUN --mount={spec} true")) else {
        panic!()
    };
    mounts.remove(0)
}

#[test]
fn mounts_of_every_type() {
    let m = mount("target=/ctx");
    assert_eq!(
        (m.kind, m.target.as_deref(), m.readonly),
        (MountType::Bind, Some("/ctx"), true)
    );
    let m = mount("type=bind,from=build,src=/out,dst=/in,rw");
    assert_eq!(m.from.as_deref(), Some("build"));
    assert_eq!(m.source.as_deref(), Some("/out"));
    assert!(!m.readonly);
    let m =
        mount("type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0700,uid=1000,gid=1000");
    assert_eq!(m.kind, MountType::Cache);
    assert_eq!(m.sharing, Sharing::Locked);
    assert_eq!(
        (m.mode, m.uid, m.gid),
        (Some(0o700), Some(1000), Some(1000))
    );
    assert!(!m.readonly);
    let m = mount("type=tmpfs,target=/tmp,size=64m");
    assert_eq!((m.kind, m.size.as_deref()), (MountType::Tmpfs, Some("64m")));
    let m = mount("type=secret,id=token,required=true");
    assert_eq!(m.kind, MountType::Secret);
    assert_eq!(m.target.as_deref(), Some("/run/secrets/token"));
    assert!(m.required);
    let m = mount("type=secret,id=aws,env=AWS_KEY");
    assert_eq!((m.env.as_deref(), m.target), (Some("AWS_KEY"), None));
    let m = mount("type=ssh");
    assert_eq!(m.kind, MountType::Ssh);
    let m = mount("from=binaries");
    assert_eq!(
        m.target, None,
        "no target: the working directory, as BuildKit does"
    );
}

#[test]
fn command_instructions() {
    assert_eq!(
        one("CMD [\"a\", \"b\"]"),
        InstructionKind::Cmd(Command::Exec(vec!["a".into(), "b".into()]))
    );
    assert_eq!(one("CMD []"), InstructionKind::Cmd(Command::Exec(vec![])));
    assert_eq!(
        one("ENTRYPOINT run me"),
        InstructionKind::Entrypoint(Command::Shell("run me".into()))
    );
    assert_eq!(
        one(r#"SHELL ["/bin/bash", "-c"]"#),
        InstructionKind::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
}

#[test]
fn key_value_instructions() {
    assert_eq!(
        one(r#"ENV A=1 B="two words""#),
        InstructionKind::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"two words\"".into())
        ])
    );
    assert_eq!(
        one("ENV LEGACY value with spaces"),
        InstructionKind::Env(vec![("LEGACY".into(), "value with spaces".into())])
    );
    assert_eq!(
        one("LABEL a=b"),
        InstructionKind::Label(vec![("a".into(), "b".into())])
    );
    assert_eq!(
        one("ARG A B=2 C="),
        InstructionKind::Arg(vec![
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into())
            },
            ArgDecl {
                name: "C".into(),
                default: Some(String::new())
            },
        ])
    );
}

#[test]
fn single_value_instructions() {
    assert_eq!(
        one("EXPOSE 80 443/udp"),
        InstructionKind::Expose(vec!["80".into(), "443/udp".into()])
    );
    assert_eq!(
        one(r#"VOLUME ["/a", "/b"]"#),
        InstructionKind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        one("VOLUME /a /b"),
        InstructionKind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(one("USER app:app"), InstructionKind::User("app:app".into()));
    assert_eq!(one("WORKDIR /src"), InstructionKind::Workdir("/src".into()));
    assert_eq!(
        one("STOPSIGNAL SIGTERM"),
        InstructionKind::StopSignal("SIGTERM".into())
    );
    assert_eq!(
        one("MAINTAINER me <me@x>"),
        InstructionKind::Maintainer("me <me@x>".into())
    );
}

#[test]
fn healthcheck() {
    assert_eq!(one("HEALTHCHECK NONE"), InstructionKind::Healthcheck(None));
    let InstructionKind::Healthcheck(Some(h)) = one(
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --start-interval=1s --retries=3 CMD curl -f http://x/",
    ) else {
        panic!()
    };
    assert_eq!(h.interval, Some(Duration::from_secs(90)));
    assert_eq!(h.timeout, Some(Duration::from_millis(500)));
    assert_eq!(h.start_period, Some(Duration::from_secs(2)));
    assert_eq!(h.start_interval, Some(Duration::from_secs(1)));
    assert_eq!(h.retries, Some(3));
    assert_eq!(h.command, Command::Shell("curl -f http://x/".into()));
    let InstructionKind::Healthcheck(Some(h)) = one(r#"HEALTHCHECK CMD ["true"]"#) else {
        panic!()
    };
    assert_eq!(h.command, Command::Exec(vec!["true".into()]));
}

#[test]
fn copy_and_add_flags() {
    let InstructionKind::Copy(c) = one(
        "COPY --from=build --chown=app:staff --chmod=0755 --link --parents --exclude=*.md --exclude=tmp a b /dst/",
    ) else {
        panic!()
    };
    assert_eq!(c.from.unwrap().value, "build");
    assert_eq!(
        c.chown.unwrap().value,
        Chown {
            user: "app".into(),
            group: Some("staff".into())
        }
    );
    assert_eq!(c.chmod.unwrap().value, Chmod::Octal(0o755));
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, vec!["*.md".to_string(), "tmp".to_string()]);
    assert_eq!(c.sources, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(c.dest, "/dst/");
    let InstructionKind::Copy(c) = one("COPY --chmod=${mode} --link=false a b") else {
        panic!()
    };
    assert_eq!(c.chmod.unwrap().value, Chmod::Unexpanded("${mode}".into()));
    assert!(!c.link);
    let InstructionKind::Add(a, o) =
        one("ADD --checksum=sha256:abc --keep-git-dir --unpack=false https://x/y.tar.gz /d/")
    else {
        panic!()
    };
    assert_eq!(a.sources, vec!["https://x/y.tar.gz".to_string()]);
    assert_eq!(o.checksum.as_deref(), Some("sha256:abc"));
    assert!(o.keep_git_dir);
    assert_eq!(o.unpack, Some(false));
}

#[test]
fn copy_heredoc_sources() {
    let InstructionKind::Copy(c) = one("COPY <<A <<B /dst/\nhello\nA\nworld\nB") else {
        panic!()
    };
    assert_eq!(c.sources, vec!["<<A".to_string(), "<<B".to_string()]);
    assert_eq!(c.heredocs.len(), 2);
    assert_eq!(c.heredocs[0].content, "hello\n");
    assert_eq!(c.heredocs[1].name, "B");
}

#[test]
fn onbuild_wraps_one_instruction() {
    let InstructionKind::Onbuild(inner) = one("ONBUILD RUN --mount=type=cache,target=/c make")
    else {
        panic!()
    };
    assert!(matches!(inner.kind, InstructionKind::Run { ref mounts, .. } if mounts.len() == 1));
    assert_eq!(error("FROM a\nONBUILD ONBUILD RUN x\n").1, (2, 9));
    assert_eq!(error("FROM a\nONBUILD FROM b\n").1, (2, 9));
    assert_eq!(error("FROM a\nonbuild maintainer me\n").1, (2, 9));
}

#[test]
fn validation_errors_point_at_the_word() {
    let cases: &[(&str, &str, (u32, u32))] = &[
        ("FROM a\nRUNN x\n", "unknown instruction: RUNN", (2, 1)),
        ("RUN x\nFROM a\n", "RUN comes before the first FROM", (1, 1)),
        (
            "FROM a\nCOPY --frm=b x y\n",
            "unknown flag for COPY: --frm",
            (2, 6),
        ),
        (
            "FROM a\nRUN  --network=bridge x\n",
            "unsupported network mode \"bridge\"",
            (2, 6),
        ),
        (
            "FROM a\nRUN --security=root x\n",
            "unsupported security mode \"root\"",
            (2, 5),
        ),
        (
            "FROM a\nCOPY --chmod=8 x y\n",
            "invalid --chmod value \"8\"",
            (2, 6),
        ),
        (
            "FROM a\nCOPY --keep-git-dir x y\n",
            "unknown flag for COPY: --keep-git-dir",
            (2, 6),
        ),
        (
            "FROM a\nCOPY x\n",
            "COPY needs a source and a destination",
            (2, 1),
        ),
        (
            "FROM a\nSHELL sh -c\n",
            "SHELL requires the arguments as a JSON array",
            (2, 7),
        ),
        (
            "FROM a\nHEALTHCHECK --timeout=1y CMD x\n",
            "invalid duration for --timeout: \"1y\"",
            (2, 13),
        ),
        (
            "FROM a\nHEALTHCHECK CONNECT x\n",
            "unknown HEALTHCHECK type \"CONNECT\"",
            (2, 13),
        ),
        (
            "FROM a\nEXPOSE --x 80\n",
            "unknown flag for EXPOSE: --x",
            (2, 8),
        ),
        (
            "FROM a\nRUN --mount=type=foo,target=/x y\n",
            "unsupported mount type \"foo\"",
            (2, 5),
        ),
        (
            "FROM a\nCOPY --link=maybe x y\n",
            "--link expects true or false, not \"maybe\"",
            (2, 6),
        ),
        ("FROM\n", "FROM needs an image", (1, 1)),
    ];
    let mut failures = Vec::new();
    for (src, message, place) in cases {
        match parse(src) {
            Ok(_) => failures.push(format!("{src:?}: accepted")),
            Err(e) if e.message != *message || (e.span.line, e.span.column) != *place => failures
                .push(format!(
                    "{src:?}: got {:?} at {:?}",
                    e.message,
                    (e.span.line, e.span.column)
                )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
