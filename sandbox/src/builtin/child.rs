//! The code that runs in the cloned child: from `clone(2)` to `execve(2)`.
//!
//! The child is a copy of a multi-threaded process in which other threads may have held
//! locks (the allocator's, stdio's) at the moment of the clone. It therefore only makes
//! system calls on data the parent prepared ([`Op`], [`Launch`], pointer arrays): no
//! allocation, no formatting, no panics, no Rust std I/O. Credential changes use the raw
//! `setres[ug]id`/`setgroups` system calls, because glibc's wrappers broadcast the change to
//! all threads it believes exist, and in this child those threads do not exist (the raw
//! `clone` bypasses glibc's fork bookkeeping), which would deadlock.

use std::cell::Cell;
use std::ffi::{CStr, c_char};
use std::os::fd::RawFd;
use std::ptr;

use super::plan::{Detached, Launch, Op};
use crate::overlay::{check, errno};

/// How the child reports a failure on its report pipe: `[kind, index, errno]` as `u32`s.
pub(crate) const KIND_OP: u32 = 0;
pub(crate) const KIND_STEP: u32 = 1;
pub(crate) const KIND_EXEC: u32 = 2;

/// Fixed steps after the setup ops, indexed by `KIND_STEP` reports.
pub(crate) const STEPS: [&str; 11] = [
    "redirect stdio",
    "drop capabilities from the bounding set",
    "clear ambient capabilities",
    "setgroups",
    "setresgid",
    "setresuid",
    "capset",
    "set no_new_privs",
    "mark inherited file descriptors close-on-exec",
    "install the seccomp filter",
    "set resource limits",
];

/// The descriptors the child uses; all were created close-on-exec by the parent.
pub(crate) struct ChildFds {
    pub(crate) stdin: RawFd,
    pub(crate) stdout: RawFd,
    pub(crate) stderr: RawFd,
    pub(crate) report: RawFd,
}

// From <linux/capability.h>.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Writes a failure report and exits. Never returns.
fn fail(fds: &ChildFds, kind: u32, index: u32, err: i32) -> ! {
    let mut buf = [0u8; 12];
    buf[0..4].copy_from_slice(&kind.to_ne_bytes());
    buf[4..8].copy_from_slice(&index.to_ne_bytes());
    buf[8..12].copy_from_slice(&err.to_ne_bytes());
    // SAFETY: buf is a valid 12-byte buffer; write and _exit are async-signal-safe.
    unsafe {
        libc::write(fds.report, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

/// Runs the setup and execs the program. Never returns: on failure it reports on
/// `fds.report` and exits with 127.
///
/// # Safety
/// Must only be called in the child of a raw `clone`, with `argv` and `envp` null-terminated
/// arrays of pointers into `launch.argv` / `launch.env`.
pub(crate) unsafe fn child_main(
    ops: &[Op],
    launch: &Launch,
    argv: &[*const c_char],
    envp: &[*const c_char],
    fds: &ChildFds,
    slots: &[Cell<libc::c_int>],
) -> ! {
    // SAFETY: each call below is a plain system call wrapper on prepared, NUL-terminated data
    // or stack buffers; none allocates or takes a lock.
    unsafe {
        // Signal handlers and the mask are the parent's; the program gets the defaults
        // (Rust ignores SIGPIPE, which a shell must not inherit).
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        libc::umask(0);
        // Dies with the thread that cloned it from the start (set again after the uid change,
        // which clears it); a strata killed during the setup leaves nothing running.
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if libc::dup2(fds.stdin, 0) < 0
            || libc::dup2(fds.stdout, 1) < 0
            || libc::dup2(fds.stderr, 2) < 0
        {
            fail(fds, KIND_STEP, 0, errno());
        }
        for (index, op) in ops.iter().enumerate() {
            if let Err(err) = run_op(op, slots) {
                fail(fds, KIND_OP, index as u32, err);
            }
        }
        for (resource, limit) in &launch.rlimits {
            if libc::syscall(
                libc::SYS_prlimit64,
                0,
                *resource,
                limit as *const libc::rlimit64,
                ptr::null_mut::<libc::rlimit64>(),
            ) < 0
            {
                fail(fds, KIND_STEP, 10, errno());
            }
        }
        set_credentials(launch, fds);
        libc::umask(0o022);
        install_seccomp(launch, fds);
        let mut saw_eacces = false;
        for candidate in &launch.candidates {
            libc::execve(candidate.as_ptr(), argv.as_ptr(), envp.as_ptr());
            match errno() {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => saw_eacces = true,
                other => fail(fds, KIND_EXEC, 0, other),
            }
        }
        fail(
            fds,
            KIND_EXEC,
            0,
            if saw_eacces {
                libc::EACCES
            } else {
                libc::ENOENT
            },
        )
    }
}

/// Bounding set, groups, ids, effective/permitted set, no_new_privs, parent-death signal.
///
/// # Safety
/// Same as [`child_main`].
unsafe fn set_credentials(launch: &Launch, fds: &ChildFds) {
    // SAFETY: raw system calls on values and arrays owned by `launch`.
    unsafe {
        for cap in 0..=launch.last_cap {
            if launch.keep_caps & (1u64 << cap) == 0
                && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0
                && errno() != libc::EINVAL
            {
                fail(fds, KIND_STEP, 1, errno());
            }
        }
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        ) < 0
        {
            fail(fds, KIND_STEP, 2, errno());
        }
        if libc::syscall(
            libc::SYS_setgroups,
            launch.groups.len(),
            launch.groups.as_ptr(),
        ) < 0
        {
            fail(fds, KIND_STEP, 3, errno());
        }
        let (uid, gid) = (launch.uid, launch.gid);
        if libc::syscall(libc::SYS_setresgid, gid, gid, gid) < 0 {
            fail(fds, KIND_STEP, 4, errno());
        }
        // Without SECBIT_KEEP_CAPS, leaving uid 0 clears the permitted and effective sets,
        // as Docker does for non-root users.
        if libc::syscall(libc::SYS_setresuid, uid, uid, uid) < 0 {
            fail(fds, KIND_STEP, 5, errno());
        }
        let keep = if uid == 0 { launch.keep_caps } else { 0 };
        let header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [
            CapData {
                effective: keep as u32,
                permitted: keep as u32,
                inheritable: 0,
            },
            CapData {
                effective: (keep >> 32) as u32,
                permitted: (keep >> 32) as u32,
                inheritable: 0,
            },
        ];
        if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) < 0 {
            fail(fds, KIND_STEP, 6, errno());
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
            fail(fds, KIND_STEP, 7, errno());
        }
        // Set after the uid change, which clears it. The parent thread waits for this
        // process, so its exit means the whole build process is gone.
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        );
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) < 0
        {
            fail(fds, KIND_STEP, 8, errno());
        }
    }
}

/// Installs the seccomp programs, last of all before `execve` (which they allow): after
/// no_new_privs, which lets a process without CAP_SYS_ADMIN install a filter.
///
/// # Safety
/// Same as [`child_main`].
unsafe fn install_seccomp(launch: &Launch, fds: &ChildFds) {
    for program in &launch.seccomp {
        let fprog = libc::sock_fprog {
            len: program.len() as libc::c_ushort,
            filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
        };
        // SAFETY: fprog points at a prepared program of `len` instructions laid out as the
        // kernel's `struct sock_filter`; the kernel copies it and writes nothing back.
        let installed = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if installed < 0 {
            fail(fds, KIND_STEP, 9, errno());
        }
    }
}

fn opt_ptr(s: &Option<std::ffi::CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |s| s.as_ptr())
}

/// `Some(st_mode & S_IFMT)` of `path` without following a final symlink, `None` if missing.
fn file_type(path: &CStr) -> Result<Option<libc::mode_t>, i32> {
    // SAFETY: stat is a plain out-buffer; lstat only writes into it.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::lstat(path.as_ptr(), &mut st) < 0 {
            return match errno() {
                libc::ENOENT => Ok(None),
                e => Err(e),
            };
        }
        Ok(Some(st.st_mode & libc::S_IFMT))
    }
}

/// The descriptor kept in `slot`.
fn slot(slots: &[Cell<libc::c_int>], slot: usize) -> Result<&Cell<libc::c_int>, i32> {
    slots.get(slot).ok_or(libc::EINVAL)
}

fn run_op(op: &Op, slots: &[Cell<libc::c_int>]) -> Result<(), i32> {
    // SAFETY: every pointer passed is a NUL-terminated string owned by `op` or a literal.
    unsafe {
        match op {
            Op::JoinCgroup { procs } => crate::cgroup::join(procs)?,
            Op::JoinNetns { fd } => {
                check(libc::setns(*fd, libc::CLONE_NEWNET) as libc::c_long)?;
            }
            Op::MakeRootPrivate => {
                check(libc::mount(
                    ptr::null(),
                    c"/".as_ptr(),
                    ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    ptr::null(),
                ) as libc::c_long)?;
            }
            Op::Overlay(overlay) => overlay.mount()?,
            Op::Mkdir { path, mode } => {
                if libc::mkdir(path.as_ptr(), *mode) < 0 && errno() != libc::EEXIST {
                    return Err(errno());
                }
            }
            Op::EtcFile {
                source,
                target,
                parent,
            } => {
                if file_type(parent)? != Some(libc::S_IFDIR) {
                    return Ok(());
                }
                let fd = libc::open(
                    target.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_CLOEXEC
                        | libc::O_NOFOLLOW,
                    0o644,
                );
                if fd >= 0 {
                    libc::close(fd);
                } else if errno() != libc::EEXIST {
                    return Err(errno());
                }
                if file_type(target)? == Some(libc::S_IFLNK) {
                    return Ok(());
                }
                bind_read_only(source, target)?;
            }
            Op::Mount {
                source,
                target,
                fstype,
                flags,
                data,
                optional,
            } => {
                if *optional && file_type(target)?.is_none() {
                    return Ok(());
                }
                check(libc::mount(
                    opt_ptr(source),
                    target.as_ptr(),
                    opt_ptr(fstype),
                    *flags,
                    opt_ptr(data).cast(),
                ) as libc::c_long)?;
            }
            Op::BindReadOnly {
                source,
                target,
                optional,
            } => {
                match file_type(target)? {
                    None if *optional => return Ok(()),
                    Some(libc::S_IFLNK) => return Ok(()),
                    _ => {}
                }
                bind_read_only(source, target)?;
            }
            Op::CharDevice { path, major, minor } => {
                let dev = libc::makedev(*major, *minor);
                if libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, dev) < 0 {
                    return Err(errno());
                }
            }
            Op::BindDevice { source, target } => {
                let fd = libc::open(
                    target.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o666,
                );
                if fd < 0 {
                    return Err(errno());
                }
                libc::close(fd);
                check(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    ptr::null(),
                    libc::MS_BIND,
                    ptr::null(),
                ) as libc::c_long)?;
            }
            Op::Symlink { target, path } => {
                if libc::symlink(target.as_ptr(), path.as_ptr()) < 0 {
                    return Err(errno());
                }
            }
            Op::LoopbackUp => loopback_up()?,
            Op::PivotRoot { new_root } => {
                check(libc::chdir(new_root.as_ptr()) as libc::c_long)?;
                // pivot_root(".", ".") stacks the old root on the new one; unmounting "."
                // then detaches the old root without needing a directory for it.
                check(libc::syscall(
                    libc::SYS_pivot_root,
                    c".".as_ptr(),
                    c".".as_ptr(),
                ))?;
                check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH) as libc::c_long)?;
                check(libc::chdir(c"/".as_ptr()) as libc::c_long)?;
            }
            Op::Hostname { name } => {
                check(libc::sethostname(name.as_ptr(), name.as_bytes().len()) as libc::c_long)?;
            }
            Op::Chdir { path } => {
                check(libc::chdir(path.as_ptr()) as libc::c_long)?;
            }
            Op::Detach { mount, slot: at } => {
                let fd = match mount {
                    Detached::Bind { source, readonly } => {
                        crate::mounts::detach_bind(source, *readonly)?
                    }
                    Detached::Tmpfs { size } => {
                        crate::mounts::detach_tmpfs(size.as_deref(), c"1777")?
                    }
                    Detached::File {
                        path,
                        contents,
                        mode,
                        owner,
                    } => crate::mounts::detach_file(path, contents.expose(), *mode, *owner)?,
                };
                slot(slots, *at)?.set(fd);
            }
            Op::Touch { path } => crate::mounts::touch(path)?,
            Op::Attach { slot: at, target } => {
                crate::mounts::attach(slot(slots, *at)?.get(), target)?;
            }
        }
    }
    Ok(())
}

/// Bind-mounts `source` on `target` and makes that mount read-only.
///
/// # Safety
/// Only system calls; fine between clone and exec.
unsafe fn bind_read_only(source: &CStr, target: &CStr) -> Result<(), i32> {
    // SAFETY: mount with NUL-terminated paths and null type/data.
    unsafe {
        check(libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            ptr::null(),
        ) as libc::c_long)?;
        check(libc::mount(
            ptr::null(),
            target.as_ptr(),
            ptr::null(),
            libc::MS_BIND
                | libc::MS_REMOUNT
                | libc::MS_RDONLY
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_NOEXEC,
            ptr::null(),
        ) as libc::c_long)?;
    }
    Ok(())
}

/// Sets IFF_UP on `lo` of the (new) network namespace.
fn loopback_up() -> Result<(), i32> {
    // SAFETY: ifreq is plain data; the ioctls read and write only that struct.
    unsafe {
        let sock = check(
            libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) as libc::c_long,
        )? as libc::c_int;
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo") {
            *dst = *src as c_char;
        }
        let result = (|| {
            check(libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) as libc::c_long)?;
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            check(libc::ioctl(sock, libc::SIOCSIFFLAGS, &req) as libc::c_long)?;
            Ok(())
        })();
        libc::close(sock);
        result
    }
}
