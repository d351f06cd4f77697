//! A scriptable loopback server-sent events server: it streams numbered
//! events (resuming after the `Last-Event-ID` a client sends), answers
//! with an error status, or with something that is no event stream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::server::{read_message, Running};

/// How the server answers a subscription.
#[derive(Clone, Copy, Debug)]
pub enum SseMode {
    /// `retry: 100`, then `n` events `id: K`, `data: {"k":K}` (K counting
    /// on from the client's `Last-Event-ID`), the first at once and then
    /// one every `every`; then it ends the stream, or with `hold` keeps
    /// it open.
    Events { n: u64, every: Duration, hold: bool },
    /// This status, no stream.
    Status(u16),
    /// 200 with `text/plain`.
    NotStream,
}

/// What the server saw.
#[derive(Default)]
pub struct SseSeen {
    /// Subscriptions.
    pub requests: AtomicU64,
    /// The `Last-Event-ID` of each subscription ("" when none).
    pub last_ids: Mutex<Vec<String>>,
}

/// An event stream server in `mode` on 127.0.0.1:0.
pub fn start(mode: SseMode) -> Running<SseSeen> {
    let seen = Arc::new(SseSeen::default());
    let s = seen.clone();
    Running::start(seen, move |listener| async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(subscription(stream, mode, s.clone()));
        }
    })
}

async fn subscription(mut stream: tokio::net::TcpStream, mode: SseMode, seen: Arc<SseSeen>) {
    let mut buf = Vec::new();
    let Some((head, _)) = read_message(&mut stream, &mut buf).await else {
        return;
    };
    seen.requests.fetch_add(1, Ordering::Relaxed);
    let last_id = String::from_utf8_lossy(&buf[..head])
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("last-event-id")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    seen.last_ids.lock().unwrap().push(last_id.clone());
    let (n, every, hold) = match mode {
        SseMode::Status(status) => {
            let _ = stream
                .write_all(
                    format!("HTTP/1.1 {status} No\r\ncontent-length: 3\r\n\r\nno\n").as_bytes(),
                )
                .await;
            return;
        }
        SseMode::NotStream => {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nhi\n",
                )
                .await;
            return;
        }
        SseMode::Events { n, every, hold } => (n, every, hold),
    };
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let chunk = |text: &str| format!("{:x}\r\n{text}\r\n", text.len());
    if stream
        .write_all(chunk("retry: 100\n: hello\n\n").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let from: u64 = last_id.parse().unwrap_or(0);
    for k in from + 1..=from + n {
        if k > from + 1 {
            tokio::time::sleep(every).await;
        }
        let event = format!("id: {k}\ndata: {{\"k\":{k}}}\n\n");
        if stream.write_all(chunk(&event).as_bytes()).await.is_err() {
            return;
        }
    }
    if hold {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
}
