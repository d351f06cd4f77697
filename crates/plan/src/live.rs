//! Live connections: a WebSocket session of actions (send, expect, hold,
//! every, close), or a server-sent event stream, opened by a step and kept
//! open while its session runs.

use std::time::Duration;

use crate::{Check, Extract, Template};

/// Messages kept for a later `expect` unless the session says otherwise.
pub const DEFAULT_WS_QUEUE: usize = 256;

/// How long an `expect` waits unless it says otherwise.
pub const DEFAULT_EXPECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of one incoming message: a longer one ends the session as a
/// protocol error (a hostile server cannot make throng buffer without end).
pub const MAX_WS_MESSAGE: usize = 1 << 20;

/// A live connection a step opens: the step (in [`crate::Flow::steps`])
/// holds its path, headers, endpoint and upgrade timeout.
#[derive(Debug, Clone)]
pub enum Live {
    /// A WebSocket and the actions run on it.
    Ws(WsSession),
    /// A server-sent event stream; the step's checks and extracts apply
    /// to each event.
    Sse(SseStream),
}

/// How long a stream is followed, and how it is resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseStream {
    /// End after this many events (`None`: no limit).
    pub events: Option<u64>,
    /// End this long after the step's start (`None`: at the stream's end).
    pub period: Option<Duration>,
    /// Times to reconnect, with `Last-Event-ID`, after the stream ends
    /// (or breaks) before `events` or `period` are reached.
    pub reconnects: u32,
}

/// How long a stream waits to reconnect unless it says (`retry:`).
pub const DEFAULT_SSE_RETRY: Duration = Duration::from_secs(3);

/// The longest wait to reconnect a stream may ask for.
pub const MAX_SSE_RETRY: Duration = Duration::from_secs(30);

/// A WebSocket session.
#[derive(Debug, Clone)]
pub struct WsSession {
    /// Subprotocols offered (`Sec-WebSocket-Protocol`), in order.
    pub subprotocols: Vec<String>,
    /// What is done on the socket, in order.
    pub actions: Vec<WsAction>,
    /// Most messages kept for a later `expect` (older ones are dropped,
    /// and counted, when more arrive).
    pub queue: usize,
}

/// One action of a WebSocket session.
#[derive(Debug, Clone)]
pub enum WsAction {
    /// Send a message.
    Send(WsMessage),
    /// Wait for the next message (or the next that matches).
    Expect(WsExpect),
    /// Stay connected, reading (and answering pings), this long.
    Hold(Duration),
    /// Send a message every `interval` for `period`, each one possibly
    /// answered by a message that matches `expect`.
    Every {
        /// Time between sends (the first goes at once).
        interval: Duration,
        /// How long to keep sending.
        period: Duration,
        /// What to send.
        send: WsMessage,
        /// The reply that answers each send, for its round trip.
        expect: Option<WsExpect>,
    },
    /// Close the socket with this code.
    Close(u16),
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct WsMessage {
    /// Text (templated) or binary (as written, decoded once).
    pub kind: WsKind,
    /// The text's template; for binary, a literal of no use.
    pub text: Template,
    /// The binary payload.
    pub binary: Vec<u8>,
}

/// A message's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsKind {
    /// A text frame.
    Text,
    /// A binary frame.
    Binary,
}

/// What an `expect` waits for.
#[derive(Debug, Clone)]
pub struct WsExpect {
    /// The message must pass this (messages before it that do not are
    /// read and passed over); any message does when `None`.
    pub matcher: Option<Check>,
    /// What the matcher tests, for people: `body contains "joined"`.
    pub what: String,
    /// Most time to wait.
    pub timeout: Duration,
    /// Values taken from the matching message.
    pub extract: Vec<Extract>,
}
