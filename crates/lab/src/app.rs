//! Routes and handlers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use rusqlite::{Connection, OptionalExtension};

use crate::assets::Edge;
use crate::config::{Config, Release};
use crate::db::{self, Db, DbError, Write};
use crate::deploy::{Deployer, Refused};
use crate::metrics::{Metrics, ROUTES};
use crate::pages::{self, Backer, Fund};
use crate::router::{App, Router};
use crate::uow;

/// The largest request body the lab reads.
const MAX_BODY: usize = 1 << 20;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "lab_session";

/// How often the session tracker records a user's last visit.
const TRACK_EVERY: Duration = Duration::from_secs(1);

/// Everything the handlers share.
pub struct State {
    /// The configuration.
    pub config: Config,
    /// The database.
    pub db: Db,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Session token to (user, last tracked).
    pub sessions: Mutex<HashMap<u64, (i64, Instant)>>,
    /// Units of work.
    pub uow: uow::Context,
    /// Which app a host reaches.
    pub router: Arc<Router>,
    /// `/deploy`.
    pub deployer: Deployer,
    /// Assets.
    pub edge: Edge,
    /// The fund listing's ids for this start.
    pub listing: crate::listing::Listing,
    /// The pair-programming rooms.
    pub rooms: Arc<crate::rooms::Rooms>,
    /// When the lab started, for `--stall`.
    pub started: Instant,
}

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn html(status: StatusCode, body: String) -> Resp {
    let mut r = respond(status, "text/html; charset=utf-8", body);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    r
}

fn text(status: StatusCode, body: &'static str) -> Resp {
    respond(status, "text/plain; charset=utf-8", body)
}

fn json(value: &impl serde::Serialize) -> Resp {
    match serde_json::to_vec(value) {
        Ok(v) => respond(StatusCode::OK, "application/json", v),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "cannot serialize\n"),
    }
}

fn db_error(e: DbError) -> Resp {
    match e {
        DbError::Exhausted => text(StatusCode::SERVICE_UNAVAILABLE, "too many connections\n"),
        _ => text(StatusCode::INTERNAL_SERVER_ERROR, "database error\n"),
    }
}

/// Runs `f` on a connection from `pool`; a failure becomes its response
/// (503 "too many connections" when the pool had none to give).
async fn query<T, F>(pool: &Arc<db::Pool>, f: F) -> Result<T, Resp>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let mut conn = pool.get().await.map_err(db_error)?;
    conn.run(f).await.map_err(db_error)
}

/// Waits out a `--stall` freeze, if one is on.
async fn stall_gate(state: &State) {
    if let Some(stall) = state.config.stall {
        let wait = stall.remaining(state.started.elapsed());
        if !wait.is_zero() {
            state.metrics.add(&state.metrics.stalled, 1);
            tokio::time::sleep(wait).await;
        }
    }
}

/// The service: one request in, one response out.
pub async fn handle(
    state: Arc<State>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<crate::rooms::Body>, Infallible> {
    // A room's event stream is the one answer that is not whole.
    if let ("GET", ["pair", room, "events"]) = (
        req.method().as_str(),
        req.uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .as_slice(),
    ) {
        state.metrics.request(route_index("pair"), 200);
        return Ok(crate::rooms::subscribe(&state.rooms, &req, room));
    }
    let _in_flight = InFlight::enter(&state.metrics);
    stall_gate(&state).await;
    let (route, resp) = dispatch(&state, req).await;
    // A freeze that began while the request was being handled holds its
    // answer too.
    stall_gate(&state).await;
    state.metrics.request(route, resp.status().as_u16());
    Ok(resp.map(|b| b.boxed()))
}

/// Counts a request in `lab_http_requests_in_flight` until dropped (also
/// when its client hangs up and hyper drops the handler).
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn enter(metrics: &'a Metrics) -> Self {
        metrics.add(&metrics.in_flight, 1);
        InFlight(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn route_index(name: &str) -> usize {
    ROUTES
        .iter()
        .position(|r| *r == name)
        .unwrap_or(ROUTES.len() - 1)
}

async fn dispatch(state: &State, req: Request<hyper::body::Incoming>) -> (usize, Resp) {
    let path = req.uri().path().to_string();
    let query_string = req.uri().query().unwrap_or_default().to_string();
    let method = req.method().clone();
    // The process's own endpoints answer whatever the host.
    match path.as_str() {
        "/health" => return (route_index("health"), text(StatusCode::OK, "ok\n")),
        "/metrics" => {
            return (
                route_index("metrics"),
                respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    state.metrics.render(),
                ),
            )
        }
        _ => {}
    }
    if let Some(limit) = state.config.header_limit {
        let size: usize = req
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        if size > limit {
            return (
                route_index("balancer"),
                text(
                    StatusCode::from_u16(431).unwrap_or(StatusCode::BAD_REQUEST),
                    "request header fields too large\n",
                ),
            );
        }
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let (app, misrouted) = state.router.route(host);
    if misrouted {
        state.metrics.add(&state.metrics.misrouted, 1);
    }
    if app == App::Bounty {
        return (
            route_index("other_app"),
            html(StatusCode::OK, pages::bounty()),
        );
    }

    if let Some(delay) = state.config.delay {
        // A thread's sleep, not the runtime's timer: tokio's timer rounds
        // up to whole milliseconds, and a known delay of 2.5 ms must be
        // 2.5 ms.
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(delay)).await;
    }
    let session = session_of(state, &req);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (name, resp) = match (&method, segments.as_slice()) {
        (&Method::GET | &Method::HEAD, [""]) => ("home", home(state).await),
        (&Method::GET | &Method::HEAD, ["static", asset]) => {
            ("static", asset_page(state, asset).await)
        }
        (&Method::POST, ["login"]) => ("login", login(state, req).await),
        (&Method::GET, ["learn", id]) => ("learn", learn(state, session, id).await),
        (&Method::GET, ["funds", id]) => ("funds", fund(state, id).await),
        (&Method::GET | &Method::HEAD, ["funds"]) => {
            ("listing", listing(state, &query_string, false).await)
        }
        (&Method::GET, ["api", "funds"]) => ("listing", listing(state, &query_string, true).await),
        (&Method::POST, ["pledge"]) => ("pledge", pledge(state, session, req).await),
        (&Method::GET, ["profile"]) => ("profile", profile(state, session).await),
        (&Method::PUT, ["profile"]) => ("profile", update_profile(state, session, req).await),
        (&Method::POST, ["deploy"]) => ("deploy", deploy(state).await),
        (&Method::GET, ["pair", room]) if !room.is_empty() => {
            let room = room.to_string();
            ("pair", crate::rooms::upgrade(&state.rooms, req, &room))
        }
        _ => ("not_found", text(StatusCode::NOT_FOUND, "not found\n")),
    };
    (route_index(name), resp)
}

/// The user behind the request's session cookie. Also the session tracker,
/// the second code path that opens units of work (`uow`).
fn session_of<B>(state: &State, req: &Request<B>) -> Option<i64> {
    let token = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == SESSION_COOKIE).then(|| u64::from_str_radix(v, 16).ok())?
        })?;
    let now = Instant::now();
    let (user, track) = {
        let mut sessions = state
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (user, last) = sessions.get_mut(&token)?;
        let track = now.duration_since(*last) >= TRACK_EVERY;
        if track {
            *last = now;
        }
        (*user, track)
    };
    if track {
        // The last-visit time is kept in memory; the unit of work around
        // recording it is what matters here.
        let unit = state.uow.open();
        if state.uow.close(unit).is_err() {
            state.metrics.add(&state.metrics.uow_conflicts, 1);
        }
    }
    Some(user)
}

fn need_login() -> Resp {
    html(
        StatusCode::UNAUTHORIZED,
        pages::page(
            "Fundfill",
            "Log in",
            "<p>Please <a href=\"/login\">log in</a>.</p>",
        ),
    )
}

async fn read_body(req: Request<hyper::body::Incoming>) -> Result<Bytes, Resp> {
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(_) => Err(text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large or broken\n",
        )),
    }
}

/// The request's form or JSON fields (see `fields`).
async fn read_fields(req: Request<hyper::body::Incoming>) -> Result<HashMap<String, String>, Resp> {
    let json = is_json(&req);
    Ok(fields(json, &read_body(req).await?))
}

/// Whether a request says its body is JSON.
fn is_json<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"))
}

/// A form's fields, or a JSON object's (strings as they are, other values
/// as JSON text, so `{"fund": 3}` and `fund=3` read the same).
fn fields(json: bool, body: &[u8]) -> HashMap<String, String> {
    if !json {
        return form_urlencoded::parse(body).into_owned().collect();
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    v => v.to_string(),
                };
                (k, v)
            })
            .collect(),
        _ => HashMap::new(),
    }
}

fn parse_id(s: &str) -> Option<i64> {
    s.parse().ok().filter(|n| *n > 0)
}

fn read_fund(c: &mut Connection, id: i64) -> rusqlite::Result<Option<Fund>> {
    c.prepare_cached("SELECT id, title, summary, goal, raised, backers FROM funds WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(Fund {
                id: r.get(0)?,
                title: r.get(1)?,
                summary: r.get(2)?,
                goal: r.get(3)?,
                raised: r.get(4)?,
                backers: r.get(5)?,
            })
        })
        .optional()
}

/// The five funds that raised most, for the home page and the sidebar.
type Top = Vec<(i64, String, i64)>;

fn top_funds(c: &mut Connection) -> rusqlite::Result<Top> {
    c.prepare_cached("SELECT id, title, raised FROM funds ORDER BY raised DESC LIMIT 5")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

fn featured_id(c: &mut Connection) -> rusqlite::Result<i64> {
    let v: String = c
        .prepare_cached("SELECT value FROM settings WHERE key = 'featured_fund'")?
        .query_row([], |r| r.get(0))?;
    Ok(v.parse().unwrap_or(1))
}

/// Release v2's data layer: rows loaded one at a time, each hydrated
/// through JSON, as the rewrite's ORM did.
mod v2 {
    use super::*;

    fn row_json(c: &mut Connection, sql: &str, id: i64) -> rusqlite::Result<serde_json::Value> {
        let mut stmt = c.prepare_cached(sql)?;
        let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
        stmt.query_row([id], |r| {
            let mut obj = serde_json::Map::new();
            for (i, n) in names.iter().enumerate() {
                let v = match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Integer(n) => serde_json::Value::from(n),
                    rusqlite::types::ValueRef::Real(f) => serde_json::Value::from(f),
                    rusqlite::types::ValueRef::Text(t) => {
                        serde_json::Value::from(String::from_utf8_lossy(t).into_owned())
                    }
                    _ => serde_json::Value::Null,
                };
                obj.insert(n.clone(), v);
            }
            Ok(serde_json::Value::Object(obj))
        })
    }

    fn hydrate<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> rusqlite::Result<T> {
        let text = serde_json::to_string(v)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        serde_json::from_str(&text)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    }

    /// A fund and its five latest backers, the N+1 way.
    pub fn fund(c: &mut Connection, id: i64) -> rusqlite::Result<Option<(Fund, Vec<Backer>, Top)>> {
        let Some(_) = read_fund(c, id)? else {
            return Ok(None);
        };
        let f: Fund = hydrate(&row_json(c, "SELECT * FROM funds WHERE id = ?1", id)?)?;
        let ids: Vec<i64> = c
            .prepare_cached("SELECT id FROM pledges WHERE fund_id = ?1")?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut all = Vec::with_capacity(ids.len());
        for pid in ids {
            let p = row_json(c, "SELECT * FROM pledges WHERE id = ?1", pid)?;
            let uid = p["user_id"].as_i64().unwrap_or(0);
            let u = row_json(c, "SELECT * FROM users WHERE id = ?1", uid)?;
            let graph = serde_json::json!({ "id": pid, "name": u["name"], "amount": p["amount"], "user": u, "pledge": p });
            all.push(hydrate::<Backer>(&graph)?);
        }
        all.sort_by_key(|b| std::cmp::Reverse(b.id));
        all.truncate(5);
        Ok(Some((f, all, top_funds(c)?)))
    }

    fn all_funds(c: &mut Connection) -> rusqlite::Result<Vec<Fund>> {
        let mut funds: Vec<Fund> = Vec::new();
        for id in 1..=db::FUNDS {
            funds.push(hydrate(&row_json(
                c,
                "SELECT * FROM funds WHERE id = ?1",
                id,
            )?)?);
        }
        Ok(funds)
    }

    /// The top funds: every fund loaded and sorted in the app.
    pub fn top_funds(c: &mut Connection) -> rusqlite::Result<Top> {
        let mut funds = all_funds(c)?;
        funds.sort_by_key(|f| std::cmp::Reverse(f.raised));
        Ok(funds
            .into_iter()
            .take(5)
            .map(|f| (f.id, f.title, f.raised))
            .collect())
    }

    /// The home page's data.
    pub fn home(c: &mut Connection) -> rusqlite::Result<(Fund, Top)> {
        let featured = featured_id(c)?;
        let f = hydrate(&row_json(c, "SELECT * FROM funds WHERE id = ?1", featured)?)?;
        Ok((f, top_funds(c)?))
    }
}

async fn home(state: &State) -> Resp {
    let release = state.config.release;
    let data = query(state.db.reads(), move |c| {
        if release == Release::V2 {
            return v2::home(c);
        }
        let featured = featured_id(c)?;
        let f = read_fund(c, featured)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        Ok((f, top_funds(c)?))
    })
    .await;
    match data {
        Ok((f, top)) => html(StatusCode::OK, pages::home(&f, &top)),
        Err(r) => r,
    }
}

/// A page of the fund listing, as HTML (links to each fund and to the
/// next page, `rel=next`) or as JSON (`{"items": [{"id", "title"}],
/// "next": N}`, no `next` on the last page). Ids change every start.
async fn listing(state: &State, query_string: &str, json: bool) -> Resp {
    let Some(page) = crate::listing::page_of(query_string) else {
        return text(StatusCode::NOT_FOUND, "no such page of the listing\n");
    };
    let per_page = crate::listing::PER_PAGE;
    let rows = query(state.db.reads(), move |c| {
        c.prepare_cached("SELECT id, title FROM funds ORDER BY id LIMIT ?1 OFFSET ?2")?
            .query_map([per_page, page * per_page], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .await;
    let rows = match rows {
        Ok(r) => r,
        Err(r) => return r,
    };
    let next = (page + 1 < crate::listing::Listing::pages()).then_some(page + 1);
    if json {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|(id, title)| serde_json::json!({ "id": state.listing.slug(*id), "title": title }))
            .collect();
        let mut body = serde_json::json!({ "items": items, "page": page });
        if let Some(n) = next {
            body["next"] = n.into();
        }
        return respond(StatusCode::OK, "application/json", body.to_string());
    }
    html(
        StatusCode::OK,
        pages::listing(&rows, page, next, |id| state.listing.slug(id)),
    )
}

async fn asset_page(state: &State, name: &str) -> Resp {
    // I8 at the edge: every asset answers this much later (`--slow-assets`).
    let m = &state.metrics;
    let now = m
        .static_in_flight
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    m.static_in_flight_max
        .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    if let Some(slow) = state.config.slow_assets {
        tokio::time::sleep(slow).await;
    }
    let resp = serve_asset(state, name).await;
    m.static_in_flight
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    resp
}

async fn serve_asset(state: &State, name: &str) -> Resp {
    let Some(a) = state.edge.get(name).await else {
        return text(StatusCode::NOT_FOUND, "no such asset\n");
    };
    let m = &state.metrics;
    m.add(
        if a.hit {
            &m.cache_hits
        } else {
            &m.cache_misses
        },
        1,
    );
    let mut r = respond(StatusCode::OK, a.content_type, a.body);
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(a.cache_control),
    );
    h.insert(header::AGE, HeaderValue::from(a.age));
    h.insert(
        "x-cache",
        HeaderValue::from_static(if a.hit { "HIT" } else { "MISS" }),
    );
    r
}

async fn login(state: &State, req: Request<hyper::body::Incoming>) -> Resp {
    let f = match read_fields(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (Some(email), Some(password)) = (f.get("email").cloned(), f.get("password").cloned())
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "send email and password as a form or a JSON object\n",
        );
    };
    let scan = state.config.login_scan;
    let found = match query(&state.db.primary, move |c| db::find_login(c, &email, scan)).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    match found {
        Some((user, hash, name)) if hash == db::pass_hash(&password) => {
            let token = fastrand::u64(1..);
            state
                .sessions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(token, (user, Instant::now()));
            let mut r = html(
                StatusCode::OK,
                pages::page(
                    "Fundfill",
                    "Welcome",
                    &format!(
                        "<p class=\"welcome\">Welcome back, {}.</p>",
                        pages::escape(&name)
                    ),
                ),
            );
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{SESSION_COOKIE}={token:016x}; Path=/; HttpOnly; SameSite=Lax"
            )) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        _ => html(
            StatusCode::UNAUTHORIZED,
            pages::page("Fundfill", "Log in", "<p>Wrong email or password.</p>"),
        ),
    }
}

async fn learn(state: &State, session: Option<i64>, id: &str) -> Resp {
    if session.is_none() {
        return need_login();
    }
    let Some(id) = parse_id(id) else {
        return text(StatusCode::NOT_FOUND, "no such lesson\n");
    };
    let release = state.config.release;
    let found = query(state.db.reads(), move |c| {
        let lesson: Option<(String, String, i64)> = c
            .prepare_cached("SELECT title, body, fund_id FROM lessons WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((title, body, fund_id)) = lesson else {
            return Ok(None);
        };
        let fund_title = if release == Release::V2 {
            v2::fund(c, fund_id)?.map(|(f, _, _)| f.title)
        } else {
            read_fund(c, fund_id)?.map(|f| f.title)
        };
        Ok(Some((title, body, fund_title.unwrap_or_default())))
    })
    .await;
    match found {
        Ok(Some((title, body, fund))) => html(StatusCode::OK, pages::lesson(&title, &fund, &body)),
        Ok(None) => text(StatusCode::NOT_FOUND, "no such lesson\n"),
        Err(r) => r,
    }
}

async fn fund(state: &State, id: &str) -> Resp {
    let from_listing = state.listing.fund_of(id);
    if let Some(id) = from_listing {
        if state.listing.opened(id) {
            state.metrics.add(&state.metrics.listing_funds_opened, 1);
        }
    }
    let Some(id) = parse_id(id).or(from_listing) else {
        return text(StatusCode::NOT_FOUND, "no such fund\n");
    };
    let release = state.config.release;
    let found = query(state.db.reads(), move |c| {
        if release == Release::V2 {
            return v2::fund(c, id);
        }
        let Some(f) = read_fund(c, id)? else {
            return Ok(None);
        };
        let recent = c
            .prepare_cached(
                "SELECT p.id, u.name, p.amount FROM pledges p JOIN users u ON u.id = p.user_id
                     WHERE p.fund_id = ?1 ORDER BY p.id DESC LIMIT 5",
            )?
            .query_map([id], |r| {
                Ok(Backer {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    amount: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some((f, recent, top_funds(c)?)))
    })
    .await;
    match found {
        Ok(Some((f, recent, top))) => html(StatusCode::OK, pages::fund(&f, &recent, &top)),
        Ok(None) => text(StatusCode::NOT_FOUND, "no such fund\n"),
        Err(r) => r,
    }
}

/// Collects a write in a unit of work and flushes it when the unit
/// closes; `Ok(None)` when another code path closed the unit first
/// (`--race`), and the page shows "An error has occurred".
async fn flush(state: &State, write: Write) -> Result<Option<i64>, DbError> {
    let mut conn = state.db.primary.get().await?;
    let unit = state.uow.open();
    // The framework runs its before-commit hooks as a task of their own:
    // the one moment other requests run while this unit is open. With few
    // requests there is rarely anything else to run; under heavy
    // concurrency, many.
    tokio::task::yield_now().await;
    if state.uow.close(unit).is_err() {
        state.metrics.add(&state.metrics.uow_conflicts, 1);
        return Ok(None);
    }
    Ok(Some(state.db.write(&mut conn, write).await?))
}

async fn pledge(state: &State, session: Option<i64>, req: Request<hyper::body::Incoming>) -> Resp {
    let Some(user) = session else {
        return need_login();
    };
    let f = match read_fields(req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let fund = f
        .get("fund")
        .and_then(|v| parse_id(v).or_else(|| state.listing.fund_of(v)));
    let amount = f.get("amount").and_then(|v| parse_id(v));
    let (Some(fund), Some(amount)) = (fund, amount) else {
        return text(
            StatusCode::BAD_REQUEST,
            "send fund (a number or a listing id) and amount (a positive whole number) as a form or a JSON object\n",
        );
    };
    if fund > db::FUNDS {
        return text(StatusCode::NOT_FOUND, "no such fund\n");
    }
    let write = Write::Pledge {
        id: 0,
        fund,
        user,
        amount,
    };
    match flush(state, write).await {
        Ok(Some(id)) => html(
            StatusCode::OK,
            pages::page(
                "Fundfill",
                "Thank you",
                &format!("<p class=\"thanks\" data-pledge=\"{id}\">Thank you for pledging ${amount}.</p>"),
            ),
        ),
        Ok(None) => html(StatusCode::OK, pages::error_occurred("Fundfill")),
        Err(e) => db_error(e),
    }
}

async fn profile(state: &State, session: Option<i64>) -> Resp {
    let Some(user) = session else {
        return need_login();
    };
    match query(state.db.reads(), move |c| db::user(c, user)).await {
        Ok(Some(u)) => json(&u),
        Ok(None) => text(StatusCode::NOT_FOUND, "no such user\n"),
        Err(r) => r,
    }
}

async fn update_profile(
    state: &State,
    session: Option<i64>,
    req: Request<hyper::body::Incoming>,
) -> Resp {
    let Some(user) = session else {
        return need_login();
    };
    let motto = match read_fields(req).await {
        Ok(mut f) => f.remove("motto"),
        Err(r) => return r,
    };
    let Some(motto) = motto else {
        return text(
            StatusCode::BAD_REQUEST,
            "send {\"motto\": \"...\"} as JSON, or motto=... as a form\n",
        );
    };
    let write = Write::Motto {
        user,
        motto: motto.clone(),
    };
    match flush(state, write).await {
        Ok(Some(_)) => json(&serde_json::json!({ "id": user, "motto": motto })),
        Ok(None) => html(StatusCode::OK, pages::error_occurred("Fundfill")),
        Err(e) => db_error(e),
    }
}

async fn deploy(state: &State) -> Resp {
    match state.deployer.deploy().await {
        Ok(n) => respond(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            format!("deployed release {n}\n"),
        ),
        Err(Refused::QueueFull) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "deploy queue full, try again later\n",
        ),
        Err(Refused::Stopped) => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
    }
}
