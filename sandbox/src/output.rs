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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

    fn lines_of(chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
        let (reader, writer) = std::io::pipe()?;
        let mut writer = writer;
        for chunk in chunks {
            writer.write_all(chunk)?;
        }
        drop(writer);
        let seen = Mutex::new(Vec::new());
        pump_lines(OwnedFd::from(reader), Stream::Stdout, &|_, line| {
            if let Ok(mut s) = seen.lock() {
                s.push(line.to_vec());
            }
        });
        Ok(seen.into_inner()?)
    }

    #[test]
    fn splits_lines_across_chunks_and_keeps_the_unterminated_tail()
    -> Result<(), Box<dyn std::error::Error>> {
        let lines = lines_of(&[b"a\nb", b"c\n\n", b"tail"])?;
        assert_eq!(
            lines,
            [
                b"a".to_vec(),
                b"bc".to_vec(),
                b"".to_vec(),
                b"tail".to_vec()
            ]
        );
        Ok(())
    }

    #[test]
    fn no_output_gives_no_lines() -> Result<(), Box<dyn std::error::Error>> {
        assert!(lines_of(&[])?.is_empty());
        Ok(())
    }
}
