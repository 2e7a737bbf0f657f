//! COPY/ADD flags and directory rules end to end on the busybox base,
//! checked in the image unpacked by umoci and its manifest and config read
//! by skopeo; each test names the Dockerfile reference's rule it checks.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::common::{Env, R, Res, ran_steps, step_cached};

fn read(p: &Path) -> Result<String, std::io::Error> {
    fs::read_to_string(p)
}

fn meta(p: &Path) -> Res<(u32, u32, u32)> {
    let m = fs::symlink_metadata(p)?;
    Ok((m.mode() & 0o7777, m.uid(), m.gid()))
}

fn write(dir: &Path, rel: &str, text: &str, mode: u32) -> R {
    let p = dir.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(&p, text)?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn chmod(p: &Path, mode: u32) -> R {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The digests of the image's layer blobs, bottom first.
fn layer_digests(env: &Env, name: &str) -> Res<Vec<String>> {
    let m = env.manifest(name)?;
    Ok(m["layers"]
        .as_array()
        .ok_or("no layers")?
        .iter()
        .filter_map(|l| l["digest"].as_str().map(str::to_string))
        .collect())
}

/// `COPY --link` (reference: "your files remain independent on their own
/// layer and don't get invalidated when commands on previous layers are
/// changed"; a base update does not rerun it): after an earlier step and
/// the stage the build starts from change, the --link copy is a cache hit
/// and its layer is the same blob, while a plain COPY reruns.
#[test]
fn a_link_layer_survives_earlier_changes_with_its_blob() -> R {
    let env = Env::new()?;
    let df = |v: &str| {
        format!(
            "FROM busybox AS base\nRUN echo {v} > /base-version\n\
             FROM base\nRUN echo {v} > /v\nCOPY --link a.txt /app/\nCOPY a.txt /plain/\n"
        )
    };
    let ctx = env.context("ctx", &df("one"))?;
    env.build(&ctx, &["-t", "link:1"])?;
    fs::write(ctx.join("Dockerfile"), df("two"))?;
    let log = env.build(&ctx, &["-t", "link:2"])?;
    assert!(step_cached(&log, "COPY --link a.txt /app/")?, "{log}");
    assert!(!step_cached(&log, "COPY a.txt /plain/")?, "{log}");
    let (one, two) = (
        layer_digests(&env, "link:1")?,
        layer_digests(&env, "link:2")?,
    );
    assert_eq!(one.len(), 5, "busybox, 2 RUNs, 2 COPYs: {one:?}");
    assert_eq!(one[3], two[3], "the --link layer is the same blob");
    assert_ne!(one[1], two[1], "the base stage's layer changed");
    assert_ne!(one[2], two[2], "the RUN's layer changed");
    let root = env.unpack("link:2")?.join("rootfs");
    assert_eq!(read(&root.join("app/a.txt"))?, "ctx");
    assert_eq!(read(&root.join("v"))?, "two\n");
    let config = env.config("link:2")?;
    let diff_ids = config["rootfs"]["diff_ids"].as_array().ok_or("diff_ids")?;
    assert_eq!(diff_ids.len(), 5);
    Ok(())
}

/// "When using --link the COPY/ADD commands are not allowed to read any
/// files from the previous state. This means that if in previous state the
/// destination directory was a path that contained a symlink, COPY/ADD can
/// not follow it. In the final image the destination path created with
/// --link will always be a path containing only directories." Its missing
/// parents are made 0755, and a directory it names replaces the stage's
/// mode (the reference's `/tmp` warning).
#[test]
fn a_link_copy_does_not_follow_the_stage() -> R {
    let env = Env::new()?;
    let df = "FROM busybox\nRUN mkdir /real && ln -s /real /lnk\n\
              COPY --link a.txt /lnk/\nRUN mkdir /real2 && ln -s /real2 /plain-lnk2\n\
              COPY a.txt /plain-lnk2/\nCOPY --link a.txt /tmp/\nCOPY --link a.txt /new/deep/\n";
    let ctx = env.context("ctx", df)?;
    env.build(&ctx, &["-t", "linksym"])?;
    let root = env.unpack("linksym:latest")?.join("rootfs");
    let lnk = fs::symlink_metadata(root.join("lnk"))?;
    assert!(lnk.is_dir(), "/lnk became a directory");
    assert_eq!(read(&root.join("lnk/a.txt"))?, "ctx");
    assert!(!root.join("real/a.txt").exists());
    // Without --link the symlink is followed.
    assert!(
        fs::symlink_metadata(root.join("plain-lnk2"))?
            .file_type()
            .is_symlink()
    );
    assert_eq!(read(&root.join("real2/a.txt"))?, "ctx");
    assert_eq!(meta(&root.join("tmp"))?, (0o755, 0, 0));
    assert_eq!(meta(&root.join("new"))?, (0o755, 0, 0));
    assert_eq!(meta(&root.join("new/deep"))?, (0o755, 0, 0));
    // --chown by name reads the stage's users.
    let df2 = "FROM busybox\nCOPY --link --chown=app:staff a.txt /owned/\n";
    let ctx2 = env.context("ctx2", df2)?;
    env.build(&ctx2, &["-t", "linkown"])?;
    let root2 = env.unpack("linkown:latest")?.join("rootfs");
    assert_eq!(meta(&root2.join("owned/a.txt"))?.1, 1000);
    assert_eq!(meta(&root2.join("owned"))?, (0o755, 1000, 50));
    Ok(())
}

/// `--parents` (reference: `./x/a.txt ./y/a.txt /parents/` keeps `x/` and
/// `y/`; `./x/./y/*.txt` keeps only what follows `/./`), with `**`;
/// `--exclude` several times (`--exclude=*.txt --exclude=*.md hom*`);
/// symbolic `--chmod` (`u+x,go-w`, `u=rwX,go=rX`); `--chown`/`--chmod` on a
/// directory apply to everything inside it, the destination directory made
/// for it excepted (fsutil makes it 0755 and --chown's owner).
#[test]
fn parents_exclude_symbolic_chmod_and_recursive_ownership() -> R {
    let env = Env::new()?;
    let df = "FROM busybox
COPY --parents ./x/a.txt ./y/a.txt /parents/
COPY --parents ./x/./y/*.txt /pivot/
COPY --parents src/**/*.go /go/
COPY --exclude=*.txt --exclude=*.md hom* /mydir/
COPY --chmod=u+x,go-w data.txt /sym/
COPY --chmod=u=rwX,go=rX tree /tree/
COPY --chown=app:staff --chmod=750 tree /owned
";
    let ctx = env.context("ctx", df)?;
    for f in [
        "x/a.txt",
        "y/a.txt",
        "x/y/a.txt",
        "x/y/b.txt",
        "x/y/c.md",
        "src/p/m.go",
        "src/p/q/n.go",
        "src/p/o.rs",
    ] {
        write(&ctx, f, f, 0o644)?;
    }
    for f in ["home.txt", "home.md", "homer.rs"] {
        write(&ctx, f, f, 0o644)?;
    }
    write(&ctx, "data.txt", "d", 0o666)?;
    write(&ctx, "tree/run.sh", "r", 0o700)?;
    write(&ctx, "tree/sub/f", "f", 0o600)?;
    chmod(&ctx.join("tree/sub"), 0o700)?;
    chmod(&ctx.join("src/p"), 0o750)?;
    env.build(&ctx, &["-t", "flags"])?;
    let root = env.unpack("flags:latest")?.join("rootfs");
    assert_eq!(read(&root.join("parents/x/a.txt"))?, "x/a.txt");
    assert_eq!(read(&root.join("parents/y/a.txt"))?, "y/a.txt");
    assert_eq!(read(&root.join("pivot/y/a.txt"))?, "x/y/a.txt");
    assert_eq!(read(&root.join("pivot/y/b.txt"))?, "x/y/b.txt");
    assert!(!root.join("pivot/y/c.md").exists() && !root.join("pivot/x").exists());
    assert_eq!(read(&root.join("go/src/p/m.go"))?, "src/p/m.go");
    assert_eq!(read(&root.join("go/src/p/q/n.go"))?, "src/p/q/n.go");
    assert!(!root.join("go/src/p/o.rs").exists());
    assert_eq!(meta(&root.join("go/src/p"))?.0, 0o750);
    assert_eq!(read(&root.join("mydir/homer.rs"))?, "homer.rs");
    assert!(!root.join("mydir/home.txt").exists() && !root.join("mydir/home.md").exists());
    assert_eq!(meta(&root.join("sym/data.txt"))?.0, 0o744);
    assert_eq!(meta(&root.join("tree/run.sh"))?.0, 0o755);
    assert_eq!(meta(&root.join("tree/sub"))?.0, 0o755);
    assert_eq!(meta(&root.join("tree/sub/f"))?.0, 0o644);
    assert_eq!(meta(&root.join("owned"))?, (0o755, 1000, 50));
    for p in ["owned/run.sh", "owned/sub", "owned/sub/f"] {
        assert_eq!(meta(&root.join(p))?, (0o750, 1000, 50), "{p}");
    }
    Ok(())
}

/// Issue 11's divergences from docker, side by side with BuildKit:
/// `ENV A=2 B=$A` gives B the value A had before the line (BuildKit expands
/// the whole instruction first), and `COPY somedir /new/path` makes the
/// missing `/new/path` 0755, root's, with only the directories below keeping
/// their modes; an existing destination keeps its mode and owner.
#[test]
fn env_sees_the_line_before_and_copied_dirs_land_in_0755() -> R {
    let env = Env::new()?;
    let df = "FROM busybox
ENV A=1
ENV A=2 B=$A
ARG X=1
ARG X=2 Y=$X
LABEL a=$A b=$B
RUN echo \"$Y\" > /y
COPY somedir /new/path
COPY somedir /tmp
";
    let ctx = env.context("ctx", df)?;
    write(&ctx, "somedir/sub/f", "f", 0o644)?;
    chmod(&ctx.join("somedir/sub"), 0o2775)?;
    chmod(&ctx.join("somedir"), 0o700)?;
    env.build(&ctx, &["-t", "diverge"])?;
    let config = env.config("diverge:latest")?;
    let envs: Vec<&str> = config["config"]["Env"]
        .as_array()
        .ok_or("Env")?
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(envs.contains(&"A=2") && envs.contains(&"B=1"), "{envs:?}");
    assert_eq!(config["config"]["Labels"]["b"], "1");
    let root = env.unpack("diverge:latest")?.join("rootfs");
    assert_eq!(read(&root.join("y"))?, "1\n");
    assert_eq!(meta(&root.join("new/path"))?, (0o755, 0, 0));
    assert_eq!(meta(&root.join("new/path/sub"))?.0, 0o2775);
    assert_eq!(
        meta(&root.join("tmp"))?.0,
        0o1777,
        "an existing destination keeps its mode"
    );
    assert_eq!(read(&root.join("tmp/sub/f"))?, "f");
    Ok(())
}

/// The steps a rebuild ran are only the ones whose inputs changed: with
/// --link, the internal vertices that stack its layer are not steps.
#[test]
fn a_link_rebuild_runs_only_the_changed_step() -> R {
    let env = Env::new()?;
    let df = |v: &str| format!("FROM busybox\nRUN echo {v} > /v\nCOPY --link a.txt /app/\n");
    let ctx = env.context("ctx", &df("1"))?;
    env.build(&ctx, &[])?;
    fs::write(ctx.join("Dockerfile"), df("2"))?;
    let log = env.build(&ctx, &[])?;
    let ran: Vec<String> = ran_steps(&log)
        .into_iter()
        .filter(|s| !s.starts_with("[internal]"))
        .collect();
    assert_eq!(
        ran,
        vec!["[stage-0 2/3] RUN echo 2 > /v".to_string()],
        "{log}"
    );
    Ok(())
}
