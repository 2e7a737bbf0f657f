//! A gate on loopback a build step can wait at: `wget URL` in a
//! `RUN --network=host` step (built with `--allow network.host`: RUN's default
//! network cannot reach the host's loopback) blocks until the test opens the
//! gate, so a test can look at the world while the step is known to be running.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Res;

/// An HTTP listener on 127.0.0.1 that holds every request until opened.
pub struct Gate {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    requests: AtomicUsize,
    stop: AtomicBool,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    /// Starts listening on a free port.
    pub fn start() -> Res<Gate> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let acceptor = std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let s = s.clone();
                        std::thread::spawn(move || answer(conn, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Gate {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// What a step fetches to wait at the gate.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// How many requests have arrived so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Lets every waiting and future request through.
    pub fn open(&self) {
        if let Ok(mut open) = self.shared.open.lock() {
            *open = true;
            self.shared.opened.notify_all();
        }
    }
}

/// Reads the request, counts it, waits for the gate, answers `open`.
fn answer(mut conn: TcpStream, s: &Shared) {
    let _ = conn.set_nonblocking(false);
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    s.requests.fetch_add(1, Ordering::SeqCst);
    let Ok(mut open) = s.open.lock() else { return };
    while !*open {
        open = match s.opened.wait(open) {
            Ok(o) => o,
            Err(_) => return,
        };
    }
    drop(open);
    let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nopen\n");
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}
