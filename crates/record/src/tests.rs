use std::time::Duration;

use expect_test::expect;

use crate::mask::{Masker, Rules};
use crate::session::{Seen, Sessions};

fn masker() -> Masker {
    Masker::new(Rules::default())
}

#[test]
fn credential_headers_are_masked_keeping_their_scheme_and_cookie_names() {
    let mut m = masker();
    assert_eq!(
        m.header("authorization", "Bearer abc.def").as_deref(),
        Some("Bearer __masked_1__")
    );
    assert_eq!(
        m.header("cookie", "sid=s3cr3t; theme=dark").as_deref(),
        Some("sid=__masked_2__; theme=__masked_3__")
    );
    assert_eq!(
        m.header("set-cookie", "sid=s3cr3t; Path=/; HttpOnly")
            .as_deref(),
        Some("sid=__masked_2__; Path=/; HttpOnly"),
        "the same value, the same placeholder: the cookie set is the cookie sent"
    );
    assert_eq!(
        m.header("x-csrf-token", "tok").as_deref(),
        Some("__masked_4__"),
        "a header whose name says token"
    );
    assert_eq!(m.header("accept", "text/html"), None);
    assert_eq!(m.header("user-agent", "curl/8"), None);
    assert_eq!(m.masked, 5);
    assert_eq!(m.placeholders(), 4);
}

#[test]
fn query_and_form_secrets_are_masked_and_every_other_byte_kept() {
    let mut m = masker();
    assert_eq!(
        m.path("/cb?code=1&access_token=abc%2F&next=%2Fhome+page")
            .as_deref(),
        Some("/cb?code=1&access_token=__masked_1__&next=%2Fhome+page")
    );
    assert_eq!(m.path("/search?q=shoes"), None);
    assert_eq!(m.path("/plain"), None);
    let form = m
        .body(
            Some("application/x-www-form-urlencoded"),
            b"email=a%40b.c&password=hunter2&remember",
        )
        .map(String::from_utf8);
    assert_eq!(
        form,
        Some(Ok(
            "email=a%40b.c&password=__masked_2__&remember".to_string()
        ))
    );
}

#[test]
fn json_secrets_are_masked_by_key_even_in_a_cut_body_and_by_jsonpath() {
    let mut m = masker();
    let body = br#"{"user": "ann", "password": "hunter2", "nested": {"apiKey": 12345, "ok": true}, "card_number": "4111"#;
    let masked = m
        .body(Some("application/json"), body)
        .map(String::from_utf8);
    expect![[r#"
        Some(
            Ok(
                "{\"user\": \"ann\", \"password\": \"__masked_1__\", \"nested\": {\"apiKey\": \"__masked_2__\", \"ok\": true}, \"card_number\": \"4111",
            ),
        )
    "#]]
    .assert_debug_eq(&masked);

    let rules = Rules {
        json: vec![(
            "$.customer.email".into(),
            serde_json_path::JsonPath::parse("$.customer.email").expect("a path"),
        )],
        ..Rules::default()
    };
    let mut m = Masker::new(rules);
    let masked = m
        .body(
            Some("application/json; charset=utf-8"),
            br#"{"customer": {"email": "a@b.c", "name": "Ann"}, "token": "t"}"#,
        )
        .map(String::from_utf8);
    assert_eq!(
        masked,
        Some(Ok(
            r#"{"customer":{"email":"__masked_2__","name":"Ann"},"token":"__masked_1__"}"#
                .to_string()
        ))
    );
    assert_eq!(m.body(Some("text/plain"), b"password=1"), None);
}

#[test]
fn kept_keys_stay_in_clear() {
    let rules = Rules {
        keep: vec!["session_length".into(), "x-session-id".into()],
        ..Rules::default()
    };
    let mut m = Masker::new(rules);
    assert_eq!(
        m.path("/a?session_length=30&session=abc").as_deref(),
        Some("/a?session_length=30&session=__masked_1__")
    );
    assert_eq!(m.header("x-session-id", "s1"), None);
    assert_eq!(m.header("cookie", "a=b").as_deref(), Some("a=__masked_2__"));
}

#[test]
fn sessions_follow_cookies_and_connections() {
    let mut s = Sessions::new();
    let t = Duration::from_secs(1);
    let seen = |connection, cookies: &'static [&'static str]| Seen {
        connection,
        header: None,
        cookies,
    };
    // Two clients' first requests, no cookies: one session each.
    let a = s.of(seen(1, &[]), t);
    let b = s.of(seen(2, &[]), t);
    assert_ne!(a, b);
    // A's login sets a cookie; A sends it back on another connection.
    s.learn(a, &["sid-a"], t);
    assert_eq!(s.of(seen(3, &["sid-a"]), t), a);
    // B's request with a cookie no response set (it logged in before the
    // recording): its connection's session, then named by that cookie.
    assert_eq!(s.of(seen(2, &["old-b"]), t), b);
    assert_eq!(s.of(seen(4, &["old-b"]), t), b);
    // A third client on connection 2 after B has cookies: a new session.
    let c = s.of(seen(2, &["other"]), t);
    assert!(c != a && c != b);
    assert_eq!(s.count(), 3);
    // Forgotten after the idle time.
    let later = t + crate::session::IDLE + Duration::from_secs(61);
    assert_eq!(s.of(seen(9, &["sid-a"]), later), 4);
}

#[test]
fn a_session_header_names_the_session() {
    let mut s = Sessions::new();
    let t = Duration::ZERO;
    let seen = |connection, header| Seen {
        connection,
        header: Some(header),
        cookies: &[],
    };
    let a = s.of(seen(1, "user-1"), t);
    let b = s.of(seen(1, "user-2"), t);
    assert_ne!(a, b);
    assert_eq!(s.of(seen(7, "user-1"), t), a);
}

#[test]
fn responses_offer_json_leaves_links_inputs_and_locations_and_requests_take_them() {
    use crate::flows::{offers, words, Flows};
    use replay::recording::Rule;
    let json = |body: &str| {
        let mut h = http::HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        offers(&h, body.as_bytes())
    };
    let got = json(r#"{"items": [{"id": "f3a9c"}, {"id": 12345}], "next": "2", "ok": true}"#);
    assert_eq!(
        got,
        [
            ("f3a9c".to_string(), Rule::Json("$.items[0].id".into())),
            ("12345".to_string(), Rule::Json("$.items[1].id".into())),
            ("2".to_string(), Rule::Json("$.next".into())),
        ]
    );
    let mut h = http::HeaderMap::new();
    h.insert("content-type", "text/html".parse().unwrap());
    h.insert("location", "/orders/7f3a?x=1".parse().unwrap());
    let page = r#"<a href="/funds/ab">x</a><a href="/funds/f00d1"><input type="hidden" name="csrf" value="tok-123">"#;
    assert_eq!(
        offers(&h, page.as_bytes()),
        [
            ("7f3a".to_string(), Rule::Location),
            ("tok-123".to_string(), Rule::Input("csrf".into())),
            // The second link under /funds (the first's id is too short to
            // follow, but counts).
            (
                "f00d1".to_string(),
                Rule::Link {
                    parent: "/funds".into(),
                    nth: 1
                }
            ),
        ]
    );

    let mut flows = Flows::new();
    // A value the session had sent before it was offered came from
    // elsewhere: not followed.
    assert!(flows.request(1, &["12345"]).is_empty());
    flows.response(1, 7, got);
    let sent: Vec<&str> = words("/funds/f3a9c?ref=12345&page=2").collect();
    assert_eq!(sent, ["funds", "f3a9c", "ref=12345", "12345", "page=2"]);
    let found = flows.request(1, &sent);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!((found[0].value.as_str(), found[0].from), ("f3a9c", 7));
    // Another session's request does not take this one's values.
    assert!(flows.request(2, &["f3a9c"]).is_empty());
}

#[test]
fn multipart_fields_are_masked_by_name_even_in_a_cut_body() {
    let mut m = masker();
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nann\r\n--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--XyZ\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XyZ--\r\n";
    let kind = Some("multipart/form-data; boundary=\"XyZ\"");
    let masked = m.body(kind, body).unwrap();
    let expected = body
        .to_vec()
        .windows(7)
        .position(|w| w == b"hunter2")
        .unwrap();
    assert_eq!(&masked[..expected], &body[..expected]);
    assert!(masked.windows(12).any(|w| w == b"__masked_1__"));
    assert!(!masked.windows(7).any(|w| w == b"hunter2"));
    assert_eq!(masked.len(), body.len() - 7 + 12, "every other byte kept");
    // Cut at the cap inside the secret part: still masked.
    let cut = &body[..expected + 4];
    let masked = m.body(kind, cut).unwrap();
    assert!(!masked.windows(4).any(|w| w == b"hunt"));
    // No secret field: nothing to do.
    assert_eq!(m.body(kind, &body[..70]), None);
}

fn writer() -> crate::writer::Writer {
    crate::writer::Writer {
        masker: masker(),
        sessions: Sessions::new(),
        session_header: None,
        flows: crate::flows::Flows::new(),
        totals: Default::default(),
    }
}

/// An exchange of connection 1 as the proxy hands it over: a request
/// with a `kind` body, answered 200 with an HTML `response`.
fn raw(
    method: http::Method,
    path: &str,
    kind: &str,
    body: &str,
    response: &str,
) -> crate::writer::Raw {
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", kind.parse().unwrap());
    let mut response_headers = http::HeaderMap::new();
    response_headers.insert("content-type", "text/html".parse().unwrap());
    crate::writer::Raw {
        at: Duration::from_secs(1),
        connection: 1,
        client: std::net::Ipv4Addr::LOCALHOST.into(),
        method,
        path: path.into(),
        version: http::Version::HTTP_11,
        headers,
        body: body.as_bytes().to_vec(),
        body_size: body.len() as u64,
        status: 200,
        response_headers,
        response_size: response.len() as u64,
        response_body: response.as_bytes().to_vec(),
        ttfb: Duration::from_millis(1),
        duration: Duration::from_millis(2),
        error: None,
        upgraded: false,
    }
}

#[test]
fn values_sent_percent_encoded_in_a_form_are_followed_as_written() {
    use replay::recording::Rule;
    let mut writer = writer();
    // A Rails-like form: a CSRF token in base64 (its name says token, so it
    // is masked) and a state with a space and a slash, both sent back
    // form-encoded.
    let page = r#"<form><input type="hidden" name="authenticity_token" value="ab+c/d==xyz"><input type="hidden" name="state" value="step 2/3"></form>"#;
    let first = writer.exchange(raw(http::Method::GET, "/new", "text/plain", "", page));
    assert!(first.uses.is_empty());
    let form = "authenticity_token=ab%2Bc%2Fd%3D%3Dxyz&state=step+2%2F3&amount=25";
    let post = writer.exchange(raw(
        http::Method::POST,
        "/pledges?back=step%202%2F3",
        "application/x-www-form-urlencoded",
        form,
        "",
    ));
    let body = post.body.unwrap();
    assert!(!body.contains("ab%2Bc"), "the token is masked: {body}");
    let uses: Vec<(&str, u64, &Rule)> = post
        .uses
        .iter()
        .map(|u| (u.text.as_str(), u.from, &u.rule))
        .collect();
    // Each as it is written here (the masked one as its placeholder), so
    // a replay finds it and writes the replayed value escaped alike.
    assert_eq!(
        uses,
        [
            ("step%202%2F3", 1, &Rule::Input("state".into())),
            ("step+2%2F3", 1, &Rule::Input("state".into())),
            ("__masked_1__", 1, &Rule::Input("authenticity_token".into())),
        ],
        "{body}"
    );
    assert!(body.contains("state=step+2%2F3"), "{body}");
}

#[test]
fn a_batch_past_the_line_buffer_is_flushed_within_the_second() {
    // A batch that passes the writer's line buffer (1 MiB) is written out
    // at once, and still flushed within the second with the queue left
    // open, as any batch is.
    let dir = std::env::temp_dir().join(format!("throng-writer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("batch.rec.gz");
    let sink = crate::writer::Sink::Gzip(flate2::write::GzEncoder::new(
        std::io::BufWriter::new(std::fs::File::create(&path).unwrap()),
        flate2::Compression::fast(),
    ));
    let head = replay::recording::Head {
        schema: replay::recording::SCHEMA.into(),
        started: "2026-12-03T00:00:00Z".into(),
        upstream: "http://127.0.0.1:1".into(),
        body_cap: 65536,
        masked_headers: Vec::new(),
        masked_fields: Vec::new(),
        kept_fields: Vec::new(),
        masked_json: Vec::new(),
        session_header: None,
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(64);
    // One line over the buffer by itself: written at once, ending the
    // batch with nothing left over.
    let big = "x".repeat(1_200_000);
    tx.send(raw(http::Method::POST, "/upload", "text/plain", &big, ""))
        .unwrap();
    let shared = std::sync::Arc::new(crate::writer::Shared::default());
    let counters = shared.clone();
    let writer =
        std::thread::spawn(move || crate::writer::run(sink, &head, writer(), rx, &counters));
    std::thread::sleep(Duration::from_millis(2500));
    // What a reader gets of the stream so far (sync-flushed, no trailer).
    let file = std::fs::File::open(&path).unwrap();
    let lines =
        std::io::BufRead::lines(std::io::BufReader::new(flate2::read::GzDecoder::new(file)))
            .map_while(Result::ok)
            .count();
    assert_eq!(
        lines, 2,
        "the head and the exchange, on disk while the queue is open"
    );
    drop(tx);
    let totals = writer.join().unwrap().unwrap();
    assert_eq!(totals.exchanges, 1);
    let _ = std::fs::remove_dir_all(&dir);
}
