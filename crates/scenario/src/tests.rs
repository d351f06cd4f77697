//! Tests: scenario text to plan, and bad text to the exact diagnostic.

use expect_test::{expect, Expect};

use crate::{compile, import_har, HarOptions, Options};

fn options() -> Options {
    Options {
        target: None,
        env: [("API_TOKEN".to_string(), "t0k3n".to_string())].into(),
        read_data: None,
    }
}

fn check(text: &str, expected: Expect) {
    let out = match compile("shop.yaml", text, &options()) {
        Ok(c) => c.describe(),
        Err(d) => format!("error: {d}\n"),
    };
    expected.assert_eq(&out);
}

#[test]
fn a_full_scenario_compiles_to_its_plan() {
    check(
        r#"
name: shop
target: http://127.0.0.1:8080/api/
defaults:
  headers:
    Accept: application/json
    Authorization: "Bearer {{ env.API_TOKEN }}"
  think: { lognormal: { median: 2s, sigma: 0.8 } }
load:
  rate: 20
  duration: 1m
flows:
  - name: browse
    weight: 3
    steps:
      - get: /
        name: home
      - get: /items/{{ random(1, 500) }}
        think: { uniform: [1s, 3s] }
  - name: buy
    steps:
      - post: /login
        form: { email: "user{{ vu }}@example.com", password: secret }
        think: 500ms
      - post: /orders
        query: { coupon: SAVE10 }
        json: { item: "{{ random(1, 500) }}", qty: 2 }
        timeout: 5s
"#,
        expect![[r#"
            scenario "shop" -> http://127.0.0.1:8080/api
              HTTP/1.1, cookies on
              flow "browse" weight 3
                GET / as "home", think lognormal median 2.00s sigma 0.8
                  Accept: application/json
                  Authorization: [redacted; uses {{ env.API_TOKEN }}]
                GET /items/{{ random(1, 500) }} as "GET /items/{{ random(1, 500) }}", think uniform 1.00s..3.00s
                  Accept: application/json
                  Authorization: [redacted; uses {{ env.API_TOKEN }}]
              flow "buy" weight 1
                POST /login as "POST /login", think 500.0ms
                  Accept: application/json
                  Authorization: [redacted; uses {{ env.API_TOKEN }}]
                  Content-Type: application/x-www-form-urlencoded
                  body: email=user{{ vu }}%40example.com&password=secret
                POST /orders?coupon=SAVE10 as "POST /orders", think lognormal median 2.00s sigma 0.8, timeout 5.00s
                  Accept: application/json
                  Authorization: [redacted; uses {{ env.API_TOKEN }}]
                  Content-Type: application/json
                  body: {"item":"{{ random(1, 500) }}","qty":2}
        "#]],
    );
}

#[test]
fn unknown_keys_suggest_the_nearest_one() {
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        thnk: 1s\n",
        expect![[r#"
            error: shop.yaml:5:9: unknown field `thnk`
              |
            5 |         thnk: 1s
              |         ^
              = hint: did you mean `think`?
        "#]],
    );
}

#[test]
fn an_unknown_key_far_from_any_lists_the_keys_and_nothing_else() {
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        zzzzqq: 1\n",
        expect![[r#"
            error: shop.yaml:5:9: unknown field `zzzzqq`
              |
            5 |         zzzzqq: 1
              |         ^
              = hint: valid keys here: get, post, put, patch, delete, head, name, headers, query, body, json, form, think, timeout, retry, checks, extract, on_missing, repeat, for_each, as, while, max, if, else, steps, random, page, assets, connections, together, cache, ws, session, subprotocols, queue, sse, events, for, reconnect
        "#]],
    );
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        checks:\n          - status: 200\n            qqqq: 1\n",
        expect![[r#"
            error: shop.yaml:7:13: unknown field `qqqq`
              |
            7 |             qqqq: 1
              |             ^
              = hint: valid keys here: name, on_fail, status, body_contains, body_not_contains, body_matches, json, header, max_latency
        "#]],
    );
}

#[test]
fn unknown_template_variables_are_caught_before_the_run() {
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: \"/orders/{{ order_id }}\"\n",
        expect![[r#"
            error: shop.yaml:4:26: unknown variable "order_id"
              |
            4 |       - get: "/orders/{{ order_id }}"
              |                          ^
              = hint: no variables are defined here (an earlier step's `extract` defines them); built-ins are vu, iteration, uuid, timestamp, timestamp_ms, random(MIN, MAX) and choice("a", "b")
        "#]],
    );
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        headers: { X-Key: \"{{ env.MISSING_KEY }}\" }\n",
        expect![[r#"
            error: shop.yaml:5:31: environment variable MISSING_KEY is not set
              |
            5 |         headers: { X-Key: "{{ env.MISSING_KEY }}" }
              |                               ^
              = hint: set it before the run: MISSING_KEY=... throng run ...
        "#]],
    );
}

#[test]
fn structural_mistakes_are_explained() {
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - name: home\n",
        expect![[r#"
            error: shop.yaml:4:9: the step has no request
              |
            4 |       - name: home
              |         ^
              = hint: start it with one of get, post, put, patch, delete, head, ws or sse, e.g. `- get: /`
        "#]],
    );
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        post: /x\n",
        expect![[r#"
            error: shop.yaml:5:15: a step sends one request: give only one of get, post, put, patch, delete, head, ws or sse
              |
            5 |         post: /x
              |               ^
        "#]],
    );
    check(
        "flows:\n  - steps:\n      - get: /\n",
        expect![[r#"
            error: shop.yaml:1:1: the scenario has no target
              |
            1 | flows:
              | ^
              = hint: add `target: http://host:port` or run with --target URL
        "#]],
    );
    check(
        "target: http://127.0.0.1:1\nload:\n  duration: 30\nflows:\n  - steps:\n      - get: items\n",
        expect![[r#"
            error: shop.yaml:6:14: a step's path starts with '/'
              |
            6 |       - get: items
              |              ^
              = hint: write /items
        "#]],
    );
    check(
        "target: http://127.0.0.1:1\nflows:\n  - weight: 0\n    steps:\n      - get: /\n",
        expect![[r#"
            error: shop.yaml:3:13: a flow's weight must be more than 0
              |
            3 |   - weight: 0
              |             ^
        "#]],
    );
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        think: { uniform: [1s, 3s], pareto: { min: 1s, alpha: 2 } }\n",
        expect![[r#"
            error: shop.yaml:5:16: a think time is a duration or exactly one distribution
              |
            5 |         think: { uniform: [1s, 3s], pareto: { min: 1s, alpha: 2 } }
              |                ^
              = hint: write e.g. `think: 2s`, `think: { uniform: [1s, 3s] }`, `{ exponential: 2s }`, `{ lognormal: { median: 2s, sigma: 0.8 } }` or `{ pareto: { min: 1s, alpha: 1.5 } }`
        "#]],
    );
}

#[test]
fn yaml_syntax_errors_have_positions() {
    check(
        "target: http://127.0.0.1:1\nflows: [\n",
        expect![[r#"
            error: shop.yaml:2:8: unclosed bracket '['
              |
            2 | flows: [
              |        ^
        "#]],
    );
}

#[test]
fn load_section_becomes_load_options() {
    let c = compile(
        "s.yaml",
        "target: http://127.0.0.1:1\nload:\n  vus: 5\n  stages: [ { target: 10, duration: 30s } ]\nflows:\n  - steps:\n      - get: /\n",
        &options(),
    )
    .unwrap();
    assert_eq!(c.load.vus, Some(5.0));
    assert_eq!(
        c.load.stages.as_ref().map(|s| s.duration()),
        Some(Some(std::time::Duration::from_secs(30)))
    );
    // Both a level and stages: the plan says why that cannot run.
    assert!(c
        .load
        .build()
        .unwrap_err()
        .to_string()
        .contains("stages set the level"));
    let c = compile(
        "s.yaml",
        "target: http://127.0.0.1:1\nload: { stages: \"0:5s,50:10s\", model: closed }\nflows:\n  - steps:\n      - get: /\n",
        &options(),
    )
    .unwrap();
    let (model, _) = c.load.build().unwrap();
    assert_eq!(model.name(), "closed");
}

#[test]
fn stages_can_be_steps_spikes_and_sines() {
    let load = |stages: &str| {
        compile(
            "s.yaml",
            &format!("target: http://127.0.0.1:1\nload:\n  stages:\n{stages}flows:\n  - steps:\n      - get: /\n"),
            &options(),
        )
        .map(|c| c.load.stages.expect("stages"))
    };
    let p = load(
        "    - { step: 20, duration: 10s }\n    - { spike: 10x, duration: 5s }\n    - { sine: { low: 20, high: 100, period: 20s }, duration: 20s }\n",
    )
    .unwrap();
    let at = |s: f64| p.value_at(std::time::Duration::from_secs_f64(s));
    assert_eq!((at(0.0), at(10.0), at(15.0)), (20.0, 200.0, 20.0));
    assert!((at(25.0) - 100.0).abs() < 0.1);
    assert_eq!(p.duration(), Some(std::time::Duration::from_secs(35)));
    let e = |stages: &str| load(stages).unwrap_err().to_string();
    expect![[r#"
        s.yaml:4:5: stage 1: each stage has exactly one of target (a ramp), step, spike or sine, with a duration
          |
        4 |     - { step: 20, target: 30, duration: 10s }
          |     ^"#]]
    .assert_eq(&e("    - { step: 20, target: 30, duration: 10s }\n"));
    expect![[r#"
        s.yaml:4:5: stage 2: spike "ten times" is not a level: write a factor such as 10x, or a number
          |
        4 |     - { step: 20, duration: 10s }
          |     ^"#]]
    .assert_eq(&e(
        "    - { step: 20, duration: 10s }\n    - { spike: ten times, duration: 5s }\n",
    ));
}

#[test]
fn retry_policies_are_inherited_and_replaced_whole() {
    let c = compile(
        "s.yaml",
        r#"
target: http://127.0.0.1:1
defaults:
  retry: { attempts: 4, budget: 10% }
flows:
  - name: a
    steps:
      - get: /inherits
      - get: /own
        retry: { backoff: fixed, base: 1s, jitter: none, on: [5xx], deadline: 3s }
      - get: /never
        retry: { attempts: 1 }
  - name: b
    retry: { attempts: 2, backoff: none, on: [timeout, reset] }
    steps:
      - get: /flow
"#,
        &options(),
    )
    .unwrap();
    let text = c.describe();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("retry") || l.contains(" GET "))
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect();
    expect![[r#"
            GET /inherits as "GET /inherits"
              retry: 4 attempts on 5xx/timeout/connect/reset, backoff 100.0ms doubling to 10.00s, full jitter, budget 10%
            GET /own as "GET /own"
              retry: 3 attempts on 5xx, every 1.00s, no jitter, no budget, deadline 3.00s
            GET /never as "GET /never"
            GET /flow as "GET /flow"
              retry: 2 attempts on timeout/reset, at once, no budget"#]].assert_eq(&lines.join("\n"));
    let e = |retry: &str| {
        compile(
            "s.yaml",
            &format!("target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        retry: {retry}\n"),
            &options(),
        )
        .unwrap_err()
        .to_string()
    };
    expect![[r#"
        s.yaml:5:16: retry budget "0.1" is not a percentage
          |
        5 |         retry: { budget: 0.1 }
          |                ^
          = hint: write e.g. budget: 10% (retries at most 10% of requests)"#]]
    .assert_eq(&e("{ budget: 0.1 }"));
    expect![[r#"
        s.yaml:5:16: attempts counts the first one too, so it is at least 1
          |
        5 |         retry: { attempts: 0 }
          |                ^
          = hint: attempts: 1 never retries; attempts: 3 retries twice"#]]
    .assert_eq(&e("{ attempts: 0 }"));
    expect![[r#"
        s.yaml:5:23: unknown variant `4xx`, expected one of 5xx, timeout, connect, reset
          |
        5 |         retry: { on: [4xx] }
          |                       ^"#]]
    .assert_eq(&e("{ on: [4xx] }"));
}

#[test]
fn recovery_checks_need_a_level_before_the_trigger() {
    let c = |recovery: &str| {
        compile(
            "s.yaml",
            &format!("target: http://127.0.0.1:1\nrecovery: {recovery}\nflows:\n  - steps:\n      - get: /\n"),
            &options(),
        )
    };
    let r = c("{ trigger: { from: 3s, to: 4s }, by: 5s }")
        .unwrap()
        .recovery
        .unwrap();
    assert_eq!(
        (r.from_s, r.to_s, r.within, r.by_s),
        (3.0, 4.0, 0.10, Some(5.0))
    );
    expect![[r#"
        s.yaml:2:11: the trigger window needs from >= 1s (a level before it to recover to) and to > from
          |
        2 | recovery: { trigger: { from: 0s, to: 4s } }
          |           ^
          = hint: e.g. trigger: { from: 10s, to: 15s }"#]]
    .assert_eq(&c("{ trigger: { from: 0s, to: 4s } }").unwrap_err().to_string());
    expect![[r#"
        s.yaml:2:11: within "100%" is not a percentage below 100%
          |
        2 | recovery: { trigger: { from: 3s, to: 4s }, within: 100% }
          |           ^
          = hint: write e.g. within: 10% (goodput back to at least 90% of its level)"#]]
    .assert_eq(
        &c("{ trigger: { from: 3s, to: 4s }, within: 100% }")
            .unwrap_err()
            .to_string(),
    );
}

#[test]
fn clients_compile_with_their_ranges_and_rates() {
    let c = |clients: &str| {
        compile(
            "s.yaml",
            &format!("target: http://127.0.0.1:1\nclients: {clients}\nflows:\n  - steps:\n      - get: /\n"),
            &options(),
        )
    };
    let ok = c("{ source_ips: \"127.0.0.2-127.0.0.200, 127.0.1.1\", connections: per_session, slow: { fraction: 10%, rate: 50KB/s }, user_agents: [ { value: a, weight: 3 }, { value: b } ] }").unwrap();
    let clients = &ok.scenario.clients;
    assert_eq!(clients.source_ips.len(), 200);
    assert_eq!(clients.source_ip(0).unwrap().to_string(), "127.0.0.2");
    assert_eq!(clients.source_ip(199).unwrap().to_string(), "127.0.1.1");
    assert_eq!(clients.source_ip(200), clients.source_ip(0));
    let slow = clients.slow.unwrap();
    assert_eq!((slow.fraction, slow.bytes_per_second), (0.10, 50_000));
    assert_eq!(clients.download_cap(0.05), Some(50_000));
    assert_eq!(clients.download_cap(0.5), None);
    assert_eq!(clients.pick_user_agent(0.7), Some(0));
    assert_eq!(clients.pick_user_agent(0.8), Some(1));
    let text = ok.describe();
    let line = text
        .lines()
        .find(|l| l.contains("clients:"))
        .unwrap()
        .trim();
    expect!["clients: from 200 source address(es) 127.0.0.2..127.0.1.1, a new connection per session, 10% slow at 50000 B/s, 2 user agents"]
        .assert_eq(line);
    let e = |clients: &str| c(clients).unwrap_err().to_string();
    expect![[r#"
        s.yaml:2:10: source_ips: "127.0.0.9-127.0.0.2": the range ends before it starts
          |
        2 | clients: { source_ips: 127.0.0.9-127.0.0.2 }
          |          ^"#]]
    .assert_eq(&e("{ source_ips: 127.0.0.9-127.0.0.2 }"));
    expect![[r#"
        s.yaml:2:10: slow.rate "fast" is not a rate
          |
        2 | clients: { slow: { fraction: 10%, rate: fast } }
          |          ^
          = hint: e.g. rate: 50KB/s (bytes per second; KB = 1000 bytes, also B/s, MB/s)"#]]
    .assert_eq(&e("{ slow: { fraction: 10%, rate: fast } }"));
}

#[test]
fn target_override_and_schema() {
    let opts = Options {
        target: Some("http://127.0.0.1:9/base".into()),
        ..options()
    };
    let c = compile(
        "s.yaml",
        "target: http://example.invalid\nflows:\n  - steps:\n      - get: /x\n",
        &opts,
    )
    .unwrap();
    assert_eq!(c.scenario.target.url(), "http://127.0.0.1:9/base");
    let schema = crate::json_schema();
    for key in [
        "\"flows\"",
        "\"thresholds\"",
        "\"lognormal\"",
        "\"max_in_flight\"",
        "\"query\"",
    ] {
        assert!(schema.contains(key), "schema lacks {key}");
    }
}

#[test]
fn checks_and_extracts_compile_with_their_scopes() {
    check(
        r#"
target: http://127.0.0.1:1
flows:
  - name: profile
    steps:
      - put: /profile
        json: { color: "{{ choice(\"red\", \"blue\") }}" }
        extract:
          written: { json: $.color }
          etag: { header: ETag }
      - get: /profile
        name: read back
        checks:
          - status: [200, 304]
          - json: { path: $.color, equals: "{{ written }}" }
            name: read your writes
            on_fail: stop_flow
          - body_not_contains: An error has occurred
          - header: { name: Cache-Control, matches: "max-age=\\d+" }
          - max_latency: 500ms
  - name: html
    steps:
      - get: /login
        extract:
          csrf: { css: "input[name=csrf]", attr: value }
          order: { regex: "order-(\\d+)" }
          session: { cookie: session }
      - post: /login
        form: { csrf: "{{ csrf }}" }
        checks: [ { status: 2xx } ]
"#,
        expect![[r#"
            scenario "shop.yaml" -> http://127.0.0.1:1
              HTTP/1.1, cookies on
              flow "profile" weight 1
                PUT /profile as "PUT /profile"
                  Content-Type: application/json
                  body: {"color":"{{ choice(\"red\", \"blue\") }}"}
                  extract written from json $.color
                  extract etag from header ETag
                GET /profile as "read back"
                  check "read back: status 200 or 304"
                  check "read your writes" (stops the flow)
                  check "read back: body does not contain \"An error has occurred\""
                  check "read back: header Cache-Control matches /max-age=\\d+/"
                  check "read back: latency <= 500.0ms"
              flow "html" weight 1
                GET /login as "GET /login"
                  extract csrf from css selector, attribute value
                  extract order from regex /order-(\d+)/ group 1
                  extract session from cookie session
                POST /login as "POST /login"
                  Content-Type: application/x-www-form-urlencoded
                  body: csrf={{ csrf }}
                  check "POST /login: status 2xx"
        "#]],
    );
}

#[test]
fn variables_are_visible_only_after_their_step_and_in_their_flow() {
    // Used in the step that extracts it: not yet defined.
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: \"/a/{{ token }}\"\n        extract: { token: { json: $.t } }\n",
        expect![[r#"
            error: shop.yaml:4:21: unknown variable "token"
              |
            4 |       - get: "/a/{{ token }}"
              |                     ^
              = hint: no variables are defined here (an earlier step's `extract` defines them); built-ins are vu, iteration, uuid, timestamp, timestamp_ms, random(MIN, MAX) and choice("a", "b")
        "#]],
    );
    // Extracted in another flow: not visible here.
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /a\n        extract: { token: { json: $.t } }\n  - steps:\n      - get: \"/b/{{ tokn }}\"\n",
        expect![[r#"
            error: shop.yaml:7:21: unknown variable "tokn"
              |
            7 |       - get: "/b/{{ tokn }}"
              |                     ^
              = hint: no variables are defined here (an earlier step's `extract` defines them); built-ins are vu, iteration, uuid, timestamp, timestamp_ms, random(MIN, MAX) and choice("a", "b")
        "#]],
    );
}

#[test]
fn bad_patterns_are_shown_with_their_problem() {
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        checks: [ { json: { path: \"user.id\", exists: true } } ]\n",
        expect![[r#"
            error: shop.yaml:5:19: invalid JSONPath "user.id": at position 0, parser error
              |
            5 |         checks: [ { json: { path: "user.id", exists: true } } ]
              |                   ^
              = hint: JSONPath (RFC 9535) starts at $, e.g. $.user.id or $.items[0].name
        "#]],
    );
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        checks:\n          - body_matches: \"fund-([0-9]+\"\n",
        expect![[r#"
            error: shop.yaml:6:13: invalid regular expression "fund-([0-9]+": unclosed group at character 6
              |
            6 |           - body_matches: "fund-([0-9]+"
              |             ^
        "#]],
    );
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        extract: { id: { regex: \"id=\\\\d+\" } }\n",
        expect![[r#"
            error: shop.yaml:5:24: the regex has 0 capture group(s); group 1 does not exist
              |
            5 |         extract: { id: { regex: "id=\\d+" } }
              |                        ^
              = hint: put the part to extract in parentheses, e.g. "order-(\d+)"
        "#]],
    );
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        checks: [ { status: 200, body_contains: ok } ]\n",
        expect![[r#"
            error: shop.yaml:5:19: a check tests one thing
              |
            5 |         checks: [ { status: 200, body_contains: ok } ]
              |                   ^
              = hint: give exactly one of status, body_contains, body_not_contains, body_matches, json, header or max_latency; write several checks for several things
        "#]],
    );
    check(
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /\n        checks: [ { status: 2xy } ]\n",
        expect![[r#"
            error: shop.yaml:5:19: "2xy" is not a status: write 200, "2xx" or a list
              |
            5 |         checks: [ { status: 2xy } ]
              |                   ^
        "#]],
    );
}

fn with_data(files: &[(&'static str, &'static str)]) -> Options {
    let files: std::collections::BTreeMap<&'static str, &'static str> =
        files.iter().copied().collect();
    Options {
        read_data: Some(std::sync::Arc::new(move |name: &str| {
            files
                .get(name)
                .map(|t| t.as_bytes().to_vec())
                .ok_or_else(|| "No such file or directory (os error 2)".to_string())
        })),
        ..options()
    }
}

#[test]
fn data_columns_become_variables_everywhere() {
    let opts = with_data(&[("users.csv", "email,password,token\na@x,1,t1\nb@x,2,t2\n")]);
    let text = "target: http://127.0.0.1:1\ndata:\n  users: { file: users.csv, pick: unique }\ndefaults:\n  headers: { Authorization: \"Bearer {{ users.token }}\" }\nflows:\n  - steps:\n      - post: /login\n        form: { email: \"{{ users.email }}\", password: \"{{ users.password }}\" }\n";
    let c = compile("shop.yaml", text, &opts).unwrap();
    let f = &c.scenario.feeders[0];
    assert_eq!(
        (f.name.as_str(), f.rows.len(), f.pick),
        ("users", 2, plan::Pick::Unique)
    );
    assert_eq!(
        c.var_names,
        ["users.email", "users.password", "users.token"]
    );
    let err = |files: &[(&'static str, &'static str)], text: &str| {
        compile("shop.yaml", text, &with_data(files))
            .unwrap_err()
            .to_string()
    };
    expect![[r#"
        shop.yaml:2:16: cannot read users.csv: No such file or directory (os error 2)
          |
        2 | data: { users: { file: users.csv } }
          |                ^"#]]
    .assert_eq(&err(&[], "target: http://127.0.0.1:1\ndata: { users: { file: users.csv } }\nflows: [ { steps: [ { get: / } ] } ]\n"));
    expect![[r#"
        shop.yaml:2:16: users.csv:3: CSV error: record 2 (line: 3, byte: 8): found record with 1 fields, but the previous record has 2 fields
          |
        2 | data: { users: { file: users.csv } }
          |                ^"#]]
    .assert_eq(&err(&[("users.csv", "a,b\n1,2\n3\n")], "target: http://127.0.0.1:1\ndata: { users: { file: users.csv } }\nflows: [ { steps: [ { get: / } ] } ]\n"));
    expect![[r#"
        shop.yaml:3:35: unknown variable "users.mail"
          |
        3 | flows: [ { steps: [ { get: "/u/{{ users.mail }}" } ] } ]
          |                                   ^
          = hint: did you mean {{ users.email }}?"#]]
    .assert_eq(&err(&[("users.csv", "email\na\n")], "target: http://127.0.0.1:1\ndata: { users: { file: users.csv } }\nflows: [ { steps: [ { get: \"/u/{{ users.mail }}\" } ] } ]\n"));
}

#[test]
fn a_recorded_session_imports_to_a_scenario_that_compiles() {
    let har = include_str!("../../../examples/recorded/shop.har");
    let yaml = import_har(har, &HarOptions::default()).unwrap();
    expect![[r##"
        # Imported by `throng import har`: 5 requests to http://127.0.0.1:8080.
        # 1 request(s) to https://cdn.example.net left out: a scenario has one target.
        # Think times are the recorded gaps. Rules marked "guessed" carry a value
        # from a response into a later request: check them before relying on them.
        # `throng validate FILE` shows what will run.
        name: "Fundfill"
        target: "http://127.0.0.1:8080"
        defaults:
          headers:
            User-Agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0"
        load:
          rate: 1
          duration: 1m
        flows:
          - name: "recorded"
            steps:
              - get: "/"
                name: "GET /"
                checks:
                  - status: "2xx"
                extract:
                  csrf: { css: "input[name=\"csrf\"]", attr: value }   # guessed
              - get: "/static/app.css"
                name: "GET /static/app.css"
                think: 2465ms
                checks:
                  - status: "2xx"
              - post: "/token"
                name: "POST /token"
                headers:
                  "Content-Type": "application/x-www-form-urlencoded"
                body: "email=ann%40example.com&password=secret&csrf={{ csrf }}"
                # guessed: {{ csrf }} is the form field "csrf" of step 1's response (recorded "c5f1a9e2b7")
                think: 1180ms
                checks:
                  - status: "2xx"
                extract:
                  token: { json: "$.token" }   # guessed
              - get: "/api"
                name: "GET /api"
                headers:
                  "Authorization": "Bearer {{ token }}"
                  "Accept": "application/json"
                # guessed: {{ token }} is $.token of the JSON body of step 3's response (recorded value not shown: it is a credential)
                think: 280ms
                checks:
                  - status: "2xx"
              - get: "/private?user=7"
                name: "GET /private"
                checks:
                  - status: "2xx"
    "##]].assert_eq(&yaml);
    // The imported file compiles, and the token flows from one step to the next.
    let c = compile("shop.yaml", &yaml, &options()).unwrap();
    let text = c.describe();
    assert!(text.contains("extract token from json $.token"), "{text}");
    assert!(
        text.contains("Authorization: [redacted; uses {{ token }}]"),
        "{text}"
    );
    // Without assets, the stylesheet is gone.
    let lean = import_har(
        har,
        &HarOptions {
            no_assets: true,
            ..HarOptions::default()
        },
    )
    .unwrap();
    assert!(!lean.contains("app.css"));
    assert!(lean.contains("# 1 static assets left out (--no-assets)."));
    expect!["not a HAR file: it has no log.entries"].assert_eq(
        &import_har("{}", &HarOptions::default())
            .unwrap_err()
            .to_string(),
    );
}

#[test]
fn recorded_redirect_chains_import_as_one_step_that_follows_them() {
    let har = include_str!("../fixtures/har/redirects.har");
    let yaml = import_har(har, &HarOptions::default()).unwrap();
    expect![[r##"
        # Imported by `throng import har`: 3 requests to http://127.0.0.1:8080.
        # 3 redirect hop(s) merged into the request that caused them: throng follows redirects.
        # Think times are the recorded gaps. Rules marked "guessed" carry a value
        # from a response into a later request: check them before relying on them.
        # `throng validate FILE` shows what will run.
        name: "Redirects"
        target: "http://127.0.0.1:8080"
        defaults:
          headers:
            User-Agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
        load:
          rate: 1
          duration: 1m
        flows:
          - name: "recorded"
            steps:
              - get: "/login"
                name: "GET /login"
                think: 2980ms
                checks:
                  - status: "2xx"
                extract:
                  csrf: { css: "input[name=\"csrf\"]", attr: value }   # guessed
              - post: "/login"
                name: "POST /login"
                headers:
                  "Content-Type": "application/x-www-form-urlencoded"
                body: "email=ann%40example.com&csrf={{ csrf }}"
                # guessed: {{ csrf }} is the form field "csrf" of step 1's response (recorded "f00dfeed42")
                think: 1950ms
                checks:
                  - status: "2xx"
              - get: "/old-page"
                name: "GET /old-page"
                checks:
                  - status: "2xx"
    "##]]
    .assert_eq(&yaml);
    // It compiles, and nothing in it is a `{{ location }}` path.
    assert!(!yaml.contains("location"), "{yaml}");
    compile("r.yaml", &yaml, &options()).unwrap();
}

#[test]
fn a_revalidated_page_is_imported_without_its_cache_conditions() {
    let har = include_str!("../fixtures/har/revalidated.har");
    let yaml = import_har(har, &HarOptions::default()).unwrap();
    // A replayed request without If-None-Match or If-Modified-Since gets the
    // page (200), which the 2xx check takes; with them it would be a 304.
    for condition in [
        "If-None-Match",
        "If-Modified-Since",
        "v1-5f2a",
        "2026 10:00:00",
    ] {
        assert!(!yaml.contains(condition), "{condition}: {yaml}");
    }
    assert_eq!(yaml.matches("status: \"2xx\"").count(), 2, "{yaml}");
    compile("r.yaml", &yaml, &options()).unwrap();
}

#[test]
fn a_har_with_a_byte_order_mark_imports() {
    let har = include_str!("../fixtures/har/bom.har");
    assert!(har.starts_with('\u{feff}'));
    let yaml = import_har(har, &HarOptions::default()).unwrap();
    assert!(yaml.contains("- get: \"/health\""), "{yaml}");
}

#[test]
fn a_recorded_credential_is_not_copied_into_the_imported_scenario() {
    let har = r#"{"log": {"entries": [{
        "startedDateTime": "2026-11-01T10:00:00.000Z", "time": 12,
        "request": {"method": "GET", "url": "http://127.0.0.1:8080/account",
            "headers": [{"name": "Authorization", "value": "Basic YW5uOmh1bnRlcjI="},
                        {"name": "Accept", "value": "text/html"}]},
        "response": {"status": 200, "headers": [], "content": {"text": "hi"}}
    }]}}"#;
    let yaml = import_har(har, &HarOptions::default()).unwrap();
    assert!(!yaml.contains("YW5uOmh1bnRlcjI="), "{yaml}");
    assert!(
        yaml.contains(
            r#""Authorization": "{{ env.HAR_AUTHORIZATION }}"   # set HAR_AUTHORIZATION"#
        ),
        "{yaml}"
    );
    let mut opts = options();
    opts.env
        .insert("HAR_AUTHORIZATION".into(), "Basic c2VjcmV0".into());
    let c = compile("shop.yaml", &yaml, &opts).unwrap();
    assert!(
        c.describe()
            .contains("Authorization: [redacted; uses {{ env.HAR_AUTHORIZATION }}]"),
        "{}",
        c.describe()
    );
}

#[test]
fn secret_headers_and_allowed_hosts_compile() {
    let text = r#"
target: http://127.0.0.1:8080
redirects: 3
allowed_hosts: [Login.Example.com, "127.0.0.2"]
flows:
  - steps:
      - get: /
        headers:
          X-Api-Key: { value: "k-{{ env.API_TOKEN }}", secret: true }
          X-Trace: { value: visible }
"#;
    let c = compile("shop.yaml", text, &options()).unwrap();
    let s = &c.scenario;
    assert_eq!(s.redirects.max, 3);
    assert_eq!(
        s.redirects.allowed_hosts,
        ["login.example.com", "127.0.0.2"]
    );
    assert!(s.redirects.allows("127.0.0.1", "LOGIN.example.com"));
    assert!(!s.redirects.allows("127.0.0.1", "evil.example.com"));
    assert!(s.is_secret_header("x-api-key") && s.is_secret_header("Cookie"));
    assert!(!s.is_secret_header("X-Trace"));
    let shown = c.describe();
    assert!(
        shown.contains("X-Api-Key: [redacted; uses {{ env.API_TOKEN }}]")
            && shown.contains("X-Trace: visible")
            && !shown.contains("t0k3n"),
        "{shown}"
    );
    check(
        "target: http://127.0.0.1:8080\nallowed_hosts: [\"https://cdn.example.com/\"]\nflows:\n  - steps: [ { get: / } ]\n",
        expect![[r#"
            error: shop.yaml:2:17: "https://cdn.example.com/" is not a host name
              |
            2 | allowed_hosts: ["https://cdn.example.com/"]
              |                 ^
              = hint: write the host alone, e.g. login.example.com (any port is allowed)
        "#]],
    );
}

#[test]
fn blocks_compile_to_a_tree_around_the_flows_requests() {
    check(
        r#"
target: http://127.0.0.1:1
flows:
  - steps:
      - get: /funds
        extract:
          ids: { json: "$.items[*].id", pick: all }
          fund: { json: "$.items[*].id", pick: random }
      - repeat: 2..5
        steps:
          - get: "/funds?page={{ loop.index }}"
            name: page
      - for_each: ids
        as: id
        max: 3
        steps:
          - get: "/funds/{{ id }}"
            name: fund
            extract: { next: { css: "a[rel=next]", attr: href } }
          - repeat: 2
            steps: [ { get: "/inner/{{ loop.index }}", name: inner } ]
      - while: "next and loop.index < 5"
        steps:
          - get: "/news?after={{ next }}"
            name: news
            extract: { next: { css: "a[rel=next]", attr: href } }
      - if: "status == 200 and checks"
        steps: [ { post: /cart, extract: { cart: { json: $.id } } } ]
        else: [ { get: /help } ]
      - get: "/cart/{{ cart }}"
        on_missing: skip
      - random:
          - weight: 3
            steps: [ { get: /browse } ]
          - steps: [ { get: "/search?q={{ fund }}" } ]
"#,
        expect![[r#"
            scenario "shop.yaml" -> http://127.0.0.1:1
              HTTP/1.1, cookies on
              flow "flow 1" weight 1
                GET /funds as "GET /funds"
                  extract ids from json $.items[*].id, every match (a list)
                  extract fund from json $.items[*].id, one at random
                repeat 2 to 5 times:
                  GET /funds?page={{ loop.index }} as "page"
                for each id of ids (at most 3):
                  GET /funds/{{ id }} as "fund"
                    extract next from css selector, attribute href
                  repeat 2 times:
                    GET /inner/{{ loop.index }} as "inner"
                while next and loop.index < 5 (at most 100):
                  GET /news?after={{ next }} as "news"
                    extract next from css selector, attribute href
                if status == 200 and checks:
                  POST /cart as "POST /cart"
                    extract cart from json $.id
                else:
                  GET /help as "GET /help"
                GET /cart/{{ cart }} as "GET /cart/{{ cart }}", skipped without its variables
                at random, 75%:
                  GET /browse as "GET /browse"
                or, 25%:
                  GET /search?q={{ fund }} as "GET /search"
        "#]],
    );
}

#[test]
fn block_mistakes_are_explained_where_they_are() {
    let head = "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /a\n        extract: { ids: { json: \"$.i[*]\", pick: all }, one: { json: $.i } }\n";
    let cases = [
        "      - repeat: 2\n        get: /b\n",
        "      - repeat: 2\n        while: ids\n        steps: [ { get: /b } ]\n",
        "      - repeat: 5..2\n        steps: [ { get: /b } ]\n",
        "      - repeat: lots\n        steps: [ { get: /b } ]\n",
        "      - repeat: 3\n",
        "      - for_each: one\n        as: x\n        steps: [ { get: /b } ]\n",
        "      - for_each: idz\n        as: x\n        steps: [ { get: /b } ]\n",
        "      - for_each: ids\n        steps: [ { get: /b } ]\n",
        "      - while: \"status == 200 and ide\"\n        steps: [ { get: /b } ]\n",
        "      - if: ids\n        max: 3\n        steps: [ { get: /b } ]\n",
        "      - get: /b\n        else: [ { get: /c } ]\n",
        "      - get: \"/b/{{ ids }}\"\n",
        "      - for_each: ids\n        as: x\n        steps: [ { get: /b } ]\n      - get: \"/c/{{ x }}\"\n",
        "      - random: []\n",
    ];
    let out: Vec<String> = cases
        .iter()
        .map(
            |c| match compile("shop.yaml", &format!("{head}{c}"), &options()) {
                Ok(_) => "compiled".to_string(),
                Err(d) => {
                    let text = d.to_string();
                    // The first line and the hint say it all here.
                    let first = text.lines().next().unwrap_or_default().to_string();
                    let hint = text
                        .lines()
                        .find(|l| l.trim_start().starts_with("= hint"))
                        .map(|h| format!(" [{}]", h.trim()))
                        .unwrap_or_default();
                    format!("{first}{hint}")
                }
            },
        )
        .collect();
    expect![[r#"
        [
            "shop.yaml:6:9: a `repeat` block sends no request of its own, so it takes no `get` [= hint: put the request in the block's `steps`, or the `repeat` in a step of its own]",
            "shop.yaml:6:9: a step is one block: `repeat` and `while` cannot go together [= hint: nest one inside the other's `steps`]",
            "shop.yaml:6:17: the range 5..2 ends before it starts [= hint: write 2..5]",
            "shop.yaml:6:17: `repeat` takes a count or a range [= hint: write e.g. `repeat: 3` or `repeat: 2..5` (both ends included)]",
            "shop.yaml:6:9: the `repeat` block has no `steps` [= hint: give it the steps to run, e.g.]",
            "shop.yaml:6:19: \"one\" is one value, not a list [= hint: extract it with `pick: all` to loop over every match, e.g. one: { json: \"$.items[*].id\", pick: all }]",
            "shop.yaml:6:19: unknown list \"idz\" [= hint: did you mean ids?]",
            "shop.yaml:6:9: a `for_each` block names its item with `as` [= hint: e.g. `for_each: ids` with `as: item`, then {{ item }} in its steps]",
            "shop.yaml:6:35: unknown variable \"ide\" [= hint: did you mean ids?]",
            "shop.yaml:6:9: `max` goes with `for_each` or `while`, not `if`",
            "shop.yaml:6:9: `else` belongs to a block, and this step is a request [= hint: `else` goes with `if`]",
            "shop.yaml:6:21: \"ids\" is a list (`pick: all`), not one value [= hint: loop over it (`for_each: ids`, `as: item`), or extract one with `pick: random`]",
            "shop.yaml:9:21: unknown variable \"x\" [= hint: variables defined before this point: ids, one]",
            "shop.yaml:6:17: a `random` block has no arms [= hint: e.g. random: [{ weight: 3, steps: [...] }, { steps: [...] }]]",
        ]
    "#]]
    .assert_debug_eq(&out);
}

#[test]
fn pages_compile_with_their_document_assets_and_mistakes() {
    check(
        r#"
target: http://127.0.0.1:1
flows:
  - steps:
      - page: home page
        assets: from_html
        cache: true
        steps:
          - get: /
            name: home
            extract: { fund: { css: a.fund, attr: href, pick: random } }
          - get: /static/extra.css
            checks: [ { header: { name: Cache-Control, matches: "max-age" } } ]
      - page: burst
        together: true
        connections: 2
        steps: [ { get: /a }, { get: /b }, { get: /c } ]
"#,
        expect![[r#"
            scenario "shop.yaml" -> http://127.0.0.1:1
              HTTP/1.1, cookies on
              flow "flow 1" weight 1
                page "home page" (6 connections, and the assets its document names, fresh assets from the session's cache):
                  the document:
                    GET / as "home"
                      extract fund from css selector, attribute href, one at random
                  then, at once:
                    GET /static/extra.css as "GET /static/extra.css"
                      check "GET /static/extra.css: header Cache-Control matches /max-age/"
                    GET each asset the document names
                page "burst" (2 connections):
                  at once:
                    GET /a as "GET /a"
                    GET /b as "GET /b"
                    GET /c as "GET /c"
        "#]],
    );
    let head =
        "target: http://127.0.0.1:1\nflows:\n  - steps:\n      - get: /a\n        name: home\n";
    let cases = [
        "      - page: p\n        steps:\n          - get: /\n          - get: /x.css\n            extract: { v: { header: ETag } }\n",
        "      - page: p\n        steps:\n          - get: /\n          - repeat: 2\n            steps: [ { get: /x.css } ]\n",
        "      - page: home\n        steps: [ { get: / } ]\n",
        "      - page: p\n        together: true\n        assets: from_html\n        steps: [ { get: / } ]\n",
        "      - page: p\n        connections: 0\n        steps: [ { get: / } ]\n",
        "      - get: /\n        cache: true\n",
        "      - repeat: 2\n        connections: 2\n        steps: [ { get: / } ]\n",
    ];
    let out: Vec<String> = cases
        .iter()
        .map(
            |c| match compile("shop.yaml", &format!("{head}{c}"), &options()) {
                Ok(_) => "compiled".to_string(),
                Err(d) => d.to_string().lines().next().unwrap_or_default().to_string(),
            },
        )
        .collect();
    expect![[r#"
        [
            "shop.yaml:9:13: an asset's response is not read for values: only the document (a page's first step) can `extract`",
            "shop.yaml:9:13: a page's steps are its requests; a `repeat` block cannot go in it",
            "shop.yaml:6:15: \"home\" already names a request; a page reports as an endpoint of its own",
            "shop.yaml:6:9: `assets: from_html` reads the document first, so it cannot go with `together: true`",
            "shop.yaml:6:9: a page needs at least one connection",
            "shop.yaml:6:9: `cache` belongs to a block, and this step is a request",
            "shop.yaml:6:9: `connections` goes with `page`, not `repeat`",
        ]
    "#]]
    .assert_debug_eq(&out);
}

#[test]
fn websocket_steps_compile_with_their_session_and_mistakes() {
    check(
        r#"
target: https://127.0.0.1:1
flows:
  - steps:
      - ws: /pair/{{ random(1, 8) }}
        name: pair
        subprotocols: [pair.v1]
        queue: 16
        timeout: 2s
        headers: { X-Team: blue }
        session:
          - send_json: { op: join, user: "{{ vu }}" }
          - expect: { json: { path: $.op, equals: joined }, timeout: 2s, extract: { room: { json: $.room } } }
          - send: "hello {{ room }}"
          - expect: {}
          - send_binary: AAEC
          - hold: 30s
          - every: { interval: 1s, for: 10s, send: ping, expect: { body_contains: pong } }
          - close: 4001
      - get: /rooms/{{ room }}
      - sse: /rooms/{{ room }}/events
        events: 100
        for: 30s
        reconnect: 3
        checks: [ { json: { path: $.op, exists: true } } ]
        extract: { last_op: { json: $.op } }
"#,
        expect![[r#"
            scenario "shop.yaml" -> https://127.0.0.1:1
              HTTP/1.1, cookies on
              flow "flow 1" weight 1
                websocket:
                  GET /pair/{{ random(1, 8) }} as "pair", timeout 2.00s
                    X-Team: blue
                  subprotocols: pair.v1
                  keeps up to 16 early messages
                  send "{\"op\":\"join\",\"user\":\"{{ vu }}\"}"
                  expect a message where json $.op equals "joined" within 2.00s, room <- json $.room
                  send "hello {{ room }}"
                  expect any message within 10.00s
                  send 3 binary bytes
                  hold 30.00s
                  every 1.00s for 10.00s: send "ping", expect a message where body contains "pong" within 10.00s
                  close 4001
                GET /rooms/{{ room }} as "GET /rooms/{{ room }}"
                event stream, until the stream's end or 100 events or 30.00s; reconnects 3 times with Last-Event-ID:
                  GET /rooms/{{ room }}/events as "SSE /rooms/{{ room }}/events"
                    check "SSE /rooms/{{ room }}/events: json $.op exists"
                    extract last_op from json $.op
        "#]],
    );
    let head = "target: http://127.0.0.1:1\nflows:\n  - steps:\n";
    let cases = [
        "      - ws: /x\n",
        "      - ws: /x\n        body: hi\n        session: [ { hold: 1s } ]\n",
        "      - ws: /x\n        session: [ { send: a, hold: 1s } ]\n",
        "      - ws: /x\n        session: [ {} ]\n",
        "      - ws: /x\n        session: [ { close: 1006 } ]\n",
        "      - ws: /x\n        session: [ { close: 1000 }, { hold: 1s } ]\n",
        "      - ws: /x\n        session: [ { send_binary: \"not base64!\" } ]\n",
        "      - ws: /x\n        session: [ { expect: { body_contains: a, json: { path: $.a, exists: true } } } ]\n",
        "      - ws: /x\n        session: [ { every: { interval: 1s, for: 2s } } ]\n",
        "      - ws: /x\n        queue: 0\n        session: [ { hold: 1s } ]\n",
        "      - ws: /x\n        subprotocols: [\"a b\"]\n        session: [ { hold: 1s } ]\n",
        "      - get: /x\n        session: [ { hold: 1s } ]\n",
        "      - ws: /x\n        get: /y\n        session: [ { hold: 1s } ]\n",
        "      - ws: /x\n        session: [ { send: \"{{ nope }}\" } ]\n",
        "      - page: p\n        steps: [ { ws: /x, session: [ { hold: 1s } ] } ]\n",
        "      - repeat: 2\n        session: [ { hold: 1s } ]\n        steps: [ { get: / } ]\n",
        "      - sse: /e\n        body: x\n",
        "      - sse: /e\n        events: 0\n",
        "      - sse: /e\n        for: 0s\n",
        "      - get: /e\n        reconnect: 2\n",
        "      - ws: /x\n        events: 2\n        session: [ { hold: 1s } ]\n",
        "      - sse: /e\n        ws: /x\n",
    ];
    let out: Vec<String> = cases
        .iter()
        .map(
            |c| match compile("shop.yaml", &format!("{head}{c}"), &options()) {
                Ok(_) => "compiled".to_string(),
                Err(d) => d.to_string().lines().next().unwrap_or_default().to_string(),
            },
        )
        .collect();
    expect![[r#"
        [
            "shop.yaml:4:9: the `ws` step has no `session`",
            "shop.yaml:4:9: a `ws` step sends no HTTP body and reads no response, so it takes no `body`",
            "shop.yaml:5:20: an action does one thing",
            "shop.yaml:5:20: the action does nothing",
            "shop.yaml:5:29: 1006 is not a close code a client sends",
            "shop.yaml:5:37: the session closed its socket before this action",
            "shop.yaml:5:35: `send_binary` is not base64: Invalid symbol 32, offset 3.",
            "shop.yaml:5:30: an `expect` matches on one thing",
            "shop.yaml:5:29: `every` sends one message",
            "shop.yaml:4:9: `queue` must keep at least one message",
            "shop.yaml:4:9: \"a b\" is not a subprotocol name",
            "shop.yaml:4:9: `session` belongs to a `ws` step",
            "shop.yaml:4:13: a step sends one request: give only one of get, post, put, patch, delete, head, ws or sse",
            "shop.yaml:5:32: unknown variable \"nope\"",
            "shop.yaml:5:18: a page's steps are HTTP requests; a `ws` or `sse` step cannot go in it",
            "shop.yaml:4:9: `session` goes with `ws`, not `repeat`",
            "shop.yaml:4:9: an `sse` step subscribes with a GET, so it takes no `body`",
            "shop.yaml:4:9: `events` must be at least 1",
            "shop.yaml:5:14: this must be more than 0",
            "shop.yaml:4:9: `reconnect` belongs to an `sse` step",
            "shop.yaml:4:9: `events` belongs to an `sse` step",
            "shop.yaml:4:14: a step sends one request: give only one of get, post, put, patch, delete, head, ws or sse",
        ]
    "#]].assert_debug_eq(&out);
}

#[test]
fn scrapes_compile_on_the_target_with_their_settings_and_mistakes() {
    let head = "target: http://127.0.0.1:8080/app\nflows:\n  - steps: [ { get: / } ]\n";
    check(
        &format!(
            "{head}scrape:\n  - /metrics\n  - url: http://127.0.0.2:9100/metrics\n    interval: 500ms\n    timeout: 200ms\n    max_size: 1MiB\n    match: \"db_|queue_\"\n"
        ),
        expect![[r#"
            scenario "shop.yaml" -> http://127.0.0.1:8080/app
              HTTP/1.1, cookies on
              flow "flow 1" weight 1
                GET / as "GET /"
              scrape http://127.0.0.1:8080/app/metrics every 1.00s (timeout 1.00s, at most 4194304 bytes)
              scrape http://127.0.0.2:9100/metrics every 500.0ms (timeout 200.0ms, at most 1048576 bytes, metrics matching "db_|queue_")
        "#]],
    );
    let cases = [
        "scrape:\n  - ftp://127.0.0.1/metrics\n",
        "scrape:\n  - url: /metrics\n    interval: 10ms\n",
        "scrape:\n  - url: /metrics\n    interval: 1s\n    timeout: 2s\n",
        "scrape:\n  - url: /metrics\n    max_size: lots\n",
        "scrape:\n  - url: /metrics\n    match: \"(\"\n",
        "scrape:\n  - url: /metrics\n    every: 1s\n",
    ];
    let out: Vec<String> = cases
        .iter()
        .map(
            |c| match compile("shop.yaml", &format!("{head}{c}"), &options()) {
                Ok(_) => "compiled".to_string(),
                Err(d) => d.to_string().lines().next().unwrap_or_default().to_string(),
            },
        )
        .collect();
    expect![[r#"
        [
            "shop.yaml:5:5: invalid URL \"ftp://127.0.0.1/metrics\": only http:// and https:// are supported",
            "shop.yaml:5:5: a scrape interval of 10ms is too short: at least 100ms (1s is usual)",
            "shop.yaml:5:5: a scrape timeout of 2s must be above zero and at most the interval (1s), so that reads never pile up",
            "shop.yaml:5:5: max_size \"lots\" is not a size",
            "shop.yaml:5:5: scrape match \"(\" is not a regex: regex parse error:",
            "shop.yaml:6:5: unknown field `every`",
        ]
    "#]]
    .assert_debug_eq(&out);
}

#[test]
fn a_recorded_session_imports_with_its_flows_secrets_redirects_and_assets() {
    use crate::{import_recording, HarOptions, RecordedRequest, RecordedRule, RecordedSession};
    let req = |seq: u64, method: &str, path: &str, started_ms: f64| RecordedRequest {
        seq,
        method: method.into(),
        path: path.into(),
        status: 200,
        started_ms,
        took_ms: 10.0,
        ..RecordedRequest::default()
    };
    let listing = req(1, "GET", "/api/funds", 0.0);
    let css = req(2, "GET", "/static/app.css", 20.0);
    let mut login = req(3, "POST", "/login", 1000.0);
    login.body = Some("email=a%40b.c&password=__masked_4__".into());
    login.headers = vec![
        ("Cookie".into(), "sid=__masked_1__".into()),
        (
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ),
    ];
    login.status = 303;
    login.location = Some("/home".into());
    let home = req(4, "GET", "/home", 1015.0);
    let mut pledge = req(5, "POST", "/pledge?from=step%202%2F3", 3000.0);
    pledge.body = Some("fund=f3a9c0&csrf=__masked_7__&state=step+2%2F3".into());
    pledge.uses = vec![
        (
            "f3a9c0".into(),
            1,
            RecordedRule::Json("$.items[3].id".into()),
        ),
        ("__masked_7__".into(), 4, RecordedRule::Input("csrf".into())),
        // A value sent encoded, as the recorder found it: in the path and
        // in the form.
        (
            "step%202%2F3".into(),
            4,
            RecordedRule::Input("state".into()),
        ),
        ("step+2%2F3".into(), 4, RecordedRule::Input("state".into())),
    ];
    let session = RecordedSession {
        name: "session 9".into(),
        requests: vec![listing, css, login, home, pledge],
    };
    let opts = HarOptions {
        no_assets: true,
        name: None,
    };
    let yaml =
        import_recording("http://shop.test", vec![session], &opts, &["a note".into()]).unwrap();
    // The masked password from the environment; the masked CSRF field,
    // which flowed from the page, from its variable; the id from the
    // listing; the cookie left to the jar; the redirect merged (throng
    // follows it) and the stylesheet left out.
    assert!(
        yaml.contains("password={{ env.THRONG_MASKED_4 }}"),
        "{yaml}"
    );
    // An encoded value: a path's template escapes it already; in a body
    // written as it is, form() escapes it as the form had it.
    assert!(
        yaml.contains(r#"body: "fund={{ id }}&csrf={{ csrf }}&state={{ form(state_2) }}""#),
        "{yaml}"
    );
    assert!(
        yaml.contains(r#"post: "/pledge?from={{ state }}""#),
        "{yaml}"
    );
    assert!(
        yaml.contains(r#"id: { json: "$.items[3].id" }   # guessed"#),
        "{yaml}"
    );
    assert!(
        yaml.contains(r#"csrf: { css: "input[name=\"csrf\"]", attr: value }   # guessed"#),
        "{yaml}"
    );
    assert!(!yaml.to_lowercase().contains("cookie"), "{yaml}");
    assert!(
        !yaml.contains("/static/app.css") && !yaml.contains("get: \"/home\""),
        "{yaml}"
    );
    assert!(
        yaml.starts_with("# Imported by `throng import recording`: 3 requests"),
        "{yaml}"
    );
    assert!(yaml.contains("# a note\n"), "{yaml}");
    let mut opts = options();
    opts.env.insert("THRONG_MASKED_4".into(), "hunter2".into());
    assert!(compile("imported.yaml", &yaml, &opts).is_ok(), "{yaml}");
}
