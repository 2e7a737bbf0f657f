//! COPY/ADD file semantics, one docker build (BuildKit) rule per test, on
//! real directories: a context, a parent filesystem and an empty layer.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use strata_cache::DockerIgnore;
use strata_solver::graph::{Chown, FileMode};
use strata_solver::ops::copy::{CopyError, CopyRequest, CopyStats, copy, selection_digest};

type R = Result<(), Box<dyn std::error::Error>>;

/// A context, the destination stage's filesystem and the layer to write.
struct Fx {
    ctx: tempfile::TempDir,
    parent: tempfile::TempDir,
    layer: tempfile::TempDir,
    ignore: DockerIgnore,
}

/// The options a test changes.
#[derive(Default)]
struct Opts<'a> {
    cwd: &'a str,
    chown: Option<Chown>,
    chmod: Option<u32>,
    symbolic: Option<&'a str>,
    from_stage: bool,
    add: bool,
    parents: bool,
    exclude: &'a [&'a str],
}

impl Fx {
    fn new() -> Result<Fx, Box<dyn std::error::Error>> {
        Ok(Fx {
            ctx: tempfile::tempdir()?,
            parent: tempfile::tempdir()?,
            layer: tempfile::tempdir()?,
            ignore: DockerIgnore::default(),
        })
    }

    fn c(&self) -> &Path {
        self.ctx.path()
    }

    fn l(&self) -> &Path {
        self.layer.path()
    }

    fn file(&self, rel: &str, text: &str) -> R {
        let p = self.c().join(rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d)?;
        }
        fs::write(p, text)?;
        Ok(())
    }

    fn run(&self, sources: &[&str], dest: &str) -> Result<CopyStats, CopyError> {
        self.run_with(sources, dest, &Opts::default())
    }

    fn run_with(&self, sources: &[&str], dest: &str, o: &Opts) -> Result<CopyStats, CopyError> {
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        let exclude: Vec<String> = o.exclude.iter().map(|s| s.to_string()).collect();
        let chmod = match (o.chmod, o.symbolic) {
            (Some(m), _) => Some(FileMode::Octal(m)),
            (None, Some(s)) => Some(FileMode::Symbolic(s.to_string())),
            (None, None) => None,
        };
        let req = CopyRequest {
            src_root: self.c(),
            from_context: !o.from_stage,
            ignore: &self.ignore,
            sources: &sources,
            dest,
            cwd: if o.cwd.is_empty() { "/" } else { o.cwd },
            parent_root: self.parent.path(),
            users_root: self.parent.path(),
            layer: self.l(),
            chown: o.chown.as_ref(),
            chmod: chmod.as_ref(),
            extract_archives: o.add,
            decompression_limit: strata_solver::DEFAULT_DECOMPRESSION_LIMIT,
            parents: o.parents,
            exclude: &exclude,
        };
        copy(&req, &|| false)
    }
}

fn read(p: impl AsRef<Path>) -> Result<String, std::io::Error> {
    fs::read_to_string(p)
}

fn err_text(r: Result<CopyStats, CopyError>) -> Result<String, Box<dyn std::error::Error>> {
    match r {
        Ok(s) => Err(format!("expected an error, the copy wrote {s:?}").into()),
        Err(e) => Ok(e.to_string()),
    }
}

fn mode(p: impl AsRef<Path>) -> Result<u32, std::io::Error> {
    Ok(fs::symlink_metadata(p)?.mode() & 0o7777)
}

fn owner(p: impl AsRef<Path>) -> Result<(u32, u32), std::io::Error> {
    let m = fs::symlink_metadata(p)?;
    Ok((m.uid(), m.gid()))
}

fn set_mtime(p: &Path, secs: i64) -> R {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
    fs::File::open(p)?.set_modified(t)?;
    Ok(())
}

#[test]
fn a_file_lands_inside_a_slash_dest_or_an_existing_dir_else_is_renamed() -> R {
    let fx = Fx::new()?;
    fx.file("a.txt", "A")?;
    fs::create_dir(fx.parent.path().join("existing"))?;
    fx.run(&["a.txt"], "/app/")?;
    fx.run(&["a.txt"], "/etc/renamed")?;
    fx.run(&["a.txt"], "/existing")?;
    assert_eq!(read(fx.l().join("app/a.txt"))?, "A");
    assert_eq!(read(fx.l().join("etc/renamed"))?, "A");
    assert_eq!(read(fx.l().join("existing/a.txt"))?, "A");
    Ok(())
}

#[test]
fn relative_dest_joins_the_workdir() -> R {
    let fx = Fx::new()?;
    fx.file("a.txt", "A")?;
    let o = Opts {
        cwd: "/srv/w",
        ..Opts::default()
    };
    fx.run_with(&["a.txt"], ".", &o)?;
    fx.run_with(&["a.txt"], "sub/b.txt", &o)?;
    fx.run_with(&["a.txt"], "../up/", &o)?;
    assert_eq!(read(fx.l().join("srv/w/a.txt"))?, "A");
    assert_eq!(read(fx.l().join("srv/w/sub/b.txt"))?, "A");
    assert_eq!(read(fx.l().join("srv/up/a.txt"))?, "A");
    Ok(())
}

#[test]
fn a_directory_source_copies_its_contents() -> R {
    let fx = Fx::new()?;
    fx.file("dir/sub/b.txt", "B")?;
    fx.file("dir/c.txt", "C")?;
    fx.run(&["dir"], "/app/")?;
    assert_eq!(read(fx.l().join("app/sub/b.txt"))?, "B");
    assert_eq!(read(fx.l().join("app/c.txt"))?, "C");
    assert!(!fx.l().join("app/dir").exists());
    // `.` is the whole context.
    let fx2 = Fx::new()?;
    fx2.file("x/y", "Y")?;
    fx2.run(&["."], "/")?;
    assert_eq!(read(fx2.l().join("x/y"))?, "Y");
    Ok(())
}

/// The classic builder's rule, kept on purpose: BuildKit accepts several
/// sources with a non-slash destination and overwrites it one source after
/// the other (moby/buildkit#1853), which loses files silently. `.` counts
/// as a directory (BuildKit appends the slash itself).
#[test]
fn several_sources_need_a_slash_dest() -> R {
    let fx = Fx::new()?;
    fx.file("a.txt", "A")?;
    fx.file("b.txt", "B")?;
    let e = err_text(fx.run(&["a.txt", "b.txt"], "/app"))?;
    assert_eq!(
        e,
        "When using COPY with more than one source file, the destination must be a directory and end with a /: /app"
    );
    // A wildcard counts its matches: two need the slash...
    let e = err_text(fx.run(&["*.txt"], "/app"))?;
    assert!(
        e.starts_with("When using COPY with more than one source"),
        "{e}"
    );
    // ...one does not (Docker's classic builder counts after expansion).
    fx.run(&["a*"], "/one")?;
    assert_eq!(read(fx.l().join("one"))?, "A");
    fx.run(&["a.txt", "b.txt"], "/app/")?;
    assert_eq!(read(fx.l().join("app/b.txt"))?, "B");
    let o = Opts {
        cwd: "/w",
        ..Opts::default()
    };
    fx.run_with(&["a.txt", "b.txt"], ".", &o)?;
    assert_eq!(read(fx.l().join("w/a.txt"))?, "A");
    Ok(())
}

#[test]
fn wildcards_follow_go_filepath_match_per_component() -> R {
    let fx = Fx::new()?;
    for f in [
        "a1.txt",
        "a2.txt",
        "b.txt",
        "c.md",
        ".hidden.txt",
        "lit*.txt",
        "d1/x.txt",
        "d2/x.txt",
        "d2/y.txt",
        "e/lit*.txt",
        "e/lita.txt",
    ] {
        fx.file(f, f)?;
    }
    fx.run(&["a?.txt"], "/q/")?;
    fx.run(&["[a-b]*.txt"], "/class/")?;
    fx.run(&["[^a]*.txt"], "/neg/")?;
    // `\` escapes inside a pattern (a path with no unescaped wildcard is
    // taken literally, backslash included, as BuildKit's splitWildcards does).
    fx.run(&["e/lit\\*.tx?"], "/esc/")?;
    fx.run(&["d*/x.txt"], "/comp/")?;
    fx.run(&["*.txt"], "/star/")?;
    let names = |d: &str| -> Result<Vec<String>, std::io::Error> {
        let mut v: Vec<String> = fs::read_dir(fx.l().join(d))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        v.sort();
        Ok(v)
    };
    assert_eq!(names("q")?, ["a1.txt", "a2.txt"]);
    assert_eq!(names("class")?, ["a1.txt", "a2.txt", "b.txt"]);
    assert_eq!(names("neg")?, [".hidden.txt", "b.txt", "lit*.txt"]);
    assert_eq!(names("esc")?, ["lit*.txt"]);
    // Each match lands by its base name; the later d2/x.txt replaces d1/x.txt (sorted order).
    assert_eq!(names("comp")?, ["x.txt"]);
    assert_eq!(read(fx.l().join("comp/x.txt"))?, "d2/x.txt");
    // `*` matches names starting with a dot too (Go, unlike a shell).
    assert_eq!(
        names("star")?,
        [".hidden.txt", "a1.txt", "a2.txt", "b.txt", "lit*.txt"]
    );
    let e = err_text(fx.run(&["*.nothing"], "/x/"))?;
    assert_eq!(
        e,
        "*.nothing: no source files were specified (the pattern matches no file)"
    );
    let e = err_text(fx.run(&["[a"], "/x/"))?;
    assert!(e.starts_with("[a: bad wildcard pattern"), "{e}");
    Ok(())
}

#[test]
fn dot_dot_and_absolute_sources_are_clamped_to_the_context() -> R {
    // BuildKit joins every source to `/` and cleans it: `../a.txt` is the
    // context's `a.txt` (and a missing one is "not found", not an escape).
    let fx = Fx::new()?;
    fx.file("a.txt", "inside")?;
    fs::write(fx.c().parent().ok_or("no parent")?.join("a.txt"), "outside").ok();
    fx.run(&["../a.txt"], "/p/")?;
    fx.run(&["/a.txt"], "/q/")?;
    fx.run(&["sub/../../../a.txt"], "/r/")?;
    assert_eq!(read(fx.l().join("p/a.txt"))?, "inside");
    assert_eq!(read(fx.l().join("q/a.txt"))?, "inside");
    assert_eq!(read(fx.l().join("r/a.txt"))?, "inside");
    Ok(())
}

#[test]
fn symlinks_in_a_source_path_resolve_inside_the_context() -> R {
    let fx = Fx::new()?;
    fx.file("etc/passwd", "context passwd")?;
    fx.file("real/file.txt", "R")?;
    symlink("/etc", fx.c().join("etc-link"))?;
    symlink("/etc/passwd", fx.c().join("passwd-link"))?;
    symlink(
        "../../../../../../../../etc/shadow",
        fx.c().join("shadow-link"),
    )?;
    symlink("real", fx.c().join("dirlink"))?;
    fx.run(&["etc-link/passwd"], "/a/")?;
    // A named symlink is followed (inside the context) and copied under its own name.
    fx.run(&["passwd-link"], "/b/")?;
    fx.run(&["dirlink/file.txt"], "/c/")?;
    assert_eq!(read(fx.l().join("a/passwd"))?, "context passwd");
    assert_eq!(read(fx.l().join("b/passwd-link"))?, "context passwd");
    assert!(
        !fs::symlink_metadata(fx.l().join("b/passwd-link"))?
            .file_type()
            .is_symlink()
    );
    assert_eq!(read(fx.l().join("c/file.txt"))?, "R");
    let e = err_text(fx.run(&["shadow-link"], "/d/"))?;
    assert_eq!(e, "shadow-link: no such file or directory");
    Ok(())
}

#[test]
fn symlinks_inside_copied_dirs_stay_symlinks() -> R {
    let fx = Fx::new()?;
    fx.file("d/t.txt", "T")?;
    symlink("t.txt", fx.c().join("d/rel"))?;
    symlink("/etc/passwd", fx.c().join("d/abs"))?;
    symlink("missing", fx.c().join("d/dangling"))?;
    fx.run(&["d"], "/app/")?;
    assert_eq!(fs::read_link(fx.l().join("app/rel"))?, Path::new("t.txt"));
    assert_eq!(
        fs::read_link(fx.l().join("app/abs"))?,
        Path::new("/etc/passwd")
    );
    assert_eq!(
        fs::read_link(fx.l().join("app/dangling"))?,
        Path::new("missing")
    );
    Ok(())
}

#[test]
fn missing_source_is_named() -> R {
    let fx = Fx::new()?;
    let e = err_text(fx.run(&["nope.txt"], "/x/"))?;
    assert_eq!(e, "nope.txt: no such file or directory");
    let e = err_text(fx.run(&["sub/../nope/"], "/x/"))?;
    // Named as written.
    assert_eq!(e, "sub/../nope/: no such file or directory");
    symlink("loop", fx.c().join("loop"))?;
    let e = err_text(fx.run(&["loop"], "/x/"))?;
    assert!(
        e.starts_with("cannot copy loop: too many levels of symbolic links"),
        "{e}"
    );
    Ok(())
}

#[test]
fn context_files_keep_mode_and_mtime_and_become_root_owned() -> R {
    let fx = Fx::new()?;
    fx.file("d/run.sh", "#!/bin/sh\n")?;
    let f = fx.c().join("d/run.sh");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o4751))?;
    std::os::unix::fs::lchown(&f, Some(1234), Some(5678))?;
    fs::set_permissions(&f, fs::Permissions::from_mode(0o4751))?;
    set_mtime(&f, 1_000_000_000)?;
    fs::set_permissions(fx.c().join("d"), fs::Permissions::from_mode(0o750))?;
    std::os::unix::fs::lchown(fx.c().join("d"), Some(1234), Some(5678))?;
    fx.run(&["d"], "/new")?;
    let out = fx.l().join("new/run.sh");
    assert_eq!(mode(&out)?, 0o4751);
    assert_eq!(owner(&out)?, (0, 0));
    assert_eq!(fs::metadata(&out)?.mtime(), 1_000_000_000);
    // The destination directory is made 0755 (issue 11: BuildKit never
    // gives it the source directory's mode); the owner is 0:0.
    assert_eq!(mode(fx.l().join("new"))?, 0o755);
    assert_eq!(owner(fx.l().join("new"))?, (0, 0));
    // With a trailing slash the directory is made first: 0755.
    fx.run(&["d"], "/made/")?;
    assert_eq!(mode(fx.l().join("made"))?, 0o755);
    Ok(())
}

#[test]
fn copy_from_a_stage_keeps_owners() -> R {
    let fx = Fx::new()?;
    fx.file("bin/tool", "T")?;
    std::os::unix::fs::lchown(fx.c().join("bin/tool"), Some(33), Some(44))?;
    symlink("tool", fx.c().join("bin/alias"))?;
    std::os::unix::fs::lchown(fx.c().join("bin/alias"), Some(55), Some(66))?;
    let o = Opts {
        from_stage: true,
        ..Opts::default()
    };
    fx.run_with(&["/bin"], "/usr/bin/", &o)?;
    assert_eq!(owner(fx.l().join("usr/bin/tool"))?, (33, 44));
    assert_eq!(owner(fx.l().join("usr/bin/alias"))?, (55, 66));
    Ok(())
}

#[test]
fn hard_links_stay_hard_links() -> R {
    let fx = Fx::new()?;
    fx.file("d/one", "same")?;
    fs::hard_link(fx.c().join("d/one"), fx.c().join("d/two"))?;
    fx.run(&["d"], "/x/")?;
    let a = fs::metadata(fx.l().join("x/one"))?;
    let b = fs::metadata(fx.l().join("x/two"))?;
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
    Ok(())
}

#[test]
fn dockerignore_skips_inside_dirs_and_rejects_named_files() -> R {
    let mut fx = Fx::new()?;
    fx.file("src/main.rs", "fn main() {}")?;
    fx.file("src/secret.key", "k")?;
    fx.file("logs/a.log", "a")?;
    fx.file("logs/keep.log", "keep")?;
    fx.file("notes.md", "n")?;
    fx.file("readme.md", "r")?;
    fx.ignore = DockerIgnore::parse("*.key\n**/*.key\nlogs\n!logs/keep.log\nnotes.md\n")?;
    fx.run(&["."], "/app/")?;
    assert!(fx.l().join("app/src/main.rs").exists());
    assert!(!fx.l().join("app/src/secret.key").exists());
    assert!(!fx.l().join("app/logs/a.log").exists());
    assert!(fx.l().join("app/logs/keep.log").exists());
    assert!(!fx.l().join("app/notes.md").exists());
    let e = err_text(fx.run(&["notes.md"], "/x/"))?;
    assert_eq!(e, "notes.md: excluded by .dockerignore line 5 (`notes.md`)");
    // A wildcard does not see excluded files.
    fx.run(&["*.md", "src/*"], "/w/")?;
    assert!(!fx.l().join("w/notes.md").exists());
    assert!(fx.l().join("w/readme.md").exists());
    assert!(!fx.l().join("w/secret.key").exists());
    assert!(fx.l().join("w/main.rs").exists());
    // An excluded directory with a re-included file can be named: only that file comes.
    fx.run(&["logs"], "/logs/")?;
    assert!(fx.l().join("logs/keep.log").exists());
    assert!(!fx.l().join("logs/a.log").exists());
    // Copies from a stage ignore .dockerignore.
    let o = Opts {
        from_stage: true,
        ..Opts::default()
    };
    fx.run_with(&["notes.md"], "/stage/", &o)?;
    assert!(fx.l().join("stage/notes.md").exists());
    Ok(())
}

#[test]
fn chmod_applies_to_files_and_dirs() -> R {
    let fx = Fx::new()?;
    fx.file("d/s/f", "F")?;
    symlink("f", fx.c().join("d/s/l"))?;
    let o = Opts {
        chmod: Some(0o640),
        ..Opts::default()
    };
    fx.run_with(&["d"], "/x/", &o)?;
    assert_eq!(mode(fx.l().join("x/s/f"))?, 0o640);
    assert_eq!(mode(fx.l().join("x/s"))?, 0o640);
    // The directory made for the destination is not a copied entry.
    assert_eq!(mode(fx.l().join("x"))?, 0o755);
    assert!(
        fs::symlink_metadata(fx.l().join("x/s/l"))?
            .file_type()
            .is_symlink()
    );
    Ok(())
}

#[test]
fn chown_applies_to_copied_entries_and_made_dirs() -> R {
    let fx = Fx::new()?;
    fs::create_dir_all(fx.parent.path().join("etc"))?;
    fs::write(
        fx.parent.path().join("etc/passwd"),
        "app:x:1000:1001::/home/app:/bin/sh\n",
    )?;
    fs::write(fx.parent.path().join("etc/group"), "staff:x:50:app\n")?;
    fx.file("d/f", "F")?;
    symlink("f", fx.c().join("d/l"))?;
    let chown = |user: &str, group: Option<&str>| Opts {
        chown: Some(Chown {
            user: user.into(),
            group: group.map(str::to_string),
        }),
        ..Opts::default()
    };
    fx.run_with(&["d"], "/a/b/", &chown("app", None))?;
    for p in ["a", "a/b", "a/b/f", "a/b/l"] {
        assert_eq!(owner(fx.l().join(p))?, (1000, 1001), "{p}");
    }
    fx.run_with(&["d/f"], "/g/", &chown("app", Some("staff")))?;
    assert_eq!(owner(fx.l().join("g/f"))?, (1000, 50));
    fx.run_with(&["d/f"], "/n/", &chown("42", None))?;
    assert_eq!(owner(fx.l().join("n/f"))?, (42, 42));
    let e = err_text(fx.run_with(&["d/f"], "/z/", &chown("ghost", None)))?;
    assert_eq!(
        e,
        "--chown=ghost: unable to find user ghost: no matching entries in passwd file"
    );
    Ok(())
}

#[test]
fn existing_dest_dirs_are_taken_over_with_their_metadata() -> R {
    let fx = Fx::new()?;
    let p = fx.parent.path();
    fs::create_dir_all(p.join("srv/www"))?;
    fs::set_permissions(p.join("srv/www"), fs::Permissions::from_mode(0o2775))?;
    std::os::unix::fs::lchown(p.join("srv/www"), Some(33), Some(33))?;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
    fs::File::open(p.join("srv/www"))?.set_modified(t)?;
    fx.file("site/index.html", "hi")?;
    fs::set_permissions(fx.c().join("site"), fs::Permissions::from_mode(0o700))?;
    set_mtime(&fx.c().join("site"), 1_000_000_000)?;
    fx.run(&["site"], "/srv/www")?;
    let www = fx.l().join("srv/www");
    assert_eq!(read(www.join("index.html"))?, "hi");
    assert_eq!(mode(&www)?, 0o2775);
    assert_eq!(owner(&www)?, (33, 33));
    // fsutil restores the filled directory's times from the source's.
    assert_eq!(fs::metadata(&www)?.mtime(), 1_000_000_000);
    Ok(())
}

/// Issue 11's second divergence: `COPY somedir /new/path` makes the missing
/// destination like every directory of the path (fsutil's
/// `prepareTargetDir`: `MkdirAll(dest, 0755)` with --chown's owner) and
/// fills it; only the directories below keep their source modes. The
/// destination takes the source directory's mtime.
#[test]
fn a_missing_dir_dest_is_made_0755_and_only_dirs_below_keep_modes() -> R {
    for dest in ["/new/path", "/new/path/"] {
        let fx = Fx::new()?;
        fx.file("somedir/sub/f", "F")?;
        fs::set_permissions(
            fx.c().join("somedir/sub"),
            fs::Permissions::from_mode(0o2775),
        )?;
        fs::set_permissions(fx.c().join("somedir"), fs::Permissions::from_mode(0o1777))?;
        set_mtime(&fx.c().join("somedir"), 1_111_111_111)?;
        fx.run(&["somedir"], dest)?;
        let top = fx.l().join("new/path");
        assert_eq!(mode(&top)?, 0o755, "{dest}");
        assert_eq!(owner(&top)?, (0, 0), "{dest}");
        assert_eq!(fs::metadata(&top)?.mtime(), 1_111_111_111, "{dest}");
        assert_eq!(mode(top.join("sub"))?, 0o2775, "{dest}");
        assert_eq!(read(top.join("sub/f"))?, "F");
    }
    // --chown owns it, --chmod leaves it 0755 (it is not a copied entry).
    let fx = Fx::new()?;
    fx.file("somedir/f", "F")?;
    fs::set_permissions(fx.c().join("somedir"), fs::Permissions::from_mode(0o700))?;
    let o = Opts {
        chown: Some(Chown {
            user: "7".into(),
            group: Some("8".into()),
        }),
        chmod: Some(0o600),
        ..Opts::default()
    };
    fx.run_with(&["somedir"], "/made", &o)?;
    assert_eq!(mode(fx.l().join("made"))?, 0o755);
    assert_eq!(owner(fx.l().join("made"))?, (7, 8));
    assert_eq!(mode(fx.l().join("made/f"))?, 0o600);
    Ok(())
}

#[test]
fn dest_symlinks_resolve_in_the_destination_filesystem() -> R {
    let fx = Fx::new()?;
    let p = fx.parent.path();
    fs::create_dir_all(p.join("usr/lib"))?;
    symlink("usr/lib", p.join("lib"))?;
    symlink("/usr/lib", p.join("abslib"))?;
    fx.file("m.so", "M")?;
    fx.run(&["m.so"], "/lib/mods/")?;
    fx.run(&["m.so"], "/abslib")?;
    assert_eq!(read(fx.l().join("usr/lib/mods/m.so"))?, "M");
    assert_eq!(read(fx.l().join("usr/lib/m.so"))?, "M");
    assert!(!fx.l().join("lib").exists());
    Ok(())
}

#[test]
fn cancellation_stops_the_copy() -> R {
    let fx = Fx::new()?;
    fx.file("d/a", "A")?;
    let sources = vec!["d".to_string()];
    let req = CopyRequest {
        src_root: fx.c(),
        from_context: true,
        ignore: &fx.ignore,
        sources: &sources,
        dest: "/x/",
        cwd: "/",
        parent_root: fx.parent.path(),
        users_root: fx.parent.path(),
        layer: fx.l(),
        chown: None,
        chmod: None,
        extract_archives: false,
        decompression_limit: strata_solver::DEFAULT_DECOMPRESSION_LIMIT,
        parents: false,
        exclude: &[],
    };
    assert!(matches!(copy(&req, &|| true), Err(CopyError::Cancelled)));
    Ok(())
}

#[test]
fn selection_digest_covers_exactly_what_is_copied() -> R {
    let mut fx = Fx::new()?;
    fx.file("app/main.rs", "fn main() {}")?;
    fx.file("app/debug.log", "noise")?;
    fx.file("other.txt", "not selected")?;
    fx.ignore = DockerIgnore::parse("**/*.log\n")?;
    let digest = |fx: &Fx| selection_digest(fx.c(), &["app".to_string()], &fx.ignore, true, None);
    let base = digest(&fx)?;
    assert_eq!(base.len(), 64);
    assert_eq!(digest(&fx)?, base);
    // Times do not count.
    set_mtime(&fx.c().join("app/main.rs"), 42)?;
    assert_eq!(digest(&fx)?, base);
    // Neither does the owner of a context file (the copy makes it 0:0).
    std::os::unix::fs::lchown(fx.c().join("app/main.rs"), Some(7), Some(7))?;
    assert_eq!(digest(&fx)?, base);
    // Ignored and unselected files do not count.
    fs::write(fx.c().join("app/debug.log"), "more noise")?;
    fs::write(fx.c().join("other.txt"), "changed")?;
    assert_eq!(digest(&fx)?, base);
    // Mode, content, names and symlink targets do.
    fs::set_permissions(
        fx.c().join("app/main.rs"),
        fs::Permissions::from_mode(0o755),
    )?;
    let chmodded = digest(&fx)?;
    assert_ne!(chmodded, base);
    fs::write(fx.c().join("app/main.rs"), "fn main() { }")?;
    let edited = digest(&fx)?;
    assert_ne!(edited, chmodded);
    symlink("main.rs", fx.c().join("app/link"))?;
    let linked = digest(&fx)?;
    assert_ne!(linked, edited);
    fs::remove_file(fx.c().join("app/link"))?;
    symlink("other", fx.c().join("app/link"))?;
    assert_ne!(digest(&fx)?, linked);
    // Which paths share a file counts (the copy keeps hard links).
    fs::write(fx.c().join("app/copy.rs"), "fn main() { }")?;
    fs::set_permissions(
        fx.c().join("app/copy.rs"),
        fs::metadata(fx.c().join("app/main.rs"))?.permissions(),
    )?;
    let separate = digest(&fx)?;
    fs::remove_file(fx.c().join("app/copy.rs"))?;
    fs::hard_link(fx.c().join("app/main.rs"), fx.c().join("app/copy.rs"))?;
    assert_ne!(digest(&fx)?, separate);
    // Outside the context the owner is kept, so it counts.
    let stage = |fx: &Fx| selection_digest(fx.c(), &["app".to_string()], &fx.ignore, false, None);
    let before = stage(&fx)?;
    std::os::unix::fs::lchown(fx.c().join("app/main.rs"), Some(8), Some(8))?;
    assert_ne!(stage(&fx)?, before);
    // A source that cannot be copied cannot be digested either.
    assert!(selection_digest(fx.c(), &["nope".to_string()], &fx.ignore, true, None).is_err());
    Ok(())
}

/// Runs `tar` (GNU tar, with `-I prog` for compression) in `dir`; fails
/// naming the tool when it is missing.
fn make_tar(dir: &Path, out: &Path, compress: Option<&str>, members: &[&str]) -> R {
    let mut cmd = std::process::Command::new("tar");
    cmd.current_dir(dir).arg("--numeric-owner");
    if let Some(prog) = compress {
        cmd.arg("-I").arg(prog);
    }
    cmd.arg("-cf").arg(out).args(members);
    let status = cmd.status().map_err(|e| {
        format!(
            "cannot run tar (apt-get install tar {}): {e}",
            compress.unwrap_or("")
        )
    })?;
    if !status.success() {
        return Err(format!("tar -I {compress:?} failed: {status}").into());
    }
    Ok(())
}

#[test]
fn add_extracts_tar_archives_detected_by_content() -> R {
    let fx = Fx::new()?;
    let staging = tempfile::tempdir()?;
    fs::create_dir_all(staging.path().join("pkg/bin"))?;
    fs::write(staging.path().join("pkg/bin/tool"), "tool")?;
    std::os::unix::fs::lchown(staging.path().join("pkg/bin/tool"), Some(12), Some(34))?;
    let add = Opts {
        add: true,
        ..Opts::default()
    };
    // Names that say nothing about the format: only the content counts.
    let formats = [
        (None, "plain.bin"),
        (Some("gzip"), "gz.data"),
        (Some("bzip2"), "bz"),
        (Some("xz"), "x"),
        (Some("zstd"), "z.tar"),
    ];
    for (compress, name) in formats {
        make_tar(staging.path(), &fx.c().join(name), compress, &["pkg"])?;
        let dest = format!("/out/{name}");
        // No trailing slash: an archive's destination is a directory all the same.
        fx.run_with(&[name], &dest, &add)?;
        let tool = fx.l().join(format!("out/{name}/pkg/bin/tool"));
        assert_eq!(read(&tool)?, "tool", "{name}");
        // The archive's owners are kept without --chown.
        assert_eq!(owner(&tool)?, (12, 34), "{name}");
        assert_eq!(mode(fx.l().join(format!("out/{name}")))?, 0o755);
    }
    // --chown applies to every extracted entry and to the made directory.
    let chowned = Opts {
        add: true,
        chown: Some(Chown {
            user: "7".into(),
            group: Some("8".into()),
        }),
        ..Opts::default()
    };
    fx.run_with(&["gz.data"], "/owned/", &chowned)?;
    assert_eq!(owner(fx.l().join("owned/pkg/bin/tool"))?, (7, 8));
    assert_eq!(owner(fx.l().join("owned"))?, (7, 8));
    // COPY never extracts.
    fx.run(&["gz.data"], "/copied/")?;
    assert!(fx.l().join("copied/gz.data").is_file());
    Ok(())
}

#[test]
fn add_copies_other_files_and_compressed_non_tars_as_they_are() -> R {
    let fx = Fx::new()?;
    fx.file("notes.txt", "plain text")?;
    fx.file("data.txt", "some data")?;
    let gz = std::process::Command::new("gzip")
        .arg("-k")
        .arg(fx.c().join("data.txt"))
        .status()
        .map_err(|e| format!("cannot run gzip: {e}"))?;
    assert!(gz.success());
    let add = Opts {
        add: true,
        ..Opts::default()
    };
    fx.run_with(&["notes.txt"], "/n", &add)?;
    fx.run_with(&["data.txt.gz"], "/d/", &add)?;
    assert_eq!(read(fx.l().join("n"))?, "plain text");
    // A gzip file that holds no tar is copied, still compressed (Docker).
    let copied = fs::read(fx.l().join("d/data.txt.gz"))?;
    assert_eq!(&copied[..2], &[0x1f, 0x8b]);
    Ok(())
}

#[test]
fn add_archive_into_an_existing_dir_keeps_its_metadata() -> R {
    let fx = Fx::new()?;
    let staging = tempfile::tempdir()?;
    fs::write(staging.path().join("f"), "F")?;
    make_tar(staging.path(), &fx.c().join("a.tar"), None, &["f"])?;
    let opt = fx.parent.path().join("opt");
    fs::create_dir(&opt)?;
    fs::set_permissions(&opt, fs::Permissions::from_mode(0o700))?;
    let add = Opts {
        add: true,
        ..Opts::default()
    };
    fx.run_with(&["a.tar"], "/opt", &add)?;
    assert_eq!(read(fx.l().join("opt/f"))?, "F");
    assert_eq!(mode(fx.l().join("opt"))?, 0o700);
    Ok(())
}

#[test]
fn files_and_directories_never_replace_each_other() -> R {
    // fsutil: "cannot replace to directory ... with file" and "cannot copy to
    // non-directory"; here the parent filesystem counts as well as the layer.
    let fx = Fx::new()?;
    let p = fx.parent.path();
    fs::create_dir_all(p.join("app/conf"))?;
    fs::write(p.join("app/data"), "old")?;
    fx.file("conf", "a file named like the parent's directory")?;
    fx.file("src/data/x", "a directory named like the parent's file")?;
    let e = err_text(fx.run(&["conf"], "/app/"))?;
    assert_eq!(e, "/app/conf: cannot replace a directory with a file");
    let e = err_text(fx.run(&["src"], "/app/"))?;
    assert_eq!(e, "/app/data: not a directory in the destination");
    // A file replaces a file (and a symlink) of the parent.
    fx.file("data", "new")?;
    fx.run(&["data"], "/app/")?;
    assert_eq!(read(fx.l().join("app/data"))?, "new");
    Ok(())
}

#[test]
fn fifos_are_recreated() -> R {
    let fx = Fx::new()?;
    fs::create_dir(fx.c().join("d"))?;
    let status = std::process::Command::new("mkfifo")
        .arg(fx.c().join("d/pipe"))
        .status()
        .map_err(|e| format!("cannot run mkfifo (coreutils): {e}"))?;
    assert!(status.success());
    fx.run(&["d"], "/x/")?;
    use std::os::unix::fs::FileTypeExt;
    assert!(
        fs::symlink_metadata(fx.l().join("x/pipe"))?
            .file_type()
            .is_fifo()
    );
    Ok(())
}

fn run_tool(tool: &str, args: &[&std::ffi::OsStr]) -> Result<String, Box<dyn std::error::Error>> {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {tool} (apt-get install libcap2-bin): {e}"))?;
    if !out.status.success() {
        return Err(format!("{tool} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn file_capabilities_survive_the_copy_and_count_in_the_digest() -> R {
    let fx = Fx::new()?;
    fx.file("bin/ping", "binary")?;
    let src = fx.c().join("bin/ping");
    let digest = |fx: &Fx| selection_digest(fx.c(), &["bin".to_string()], &fx.ignore, true, None);
    let before = digest(&fx)?;
    run_tool("setcap", &["cap_net_raw+ep".as_ref(), src.as_os_str()])?;
    assert_ne!(digest(&fx)?, before);
    // With --chown too: changing the owner drops capabilities, so they are set after.
    let o = Opts {
        chown: Some(Chown {
            user: "5".into(),
            group: None,
        }),
        ..Opts::default()
    };
    fx.run_with(&["bin"], "/usr/bin/", &o)?;
    let caps = run_tool("getcap", &[fx.l().join("usr/bin/ping").as_os_str()])?;
    assert!(caps.contains("cap_net_raw"), "getcap says {caps:?}");
    Ok(())
}

/// `COPY --exclude` (Dockerfile reference): several patterns, with the
/// `<src>` syntax; a matching file is not copied even when a wildcard
/// selected it (`COPY --exclude=*.txt hom* /mydir/`), and below a copied
/// directory the patterns match paths relative to it (fsutil's rule, with
/// `**` crossing directories).
#[test]
fn exclude_leaves_out_matching_sources_and_entries() -> R {
    let fx = Fx::new()?;
    for f in [
        "home.txt",
        "home.md",
        "homer.rs",
        "hom/a.txt",
        "hom/b.md",
        "hom/deep/c.txt",
        "hom/deep/d.rs",
    ] {
        fx.file(f, f)?;
    }
    let o = Opts {
        exclude: &["*.txt", "*.md", "**/c.txt"],
        ..Opts::default()
    };
    fx.run_with(&["hom*"], "/mydir/", &o)?;
    let m = fx.l().join("mydir");
    assert_eq!(read(m.join("homer.rs"))?, "homer.rs");
    assert!(!m.join("home.txt").exists() && !m.join("home.md").exists());
    // `hom` is copied (it is a directory), its contents filtered.
    assert!(!m.join("a.txt").exists() && !m.join("b.md").exists());
    assert!(!m.join("deep/c.txt").exists());
    assert_eq!(read(m.join("deep/d.rs"))?, "hom/deep/d.rs");
    // A directory left out is left out whole; `!` re-includes.
    let o = Opts {
        exclude: &["deep", "*.txt", "!a.txt"],
        ..Opts::default()
    };
    fx.run_with(&["hom"], "/two/", &o)?;
    assert!(!fx.l().join("two/deep").exists());
    assert_eq!(read(fx.l().join("two/a.txt"))?, "hom/a.txt");
    assert!(fx.l().join("two/b.md").exists());
    Ok(())
}

/// `COPY --parents` (Dockerfile reference): sources keep their parent
/// directories (`./x/a.txt ./y/a.txt /parents/` gives `/parents/x/a.txt`
/// and `/parents/y/a.txt`); a `/./` sets where the kept path starts
/// (`./x/./y/*.txt` gives `/parents/y/a.txt`); wildcards and `**` select.
#[test]
fn parents_keep_the_source_paths() -> R {
    let fx = Fx::new()?;
    for f in [
        "x/a.txt",
        "y/a.txt",
        "x/y/a.txt",
        "x/y/b.txt",
        "x/y/c.md",
        "src/p/q/m.go",
        "src/r/n.go",
        "src/r/o.rs",
    ] {
        fx.file(f, f)?;
    }
    fs::set_permissions(fx.c().join("src/p"), fs::Permissions::from_mode(0o750))?;
    let o = Opts {
        parents: true,
        ..Opts::default()
    };
    fx.run_with(&["./x/a.txt", "./y/a.txt"], "/parents/", &o)?;
    assert_eq!(read(fx.l().join("parents/x/a.txt"))?, "x/a.txt");
    assert_eq!(read(fx.l().join("parents/y/a.txt"))?, "y/a.txt");
    fx.run_with(&["./x/./y/*.txt"], "/pivot/", &o)?;
    assert_eq!(read(fx.l().join("pivot/y/a.txt"))?, "x/y/a.txt");
    assert_eq!(read(fx.l().join("pivot/y/b.txt"))?, "x/y/b.txt");
    assert!(!fx.l().join("pivot/y/c.md").exists());
    assert!(!fx.l().join("pivot/x").exists());
    fx.run_with(&["src/**/*.go"], "/go/", &o)?;
    assert_eq!(read(fx.l().join("go/src/p/q/m.go"))?, "src/p/q/m.go");
    assert_eq!(read(fx.l().join("go/src/r/n.go"))?, "src/r/n.go");
    assert!(!fx.l().join("go/src/r/o.rs").exists());
    // The directories on the way are copied ones: they keep their modes.
    assert_eq!(mode(fx.l().join("go/src/p"))?, 0o750);
    let e = err_text(fx.run_with(&["nothing/*.go"], "/none/", &o))?;
    assert!(e.contains("nothing/*.go"), "{e}");
    Ok(())
}

/// `--chmod` in symbolic notation (Dockerfile reference, 1.14): applied to
/// each entry's own mode, `X` only for directories and executables.
#[test]
fn symbolic_chmod_applies_per_entry() -> R {
    let fx = Fx::new()?;
    fx.file("d/run.sh", "#!/bin/sh")?;
    fx.file("d/data", "x")?;
    fs::set_permissions(fx.c().join("d/run.sh"), fs::Permissions::from_mode(0o700))?;
    fs::set_permissions(fx.c().join("d/data"), fs::Permissions::from_mode(0o666))?;
    fx.file("d/sub/f", "f")?;
    fs::set_permissions(fx.c().join("d/sub"), fs::Permissions::from_mode(0o700))?;
    let o = Opts {
        symbolic: Some("u=rwX,go=rX"),
        ..Opts::default()
    };
    fx.run_with(&["d"], "/a/", &o)?;
    assert_eq!(mode(fx.l().join("a/run.sh"))?, 0o755);
    assert_eq!(mode(fx.l().join("a/data"))?, 0o644);
    assert_eq!(mode(fx.l().join("a/sub"))?, 0o755);
    let o = Opts {
        symbolic: Some("u+x,go-w"),
        ..Opts::default()
    };
    fx.run_with(&["d/data"], "/b/", &o)?;
    assert_eq!(mode(fx.l().join("b/data"))?, 0o744);
    let o = Opts {
        symbolic: Some("u+q"),
        ..Opts::default()
    };
    assert!(err_text(fx.run_with(&["d/data"], "/c/", &o))?.contains("u+q"));
    Ok(())
}

/// Issue 9 part 6: wildcards match names that are not UTF-8 byte for byte,
/// as Go's `filepath.Match` does (each invalid byte is one character, so
/// `?` matches it), and the copy keeps the name's bytes.
#[test]
fn wildcards_match_names_that_are_not_utf8() -> R {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let fx = Fx::new()?;
    let latin1 = OsStr::from_bytes(b"caf\xe9.txt");
    fs::create_dir_all(fx.c().join(OsStr::from_bytes(b"d\xff")))?;
    fs::write(fx.c().join(latin1), "L")?;
    fs::write(fx.c().join(OsStr::from_bytes(b"d\xff/inner")), "I")?;
    fx.file("cafe.txt", "U")?;
    fx.run(&["caf?.txt"], "/q/")?;
    assert_eq!(read(fx.l().join("q").join(latin1))?, "L");
    assert_eq!(read(fx.l().join("q/cafe.txt"))?, "U");
    // A lossy name would not be found again: the copy works on the bytes.
    fx.run(&["d?/inner"], "/r/")?;
    assert_eq!(read(fx.l().join("r/inner"))?, "I");
    fx.run(&["*.txt"], "/s/")?;
    assert_eq!(read(fx.l().join("s").join(latin1))?, "L");
    Ok(())
}
