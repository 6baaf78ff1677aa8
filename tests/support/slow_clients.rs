//! A crowd of slow HTTP clients for the unsubscribe endpoint's load tests and bench (issue #21):
//! real TCP connections from one address (as behind a reverse proxy), some trickling a request
//! head a byte a second and never finishing it, the others sending nothing at all, each opened
//! again when the server closes it (as an attacker would) unless told otherwise. One thread
//! drives them all over non-blocking sockets. Test-only; stopped when dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The head the tricklers send a byte at a time; it never ends.
const HEAD: &[u8] = b"POST /u/slow HTTP/1.1\r\nHost: u.acme.example\r\nX-Padding: ";

/// Raises this process's soft limit on open files to at least `needed` (children started
/// afterwards inherit it): a crowd costs a descriptor per connection on each side.
pub fn raise_fd_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(read, 0, "getrlimit failed");
    if limit.rlim_cur < needed {
        limit.rlim_cur = needed.min(limit.rlim_max);
        // SAFETY: as above.
        let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        assert_eq!(set, 0, "setrlimit failed");
    }
    assert!(
        limit.rlim_cur >= needed,
        "the open-file limit is {} (hard {}), the test needs {needed}: raise `ulimit -Hn`",
        limit.rlim_cur,
        limit.rlim_max
    );
}

/// What the crowd has seen so far.
#[derive(Debug, Default)]
pub struct Tally {
    /// Connections opened, reopenings included.
    pub opened: AtomicUsize,
    /// Connections the server closed (EOF or reset).
    pub closed: AtomicUsize,
    /// Set once every connection of the crowd was opened once.
    pub ready: AtomicBool,
}

pub struct Crowd {
    pub tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Member {
    stream: Option<TcpStream>,
    trickles: bool,
    sent: usize,
}

fn open(addr: SocketAddr) -> Option<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_nonblocking(true).ok()?;
    Some(stream)
}

/// True while the server keeps `stream` open (nothing to read yet, or an answer not yet
/// followed by the close).
fn still_open(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(error) if error.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

impl Crowd {
    /// Opens `count` connections to `addr`, every `trickle_every`-th of them trickling (0: none),
    /// and keeps them so; `reopen` opens again each one the server closes.
    pub fn start(addr: SocketAddr, count: usize, trickle_every: usize, reopen: bool) -> Crowd {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let tally = Arc::clone(&tally);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut members: Vec<Member> = (0..count)
                    .map(|n| Member {
                        stream: None,
                        trickles: trickle_every > 0 && n % trickle_every == 0,
                        sent: 0,
                    })
                    .collect();
                for member in &mut members {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    member.stream = open(addr);
                    tally.opened.fetch_add(1, Ordering::Relaxed);
                }
                tally.ready.store(true, Ordering::Relaxed);
                let mut last_byte = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let byte_due = last_byte.elapsed() >= Duration::from_secs(1);
                    if byte_due {
                        last_byte = Instant::now();
                    }
                    for member in &mut members {
                        let alive = match member.stream.as_mut() {
                            None => false,
                            Some(stream) => {
                                let wrote = if member.trickles && byte_due {
                                    let byte = HEAD.get(member.sent).copied().unwrap_or(b'x');
                                    member.sent += 1;
                                    stream.write_all(&[byte]).is_ok()
                                } else {
                                    true
                                };
                                wrote && still_open(stream)
                            }
                        };
                        if !alive && member.stream.take().is_some() {
                            tally.closed.fetch_add(1, Ordering::Relaxed);
                        }
                        if member.stream.is_none() && reopen {
                            member.stream = open(addr);
                            member.sent = 0;
                            tally.opened.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        Crowd {
            tally,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until every connection was opened once, for at most `limit`.
    pub fn wait_ready(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.tally.ready.load(Ordering::Relaxed) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn closed(&self) -> usize {
        self.tally.closed.load(Ordering::Relaxed)
    }

    pub fn opened(&self) -> usize {
        self.tally.opened.load(Ordering::Relaxed)
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
