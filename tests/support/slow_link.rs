//! A slow link for the mailbox reader's deadline tests (issue #21): a TCP proxy on 127.0.0.1
//! between Herald and a real server that forwards both ways at full speed until the server's
//! side sends a marker, and from there on that connection trickles the server's bytes at a
//! crawl (as a congested or throttled link does in the middle of one big message). Threads
//! with blocking sockets; test-only; stopped when dropped (the connections it carries close
//! with it).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct SlowLink {
    pub port: u16,
    /// Connections on which the marker was seen.
    slowed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SlowLink {
    /// Proxies 127.0.0.1:`port` (the returned link's) to 127.0.0.1:`target`; after `marker`
    /// passes from the server, that connection's server bytes go at `bytes_per_sec`.
    pub fn start(target: u16, marker: &[u8], bytes_per_sec: u64) -> SlowLink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the slow link");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let slowed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let marker = marker.to_vec();
        let thread = {
            let (slowed, stop) = (Arc::clone(&slowed), Arc::clone(&stop));
            std::thread::spawn(move || {
                let target = SocketAddr::from(([127, 0, 0, 1], target));
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            let Ok(server) = TcpStream::connect(target) else {
                                continue;
                            };
                            carry(client, server, &marker, bytes_per_sec, &slowed, &stop);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        SlowLink {
            port,
            slowed,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections on which the marker passed, so far.
    pub fn slowed(&self) -> usize {
        self.slowed.load(Ordering::Relaxed)
    }
}

/// Starts the two directions of one connection on threads of their own.
fn carry(
    client: TcpStream,
    server: TcpStream,
    marker: &[u8],
    bytes_per_sec: u64,
    slowed: &Arc<AtomicUsize>,
    stop: &Arc<AtomicBool>,
) {
    let (Ok(client_reader), Ok(server_writer)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let stop_up = Arc::clone(stop);
    std::thread::spawn(move || forward(client_reader, server_writer, &stop_up));
    let (marker, slowed, stop) = (marker.to_vec(), Arc::clone(slowed), Arc::clone(stop));
    std::thread::spawn(move || {
        let mut from = server;
        let mut to = client;
        let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
        let mut seen: Vec<u8> = Vec::new();
        let mut slow = false;
        let mut chunk = [0u8; 16 * 1024];
        while !stop.load(Ordering::Relaxed) {
            let n = match from.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(error) if is_timeout(&error) => continue,
                Err(_) => break,
            };
            let mut data = &chunk[..n];
            if !slow {
                // The marker may straddle two reads: look over the tail of the last one too.
                let tail = seen.len().saturating_sub(marker.len());
                seen.drain(..tail);
                let before = seen.len();
                seen.extend_from_slice(data);
                if let Some(at) = find(&seen, &marker) {
                    let split = (at + marker.len()).saturating_sub(before).min(data.len());
                    if to.write_all(&data[..split]).is_err() {
                        break;
                    }
                    data = &data[split..];
                    slow = true;
                    slowed.fetch_add(1, Ordering::Relaxed);
                }
            }
            if !slow {
                if to.write_all(data).is_err() {
                    break;
                }
                continue;
            }
            for byte in data {
                if stop.load(Ordering::Relaxed) || to.write_all(&[*byte]).is_err() {
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
                std::thread::sleep(Duration::from_micros(1_000_000 / bytes_per_sec.max(1)));
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}

/// Copies client bytes to the server at full speed until either side closes.
fn forward(mut from: TcpStream, mut to: TcpStream, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
    let mut chunk = [0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match from.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&chunk[..n]).is_err() {
                    break;
                }
            }
            Err(error) if is_timeout(&error) => continue,
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len().max(1))
        .position(|window| window == needle)
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
