//! Dockerfile → graph → (file ops) filesystem, for the subset that needs no sandbox.

use std::sync::Arc;

use strata_solver::ImageConfig;
use strata_solver::dockerfile::{
    BuildArgs, LowerError, LowerOptions, Lowered, lower, parse_build_context,
};
use strata_solver::graph::{ImageSource, Op, SourceImageOp};
use strata_solver::{ImageError, ImageResolver, ResolvedImage};

type R = Result<(), Box<dyn std::error::Error>>;

fn lower_src(src: &str, opts: &LowerOptions) -> Result<Lowered, Box<dyn std::error::Error>> {
    let df = strata_parser::parse(src).map_err(|e| format!("{e:?}"))?;
    Ok(lower(&df, src, opts)?)
}

#[test]
fn metadata_folds_into_config() -> R {
    let src = "ARG BASE=scratch\nFROM ${BASE}\nARG NAME=world\nENV GREETING=\"hello ${NAME}\"\nWORKDIR /app\nWORKDIR sub\nUSER 1000\nEXPOSE 80 53/udp\nLABEL a=b\nCMD [\"x\"]\nENTRYPOINT [\"/bin/app\"]\nCMD run me\n";
    let opts = LowerOptions {
        build_args: BuildArgs::parse(["NAME=strata"])?,
        ..LowerOptions::default()
    };
    let l = lower_src(src, &opts)?;
    let c = &l.config;
    assert!(c.env.iter().any(|e| e.starts_with("PATH=")));
    assert!(
        c.env.contains(&"GREETING=hello strata".to_string()),
        "{:?}",
        c.env
    );
    assert_eq!(c.working_dir, "/app/sub");
    assert_eq!(c.user, "1000");
    assert!(c.exposed_ports.contains("80/tcp") && c.exposed_ports.contains("53/udp"));
    assert_eq!(c.labels.get("a").map(String::as_str), Some("b"));
    assert_eq!(c.entrypoint, Some(vec!["/bin/app".to_string()]));
    assert_eq!(
        c.cmd,
        Some(vec!["/bin/sh".to_string(), "-c".into(), "run me".into()])
    );
    // scratch + 2 WORKDIR vertices
    assert_eq!(l.graph.ancestors(&[l.target]).len(), 3);
    Ok(())
}

#[test]
fn run_env_and_build_context_and_target() -> R {
    let src = "FROM busybox AS base\nARG V=1\nENV E=2\nRUN echo $V $E\n\nFROM base AS other\nRUN false\n\nFROM scratch AS final\nCOPY --from=BASE /bin/sh /sh\n";
    let opts = LowerOptions {
        build_contexts: vec![parse_build_context(
            "busybox=oci-layout:///layouts/bb:busybox",
        )?],
        target: Some("base".into()),
        ..LowerOptions::default()
    };
    let l = lower_src(src, &opts)?;
    let ids = l.graph.ancestors(&[l.target]);
    assert_eq!(ids.len(), 2);
    let src_v = l.graph.vertex(ids[0]).ok_or("no vertex")?;
    assert_eq!(
        src_v.op,
        Op::SourceImage(SourceImageOp {
            source: ImageSource::Layout {
                path: "/layouts/bb".into(),
                reference: "busybox".into()
            },
            digest: None
        })
    );
    let run = l.graph.vertex(l.target).ok_or("no vertex")?;
    assert_eq!(run.name, "[base 2/2] RUN echo $V $E");
    // The name is the origin's display; the origin itself points at the source.
    let origin = run.origin.as_ref().ok_or("no origin")?;
    assert_eq!(
        (origin.stage.as_str(), origin.step, origin.steps),
        ("base", 2, 2)
    );
    assert_eq!(origin.instruction, "RUN echo $V $E");
    assert_eq!(
        src.get(origin.span.start..origin.span.end),
        Some("RUN echo $V $E")
    );
    match &run.op {
        Op::Exec(e) => {
            assert_eq!(e.argv, vec!["/bin/sh", "-c", "echo $V $E"]);
            assert!(e.env.contains(&"V=1".to_string()) && e.env.contains(&"E=2".to_string()));
        }
        other => return Err(format!("expected exec, got {other:?}").into()),
    }
    let full = lower_src(
        src,
        &LowerOptions {
            build_contexts: opts.build_contexts.clone(),
            ..LowerOptions::default()
        },
    )?;
    // final: scratch + COPY --from=base (source image + RUN); `other` pruned.
    assert_eq!(full.graph.ancestors(&[full.target]).len(), 4);
    assert!(matches!(
        lower_src(
            src,
            &LowerOptions {
                target: Some("nope".into()),
                ..LowerOptions::default()
            }
        )
        .err()
        .and_then(|e| e.downcast::<LowerError>().ok())
        .as_deref(),
        Some(LowerError::Ref { .. })
    ));
    Ok(())
}

/// A child stage (`FROM base AS other`) inherits its parent's ENV but not its
/// ARGs: Docker scopes an ARG to the stage that declares it.
#[test]
fn child_stage_does_not_inherit_parent_args() -> R {
    let src = "FROM scratch AS base\nARG V=1\nENV E=2\n\nFROM base AS other\nENV SEEN=\"[$V]\"\nWORKDIR /w$V\nRUN echo $V $E\n";
    let l = lower_src(src, &LowerOptions::default())?;
    let run = l.graph.vertex(l.target).ok_or("no vertex")?;
    assert_eq!(run.name, "[other 3/3] RUN echo $V $E");
    let Op::Exec(e) = &run.op else {
        return Err(format!("expected exec, got {:?}", run.op).into());
    };
    assert!(e.env.contains(&"E=2".to_string()), "{:?}", e.env);
    assert!(
        !e.env.iter().any(|kv| kv.starts_with("V=")),
        "the parent's ARG reached the child's RUN: {:?}",
        e.env
    );
    assert!(
        l.config.env.contains(&"SEEN=[]".to_string()),
        "the parent's ARG expanded in the child: {:?}",
        l.config.env
    );
    assert_eq!(l.config.working_dir, "/w");
    Ok(())
}

/// A resolver that knows one image, as the local store would report it.
#[derive(Debug)]
struct OneImage;

impl ImageResolver for OneImage {
    fn resolve(&self, source: &ImageSource) -> Result<ResolvedImage, ImageError> {
        match source {
            ImageSource::Store { reference } if reference == "base" => Ok(ResolvedImage {
                digest: format!("sha256:{}", "ab".repeat(32)),
                config: ImageConfig {
                    env: vec!["PATH=/bin".into(), "FROM_BASE=1".into()],
                    user: "app".into(),
                    working_dir: "/srv".into(),
                    on_build: vec!["RUN echo triggered".into(), "ENV T=1".into()],
                    ..ImageConfig::default()
                },
            }),
            _ => Err(ImageError::NotLocal),
        }
    }
}

#[test]
fn base_config_and_onbuild_triggers_apply() -> R {
    let opts = LowerOptions {
        images: Some(Arc::new(OneImage)),
        ..LowerOptions::default()
    };
    let l = lower_src(
        "FROM base\nRUN echo $FROM_BASE $T\nONBUILD RUN mine\n",
        &opts,
    )?;
    let c = &l.config;
    assert!(c.env.contains(&"FROM_BASE=1".to_string()), "{:?}", c.env);
    assert!(c.env.contains(&"T=1".to_string()), "{:?}", c.env);
    assert_eq!(c.user, "app");
    assert_eq!(c.working_dir, "/srv");
    // The base's triggers ran and are gone; the stage's own trigger is kept.
    assert_eq!(c.on_build, vec!["RUN mine".to_string()]);
    let ids = l.graph.ancestors(&[l.target]);
    let names: Vec<String> = ids
        .iter()
        .filter_map(|&id| l.graph.vertex(id).map(|v| v.name.clone()))
        .collect();
    assert_eq!(
        names,
        vec![
            "[stage-0 1/3] FROM base",
            "[stage-0 2/3] RUN echo triggered",
            "[stage-0 3/3] RUN echo $FROM_BASE $T",
        ]
    );
    match &l.graph.vertex(ids[0]).ok_or("no vertex")?.op {
        Op::SourceImage(s) => assert_eq!(
            s.digest.as_deref(),
            Some(&*format!("sha256:{}", "ab".repeat(32)))
        ),
        other => return Err(format!("expected a source image, got {other:?}").into()),
    }
    match &l.graph.vertex(l.target).ok_or("no vertex")?.op {
        Op::Exec(e) => {
            assert_eq!(e.user, "app");
            assert_eq!(e.cwd, "/srv");
            assert!(e.env.contains(&"T=1".to_string()));
        }
        other => return Err(format!("expected exec, got {other:?}").into()),
    }
    Ok(())
}

#[test]
fn unknown_base_image_names_line_and_image() -> R {
    let opts = LowerOptions {
        images: Some(Arc::new(OneImage)),
        ..LowerOptions::default()
    };
    let df =
        strata_parser::parse("FROM scratch\n\nFROM missing:1\n").map_err(|e| format!("{e:?}"))?;
    let err = lower(&df, "", &opts).err().ok_or("expected an error")?;
    let msg = err.to_string();
    assert!(msg.starts_with("line 3: missing:1: no such image"), "{msg}");
    Ok(())
}

/// The exec ops of a lowered build, in graph order.
fn execs(l: &Lowered) -> Vec<strata_solver::graph::ExecOp> {
    l.graph
        .ancestors(&[l.target])
        .into_iter()
        .filter_map(|id| match l.graph.vertex(id).map(|v| &v.op) {
            Some(Op::Exec(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn host_network_and_insecure_steps_need_their_entitlements() -> R {
    use strata_solver::{Entitlement, Entitlements, NetworkMode, Security};
    let refused =
        |src: &str, opts: &LowerOptions| -> Result<LowerError, Box<dyn std::error::Error>> {
            let df = strata_parser::parse(src).map_err(|e| format!("{e:?}"))?;
            match lower(&df, src, opts) {
                Ok(_) => Err(format!("lowered without its entitlement: {src}").into()),
                Err(e) => Ok(e),
            }
        };
    let host = "FROM scratch\nRUN true\nRUN --network=host true\n";
    let e = refused(host, &LowerOptions::default())?;
    assert_eq!(
        e.to_string(),
        "line 3: RUN --network=host needs the network.host entitlement: add --allow network.host"
    );
    let (span, _) = e.at().ok_or("no span")?;
    assert_eq!(
        (span.line, &host[span.start..span.end]),
        (3, "--network=host")
    );

    let insecure = "FROM scratch\nRUN --security=insecure true\n";
    let e = refused(insecure, &LowerOptions::default())?;
    assert!(
        e.to_string()
            .starts_with("line 2: RUN --security=insecure needs"),
        "{e}"
    );
    let e = refused(
        "FROM scratch\nRUN true\n",
        &LowerOptions {
            network: NetworkMode::Host,
            ..LowerOptions::default()
        },
    )?;
    assert_eq!(
        e.to_string(),
        "--network=host needs the network.host entitlement: add --allow network.host"
    );

    // Given the entitlements, the flags reach the graph; the default is a private network
    // and the sandbox.
    let opts = LowerOptions {
        entitlements: Entitlements::new([Entitlement::NetworkHost, Entitlement::SecurityInsecure]),
        ..LowerOptions::default()
    };
    let src = "FROM scratch\nRUN a\nRUN --network=host b\nRUN --security=insecure c\nRUN --security=sandbox --network=none d\n";
    let modes: Vec<(NetworkMode, Security)> = execs(&lower_src(src, &opts)?)
        .into_iter()
        .map(|e| (e.network, e.security))
        .collect();
    assert_eq!(
        modes,
        [
            (NetworkMode::Default, Security::Sandbox),
            (NetworkMode::Host, Security::Sandbox),
            (NetworkMode::Default, Security::Insecure),
            (NetworkMode::None, Security::Sandbox),
        ]
    );
    Ok(())
}

/// Issue 11's first divergence: every `$VAR` of an ENV line, and of a
/// multi-pair ARG or LABEL line, sees the values from before the line
/// (BuildKit expands the whole instruction before applying it):
/// `ENV A=2 B=$A` after `ENV A=1` gives B=1.
#[test]
fn a_line_sees_the_values_from_before_it() -> R {
    let src = "FROM scratch\nENV A=1\nENV A=2 B=$A C=${B:-unset}\nARG X=1\nARG X=2 Y=$X\nLABEL A=$A B=$B\nRUN true\n";
    let l = lower_src(src, &LowerOptions::default())?;
    let env = &l.config.env;
    for want in ["A=2", "B=1", "C=unset"] {
        assert!(env.contains(&want.to_string()), "{want} not in {env:?}");
    }
    assert_eq!(l.config.labels.get("B").map(String::as_str), Some("1"));
    let run = l.graph.vertex(l.target).ok_or("no vertex")?;
    let Op::Exec(e) = &run.op else {
        return Err("not a RUN".into());
    };
    assert!(e.env.contains(&"Y=1".to_string()), "{:?}", e.env);
    Ok(())
}

/// `COPY --link` (Dockerfile reference): the files are copied on the empty
/// filesystem and the layer is stacked on the stage, so the copy's key does
/// not follow an earlier step (it follows its sources); without --link it
/// does.
#[test]
fn a_link_copy_is_keyed_without_its_stage() -> R {
    let key_of_copy = |run: &str, link: &str| -> Result<_, Box<dyn std::error::Error>> {
        let src = format!("FROM scratch\nRUN {run}\nCOPY {link} a.txt /app/\n");
        let l = lower_src(&src, &LowerOptions::default())?;
        let copy = l
            .graph
            .ids()
            .into_iter()
            .filter_map(|id| l.graph.vertex(id))
            .find(|v| matches!(v.op, Op::Copy(_)))
            .ok_or("no copy")?;
        let target = l.graph.vertex(l.target).ok_or("no target")?;
        Ok((copy.key, target.key, matches!(target.op, Op::Link)))
    };
    let (a, a_stage, a_link) = key_of_copy("one", "--link")?;
    let (b, b_stage, _) = key_of_copy("two", "--link")?;
    assert!(a_link, "a --link copy is stacked by a link vertex");
    assert_eq!(a, b, "the --link copy's key leaves the stage out");
    assert_ne!(a_stage, b_stage, "the stage's own key still changes");
    let (c, _, c_link) = key_of_copy("one", "")?;
    let (d, _, _) = key_of_copy("two", "")?;
    assert!(!c_link);
    assert_ne!(c, d, "a plain copy follows its stage");
    Ok(())
}
