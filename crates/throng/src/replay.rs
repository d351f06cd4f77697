//! `throng replay`: an access log sent again, at its own pace.
//!
//! The log is read twice, streamed both times so memory stays flat
//! however large it is. The first pass counts: lines, malformed ones,
//! requests per second (the planned load for reports and findings),
//! endpoints, and the requests of each whole second (so the second pass
//! can spread them across it). The second pass runs on a thread of its own
//! during the run and feeds each worker its requests in time slices
//! through a bounded channel, so it stays a little ahead of the clock
//! and no further. A client's session always goes to the same worker.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use plan::{Arrivals, HttpVersion, Model, Plan, Profile, ReplayRequest, Scenario, Shape, Target};
use regex::Regex;
use replay::recorded::{secret_var, Converter, Filled, Flows};
use replay::{Expander, JsonFields, LogFormat, Options, Tally};
use tokio::sync::mpsc;

use crate::args::{LogFormatArg, OutputArgs, ReplayArgs};
use crate::spec::{self, Outputs, RunSpec};
use crate::Failure;

/// Most pieces of the planned-load profile written to results: a long
/// log's per-second rate is averaged into this many steps.
const PROFILE_PIECES: usize = 600;

/// Requests per batch sent to a worker at most, and the longest span of
/// due time a batch covers.
const BATCH: usize = 512;
const SLICE: Duration = Duration::from_millis(20);

/// Batches queued per worker: how far the reader may run ahead.
const QUEUED: usize = 16;

/// `throng replay`.
pub fn replay(args: &ReplayArgs) -> Result<u8, Failure> {
    let opts = options(args)?;
    let mut target = Target::parse(&args.target).map_err(Failure::usage)?;
    if let Some(host) = &args.host {
        target.authority = host.clone();
    }
    let outputs = Outputs::new(
        &OutputArgs {
            out: args.out.clone(),
            exports: args.exports.clone(),
            quiet: args.quiet,
            ..OutputArgs::default()
        },
        false,
    );
    outputs.check()?;

    let mut opts = opts;
    let first = first_pass(&args.log, &opts, args.requests, args.quiet).map_err(Failure::usage)?;
    let length = first.profile.duration().unwrap_or_default();
    if args.spread.is_none() {
        opts.spread = (length / 10).min(Duration::from_secs(60));
    }
    eprintln!(
        "{}",
        describe(&args.log, &first.tally, &first.profile, args)
    );
    if let Some(r) = &first.recording {
        eprintln!("{}", describe_recording(r));
    }
    if first.tally.requests == 0 {
        return Err(Failure::usage(anyhow!(
            "{}: nothing to replay{}",
            args.log.display(),
            if first.tally.writes_skipped > 0 {
                " (its requests write: add --allow-writes to send them)"
            } else {
                ""
            }
        )));
    }

    let scenario = Scenario::replay(
        format!("replay of {}", args.log.display()),
        target,
        if args.http2 {
            HttpVersion::Http2
        } else {
            HttpVersion::Http1
        },
        first.endpoints.clone(),
    );
    let plan = Plan {
        model: Model::Open {
            rate: first.profile.clone(),
            arrivals: Arrivals::Uniform,
            max_in_flight: Some(args.max_in_flight),
        },
        // `--requests N` is the log's first N requests, whatever the
        // worker count: the reader stops after them (a budget shared
        // between workers would send each worker's first share instead).
        max_requests: None,
        scenario,
        timeout: args.timeout,
        grace: Duration::from_secs(10),
        workers: args.workers.unwrap_or_else(spec::default_workers),
        seed: 1,
        ab: Vec::new(),
        segment: args.segment.unwrap_or_default(),
        start_at: args.start_at.map(spec::check_start_at).transpose()?,
        snapshot_every: None,
        max_rate: args.max_rate,
        max_body: plan::DEFAULT_MAX_BODY,
        addrs: Vec::new(),
    };
    let mut load = spec::load_info(&plan, None);
    load.arrivals = Some("replay".into());
    load.max_requests = args.requests;
    let mut run = RunSpec::of_plan(plan, args.thresholds.clone(), load, outputs)?;

    let workers = run.plan.worker_count();
    let (senders, feeds): (Vec<_>, Vec<_>) = (0..workers).map(|_| mpsc::channel(QUEUED)).unzip();
    let path = args.log.clone();
    let limit = args.requests;
    let segment = args.segment.unwrap_or_default();
    let flows = first.recording.map(|r| r.flows);
    let reader = std::thread::Builder::new()
        .name("throng-replay".into())
        .spawn(move || second_pass(&path, opts, first.spread, flows, limit, segment, senders))
        .map_err(|e| Failure::usage(anyhow!("cannot start the log reader: {e}")))?;

    run.feeds = feeds;
    let code = crate::run::execute(run);
    // The reader ends once the run stops taking requests (its channels close).
    match reader.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("error: reading {} stopped: {e:#}", args.log.display()),
        Err(_) => eprintln!("error: the log reader failed"),
    }
    code
}

fn options(args: &ReplayArgs) -> Result<Options, Failure> {
    let format = match args.format {
        LogFormatArg::Combined => LogFormat::Combined,
        LogFormatArg::Common => LogFormat::Common,
        LogFormatArg::Json => LogFormat::Json(
            args.fields
                .as_deref()
                .map(JsonFields::parse)
                .transpose()
                .map_err(|e| Failure::usage(anyhow!("--fields: {e}")))?
                .unwrap_or_default(),
        ),
    };
    if args.fields.is_some() && args.format != LogFormatArg::Json {
        return Err(Failure::usage(anyhow!(
            "--fields names JSON fields: add --format json"
        )));
    }
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(Failure::usage(anyhow!(
            "--speed must be more than 0 (2 replays twice as fast)"
        )));
    }
    if args.scale == 0 {
        return Err(Failure::usage(anyhow!(
            "--scale must be at least 1 (1 is the log as it is)"
        )));
    }
    let regexes = |name: &str, list: &[String]| -> Result<Vec<Regex>, Failure> {
        list.iter()
            .map(|r| Regex::new(r).map_err(|e| Failure::usage(anyhow!("{name} {r:?}: {e}"))))
            .collect()
    };
    Ok(Options {
        speed: args.speed,
        scale: args.scale,
        spread: args.spread.unwrap_or_default(),
        session_timeout: args.session_timeout,
        allow_writes: args.allow_writes,
        reorder: args.reorder_window,
        include: regexes("--include", &args.include)?,
        exclude: regexes("--exclude", &args.exclude)?,
        ..Options::new(format)
    })
}

/// Counts the bytes read from the file (compressed ones, for a gzip log),
/// for the reading's progress.
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The time left of a job `done` of `total` through after `elapsed`, at
/// the pace so far; `None` before anything is done.
pub fn time_left(done: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    (done > 0 && total > 0)
        .then(|| elapsed.mul_f64(total.saturating_sub(done) as f64 / done as f64))
}

/// Opens a log, decompressing gzip (by its magic number, whatever its name),
/// with the size of the file and a count of the bytes read from it so far.
pub(crate) fn open(path: &Path) -> anyhow::Result<(Box<dyn BufRead + Send>, u64, Arc<AtomicU64>)> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut magic = [0u8; 2];
    let gzip = file
        .read(&mut magic)
        .map(|n| n == 2 && magic == [0x1f, 0x8b])?;
    let read = Arc::new(AtomicU64::new(0));
    let file = Counted {
        inner: File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
        read: read.clone(),
    };
    let reader: Box<dyn BufRead + Send> = if gzip {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(file),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    Ok((reader, size, read))
}

/// What is replayed: an access log's lines, or a recording's exchanges
/// (turned into requests by a converter; a first pass also learns which
/// values flow between them).
enum Input {
    Log(Box<dyn BufRead + Send>),
    Recording(Box<RecordingInput>),
}

/// A recording being read.
struct RecordingInput {
    reader: RecordingReader,
    converter: Converter,
    flows: Option<Flows>,
}

type RecordingReader = replay::recording::Reader<Box<dyn BufRead + Send>>;

/// Whether the file is a recording: its first line names the recordings'
/// schema (any version: a newer one is refused with why, not read as a log).
fn is_recording(reader: &mut dyn BufRead) -> std::io::Result<bool> {
    let start = reader.fill_buf()?;
    let line = start.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(line.trim_ascii_start().starts_with(b"{")
        && line.windows(17).any(|w| w == b"throng.recording/"))
}

/// The placeholders' values the environment gives (`THRONG_MASKED_N`).
fn secrets_from_env() -> HashMap<u64, String> {
    std::env::vars()
        .filter_map(|(k, v)| Some((k.strip_prefix("THRONG_MASKED_")?.parse().ok()?, v)))
        .collect()
}

impl Input {
    /// Opens `path` as a log or a recording; for a recording, `flows`
    /// from a first pass (or none, to learn them).
    fn open(path: &Path, flows: Option<Flows>) -> anyhow::Result<(Input, u64, Arc<AtomicU64>)> {
        let (mut reader, size, read) = open(path)?;
        if !is_recording(&mut *reader)? {
            return Ok((Input::Log(reader), size, read));
        }
        let reader = replay::recording::Reader::open(reader)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let learning = flows.is_none();
        let converter =
            Converter::new(reader.head(), flows.unwrap_or_default(), secrets_from_env())
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        Ok((
            Input::Recording(Box::new(RecordingInput {
                reader,
                converter,
                flows: learning.then(Flows::default),
            })),
            size,
            read,
        ))
    }

    /// Gives `ex` each line or exchange in turn; after each, `after(ex,
    /// out, line_no)` says whether to go on.
    fn feed(
        &mut self,
        ex: &mut Expander,
        out: &mut Vec<ReplayRequest>,
        mut after: impl FnMut(&mut Expander, &mut Vec<ReplayRequest>, u64) -> bool,
    ) -> anyhow::Result<()> {
        match self {
            Input::Log(reader) => for_each_line(&mut **reader, |line_no, line| {
                ex.push(line_no, line, out);
                after(ex, out, line_no)
            }),
            Input::Recording(r) => {
                let RecordingInput {
                    reader,
                    converter,
                    flows,
                } = &mut **r;
                let mut n = 0;
                for e in reader.by_ref() {
                    n += 1;
                    if let Some(flows) = flows.as_mut() {
                        flows.learn(&e);
                    }
                    ex.push_parsed(n, converter.record(e), out);
                    if !after(ex, out, n) {
                        break;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Calls `each(line_no, line)` for every line; invalid UTF-8 is replaced,
/// not fatal (the line is then likely malformed, and counted as such).
fn for_each_line(
    reader: &mut dyn BufRead,
    mut each: impl FnMut(u64, &str) -> bool,
) -> anyhow::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut line_no = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        line_no += 1;
        let text = String::from_utf8_lossy(&buf);
        if !each(line_no, text.trim_end_matches(['\n', '\r'])) {
            return Ok(());
        }
    }
}

/// What the first pass learned.
struct FirstPass {
    tally: Tally,
    endpoints: Vec<String>,
    /// Requests per whole second of log time, to spread them in the second pass.
    spread: HashMap<i64, u32>,
    /// The planned load: requests per second of the replay.
    profile: Profile,
    /// A recording's: what flows, what was filled in, and whether it is cut.
    recording: Option<RecordingPass>,
}

/// What the first pass learned of a recording.
struct RecordingPass {
    flows: Flows,
    filled: Filled,
    damaged: Vec<(u64, String)>,
    damaged_count: u64,
    truncated: Option<String>,
}

/// The first pass counts the log's own requests (copies of scaled
/// sessions differ only by shifts well under the log's length, so the
/// planned load is the log's times the scale).
///
/// With `limit`, only the first that many requests (in time order, copies
/// included) are planned.
fn first_pass(
    path: &Path,
    opts: &Options,
    limit: Option<u64>,
    quiet: bool,
) -> anyhow::Result<FirstPass> {
    let (mut input, size, read) = Input::open(path, None)?;
    let mut ex = Expander::new(
        Options {
            scale: 1,
            ..opts.clone()
        },
        HashMap::new(),
    );
    let mut out = Vec::new();
    let mut per_second: Vec<u64> = Vec::new();
    let started = Instant::now();
    let mut shown = started;
    input.feed(&mut ex, &mut out, |ex, out, line_no| {
        count_seconds(out, &mut per_second);
        if !quiet && line_no % 65_536 == 0 && shown.elapsed() > Duration::from_secs(2) {
            shown = Instant::now();
            let done = read.load(Ordering::Relaxed);
            let left = time_left(done, size, started.elapsed())
                .map(|d| {
                    format!(
                        ", about {} left",
                        plan::format_duration(Duration::from_secs(d.as_secs()))
                    )
                })
                .unwrap_or_default();
            eprintln!(
                "replay: reading {}: {line_no} lines, {:.0}% of {} MB in {}{left}",
                path.display(),
                done as f64 * 100.0 / size.max(1) as f64,
                size / 1_000_000,
                plan::format_duration(Duration::from_secs(started.elapsed().as_secs())),
            );
        }
        // With `--requests N`, the log's first N requests are known once N
        // have come out in time order (a copy is never before its
        // original): the rest of the log is not read, nor named.
        limit.is_none_or(|n| ex.tally.requests < n)
    })?;
    ex.finish(&mut out);
    let recording = match input {
        Input::Log(_) => None,
        Input::Recording(r) => Some(RecordingPass {
            filled: r.converter.filled.clone(),
            damaged: r.reader.first_damaged().to_vec(),
            damaged_count: r.reader.damaged(),
            truncated: r.reader.truncated().map(str::to_string),
            flows: r.flows.unwrap_or_default(),
        }),
    };
    count_seconds(&mut out, &mut per_second);
    let scale = u64::from(opts.scale.max(1));
    per_second.iter_mut().for_each(|n| *n *= scale);
    let mut tally = ex.tally.clone();
    tally.requests *= scale;
    if let Some(limit) = limit {
        // The plan ends with the first `limit` requests.
        let mut left = limit;
        for n in per_second.iter_mut() {
            *n = (*n).min(left);
            left -= *n;
        }
        while per_second.last() == Some(&0) {
            per_second.pop();
        }
        tally.requests = tally.requests.min(limit);
    }
    Ok(FirstPass {
        tally,
        endpoints: ex.endpoints().to_vec(),
        spread: ex.second_counts().clone(),
        profile: profile(&per_second),
        recording,
    })
}

/// Counts the requests of `out` (emptied) by the second they are due in.
fn count_seconds(out: &mut Vec<ReplayRequest>, per_second: &mut Vec<u64>) {
    for r in out.drain(..) {
        let s = r.due.as_secs() as usize;
        if per_second.len() <= s {
            per_second.resize(s + 1, 0);
        }
        per_second[s] += 1;
    }
}

/// The per-second rate as steps, averaged into at most [`PROFILE_PIECES`].
fn profile(per_second: &[u64]) -> Profile {
    let width = per_second.len().div_ceil(PROFILE_PIECES).max(1);
    let shapes: Vec<Shape> = per_second
        .chunks(width)
        .map(|c| Shape::Step {
            target: c.iter().sum::<u64>() as f64 / c.len() as f64,
            duration: Duration::from_secs(c.len() as u64),
        })
        .collect();
    Profile::from_shapes(&shapes).unwrap_or_else(|_| Profile::constant(0.0, None))
}

/// Streams the log again, sending each worker its requests in batches:
/// of `segment`'s sessions only, and of the log's first `limit`.
#[allow(clippy::too_many_arguments)]
fn second_pass(
    path: &Path,
    opts: Options,
    spread: HashMap<i64, u32>,
    flows: Option<Flows>,
    limit: Option<u64>,
    segment: plan::Segment,
    senders: Vec<mpsc::Sender<Vec<ReplayRequest>>>,
) -> anyhow::Result<()> {
    let (mut input, _, _) = Input::open(path, Some(flows.unwrap_or_default()))?;
    let workers = senders.len().max(1);
    let mut ex = Expander::new(opts, spread);
    let mut out = Vec::new();
    let mut batches: Vec<Vec<ReplayRequest>> = vec![Vec::new(); workers];
    let mut slice_end = SLICE;
    let mut pending = 0usize;
    // Sends every pending batch; false once the run stopped taking them.
    let flush = |batches: &mut Vec<Vec<ReplayRequest>>| -> bool {
        for (batch, tx) in batches.iter_mut().zip(&senders) {
            if !batch.is_empty() && tx.blocking_send(std::mem::take(batch)).is_err() {
                return false;
            }
        }
        true
    };
    let mut taking = true;
    let mut left = limit.unwrap_or(u64::MAX);
    let mut route = |out: &mut Vec<ReplayRequest>, batches: &mut Vec<Vec<ReplayRequest>>| {
        for r in out.drain(..) {
            // `--requests N`: the first N in time order, then no more.
            if left == 0 {
                break;
            }
            left -= 1;
            let (mine, worker) = route_of(r.session, segment, workers);
            if !mine {
                continue;
            }
            if r.due >= slice_end || pending >= BATCH {
                taking &= flush(batches);
                pending = 0;
                slice_end = r.due + SLICE;
            }
            batches[worker].push(r);
            pending += 1;
        }
        // Whether the run takes more, and more are wanted.
        (taking, left > 0)
    };
    input.feed(&mut ex, &mut out, |_, out, _| {
        let (taking, wanted) = route(out, &mut batches);
        taking && wanted
    })?;
    ex.finish(&mut out);
    if route(&mut out, &mut batches).0 {
        flush(&mut batches);
    }
    Ok(())
}

/// Whether a session is `segment`'s, and the worker (of `workers`) that
/// sends it. The segment takes every N-th session by number and the worker
/// what is left of it, so that the two splits are independent (by the
/// same remainder, 2 segments of 2 workers would send everything from one
/// worker each).
fn route_of(session: u64, segment: plan::Segment, workers: usize) -> (bool, usize) {
    let n = segment.count.max(1) as u64;
    let mine = session % n == segment.index as u64;
    (mine, ((session / n) % workers.max(1) as u64) as usize)
}

/// What will be replayed, before the run: the log's numbers and the plan.
fn describe(path: &Path, t: &Tally, profile: &Profile, args: &ReplayArgs) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let length = profile.duration().unwrap_or_default();
    let _ = write!(
        out,
        "replay: {} has {} lines: {} requests to replay",
        path.display(),
        t.lines,
        t.logged
    );
    if args.scale > 1 {
        let _ = write!(out, " (x{} scale: {} sent)", args.scale, t.requests);
    }
    if let Some(n) = args.requests {
        let _ = write!(
            out,
            " (--requests {n}: the log read as far as its first {n})"
        );
    }
    if let Some(s) = args.segment.filter(|s| !s.is_whole()) {
        let _ = write!(
            out,
            " (segment {}/{}: about 1/{} of them, by session)",
            s.index, s.count, s.count
        );
    }
    let _ = write!(
        out,
        " over {} at x{} speed, {} sessions",
        plan::format_duration(length),
        args.speed,
        t.sessions
    );
    if t.writes_skipped > 0 {
        let _ = write!(
            out,
            "\n  {} writes left out (POST, PUT, PATCH, DELETE...: --allow-writes sends them)",
            t.writes_skipped
        );
    }
    if t.filtered_out > 0 {
        let _ = write!(
            out,
            "\n  {} left out by --include/--exclude",
            t.filtered_out
        );
    }
    if t.out_of_order > 0 {
        let _ = write!(
            out,
            "\n  {} lines more out of time order than --reorder-window {} (sent at once, as soon as read)",
            t.out_of_order,
            plan::format_duration(args.reorder_window)
        );
    }
    if t.malformed > 0 {
        let _ = write!(out, "\n  {} malformed lines, skipped:", t.malformed);
        for (line, why) in &t.first_malformed {
            let _ = write!(out, "\n    line {line}: {why}");
        }
        if t.malformed > t.first_malformed.len() as u64 {
            let _ = write!(out, "\n    ...");
        }
    }
    out
}

/// What a recording adds to the description: values that flow, secrets
/// filled or missing, damage.
fn describe_recording(r: &RecordingPass) -> String {
    use std::fmt::Write as _;
    let mut out = format!(
        "  a recording: headers and bodies sent as recorded, each session with its own cookies; \
         {} values flow from a response into a later request (taken from the replayed responses)",
        r.flows.len()
    );
    let f = &r.filled;
    if f.from_env > 0 {
        let _ = write!(
            out,
            "\n  {} masked values filled from THRONG_MASKED_N",
            f.from_env
        );
    }
    for (n, count) in f.missing.iter().take(5) {
        let place = f.missing_where.get(n).map_or("", String::as_str);
        let _ = write!(
            out,
            "\n  __masked_{n}__ has no value ({count} requests, first in {place}): set {} to send one; \
             until then a header with it is left out, a path or body sent with it",
            secret_var(*n)
        );
    }
    if f.missing.len() > 5 {
        let _ = write!(
            out,
            "\n  ... {} more masked values without one",
            f.missing.len() - 5
        );
    }
    if f.bodies_cut > 0 {
        let _ = write!(
            out,
            "\n  {} request bodies were cut when recorded (--body-cap): sent as recorded, shorter",
            f.bodies_cut
        );
    }
    if r.damaged_count > 0 {
        let _ = write!(out, "\n  {} damaged lines skipped:", r.damaged_count);
        for (line, why) in &r.damaged {
            let _ = write!(out, "\n    line {line}: {why}");
        }
    }
    if let Some(why) = &r.truncated {
        let _ = write!(
            out,
            "\n  the recording is cut short ({why}): everything before is replayed"
        );
    }
    out
}

#[cfg(test)]
mod progress_tests {
    use std::time::Duration;

    use super::time_left;

    #[test]
    fn the_time_left_follows_the_pace_so_far() {
        let s = Duration::from_secs;
        // A quarter of the file in 10 s: 30 s to go.
        assert_eq!(time_left(250, 1000, s(10)), Some(s(30)));
        assert_eq!(time_left(1000, 1000, s(40)), Some(s(0)));
        // Nothing read yet, or a size unknown (a pipe): no estimate.
        assert_eq!(time_left(0, 1000, s(1)), None);
        assert_eq!(time_left(10, 0, s(1)), None);
    }
}
