//! The socket an ssh mount shows: a listener of ours, owned and moded as the mount says
//! (BuildKit's defaults: 0:0, 0600), that forwards each connection to the build's agent
//! socket. The agent's own socket stays where it is, with its own owner; the step reaches
//! the agent only while it runs.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::run_mounts::{MountError, io};

/// A running proxy; stopped when dropped.
pub(crate) struct SshProxy {
    socket: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

/// Copies one direction until it ends, then closes the other side's writing half.
fn pump(mut from: UnixStream, mut to: UnixStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn forward(client: UnixStream, agent: &Path) {
    let Ok(upstream) = UnixStream::connect(agent) else {
        return;
    };
    let (Ok(client_read), Ok(upstream_read)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    std::thread::spawn(move || pump(client_read, upstream));
    std::thread::spawn(move || pump(upstream_read, client));
}

impl SshProxy {
    /// Listens on `socket` (mode `mode`, owner `owner`) and forwards to `agent`.
    pub(crate) fn start(
        agent: &Path,
        socket: &Path,
        mode: u32,
        owner: (u32, u32),
    ) -> Result<Self, MountError> {
        let listener = UnixListener::bind(socket).map_err(io("listen on", socket))?;
        std::os::unix::fs::chown(socket, Some(owner.0), Some(owner.1))
            .map_err(io("chown", socket))?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io("chmod", socket))?;
        // Polled, so stopping needs nothing from the socket (which may be gone by then).
        listener
            .set_nonblocking(true)
            .map_err(io("set up", socket))?;
        let stop = Arc::new(AtomicBool::new(false));
        let agent = agent.to_path_buf();
        let flag = stop.clone();
        let accept = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        if client.set_nonblocking(false).is_ok() {
                            forward(client, &agent);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(SshProxy {
            socket: socket.to_path_buf(),
            stop,
            accept: Some(accept),
        })
    }

    /// The socket to mount.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for SshProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}
