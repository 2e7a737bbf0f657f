//! The constants of Linux's new mount API (`open_tree`, `fsopen`, `fsconfig`, `fsmount`,
//! `move_mount`, `mount_setattr`), from <linux/mount.h>, which the libc crate lacks. One
//! list for the overlay root and the steps' extra mounts.

pub(crate) const OPEN_TREE_CLONE: libc::c_uint = 1;
pub(crate) const FSOPEN_CLOEXEC: libc::c_uint = 1;
pub(crate) const FSCONFIG_SET_FLAG: libc::c_uint = 0;
pub(crate) const FSCONFIG_SET_STRING: libc::c_uint = 1;
pub(crate) const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
pub(crate) const FSMOUNT_CLOEXEC: libc::c_uint = 1;
pub(crate) const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
pub(crate) const MOVE_MOUNT_T_SYMLINKS: libc::c_uint = 0x10;
/// `MOUNT_ATTR_*` are `u64` in `struct mount_attr`; `fsmount` takes them as an `unsigned int`.
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;
pub(crate) const MOUNT_ATTR_NOEXEC: u64 = 0x8;
