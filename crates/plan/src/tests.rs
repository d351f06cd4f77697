//! Unit tests: durations, stage interpolation, arrival pacing.

use std::time::Duration;

use expect_test::expect;

use crate::*;

mod flows;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

#[test]
fn durations_parse_and_explain_mistakes() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("250ms"), Ok(ms(250)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    expect![[r#"invalid duration "30": a unit is missing (write e.g. 500ms, 30s, 2m, 1h30m)"#]]
        .assert_eq(&parse_duration("30").unwrap_err().to_string());
    expect![[r#"invalid duration "3 days": unknown unit (write e.g. 500ms, 30s, 2m, 1h30m)"#]]
        .assert_eq(&parse_duration("3 days").unwrap_err().to_string());
}

#[test]
fn stages_interpolate_linearly_from_zero() {
    let p = parse_stages("0:10s,500:30s,500:60s,0:10s").unwrap();
    assert_eq!(p.duration(), Some(Duration::from_secs(110)));
    assert_eq!(p.value_at(ms(5_000)), 0.0);
    assert_eq!(p.value_at(ms(25_000)), 250.0); // halfway up the ramp
    assert_eq!(p.value_at(ms(40_000)), 500.0);
    assert_eq!(p.value_at(ms(105_000)), 250.0); // halfway down
    assert_eq!(p.value_at(ms(200_000)), 0.0); // after the end
    assert_eq!(p.peak(), 500.0);
    // Area: 0 + 30*250 + 60*500 + 10*250.
    assert_eq!(p.cumulative(ms(110_000)), 7_500.0 + 30_000.0 + 2_500.0);
}

#[test]
fn stage_mistakes_say_which_stage() {
    expect![[r#"invalid stages "0:10s,abc:30s": stage 2: "abc" is not a number (write TARGET:DURATION pairs, e.g. 0:10s,500:30s,500:1m,0:10s)"#]]
        .assert_eq(&parse_stages("0:10s,abc:30s").unwrap_err().to_string());
    expect![[r#"invalid stages "500": stage 1 ("500") has no ':' (write TARGET:DURATION pairs, e.g. 0:10s,500:30s,500:1m,0:10s)"#]]
        .assert_eq(&parse_stages("500").unwrap_err().to_string());
}

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

#[test]
fn shapes_build_jumps_spikes_and_a_daily_sine() {
    let p = Profile::from_shapes(&[
        Shape::Step {
            target: 20.0,
            duration: secs(10),
        },
        Shape::Spike {
            level: SpikeLevel::Times(10.0),
            duration: secs(5),
        },
        Shape::Ramp {
            target: 0.0,
            duration: secs(10),
        },
    ])
    .unwrap();
    assert_eq!(p.duration(), Some(secs(25)));
    // A step holds from its first instant; a spike is 10x the level before
    // it and falls straight back.
    assert_eq!(p.value_at(Duration::ZERO), 20.0);
    assert_eq!(p.value_at(ms(9_999)), 20.0);
    assert_eq!(p.value_at(secs(10)), 200.0);
    assert_eq!(p.value_at(ms(14_999)), 200.0);
    assert_eq!(p.value_at(secs(15)), 20.0);
    assert_eq!(p.value_at(secs(20)), 10.0);
    assert_eq!(p.peak(), 200.0);
    // Arrivals: 20/s for 10 s, 200/s for 5 s, then a ramp 20 -> 0 over 10 s.
    assert!((p.cumulative(secs(10)) - 200.0).abs() < 1e-6);
    assert!((p.cumulative(secs(15)) - 1200.0).abs() < 1e-6);
    assert!((p.cumulative(secs(25)) - 1300.0).abs() < 1e-6);
    let at = p.inverse_cumulative(700.0).unwrap();
    assert!((at.as_secs_f64() - 12.5).abs() < 1e-6, "{at:?}");

    let day = Duration::from_secs(24 * 3600);
    let sine = Profile::from_shapes(&[Shape::Sine {
        low: 20.0,
        high: 200.0,
        period: day,
        duration: day,
    }])
    .unwrap();
    assert_eq!(sine.value_at(Duration::ZERO), 20.0);
    assert!((sine.value_at(day / 4) - 110.0).abs() < 0.1);
    assert!((sine.value_at(day / 2) - 200.0).abs() < 0.1);
    assert!((sine.value_at(day * 3 / 4) - 110.0).abs() < 0.1);
    // A day's arrivals are the mean level times a day, whatever the pieces.
    let mean = sine.cumulative(day) / day.as_secs_f64();
    assert!((mean - 110.0).abs() < 0.1, "{mean}");
}

#[test]
fn shape_mistakes_say_which_stage() {
    let e = |shapes: &[Shape]| Profile::from_shapes(shapes).unwrap_err().to_string();
    expect!["stage 1: a spike by a factor needs a level before it (ramp or step up first, or give the spike's level as a number)"]
        .assert_eq(&e(&[Shape::Spike {
            level: SpikeLevel::Times(10.0),
            duration: secs(5),
        }]));
    expect!["stage 2: a sine needs 0 <= low <= high (write low: 20, high: 200)"].assert_eq(&e(&[
        Shape::Step {
            target: 1.0,
            duration: secs(1),
        },
        Shape::Sine {
            low: 9.0,
            high: 3.0,
            period: secs(60),
            duration: secs(60),
        },
    ]));
    expect!["stage 1: the duration must be more than 0"].assert_eq(&e(&[Shape::Step {
        target: 1.0,
        duration: Duration::ZERO,
    }]));
}

#[test]
fn each_shape_has_a_picture() {
    let sketch = |shapes: &[Shape]| Profile::from_shapes(shapes).unwrap().sketch(60, 6);
    let ramp = |target, s| Shape::Ramp {
        target,
        duration: secs(s),
    };
    let step = |target, s| Shape::Step {
        target,
        duration: secs(s),
    };
    expect![[r#"
        200 |                  #############################
            |               ##################################
            |           #########################################
            |        ##############################################
            |     ####################################################
            | ##########################################################
          0 +------------------------------------------------------------
             0s                                                     1m00s
    "#]]
    .assert_eq(&sketch(&[ramp(200.0, 20), ramp(200.0, 25), ramp(0.0, 15)]));
    expect![[r#"
        200 |                                        ####################
            |                    ########################################
            |                    ########################################
            |                    ########################################
            |############################################################
            |############################################################
          0 +------------------------------------------------------------
             0s                                                     1m00s
    "#]]
    .assert_eq(&sketch(&[step(50.0, 20), step(150.0, 20), step(200.0, 20)]));
    expect![[r#"
        200 |                    ##########
            |                    ##########
            |                    ##########
            |                    ##########
            |                    ##########
            |############################################################
          0 +------------------------------------------------------------
             0s                                                     1m00s
    "#]]
    .assert_eq(&sketch(&[
        step(20.0, 20),
        Shape::Spike {
            level: SpikeLevel::Times(10.0),
            duration: secs(10),
        },
        step(20.0, 30),
    ]));
    expect![[r#"
        200 |            ######                        ######
            |         ############                  ############
            |       ################              ################
            |      ##################            ##################
            |    ######################        ######################
            |############################################################
          0 +------------------------------------------------------------
             0s                                                     1m00s
    "#]]
    .assert_eq(&sketch(&[Shape::Sine {
        low: 20.0,
        high: 200.0,
        period: secs(30),
        duration: secs(60),
    }]));
}

#[test]
fn inverse_cumulative_inverts_cumulative() {
    let p = parse_stages("100:10s,400:5s,400:5s,0:10s").unwrap();
    let total = p.cumulative(ms(30_000));
    let mut x = 0.5;
    while x < total {
        let t = p.inverse_cumulative(x).unwrap();
        assert!((p.cumulative(t) - x).abs() < 1e-6, "x={x} t={t:?}");
        x += 37.3;
    }
    assert_eq!(p.inverse_cumulative(total + 1.0), None);
}

/// Counts arrivals per whole second of a schedule.
fn per_second(schedule: impl Iterator<Item = Duration>, secs: usize) -> Vec<u64> {
    let mut counts = vec![0u64; secs];
    for t in schedule {
        counts[t.as_secs() as usize] += 1;
    }
    counts
}

#[test]
fn uniform_rate_is_exact_per_second_and_evenly_spaced() {
    let p = Profile::constant(500.0, Some(Duration::from_secs(30)));
    let all: Vec<_> = ArrivalSchedule::new(p, Arrivals::Uniform, 0, 1, None, 1).collect();
    assert_eq!(all.len(), 15_000);
    assert_eq!(all[0], ms(1)); // the middle of the first 2 ms slot
    assert!(all
        .windows(2)
        .all(|w| (w[1] - w[0]).as_secs_f64() - 0.002 < 1e-9));
    let counts = per_second(all.into_iter(), 30);
    assert!(counts.iter().all(|&c| c == 500), "{counts:?}");
}

#[test]
fn workers_split_uniform_arrivals_into_exactly_the_whole() {
    let p = parse_stages("0:2s,300:4s,300:4s").unwrap();
    let whole: Vec<_> = ArrivalSchedule::new(p.clone(), Arrivals::Uniform, 0, 1, None, 7).collect();
    let mut union: Vec<_> = (0..3)
        .flat_map(|w| ArrivalSchedule::new(p.clone(), Arrivals::Uniform, w, 3, None, 7))
        .collect();
    union.sort();
    assert_eq!(union, whole);
    // Nothing is due during the zero stage; the ramp's count is its area.
    assert!(whole[0] >= Duration::from_secs(2));
    assert_eq!(whole.len(), 600 + 1200);
}

#[test]
fn stage_ramp_pacing_follows_the_rate() {
    let p = parse_stages("1000:10s").unwrap();
    let counts = per_second(
        ArrivalSchedule::new(p, Arrivals::Uniform, 0, 1, None, 1),
        10,
    );
    // Second k of a ramp 0->1000 over 10 s holds the area 100k + 50.
    let expected: Vec<u64> = (0..10).map(|k| 100 * k + 50).collect();
    assert_eq!(counts, expected);
}

#[test]
fn poisson_rate_matches_on_average_with_exponential_gaps() {
    let p = Profile::constant(1000.0, Some(Duration::from_secs(60)));
    let all: Vec<_> = ArrivalSchedule::new(p, Arrivals::Poisson, 0, 1, None, 42).collect();
    let n = all.len() as f64;
    // 60,000 expected; a Poisson count has sd ~245, allow 4 sd.
    assert!((n - 60_000.0).abs() < 1_000.0, "{n}");
    let gaps: Vec<f64> = all
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
    // Exponential: the standard deviation equals the mean.
    assert!((mean - 0.001).abs() < 0.00003, "{mean}");
    assert!(
        (var.sqrt() / mean - 1.0).abs() < 0.03,
        "{}",
        var.sqrt() / mean
    );
}

#[test]
fn request_bound_caps_the_schedule() {
    let p = Profile::constant(100.0, None);
    assert_eq!(
        ArrivalSchedule::new(p, Arrivals::Uniform, 0, 1, Some(250), 1).count(),
        250
    );
    assert_eq!(share(10, 3, 0) + share(10, 3, 1) + share(10, 3, 2), 10);
    assert_eq!(
        [share(10, 3, 0), share(10, 3, 1), share(10, 3, 2)],
        [4, 3, 3]
    );
}

#[test]
fn urls_resolve_to_host_port_and_name() {
    let r = RequestSpec::get("http://127.0.0.1:8080/api/items?page=2").unwrap();
    assert_eq!(
        (r.host.as_str(), r.port, r.name.as_str()),
        ("127.0.0.1", 8080, "GET /api/items")
    );
    assert_eq!(r.path_and_query, "/api/items?page=2");
    let r = RequestSpec::get("https://[::1]").unwrap();
    assert_eq!(
        (r.host.as_str(), r.port, r.path_and_query.as_str()),
        ("::1", 443, "/")
    );
    expect![[r#"invalid URL "127.0.0.1:8080": it needs a scheme, e.g. http://127.0.0.1:8080/"#]]
        .assert_eq(&RequestSpec::get("127.0.0.1:8080").unwrap_err().to_string());
    expect![[r#"invalid header "X-Foo": there is no ':' (write -H 'Name: value')"#]]
        .assert_eq(&r.with_header_line("X-Foo").unwrap_err().to_string());
}

#[test]
fn closed_model_uses_no_more_workers_than_users() {
    let plan = |model: Model, workers: usize| Plan {
        model,
        max_requests: Some(10),
        scenario: Scenario::single(&RequestSpec::get("http://127.0.0.1:1/").unwrap()),
        timeout: Duration::from_secs(1),
        grace: Duration::from_secs(1),
        workers,
        seed: 1,
        ab: Vec::new(),
        segment: Segment::default(),
        start_at: None,
        snapshot_every: None,
        max_rate: None,
        max_body: crate::DEFAULT_MAX_BODY,
        addrs: Vec::new(),
    };
    let closed = |vus: f64| Model::Closed {
        vus: Profile::constant(vus, None),
        think: Duration::ZERO,
    };
    assert_eq!(plan(closed(1.0), 2).worker_count(), 1);
    assert_eq!(plan(closed(50.0), 2).worker_count(), 2);
    assert_eq!(plan(closed(3.0), 8).worker_count(), 3);
    let open = Model::Open {
        rate: Profile::constant(1.0, None),
        arrivals: Arrivals::Uniform,
        max_in_flight: Some(10),
    };
    assert_eq!(plan(open, 4).worker_count(), 4);
}

fn render(t: &Template, vars: &[Option<String>]) -> String {
    let mut rng = fastrand::Rng::with_seed(3);
    let mut ctx = RenderCtx {
        vars,
        vu: 7,
        iteration: 2,
        rng: &mut rng,
        now_ms: 1_700_000_123_456,
    };
    t.render_string(&mut ctx)
}

#[test]
fn templates_compile_once_and_render_variables_env_and_builtins() {
    let mut scope = Scope::new([("API_KEY".to_string(), "k-123".to_string())].into());
    let token = scope.declare("token");
    let t = Template::compile(
        "/users/{{ vu }}/orders?i={{iteration}}&t={{ token }}&k={{ env.API_KEY }}",
        &scope,
    )
    .unwrap();
    let mut vars = vec![None; scope.len()];
    vars[token] = Some("abc".to_string());
    assert_eq!(render(&t, &vars), "/users/7/orders?i=2&t=abc&k=k-123");
    // An unset variable renders as nothing.
    assert_eq!(render(&t, &[None]), "/users/7/orders?i=2&t=&k=k-123");
    assert_eq!(
        Template::compile("/static", &scope).unwrap().as_static(),
        Some("/static")
    );
    let ts = Template::compile("{{ timestamp }} {{ timestamp_ms }}", &scope).unwrap();
    assert_eq!(render(&ts, &[]), "1700000123 1700000123456");
}

#[test]
fn random_builtins_stay_in_range() {
    let scope = Scope::default();
    let t = Template::compile("{{ random(1, 3) }}{{ choice(\"a\", \"b\") }}", &scope).unwrap();
    let mut rng = fastrand::Rng::with_seed(9);
    for _ in 0..200 {
        let s = t.render_string(&mut RenderCtx::anonymous(&mut rng));
        assert!(
            ["1a", "1b", "2a", "2b", "3a", "3b"].contains(&s.as_str()),
            "{s}"
        );
    }
    // Inside a JSON string the quotes arrive escaped.
    let j = Template::compile(r#"{"c":"{{ choice(\"red\", \"blue\") }}"}"#, &scope).unwrap();
    let mut ctx = RenderCtx {
        vars: &[],
        vu: 0,
        iteration: 0,
        rng: &mut rng,
        now_ms: 0,
    };
    let s = j.render_string(&mut ctx);
    assert!(s == r#"{"c":"red"}"# || s == r#"{"c":"blue"}"#, "{s}");
    let u = Template::compile("{{ uuid }}", &scope).unwrap();
    let mut ctx = RenderCtx {
        vars: &[],
        vu: 0,
        iteration: 0,
        rng: &mut rng,
        now_ms: 0,
    };
    let id = u.render_string(&mut ctx);
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "version 4: {id}");
    assert!("89ab".contains(&id[19..20]), "RFC 4122 variant: {id}");
}

#[test]
fn template_mistakes_point_at_the_problem() {
    let mut scope = Scope::default();
    scope.declare("token");
    let e = |s: &str| {
        let e = Template::compile(s, &scope).unwrap_err();
        format!(
            "@{} {} ({})",
            e.offset,
            e.message,
            e.hint.unwrap_or_default()
        )
    };
    expect![[r#"@12 unknown variable "tokn" (did you mean {{ token }}?)"#]]
        .assert_eq(&e("/orders?t={{tokn}}"));
    expect!["@3 '{{' is not closed (close it with '}}')"].assert_eq(&e("/a/{{ token"));
    expect!["@3 environment variable NOPE_NOT_SET is not set (set it before the run: NOPE_NOT_SET=... throng run ...)"]
        .assert_eq(&e("{{ env.NOPE_NOT_SET }}"));
    expect!["@3 bad random(5, 1) (write random(MIN, MAX) with whole numbers, MIN <= MAX)"]
        .assert_eq(&e("{{ random(5, 1) }}"));
    expect![[r#"@3 unknown variable "user" (variables defined before this point: token)"#]]
        .assert_eq(&e("{{ user }}"));
}

#[test]
fn think_times_follow_their_distributions() {
    let mut rng = fastrand::Rng::with_seed(11);
    let s = |t: &Think, rng: &mut fastrand::Rng| -> Vec<f64> {
        (0..20_000).map(|_| t.sample(rng).as_secs_f64()).collect()
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let exp = Think::Exponential {
        mean: Duration::from_secs(2),
    };
    assert!((mean(&s(&exp, &mut rng)) - 2.0).abs() < 0.08);
    let uni = Think::Uniform {
        min: Duration::from_secs(1),
        max: Duration::from_secs(3),
    };
    let v = s(&uni, &mut rng);
    assert!(v.iter().all(|x| (1.0..=3.0).contains(x)) && (mean(&v) - 2.0).abs() < 0.03);
    let logn = Think::LogNormal {
        median: Duration::from_secs(2),
        sigma: 0.8,
    };
    assert!((median(&mut s(&logn, &mut rng)) - 2.0).abs() < 0.08);
    let par = Think::Pareto {
        min: Duration::from_secs(1),
        alpha: 1.5,
    };
    let mut v = s(&par, &mut rng);
    assert!(v.iter().all(|&x| x >= 1.0));
    // Pareto median: min * 2^(1/alpha) = 1.587 s.
    assert!((median(&mut v) - 1.587).abs() < 0.05);
    assert_eq!(
        Think::Constant(Duration::from_millis(5)).sample(&mut rng),
        Duration::from_millis(5)
    );
    assert_eq!(exp.mean(), Duration::from_secs(2));
}

#[test]
fn flows_are_picked_by_weight() {
    let mut s = Scenario::single(&RequestSpec::get("http://127.0.0.1:1/").unwrap());
    let mut second = s.flows[0].clone();
    second.weight = 3.0;
    s.flows.push(second);
    // Weights 1 and 3: the first quarter of draws picks flow 0.
    assert_eq!(s.pick_flow(0.0), 0);
    assert_eq!(s.pick_flow(0.24), 0);
    assert_eq!(s.pick_flow(0.26), 1);
    assert_eq!(s.pick_flow(0.999), 1);
}

#[test]
fn command_line_load_overrides_the_file_level_as_a_whole() {
    let file = LoadSpec {
        vus: Some(20.0),
        duration: Some(Duration::from_secs(60)),
        think: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    // --rate replaces the users (and the file's iteration think then no longer applies).
    let cli = LoadSpec {
        rate: Some(50.0),
        ..Default::default()
    };
    let merged = file.clone().overridden_by(cli);
    assert_eq!(
        (merged.rate, merged.vus, merged.duration),
        (Some(50.0), None, Some(Duration::from_secs(60)))
    );
    expect!["think time between iterations applies to the closed model (vus); the open model sends on schedule"]
        .assert_eq(&merged.build().unwrap_err().to_string());
    // --duration keeps the file's users.
    let merged = file.overridden_by(LoadSpec {
        duration: Some(Duration::from_secs(5)),
        ..Default::default()
    });
    let (model, level) = merged.build().unwrap();
    assert_eq!(
        (model.name(), level, model.profile().duration()),
        ("closed", Some(20.0), Some(Duration::from_secs(5)))
    );
    // Nothing at all: 10 users for 10 s.
    let (model, level) = LoadSpec::default().build().unwrap();
    assert_eq!(
        (model.name(), level, model.profile().duration()),
        ("closed", Some(10.0), Some(Duration::from_secs(10)))
    );
}

mod checks {
    use std::time::Duration;

    use serde_json_path::JsonPath;

    use crate::*;

    fn view<'a>(status: u16, headers: &'a [(String, String)], body: &'a str) -> ResponseView<'a> {
        ResponseView {
            status,
            headers,
            body: body.as_bytes(),
            latency: Duration::from_millis(120),
        }
    }

    fn passes(kind: CheckKind, r: &ResponseView<'_>, vars: &[Option<String>]) -> bool {
        let check = Check {
            id: 0,
            kind,
            on_fail: OnFail::Continue,
            reads_back: false,
        };
        let mut rng = fastrand::Rng::with_seed(1);
        let mut ctx = RenderCtx {
            vars,
            vu: 0,
            iteration: 0,
            rng: &mut rng,
            now_ms: 0,
        };
        check.passes(r, &mut LazyJson::new(r.body), &mut ctx)
    }

    fn lit(s: &str) -> Template {
        Template::literal(s)
    }

    #[test]
    fn checks_test_what_users_see() {
        let headers = vec![("Cache-Control".to_string(), "max-age=60".to_string())];
        let ok = view(
            200,
            &headers,
            r#"{"user":{"id":42,"name":"Ada"},"items":[]}"#,
        );
        let oops = view(200, &headers, "<h1>An error has occurred</h1>");
        use CheckKind::*;
        assert!(passes(Status(vec![StatusMatch::Class(2)]), &ok, &[]));
        assert!(!passes(
            Status(vec![StatusMatch::Code(201), StatusMatch::Code(204)]),
            &ok,
            &[]
        ));
        assert!(passes(
            BodyNotContains(lit("An error has occurred")),
            &ok,
            &[]
        ));
        assert!(!passes(
            BodyNotContains(lit("An error has occurred")),
            &oops,
            &[]
        ));
        assert!(passes(BodyContains(lit("error")), &oops, &[]));
        assert!(passes(
            BodyMatches(regex::Regex::new(r"<h1>.*</h1>").unwrap()),
            &oops,
            &[]
        ));
        let path = |p: &str| JsonPath::parse(p).unwrap();
        assert!(passes(JsonExists(path("$.user.id")), &ok, &[]));
        assert!(!passes(JsonExists(path("$.user.email")), &ok, &[]));
        assert!(
            !passes(JsonExists(path("$.user")), &oops, &[]),
            "not JSON: nothing exists"
        );
        // Numbers compare as their JSON text, strings as their content.
        assert!(passes(JsonEquals(path("$.user.id"), lit("42")), &ok, &[]));
        assert!(passes(
            JsonEquals(path("$.user.name"), lit("Ada")),
            &ok,
            &[]
        ));
        assert!(passes(
            HeaderMatches(
                "cache-control".into(),
                regex::Regex::new(r"max-age=\d+").unwrap()
            ),
            &ok,
            &[]
        ));
        assert!(passes(
            HeaderEquals("CACHE-CONTROL".into(), lit("max-age=60")),
            &ok,
            &[]
        ));
        assert!(!passes(HeaderExists("Age".into()), &ok, &[]));
        assert!(passes(MaxLatency(Duration::from_millis(120)), &ok, &[]));
        assert!(!passes(MaxLatency(Duration::from_millis(119)), &ok, &[]));
    }

    #[test]
    fn read_your_writes_compares_with_a_variable() {
        // Written "blue" earlier in the flow; the read shows "green": stale.
        let mut scope = Scope::default();
        let written = scope.declare("written");
        let expected = Template::compile("{{ written }}", &scope).unwrap();
        let mut vars = vec![None; scope.len()];
        vars[written] = Some("blue".to_string());
        let path = JsonPath::parse("$.color").unwrap();
        let stale = view(200, &[], r#"{"color":"green"}"#);
        let fresh = view(200, &[], r#"{"color":"blue"}"#);
        assert!(!passes(
            CheckKind::JsonEquals(path.clone(), expected.clone()),
            &stale,
            &vars
        ));
        assert!(passes(CheckKind::JsonEquals(path, expected), &fresh, &vars));
    }

    #[test]
    fn extractors_take_values_from_every_part_of_a_response() {
        let headers = vec![
            ("ETag".to_string(), "\"v7\"".to_string()),
            (
                "Set-Cookie".to_string(),
                "session=s3cr3t; Path=/; HttpOnly".to_string(),
            ),
        ];
        let json = view(200, &headers, r#"{"token":"abc","order":{"id":17}}"#);
        let html = view(
            200,
            &headers,
            r#"<form><input name="csrf" value="x-9"><p class="t"> Hello </p></form>"#,
        );
        let get = |from: ExtractFrom, r: &ResponseView<'_>| {
            Extract {
                slot: 0,
                from,
                pick: PickFrom::First,
            }
            .value(r, &mut LazyJson::new(r.body))
        };
        assert_eq!(
            get(
                ExtractFrom::Json(JsonPath::parse("$.token").unwrap()),
                &json
            )
            .as_deref(),
            Some("abc")
        );
        assert_eq!(
            get(
                ExtractFrom::Json(JsonPath::parse("$.order.id").unwrap()),
                &json
            )
            .as_deref(),
            Some("17")
        );
        assert_eq!(
            get(ExtractFrom::Json(JsonPath::parse("$.nope").unwrap()), &json),
            None
        );
        let re = regex::Regex::new(r#""id":(\d+)"#).unwrap();
        assert_eq!(get(ExtractFrom::Regex(re, 1), &json).as_deref(), Some("17"));
        assert_eq!(
            get(ExtractFrom::Header("etag".into()), &json).as_deref(),
            Some("\"v7\"")
        );
        assert_eq!(
            get(ExtractFrom::Cookie("session".into()), &json).as_deref(),
            Some("s3cr3t")
        );
        let sel = |s: &str| Box::new(scraper::Selector::parse(s).unwrap());
        assert_eq!(
            get(
                ExtractFrom::Css(sel("input[name=csrf]"), Some("value".into())),
                &html
            )
            .as_deref(),
            Some("x-9")
        );
        assert_eq!(
            get(ExtractFrom::Css(sel("p.t"), None), &html).as_deref(),
            Some("Hello")
        );
    }
}

#[test]
fn unique_feeder_rows_are_split_between_workers_and_never_repeat() {
    let (columns, rows) =
        parse_csv(b"email,password\na@x,1\nb@x,2\nc@x,3\nd@x,4\ne@x,5\n").unwrap();
    assert_eq!(columns, ["email", "password"]);
    let feeder = Feeder {
        name: "users".into(),
        columns,
        rows,
        pick: Pick::Unique,
        slots: vec![0, 1],
    };
    let mut rng = fastrand::Rng::with_seed(1);
    let mut seen = Vec::new();
    for worker in 0..2 {
        let mut n = 0;
        while let Some(row) = feeder.row(worker, 2, n, &mut rng) {
            seen.push(row[0].clone());
            n += 1;
        }
    }
    seen.sort();
    assert_eq!(seen, ["a@x", "b@x", "c@x", "d@x", "e@x"]);
    // Sequential starts over; random stays in range.
    let seq = Feeder {
        pick: Pick::Sequential,
        ..feeder.clone()
    };
    assert_eq!(seq.row(0, 1, 6, &mut rng).unwrap()[0], "b@x");
    let random = Feeder {
        pick: Pick::Random,
        ..feeder
    };
    assert!((0..100).all(|n| random.row(0, 1, n, &mut rng).is_some()));
}

#[test]
fn data_files_report_their_line() {
    let e = parse_csv(b"a,b\n1,2\n3\n").unwrap_err();
    assert_eq!(e.line, Some(3));
    let (cols, rows) =
        parse_jsonl(b"{\"id\":1,\"name\":\"Ada\"}\n\n{\"id\":2,\"name\":null}\n").unwrap();
    assert_eq!(cols, ["id", "name"]);
    assert_eq!(
        rows,
        [
            vec!["1".to_string(), "Ada".to_string()],
            vec!["2".to_string(), String::new()]
        ]
    );
    let e = parse_jsonl(b"{\"id\":1}\n[1,2]\n").unwrap_err();
    assert_eq!(
        (e.line, e.message.as_str()),
        (Some(2), "each line must be a JSON object")
    );
}

#[test]
fn asset_paths_are_known_by_their_extension() {
    for yes in [
        "/static/app.css",
        "/a/b.JS?v=3",
        "/logo.svg#x",
        "/f/font.woff2",
    ] {
        assert!(looks_like_asset(yes), "{yes}");
    }
    for no in ["/", "/funds/1", "/css", "/app.css/edit", "/download.zip"] {
        assert!(!looks_like_asset(no), "{no}");
    }
}

#[test]
fn retry_pauses_back_off_and_jitter_as_named() {
    let r = Retry {
        base: ms(100),
        max: ms(1000),
        jitter: Jitter::None,
        ..Retry::default()
    };
    let pauses: Vec<u128> = (1..=6).map(|n| r.pause(n, 0.5).as_millis()).collect();
    assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
    // Full jitter: anywhere from 0 to the pause; equal: from half of it.
    let full = Retry {
        jitter: Jitter::Full,
        ..r
    };
    assert_eq!(full.pause(3, 0.0), Duration::ZERO);
    assert_eq!(full.pause(3, 0.25), ms(100));
    let equal = Retry {
        jitter: Jitter::Equal,
        ..r
    };
    assert_eq!(equal.pause(3, 0.0), ms(200));
    assert_eq!(equal.pause(3, 1.0), ms(400));
    let fixed = Retry {
        backoff: Backoff::Fixed,
        ..r
    };
    assert_eq!(fixed.pause(5, 0.5), ms(100));
    let none = Retry {
        backoff: Backoff::None,
        ..r
    };
    assert_eq!(none.pause(5, 0.5), Duration::ZERO);
    // Far-out retries saturate at max instead of overflowing.
    assert_eq!(r.pause(200, 0.5), ms(1000));
}

#[test]
fn a_retry_budget_counts_the_last_ten_seconds_only() {
    let mut b = RetryBudget::default();
    let at = |s: f64| Duration::from_secs_f64(s);
    // 100 requests in the first second allow 10 retries at 10%.
    for i in 0..100 {
        b.deposit(at(i as f64 / 100.0));
    }
    let allowed = (0..20).filter(|_| b.withdraw(at(0.99), 0.10)).count();
    assert_eq!(allowed, 10);
    // 9 s later those requests still count, and so do those retries.
    assert!(!b.withdraw(at(9.5), 0.10));
    // Once they are older than 10 s, a quiet spell banks nothing: one new
    // request allows no retry at 10%...
    b.deposit(at(10.5));
    assert!(!b.withdraw(at(10.5), 0.10));
    // ...but ten do.
    for _ in 0..9 {
        b.deposit(at(10.6));
    }
    assert!(b.withdraw(at(10.7), 0.10));
    assert!(!b.withdraw(at(10.7), 0.10));
    // A gap longer than the window clears it.
    assert!(!b.withdraw(at(100.0), 1.0));
}

#[test]
fn segments_parse_and_explain_their_mistakes() {
    assert_eq!(Segment::parse("3/8"), Ok(Segment { index: 3, count: 8 }));
    assert!(Segment::parse("0/1").unwrap().is_whole());
    expect!["segment 8/8 does not exist: K runs from 0 to 7 when N is 8 (segments count from 0, as a Kubernetes Indexed Job's completion index does)"]
        .assert_eq(&Segment::parse("8/8").unwrap_err());
    assert!(Segment::parse("3").unwrap_err().contains("write K/N"));
    assert!(Segment::parse("a/b").is_err());
    assert!(Segment::parse("0/0").is_err());
}

/// The due times of one segment's workers together, sorted.
fn segment_due_times(
    profile: &Profile,
    arrivals: Arrivals,
    seg: Segment,
    workers: usize,
) -> Vec<Duration> {
    let mut due: Vec<Duration> = (0..workers)
        .flat_map(|i| {
            let (index, all) = seg.worker(i, workers);
            ArrivalSchedule::new(profile.clone(), arrivals, index, all, None, 7)
        })
        .collect();
    due.sort();
    due
}

#[test]
fn segments_together_are_exactly_the_whole_schedule_whatever_their_workers() {
    // A ramp and a plateau: 0 to 300/s over 2 s, then 300/s for 1 s.
    let profile = parse_stages("300:2s,300:1s").unwrap();
    let whole = segment_due_times(&profile, Arrivals::Uniform, Segment::default(), 1);
    assert_eq!(whole.len(), 600);
    // Three segments on machines with 1, 2 and 4 workers.
    let mut union = Vec::new();
    for (index, workers) in [(0, 1), (1, 2), (2, 4)] {
        let part = segment_due_times(
            &profile,
            Arrivals::Uniform,
            Segment { index, count: 3 },
            workers,
        );
        // Each segment is a third, to the arrival.
        assert!(
            (199..=201).contains(&part.len()),
            "segment {index}: {}",
            part.len()
        );
        union.extend(part);
    }
    union.sort();
    assert_eq!(union, whole);
    // Poisson segments are independent processes at a third of the rate each.
    let n: usize = (0..3)
        .map(|index| {
            segment_due_times(&profile, Arrivals::Poisson, Segment { index, count: 3 }, 2).len()
        })
        .sum();
    assert!(
        (500..=700).contains(&n),
        "{n} Poisson arrivals for 600 planned"
    );
}

#[test]
fn segments_split_users_and_request_bounds_exactly() {
    for total in [0u64, 1, 7, 10, 1000] {
        let mut sum = 0;
        for (index, workers) in [(0, 3), (1, 1), (2, 2), (3, 5)] {
            let seg = Segment { index, count: 4 };
            sum += (0..workers)
                .map(|w| seg.share(total, w, workers))
                .sum::<u64>();
        }
        assert_eq!(sum, total);
    }
    // User numbers never collide: segment K's worker w numbers its i-th
    // user i * all + index.
    let mut vus = Vec::new();
    for (index, workers) in [(0, 2), (1, 3)] {
        let seg = Segment { index, count: 2 };
        for w in 0..workers {
            let (g, all) = seg.worker(w, workers);
            for i in 0..seg.share(10, w, workers) as usize {
                vus.push(i * all + g);
            }
        }
    }
    let n = vus.len();
    vus.sort();
    vus.dedup();
    assert_eq!((n, vus.len()), (10, 10));
}

#[test]
fn unique_rows_are_never_used_by_two_segments() {
    let rows: Vec<Vec<String>> = (0..23).map(|i| vec![i.to_string()]).collect();
    let feeder = Feeder {
        name: "users".into(),
        columns: vec!["id".into()],
        rows,
        pick: Pick::Unique,
        slots: vec![0],
    };
    let mut rng = fastrand::Rng::with_seed(1);
    let mut seen = Vec::new();
    for (index, workers) in [(0, 2), (1, 1), (2, 3)] {
        let seg = Segment { index, count: 3 };
        for w in 0..workers {
            let (g, all) = seg.worker(w, workers);
            let mut n = 0;
            while let Some(row) = feeder.row(g, all, n, &mut rng) {
                assert_eq!(
                    row[0].parse::<usize>().unwrap() % 3,
                    index,
                    "segment {index} took row {}",
                    row[0]
                );
                seen.push(row[0].parse::<usize>().unwrap());
                n += 1;
            }
        }
    }
    seen.sort();
    assert_eq!(seen, (0..23).collect::<Vec<_>>());
}

#[test]
fn a_templates_expressions_are_listed_without_its_text() {
    assert_eq!(
        crate::expressions("Bearer {{ env.TOKEN }}-{{token}} {{ broken"),
        ["env.TOKEN", "token"]
    );
    assert!(crate::expressions("Basic c2VjcmV0").is_empty());
}

#[test]
fn resend_policies_read_back_by_name_and_allow_what_they_say() {
    use crate::Resend;
    use http::Method;
    for (policy, name) in Resend::ALL {
        assert_eq!(Resend::named(name), Some(policy));
        assert_eq!(policy.as_str(), name);
    }
    assert_eq!(Resend::named("always"), None);
    assert_eq!(Resend::default(), Resend::Safe);
    let allowed = |p: Resend| {
        [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
            Method::POST,
            Method::PATCH,
        ]
        .into_iter()
        .filter(|m| p.allows(m))
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(" ")
    };
    assert_eq!(allowed(Resend::Never), "");
    assert_eq!(allowed(Resend::Safe), "GET HEAD OPTIONS");
    assert_eq!(allowed(Resend::Idempotent), "GET HEAD OPTIONS PUT DELETE");
}

#[test]
fn a_replayed_body_differs_in_size_when_empty_against_not_or_beyond_twice() {
    use crate::sizes_differ;
    assert!(!sizes_differ(0, 0));
    assert!(sizes_differ(0, 1) && sizes_differ(1, 0));
    assert!(!sizes_differ(1000, 2000) && !sizes_differ(2000, 1000));
    assert!(sizes_differ(1000, 2001) && sizes_differ(2001, 1000));
    assert!(
        !sizes_differ(995, 1005),
        "a page a few bytes longer is the same page"
    );
    assert!(!sizes_differ(u64::MAX, u64::MAX));
}
