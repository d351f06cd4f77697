//! The HTTP/2 client against scripted servers: raw frames, one case each.
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

#[test]
fn padding_is_taken_off_and_checked() {
    let padded = Bytes::from_static(&[2, b'h', b'i', 0, 0]);
    assert_eq!(unpad(PADDED, padded).ok(), Some(Bytes::from_static(b"hi")));
    assert!(unpad(PADDED, Bytes::from_static(&[5, b'h'])).is_err());
    assert!(unpad(PADDED, Bytes::new()).is_err());
    assert_eq!(
        unpad(0, Bytes::from_static(b"x")).ok(),
        Some(Bytes::from_static(b"x"))
    );
}

#[test]
fn status_and_content_length_are_read_in_place() {
    let plain = |s: &'static str| decimal(hpack::Text::Plain(s.as_bytes()));
    assert_eq!(plain("200"), Some((200, 3)));
    assert_eq!(plain("0"), Some((0, 1)));
    assert_eq!(plain("18446744073709551615"), Some((u64::MAX, 20)));
    for bad in ["", "12a", "+1", " 1", "18446744073709551616"] {
        assert_eq!(plain(bad), None, "{bad:?}");
    }
    let mut coded = Vec::new();
    hpack::huffman_encode(b"1234".iter().copied(), &mut coded);
    let sent = hpack::Text::Sent(hpack::Str {
        huffman: true,
        raw: &coded,
    });
    assert_eq!(decimal(sent), Some((1234, 4)));
}

#[test]
fn a_name_from_the_static_table_is_known_by_its_index() {
    for (i, (name, _)) in hpack::STATIC.iter().enumerate() {
        let field = |static_name| hpack::Field {
            name: hpack::Text::Plain(name.as_bytes()),
            value: hpack::Text::Plain(b""),
            static_name,
        };
        let (by_index, by_name) = (field(i + 1), field(0));
        assert_eq!(Name::of(&by_index), Name::of(&by_name), "{name}");
        for (index, plain) in [(55, &b"set-cookie"[..]), (46, b"location")] {
            assert_eq!(
                Name::of(&by_index).is(&by_index, index, plain),
                Name::of(&by_name).is(&by_name, index, plain),
                "{name}"
            );
        }
    }
    let literal = |name: &'static str| {
        Name::of(&hpack::Field {
            name: hpack::Text::Plain(name.as_bytes()),
            value: hpack::Text::Plain(b""),
            static_name: 0,
        })
    };
    assert_eq!(literal(":status"), Name::Status);
    assert_eq!(literal("content-length"), Name::ContentLength);
    for bad in [":path", "Server", "x y", "connection", "upgrade"] {
        assert_eq!(literal(bad), Name::Malformed, "{bad}");
    }
    assert_eq!(literal("x-request-id"), Name::Other);
}

/// A frame: its type, flags, stream and payload.
type Frame = (u8, u8, u32, Vec<u8>);

/// The server's side of a scripted connection: raw frames.
struct Peer(TcpStream);

impl Peer {
    /// Reads the client's preface and its first frames (SETTINGS,
    /// WINDOW_UPDATE), and sends `settings`.
    async fn accept(listener: &TcpListener, settings: &[(u16, u32)]) -> Peer {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = Peer(stream);
        let mut preface = [0u8; 24];
        peer.0.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        let mut payload = Vec::new();
        for (id, value) in settings {
            payload.extend_from_slice(&id.to_be_bytes());
            payload.extend_from_slice(&value.to_be_bytes());
        }
        peer.send(SETTINGS, 0, 0, &payload).await;
        peer
    }

    async fn send(&mut self, kind: u8, flags: u8, id: u32, payload: &[u8]) {
        let mut out = Vec::new();
        frame_head(&mut out, payload.len(), kind, flags, id);
        out.extend_from_slice(payload);
        self.0.write_all(&out).await.unwrap();
    }

    /// The next frame of `kind` from the client (others skipped).
    async fn expect(&mut self, kind: u8) -> (u8, u32, Vec<u8>) {
        loop {
            let mut head = [0u8; 9];
            self.0.read_exact(&mut head).await.unwrap();
            let len = (head[0] as usize) << 16 | (head[1] as usize) << 8 | head[2] as usize;
            let mut payload = vec![0u8; len];
            self.0.read_exact(&mut payload).await.unwrap();
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
            if head[3] == kind {
                return (head[4], id, payload);
            }
        }
    }

    /// A response head for stream `id`.
    async fn head(&mut self, id: u32, status: &str, flags: u8) {
        let block = hpack::encode_fields([(&b":status"[..], status.as_bytes())]);
        self.send(HEADERS, flags | END_HEADERS, id, &block).await;
    }
}

/// Runs `client` against a server that `serve` scripts, on 127.0.0.1.
fn scripted<S, C>(
    serve: impl FnOnce(TcpListener) -> S + 'static,
    client: impl FnOnce(H2Connector) -> C,
) where
    S: std::future::Future<Output = ()> + 'static,
    C: std::future::Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::task::spawn_local(serve(listener));
        let connector = H2Connector::new(Dialer { addr, tls: None }, 1, None);
        tokio::time::timeout(Duration::from_secs(10), client(connector))
            .await
            .expect("the exchange hung");
        server.abort();
    });
}

fn get() -> H2Request {
    H2Request {
        block: Some(Bytes::from(hpack::encode_fields([
            (&b":method"[..], &b"GET"[..]),
            (b":scheme", b"http"),
            (b":authority", b"127.0.0.1"),
            (b":path", b"/"),
        ]))),
        body: Bytes::new(),
        head: false,
    }
}

async fn exchange(
    connector: &H2Connector,
    req: &H2Request,
) -> (Result<Response, Failure>, H2Conn, Phases) {
    let mut phases = Phases::default();
    let caller = Caller {
        source: None,
        tickets: None,
    };
    let mut conn = connector.connect(&mut phases, caller).await.unwrap();
    let mut capture = Capture::default();
    let got = conn.exchange(req, &mut phases, &mut capture).await;
    (got, conn, phases)
}

#[test]
fn a_response_in_pieces_is_read_whole() {
    // An informational head first; the final head split over HEADERS
    // and CONTINUATION, padded; the body in two DATA frames, one
    // padded; trailers.
    scripted(
        |listener| async move {
            let mut peer = Peer::accept(&listener, &[]).await;
            let (flags, id, _) = peer.expect(HEADERS).await;
            assert_eq!(flags & END_STREAM, END_STREAM);
            peer.head(id, "100", 0).await;
            let block = hpack::encode_fields([
                (&b":status"[..], &b"201"[..]),
                (b"content-type", b"text/plain"),
                (b"content-length", b"11"),
            ]);
            let (a, b) = block.split_at(3);
            let mut padded = vec![2u8];
            padded.extend_from_slice(a);
            padded.extend_from_slice(&[0, 0]);
            peer.send(HEADERS, PADDED, id, &padded).await;
            peer.send(CONTINUATION, END_HEADERS, id, b).await;
            peer.send(DATA, 0, id, b"hello ").await;
            peer.send(
                DATA,
                PADDED,
                id,
                &[3, b'w', b'o', b'r', b'l', b'd', 0, 0, 0],
            )
            .await;
            let trailers = hpack::encode_fields([(&b"x-checksum"[..], &b"1"[..])]);
            peer.send(HEADERS, END_HEADERS | END_STREAM, id, &trailers)
                .await;
            peer.expect(0xff).await;
        },
        |connector| async move {
            let (got, conn, phases) = exchange(&connector, &get()).await;
            let got = got.unwrap();
            assert_eq!((got.status, got.body_bytes), (201, 11));
            assert!(phases.ttfb.is_some());
            assert!(conn.reusable());
        },
    );
}

#[test]
fn a_body_is_the_length_its_head_said() {
    // Short of content-length: failed, as a browser fails it. A HEAD
    // and a 304 carry the length of a body they do not send.
    scripted(
        |listener| async move {
            let mut peer = Peer::accept(&listener, &[]).await;
            let with_length = |status: &'static [u8]| {
                hpack::encode_fields([(&b":status"[..], status), (b"content-length", b"10")])
            };
            let (_, id, _) = peer.expect(HEADERS).await;
            peer.send(HEADERS, END_HEADERS, id, &with_length(b"200"))
                .await;
            peer.send(DATA, END_STREAM, id, b"short").await;
            let (_, id, _) = peer.expect(HEADERS).await;
            peer.send(HEADERS, END_HEADERS | END_STREAM, id, &with_length(b"200"))
                .await;
            let (_, id, _) = peer.expect(HEADERS).await;
            peer.send(HEADERS, END_HEADERS | END_STREAM, id, &with_length(b"304"))
                .await;
            peer.expect(0xff).await;
        },
        |connector| async move {
            let (got, mut conn, mut phases) = exchange(&connector, &get()).await;
            assert_eq!(got.unwrap_err().kind, ErrorKind::Protocol);
            let mut head = get();
            head.head = true;
            let got = conn
                .exchange(&head, &mut phases, &mut Capture::default())
                .await;
            assert_eq!(got.unwrap().body_bytes, 0);
            let got = conn
                .exchange(&get(), &mut phases, &mut Capture::default())
                .await;
            assert_eq!(got.unwrap().status, 304);
        },
    );
}

#[test]
fn streams_the_server_did_not_take_are_not_sent() {
    // GOAWAY naming no stream: the request was never processed, and
    // the connection takes no more.
    scripted(
        |listener| async move {
            let mut peer = Peer::accept(&listener, &[]).await;
            peer.expect(HEADERS).await;
            peer.send(GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0]).await;
            peer.expect(0xff).await;
        },
        |connector| async move {
            let (got, conn, _) = exchange(&connector, &get()).await;
            let f = got.unwrap_err();
            assert_eq!((f.kind, f.stage), (ErrorKind::Reset, Stage::NotSent));
            assert!(!conn.reusable());
        },
    );
    // A refused stream: not sent either, and the connection goes on.
    scripted(
        |listener| async move {
            let mut peer = Peer::accept(&listener, &[]).await;
            let (_, id, _) = peer.expect(HEADERS).await;
            peer.send(RST_STREAM, 0, id, &REFUSED_STREAM.to_be_bytes())
                .await;
            let (_, id, _) = peer.expect(HEADERS).await;
            peer.head(id, "200", END_STREAM).await;
            peer.expect(0xff).await;
        },
        |connector| async move {
            let (got, mut conn, mut phases) = exchange(&connector, &get()).await;
            let f = got.unwrap_err();
            assert_eq!((f.kind, f.stage), (ErrorKind::Reset, Stage::NotSent));
            let again = conn
                .exchange(&get(), &mut phases, &mut Capture::default())
                .await;
            assert_eq!(again.unwrap().status, 200);
        },
    );
}

#[test]
fn a_body_over_the_windows_flows_as_they_are_given_back() {
    // A response of 3 MiB against our 2 MiB stream window: the server
    // may send the rest only once we give some back; and a request
    // body of 100 bytes against the server's window of 10.
    scripted(
        |listener| async move {
            let mut peer = Peer::accept(&listener, &[(0x4, 10)]).await;
            let (_, id, _) = peer.expect(HEADERS).await;
            let mut body = Vec::new();
            while body.len() < 100 {
                let (flags, _, data) = peer.expect(DATA).await;
                body.extend_from_slice(&data);
                if flags & END_STREAM == 0 {
                    assert!(data.len() <= 10, "{} bytes past a window of 10", data.len());
                    peer.send(WINDOW_UPDATE, 0, id, &(data.len() as u32).to_be_bytes())
                        .await;
                    peer.send(WINDOW_UPDATE, 0, 0, &(data.len() as u32).to_be_bytes())
                        .await;
                }
            }
            assert_eq!(body, vec![7u8; 100]);
            peer.head(id, "200", 0).await;
            let chunk = vec![1u8; MAX_FRAME];
            for _ in 0..(STREAM_WINDOW as usize / MAX_FRAME) {
                peer.send(DATA, 0, id, &chunk).await;
            }
            // The window is spent: wait for the client's update.
            let (_, sid, add) = peer.expect(WINDOW_UPDATE).await;
            let add = u32::from_be_bytes([add[0], add[1], add[2], add[3]]);
            assert!(sid == id || sid == 0, "update for stream {sid}");
            for _ in 0..(1024 * 1024 / MAX_FRAME) {
                peer.send(DATA, 0, id, &chunk).await;
            }
            assert!(add > 0);
            peer.send(DATA, END_STREAM, id, b"").await;
            peer.expect(0xff).await;
        },
        |connector| async move {
            let mut post = get();
            post.body = Bytes::from(vec![7u8; 100]);
            let (got, _, _) = exchange(&connector, &post).await;
            assert_eq!(got.unwrap().body_bytes, 3 * 1024 * 1024);
        },
    );
}

#[test]
fn a_whole_response_before_the_whole_upload_counts() {
    // The server's window is 10 bytes; the body is 100. Stream 1: the
    // server answers at once and resets the stream with NO_ERROR
    // (RFC 9113 section 8.1, as nginx does): the response counts and
    // the rest of the body is not sent. Stream 3: it answers at once
    // without a reset: the body is still sent whole as the window
    // comes back.
    scripted(
        |listener| async move {
            let mut peer = Peer::accept(&listener, &[(0x4, 10)]).await;
            let (_, id, _) = peer.expect(HEADERS).await;
            peer.head(id, "200", END_STREAM).await;
            peer.send(RST_STREAM, 0, id, &NO_ERROR.to_be_bytes()).await;
            let (_, next, _) = peer.expect(HEADERS).await;
            assert_eq!(
                next,
                id + 2,
                "stream {id} sent no more DATA after its reset"
            );
            peer.head(next, "201", END_STREAM).await;
            let mut body = 0;
            loop {
                let (flags, sid, data) = peer.expect(DATA).await;
                assert_eq!(sid, next);
                body += data.len();
                if flags & END_STREAM != 0 {
                    break;
                }
                peer.send(WINDOW_UPDATE, 0, next, &(data.len() as u32).to_be_bytes())
                    .await;
                peer.send(WINDOW_UPDATE, 0, 0, &(data.len() as u32).to_be_bytes())
                    .await;
            }
            assert_eq!(body, 100);
            peer.expect(0xff).await;
        },
        |connector| async move {
            let mut post = get();
            post.body = Bytes::from(vec![7u8; 100]);
            let (got, mut conn, mut phases) = exchange(&connector, &post).await;
            assert_eq!(got.unwrap().status, 200);
            let again = conn
                .exchange(&post, &mut phases, &mut Capture::default())
                .await;
            assert_eq!(again.unwrap().status, 201);
        },
    );
}

#[test]
fn what_breaks_the_protocol_fails_the_request_not_the_run() {
    // A frame over the size we allow, a header block that does not
    // decode, a response without :status, DATA on stream 0.
    let cases: [fn(u32) -> Frame; 6] = [
        |id| {
            // :status 200, then a name in upper case (by hand: the encoder
            // writes names in lower case).
            let mut block = vec![0x88, 0x00, 7];
            block.extend_from_slice(b"X-Upper\x011");
            (HEADERS, END_HEADERS | END_STREAM, id, block)
        },
        |id| {
            let block = [(&b":status"[..], &b"200"[..]), (b"connection", b"close")];
            (
                HEADERS,
                END_HEADERS | END_STREAM,
                id,
                hpack::encode_fields(block),
            )
        },
        |id| (DATA, 0, id, vec![0u8; MAX_FRAME + 1]),
        |id| {
            (
                HEADERS,
                END_HEADERS,
                id,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            )
        },
        |id| {
            (
                HEADERS,
                END_HEADERS,
                id,
                hpack::encode_fields([(&b"server"[..], &b"x"[..])]),
            )
        },
        |_| (DATA, 0, 0, b"x".to_vec()),
    ];
    for (i, case) in cases.into_iter().enumerate() {
        scripted(
            move |listener| async move {
                let mut peer = Peer::accept(&listener, &[]).await;
                let (_, id, _) = peer.expect(HEADERS).await;
                let (kind, flags, sid, payload) = case(id);
                peer.send(kind, flags, sid, &payload).await;
                peer.expect(0xff).await;
            },
            |connector| async move {
                let (got, _, _) = exchange(&connector, &get()).await;
                let f = got.expect_err("a broken response");
                assert_eq!(f.kind, ErrorKind::Protocol, "case {i}: {f:?}");
            },
        );
    }
}
