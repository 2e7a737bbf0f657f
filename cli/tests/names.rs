//! Names, flags and secrets at the edge of `strata build` (issue 9, part 6):
//! bad image names and levels are refused with exit 2 before any step runs
//! or anything reaches the store; good names still work; COPY's cache key
//! takes file names as bytes; build-arg values never reach the state root
//! or the output, and secret-looking ARG/ENV names are warned about.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::common::{self, R, Res, Run};

/// The shared test environment with one context, `ctx`, holding `dockerfile`.
struct Names {
    env: common::Env,
    ctx: PathBuf,
}

impl Names {
    fn new(dockerfile: &str) -> Res<Self> {
        let env = common::Env::new()?;
        let ctx = env.context("ctx", dockerfile)?;
        Ok(Names { env, ctx })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.env.path(rel)
    }

    fn root(&self) -> PathBuf {
        self.env.root()
    }

    /// `strata build --progress=plain ARGS ctx`; the run and its progress output.
    fn build(&self, args: &[&str]) -> Res<(Run, String)> {
        let ctx = self.ctx.to_str().ok_or("non-UTF-8 path")?;
        let mut all = vec!["build", "--progress=plain"];
        all.extend_from_slice(args);
        all.push(ctx);
        let run = self.env.strata(&all).output()?;
        let log = run.stderr.clone();
        Ok((run, log))
    }

    /// The store's index.json (tags), empty when there is no store.
    fn index(&self) -> Vec<u8> {
        fs::read(self.root().join("store/index.json")).unwrap_or_default()
    }

    /// Names under `snapshots/` (one per step result or base layer).
    fn snapshots(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.root().join("snapshots"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

#[test]
fn bad_names_and_levels_exit_2_before_any_step() -> R {
    let env = Names::new("FROM scratch\nCOPY a.txt /\n")?;
    let (out, log) = env.build(&["-t", "good:1"])?;
    assert!((out.code == Some(0)), "{log}");
    let index = env.index();
    let snapshots = env.snapshots();
    assert!(
        String::from_utf8_lossy(&index).contains("good:1"),
        "the good build was not tagged"
    );

    let cases: &[(&[&str], &str)] = &[
        (
            &["-t", "UPPER"],
            r#"invalid reference "UPPER": repository name must be lowercase"#,
        ),
        (&["-t", "a:b:c"], r#"invalid reference "a:b:c""#),
        (
            &["-t", "name@sha256:bad"],
            r#"invalid reference "name@sha256:bad""#,
        ),
        (
            &["-t", "../../x"],
            r#"invalid reference "../../x": invalid registry host"#,
        ),
        (
            &["-t", "ok", "-t", "x:-bad"],
            r#"invalid reference "x:-bad": invalid tag"#,
        ),
        (
            &["-o", "type=image,name=a:b:c"],
            r#"invalid reference "a:b:c""#,
        ),
        (
            &["--push", "-t", "127.0.0.1:5000/UP:1"],
            r#"invalid reference "127.0.0.1:5000/UP:1": repository name must be lowercase"#,
        ),
        (
            &["-o", "type=registry,name=../../x"],
            r#"invalid reference "../../x""#,
        ),
        (
            &["--compression-level", "99"],
            "compression level 99 is out of range for gzip (0-9)",
        ),
        (
            &["--compression", "zstd", "--compression-level", "0"],
            "compression level 0 is out of range for zstd (1-22)",
        ),
        (&["-o", "type=zip,dest=x"], "unknown type `zip`"),
    ];
    for (args, message) in cases {
        let (out, log) = env.build(args)?;
        assert_eq!(out.code, Some(2), "{args:?}:\n{log}");
        let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("ERROR: ")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: one ERROR line:\n{log}");
        assert!(
            errors[0].contains(message),
            "{args:?}: wanted {message}:\n{log}"
        );
        assert!(
            !log.contains("#1 "),
            "{args:?}: a step was reported before the refusal:\n{log}"
        );
        assert_eq!(env.index(), index, "{args:?}: the store's tags changed");
        assert_eq!(env.snapshots(), snapshots, "{args:?}: a step ran");
    }
    Ok(())
}

#[test]
fn good_names_are_tagged() -> R {
    let env = Names::new("FROM scratch\nCOPY a.txt /\n")?;
    let digest = format!("name@sha256:{}", "0123456789abcdef".repeat(4));
    let (out, log) = env.build(&[
        "-t",
        "localhost:5000/a/b:v1.0",
        "-t",
        &digest,
        "-t",
        "a__b-c---e/f.g_h:V_1.2-x",
    ])?;
    assert!((out.code == Some(0)), "{log}");
    let index = String::from_utf8_lossy(&env.index()).into_owned();
    for name in [
        "localhost:5000/a/b:v1.0",
        digest.as_str(),
        "a__b-c---e/f.g_h:V_1.2-x",
    ] {
        assert!(index.contains(name), "{name} is not in the store:\n{index}");
    }
    Ok(())
}

#[test]
fn renaming_a_non_utf8_file_misses_the_cache() -> R {
    let env = Names::new("FROM scratch\nCOPY files/ /files/\n")?;
    let files = env.path("ctx/files");
    fs::create_dir_all(&files)?;
    let old = files.join(OsStr::from_bytes(b"a\xff"));
    let new = files.join(OsStr::from_bytes(b"a\xfe"));
    fs::write(&old, "same content\n")?;
    let out_dir = |n: &str| env.path(n).display().to_string();

    let (out, log) = env.build(&["-o", &format!("type=local,dest={}", out_dir("out1"))])?;
    assert!((out.code == Some(0)), "{log}");
    let (out, log) = env.build(&["-o", &format!("type=local,dest={}", out_dir("out2"))])?;
    assert!((out.code == Some(0)), "{log}");
    assert!(
        log.contains("CACHED"),
        "an unchanged rebuild ran COPY:\n{log}"
    );

    fs::rename(&old, &new)?;
    let (out, log) = env.build(&["-o", &format!("type=local,dest={}", out_dir("out3"))])?;
    assert!((out.code == Some(0)), "{log}");
    assert!(
        !log.contains("CACHED"),
        "the renamed file was a cache hit:\n{log}"
    );
    let copied = env.path("out3/files");
    assert!(
        copied.join(OsStr::from_bytes(b"a\xfe")).is_file(),
        "the image lacks the new name"
    );
    assert!(
        !copied.join(OsStr::from_bytes(b"a\xff")).exists(),
        "the image kept the old name"
    );
    Ok(())
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if meta.is_file()
            && fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        {
            found.push(path);
        }
    }
    found
}

#[test]
fn build_arg_values_stay_out_of_the_root_and_the_output() -> R {
    let env = Names::new(
        "FROM busybox\nARG DB_PASSWORD\nARG VERSION=1\nRUN test -n \"$DB_PASSWORD\" && echo built\n",
    )?;
    let base = env.env.base.clone();
    let build = |value: &str| {
        env.build(&[
            "--explain-cache",
            "--build-context",
            &base,
            "--build-arg",
            &format!("DB_PASSWORD={value}"),
        ])
    };
    let (out, first) = build("hunter2-canary-one")?;
    assert!((out.code == Some(0)), "{first}");
    let (out, log) = build("hunter3-canary-two")?;
    assert!((out.code == Some(0)), "{log}");
    assert!(
        log.contains("build args or environment changed: DB_PASSWORD changed"),
        "{log}"
    );
    for text in [&first, &log] {
        assert!(!text.contains("canary"), "a value was printed:\n{text}");
        assert!(
            text.contains(
                "WARNING: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for \
                 sensitive data (ARG \"DB_PASSWORD\")"
            ) && text.contains("--secret"),
            "no warning:\n{text}"
        );
        let dockerfile = env.path("ctx/Dockerfile").display().to_string();
        assert!(
            text.contains(&format!("({dockerfile}:2)")),
            "no file:line:\n{text}"
        );
        assert!(
            !text.contains("\"VERSION\""),
            "VERSION was flagged:\n{text}"
        );
    }
    let leaked = files_containing(&env.root(), b"canary");
    assert!(
        leaked.is_empty(),
        "values written under the root: {leaked:?}"
    );
    let explain = env.root().join("explain");
    let mut summaries = 0;
    for entry in fs::read_dir(&explain)? {
        let path = entry?.path();
        let mode = fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is readable by others", path.display());
        summaries += 1;
    }
    assert!(
        summaries >= 2,
        "no summary or key under {}",
        explain.display()
    );

    // -q hides the warning.
    let (out, quiet) = env.build(&[
        "-q",
        "--build-context",
        &base,
        "--build-arg",
        "DB_PASSWORD=quiet",
    ])?;
    assert!((out.code == Some(0)), "{quiet}");
    assert!(!quiet.contains("WARNING"), "-q printed a warning:\n{quiet}");
    Ok(())
}
