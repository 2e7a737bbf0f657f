//! Mounting a [`RootFs`] as an overlay with the new mount API (`fsopen`/`fsconfig`), one
//! `lowerdir+` per layer: unlike `lowerdir=a:b:c`, the layer paths need not fit in one page,
//! so 120+ layers with long absolute paths work (needs Linux 6.8+). The mount is `nodev`.

use std::ffi::{CStr, CString, c_char};
use std::fs;
use std::path::Path;
use std::ptr;

use crate::builtin::plan::cpath;
use crate::mount_api::{
    FSCONFIG_CMD_CREATE, FSCONFIG_SET_FLAG, FSCONFIG_SET_STRING, FSMOUNT_CLOEXEC, FSOPEN_CLOEXEC,
    MOUNT_ATTR_NODEV, MOVE_MOUNT_F_EMPTY_PATH,
};
use crate::{RootFs, SandboxError};

/// The errno of the last failed call on this thread.
pub(crate) fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, valid for the thread's life.
    unsafe { *libc::__errno_location() }
}

/// `Err(errno)` for a negative system call result.
pub(crate) fn check(ret: libc::c_long) -> Result<libc::c_long, i32> {
    if ret < 0 { Err(errno()) } else { Ok(ret) }
}

/// An overlay mount, prepared (all strings allocated) so that [`OverlayMount::mount`] can run
/// between fork and exec.
pub(crate) struct OverlayMount {
    target: CString,
    lowers_top_first: Vec<CString>,
    upper: CString,
    work: CString,
    /// Inside a user namespace: markers in `user.overlay.*` (see [`crate::userns`]).
    userxattr: bool,
}

impl OverlayMount {
    /// Prepares mounting `root` on `target`. With no layers (`FROM scratch`), `empty` is
    /// created and used as the one lower layer overlayfs requires.
    pub(crate) fn new(target: &Path, root: &RootFs, empty: &Path) -> Result<Self, SandboxError> {
        let mut lowers_top_first = root
            .lower
            .iter()
            .rev()
            .map(|p| cpath(p))
            .collect::<Result<Vec<_>, _>>()?;
        if lowers_top_first.is_empty() {
            fs::create_dir(empty).map_err(|e| SandboxError::io("create", empty, e))?;
            lowers_top_first.push(cpath(empty)?);
        }
        Ok(OverlayMount {
            target: cpath(target)?,
            lowers_top_first,
            upper: cpath(&root.upper)?,
            work: cpath(&root.work)?,
            userxattr: crate::userns::in_user_namespace(),
        })
    }

    /// What the mount does, for error messages.
    pub(crate) fn describe(&self) -> String {
        format!(
            "mount overlay ({} lower layers, upper {}) on {}",
            self.lowers_top_first.len(),
            self.upper.to_string_lossy(),
            self.target.to_string_lossy()
        )
    }

    /// Mounts the overlay. Only system calls: safe between fork and exec.
    pub(crate) fn mount(&self) -> Result<(), i32> {
        // SAFETY: raw mount-API system calls on NUL-terminated strings; both fds are closed here.
        unsafe {
            let fs = check(libc::syscall(
                libc::SYS_fsopen,
                c"overlay".as_ptr(),
                FSOPEN_CLOEXEC,
            ))? as libc::c_int;
            let result = self.configure_and_move(fs);
            libc::close(fs);
            result
        }
    }

    fn configure_and_move(&self, fs: libc::c_int) -> Result<(), i32> {
        let set = |key: &CStr, value: &CStr| {
            // SAFETY: fsconfig reads two NUL-terminated strings.
            check(unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs,
                    FSCONFIG_SET_STRING,
                    key.as_ptr(),
                    value.as_ptr(),
                    0,
                )
            })
        };
        for lower in &self.lowers_top_first {
            set(c"lowerdir+", lower)?;
        }
        set(c"upperdir", &self.upper)?;
        set(c"workdir", &self.work)?;
        // Plain upper-dir format for the layer differ: no redirects, no metacopy, no index.
        // With `userxattr` the kernel wants `nofollow` (which creates no redirect either):
        // `off` may mean `follow` on kernels built to always follow redirects.
        if self.userxattr {
            // SAFETY: a flag key is one NUL-terminated string; the value must be null.
            check(unsafe {
                libc::syscall(
                    libc::SYS_fsconfig,
                    fs,
                    FSCONFIG_SET_FLAG,
                    c"userxattr".as_ptr(),
                    ptr::null::<c_char>(),
                    0,
                )
            })?;
            set(c"redirect_dir", c"nofollow")?;
        } else {
            set(c"redirect_dir", c"off")?;
        }
        set(c"metacopy", c"off")?;
        set(c"index", c"off")?;
        // SAFETY: the create command takes no key or value; fsmount returns a new fd that is
        // closed below; move_mount reads the NUL-terminated target.
        unsafe {
            check(libc::syscall(
                libc::SYS_fsconfig,
                fs,
                FSCONFIG_CMD_CREATE,
                ptr::null::<c_char>(),
                ptr::null::<c_char>(),
                0,
            ))?;
            // nodev: device nodes from layers, the context or earlier steps stay in the image
            // as data but cannot be opened. Not nosuid: setuid programs work in a RUN.
            let mnt = check(libc::syscall(
                libc::SYS_fsmount,
                fs,
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_NODEV as libc::c_uint,
            ))? as libc::c_int;
            let moved = check(libc::syscall(
                libc::SYS_move_mount,
                mnt,
                c"".as_ptr(),
                libc::AT_FDCWD,
                self.target.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            ));
            libc::close(mnt);
            moved.map(|_| ())
        }
    }
}
