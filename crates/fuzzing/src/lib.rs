//! What each fuzz target does with one input: read it as a user's file
//! would be read, and use whatever reads back, so that a panic anywhere
//! on the way is found. `fuzz/` (cargo-fuzz, nightly) calls these on
//! generated inputs; `tests/corpus.rs` calls them on every file of the
//! seed corpus (`fuzz/corpus/<target>/`), findings included, on stable, in
//! `cargo test`. Errors are the expected outcome of bad input; only
//! panics (and hangs) are findings.

use std::collections::BTreeMap;

/// What a target does with one input.
pub type Target = fn(&[u8]);

/// The targets, by the name of their corpus folder.
pub const TARGETS: [(&str, Target); 10] = [
    ("scenario_yaml", scenario_yaml),
    ("access_log", access_log),
    ("har", har),
    ("template", template),
    ("results_json", results_json),
    ("event_stream", event_stream),
    ("exposition", exposition),
    ("h1_response", h1_response),
    ("h2_frames", h2_frames),
    ("recording", recording),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A scenario file, compiled as `throng run` compiles it (no data files).
pub fn scenario_yaml(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let opts = scenario::Options {
        env: BTreeMap::from([("TOKEN".to_string(), "t".to_string())]),
        ..scenario::Options::default()
    };
    if let Err(d) = scenario::compile("fuzz.yaml", text, &opts) {
        // The message itself must render: it quotes the file.
        let _ = d.to_string();
    }
}

/// An access log, line by line, in each format (invalid UTF-8 is replaced,
/// as `throng replay` does), and replayed through the reorder window.
pub fn access_log(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let formats = [
        replay::LogFormat::Combined,
        replay::LogFormat::Common,
        replay::LogFormat::Json(replay::JsonFields::default()),
    ];
    for line in text.lines() {
        for f in &formats {
            if let Ok(r) = replay::parse_line(f, line) {
                let _ = replay::endpoint_path(&r.path);
            }
        }
    }
    // And replayed, lines in any time order: requests come out in time
    // order, each line's exactly `scale` times.
    for format in formats {
        let opts = replay::Options {
            scale: 2,
            reorder: std::time::Duration::from_secs(1),
            allow_writes: true,
            ..replay::Options::new(format)
        };
        let mut ex = replay::Expander::new(opts, Default::default());
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            ex.push(i as u64 + 1, line, &mut out);
        }
        ex.finish(&mut out);
        assert!(
            out.windows(2).all(|w| w[0].due <= w[1].due),
            "out of time order"
        );
        assert_eq!(out.len() as u64, ex.tally.logged * 2);
        assert!(ex.tally.out_of_order <= ex.tally.logged);
    }
}

/// A HAR recording, imported, and the scenario it gives compiled.
pub fn har(data: &[u8]) {
    let Some(text) = text(data) else { return };
    for no_assets in [false, true] {
        let opts = scenario::HarOptions {
            no_assets,
            name: None,
        };
        if let Ok(yaml) = scenario::import_har(text, &opts) {
            let _ = scenario::compile("imported.yaml", &yaml, &scenario::Options::default());
        }
    }
}

/// A request template, compiled and rendered in every context, and the
/// same text as an `if`/`while` condition, compiled and evaluated.
pub fn template(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let mut scope = plan::Scope::new(BTreeMap::from([("HOST".to_string(), "h".to_string())]));
    scope.declare("user");
    scope.declare("token");
    scope.declare_list_at("ids", 2);
    let vars = vec![Some("v \"&/".to_string()); scope.len()];
    let lists = vec![vec!["a".to_string()]; scope.len()];
    let mut rng = fastrand::Rng::with_seed(1);
    for context in [
        plan::Context::Raw,
        plan::Context::Url,
        plan::Context::Form,
        plan::Context::Json,
    ] {
        if let Ok(t) = plan::Template::compile_in(text, &scope, context) {
            let mut ctx = plan::RenderCtx {
                vars: &vars,
                vu: 3,
                iteration: 1,
                rng: &mut rng,
                now_ms: 1_764_000_000_000,
            };
            let _ = t.render_string(&mut ctx);
        }
    }
    if let Ok(cond) = plan::Cond::compile(text, &scope) {
        let _ = cond.holds(&plan::CondCtx {
            vars: &vars,
            lists: &lists,
            status: Some(200),
            checks: true,
        });
    }
}

/// A results file, read as `throng report`, `compare` and `merge` read
/// it, and every output made from it.
pub fn results_json(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let Ok(r) = report::Results::from_json(text) else {
        return;
    };
    let _ = report::summary(&r);
    let _ = report::html(&r);
    let _ = report::timeline_csv(&r);
    let _ = report::junit(&r);
    let _ = report::summary_markdown(&r);
    let _ = r.to_json();
}

/// A server-sent event stream, as a server would send it: the first byte
/// sets the size of the pieces the rest arrives in. The events must be
/// the same whatever the pieces (the stream read whole is the reference),
/// within the parser's bound, and the last event id must agree.
pub fn event_stream(data: &[u8]) {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    const MAX: usize = 256;
    let read = |pieces: usize| {
        let mut p = engine::sse::Parser::new(MAX);
        let mut events = Vec::new();
        let mut failed = false;
        for piece in body.chunks(pieces.max(1)) {
            let fed = p.feed(piece, &mut |e| {
                assert!(e.data.len() <= MAX, "an event over the bound");
                events.push((e.kind.to_string(), e.data.to_vec(), e.id.to_string()));
            });
            if fed.is_err() {
                failed = true;
                break;
            }
        }
        (events, failed, p.last_event_id().to_string(), p.retry())
    };
    let whole = read(body.len());
    let pieces = read(usize::from(step % 17) + 1);
    // A stream over the bound fails wherever it is cut; below it, the
    // pieces must not change what was read.
    assert_eq!(whole.1, pieces.1, "failed in one reading only");
    if !whole.1 {
        assert_eq!(whole, pieces, "the pieces changed the events");
    }
}

/// A metrics endpoint's answer (Prometheus text or OpenMetrics), parsed
/// as a scrape would be: every line is a sample, a comment, blank or
/// counted as bad, and each sample's family has a kind. Then read as a
/// run reads it (twice, so counters become rates and histograms
/// quantiles; the second half of the input as the second reading), and
/// the series and findings made of it; and as the `/proc` files a
/// watched process is read from.
pub fn exposition(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let e = observe::exposition::parse(&text);
    let lines = text.lines().count();
    assert!(
        e.samples.len() + e.bad_lines <= lines,
        "more results than lines"
    );
    for s in &e.samples {
        let _ = e.kind_of(&s.name);
        let _ = s.label("le");
    }
    let mut rec = observe::Recorder::new(50);
    let source = rec.source(observe::SourceKind::Scrape, "fuzz".into());
    let half = text.len() / 2;
    let second = text.get(half..).unwrap_or(&text);
    rec.scraped(source, 0.5, &text, |_| true);
    rec.scraped(source, 1.5, second, |_| true);
    rec.scraped(source, 2.5, &text, |_| true);
    let _ = rec.headline();
    let server = rec.finish(3, 1);
    for s in &server.series {
        assert_eq!(s.values.len(), 3);
        assert!(
            s.values.iter().flatten().all(|v| v.is_finite()),
            "{}",
            s.name
        );
    }
    let _ = server.limit_pairs();
    let signal = [Some(1.0), Some(5.0), Some(2.0)];
    let _ = analysis::server_side(
        &server,
        &analysis::Symptom {
            from: 1,
            signal: &signal,
            name: "the latency",
            sent: &[1.0, 2.0, 3.0],
            bucket_s: 1,
        },
    );
    let _ = observe::process::parse_stat(&text);
    let _ = observe::process::parse_state(&text);
    let _ = observe::process::parse_max_fds(&text);
    let _ = observe::process::parse_machine(&text);
    let mut reading = observe::process::Reading::default();
    observe::process::parse_status(&text, &mut reading);
}

/// An HTTP/1.1 response as a server might send it: the first byte sets
/// the size of the pieces its body arrives in; the head is parsed and its
/// framing read as throng reads a response's, and a chunked body decoded
/// whole and in pieces must agree.
pub fn h1_response(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    engine::fuzz_h1_response(rest, usize::from(step % 32) + 1);
}

/// What an HTTP/2 server sends on a connection (frames, header blocks
/// in HPACK): the first byte sets the size of the pieces it arrives in.
pub fn h2_frames(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    engine::fuzz_h2_frames(rest, usize::from(step % 64) + 1);
}

/// A recording as `throng replay` would read it (the first byte sets the
/// reader's buffer size, so lines cross buffer boundaries), and the same
/// bytes as a client's request would be masked by `throng record`: a
/// query, cookie, credential headers, a form body, a JSON body and a
/// multipart body.
pub fn recording(data: &[u8]) {
    let Some((&size, rest)) = data.split_first() else {
        return;
    };
    let input = std::io::BufReader::with_capacity(usize::from(size % 64) + 1, rest);
    if let Ok(mut reader) = replay::recording::Reader::open(input) {
        // As `throng replay` reads it: the flows learned, then each
        // exchange turned into a request, a placeholder filled.
        let exchanges: Vec<_> = reader.by_ref().take(1000).collect();
        let _ = (reader.damaged(), reader.truncated(), reader.end());
        let mut flows = replay::recorded::Flows::default();
        for e in &exchanges {
            flows.learn(e);
        }
        let secrets = std::collections::HashMap::from([(1, "secret".to_string())]);
        if let Ok(mut c) = replay::recorded::Converter::new(reader.head(), flows, secrets) {
            for e in exchanges {
                let _ = c.record(e);
            }
        }
    }
    let mut rules = record::Rules::default();
    let _ = rules.add_json("$..id");
    let mut masker = record::mask::Masker::new(rules);
    if let Some(text) = text(rest) {
        let _ = masker.path(text);
        for header in ["cookie", "set-cookie", "authorization", "x-api-token"] {
            let _ = masker.header(header, text);
        }
    }
    let _ = masker.body(Some("application/x-www-form-urlencoded"), rest);
    let _ = masker.body(Some("application/json"), rest);
    let _ = masker.body(Some("multipart/form-data; boundary=\"b\""), rest);
    // The same bytes as a response the recorder reads for values that
    // flow (a JSON answer, a page), and as a request's words.
    let mut flows = record::flows::Flows::new();
    for kind in ["application/json", "text/html"] {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(kind),
        );
        flows.response(1, 1, record::flows::offers(&headers, rest));
    }
    if let Some(text) = text(rest) {
        let decoded: Vec<String> = record::flows::words(text)
            .filter_map(record::flows::decoded)
            .collect();
        let words: Vec<&str> = record::flows::words(text)
            .chain(decoded.iter().map(String::as_str))
            .collect();
        let _ = flows.request(1, &words);
    }
}
