//! Reads a child's stdout/stderr pipes and hands them on line by line.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;

use crate::Stream;

/// A line longer than this is handed on in pieces so one runaway line cannot grow memory.
const MAX_LINE: usize = 1 << 20;

/// Reads `fd` until EOF, calling `output` for each line without its newline (and for a
/// final unterminated line).
pub(crate) fn pump_lines(fd: OwnedFd, stream: Stream, output: &(dyn Fn(Stream, &[u8]) + Sync)) {
    let mut file = File::from(fd);
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
            output(stream, &pending[start..start + pos]);
            start += pos + 1;
        }
        pending.drain(..start);
        if pending.len() >= MAX_LINE {
            output(stream, &pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        output(stream, &pending);
    }
}
