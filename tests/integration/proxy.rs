//! A TCP proxy in front of a real emulator, for faults with real parts (DESIGN.md "Testing"):
//! it can slow the upload direction down, or cut every connection after some bytes, like a
//! server dying mid-upload.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct Proxy {
    pub endpoint: String,
    /// Client-to-server bytes per second; 0 is unlimited.
    pub throttle: Arc<AtomicU64>,
    /// Cut connections once this many client-to-server bytes have passed in all; 0 is never.
    pub cut_after: Arc<AtomicU64>,
    forwarded: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy to `target` (`http://127.0.0.1:PORT`).
    pub fn start(target: &str) -> Proxy {
        let target = target.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let throttle = Arc::new(AtomicU64::new(0));
        let cut_after = Arc::new(AtomicU64::new(0));
        let forwarded = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, c, f, s) = (
            throttle.clone(),
            cut_after.clone(),
            forwarded.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (t, c, f) = (t.clone(), c.clone(), f.clone());
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pipe(client, server, Some((t, c, f))));
                std::thread::spawn(move || pipe(s2, c2, None));
            }
        });
        Proxy {
            endpoint,
            throttle,
            cut_after,
            forwarded,
            stop,
        }
    }

    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.endpoint.trim_start_matches("http://"));
    }
}

type Limits = (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>);

fn pipe(mut from: TcpStream, mut to: TcpStream, limits: Option<Limits>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((throttle, cut, fwd)) = &limits {
            let total = fwd.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            let cut_at = cut.load(Ordering::Relaxed);
            if cut_at > 0 && total > cut_at {
                break;
            }
            let bps = throttle.load(Ordering::Relaxed);
            if bps > 0 {
                std::thread::sleep(Duration::from_secs_f64(n as f64 / bps as f64));
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
