//! Unit tests: chunked decoding, cookies, redirects, and the scheduler
//! against simulated servers.

use crate::cookies::Jar;
use crate::h1::{BadChunk, Chunked};

#[test]
fn cookie_jar_sets_replaces_and_expires() {
    let mut jar = Jar::default();
    assert_eq!(jar.header(), None);
    jar.set("session=abc; Path=/; HttpOnly");
    jar.set("theme=dark");
    assert_eq!(jar.header(), Some("session=abc; theme=dark"));
    jar.set("session=def; Max-Age=3600");
    assert_eq!(jar.header(), Some("session=def; theme=dark"));
    jar.set("session=; Max-Age=0");
    assert_eq!(jar.header(), Some("theme=dark"));
    jar.set("garbage");
    assert_eq!(jar.header(), Some("theme=dark"));
    jar.clear();
    assert_eq!(jar.header(), None);
}

fn decode_in_pieces(input: &[u8], piece: usize) -> Result<(u64, usize), BadChunk> {
    let mut d = Chunked::default();
    let mut data = 0;
    let mut pos = 0;
    let mut body = Vec::new();
    while !d.done() && pos < input.len() {
        let end = (pos + piece).min(input.len());
        let (used, n) = d.feed(&input[pos..end], |b| body.extend_from_slice(b))?;
        data += n;
        pos += used;
    }
    if d.done() {
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
    }
    Ok((data, pos))
}

#[test]
fn chunked_bodies_decode_in_any_split() {
    let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
    for piece in 1..body.len() {
        assert_eq!(
            decode_in_pieces(body, piece),
            Ok((23, body.len() - 4)),
            "piece {piece}"
        );
    }
}

#[test]
fn chunked_framing_errors_are_caught() {
    assert_eq!(decode_in_pieces(b"zz\r\n", 64), Err(BadChunk));
    assert_eq!(decode_in_pieces(b"3\r\nabcX\r\n", 64), Err(BadChunk));
    assert_eq!(
        decode_in_pieces(b"ffffffffffffffffff\r\n", 64),
        Err(BadChunk)
    );
}

#[test]
fn a_redirect_leads_where_browsers_go() {
    use crate::redirect::{next, same_origin};
    use http::Method;
    let target = plan::Target::parse("http://127.0.0.1:8080/app").unwrap();
    let headers = crate::request::Headers::default();
    let req = crate::request::Parts {
        method: &Method::POST,
        scheme: "http",
        authority: "127.0.0.1:8080",
        path: b"/app/login?next=1",
        headers: &headers,
        agent: None,
        cookie: None,
        body: b"user=ann",
        length: true,
    };
    let from = req.url().unwrap();
    assert_eq!(from.as_str(), "http://127.0.0.1:8080/app/login?next=1");
    assert_eq!(req.body, b"user=ann");
    let hop = |status, method: &Method, location| {
        let h = next(&from, status, method, location).unwrap();
        (h.url.to_string(), h.method, h.keep_body)
    };
    // Relative locations resolve against the request's URL; fragments go.
    assert_eq!(
        hop(302, &Method::GET, "home#top"),
        ("http://127.0.0.1:8080/app/home".into(), Method::GET, false)
    );
    assert_eq!(
        hop(301, &Method::GET, "../x?y=1").0,
        "http://127.0.0.1:8080/x?y=1"
    );
    // A 303, and a 301 or 302 of a POST, become a GET without the body;
    // 307 and 308 keep both.
    assert_eq!(hop(303, &Method::PUT, "/done").1, Method::GET);
    assert_eq!(hop(303, &Method::HEAD, "/done").1, Method::HEAD);
    assert_eq!(hop(302, &Method::POST, "/done").1, Method::GET);
    assert_eq!(hop(301, &Method::DELETE, "/done").1, Method::DELETE);
    assert_eq!(
        hop(307, &Method::POST, "/again"),
        ("http://127.0.0.1:8080/again".into(), Method::POST, true)
    );
    assert!(hop(308, &Method::PUT, "/again").2);
    // The same origin is scheme, host and port.
    let url = |u: &str| url::Url::parse(u).unwrap();
    assert!(same_origin(&url("http://127.0.0.1:8080/z"), &target));
    assert!(!same_origin(&url("https://127.0.0.1:8080/z"), &target));
    assert!(!same_origin(&url("http://127.0.0.1:8081/z"), &target));
    assert!(!same_origin(&url("http://127.0.0.2:8080/z"), &target));
    assert!(
        crate::redirect::is_redirect(302)
            && !crate::redirect::is_redirect(304)
            && !crate::redirect::is_redirect(300)
    );
}

#[test]
fn a_redirect_reaches_only_the_hosts_it_may() {
    let target = plan::Target::parse("http://localhost:8080").unwrap();
    let redirects = plan::Redirects {
        max: 5,
        allowed_hosts: vec!["127.0.0.2".into()],
    };
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    let reach = crate::redirect::Reach::new(
        &redirects,
        &[(&target, ip)],
        &Default::default(),
        false,
        &[],
    )
    .unwrap();
    let url = |u: &str| url::Url::parse(u).unwrap();
    let dialer = reach.dialer(&url("http://LOCALHOST:9000/")).unwrap();
    assert_eq!(dialer.addr.to_string(), "127.0.0.1:9000");
    assert!(dialer.tls.is_none());
    let dialer = reach.dialer(&url("https://127.0.0.2/")).unwrap();
    assert_eq!(dialer.addr.to_string(), "127.0.0.2:443");
    assert!(dialer.tls.is_some());
    assert!(reach.dialer(&url("http://127.0.0.3/")).is_none());
    assert!(reach.dialer(&url("http://example.com/")).is_none());
    // Following none reaches nowhere, and resolves nothing.
    let none = plan::Redirects {
        max: 0,
        allowed_hosts: vec!["no.such.host.invalid".into()],
    };
    let reach =
        crate::redirect::Reach::new(&none, &[(&target, ip)], &Default::default(), false, &[])
            .unwrap();
    assert_eq!(reach.max, 0);
    assert!(reach.dialer(&url("http://localhost:8080/")).is_none());
}

mod sim {
    //! The real scheduler, driven by tokio's paused clock against simulated
    //! servers: exact, repeatable, and no sleeping.

    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    use plan::{parse_stages, Arrivals, Model, Profile, RequestSpec, Scenario};
    use stats::{ErrorKind, Phases, Stats};
    use tokio::sync::mpsc;
    use tokio::time::{sleep_until, Instant};

    use crate::error::Failure;
    use crate::h1::H1Request;
    use crate::request::Prepared;
    use crate::transport::{Connection, Connector, Response};
    use crate::worker::{run_worker, Arm, Control, WorkerConfig, WorkerOutput};

    /// How the simulated server behaves.
    #[derive(Clone, Copy)]
    enum Behaviour {
        /// Answers after `service`, but freezes for `stall` out of every
        /// `period` (answers queued during a freeze come out at its end).
        Stalling {
            service: Duration,
            stall: Duration,
            period: Duration,
        },
        /// Never answers.
        Silent,
        /// Answers with a status after `service`.
        Status { service: Duration, status: u16 },
        /// Answers 503 until `until` after the start, then 200, each after `service`.
        Recovering { service: Duration, until: Duration },
        /// Answers 200 at once to the first request on each connection;
        /// then the connection fails the next one at `stage`: it was
        /// found closed while idle (`None`), it was gone before the
        /// request left (`NotSent`), or it closed after taking the
        /// request (`Unanswered`, which the server counts as seen).
        OneThenClosed(Option<crate::error::Stage>),
    }

    struct Sim {
        start: Instant,
        behaviour: Behaviour,
        connects: Rc<Cell<u64>>,
        /// Requests that reached the simulated server.
        seen: Rc<Cell<u64>>,
    }

    struct SimConn {
        start: Instant,
        behaviour: Behaviour,
        used: u32,
        seen: Rc<Cell<u64>>,
    }

    impl Connector for Sim {
        type Conn = SimConn;
        async fn connect(
            &self,
            phases: &mut Phases,
            _: crate::net::Caller<'_>,
        ) -> Result<SimConn, Failure> {
            self.connects.set(self.connects.get() + 1);
            phases.connect = Some(Duration::ZERO);
            Ok(SimConn {
                start: self.start,
                behaviour: self.behaviour,
                used: 0,
                seen: self.seen.clone(),
            })
        }
    }

    impl Connection for SimConn {
        type Request = H1Request;

        async fn exchange(
            &mut self,
            _: &H1Request,
            _: &mut Phases,
            _: &mut crate::transport::Capture,
        ) -> Result<Response, Failure> {
            let now = Instant::now();
            self.used += 1;
            let fails = self.used > 1;
            if !matches!(
                self.behaviour,
                Behaviour::OneThenClosed(Some(crate::error::Stage::NotSent))
            ) || !fails
            {
                self.seen.set(self.seen.get() + 1);
            }
            match self.behaviour {
                Behaviour::Stalling {
                    service,
                    stall,
                    period,
                } => {
                    let t = now - self.start;
                    let into = Duration::from_nanos((t.as_nanos() % period.as_nanos()) as u64);
                    let ready = if into < stall {
                        now + (stall - into)
                    } else {
                        now
                    };
                    sleep_until(ready + service).await;
                    Ok(Response {
                        status: 200,
                        body_bytes: 0,
                    })
                }
                Behaviour::Silent => {
                    std::future::pending::<()>().await;
                    Err(Failure::new(ErrorKind::Reset))
                }
                Behaviour::Status { service, status } => {
                    sleep_until(now + service).await;
                    Ok(Response {
                        status,
                        body_bytes: 0,
                    })
                }
                Behaviour::Recovering { service, until } => {
                    sleep_until(now + service).await;
                    Ok(Response {
                        status: if now < self.start + until { 503 } else { 200 },
                        body_bytes: 0,
                    })
                }
                Behaviour::OneThenClosed(Some(stage)) if fails => {
                    Err(Failure::new(ErrorKind::Reset).at(stage))
                }
                Behaviour::OneThenClosed(_) => Ok(Response {
                    status: 200,
                    body_bytes: 0,
                }),
            }
        }
        fn reusable(&self) -> bool {
            true
        }
        fn closed_while_idle(&mut self) -> bool {
            matches!(self.behaviour, Behaviour::OneThenClosed(None)) && self.used > 0
        }
    }

    struct Setup {
        model: Model,
        behaviour: Behaviour,
        max_requests: Option<u64>,
        timeout: Duration,
        grace: Duration,
    }

    fn open(rate: Profile) -> Model {
        Model::Open {
            rate,
            arrivals: Arrivals::Uniform,
            max_in_flight: Some(100_000),
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    async fn run(setup: Setup) -> (WorkerOutput, u64) {
        let scenario = Scenario::single(&RequestSpec::get("http://127.0.0.1:1/").unwrap());
        run_scenario(setup, scenario).await
    }

    async fn run_scenario(setup: Setup, scenario: Scenario) -> (WorkerOutput, u64) {
        run_capped(setup, scenario, None).await
    }

    /// [`run_scenario`] under a `--max-rate` ceiling.
    async fn run_capped(
        setup: Setup,
        scenario: Scenario,
        max_rate: Option<f64>,
    ) -> (WorkerOutput, u64) {
        let (out, connects, _) = run_seen(setup, scenario, max_rate).await;
        (out, connects)
    }

    /// [`run_capped`], also returning the requests the server saw.
    async fn run_seen(
        setup: Setup,
        scenario: Scenario,
        max_rate: Option<f64>,
    ) -> (WorkerOutput, u64, u64) {
        let start = Instant::now() + ms(10);
        let connects = Rc::new(Cell::new(0));
        let seen = Rc::new(Cell::new(0));
        let sim = Sim {
            start,
            behaviour: setup.behaviour,
            connects: connects.clone(),
            seen: seen.clone(),
        };
        let cfg = WorkerConfig {
            index: 0,
            workers: 1,
            model: setup.model,
            max_requests: setup.max_requests,
            timeout: setup.timeout,
            grace: setup.grace,
            seed: 1,
            start,
            progress_every: secs(1),
            snapshot_every: None,
            max_rate,
            max_body: 0,
            precise: false,
            segment: plan::Segment::default(),
        };
        let prepared = Prepared::new(&scenario, &scenario.target);
        let (tx, _rx) = mpsc::unbounded_channel();
        let local = tokio::task::LocalSet::new();
        let arm = Arm {
            connector: sim,
            target: scenario.target.clone(),
            prepared,
            reach: Default::default(),
            live: None,
        };
        let out = local
            .run_until(run_worker(
                cfg,
                std::sync::Arc::new(scenario),
                vec![arm],
                Control::default(),
                tx,
                None,
            ))
            .await;
        (out, connects.get(), seen.get())
    }

    /// An A/B run against two simulated servers, 2 ms and 10 ms, in the
    /// open (`closed == false`) or the closed model.
    async fn run_ab(model: Model) -> WorkerOutput {
        let start = Instant::now() + ms(10);
        let scenario = std::sync::Arc::new(Scenario::single(
            &RequestSpec::get("http://127.0.0.1:1/").unwrap(),
        ));
        let prepared = Prepared::new(&scenario, &scenario.target);
        let arm = |service| Arm {
            connector: Sim {
                start,
                behaviour: Behaviour::Status {
                    service,
                    status: 200,
                },
                connects: Rc::new(Cell::new(0)),
                seen: Rc::new(Cell::new(0)),
            },
            target: scenario.target.clone(),
            prepared: prepared.clone(),
            reach: Default::default(),
            live: None,
        };
        let cfg = WorkerConfig {
            index: 0,
            workers: 1,
            model,
            max_requests: None,
            timeout: secs(30),
            grace: secs(5),
            seed: 1,
            start,
            progress_every: secs(1),
            snapshot_every: None,
            max_rate: None,
            max_body: 0,
            precise: false,
            segment: plan::Segment::default(),
        };
        let (tx, _rx) = mpsc::unbounded_channel();
        tokio::task::LocalSet::new()
            .run_until(run_worker(
                cfg,
                scenario.clone(),
                vec![arm(ms(2)), arm(ms(10))],
                Control::default(),
                tx,
                None,
            ))
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn ab_runs_send_each_session_to_one_arm_and_record_them_apart() {
        // Open model: 2,000 arrivals, each to an arm at random.
        let out = run_ab(open(Profile::constant(200.0, Some(secs(10))))).await;
        assert_eq!(out.other_arms.len(), 1);
        let (a, b) = (&out.stats, &out.other_arms[0]);
        assert_eq!(a.counts.requests + b.counts.requests, 2000);
        // Binomial(2000, 1/2): 1,000 ± 22 (sd); allow 4 sd.
        assert!(
            a.counts.requests.abs_diff(1000) < 90,
            "{}",
            a.counts.requests
        );
        // (tokio's timer rounds each sleep up to its next millisecond.)
        let (pa, pb) = (a.latency.summary().p50, b.latency.summary().p50);
        assert!(
            (2.0..3.1).contains(&pa) && (10.0..11.1).contains(&pb),
            "{pa} {pb}"
        );
        // Each arm's windows hold its own requests.
        let windowed = |s: &Stats| {
            s.endpoints[0]
                .windows
                .list
                .iter()
                .map(|w| w.requests)
                .sum::<u64>()
        };
        assert_eq!(windowed(a), a.counts.requests);
        assert_eq!(windowed(b), b.counts.requests);

        // Closed model: users alternate between arms, so 4 users are 2 + 2
        // and the faster arm sends 5x the requests.
        let out = run_ab(Model::Closed {
            vus: Profile::constant(4.0, Some(secs(10))),
            think: Duration::ZERO,
        })
        .await;
        let (a, b) = (&out.stats, &out.other_arms[0]);
        within(a.counts.requests as f64, 2.0 * 10_000.0 / 2.0, 0.01);
        within(b.counts.requests as f64, 2.0 * 10_000.0 / 10.0, 0.01);
    }

    fn stalling() -> Behaviour {
        Behaviour::Stalling {
            service: ms(1),
            stall: secs(1),
            period: secs(5),
        }
    }

    fn within(actual: f64, expected: f64, tolerance: f64) {
        assert!(
            (actual - expected).abs() <= expected * tolerance,
            "{actual} is not within {}% of {expected}",
            tolerance * 100.0
        );
    }

    /// p(q) for a server frozen S of every P seconds, under open load:
    /// S * (1 - (1 - q) * P / S) for q above 1 - S/P (plus the service time).
    fn stall_quantile_ms(q: f64) -> f64 {
        let (s, p) = (1000.0, 5000.0);
        s * (1.0 - (1.0 - q) * p / s) + 1.0
    }

    #[tokio::test(start_paused = true)]
    async fn open_model_latency_reflects_the_stall() {
        let (out, _) = run(Setup {
            model: open(Profile::constant(200.0, Some(secs(20)))),
            behaviour: stalling(),
            max_requests: None,
            timeout: secs(30),
            grace: secs(5),
        })
        .await;
        let s: &Stats = &out.stats;
        assert_eq!(s.counts.requests, 4000);
        assert_eq!(s.counts.dropped(), 0);
        let l = s.latency.summary();
        within(l.p99, stall_quantile_ms(0.99), 0.03);
        within(l.p90, stall_quantile_ms(0.90), 0.03);
        within(s.latency.quantile_ms(0.95), stall_quantile_ms(0.95), 0.03);
        within(l.max, 1001.0, 0.01);
        // Below the stall's share, requests see only the service time plus
        // the generator's lag: tokio's timer fires on whole milliseconds,
        // so an arrival due at x.5 ms goes out at x+1 ms.
        within(s.service.summary().p50, 1.0, 0.01);
        assert!(l.p50 >= 1.0 && l.p50 <= 2.0, "p50 {}", l.p50);
        assert!(s.lag.summary().max <= 1.0, "lag {}", s.lag.summary().max);
        assert_eq!(out.load_end, secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_stall_costs_a_few_connections_not_one_per_arrival() {
        // 10,000 arrivals/s against a target that answers in 1 ms but
        // freezes for 20 ms every half second: 200 arrivals come during
        // each freeze, and each used to start its own sender. Now each
        // waits a moment for a busy sender, and new ones start at most one
        // per SPAWN_GAP (on this paused clock, whose timers fire on whole
        // milliseconds, one per ms: about 20 per freeze). No arrival is
        // dropped, and every one is measured from its due time.
        let (out, connects) = run(Setup {
            model: open(Profile::constant(10_000.0, Some(secs(2)))),
            behaviour: Behaviour::Stalling {
                service: ms(1),
                stall: ms(20),
                period: ms(500),
            },
            max_requests: None,
            timeout: secs(30),
            grace: secs(5),
        })
        .await;
        let s: &Stats = &out.stats;
        assert_eq!(s.counts.requests, 20_000);
        assert_eq!(s.counts.dropped(), 0);
        assert!(connects < 120, "{connects} connections for 4 freezes");
        // Those due at a freeze's start wait for its end.
        assert!(s.latency.summary().max >= 20.0, "{:?}", s.latency.summary());
    }

    #[tokio::test(start_paused = true)]
    async fn a_three_hour_run_keeps_a_bounded_timeline() {
        // Three hours at 5/s on tokio's paused clock (it runs in well
        // under a second): the timeline coarsens past each hour and packs
        // every bucket the run has moved on from, and loses no request.
        let (out, _) = run(Setup {
            model: open(Profile::constant(5.0, Some(secs(3 * 3600)))),
            behaviour: Behaviour::Status {
                service: ms(3),
                status: 200,
            },
            max_requests: None,
            timeout: secs(30),
            grace: secs(5),
        })
        .await;
        let s: &Stats = &out.stats;
        assert_eq!(s.counts.requests, 54_000);
        assert_eq!(s.bucket_s, 4);
        assert_eq!(s.timeline.len(), 2700);
        assert!(s.timeline.len() <= stats::MAX_BUCKETS);
        assert!(s.timeline.iter().all(|b| b.counts.requests == 20));
        let open = s.timeline.iter().filter(|b| !b.latency.is_packed()).count();
        assert!(open <= stats::OPEN_BUCKETS + 1, "{open} buckets unpacked");
        assert_eq!(s.endpoints[0].seconds.len(), 2700);
    }

    /// Replays `n` requests 5 ms apart (200/s) against a stalling server,
    /// with this in-flight cap.
    async fn replay_stalled(n: u64, max_in_flight: usize) -> WorkerOutput {
        let start = Instant::now() + ms(10);
        let scenario = Scenario::single(&RequestSpec::get("http://127.0.0.1:1/").unwrap());
        let prepared = Prepared::new(&scenario, &scenario.target);
        let arm = Arm {
            connector: Sim {
                start,
                behaviour: stalling(),
                connects: Rc::new(Cell::new(0)),
                seen: Rc::new(Cell::new(0)),
            },
            target: scenario.target.clone(),
            prepared,
            reach: Default::default(),
            live: None,
        };
        let cfg = WorkerConfig {
            index: 0,
            workers: 1,
            model: Model::Open {
                rate: Profile::constant(200.0, Some(ms(n * 5))),
                arrivals: plan::Arrivals::Uniform,
                max_in_flight: Some(max_in_flight),
            },
            max_requests: None,
            timeout: secs(30),
            grace: secs(5),
            seed: 1,
            start,
            progress_every: secs(1),
            snapshot_every: None,
            max_rate: None,
            max_body: 0,
            precise: false,
            segment: plan::Segment::default(),
        };
        let (feed_tx, feed) = mpsc::channel(4);
        let requests: Vec<plan::ReplayRequest> = (0..n)
            .map(|i| plan::ReplayRequest {
                due: ms(i * 5),
                method: http::Method::GET,
                path: format!("/r/{i}"),
                user_agent: None,
                endpoint: 0,
                session: i,
                recorded: None,
            })
            .collect();
        feed_tx.send(requests).await.unwrap();
        drop(feed_tx);
        let (tx, _rx) = mpsc::unbounded_channel();
        tokio::task::LocalSet::new()
            .run_until(run_worker(
                cfg,
                std::sync::Arc::new(scenario),
                vec![arm],
                Control::default(),
                tx,
                Some(feed),
            ))
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn replayed_requests_are_measured_from_their_logged_times() {
        // The same load as open_model_latency_reflects_the_stall, from a
        // feed: the same latency, because each request's latency runs from
        // the time the log gives it, not from when it could be sent.
        let out = replay_stalled(4000, 100_000).await;
        let s = &out.stats;
        assert_eq!(s.counts.requests, 4000);
        let l = s.latency.summary();
        within(l.p99, stall_quantile_ms(0.99), 0.03);
        within(l.p90, stall_quantile_ms(0.90), 0.03);
        within(l.max, 1001.0, 0.01);
        assert_eq!(out.load_end, ms(3999 * 5));
        // With 10 in flight at most, the stall's requests are dropped,
        // counted under their endpoint, never silently skipped.
        let out = replay_stalled(4000, 10).await;
        let s = &out.stats;
        assert_eq!(s.counts.requests + s.counts.dropped(), 4000);
        assert!(s.counts.dropped() > 500, "{}", s.counts.dropped());
        assert_eq!(s.endpoints[0].counts.dropped(), s.counts.dropped());
    }

    #[tokio::test(start_paused = true)]
    async fn closed_model_shows_the_classic_under_reporting() {
        let (out, _) = run(Setup {
            model: Model::Closed {
                vus: Profile::constant(10.0, Some(secs(20))),
                think: Duration::ZERO,
            },
            behaviour: stalling(),
            max_requests: None,
            timeout: secs(30),
            grace: secs(5),
        })
        .await;
        let l = out.stats.latency.summary();
        // Each user waits out each stall once: the stall hides in p99.
        assert!(l.p99 < 2.0, "closed p99 {}", l.p99);
        assert!(l.max > 900.0, "closed max {}", l.max);
        // 10 users x 1 ms service x 16 s of unfrozen time.
        within(out.stats.counts.requests as f64, 160_000.0, 0.01);
    }

    #[tokio::test(start_paused = true)]
    async fn max_rate_holds_any_model_to_its_ceiling_and_shows_the_wait_as_lag() {
        // 10 users with no think time against a 1 ms server would send
        // 10,000 requests a second; under --max-rate 200 they send 200 a
        // second (plus the 10 ms burst the ceiling allows), and each
        // request waits its turn: the wait is lag, in the closed model too.
        let scenario = Scenario::single(&RequestSpec::get("http://127.0.0.1:1/").unwrap());
        let setup = Setup {
            model: Model::Closed {
                vus: Profile::constant(10.0, Some(secs(3))),
                think: Duration::ZERO,
            },
            behaviour: Behaviour::Status {
                service: ms(1),
                status: 200,
            },
            max_requests: None,
            timeout: secs(30),
            grace: secs(5),
        };
        let (out, _) = run_capped(setup, scenario.clone(), Some(200.0)).await;
        let s = &out.stats;
        let n = s.counts.requests;
        assert!((598..=612).contains(&n), "{n} requests in 3 s at 200/s");
        // 10 users share 200 sends a second: each waits ~50 ms per request.
        let lag = s.lag.summary();
        assert!((40.0..=51.0).contains(&lag.p50), "lag {lag:?}");
        // Latency still runs from when the user asked, wait included.
        assert!(s.latency.summary().p50 >= lag.p50);

        // The open model at 1,000/s for 1 s under 100/s: 100 sends in the
        // first second, then the rest wait their turns through the grace.
        let setup = Setup {
            model: open(Profile::constant(1000.0, Some(secs(1)))),
            behaviour: Behaviour::Status {
                service: ms(1),
                status: 200,
            },
            max_requests: None,
            timeout: secs(30),
            grace: secs(2),
        };
        let (out, _) = run_capped(setup, scenario, Some(100.0)).await;
        let s = &out.stats;
        // 3 s of sending (1 s of load, 2 s of grace) at 100/s; those still
        // waiting when the grace ran out are cancelled, never sent.
        let sent = s.counts.ok;
        assert!((298..=303).contains(&sent), "{sent} sent {:?}", s.counts);
        assert_eq!(s.counts.errors.get(ErrorKind::Cancelled), 1000 - sent);
    }

    /// One user sends 20 requests of `method` in a row on its keep-alive
    /// connection, whose server behaves as `behaviour`, under `resend`.
    /// Returns the totals and the requests the server saw.
    async fn one_user(
        method: http::Method,
        resend: plan::Resend,
        behaviour: Behaviour,
    ) -> (stats::Counts, u64) {
        let mut spec = RequestSpec::get("http://127.0.0.1:1/").unwrap();
        spec.name = format!("{method} /");
        spec.method = method;
        let mut scenario = Scenario::single(&spec);
        scenario.clients.resend = resend;
        let setup = Setup {
            model: Model::Closed {
                vus: Profile::constant(1.0, Some(secs(60))),
                think: Duration::ZERO,
            },
            behaviour,
            max_requests: Some(20),
            timeout: secs(5),
            grace: secs(5),
        };
        let (out, _, seen) = run_seen(setup, scenario, None).await;
        (out.stats.counts, seen)
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_closed_while_idle_is_replaced_and_nothing_fails() {
        use crate::error::Stage;
        use http::Method;
        use plan::Resend;
        // Found closed before writing, or gone as the write began: either
        // way nothing left, so any method goes on a new connection and no
        // request is a re-send or a failure.
        for stage in [None, Some(Stage::NotSent)] {
            for method in [Method::GET, Method::POST] {
                let (c, seen) = one_user(
                    method.clone(),
                    Resend::Never,
                    Behaviour::OneThenClosed(stage),
                )
                .await;
                let what = format!("{stage:?} {method}");
                assert_eq!((c.requests, c.ok, c.resent), (20, 20, 0), "{what}");
                assert_eq!(c.conns_closed_idle, 19, "{what}");
                assert_eq!(c.conns_opened, 20, "{what}");
                assert_eq!(seen, 20, "{what}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_request_is_resent_only_as_its_method_allows_and_counted() {
        use http::Method;
        use plan::Resend;
        let unanswered = Behaviour::OneThenClosed(Some(crate::error::Stage::Unanswered));
        // (method, policy, re-sent?)
        let cases = [
            (Method::GET, Resend::Safe, true),
            (Method::HEAD, Resend::Safe, true),
            (Method::GET, Resend::Never, false),
            (Method::POST, Resend::Safe, false),
            (Method::POST, Resend::Idempotent, false),
            (Method::PATCH, Resend::Idempotent, false),
            (Method::PUT, Resend::Safe, false),
            (Method::PUT, Resend::Idempotent, true),
            (Method::DELETE, Resend::Idempotent, true),
        ];
        for (method, policy, resent) in cases {
            let (c, seen) = one_user(method.clone(), policy, unanswered).await;
            let what = format!("{method} {policy:?}");
            // Every request counts once; the server saw each re-send too.
            assert_eq!(c.requests, 20, "{what}");
            assert_eq!(seen, c.requests + c.resent, "{what}");
            if resent {
                // The 2nd request on each connection goes again on the next.
                assert_eq!((c.ok, c.resent, c.failed()), (20, 19, 0), "{what}");
            } else {
                // It fails as a reset; the next request opens a connection.
                assert_eq!((c.ok, c.resent), (10, 0), "{what}");
                assert_eq!(c.errors.get(ErrorKind::Reset), 10, "{what}");
            }
            assert_eq!(c.conns_closed_idle, 0, "{what}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn open_model_rate_follows_stages_exactly() {
        let (out, connects) = run(Setup {
            model: open(parse_stages("100:2s,100:2s,0:2s").unwrap()),
            behaviour: Behaviour::Status {
                service: ms(5),
                status: 200,
            },
            max_requests: None,
            timeout: secs(30),
            grace: secs(5),
        })
        .await;
        let per_second: Vec<u64> = out
            .stats
            .timeline
            .iter()
            .map(|b| b.counts.requests)
            .collect();
        assert_eq!(per_second, vec![25, 75, 100, 100, 75, 25]);
        // Requests 10 ms apart at most take 5 ms each: one connection suffices.
        assert_eq!(connects, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn arrivals_over_the_in_flight_cap_are_dropped_not_skipped() {
        let (out, _) = run(Setup {
            model: Model::Open {
                rate: Profile::constant(100.0, Some(secs(1))),
                arrivals: Arrivals::Uniform,
                max_in_flight: Some(10),
            },
            behaviour: Behaviour::Silent,
            max_requests: None,
            timeout: secs(60),
            grace: ms(500),
        })
        .await;
        let c = out.stats.counts;
        assert_eq!(c.dropped(), 90);
        // The 10 in flight were abandoned when the grace period ran out.
        assert_eq!(c.errors.get(ErrorKind::Cancelled), 10);
        assert_eq!(c.requests, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_cap_reaches_a_slow_targets_need_within_its_first_sessions() {
        // 1000 arrivals a second at a target that answers in 50 ms: 50 in
        // flight. The default cap starts at 32, and is sized every 10 ms
        // until a session has finished, from a mean that the first
        // sessions set at once: it is enough from 50 ms on, so only the
        // arrivals due between 32 and 50 ms, which found 32 busy senders,
        // are dropped.
        let (out, connects) = run(Setup {
            model: Model::Open {
                rate: Profile::constant(1000.0, Some(secs(1))),
                arrivals: Arrivals::Uniform,
                max_in_flight: None,
            },
            behaviour: Behaviour::Status {
                service: ms(50),
                status: 200,
            },
            max_requests: None,
            timeout: secs(60),
            grace: secs(5),
        })
        .await;
        let c = out.stats.counts;
        assert_eq!((c.requests, c.dropped()), (982, 18));
        assert!(connects <= 60, "{connects} connections");
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_are_counted_as_timeouts() {
        let (out, _) = run(Setup {
            model: open(Profile::constant(10.0, Some(secs(1)))),
            behaviour: Behaviour::Silent,
            max_requests: None,
            timeout: ms(200),
            grace: secs(5),
        })
        .await;
        assert_eq!(out.stats.counts.errors.get(ErrorKind::Timeout), 10);
        assert_eq!(out.stats.latency.count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn closed_users_think_between_requests() {
        let (out, _) = run(Setup {
            model: Model::Closed {
                vus: Profile::constant(5.0, Some(secs(2))),
                think: ms(100),
            },
            behaviour: Behaviour::Status {
                service: Duration::ZERO,
                status: 503,
            },
            max_requests: None,
            timeout: secs(30),
            grace: secs(5),
        })
        .await;
        // 5 users, one request every 100 ms each, for 2 s.
        assert_eq!(out.stats.counts.requests, 100);
        assert_eq!(out.stats.counts.errors.get(ErrorKind::Http5xx), 100);
        assert_eq!(out.stats.endpoints[0].status.get(&503), Some(&100));
    }

    #[tokio::test(start_paused = true)]
    async fn closed_users_ramp_with_stages() {
        let (out, _) = run(Setup {
            model: Model::Closed {
                vus: parse_stages("10:1s,10:1s").unwrap(),
                think: ms(100),
            },
            behaviour: Behaviour::Status {
                service: Duration::ZERO,
                status: 200,
            },
            max_requests: None,
            timeout: secs(30),
            grace: secs(5),
        })
        .await;
        let per_second: Vec<u64> = out
            .stats
            .timeline
            .iter()
            .map(|b| b.counts.requests)
            .collect();
        // Ramping 0 -> 10 users averages ~5 users x 10 req/s; then 10 x 10.
        within(per_second[0] as f64, 50.0, 0.15);
        assert_eq!(per_second[1], 100);
    }

    #[tokio::test(start_paused = true)]
    async fn request_bound_stops_both_models_exactly() {
        let (out, _) = run(Setup {
            model: open(Profile::constant(1000.0, None)),
            behaviour: Behaviour::Status {
                service: ms(1),
                status: 200,
            },
            max_requests: Some(250),
            timeout: secs(30),
            grace: secs(5),
        })
        .await;
        assert_eq!(out.stats.counts.requests, 250);
        // The load lasted until the last arrival: 249.5 ms.
        assert_eq!(out.load_end, Duration::from_micros(249_500));
        let (out, _) = run(Setup {
            model: Model::Closed {
                vus: Profile::constant(7.0, None),
                think: Duration::ZERO,
            },
            behaviour: Behaviour::Status {
                service: ms(1),
                status: 200,
            },
            max_requests: Some(100),
            timeout: secs(30),
            grace: secs(5),
        })
        .await;
        assert_eq!(out.stats.counts.requests, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn open_sessions_on_new_senders_draw_their_own_random_numbers() {
        // Two flows of equal weight; each request takes 200 ms, so at
        // 100 sessions/s most arrivals start a new sender. Each session
        // must pick its flow with its own numbers: a new sender once
        // handed every session it carried the same sequence, so every
        // session took the same flow.
        let mut scenario = Scenario::single(&RequestSpec::get("http://127.0.0.1:1/a").unwrap());
        let mut b = scenario.flows[0].clone();
        b.steps[0].endpoint = 1;
        scenario.endpoints.push("GET /b".into());
        scenario.flows.push(b);
        let (out, _) = run_scenario(
            Setup {
                model: open(Profile::constant(100.0, Some(secs(2)))),
                behaviour: Behaviour::Status {
                    service: ms(200),
                    status: 200,
                },
                max_requests: None,
                timeout: secs(30),
                grace: secs(5),
            },
            scenario,
        )
        .await;
        let (a, b) = (
            out.stats.endpoints[0].counts.requests,
            out.stats.endpoints[1].counts.requests,
        );
        assert_eq!(a + b, 200);
        // Binomial(200, 0.5): sd 7; allow 4 sd.
        assert!((70..=130).contains(&a), "flow a {a}, flow b {b}");
    }

    #[tokio::test(start_paused = true)]
    async fn open_sessions_time_each_step_from_when_it_was_due() {
        // Two steps: think 100 ms after the first. 10 sessions/s for 1 s,
        // each request taking 10 ms.
        let mut scenario = Scenario::single(&RequestSpec::get("http://127.0.0.1:1/a").unwrap());
        let mut second = scenario.flows[0].steps[0].clone();
        second.endpoint = 1;
        scenario.endpoints.push("GET /b".into());
        scenario.flows[0].steps[0].think = plan::Think::Constant(ms(100));
        scenario.flows[0].steps.push(second);
        scenario.flows[0].body.push(plan::Node::Step(1));
        let (out, _) = run_scenario(
            Setup {
                model: open(Profile::constant(10.0, Some(secs(1)))),
                behaviour: Behaviour::Status {
                    service: ms(10),
                    status: 200,
                },
                max_requests: None,
                timeout: secs(30),
                grace: secs(5),
            },
            scenario,
        )
        .await;
        let (a, b) = (&out.stats.endpoints[0], &out.stats.endpoints[1]);
        // Every session finished, the last ones after the arrivals ended.
        assert_eq!((a.counts.requests, b.counts.requests), (10, 10));
        // The second step is due when its think time ends and is sent
        // then: its latency is its service time, with no lag.
        within(b.latency.summary().max, 10.0, 0.01);
        assert_eq!(out.stats.lag.count(), 20);
        // The last session's second step was due at 0.95 s + 10 ms + 100 ms.
        assert_eq!(out.stats.timeline.len(), 2);
        assert_eq!(out.stats.timeline[1].counts.requests, 1);
        assert_eq!(out.load_end, secs(1));
    }

    fn retrying(retry: plan::Retry) -> Scenario {
        let mut scenario = Scenario::single(&RequestSpec::get("http://127.0.0.1:1/").unwrap());
        scenario.flows[0].steps[0].retry = Some(retry);
        scenario
    }

    fn fixed(attempts: u32, pause: Duration) -> plan::Retry {
        plan::Retry {
            attempts,
            backoff: plan::Backoff::Fixed,
            base: pause,
            max: pause,
            jitter: plan::Jitter::None,
            ..plan::Retry::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_amplify_as_configured_and_latency_spans_every_attempt() {
        // A server that always fails: every logical request takes all 4
        // attempts, 3 pauses of 100 ms between them.
        let (out, _) = run_scenario(
            Setup {
                model: open(Profile::constant(10.0, Some(secs(10)))),
                behaviour: Behaviour::Status {
                    service: ms(5),
                    status: 503,
                },
                max_requests: None,
                timeout: secs(30),
                grace: secs(5),
            },
            retrying(fixed(4, ms(100))),
        )
        .await;
        let s = &out.stats;
        let r = s.retries.as_ref().unwrap();
        // Logical requests are what every other number counts.
        assert_eq!((s.counts.requests, r.logical), (100, 100));
        assert_eq!(s.counts.errors.get(ErrorKind::Http5xx), 100);
        assert_eq!(r.attempts, 400);
        assert_eq!(r.amplification(), 4.0);
        assert_eq!(r.retries.http_5xx, 300);
        assert_eq!(r.retries.total(), 300);
        assert_eq!(r.goodput, 0);
        // A user waited for all four attempts and three pauses.
        within(s.latency.summary().p50, 4.0 * 5.0 + 3.0 * 100.0, 0.01);
        assert_eq!(r.seconds.len(), 10);
        assert!(r.seconds.iter().all(|s| s == &[10, 40, 0, 30, 0, 0, 0]));

        // Retrying on timeouts only leaves 5xx alone.
        let mut policy = fixed(4, ms(100));
        policy.on = plan::RetryOn {
            timeout: true,
            ..plan::RetryOn::NONE
        };
        let (out, _) = run_scenario(
            Setup {
                model: open(Profile::constant(10.0, Some(secs(2)))),
                behaviour: Behaviour::Status {
                    service: ms(5),
                    status: 503,
                },
                max_requests: None,
                timeout: secs(30),
                grace: secs(5),
            },
            retrying(policy),
        )
        .await;
        assert_eq!(out.stats.retries.as_ref().unwrap().attempts, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_are_retried_and_counted_by_cause() {
        let (out, connects) = run_scenario(
            Setup {
                model: open(Profile::constant(2.0, Some(secs(5)))),
                behaviour: Behaviour::Silent,
                max_requests: None,
                timeout: ms(200),
                grace: secs(5),
            },
            retrying(fixed(3, ms(50))),
        )
        .await;
        let r = out.stats.retries.as_ref().unwrap();
        assert_eq!((r.logical, r.attempts, r.retries.timeout), (10, 30, 20));
        assert_eq!(out.stats.counts.errors.get(ErrorKind::Timeout), 10);
        // A timed-out connection is not reused: each attempt opens one.
        assert_eq!(connects, 30);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_budget_caps_retries_at_its_share_of_requests() {
        // Everything fails and each request may take 3 attempts, but the
        // budget allows retries of at most 10% of the requests of the last
        // 10 s: the run's 1,000 requests allow 100 retries, not 2,000.
        let mut policy = fixed(3, ms(10));
        policy.budget = Some(0.10);
        let (out, _) = run_scenario(
            Setup {
                model: open(Profile::constant(100.0, Some(secs(10)))),
                behaviour: Behaviour::Status {
                    service: ms(5),
                    status: 503,
                },
                max_requests: None,
                timeout: secs(30),
                grace: secs(5),
            },
            retrying(policy),
        )
        .await;
        let r = out.stats.retries.as_ref().unwrap();
        assert_eq!(r.logical, 1000);
        assert!((95..=100).contains(&r.retries.total()), "{r:?}");
        assert_eq!(r.attempts, 1000 + r.retries.total());
        // Every retry the policy wanted and the budget refused is counted.
        assert_eq!(
            r.retries.total() + r.budget_refused,
            1000 + r.retries.total()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn goodput_counts_successes_within_the_deadline() {
        // The server fails for the first 2 s. Retries 1 s apart (3
        // attempts) rescue the requests of the last second of the fault,
        // but those users have waited over a second: with a 500 ms
        // deadline they are successes without being goodput.
        let mut policy = fixed(3, secs(1));
        policy.deadline = Some(ms(500));
        let (out, _) = run_scenario(
            Setup {
                model: open(Profile::constant(10.0, Some(secs(4)))),
                behaviour: Behaviour::Recovering {
                    service: ms(5),
                    until: secs(2),
                },
                max_requests: None,
                timeout: secs(30),
                grace: secs(5),
            },
            retrying(policy),
        )
        .await;
        let r = out.stats.retries.as_ref().unwrap();
        assert_eq!(r.logical, 40);
        // Requests due in 0-1 s succeed at their third attempt, those due
        // in 1-2 s at their second, both too late; those due after 2 s at
        // their first.
        assert_eq!(out.stats.counts.ok, 40);
        assert_eq!(r.goodput, 20);
        assert_eq!(r.seconds[2], [10, 10, 10, 0, 0, 0, 0]);
        assert_eq!(r.seconds[1], [10, 20, 0, 10, 0, 0, 0]);
    }
}

mod in_flight {
    use std::time::Duration;

    use crate::worker::{Cap, InFlight, Pool, Ran, Seen};

    const IDLE: Ran = Ran {
        cpu: Duration::ZERO,
        waited: Duration::ZERO,
    };

    /// The worker's thread used `cpu` and waited `waited` for its core.
    fn ran(cpu: Duration, waited: Duration) -> Ran {
        Ran { cpu, waited }
    }

    /// The worker's thread used `used`, never waiting for its core.
    fn cpu(used: Duration) -> Ran {
        ran(used, Duration::ZERO)
    }

    /// `taken` arrivals so far, and `jobs` finished that held their
    /// senders `held` s in all.
    /// (When the last arrival was due is left unknown: the rate is then
    /// over the window.)
    fn seen(taken: u64, jobs: u64, held: f64) -> Seen {
        Seen {
            taken,
            due: Duration::ZERO,
            held,
            jobs,
        }
    }

    #[test]
    fn the_automatic_cap_follows_littles_law_within_its_bounds() {
        let ms = Duration::from_millis;
        // A set cap is what was set.
        let mut fixed = Cap::new(InFlight::Fixed(50));
        assert_eq!(fixed.at(ms(500), seen(10_000, 10_000, 1.0), || IDLE), 50);

        let mut cap = Cap::new(InFlight::Auto { ceiling: 1000 });
        // No arrival yet: the floor.
        assert_eq!(cap.at(ms(50), seen(0, 0, 0.0), || IDLE), 32);
        // 1000 arrivals in 100 ms (10,000/s), each job holding its sender
        // 5 ms: 50 in flight on average, 4 x 50 allowed.
        assert_eq!(cap.at(ms(150), seen(1000, 1000, 5.0), || IDLE), 200);
        // Not sized again within 100 ms.
        assert_eq!(cap.at(ms(200), seen(2000, 2000, 500.0), || IDLE), 200);
        // A fast target: 0.1 ms each, 4 x 1 = 4: the floor.
        assert_eq!(cap.at(ms(250), seen(2000, 2000, 5.1), || IDLE), 32);
        // A slow one: 1 s each at 10,000/s; the cap at most doubles from
        // one sizing to the next, up to the ceiling.
        let slow = [64, 128, 256, 512, 1000, 1000];
        for (i, want) in slow.into_iter().enumerate() {
            let i = i as u64 + 1;
            let at = ms(250 + 100 * i);
            let now = seen(2000 + 1000 * i, 2000 + 1000 * i, 5.1 + 1000.0 * i as f64);
            assert_eq!(cap.at(at, now, || IDLE), want, "sizing {i}");
        }
        // No job finished in a window: W stays as it was.
        assert_eq!(cap.at(ms(1000), seen(9000, 8000, 6005.1), || IDLE), 1000);
        // Many workers: a ceiling under the floor is the cap.
        let mut small = Cap::new(InFlight::Auto { ceiling: 8 });
        assert_eq!(small.at(ms(10), seen(0, 0, 0.0), || IDLE), 8);
        assert_eq!(small.at(ms(100), seen(1000, 1000, 1000.0), || IDLE), 8);
    }

    #[test]
    fn a_stall_of_the_machine_does_not_open_connections() {
        let ms = Duration::from_millis;
        let mut cap = Cap::new(InFlight::Auto { ceiling: 1000 });
        // 100,000 arrivals a second at a fast target, 0.1 ms each: 4 x 10,
        // but at least the arrivals of 0.5 ms.
        assert_eq!(cap.at(ms(10), seen(1000, 1000, 0.1), || IDLE), 50);
        assert_eq!(cap.at(ms(110), seen(11_000, 11_000, 1.1), || IDLE), 50);
        // Then the machine stalls for 20 ms: the 32 jobs in flight held
        // their senders 20 ms each, the window's 8,000 others 0.1 ms as
        // before. W over the window is 0.18 ms: 4 x 100,000/s x 0.18 ms.
        // (The mean over the last 64 jobs, sized just after the stall,
        // said 7.8 ms: the ceiling.)
        let stalled = seen(21_000, 19_032, 1.1 + 0.8 + 32.0 * 0.02);
        assert_eq!(cap.at(ms(210), stalled, || IDLE), 72);
        // A stall that fills a window (only the 32 finish, each held
        // 100 ms): at most double.
        let worse = seen(31_000, 19_064, 2.54 + 32.0 * 0.1);
        assert_eq!(cap.at(ms(310), worse, || IDLE), 144);
        // And down again as soon as it has passed.
        let after = seen(41_000, 29_064, 5.74 + 1.0);
        assert_eq!(cap.at(ms(410), after, || IDLE), 50);
        // While busy, the cap does not rise, but the floor rises with the
        // rate: 200,000/s.
        let faster = seen(61_000, 49_064, 6.74 + 2.0);
        assert_eq!(cap.at(ms(510), faster, || cpu(ms(510))), 100);
    }

    #[test]
    fn a_core_taken_by_another_process_counts_as_busy() {
        let ms = Duration::from_millis;
        let mut cap = Cap::new(InFlight::Auto { ceiling: 1000 });
        assert_eq!(cap.at(ms(10), seen(1000, 1000, 0.1), || IDLE), 50);
        // 100 ms in which another process had the core for 20 while the
        // thread was ready to run, and the thread used the other 78: busy
        // (78 of 80), though 78% of the window. The jobs held in the
        // stall make W 1 ms (4 x 100,000/s x 1 ms = 400): the cap does
        // not rise.
        let stalled = seen(11_000, 11_000, 0.1 + 10.0);
        assert_eq!(cap.at(ms(110), stalled, || ran(ms(78), ms(20))), 50);
        // The same window with the thread idle while it waited: not busy,
        // and the cap doubles towards 400.
        let mut idle = Cap::new(InFlight::Auto { ceiling: 1000 });
        assert_eq!(idle.at(ms(10), seen(1000, 1000, 0.1), || IDLE), 50);
        assert_eq!(idle.at(ms(110), stalled, || ran(ms(50), ms(20))), 100);
    }

    #[test]
    fn the_arrival_rate_is_over_the_arrivals_due_times() {
        let ms = Duration::from_millis;
        let mut cap = Cap::new(InFlight::Auto { ceiling: 1000 });
        // A worker that started 30 ms late takes 40 ms of arrivals at
        // 120,000/s in its first 10 ms; the first jobs took 1 ms (their
        // connections were being opened). λ is 120,000/s, not 480,000/s:
        // 4 x 120,000 x 1 ms = 480, where the window's rate said 1000.
        let late = Seen {
            taken: 4800,
            due: ms(40),
            held: 4.8,
            jobs: 4800,
        };
        assert_eq!(cap.at(ms(10), late, || IDLE), 480);
        // Then on time: the floor is the arrivals of 0.5 ms at 120,000/s.
        let on_time = Seen {
            taken: 4800 + 12_000,
            due: ms(140),
            held: 4.8 + 0.6,
            jobs: 4800 + 12_000,
        };
        assert_eq!(cap.at(ms(110), on_time, || IDLE), 60);
    }

    #[test]
    fn senders_over_a_fallen_cap_stop_as_they_finish() {
        let pool = Pool::default();
        pool.senders.set(100);
        // A set cap: no sender stops.
        assert!(!pool.retires());
        pool.cap.set(Some(98));
        assert!(pool.retires());
        assert!(pool.retires());
        assert!(!pool.retires());
        assert_eq!(pool.senders.get(), 98);
    }

    #[test]
    fn the_cap_does_not_rise_while_the_thread_is_busy() {
        let ms = Duration::from_millis;
        // Busy (95 of 100 ms): the cap may fall but not rise, since
        // sessions look slow because the generator is.
        let mut cap = Cap::new(InFlight::Auto { ceiling: 1000 });
        assert_eq!(cap.at(ms(100), seen(1000, 1000, 5.0), || cpu(ms(95))), 32);
        // Not busy: it rises (by half as much as Little's law says, since
        // it at most doubles).
        assert_eq!(cap.at(ms(200), seen(2000, 2000, 10.0), || cpu(ms(130))), 64);
        assert_eq!(cap.at(ms(300), seen(3000, 3000, 60.0), || cpu(ms(225))), 64);
        assert_eq!(cap.at(ms(400), seen(4000, 4000, 60.1), || cpu(ms(320))), 32);
    }

    #[test]
    fn the_cap_is_sized_every_10ms_until_a_job_has_finished() {
        let ms = Duration::from_millis;
        let mut cap = Cap::new(InFlight::Auto { ceiling: 1000 });
        // 8,000 arrivals a second at a 20 ms target: no job has finished
        // by 10 ms, so W is not known: the floor.
        assert_eq!(cap.at(ms(10), seen(80, 0, 0.0), || IDLE), 32);
        // The first ones finished by 25 ms: sized at once (4 x 8,000 x 20 ms).
        assert_eq!(cap.at(ms(25), seen(200, 10, 0.2), || IDLE), 640);
        // Then every 100 ms.
        assert_eq!(cap.at(ms(35), seen(280, 20, 0.8), || IDLE), 640);
        assert_eq!(cap.at(ms(125), seen(1000, 400, 16.0), || IDLE), 1000);
    }
}

#[test]
fn a_recorded_request_takes_its_sessions_values_each_written_as_its_place_wants() {
    use std::sync::Arc;
    let target = plan::Target::parse("http://127.0.0.1:8080/app").unwrap();
    let rec = plan::RecordedExchange {
        headers: vec![("x-csrf-token".into(), "old tok".into())],
        body: br#"{"fund":"f3a9","note":"old tok"}"#.to_vec(),
        body_kind: plan::BodyKind::Json,
        uses: vec![
            (0, "f3a9".into()),
            (1, "old tok".into()),
            (2, "unseen".into()),
        ],
        ..Default::default()
    };
    let req = plan::ReplayRequest {
        due: std::time::Duration::ZERO,
        method: http::Method::POST,
        path: "/funds/f3a9/back?from=f3a9".into(),
        user_agent: None,
        endpoint: 0,
        session: 1,
        recorded: Some(plan::Recorded(Arc::new(rec))),
    };
    let mut r = crate::request::Rendered::default();
    r.replay(&target, &req);
    let Some(plan::Recorded(rec)) = &req.recorded else {
        unreachable!()
    };
    // The replayed listing gave another id (with a character a path must
    // escape) and another token (with a quote a JSON string must escape).
    let values = |var: usize| match var {
        0 => Some("f/77".to_string()),
        1 => Some("new \"tok\"".to_string()),
        _ => None,
    };
    r.substitute(&target, rec, &values);
    let parts = r.replay_parts(&target, &req, Some("sid=abc"));
    assert_eq!(
        String::from_utf8_lossy(parts.path),
        "/app/funds/f%2F77/back?from=f%2F77"
    );
    assert_eq!(
        String::from_utf8_lossy(parts.body),
        r#"{"fund":"f/77","note":"new \"tok\""}"#
    );
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    assert_eq!(
        headers,
        [("x-csrf-token".to_string(), "new \"tok\"".to_string())]
    );
    assert_eq!(parts.cookie, Some("sid=abc"));
}
