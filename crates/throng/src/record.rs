//! `throng record`: the recording proxy, from the command line to its
//! summary.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};

use crate::args::RecordArgs;
use crate::{exit, Failure};

/// How long exchanges under way get to finish once asked to stop.
const GRACE: Duration = Duration::from_secs(5);

/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

fn options(args: &RecordArgs) -> Result<record::Options, Failure> {
    let listen: SocketAddr = args.listen.parse().map_err(|_| {
        Failure::usage(anyhow!(
            "--listen {:?}: give an address and port, e.g. 0.0.0.0:8081 (port 0 picks a free one)",
            args.listen
        ))
    })?;
    let upstream: http::Uri = args.upstream.parse().map_err(|e| {
        Failure::usage(anyhow!(
            "--upstream {:?}: {e}; give a URL such as http://127.0.0.1:8080",
            args.upstream
        ))
    })?;
    let mut rules = record::Rules::default();
    for h in &args.mask_headers {
        let name = http::HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| Failure::usage(anyhow!("--mask-header {h:?}: not a header name")))?;
        rules.headers.push(name.as_str().to_string());
    }
    for f in &args.mask_fields {
        if f.is_empty() {
            return Err(Failure::usage(anyhow!(
                "--mask-field \"\": an empty text would mask every key"
            )));
        }
        rules.fields.push(f.to_ascii_lowercase());
    }
    for path in &args.mask_json {
        rules.add_json(path).map_err(|e| {
            Failure::usage(anyhow!(
                "--mask-json {path:?}: {e}; give a JSONPath such as '$.customer.email'"
            ))
        })?;
    }
    rules.keep = args.keep.iter().map(|k| k.to_ascii_lowercase()).collect();
    let session_header = args
        .session_header
        .as_deref()
        .map(|h| {
            http::HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| Failure::usage(anyhow!("--session-header {h:?}: not a header name")))
        })
        .transpose()?;
    let tls = engine::tls_client_config(&plan::TlsOptions {
        insecure: args.insecure,
        resumption: true,
        extra_roots_pem: match &args.cacert {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("cannot read --cacert {}", path.display()))
                    .map_err(Failure::usage)?,
            ),
            None => None,
        },
    })
    .map_err(|e| Failure::usage(anyhow!(e)))?;
    let gzip = args.gzip || args.out.extension().is_some_and(|e| e == "gz");
    Ok(record::Options {
        listen,
        upstream,
        out: args.out.clone(),
        gzip,
        body_cap: usize::try_from(args.body_cap).unwrap_or(usize::MAX),
        rules,
        session_header,
        preserve_host: args.preserve_host,
        tls,
    })
}

/// A recorder's error as an exit: what the user gave (an upstream, an
/// address, a file) is a usage error; the rest aborted the recording.
fn failure(e: record::Error) -> Failure {
    match e {
        record::Error::Upstream(..) | record::Error::Listen(..) | record::Error::Create(..) => {
            Failure::usage(e)
        }
        _ => Failure {
            code: exit::ABORTED,
            error: e.into(),
        },
    }
}

/// `throng record`: forward and record until Ctrl-C, SIGTERM or
/// `--duration`.
pub fn record(args: &RecordArgs) -> Result<u8, Failure> {
    let options = options(args)?;
    let out = options.out.clone();
    let upstream = options.upstream.clone();
    let recorder = record::Recorder::start(options).map_err(failure)?;
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(
            stdout,
            "throng record listening on http://{}, forwarding to {upstream}",
            recorder.addr
        );
        let _ = writeln!(
            stdout,
            "  writing {} (flushed every second); stop with Ctrl-C",
            out.display()
        );
        let _ = stdout.flush();
    }
    let started = Instant::now();
    let runtime = crate::controller::runtime()?;
    let quiet = args.quiet;
    let duration = args.duration;
    runtime.block_on(async {
        let until = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let progress = async {
            let mut tick = tokio::time::interval(PROGRESS_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                if !quiet {
                    let p = recorder.progress();
                    eprintln!(
                        "record: {:.0}s, {} forwarded, {} written, {} in flight{}",
                        started.elapsed().as_secs_f64(),
                        p.forwarded,
                        p.written,
                        p.in_flight,
                        if p.not_recorded > 0 {
                            format!(", {} not recorded (the writer is behind)", p.not_recorded)
                        } else {
                            String::new()
                        }
                    );
                }
            }
        };
        tokio::select! {
            _ = crate::controller::interrupted() => {}
            _ = until => {}
            _ = progress => {}
        }
    });
    if !quiet {
        let p = recorder.progress();
        if p.in_flight > 0 {
            eprintln!(
                "record: stopping; {} exchanges under way get up to {} s to finish",
                p.in_flight,
                GRACE.as_secs()
            );
        }
    }
    let totals = recorder.stop(GRACE).map_err(failure)?;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "recorded {} exchanges in {} sessions to {} ({:.1} s)",
        totals.exchanges,
        totals.sessions,
        out.display(),
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        stdout,
        "  masked {} values ({} distinct); request bodies cut at the cap: {}; upstream errors: {}",
        totals.masked, totals.placeholders, totals.bodies_cut, totals.upstream_errors
    );
    if totals.client_gone > 0 {
        let _ = writeln!(
            stdout,
            "  clients that went away before the upstream answered: {} (recorded, status 0)",
            totals.client_gone
        );
    }
    if totals.not_recorded > 0 {
        let _ = writeln!(
            stdout,
            "  not recorded: {} exchanges (forwarded, but the writer could not keep up)",
            totals.not_recorded
        );
    }
    Ok(exit::OK)
}
