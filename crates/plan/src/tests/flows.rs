//! What flows that behave like people rest on: values escaped for where
//! they go, picks among a response's matches, and the conditions of `if`
//! and `while`.

use expect_test::expect;
use serde_json_path::JsonPath;

use crate::*;

fn render(t: &Template, vars: &[Option<String>]) -> String {
    let mut rng = fastrand::Rng::with_seed(1);
    t.render_string(&mut RenderCtx {
        vars,
        vu: 0,
        iteration: 0,
        rng: &mut rng,
        now_ms: 0,
    })
}

#[test]
fn values_are_escaped_for_where_they_go() {
    let mut scope = Scope::default();
    let q = scope.declare("q");
    let vars = {
        let mut v = vec![None; scope.len()];
        v[q] = Some("a b/c&d=\"e\"\\ü\n".to_string());
        v
    };
    let compile = |text: &str, cx: Context| Template::compile_in(text, &scope, cx).unwrap();
    // A path segment and a query value: percent-encoded, `/` included,
    // UTF-8 byte by byte; the literal text around them is left alone.
    expect![[
        r#"/s/a%20b%2Fc%26d%3D%22e%22%5C%C3%BC%0A?q=a%20b%2Fc%26d%3D%22e%22%5C%C3%BC%0A&x=1"#
    ]]
    .assert_eq(&render(
        &compile("/s/{{ q }}?q={{ q }}&x=1", Context::Url),
        &vars,
    ));
    // A form: the same, spaces as `+`.
    expect!["q=a+b%2Fc%26d%3D%22e%22%5C%C3%BC%0A"]
        .assert_eq(&render(&compile("q={{ q }}", Context::Form), &vars));
    // A JSON string: quotes, backslashes and control characters escaped,
    // so the body stays JSON whatever the value.
    let json = render(&compile(r#"{"q":"{{ q }}"}"#, Context::Json), &vars);
    expect![[r#"{"q":"a b/c&d=\"e\"\\ü\n"}"#]].assert_eq(&json);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["q"].as_str(), vars[q].as_deref());
    // raw() writes the value as it is, anywhere; headers and raw bodies
    // are raw already.
    assert_eq!(
        render(&compile("/{{ raw(q) }}", Context::Url), &vars),
        "/a b/c&d=\"e\"\\ü\n"
    );
    assert_eq!(
        render(&compile("{{ q }}", Context::Raw), &vars),
        "a b/c&d=\"e\"\\ü\n"
    );
    // url() and form() escape a value as named wherever it goes: a raw
    // body written by hand as a form, a header.
    assert_eq!(
        render(
            &compile("a={{ form(q) }}&b={{ url(q) }}", Context::Raw),
            &vars
        ),
        "a=a+b%2Fc%26d%3D%22e%22%5C%C3%BC%0A&b=a%20b%2Fc%26d%3D%22e%22%5C%C3%BC%0A"
    );
    // choice() values are escaped too; numbers need nothing.
    let choice = compile(r#"/{{ choice("x y") }}/{{ random(5, 5) }}"#, Context::Url);
    assert_eq!(render(&choice, &vars), "/x%20y/5");
}

#[test]
fn a_list_cannot_go_into_a_template_and_says_how_to_use_it() {
    let mut scope = Scope::default();
    scope.declare_list_at("ids", 0);
    let e = Template::compile("/i/{{ ids }}", &scope).unwrap_err();
    expect![[r#"@6 "ids" is a list (`pick: all`), not one value (loop over it (`for_each: ids`, `as: item`), or extract one with `pick: random`)"#]]
        .assert_eq(&format!("@{} {} ({})", e.offset, e.message, e.hint.unwrap_or_default()));
}

fn view<'a>(body: &'a str, headers: &'a [(String, String)]) -> ResponseView<'a> {
    ResponseView {
        status: 200,
        headers,
        body: body.as_bytes(),
        latency: std::time::Duration::ZERO,
    }
}

fn take(from: ExtractFrom, pick: PickFrom, r: &ResponseView<'_>, rng: &mut fastrand::Rng) -> Taken {
    Extract {
        slot: 0,
        from,
        pick,
    }
    .take(r, &mut LazyJson::new(r.body), rng)
}

#[test]
fn picks_take_the_first_one_at_random_or_all_matches() {
    let body = r#"{"items":[{"id":"a"},{"id":"b"},{"id":7}]} <a href="/x">x</a><a href="/y">y</a>"#;
    let json_body = r#"{"items":[{"id":"a"},{"id":"b"},{"id":7}]}"#;
    let headers = vec![
        ("Link".to_string(), "</1>".to_string()),
        ("link".to_string(), "</2>".to_string()),
    ];
    let (r, j) = (view(body, &headers), view(json_body, &headers));
    let mut rng = fastrand::Rng::with_seed(3);
    let ids = || ExtractFrom::Json(JsonPath::parse("$.items[*].id").unwrap());
    assert_eq!(
        take(ids(), PickFrom::First, &j, &mut rng),
        Taken::One(Some("a".into()))
    );
    assert_eq!(
        take(ids(), PickFrom::All, &j, &mut rng),
        Taken::All(vec!["a".into(), "b".into(), "7".into()])
    );
    let href = || ExtractFrom::Regex(regex::Regex::new(r#"href="([^"]+)""#).unwrap(), 1);
    assert_eq!(
        take(href(), PickFrom::All, &r, &mut rng),
        Taken::All(vec!["/x".into(), "/y".into()])
    );
    let css = || {
        ExtractFrom::Css(
            Box::new(scraper::Selector::parse("a").unwrap()),
            Some("href".into()),
        )
    };
    assert_eq!(
        take(css(), PickFrom::All, &r, &mut rng),
        Taken::All(vec!["/x".into(), "/y".into()])
    );
    assert_eq!(
        take(
            ExtractFrom::Header("LINK".into()),
            PickFrom::All,
            &r,
            &mut rng
        ),
        Taken::All(vec!["</1>".into(), "</2>".into()])
    );
    // Random: every match about equally often (3000 draws of 3: each
    // share within 0.05 of a third; the binomial sd is 0.009).
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..3000 {
        if let Taken::One(Some(v)) = take(ids(), PickFrom::Random, &j, &mut rng) {
            *seen.entry(v).or_insert(0u32) += 1;
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (v, n) in &seen {
        let share = f64::from(*n) / 3000.0;
        assert!((share - 1.0 / 3.0).abs() < 0.05, "{v}: {share}");
    }
    // Nothing matched: a miss, whichever the pick.
    let none = || ExtractFrom::Json(JsonPath::parse("$.nothing[*]").unwrap());
    for pick in [PickFrom::First, PickFrom::Random, PickFrom::All] {
        assert!(take(none(), pick, &j, &mut rng).missed(), "{pick:?}");
    }
    // A body that is not JSON has no JSON matches.
    assert!(take(ids(), PickFrom::Random, &r, &mut rng).missed());
}

fn cond_scope() -> Scope {
    let mut scope = Scope::default();
    scope.declare("cart_id");
    scope.declare("count");
    scope.declare("loop.index");
    scope.declare_list_at("ids", 3);
    scope
}

fn holds(
    text: &str,
    vars: &[Option<String>],
    lists: &[Vec<String>],
    status: Option<u16>,
    checks: bool,
) -> bool {
    Cond::compile(text, &cond_scope()).unwrap().holds(&CondCtx {
        vars,
        lists,
        status,
        checks,
    })
}

#[test]
fn conditions_read_variables_status_and_checks() {
    let set = vec![
        Some("c-1".to_string()),
        Some("10".to_string()),
        Some("2".to_string()),
        None,
    ];
    let unset = vec![None, Some("".to_string()), None, None];
    let lists = vec![Vec::new(), Vec::new(), Vec::new(), vec!["a".to_string()]];
    let no_lists = vec![Vec::new(); 4];
    // A name alone: a value that is not empty.
    assert!(holds("cart_id", &set, &lists, Some(200), true));
    assert!(!holds("cart_id", &unset, &lists, Some(200), true));
    assert!(
        !holds("count", &unset, &lists, Some(200), true),
        "empty text is false"
    );
    // Status and checks of the last response.
    assert!(holds(
        "status == 200 and cart_id",
        &set,
        &lists,
        Some(200),
        true
    ));
    assert!(!holds(
        "status == 200 and cart_id",
        &set,
        &lists,
        Some(500),
        true
    ));
    assert!(holds(
        "status >= 500 or not checks",
        &set,
        &lists,
        Some(200),
        false
    ));
    // Before any response (or after a request that got none), status has
    // no value: every comparison with it is false, != included.
    assert!(!holds("status == 200", &set, &lists, None, true));
    assert!(!holds("status != 200", &set, &lists, None, true));
    assert!(!holds("checks", &set, &lists, None, false));
    // Numbers compare as numbers, text as text.
    assert!(holds(
        "count > 9 and count < 10.5",
        &set,
        &lists,
        None,
        false
    ));
    assert!(holds(
        "cart_id == 'c-1' and cart_id != \"c-2\"",
        &set,
        &lists,
        None,
        false
    ));
    assert!(
        !holds("cart_id < 'd'", &set, &lists, None, false),
        "text has no order"
    );
    assert!(holds("loop.index == 2", &set, &lists, None, false));
    // Lists: true with an item; len() counts them.
    assert!(holds("ids and len(ids) == 1", &set, &lists, None, false));
    assert!(!holds("ids", &set, &no_lists, None, false));
    assert!(holds(
        "(not ids or cart_id) and true",
        &set,
        &no_lists,
        None,
        false
    ));
}

#[test]
fn condition_mistakes_point_at_the_column() {
    let e = |text: &str| {
        let e = Cond::compile(text, &cond_scope()).unwrap_err();
        format!(
            "@{} {} ({})",
            e.offset,
            e.message,
            e.hint.unwrap_or_default()
        )
    };
    expect![[r#"@18 unknown variable "cart" (a condition reads status, checks and the variables defined before it: cart_id, count, ids, loop.index)"#]]
        .assert_eq(&e("status == 200 and cart"));
    expect![[r#"@7 unexpected "=" (compare with ==, !=, <, <=, > or >=; negate with `not`)"#]]
        .assert_eq(&e("status = 200"));
    expect!["@17 the condition ends too soon (write e.g. `status == 200 and cart_id`)"]
        .assert_eq(&e("status == 200 and"));
    expect!["@14 '(' is not closed (close it with ')')"].assert_eq(&e("(status == 200"));
    expect![[
        r#"@4 "cart_id" is not a list (len() counts a list's items: extract one with `pick: all`)"#
    ]]
    .assert_eq(&e("len(cart_id) > 1"));
    expect![[r#"@7 unexpected "cart_id" (join conditions with `and` or `or`)"#]]
        .assert_eq(&e("status cart_id"));
    // A hostile length cannot nest the tree deep enough to overflow the
    // stack when it is parsed or evaluated.
    let deep = format!("{}checks", "not ".repeat(300));
    expect![[
        r#"@1024 a condition has at most 256 parts (split the logic over nested `if` blocks)"#
    ]]
    .assert_eq(&e(&deep));
}

#[test]
fn a_document_names_its_assets_once_and_a_hostile_one_is_bounded() {
    let html = r#"<html><head>
        <link rel="stylesheet" href="/static/app.css">
        <link rel="icon" href="/favicon.ico"><link rel="canonical" href="/page">
        <link rel="Preload Stylesheet" href="https://cdn.example.net/x.css">
        <script src="/static/app.js" defer></script><script>inline()</script>
        </head><body><img src="logo.svg"><img src="/static/app.css">
        <img src="data:image/png;base64,AAAA"><img src=" "><a href="/next">next</a>
        </body></html>"#;
    assert_eq!(
        html_assets(html, 100),
        [
            "/static/app.css",
            "/favicon.ico",
            "https://cdn.example.net/x.css",
            "/static/app.js",
            "logo.svg"
        ]
    );
    let many: String = (0..500)
        .map(|i| format!("<img src=\"/i/{i}.png\">"))
        .collect();
    assert_eq!(html_assets(&many, MAX_HTML_ASSETS).len(), MAX_HTML_ASSETS);
    assert!(html_assets("<<<not html\u{0}", 100).is_empty());
}

#[test]
fn cache_control_says_how_long_an_asset_stays_fresh() {
    use std::time::Duration;
    assert_eq!(
        fresh_for("public, max-age=31536000, immutable"),
        Some(Duration::from_secs(31_536_000))
    );
    assert_eq!(fresh_for("max-age=\"60\""), Some(Duration::from_secs(60)));
    assert_eq!(fresh_for("no-cache"), None);
    assert_eq!(fresh_for("max-age=600, no-store"), None);
    assert_eq!(fresh_for("max-age=0"), None);
    assert_eq!(fresh_for("private"), None);
}
