//! `throng import`: recordings (a browser's HAR, or `throng record`'s) as
//! scenario files to edit.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::anyhow;
use replay::recording::{Exchange, Reader, Rule};

use crate::args::{ImportHarArgs, ImportRecordingArgs};
use crate::{exit, output, Failure};

/// `throng import har`: the scenario of a recording, to standard output
/// or `--out`.
pub fn har(a: &ImportHarArgs) -> Result<u8, Failure> {
    let text = std::fs::read_to_string(&a.har)
        .map_err(|e| Failure::usage(anyhow!("cannot read {}: {e}", a.har.display())))?;
    let yaml = scenario::import_har(
        &text,
        &scenario::HarOptions {
            no_assets: a.no_assets,
            name: a.name.clone(),
        },
    )
    .map_err(|e| Failure::usage(anyhow!("{}: {e}", a.har.display())))?;
    emit(&yaml, a.out.as_deref())
}

fn emit(yaml: &str, out: Option<&std::path::Path>) -> Result<u8, Failure> {
    match out {
        Some(out) => {
            output::write_quietly(out, yaml)?;
            eprintln!("scenario written to {}", out.display());
        }
        None => say_part!("{yaml}"),
    }
    Ok(exit::OK)
}

type Recording = Reader<Box<dyn std::io::BufRead + Send>>;

fn open(a: &ImportRecordingArgs) -> Result<Recording, Failure> {
    let path = &a.recording;
    let (reader, _, _) = crate::replay::open(path).map_err(Failure::usage)?;
    Reader::open(reader).map_err(|e| Failure::usage(anyhow!("{}: {e}", path.display())))
}

/// `throng import recording`: sessions of a recording as a scenario, one
/// flow each.
pub fn recording(a: &ImportRecordingArgs) -> Result<u8, Failure> {
    let in_time = |e: &Exchange| {
        let at = Duration::from_micros(e.at_us);
        a.from.is_none_or(|f| at >= f) && a.to.is_none_or(|t| at < t)
    };
    // Without --session, the busiest session in the chosen time (a first
    // pass counts; the recording is streamed, never held whole).
    let mut counts: HashMap<u64, u64> = HashMap::new();
    let chosen: Vec<u64> = if a.sessions.is_empty() {
        for e in open(a)?.filter(|e| in_time(e)) {
            *counts.entry(e.session).or_insert(0) += 1;
        }
        let busiest = counts
            .iter()
            .max_by_key(|&(s, n)| (*n, std::cmp::Reverse(*s)))
            .map(|(s, _)| *s);
        busiest.into_iter().collect()
    } else {
        a.sessions.clone()
    };
    let mut reader = open(a)?;
    let head = reader.head().clone();
    let mut sessions: Vec<scenario::RecordedSession> = chosen
        .iter()
        .map(|s| scenario::RecordedSession {
            name: format!("session {s}"),
            requests: Vec::new(),
        })
        .collect();
    let mut binary_bodies = 0;
    for e in reader.by_ref().filter(|e| in_time(e)) {
        let Some(i) = chosen.iter().position(|&s| s == e.session) else {
            continue;
        };
        binary_bodies += u64::from(e.body_b64.is_some());
        sessions[i].requests.push(request(e));
    }
    for s in &mut sessions {
        s.requests
            .sort_by(|a, b| a.started_ms.total_cmp(&b.started_ms));
    }
    let empty: Vec<u64> = chosen
        .iter()
        .zip(&sessions)
        .filter(|(_, s)| s.requests.is_empty())
        .map(|(n, _)| *n)
        .collect();
    if !empty.is_empty() {
        return Err(Failure::usage(anyhow!(
            "{}: no requests of session(s) {empty:?}{}; `throng import recording FILE` without \
             --session takes the busiest",
            a.recording.display(),
            if a.from.is_some() || a.to.is_some() {
                " in the chosen time"
            } else {
                ""
            }
        )));
    }
    let mut notes = vec![format!(
        "From {} ({}, recorded from {}): session(s) {}{}.",
        a.recording.display(),
        head.schema,
        head.started,
        chosen
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        if a.sessions.is_empty() && counts.len() > 1 {
            format!(
                ", the busiest of {} (--session N picks others)",
                counts.len()
            )
        } else {
            String::new()
        }
    )];
    if binary_bodies > 0 {
        notes.push(format!(
            "{binary_bodies} binary request bodies left out (a scenario's body is text)."
        ));
    }
    if reader.damaged() > 0 {
        notes.push(format!(
            "{} damaged lines of the recording skipped.",
            reader.damaged()
        ));
    }
    if let Some(why) = reader.truncated() {
        notes.push(format!("The recording is cut short: {why}."));
    }
    let origin = head.upstream.trim_end_matches('/');
    let yaml = scenario::import_recording(
        origin,
        sessions,
        &scenario::HarOptions {
            no_assets: a.no_assets,
            name: a.name.clone(),
        },
        &notes,
    )
    .map_err(|e| Failure::usage(anyhow!("{}: {e}", a.recording.display())))?;
    emit(&yaml, a.out.as_deref())
}

/// An exchange as the importer takes it.
fn request(e: Exchange) -> scenario::RecordedRequest {
    let location = e
        .response_headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("location"))
        .map(|(_, v)| v.clone());
    scenario::RecordedRequest {
        seq: e.seq,
        method: e.method,
        path: e.path,
        headers: e.headers,
        body: e.body,
        status: e.status,
        started_ms: e.at_us as f64 / 1000.0,
        took_ms: e.duration_us as f64 / 1000.0,
        location,
        uses: e
            .uses
            .into_iter()
            .map(|u| {
                let rule = match u.rule {
                    Rule::Json(p) => scenario::RecordedRule::Json(p),
                    Rule::Header(h) => scenario::RecordedRule::Header(h),
                    Rule::Input(n) => scenario::RecordedRule::Input(n),
                    Rule::Link { parent, .. } => scenario::RecordedRule::Link(parent),
                    Rule::Location => scenario::RecordedRule::Location,
                };
                (u.text, u.from, rule)
            })
            .collect(),
    }
}
