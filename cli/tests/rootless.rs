//! Rootless builds: an ordinary user, made by the test with subordinate id
//! ranges in /etc/subuid and /etc/subgid, runs a copy of the `strata`
//! binary with a bare environment (state in ~/.local/share/strata). The
//! image is checked as root's are: the owners in its layers (umoci) are
//! the image's ids, not the host ids they were mapped to; it runs under
//! crun; and nothing of the user's is left outside the data directory.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use crate::common::{Env, R, Res, ran_steps, run_with_crun, tool};

/// useradd and userdel lock /etc/passwd: one at a time in this process.
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// A user made for one test, removed (with its subordinate ranges) on drop.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl TestUser {
    /// A user whose home is `home` (made and given to the user), with the
    /// subordinate ranges `subids` (`start-end`) unless `None`.
    fn create(tag: &str, home: &Path, subids: Option<&str>) -> Res<TestUser> {
        let name = format!("strata-{tag}{}", std::process::id());
        let _lock = ACCOUNTS.lock().map_err(|_| "account lock poisoned")?;
        let _ = Command::new("userdel").arg(&name).output();
        let home_arg = home.to_str().ok_or("non-UTF-8 path")?;
        // No automatic subordinate ids (SUB_UID_COUNT=0): the test says which.
        tool(
            "useradd",
            &[
                "--user-group",
                "--no-create-home",
                "--home-dir",
                home_arg,
                "--shell",
                "/bin/sh",
                "-K",
                "SUB_UID_COUNT=0",
                "-K",
                "SUB_GID_COUNT=0",
                &name,
            ],
        )?;
        let id = |flag: &str| -> Res<u32> {
            let out = tool("id", &[flag, &name])?;
            Ok(String::from_utf8(out.stdout)?.trim().parse()?)
        };
        let user = TestUser {
            uid: id("-u")?,
            gid: id("-g")?,
            name,
            home: home.to_path_buf(),
        };
        if let Some(range) = subids {
            tool(
                "usermod",
                &["--add-subuids", range, "--add-subgids", range, &user.name],
            )?;
        }
        fs::create_dir_all(home)?;
        std::os::unix::fs::chown(home, Some(user.uid), Some(user.gid))?;
        Ok(user)
    }

    /// `strata ARGS` as this user, from `bin`, with nothing of the test's
    /// environment but `HOME` and a `PATH`.
    fn strata(&self, bin: &Path, args: &[&str]) -> Res<Output> {
        let (uid, gid) = (self.uid.to_string(), self.gid.to_string());
        let home = format!("HOME={}", self.home.display());
        let mut all = vec![
            "--reuid",
            &uid,
            "--regid",
            &gid,
            "--init-groups",
            "env",
            "-i",
            &home,
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        ];
        let bin = bin.to_str().ok_or("non-UTF-8 path")?;
        all.push(bin);
        all.extend_from_slice(args);
        Ok(Command::new("setpriv").args(&all).output()?)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _lock = ACCOUNTS.lock();
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A copy of the binary the user may run (the target folder may not be
/// readable by others), in a world-readable `dir`.
fn user_binary(dir: &Path) -> Res<PathBuf> {
    fs::create_dir_all(dir)?;
    let bin = dir.join("strata");
    fs::copy(env!("CARGO_BIN_EXE_strata"), &bin)?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))?;
    Ok(bin)
}

/// Every path under `dir` (relative, sorted), not descending into `skip`.
fn tree(dir: &Path, skip: &Path) -> Res<Vec<String>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d)? {
            let path = entry?.path();
            out.push(path.strip_prefix(dir)?.display().to_string());
            if path != skip && fs::symlink_metadata(&path)?.is_dir() {
                todo.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `(uid, gid)` of `rel` in an unpacked rootfs.
fn owner(rootfs: &Path, rel: &str) -> Res<(u32, u32)> {
    let m = fs::symlink_metadata(rootfs.join(rel))?;
    Ok((m.uid(), m.gid()))
}

const DOCKERFILE: &str = "FROM busybox
RUN stat -c %u:%g /home/app > /base-owner && touch /home/app/new
RUN echo f > /f && chown 1000:1000 /f && chown 1234:2345 /home/app/new
COPY --chown=1000:1000 a.txt /copied
RUN cat /proc/self/uid_map > /uid-map && mkdir /data && touch /data/a /data/b
RUN rm -rf /data /bin/ls && mkdir /data && touch /data/c
CMD [\"sh\", \"-c\", \"cat /base-owner /f; id -u; stat -c %u:%g /copied\"]
";

/// Built on the first image: its layers, with an opaque directory and a
/// whiteout, unpacked as a base image inside the namespace.
const CHILD_DOCKERFILE: &str = "FROM rootless:1
RUN ls /data > /data-list && ls /sys/class/net > /nets && test ! -e /bin/ls
";

/// The first image's checks, unpacked at `rootfs`, built by the user `uid`.
fn check_image(rootfs: &Path, uid: u32) -> R {
    // The steps ran in the user's namespace: its uid 0 is the user.
    let map = fs::read_to_string(rootfs.join("uid-map"))?;
    let first: Vec<&str> = map.split_whitespace().take(3).collect();
    assert_eq!(first, ["0", &uid.to_string(), "1"], "{map}");

    // Owners in the layers are the image's: a base layer's directory owned by
    // 1000 (seen so inside the step, and kept when the step copied it up),
    // RUN chown, COPY --chown.
    assert_eq!(
        fs::read_to_string(rootfs.join("base-owner"))?,
        "1000:1000\n"
    );
    assert_eq!(owner(rootfs, "home/app")?, (1000, 1000));
    assert_eq!(owner(rootfs, "home/app/new")?, (1234, 2345));
    assert_eq!(owner(rootfs, "f")?, (1000, 1000));
    assert_eq!(owner(rootfs, "copied")?, (1000, 1000));
    assert_eq!(owner(rootfs, "bin/busybox")?, (0, 0));

    // A deleted file and a directory made again (a whiteout, an opaque
    // directory: overlay's user.overlay.* markers in the namespace).
    assert!(fs::symlink_metadata(rootfs.join("bin/ls")).is_err());
    assert_eq!(tree(&rootfs.join("data"), Path::new("/"))?, ["c"]);
    Ok(())
}

/// Subordinate ids of the build user; the test looks for its files by them.
const SUB_START: u32 = 420_000;
const SUB_RANGE: &str = "420000-485535";

#[test]
fn an_ordinary_user_builds_with_the_images_owners() -> R {
    let env = Env::new()?;
    // The user must reach its home, the binary, the context and the base image.
    fs::set_permissions(env.path(""), fs::Permissions::from_mode(0o755))?;
    let bin = user_binary(&env.path("bin"))?;
    let ctx = env.context("ctx", DOCKERFILE)?;
    let user = TestUser::create("rl", &env.path("home"), Some(SUB_RANGE))?;
    let data = user.home.join(".local/share/strata");

    let ctx_arg = ctx.to_str().ok_or("non-UTF-8 path")?;
    let store = data.join("store");
    // Every runtime; each build runs its steps (--no-cache).
    for (runtime, tag) in [
        ("builtin", "rootless:1"),
        ("crun", "rootless:crun"),
        ("runc", "rootless:runc"),
    ] {
        let out = user.strata(
            &bin,
            &[
                "build",
                "--progress=plain",
                "--runtime",
                runtime,
                // The private network's slirp4netns needs /dev/net/tun, which is 0600 on
                // machines like this one, so an ordinary user cannot open it there.
                "--network=host",
                "--allow",
                "network.host",
                "--no-cache",
                "--build-context",
                &env.base,
                "-t",
                tag,
                ctx_arg,
            ],
        )?;
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "rootless {runtime} build failed:\n{log}"
        );
        let bundle = env.path(&format!("bundle-{runtime}"));
        let image = format!("{}:{tag}", store.display());
        tool(
            "umoci",
            &["unpack", "--image", &image, bundle.to_str().ok_or("path")?],
        )?;
        check_image(&bundle.join("rootfs"), user.uid).map_err(|e| format!("{runtime}: {e}"))?;
    }

    // The image is a base image as well (from the user's store): its layers
    // unpack in the namespace (whiteout and opaque entries included), and on
    // a private network the step's own sysfs shows only lo.
    let child_ctx = env.context("child", CHILD_DOCKERFILE)?;
    let child_ctx_arg = child_ctx.to_str().ok_or("non-UTF-8 path")?;
    let child = user.strata(
        &bin,
        &[
            "build",
            "--progress=plain",
            "--network=none",
            "-t",
            "rootless:2",
            child_ctx_arg,
        ],
    )?;
    let log = String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "child build failed:\n{log}");
    let child_bundle = env.path("child-bundle");
    let child_image = format!("{}:rootless:2", store.display());
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &child_image,
            child_bundle.to_str().ok_or("path")?,
        ],
    )?;
    let child_rootfs = child_bundle.join("rootfs");
    assert_eq!(fs::read_to_string(child_rootfs.join("data-list"))?, "c\n");
    assert_eq!(fs::read_to_string(child_rootfs.join("nets"))?, "lo\n");

    // On the host, the same files are the user's subordinate ids: the
    // snapshot holding /f is owned by SUB_START + 999.
    let found = Command::new("find")
        .arg(&data)
        .args(["-name", "f", "-uid", &(SUB_START + 999).to_string()])
        .output()?;
    assert!(
        !found.stdout.is_empty(),
        "no snapshot file owned by {} under {}",
        SUB_START + 999,
        data.display()
    );

    // The image runs.
    assert_eq!(
        run_with_crun(&env.path("bundle-builtin"))?,
        "1000:1000\nf\n0\n1000:1000\n"
    );

    // The data directory is the user's alone: it holds files of the
    // subordinate ids (setuid ones too) that no other user may reach.
    assert_eq!(fs::metadata(&data)?.permissions().mode() & 0o777, 0o700);

    // Nothing of the user's outside its data directory: in its home only the
    // folders leading there, and no file of its ids in the shared places
    // (files vanishing under other tests' hands make find complain: ignored).
    assert_eq!(
        tree(&user.home, &data)?,
        [".local", ".local/share", ".local/share/strata"]
    );
    let (uid, gid) = (user.uid.to_string(), user.gid.to_string());
    let above = format!("+{}", SUB_START - 1);
    let below = format!("-{}", SUB_START + 65537);
    let home = user.home.to_str().ok_or("non-UTF-8 path")?;
    let mut find = vec!["/tmp", "/var/tmp", "/dev/shm", "/run", "-xdev"];
    find.extend([
        "-path", home, "-prune", "-o", "(", "-uid", &uid, "-o", "-gid", &gid,
    ]);
    find.extend(["-o", "(", "-uid", &above, "-uid", &below]);
    find.extend([")", ")", "-print"]);
    let stray = Command::new("find").args(&find).output()?;
    assert_eq!(String::from_utf8_lossy(&stray.stdout), "");

    // A second build of the same Dockerfile hits the cache in the user's root.
    let again = user.strata(
        &bin,
        &[
            "build",
            "--progress=plain",
            "--network=host",
            "--allow",
            "network.host",
            "--build-context",
            &env.base,
            ctx_arg,
        ],
    )?;
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{log}");
    assert_eq!(ran_steps(&log), Vec::<String>::new(), "{log}");

    Ok(())
}

#[test]
fn a_user_without_subordinate_ids_is_told_what_is_missing() -> R {
    let env = Env::new()?;
    fs::set_permissions(env.path(""), fs::Permissions::from_mode(0o755))?;
    let bin = user_binary(&env.path("bin"))?;
    let user = TestUser::create("ns", &env.path("home"), None)?;
    let out = user.strata(&bin, &["images"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("/etc/subuid has no range for") && err.contains(&user.name),
        "{err}"
    );
    assert!(!user.home.join(".local").exists());
    Ok(())
}

/// A base image whose only file is owned by uid 70000: beyond the 65536
/// subordinate ids a rootless build maps.
fn image_with_a_high_owner(dest: &Path) -> Res<PathBuf> {
    use sha2::Digest;
    use std::io::Write;
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_path("high")?;
    header.set_mode(0o644);
    header.set_uid(70000);
    header.set_gid(0);
    header.set_size(5);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    builder.append(&header, &b"high\n"[..])?;
    let tar = builder.into_inner()?;
    let diff_id = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&tar)));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar)?;
    Ok(strata_fixtures::single_layer_image(
        dest,
        gz.finish()?,
        diff_id,
    )?)
}

#[test]
fn an_id_beyond_the_mapped_range_fails_the_unpack_naming_the_entry() -> R {
    let env = Env::new()?;
    fs::set_permissions(env.path(""), fs::Permissions::from_mode(0o755))?;
    let bin = user_binary(&env.path("bin"))?;
    let layout = image_with_a_high_owner(&env.path("high"))?;
    let ctx = env.context("ctx", "FROM high\nRUN true\n")?;
    let user = TestUser::create("hi", &env.path("home"), Some("500000-565535"))?;
    let base = format!("high=oci-layout://{}:latest", layout.display());
    let out = user.strata(
        &bin,
        &[
            "build",
            "--build-context",
            &base,
            ctx.to_str().ok_or("non-UTF-8 path")?,
        ],
    )?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("\"high\"") && err.contains("maps ids 0 to 65536 only"),
        "{err}"
    );
    Ok(())
}
