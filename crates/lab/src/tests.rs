#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;

fn generated(users: u32, seed: u64) -> (tempfile::TempDir, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.db");
    db::generate(&path, users, seed).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    (dir, conn)
}

fn names(conn: &rusqlite::Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM users ORDER BY id LIMIT 20")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

#[test]
fn data_is_generated_from_the_seed() {
    let (_a, a) = generated(500, 7);
    let (_b, b) = generated(500, 7);
    let (_c, c) = generated(500, 8);
    assert_eq!(names(&a), names(&b));
    assert_ne!(names(&a), names(&c));
    let count = |sql: &str| -> i64 { a.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM users"), 500);
    assert_eq!(count("SELECT COUNT(*) FROM funds"), db::FUNDS);
    assert_eq!(count("SELECT COUNT(*) FROM lessons"), db::LESSONS);
    // Each fund's totals agree with its pledges.
    assert_eq!(
        count("SELECT COUNT(*) FROM funds WHERE raised != (SELECT SUM(amount) FROM pledges WHERE fund_id = funds.id)"),
        0
    );
    let title: String = a
        .query_row("SELECT title FROM funds WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(title, FEATURED_TITLE);
}

#[test]
fn the_scanning_login_reads_every_row_and_finds_the_same_user() {
    let (_d, mut conn) = generated(300, 1);
    let plan = |sql: &str| -> String {
        conn.query_row(&format!("EXPLAIN QUERY PLAN {sql}"), ["x"], |r| r.get(3))
            .unwrap()
    };
    let indexed = plan("SELECT id FROM users WHERE email = ?1");
    let scan = plan("SELECT id FROM users WHERE email LIKE ?1");
    assert!(indexed.contains("USING"), "{indexed}");
    assert!(scan.starts_with("SCAN users"), "{scan}");
    let a = db::find_login(&mut conn, "user42@example.com", false).unwrap();
    let b = db::find_login(&mut conn, "user42@example.com", true).unwrap();
    assert_eq!(a.as_ref().map(|r| r.0), Some(42));
    assert_eq!(a, b);
    assert_eq!(a.unwrap().1, db::pass_hash(PASSWORD));
    assert!(db::find_login(&mut conn, "nobody@example.com", true)
        .unwrap()
        .is_none());
}

#[test]
fn shared_units_of_work_are_taken_over_private_ones_are_not() {
    let shared = uow::Context::new(true);
    let a = shared.open();
    let b = shared.open(); // takes the context over from a
    assert_eq!(shared.close(b), Ok(()));
    assert_eq!(shared.close(a), Err(uow::Conflict));
    // Units that do not overlap never conflict.
    let c = shared.open();
    assert_eq!(shared.close(c), Ok(()));

    let private = uow::Context::new(false);
    let a = private.open();
    let b = private.open();
    assert_eq!(private.close(b), Ok(()));
    assert_eq!(private.close(a), Ok(()));
}

#[test]
fn a_misrouted_restart_hands_the_address_to_the_other_app() {
    use router::{App, Router, BOUNTY_HOST};
    let r = Router::new(true);
    assert_eq!(r.route("127.0.0.1:8080"), (App::Fundfill, false));
    assert_eq!(r.route(BOUNTY_HOST), (App::Bounty, false));
    for _ in 0..3 {
        let stopped = r.stop_fundfill();
        // While the new instance boots, Fundfill's visitors reach Bounty.
        assert_eq!(r.route("127.0.0.1:8080"), (App::Bounty, true));
        r.start_fundfill(stopped);
        assert_eq!(r.route("127.0.0.1:8080"), (App::Fundfill, false));
        assert_eq!(r.route(BOUNTY_HOST), (App::Bounty, false));
    }

    let healthy = Router::new(false);
    for _ in 0..3 {
        let stopped = healthy.stop_fundfill();
        assert_eq!(healthy.route("localhost"), (App::Fundfill, false));
        healthy.start_fundfill(stopped);
        assert_eq!(healthy.route("localhost"), (App::Fundfill, false));
        assert_eq!(healthy.route(BOUNTY_HOST), (App::Bounty, false));
    }
}

#[test]
fn a_stall_holds_requests_until_the_freeze_ends() {
    let s = Stall {
        stall: Duration::from_millis(300),
        period: Duration::from_secs(1),
    };
    let ms = |n| Duration::from_millis(n);
    assert_eq!(s.remaining(ms(0)), ms(300));
    assert_eq!(s.remaining(ms(100)), ms(200));
    assert_eq!(s.remaining(ms(300)), Duration::ZERO);
    assert_eq!(s.remaining(ms(999)), Duration::ZERO);
    assert_eq!(s.remaining(ms(2_250)), ms(50));
}

#[test]
fn the_pool_gives_up_after_its_wait() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (dir, _conn) = generated(10, 1);
    let metrics = std::sync::Arc::new(metrics::Metrics::default());
    let pool = db::Pool::new(
        metrics::PoolName::Primary,
        dir.path().join("lab.db"),
        1,
        Duration::from_millis(10),
        metrics.clone(),
    );
    rt.block_on(async {
        let mut held = pool.get().await.unwrap();
        let n: i64 = held
            .run(|c| c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(n, 10);
        assert!(metrics
            .render()
            .contains("lab_db_pool_in_use{pool=\"primary\"} 1\n"));
        assert!(matches!(pool.get().await, Err(db::DbError::Exhausted)));
        drop(held);
        assert!(pool.get().await.is_ok(), "a returned connection is reused");
    });
    let text = metrics.render();
    assert!(text.contains("lab_db_pool_timeouts_total 1"));
    // Back in the pool; three waits, one of them ~10 ms (the timeout).
    assert!(
        text.contains("lab_db_pool_in_use{pool=\"primary\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("lab_db_pool_size{pool=\"primary\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("lab_db_pool_wait_seconds_bucket{pool=\"primary\",le=\"+Inf\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("lab_db_pool_wait_seconds_bucket{pool=\"primary\",le=\"0.005\"} 2\n"),
        "{text}"
    );
}

#[test]
fn pages_escape_what_they_show() {
    assert_eq!(
        pages::escape(r#"<script>alert("x&y")</script>"#),
        "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;"
    );
}

#[test]
fn metrics_are_prometheus_text() {
    let m = metrics::Metrics::default();
    m.request(0, 200);
    m.request(0, 200);
    m.request(2, 503);
    let text = m.render();
    assert!(text.contains("lab_requests_total{route=\"home\",status=\"2xx\"} 2\n"));
    assert!(text.contains("lab_requests_total{route=\"login\",status=\"5xx\"} 1\n"));
    assert!(text.contains("# TYPE lab_deploy_queue gauge\n"));
    // What a scraper reads of it: every line valid, each family typed.
    let parsed = observe::exposition::parse(&text);
    assert_eq!(parsed.bad_lines, 0, "{:?}", parsed.first_bad);
    for (name, kind) in [
        (
            "lab_http_requests_in_flight",
            observe::exposition::Kind::Gauge,
        ),
        (
            "lab_db_pool_wait_seconds_bucket",
            observe::exposition::Kind::Histogram,
        ),
        (
            "lab_deploy_queue_capacity",
            observe::exposition::Kind::Gauge,
        ),
        ("lab_requests_total", observe::exposition::Kind::Counter),
    ] {
        assert_eq!(parsed.kind_of(name), kind, "{name}");
    }
}

#[test]
fn the_banner_names_a_delay_as_a_flag_that_gives_it_back() {
    let config = Config {
        delay: Some(Duration::from_micros(2500)),
        ..Config::default()
    };
    assert_eq!(config.pathologies(), ["--delay 2500us"]);
}
