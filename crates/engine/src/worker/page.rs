//! Page loads: the document first (as a step), then the page's assets
//! several at a time, one per lane, each lane a connection the session
//! keeps between pages as a browser does. Every request is recorded on
//! its own endpoint; the page as a whole on the page's, from its intended
//! start to the end of its last request.

use futures_util::future::join_all;
use url::Url;

use super::send::Exchange;
use super::*;

/// One of a page's concurrent connections, with its own buffers and
/// random numbers (its asset steps' templates and retries draw from it).
pub(super) struct Lane<Conn: Connection> {
    conn: Option<Conn>,
    rendered: Rendered,
    request: Conn::Request,
    capture: Capture,
    rng: fastrand::Rng,
}

impl<Conn: Connection> Lane<Conn> {
    /// Drops its connection and takes the user's `tickets`: a new
    /// visitor, with none of the last one's TLS sessions.
    pub(super) fn new_visitor(&mut self, tickets: &crate::net::Tickets) {
        self.conn = None;
        self.capture.tickets = tickets.clone();
    }
}

/// An asset to fetch.
enum Asset {
    /// A listed step, by index in the flow's steps.
    Step(usize),
    /// A URL the document named.
    Named(Rc<Named>),
}

/// An asset a document named, resolved.
pub(super) struct Named {
    url: Url,
    endpoint: usize,
    same_origin: bool,
}

/// Documents a worker has read for their assets, by a hash of the page,
/// the document's URL and its body: the same document names the same
/// assets, so a page seen before is not parsed again.
#[derive(Default)]
pub(super) struct SeenDocuments {
    entries: std::collections::VecDeque<(u64, Rc<[Rc<Named>]>)>,
}

/// Most documents a worker remembers.
const SEEN_DOCUMENTS: usize = 64;

impl SeenDocuments {
    fn get(&self, key: u64) -> Option<Rc<[Rc<Named>]>> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    }

    fn put(&mut self, key: u64, named: Rc<[Rc<Named>]>) {
        if self.entries.len() >= SEEN_DOCUMENTS {
            self.entries.pop_front();
        }
        self.entries.push_back((key, named));
    }
}

/// What a lane saw of the page's requests.
#[derive(Default)]
struct LaneEnd {
    /// When its last request ended.
    last: Option<Instant>,
    /// The first failure without a response, if any.
    failed: Option<ErrorKind>,
    /// The worst error status, if any.
    status: Option<u16>,
    checks_failed: bool,
    /// Fresh responses to keep in the session's cache: key, fresh until.
    fresh: Vec<(String, Instant)>,
    /// `Set-Cookie` values of same-origin responses.
    cookies: Vec<String>,
}

/// What a page load did, for the walk.
pub(super) struct PageEnd {
    /// Whether a check with `on_fail: stop_flow` failed on the document.
    pub(super) stop_flow: bool,
    /// Whether the request budget ran out.
    pub(super) spent: bool,
}

impl<C: Connector> Shared<C> {
    /// Loads `page` of flow `flow_index` for `session`, due at `due` (or
    /// now).
    pub(super) async fn load_page(
        &self,
        session: &mut Session<C::Conn>,
        (arm, recorder): (&Arm<C>, &RefCell<Recorder>),
        flow_index: usize,
        page: &plan::Page,
        due: Option<Instant>,
    ) -> PageEnd {
        let flow = &self.scenario.flows[flow_index];
        let start = due.unwrap_or_else(Instant::now);
        let mut end = PageEnd {
            stop_flow: false,
            spent: false,
        };
        let mut outcome = LaneEnd::default();
        let mut status = None;
        let mut assets: Vec<Asset> = page.assets.iter().map(|&i| Asset::Step(i)).collect();
        if let Some(d) = page.document {
            let step = &flow.steps[d];
            if let Some(slot) = super::flow::missing(step, &session.vars) {
                if step.on_missing == OnMissing::Skip {
                    recorder.borrow_mut().record_skipped(step.endpoint);
                    return end;
                }
                if !self.take_budget() {
                    end.spent = true;
                    return end;
                }
                self.record_missing(recorder, step, slot, due, session);
                outcome.failed = Some(ErrorKind::MissingValue);
                self.record_page(recorder, page, start, &outcome, None);
                return end;
            }
            if !self.take_budget() {
                end.spent = true;
                return end;
            }
            let Some(mut sent) = self
                .send_step(session, arm, recorder, (flow_index, d), due)
                .await
            else {
                outcome.failed = Some(ErrorKind::Protocol);
                self.record_page(recorder, page, start, &outcome, None);
                return end;
            };
            end.stop_flow = self.read_response(session, step, recorder, &mut sent.sample);
            self.record_step(recorder, step, &sent);
            outcome.last = Some(Instant::now());
            outcome.checks_failed = sent.sample.checks_failed;
            match sent.sample.outcome {
                Outcome::Response { status: s } => status = Some(s),
                Outcome::Failed(kind) => outcome.failed = Some(kind),
            }
            // A document that did not come loads no assets.
            let came = matches!(sent.sample.outcome, Outcome::Response { status: 200..=399 });
            if !came {
                self.record_page(recorder, page, start, &outcome, status);
                return end;
            }
            if page.from_html {
                let named = self.named_assets(session, (arm, recorder), flow, page, step);
                assets.extend(named.iter().cloned().map(Asset::Named));
            }
        }
        self.fetch_assets(
            session,
            (arm, recorder),
            flow,
            page,
            assets,
            (start, outcome, status),
            end,
        )
        .await
    }

    /// The assets the document just received names (see [`Self::resolve`]),
    /// parsed once per distinct document.
    fn named_assets(
        &self,
        session: &Session<C::Conn>,
        (arm, recorder): (&Arm<C>, &RefCell<Recorder>),
        flow: &plan::Flow,
        page: &plan::Page,
        step: &plan::Step,
    ) -> Rc<[Rc<Named>]> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (session.arm, page.endpoint).hash(&mut h);
        match step.path.as_static() {
            Some(p) => p.as_bytes().hash(&mut h),
            None => session.rendered.path().hash(&mut h),
        }
        session.capture.body_bytes.hash(&mut h);
        let key = h.finish();
        if let Some(named) = self.seen_documents.borrow().get(key) {
            return named;
        }
        let hrefs = plan::html_assets(
            &String::from_utf8_lossy(&session.capture.body_bytes),
            plan::MAX_HTML_ASSETS,
        );
        let base = self.document_url(arm, step, &session.rendered);
        let mut resolved = Vec::new();
        self.resolve(
            arm,
            recorder,
            flow,
            page,
            base.as_ref(),
            &hrefs,
            &mut resolved,
        );
        let named: Rc<[Rc<Named>]> = resolved.into();
        self.seen_documents.borrow_mut().put(key, named.clone());
        named
    }

    /// The document's URL, which its relative links are resolved against.
    fn document_url(&self, arm: &Arm<C>, step: &plan::Step, rendered: &Rendered) -> Option<Url> {
        let path = match step.path.as_static() {
            // A step the same for everyone was not rendered for the user.
            Some(p) => format!("{}{p}", arm.target.base_path),
            None => String::from_utf8_lossy(rendered.path()).into_owned(),
        };
        Url::parse(&format!(
            "{}://{}{path}",
            arm.target.scheme.as_str(),
            arm.target.authority
        ))
        .ok()
    }

    /// The listed assets and those the document named, resolved, each
    /// once, on the target's host or an allowed one (others are not
    /// fetched: a third party's load is not the test's).
    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &self,
        arm: &Arm<C>,
        recorder: &RefCell<Recorder>,
        flow: &plan::Flow,
        page: &plan::Page,
        base: Option<&Url>,
        named: &[String],
        assets: &mut Vec<Rc<Named>>,
    ) {
        let Some(base) = base else { return };
        let listed: Vec<String> = page
            .assets
            .iter()
            .filter_map(|i| flow.steps[*i].path.as_static())
            .map(|p| format!("{}{p}", arm.target.base_path))
            .collect();
        let mut seen: Vec<String> = Vec::new();
        for href in named {
            let Ok(url) = base.join(href) else { continue };
            if !matches!(url.scheme(), "http" | "https") {
                continue;
            }
            let same_origin = redirect::same_origin(&url, &arm.target);
            let host = url.host_str().unwrap_or_default();
            let allowed = same_origin
                || self.scenario.redirects.allows(
                    &arm.target.host,
                    host.trim_start_matches('[').trim_end_matches(']'),
                );
            if !allowed {
                continue;
            }
            let path = &url[url::Position::BeforePath..url::Position::AfterQuery];
            if same_origin && listed.iter().any(|l| l == path) {
                continue;
            }
            let key = url.as_str().to_string();
            if seen.contains(&key) {
                continue;
            }
            seen.push(key);
            let name = if same_origin {
                format!("GET {}", url.path())
            } else {
                format!("GET {}{}", redirect::shown_origin(&url), url.path())
            };
            let endpoint = recorder.borrow_mut().endpoint_named(&name);
            assets.push(Rc::new(Named {
                url,
                endpoint,
                same_origin,
            }));
        }
    }

    /// Fetches `assets` over up to the page's connections at once, then
    /// records the page.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_assets(
        &self,
        session: &mut Session<C::Conn>,
        (arm, recorder): (&Arm<C>, &RefCell<Recorder>),
        flow: &plan::Flow,
        page: &plan::Page,
        mut assets: Vec<Asset>,
        (start, mut outcome, mut status): (Instant, LaneEnd, Option<u16>),
        mut end: PageEnd,
    ) -> PageEnd {
        if page.cache {
            // A fresh copy in the session's cache is not fetched again.
            let now = Instant::now();
            session.cache.retain(|(_, until)| *until > now);
            assets.retain(|a| {
                let key = self.cache_key(arm, flow, a);
                !session.cache.iter().any(|(k, _)| Some(k) == key.as_ref())
            });
        }
        let lanes = (page.connections as usize).min(assets.len());
        while session.lanes.len() < lanes {
            let lane = self.lane(session);
            session.lanes.push(lane);
        }
        // The first lane goes on the session's own connection.
        let arm_index = session.arm;
        if lanes > 0 {
            std::mem::swap(&mut session.conns[arm_index], &mut session.lanes[0].conn);
        }
        let next = Cell::new(0usize);
        let spent = Cell::new(false);
        let who_cookie = session.jar.header().map(str::to_string);
        let agent = session
            .agent
            .and_then(|i| self.scenario.clients.user_agents.get(i))
            .map(|(ua, _)| ua.as_str());
        let who = Who {
            cookie: who_cookie.as_deref(),
            agent,
        };
        let Session {
            lanes: all_lanes,
            vars,
            vu,
            iteration,
            ..
        } = &mut *session;
        let vars: &[Option<String>] = vars;
        let ends = join_all(all_lanes.iter_mut().take(lanes).map(|lane| {
            let job = LaneJob {
                arm,
                recorder,
                flow,
                page,
                assets: &assets,
                next: &next,
                spent: &spent,
                who: &who,
                vars,
                vu: *vu,
                iteration: *iteration,
            };
            self.run_lane(lane, job)
        }))
        .await;
        if lanes > 0 {
            std::mem::swap(&mut session.conns[arm_index], &mut session.lanes[0].conn);
        }
        for e in ends {
            outcome.last = outcome.last.max(e.last);
            outcome.failed = outcome.failed.or(e.failed);
            outcome.checks_failed |= e.checks_failed;
            if e.status.is_some() && status.is_none_or(|s| s < 400) {
                status = status.max(e.status);
            }
            for c in &e.cookies {
                session.jar.set(c);
            }
            if page.cache {
                session.cache.extend(e.fresh);
            }
        }
        if status.is_none() && page.document.is_none() && outcome.failed.is_none() {
            status = Some(200);
        }
        end.spent = spent.get();
        self.record_page(recorder, page, start, &outcome, status);
        end
    }

    /// A new lane, connecting and reading as the session's user does.
    fn lane(&self, session: &mut Session<C::Conn>) -> Lane<C::Conn> {
        let c = &session.capture;
        Lane {
            conn: None,
            rendered: Rendered::default(),
            request: Default::default(),
            capture: Capture {
                max_body: MAX_CAPTURED_BODY,
                body_limit: c.body_limit,
                follow: false,
                source: c.source,
                tickets: c.tickets.clone(),
                download_cap: c.download_cap,
                ..Capture::default()
            },
            rng: fastrand::Rng::with_seed(session.rng.u64(..)),
        }
    }

    /// Where an asset is kept in the session's cache: its URL's path and
    /// query on the target, or its whole URL elsewhere.
    fn cache_key(&self, arm: &Arm<C>, flow: &plan::Flow, asset: &Asset) -> Option<String> {
        match asset {
            Asset::Step(i) => flow.steps[*i]
                .path
                .as_static()
                .map(|p| format!("{}{p}", arm.target.base_path)),
            Asset::Named(n) => Some(if n.same_origin {
                n.url[url::Position::BeforePath..url::Position::AfterQuery].to_string()
            } else {
                n.url.to_string()
            }),
        }
    }

    /// Fetches assets one after another on `lane`, taking the next from
    /// the page's shared list, until none are left.
    async fn run_lane(&self, lane: &mut Lane<C::Conn>, job: LaneJob<'_, C>) -> LaneEnd {
        let mut out = LaneEnd::default();
        loop {
            let i = job.next.get();
            let Some(asset) = job.assets.get(i) else {
                break;
            };
            job.next.set(i + 1);
            if job.spent.get() || !self.take_budget() {
                job.spent.set(true);
                self.end.cancel();
                break;
            }
            let (endpoint, step) = match asset {
                Asset::Step(s) => (job.flow.steps[*s].endpoint, Some(&job.flow.steps[*s])),
                Asset::Named(n) => (n.endpoint, None),
            };
            if let Some(step) = step.filter(|s| super::flow::missing(s, job.vars).is_some()) {
                match step.on_missing {
                    OnMissing::Skip => job.recorder.borrow_mut().record_skipped(endpoint),
                    OnMissing::Fail => {
                        self.record_failure(job.recorder, endpoint, None, ErrorKind::MissingValue);
                        out.failed = out.failed.or(Some(ErrorKind::MissingValue));
                    }
                }
                continue;
            }
            lane.capture.cookies = self.scenario.cookies;
            lane.capture.headers = true;
            lane.capture.body = step.is_some_and(|s| s.needs.body);
            let mut own = None;
            let same_origin = match asset {
                Asset::Step(_) => true,
                Asset::Named(n) => n.same_origin,
            };
            let Some(elsewhere) = self.render_asset(lane, &job, asset) else {
                self.record_failure(job.recorder, endpoint, None, ErrorKind::Protocol);
                out.failed = out.failed.or(Some(ErrorKind::Protocol));
                continue;
            };
            let (connector, conn) = match &elsewhere {
                Some(c) => (c, &mut own),
                None => (&job.arm.connector, &mut lane.conn),
            };
            let timeout = step.and_then(|s| s.timeout).unwrap_or(self.timeout);
            let mut ex = Exchange {
                connector,
                conn,
                req: &lane.request,
                method: &http::Method::GET,
                endpoint,
                timeout,
                capture: &mut lane.capture,
            };
            let retry = step.and_then(|s| s.retry.as_ref());
            let (mut sample, attempts) = self
                .with_retries(retry, &mut ex, None, job.recorder, &mut lane.rng)
                .await;
            let done = Instant::now();
            out.last = Some(done);
            if let Some(step) = step {
                self.check_asset(step, &mut sample, job, lane);
            }
            self.after_asset(&mut out, &sample, lane, &job, (asset, step, endpoint), done);
            out.checks_failed |= sample.checks_failed;
            if same_origin {
                out.cookies.append(&mut lane.capture.set_cookies);
            }
            let sent = super::flow::Sent { sample, attempts };
            match step {
                Some(step) => self.record_step(job.recorder, step, &sent),
                None => job.recorder.borrow_mut().record(&sent.sample),
            }
        }
        out
    }

    /// Takes note of an asset's response: its status or failure for the
    /// page, the cache audit, and (pages with `cache`) how long it stays
    /// fresh.
    fn after_asset(
        &self,
        out: &mut LaneEnd,
        sample: &Sample,
        lane: &Lane<C::Conn>,
        job: &LaneJob<'_, C>,
        (asset, step, endpoint): (&Asset, Option<&plan::Step>, usize),
        done: Instant,
    ) {
        match sample.outcome {
            Outcome::Response { status } => {
                if status >= 400 {
                    out.status = out.status.max(Some(status));
                }
                if (200..300).contains(&status) {
                    let obs = stats::CacheObs::of(
                        lane.capture
                            .header_list
                            .iter()
                            .map(|(n, v)| (n.as_str(), v.as_str())),
                    );
                    let audited = step.is_none_or(|s| s.watch_cache);
                    if audited {
                        job.recorder.borrow_mut().record_cache(endpoint, &obs);
                    }
                    if job.page.cache {
                        let fresh = lane
                            .capture
                            .header_list
                            .iter()
                            .find(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
                            .and_then(|(_, v)| plan::fresh_for(v));
                        if let (Some(d), Some(key)) =
                            (fresh, self.cache_key(job.arm, job.flow, asset))
                        {
                            out.fresh.push((key, done + d));
                        }
                    }
                }
            }
            Outcome::Failed(kind) => out.failed = out.failed.or(Some(kind)),
        }
    }

    /// Renders `asset` into the lane's request: a listed step for the
    /// user, or a GET of a URL the document named. `Some(None)` goes to
    /// the target, `Some(Some(connector))` to an allowed host; `None` when
    /// it cannot be sent.
    fn render_asset(
        &self,
        lane: &mut Lane<C::Conn>,
        job: &LaneJob<'_, C>,
        asset: &Asset,
    ) -> Option<Option<C>> {
        match asset {
            Asset::Step(i) => {
                let step = &job.flow.steps[*i];
                let mut ctx = job.ctx(&mut lane.rng);
                lane.rendered.step(&job.arm.target, step, &mut ctx);
                let parts = lane.rendered.step_parts(&job.arm.target, step, job.who);
                lane.request.render(&parts).ok().map(|()| None)
            }
            Asset::Named(n) => {
                let elsewhere = if n.same_origin {
                    None
                } else {
                    Some(self.connector_to(job.arm, &n.url)?)
                };
                let url = &n.url;
                lane.rendered
                    .asset(&url[url::Position::BeforePath..url::Position::AfterQuery]);
                let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
                let parts =
                    lane.rendered
                        .asset_parts(url.scheme(), authority, job.who, n.same_origin);
                lane.request.render(&parts).ok().map(|()| elsewhere)
            }
        }
    }

    /// A listed asset's checks (it extracts nothing).
    fn check_asset(
        &self,
        step: &plan::Step,
        sample: &mut Sample,
        job: LaneJob<'_, C>,
        lane: &mut Lane<C::Conn>,
    ) {
        let Outcome::Response { status } = sample.outcome else {
            return;
        };
        if step.checks.is_empty() {
            return;
        }
        let view = ResponseView {
            status,
            headers: &lane.capture.header_list,
            body: &lane.capture.body_bytes,
            latency: sample.latency(),
        };
        let mut json = LazyJson::new(&lane.capture.body_bytes);
        let mut ctx = job.ctx(&mut lane.rng);
        let mut recorder = job.recorder.borrow_mut();
        for check in &step.checks {
            let passed = check.passes(&view, &mut json, &mut ctx);
            recorder.record_check(check.id, passed);
            sample.checks_failed |= !passed;
        }
    }

    /// Records the page as a whole on its endpoint: from its intended
    /// start to the end of its last request; failed when a request got no
    /// response, else with the document's status (or an asset's error
    /// status), its checks failed when any request's did.
    fn record_page(
        &self,
        recorder: &RefCell<Recorder>,
        page: &plan::Page,
        start: Instant,
        lanes: &LaneEnd,
        status: Option<u16>,
    ) {
        let last = lanes.last.unwrap_or(start).max(start);
        let outcome = match (lanes.failed, status) {
            (Some(kind), _) => Outcome::Failed(kind),
            (None, Some(status)) => Outcome::Response { status },
            (None, None) => Outcome::Failed(ErrorKind::Protocol),
        };
        recorder.borrow_mut().record_page(&Sample {
            endpoint: page.endpoint,
            due: start.saturating_duration_since(self.start),
            lag: Duration::ZERO,
            service: last - start,
            phases: Phases::default(),
            outcome,
            checks_failed: lanes.checks_failed,
            client: ClientWork::default(),
        });
    }
}

/// What every lane of one page shares.
struct LaneJob<'a, C: Connector> {
    arm: &'a Arm<C>,
    recorder: &'a RefCell<Recorder>,
    flow: &'a plan::Flow,
    page: &'a plan::Page,
    assets: &'a [Asset],
    /// The next asset to fetch, shared by the lanes.
    next: &'a Cell<usize>,
    /// Set when the request budget ran out.
    spent: &'a Cell<bool>,
    who: &'a Who<'a>,
    vars: &'a [Option<String>],
    vu: u64,
    iteration: u64,
}

impl<'a, C: Connector> LaneJob<'a, C> {
    /// What a lane's templates and checks read: the user's values, the
    /// lane's random numbers.
    fn ctx<'r>(&self, rng: &'r mut fastrand::Rng) -> RenderCtx<'r>
    where
        'a: 'r,
    {
        RenderCtx {
            vars: self.vars,
            vu: self.vu,
            iteration: self.iteration,
            rng,
            now_ms: super::flow::unix_ms(),
        }
    }
}

impl<C: Connector> Clone for LaneJob<'_, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C: Connector> Copy for LaneJob<'_, C> {}
