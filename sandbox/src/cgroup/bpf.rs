//! The cgroup v2 device filter: a `BPF_PROG_TYPE_CGROUP_DEVICE` program that returns 1
//! (allow) for the devices of [`ALLOWED_DEVICES`] and 0 for everything else, loaded and
//! attached with raw `bpf(2)` calls. The kernel runs it on every open and mknod of a device
//! by a process in the cgroup or below it; runtimes may attach their own programs below
//! (`BPF_F_ALLOW_MULTI`), and every program on the path must allow.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::{ALLOWED_DEVICES, AllowedDevice};
use crate::SandboxError;

// From <linux/bpf.h>.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
/// `BPF_DEVCG_DEV_CHAR`, the low 16 bits of `bpf_cgroup_dev_ctx.access_type`.
const DEV_CHAR: i32 = 2;

// Opcodes: class | size/op | source (BPF_W and BPF_K are 0).
const LDX_W_MEM: u8 = 0x01 | 0x60;
const ALU64_AND_K: u8 = 0x07 | 0x50;
const ALU64_MOV_K: u8 = 0x07 | 0xb0;
const JMP_JNE_K: u8 = 0x05 | 0x50;
const JMP_EXIT: u8 = 0x05 | 0x90;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R4: u8 = 4;
const R5: u8 = 5;

/// `struct bpf_insn`: the destination register in the low nibble of `regs`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// The filter. The context is `bpf_cgroup_dev_ctx { u32 access_type, major, minor }`; every
/// listed device is allowed all accesses (`rwm`), so only the type and numbers are compared.
fn program(devices: &[AllowedDevice]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_W_MEM, R2, R1, 0, 0),
        insn(ALU64_AND_K, R2, 0, 0, 0xffff),
        insn(LDX_W_MEM, R4, R1, 4, 0),
        insn(LDX_W_MEM, R5, R1, 8, 0),
    ];
    for device in devices {
        let mut tests = vec![(R2, DEV_CHAR), (R4, device.major as i32)];
        if let Some(minor) = device.minor {
            tests.push((R5, minor as i32));
        }
        // Each failed test jumps past the rest of this block: the other tests and the two
        // instructions that allow.
        let count = tests.len() as i16;
        for (i, (reg, value)) in tests.into_iter().enumerate() {
            prog.push(insn(JMP_JNE_K, reg, 0, count - i as i16 - 1 + 2, value));
        }
        prog.push(insn(ALU64_MOV_K, R0, 0, 0, 1));
        prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    }
    prog.push(insn(ALU64_MOV_K, R0, 0, 0, 0));
    prog.push(insn(JMP_EXIT, 0, 0, 0, 0));
    prog
}

/// The `BPF_PROG_LOAD` part of `union bpf_attr`.
#[repr(C)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH` part of `union bpf_attr`.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn load() -> Result<OwnedFd, io::Error> {
    let prog = program(&ALLOWED_DEVICES);
    let mut log = vec![0u8; 16 * 1024];
    let mut name = [0u8; 16];
    name[..13].copy_from_slice(b"strata_devcg\0");
    let attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: c"Apache-2.0".as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: BPF_CGROUP_DEVICE,
    };
    // SAFETY: attr points to live instructions, license and log buffer for the whole call,
    // and its size is passed; the kernel writes at most log_size bytes to the log.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoad,
            std::mem::size_of::<ProgLoad>(),
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        let verifier = String::from_utf8_lossy(&log[..end]);
        return Err(io::Error::new(
            err.kind(),
            format!("{err}; verifier: {}", verifier.trim()),
        ));
    }
    // SAFETY: bpf returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Loads the filter and attaches it to the cgroup2 directory `dir`. The attachment keeps
/// the program alive until the cgroup is removed; our descriptors close here.
pub(super) fn attach(dir: &Path) -> Result<(), SandboxError> {
    let prog = load().map_err(|e| SandboxError::cgroup("load the device filter for", dir, e))?;
    let cgroup = File::open(dir).map_err(|e| SandboxError::cgroup("open", dir, e))?;
    let attr = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: attr is a plain struct read by the kernel for the size given.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttach,
            std::mem::size_of::<ProgAttach>(),
        )
    };
    if ret < 0 {
        return Err(SandboxError::cgroup(
            "attach the device filter to",
            dir,
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_device_is_a_block_that_jumps_past_itself() {
        let prog = program(&[
            AllowedDevice {
                major: 1,
                minor: Some(3),
            },
            AllowedDevice {
                major: 136,
                minor: None,
            },
        ]);
        let expected = [
            insn(LDX_W_MEM, R2, R1, 0, 0),
            insn(ALU64_AND_K, R2, 0, 0, 0xffff),
            insn(LDX_W_MEM, R4, R1, 4, 0),
            insn(LDX_W_MEM, R5, R1, 8, 0),
            // c 1:3: three tests, then allow.
            insn(JMP_JNE_K, R2, 0, 4, DEV_CHAR),
            insn(JMP_JNE_K, R4, 0, 3, 1),
            insn(JMP_JNE_K, R5, 0, 2, 3),
            insn(ALU64_MOV_K, R0, 0, 0, 1),
            insn(JMP_EXIT, 0, 0, 0, 0),
            // c 136:*: two tests.
            insn(JMP_JNE_K, R2, 0, 3, DEV_CHAR),
            insn(JMP_JNE_K, R4, 0, 2, 136),
            insn(ALU64_MOV_K, R0, 0, 0, 1),
            insn(JMP_EXIT, 0, 0, 0, 0),
            // Everything else is denied.
            insn(ALU64_MOV_K, R0, 0, 0, 0),
            insn(JMP_EXIT, 0, 0, 0, 0),
        ];
        assert_eq!(prog, expected);
    }
}
