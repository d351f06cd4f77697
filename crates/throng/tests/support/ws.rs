//! A scriptable loopback WebSocket server: it echoes, bursts, stalls,
//! closes with a code, drops, refuses the upgrade or stays silent, and
//! counts what it saw.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::server::Running;

/// How the server behaves once a socket is open.
#[derive(Clone, Copy, Debug)]
pub enum WsMode {
    /// Echoes every text message, each `delay` after the one before it
    /// was echoed (a server that handles one message at a time).
    Echo { delay: Duration },
    /// Sends `{"n":0}` .. `{"n":N-1}` at once, then echoes.
    Burst(u32),
    /// Closes with this code after the first message.
    CloseWith(u16),
    /// Drops the connection, no close frame, after the first message.
    Drop,
    /// Answers the upgrade with this status instead of 101.
    Refuse(u16),
    /// Reads and never answers.
    Silent,
}

/// What the server saw.
#[derive(Default)]
pub struct WsSeen {
    /// Upgrade requests.
    pub upgrades: AtomicU64,
    /// Text and binary messages received.
    pub messages: AtomicU64,
    /// The close codes clients sent.
    pub client_closes: Mutex<Vec<u16>>,
    /// The `Cookie` and `Sec-WebSocket-Protocol` of each upgrade (each
    /// 101 sets the cookie `room=r1`).
    pub headers: Mutex<Vec<(String, String)>>,
}

/// A WebSocket server in `mode` on 127.0.0.1:0.
pub fn start(mode: WsMode) -> Running<WsSeen> {
    let seen = Arc::new(WsSeen::default());
    let s = seen.clone();
    Running::start(seen, move |listener| async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(socket(stream, mode, s.clone()));
        }
    })
}

/// The same over TLS (`wss://`), with a self-signed certificate for
/// `localhost`; and its PEM, for `--cacert`.
pub fn start_tls(mode: WsMode) -> (Running<WsSeen>, String) {
    let (acceptor, pem) = super::server::tls_acceptor(b"http/1.1");
    let seen = Arc::new(WsSeen::default());
    let s = seen.clone();
    let running = Running::start(seen, move |listener| async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, s) = (acceptor.clone(), s.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    socket(tls, mode, s).await;
                }
            });
        }
    });
    (running, pem)
}

// The library's callback type returns its error response by value.
#[allow(clippy::result_large_err)]
async fn socket<S>(stream: S, mode: WsMode, seen: Arc<WsSeen>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let s = seen.clone();
    let callback = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        s.upgrades.fetch_add(1, Ordering::Relaxed);
        let h = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let protocol = h("sec-websocket-protocol");
        s.headers
            .lock()
            .unwrap()
            .push((h("cookie"), protocol.clone()));
        if let WsMode::Refuse(status) = mode {
            let mut e = ErrorResponse::new(Some("no".into()));
            *e.status_mut() = http::StatusCode::from_u16(status).unwrap();
            return Err(e);
        }
        // A cookie for the user's jar, which the next upgrade sends.
        resp.headers_mut()
            .insert("set-cookie", "room=r1; Path=/".parse().unwrap());
        if let Some(first) = protocol.split(',').next().filter(|p| !p.is_empty()) {
            resp.headers_mut()
                .insert("sec-websocket-protocol", first.trim().parse().unwrap());
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    if let WsMode::Burst(n) = mode {
        for i in 0..n {
            let _ = ws.send(Message::text(format!("{{\"n\":{i}}}"))).await;
        }
    }
    while let Some(Ok(msg)) = ws.next().await {
        let text = match msg {
            Message::Text(t) => t,
            Message::Binary(_) => {
                seen.messages.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Message::Close(frame) => {
                let code = frame.map_or(1005, |f| u16::from(f.code));
                seen.client_closes.lock().unwrap().push(code);
                continue;
            }
            _ => continue,
        };
        seen.messages.fetch_add(1, Ordering::Relaxed);
        match mode {
            WsMode::Echo { delay } => {
                tokio::time::sleep(delay).await;
                let _ = ws.send(Message::Text(text)).await;
            }
            WsMode::Burst(_) => {
                let _ = ws.send(Message::Text(text)).await;
            }
            WsMode::CloseWith(code) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: "bye".into(),
                };
                let _ = ws.close(Some(frame)).await;
            }
            WsMode::Drop => return,
            WsMode::Refuse(_) | WsMode::Silent => {}
        }
    }
}
