//! Bounded work on hostile input, through the real binary: a Dockerfile
//! whose ARGs double a word thirty times, a `.dockerignore` built to make a
//! backtracking matcher take exponential time, and gzip bombs as an ADD
//! archive and as a base layer.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sha2::Digest as _;

type R = Result<(), Box<dyn std::error::Error>>;

/// Runs `strata args…` under `/usr/bin/time -v`; returns the output and the
/// peak resident set size in KiB that time reports.
fn strata_measured(
    root: &Path,
    args: &[&str],
) -> Result<(Output, u64), Box<dyn std::error::Error>> {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env("STRATA_ROOT", root)
        .output()
        .map_err(|e| format!("/usr/bin/time (Debian package `time`): {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let rss = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .ok_or_else(|| format!("no peak RSS in the output of /usr/bin/time -v:\n{err}"))?
        .trim()
        .parse()?;
    Ok((out, rss))
}

fn strata(root: &Path, args: &[&str]) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .env("STRATA_ROOT", root)
        .args(args)
        .output()
}

fn path(p: &Path) -> Result<&str, Box<dyn std::error::Error>> {
    Ok(p.to_str().ok_or("non-UTF-8 temp path")?)
}

/// Committed snapshots (`s-…` for steps, `l-…` for base layers) under `root`.
fn snapshots(root: &Path) -> std::io::Result<Vec<String>> {
    let dir = root.join("snapshots");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("s-") || name.starts_with("l-") {
            names.push(name);
        }
    }
    Ok(names)
}

#[test]
fn arg_doubled_thirty_times_exits_2_naming_the_line() -> R {
    let root = tempfile::tempdir()?;
    let ctx = tempfile::tempdir()?;
    let mut df = String::from("FROM scratch\nARG A0=xxxxxxxx\n");
    for i in 1..=30 {
        df.push_str(&format!("ARG A{i}=${{A{}}}${{A{}}}\n", i - 1, i - 1));
    }
    fs::write(ctx.path().join("Dockerfile"), df)?;
    let start = Instant::now();
    let (out, rss_kib) = strata_measured(root.path(), &["build", path(ctx.path())?])?;
    let elapsed = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // 8 bytes doubled 17 times is 1 MiB, the limit: A18 (line 20) is refused.
    assert!(err.contains("Dockerfile:20:1"), "{err}");
    assert!(err.contains("ARG A18=${A17}${A17}"), "{err}");
    assert!(
        err.contains("larger than 1 MiB, the limit for one word"),
        "{err}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(rss_kib < 200 * 1024, "peak RSS {rss_kib} KiB");
    Ok(())
}

#[test]
fn many_double_stars_over_a_deep_tree_build_quickly() -> R {
    let root = tempfile::tempdir()?;
    let ctx = tempfile::tempdir()?;
    let deep = ctx.path().join(vec!["d"; 40].join("/"));
    fs::create_dir_all(&deep)?;
    fs::write(deep.join("file"), "deep\n")?;
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY . /ctx/\n",
    )?;
    fs::write(
        ctx.path().join(".dockerignore"),
        format!("{}nomatch\n", "**/".repeat(8)),
    )?;
    let start = Instant::now();
    let out = strata(root.path(), &["build", path(ctx.path())?])?;
    let elapsed = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    Ok(())
}

/// A gzip bomb: a tar holding `size` zero bytes as the file `zeros`, gzipped
/// as it is written; returns it and the tar's diffID.
fn bomb(size: u64) -> Result<(Vec<u8>, String), Box<dyn std::error::Error>> {
    struct Tee(flate2::write::GzEncoder<Vec<u8>>, sha2::Sha256);
    impl std::io::Write for Tee {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.0.write(buf)?;
            self.1.update(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(Tee(gz, sha2::Sha256::new()));
    let mut h = tar::Header::new_gnu();
    h.set_path("zeros")?;
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h.set_cksum();
    b.append(&h, std::io::Read::take(std::io::repeat(0), size))?;
    let Tee(gz, hasher) = b.into_inner()?;
    Ok((
        gz.finish()?,
        format!("sha256:{}", hex::encode(hasher.finalize())),
    ))
}

const LIMIT: &str = "10MiB";
const LIMIT_BYTES: &str = "10485760 bytes";

#[test]
fn an_add_bomb_fails_the_step_and_commits_nothing() -> R {
    let root = tempfile::tempdir()?;
    let ctx = tempfile::tempdir()?;
    let (gz, _) = bomb(100 << 20)?;
    fs::File::create(ctx.path().join("bomb.tar.gz"))?.write_all(&gz)?;
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nADD bomb.tar.gz /x/\n",
    )?;
    let out = strata(
        root.path(),
        &["build", "--decompression-limit", LIMIT, path(ctx.path())?],
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot extract bomb.tar.gz"), "{err}");
    assert!(err.contains(LIMIT_BYTES), "{err}");
    assert_eq!(snapshots(root.path())?, Vec::<String>::new());

    // The environment variable sets the same limit.
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .env("STRATA_ROOT", root.path())
        .env("STRATA_DECOMPRESSION_LIMIT", LIMIT)
        .args(["build", path(ctx.path())?])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(LIMIT_BYTES));

    // Under the default limit the same archive is a legitimate 100 MB file.
    let out = strata(root.path(), &["build", path(ctx.path())?])?;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn a_base_layer_bomb_fails_the_build_and_commits_nothing() -> R {
    let root = tempfile::tempdir()?;
    let ctx = tempfile::tempdir()?;
    let images = tempfile::tempdir()?;
    let (gz, diff_id) = bomb(100 << 20)?;
    let layout = strata_fixtures::single_layer_image(&images.path().join("bomb"), gz, diff_id)?;
    let context = format!("bomb=oci-layout://{}:latest", path(&layout)?);
    fs::write(ctx.path().join("f"), "f\n")?;
    fs::write(ctx.path().join("Dockerfile"), "FROM bomb\nCOPY f /f\n")?;
    let args = [
        "build",
        "--build-context",
        &context,
        "--decompression-limit",
        LIMIT,
    ];
    let out = strata(root.path(), &[&args[..], &[path(ctx.path())?]].concat())?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("layer sha256:"), "{err}");
    assert!(err.contains(LIMIT_BYTES), "{err}");
    assert_eq!(snapshots(root.path())?, Vec::<String>::new());
    Ok(())
}
