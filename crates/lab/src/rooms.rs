//! Pair-programming rooms over WebSocket, the live traffic of the
//! freeCodeCamp launch: `GET /pair/ROOM` upgrades, then JSON text
//! messages:
//! - `{"op": "join", "user": U}`: answered `{"op": "joined", "room": R,
//!   "members": N}`; the others get `{"op": "presence", ...}`.
//! - `{"op": "edit", "user": U, ...}`: sent as is to every member of the
//!   room, its sender included (so a client can time its own edit).
//! - `{"op": "ping"}`: answered `{"op": "pong"}`.
//!
//! `GET /pair/ROOM/events` follows a room as server-sent events: each
//! message the room broadcasts, `id` its number in the room and `event`
//! its op; a subscriber that comes back with `Last-Event-ID` first gets
//! what it missed, from the room's last 100 events.
//!
//! Each member has a writer task fed by a bounded queue; a member too
//! slow to keep up loses messages (counted), never holds up the room.
//!
//! I-flag (`--ws-cap N`): past N open sockets, a new socket is upgraded
//! and then dropped without a close frame, as a server at its connection
//! limit does: the client sees an abnormal close (1006), and a load test
//! that counted only upgrades would call it a success.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::metrics::Metrics;

/// The subprotocol the rooms speak, echoed when a client offers it.
pub const SUBPROTOCOL: &str = "pair.v1";

/// Messages waiting for one member's writer.
const MEMBER_QUEUE: usize = 256;

/// Most bytes of one message the rooms read.
const MAX_MESSAGE: usize = 64 * 1024;

/// A member's outgoing queue.
type Outbox = mpsc::Sender<Message>;

/// A subscriber's queue of (event id, message).
type Watcher = mpsc::Sender<(u64, Arc<str>)>;

/// Events a room keeps for subscribers that resume.
const HISTORY: usize = 100;

/// A room: its members, and its event stream's subscribers and history.
#[derive(Default)]
struct Room {
    members: Vec<(u64, Outbox)>,
    watchers: Vec<Watcher>,
    seq: u64,
    history: std::collections::VecDeque<(u64, Arc<str>)>,
}

/// Every room and its members.
pub struct Rooms {
    rooms: Mutex<HashMap<String, Room>>,
    next_id: AtomicU64,
    /// Sockets open now.
    open: AtomicU64,
    /// `--ws-cap`.
    cap: Option<u64>,
    metrics: Arc<Metrics>,
}

impl Rooms {
    /// No rooms yet; past `cap` open sockets new ones are dropped.
    pub fn new(cap: Option<u64>, metrics: Arc<Metrics>) -> Rooms {
        Rooms {
            rooms: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            open: AtomicU64::new(0),
            cap,
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends `text` to the room's members (all but `except`) and, as an
    /// event, to its subscribers.
    fn broadcast(&self, room: &str, text: &str, except: Option<u64>) {
        let message = Message::text(text);
        let members = {
            let mut rooms = self.lock();
            let Some(r) = rooms.get_mut(room) else {
                return;
            };
            r.seq += 1;
            let event: (u64, Arc<str>) = (r.seq, Arc::from(text));
            if r.history.len() >= HISTORY {
                r.history.pop_front();
            }
            r.history.push_back(event.clone());
            r.watchers.retain(|w| match w.try_send(event.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.metrics.add(&self.metrics.ws_slow_dropped, 1);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
            r.members.clone()
        };
        for (id, out) in members {
            if Some(id) == except {
                continue;
            }
            if out.try_send(message.clone()).is_err() {
                self.metrics.add(&self.metrics.ws_slow_dropped, 1);
            }
        }
    }

    fn join(&self, room: &str, id: u64, out: Outbox) -> usize {
        let mut rooms = self.lock();
        let r = rooms.entry(room.to_string()).or_default();
        r.members.push((id, out));
        r.members.len()
    }

    fn leave(&self, room: &str, id: u64) -> usize {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(room) else {
            return 0;
        };
        r.members.retain(|(m, _)| *m != id);
        r.watchers.retain(|w| !w.is_closed());
        let left = r.members.len();
        // A room nobody is in or follows is forgotten, its history too.
        if left == 0 && r.watchers.is_empty() {
            rooms.remove(room);
        }
        left
    }

    /// A subscriber of `room`'s events after `after` (those it missed
    /// first, from the history).
    fn watch(&self, room: &str, after: u64) -> mpsc::Receiver<(u64, Arc<str>)> {
        let (tx, rx) = mpsc::channel(HISTORY * 2);
        let mut rooms = self.lock();
        let r = rooms.entry(room.to_string()).or_default();
        for event in r.history.iter().filter(|(id, _)| *id > after) {
            let _ = tx.try_send(event.clone());
        }
        r.watchers.push(tx);
        rx
    }
}

/// The lab's response body: whole, or a stream.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// The answer to `GET /pair/ROOM/events`: the room's events as a stream,
/// resumed after the request's `Last-Event-ID`.
pub fn subscribe<B>(rooms: &Rooms, req: &Request<B>, room: &str) -> Response<Body> {
    use http_body_util::{BodyExt, StreamBody};
    let after = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    rooms.metrics.add(&rooms.metrics.sse_streams, 1);
    let rx = rooms.watch(room, after);
    let metrics = rooms.metrics.clone();
    let first = Bytes::from_static(b"retry: 1000\n: following the room\n\n");
    let events = futures_util::stream::unfold((rx, Some(first)), move |(mut rx, first)| {
        let metrics = metrics.clone();
        async move {
            if let Some(first) = first {
                return Some((Ok(hyper::body::Frame::data(first)), (rx, None)));
            }
            let (id, text) = rx.recv().await?;
            metrics.add(&metrics.sse_events, 1);
            let op = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("op").and_then(|o| o.as_str()).map(str::to_string))
                .unwrap_or_else(|| "message".into());
            let frame = format!("id: {id}\nevent: {op}\ndata: {text}\n\n");
            Some((Ok(hyper::body::Frame::data(Bytes::from(frame))), (rx, None)))
        }
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(events)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// The answer to `GET /pair/ROOM`: 101 and a member task once hyper
/// hands over the connection, or 400 for a request that is no upgrade.
pub fn upgrade(
    rooms: &Arc<Rooms>,
    req: Request<hyper::body::Incoming>,
    room: &str,
) -> Response<Full<Bytes>> {
    let headers = req.headers();
    let is_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let (true, true, Some(key)) = (is_upgrade, version_ok, key) else {
        let mut r = Response::new(Full::new(Bytes::from_static(
            b"not a WebSocket upgrade: send Upgrade: websocket, Sec-WebSocket-Version: 13 and a key\n",
        )));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if offered {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    let rooms = rooms.clone();
    let room = room.to_string();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let metrics = rooms.metrics.clone();
        metrics.add(&metrics.ws_opened, 1);
        let open = rooms.open.fetch_add(1, Ordering::Relaxed) + 1;
        if rooms.cap.is_some_and(|cap| open > cap) {
            // At the limit: the socket is dropped, no close frame.
            rooms.open.fetch_sub(1, Ordering::Relaxed);
            metrics.add(&metrics.ws_rejected, 1);
            return;
        }
        metrics.add(&metrics.ws_open, 1);
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        member(&rooms, &room, ws).await;
        rooms.open.fetch_sub(1, Ordering::Relaxed);
        metrics.ws_open.fetch_sub(1, Ordering::Relaxed);
    });
    r
}

/// One member's socket, from its upgrade to its close.
async fn member<S>(rooms: &Rooms, room: &str, ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let id = rooms.next_id.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(MEMBER_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut joined = false;
    while let Some(Ok(msg)) = stream.next().await {
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => break,
            _ => continue,
        };
        rooms.metrics.add(&rooms.metrics.ws_messages, 1);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        match value.get("op").and_then(|o| o.as_str()) {
            Some("join") if !joined => {
                joined = true;
                let members = rooms.join(room, id, tx.clone());
                let user = value.get("user").cloned().unwrap_or_default();
                let reply = serde_json::json!({"op": "joined", "room": room, "user": user, "members": members});
                let _ = tx.try_send(Message::text(reply.to_string()));
                let presence =
                    serde_json::json!({"op": "presence", "user": user, "members": members});
                rooms.broadcast(room, &presence.to_string(), Some(id));
            }
            Some("edit") if joined => rooms.broadcast(room, &text, None),
            Some("ping") => {
                let _ = tx.try_send(Message::text(r#"{"op":"pong"}"#));
            }
            _ => {
                let _ = tx.try_send(Message::text(
                    r#"{"op":"error","why":"send join first, then edit or ping"}"#,
                ));
            }
        }
    }
    if joined {
        let members = rooms.leave(room, id);
        let presence = serde_json::json!({"op": "presence", "members": members});
        rooms.broadcast(room, &presence.to_string(), None);
    }
    drop(tx);
    let _ = writer.await;
}
