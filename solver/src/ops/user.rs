//! User and group names resolved against an image's `/etc/passwd` and
//! `/etc/group`, the way Docker does for `USER` and for `COPY --chown`.
//!
//! The root is a directory standing for the image's `/`; the files are found
//! with symlinks resolved inside it, so a link to `/etc/passwd` reads the
//! image's file, never the host's.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::copy::rootpath;

/// The highest id Docker accepts (runc's `user` package limit).
const MAX_ID: u32 = i32::MAX as u32;

/// A user a process runs as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups: those of `/etc/group` that list the user's name.
    pub additional_gids: Vec<u32>,
}

/// A user or group that cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A user name that `/etc/passwd` does not have (or there is no such file).
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// A group name that `/etc/group` does not have (or there is no such file).
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
    /// A numeric id above 2147483647.
    #[error("{0}: user or group id out of range (at most 2147483647)")]
    OutOfRange(String),
    /// `/etc/passwd` or `/etc/group` exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file, inside the image.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// One `/etc/passwd` line.
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

/// One `/etc/group` line.
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Docker's `USER` value: `name`, `uid`, `name:group`, `uid:gid`,
/// `uid:groupname`, or empty (root).
///
/// A user found in passwd takes its primary group from there; a numeric uid
/// that passwd lacks gets gid 0; a name passwd lacks is an error. An explicit
/// group replaces the primary group and then no supplementary groups are
/// added; without one, every group listing the user's name is added (runc's
/// `GetExecUser`, which BuildKit uses). Empty is uid 0 looked up the same
/// way (so root gets the groups that list `root`), and plain 0:0 when that
/// fails, as BuildKit does.
pub fn resolve_user(root: &Path, spec: &str) -> Result<User, UserError> {
    if spec.is_empty() {
        return Ok(resolve_user(root, "0").unwrap_or_default());
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    // Both given as numbers (or `root`): used as is, no file is read
    // (BuildKit's fast path).
    let fast = |s: &str| if s == "root" { Ok(Some(0)) } else { numeric(s) };
    if let (Some(uid), Some(Some(gid))) = (fast(user)?, group.map(fast).transpose()?) {
        return Ok(User {
            uid,
            gid,
            additional_gids: Vec::new(),
        });
    }
    let uid_arg = numeric(user)?;
    let mut out = User::default();
    let mut matched_name = None;
    if !user.is_empty() {
        let passwd = read_passwd(root)?;
        let found = passwd.into_iter().find(|e| match uid_arg {
            Some(uid) => e.uid == uid,
            None => e.name == user,
        });
        match (found, uid_arg) {
            (Some(e), _) => {
                out.uid = e.uid;
                out.gid = e.gid;
                matched_name = Some(e.name);
            }
            (None, Some(uid)) => out.uid = uid,
            (None, None) => return Err(UserError::NoUser(user.to_string())),
        }
    }
    let group = group.filter(|g| !g.is_empty());
    match group {
        Some(g) => out.gid = lookup_group(root, g)?,
        None => {
            if let Some(name) = matched_name {
                out.additional_gids = read_group(root)?
                    .into_iter()
                    .filter(|e| e.members.contains(&name))
                    .map(|e| e.gid)
                    .collect();
            }
        }
    }
    Ok(out)
}

/// `COPY --chown=user[:group]` to numeric `(uid, gid)`.
///
/// Numeric ids are used as they are; names are looked up (a missing file or
/// entry is an error naming the user or group). Without a group the gid is
/// the user's primary group from passwd for a name, and the uid itself for a
/// number (BuildKit's rule). An empty user is root.
pub fn resolve_chown(
    root: &Path,
    user: &str,
    group: Option<&str>,
) -> Result<(u32, u32), UserError> {
    let (uid, primary) = if user.is_empty() {
        (0, 0)
    } else if let Some(uid) = numeric(user)? {
        (uid, uid)
    } else {
        let entry = read_passwd(root)?
            .into_iter()
            .find(|e| e.name == user)
            .ok_or_else(|| UserError::NoUser(user.to_string()))?;
        (entry.uid, entry.gid)
    };
    let gid = match group.filter(|g| !g.is_empty()) {
        None => primary,
        Some(g) => match numeric(g)? {
            Some(gid) => gid,
            None => read_group(root)?
                .into_iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        },
    };
    Ok((uid, gid))
}

/// A group given by name or number: a number that `/etc/group` lacks is
/// used as is, a name it lacks is an error.
fn lookup_group(root: &Path, group: &str) -> Result<u32, UserError> {
    let gid_arg = numeric(group)?;
    let found = read_group(root)?.into_iter().find(|e| match gid_arg {
        Some(gid) => e.gid == gid,
        None => e.name == group,
    });
    match (found, gid_arg) {
        (Some(e), _) => Ok(e.gid),
        (None, Some(gid)) => Ok(gid),
        (None, None) => Err(UserError::NoGroup(group.to_string())),
    }
}

/// `Some(id)` for an all-digit string within Docker's range, `None` for a name.
fn numeric(s: &str) -> Result<Option<u32>, UserError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(id) if id <= MAX_ID => Ok(Some(id)),
        _ => Err(UserError::OutOfRange(s.to_string())),
    }
}

/// The lines of `/etc/<file>` split on `:`; a missing file has no lines.
fn read_db(root: &Path, name: &str) -> Result<Vec<Vec<String>>, UserError> {
    let inside = format!("/etc/{name}");
    let read_err = |source| UserError::Read {
        path: inside.clone(),
        source,
    };
    let path: PathBuf = rootpath::in_root(root, &inside, true).map_err(read_err)?;
    let text = match fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        // `/etc` is a file: there is no such database either.
        Err(e) if e.raw_os_error() == Some(20) => return Ok(Vec::new()),
        Err(e) => return Err(read_err(e)),
    };
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect())
}

fn read_passwd(root: &Path) -> Result<Vec<PasswdEntry>, UserError> {
    Ok(read_db(root, "passwd")?
        .into_iter()
        .filter_map(|f| {
            Some(PasswdEntry {
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                name: f.into_iter().next()?,
            })
        })
        .collect())
}

fn read_group(root: &Path) -> Result<Vec<GroupEntry>, UserError> {
    Ok(read_db(root, "group")?
        .into_iter()
        .filter_map(|f| {
            Some(GroupEntry {
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                name: f.into_iter().next()?,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Result<(), Box<dyn std::error::Error>>;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        app:x:1000:1001::/home/app:/bin/sh\n\
        web:x:33:33::/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\n\
        wheel:x:10:root\n\
        staff:x:50:app,web\n\
        appgrp:x:1001:\n\
        docker:x:999:web, app\n";

    fn image() -> Result<tempfile::TempDir, io::Error> {
        let root = tempfile::tempdir()?;
        fs::create_dir_all(root.path().join("etc"))?;
        fs::write(root.path().join("etc/passwd"), PASSWD)?;
        fs::write(root.path().join("etc/group"), GROUP)?;
        Ok(root)
    }

    fn user(uid: u32, gid: u32, additional_gids: Vec<u32>) -> User {
        User {
            uid,
            gid,
            additional_gids,
        }
    }

    #[test]
    fn user_spec_forms() -> R {
        let img = image()?;
        let r = img.path();
        // Empty is uid 0, with the groups listing root (`docker run alpine id`
        // shows root in wheel and others).
        assert_eq!(resolve_user(r, "")?, user(0, 0, vec![10]));
        assert_eq!(resolve_user(r, "root")?, user(0, 0, vec![10]));
        assert_eq!(resolve_user(r, "0")?, user(0, 0, vec![10]));
        // `root` counts as 0 in the both-parts fast path.
        assert_eq!(resolve_user(r, "root:root")?, user(0, 0, vec![]));
        // A name: passwd's ids, and every group listing the name.
        assert_eq!(resolve_user(r, "app")?, user(1000, 1001, vec![50, 999]));
        // A uid found in passwd behaves like its name.
        assert_eq!(resolve_user(r, "1000")?, user(1000, 1001, vec![50, 999]));
        // A uid passwd lacks: gid 0, no supplementary groups (runc's GetExecUser).
        assert_eq!(resolve_user(r, "1234")?, user(1234, 0, vec![]));
        // An explicit group replaces the primary group and drops supplementary ones.
        assert_eq!(resolve_user(r, "app:staff")?, user(1000, 50, vec![]));
        assert_eq!(resolve_user(r, "1000:docker")?, user(1000, 999, vec![]));
        assert_eq!(resolve_user(r, "app:4242")?, user(1000, 4242, vec![]));
        // Both numeric: used as written, even when passwd says otherwise.
        assert_eq!(resolve_user(r, "33:7")?, user(33, 7, vec![]));
        Ok(())
    }

    #[test]
    fn unknown_names_are_errors_naming_them() -> R {
        let img = image()?;
        let e = resolve_user(img.path(), "nobody")
            .err()
            .ok_or("expected error")?;
        assert_eq!(
            e.to_string(),
            "unable to find user nobody: no matching entries in passwd file"
        );
        let e = resolve_user(img.path(), "app:nogroup")
            .err()
            .ok_or("expected error")?;
        assert_eq!(
            e.to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
        let e = resolve_user(img.path(), "99999999999")
            .err()
            .ok_or("expected error")?;
        assert!(e.to_string().contains("99999999999"), "{e}");
        Ok(())
    }

    #[test]
    fn missing_files_allow_numbers_only() -> R {
        let empty = tempfile::tempdir()?;
        assert_eq!(resolve_user(empty.path(), "")?, user(0, 0, vec![]));
        assert_eq!(resolve_user(empty.path(), "1234")?, user(1234, 0, vec![]));
        assert_eq!(resolve_user(empty.path(), "5:6")?, user(5, 6, vec![]));
        assert!(resolve_user(empty.path(), "app").is_err());
        assert_eq!(resolve_chown(empty.path(), "7", None)?, (7, 7));
        assert!(resolve_chown(empty.path(), "app", None).is_err());
        Ok(())
    }

    #[test]
    fn chown_rules() -> R {
        let img = image()?;
        let r = img.path();
        // A number without group: gid = uid (BuildKit), not passwd's group.
        assert_eq!(resolve_chown(r, "1000", None)?, (1000, 1000));
        assert_eq!(resolve_chown(r, "4321", None)?, (4321, 4321));
        // A name without group: passwd's primary group.
        assert_eq!(resolve_chown(r, "app", None)?, (1000, 1001));
        assert_eq!(resolve_chown(r, "app", Some("staff"))?, (1000, 50));
        assert_eq!(resolve_chown(r, "1000", Some("12"))?, (1000, 12));
        assert_eq!(resolve_chown(r, "web", Some("0"))?, (33, 0));
        assert_eq!(resolve_chown(r, "", Some("staff"))?, (0, 50));
        let e = resolve_chown(r, "ghost", None)
            .err()
            .ok_or("expected error")?;
        assert!(e.to_string().contains("ghost"), "{e}");
        let e = resolve_chown(r, "app", Some("nogroup"))
            .err()
            .ok_or("expected error")?;
        assert!(e.to_string().contains("nogroup"), "{e}");
        Ok(())
    }

    #[test]
    fn passwd_symlink_resolves_inside_the_root() -> R {
        let img = tempfile::tempdir()?;
        let r = img.path();
        fs::create_dir_all(r.join("etc"))?;
        fs::create_dir_all(r.join("usr/share/base"))?;
        fs::write(r.join("usr/share/base/passwd"), "only:x:77:78::/:/bin/sh\n")?;
        // An absolute link means the image's /usr/..., not the host's.
        std::os::unix::fs::symlink("/usr/share/base/passwd", r.join("etc/passwd"))?;
        // A link to a host file must read the image's (absent) one.
        std::os::unix::fs::symlink("/etc/gshadow", r.join("etc/group"))?;
        assert_eq!(resolve_user(r, "only")?, user(77, 78, vec![]));
        // The host has a root user; the image's root has none.
        std::fs::remove_file(r.join("etc/passwd"))?;
        std::os::unix::fs::symlink("../../../../../../etc/passwd", r.join("etc/passwd"))?;
        assert!(resolve_user(r, "root").is_err());
        Ok(())
    }
}
