//! A fault-injecting TCP proxy for HTTP/1.1 with `Content-Length`
//! framing, to put between throng and a loopback target: it counts what
//! it saw and breaks what it is told to, so that a test can compare what
//! throng reports with what reached the target.
//!
//! Each client connection gets its own connection to the target. The
//! proxy reads whole requests and whole responses (it must, to know where
//! a response starts), so a cut response is one the target really
//! answered: the fault is on the way back, where a client cannot tell
//! whether its request was processed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::server::{fill, read_message, Running};

/// How a response picked by [`Faults::cut_every`] is cut.
#[derive(Clone, Copy, Debug)]
pub enum Cut {
    /// Forward this many bytes of it (0: none), then reset the client's
    /// connection.
    ResetAfter(usize),
    /// Forward this many bytes of it, then close the client's connection
    /// (a FIN).
    CloseAfter(usize),
}

/// What the proxy breaks. The default breaks nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Every `n`-th response (counted over the whole proxy, from 1) is
    /// cut as said.
    pub cut_every: Option<(u64, Cut)>,
    /// Forward responses in pieces of this many bytes, waiting this long
    /// before each.
    pub chunks: Option<(usize, Duration)>,
    /// Close a client connection left idle this long between requests (a
    /// server's keep-alive timeout).
    pub idle_close: Option<Duration>,
    /// Accept connections and read requests, but never forward or answer
    /// them.
    pub silent: bool,
    /// Listen nowhere: connections are refused.
    pub refuse: bool,
    /// Every `n`-th request (from 1) is cut while it is being sent: once
    /// its head has come, the client's connection is reset, its body
    /// unread and nothing forwarded.
    pub cut_upload_every: Option<u64>,
    /// Hold each request this long before forwarding it (a slow network
    /// or a slow server: the time is the target's to the client).
    pub delay: Option<Duration>,
}

/// What the proxy saw and did.
#[derive(Debug, Default)]
pub struct ProxySeen {
    /// Client connections accepted.
    pub connections: AtomicU64,
    /// Whole requests read from clients.
    pub requests: AtomicU64,
    /// Responses read from the target.
    pub responses: AtomicU64,
    /// Responses cut (each also in `responses`).
    pub cuts: AtomicU64,
    /// Client connections closed for idling.
    pub idle_closes: AtomicU64,
    /// Requests cut while being sent (not in `requests`).
    pub upload_cuts: AtomicU64,
}

impl ProxySeen {
    /// One counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

/// A running proxy; it stops when dropped.
pub type Proxy = Running<ProxySeen>;

/// Starts a proxy on 127.0.0.1:0 in front of `target`.
pub fn start(target: SocketAddr, faults: Faults) -> Proxy {
    let seen = Arc::new(ProxySeen::default());
    if faults.refuse {
        return Running::refusing(seen);
    }
    let s = seen.clone();
    Running::start(seen, move |listener| async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            s.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(relay(client, target, faults, s.clone()));
        }
    })
}

async fn relay(mut client: TcpStream, target: SocketAddr, faults: Faults, seen: Arc<ProxySeen>) {
    let _ = client.set_nodelay(true);
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let (mut from_client, mut from_target) = (Vec::new(), Vec::new());
    loop {
        // A keep-alive timeout runs until the next request's first byte.
        if from_client.is_empty() {
            if let Some(idle) = faults.idle_close {
                match tokio::time::timeout(idle, fill(&mut client, &mut from_client)).await {
                    Err(_) => {
                        seen.idle_closes.fetch_add(1, Ordering::SeqCst);
                        let _ = client.shutdown().await;
                        return;
                    }
                    Ok(None) => return,
                    Ok(Some(())) => {}
                }
            }
        }
        if let Some(every) = faults.cut_upload_every {
            // Only the head: the body is still on its way.
            while !from_client.windows(4).any(|w| w == b"\r\n\r\n") {
                if fill(&mut client, &mut from_client).await.is_none() {
                    return;
                }
            }
            let n =
                seen.requests.load(Ordering::SeqCst) + seen.upload_cuts.load(Ordering::SeqCst) + 1;
            if n.is_multiple_of(every) {
                seen.upload_cuts.fetch_add(1, Ordering::SeqCst);
                let _ = client.set_zero_linger();
                return;
            }
        }
        let Some((_, len)) = read_message(&mut client, &mut from_client).await else {
            return;
        };
        seen.requests.fetch_add(1, Ordering::SeqCst);
        if let Some(delay) = faults.delay {
            tokio::time::sleep(delay).await;
        }
        if faults.silent {
            from_client.drain(..len);
            continue;
        }
        if upstream.write_all(&from_client[..len]).await.is_err() {
            return;
        }
        from_client.drain(..len);
        let Some((_, len)) = read_message(&mut upstream, &mut from_target).await else {
            return;
        };
        let response: Vec<u8> = from_target.drain(..len).collect();
        let n = seen.responses.fetch_add(1, Ordering::SeqCst) + 1;
        let cut = faults
            .cut_every
            .filter(|(every, _)| n.is_multiple_of(*every));
        let (upto, cut) = match cut {
            Some((_, Cut::ResetAfter(b) | Cut::CloseAfter(b))) => (b.min(response.len()), cut),
            None => (response.len(), None),
        };
        let piece = faults.chunks.map_or(upto.max(1), |(size, _)| size.max(1));
        for part in response[..upto].chunks(piece) {
            if let Some((_, delay)) = faults.chunks {
                tokio::time::sleep(delay).await;
            }
            if client.write_all(part).await.is_err() {
                return;
            }
        }
        if let Some((_, how)) = cut {
            seen.cuts.fetch_add(1, Ordering::SeqCst);
            match how {
                Cut::ResetAfter(_) => {
                    // Linger 0: closing sends a reset, not a FIN.
                    let _ = client.set_zero_linger();
                }
                Cut::CloseAfter(_) => {
                    let _ = client.shutdown().await;
                }
            }
            return;
        }
    }
}
