//! `throng lab` and `throng demo`: the built-in target, alone or with the
//! launch-day scenario run against it.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::anyhow;

use crate::args::{DemoArgs, LabArgs, OutputArgs, Pathologies, ReleaseArg, RunOptions};
use crate::spec::{self, RunSpec, Source};
use crate::{exit, Failure};

/// The demo's scenario, also in `examples/`.
pub const LAUNCH_DAY: &str = include_str!("../../../examples/launch-day.yaml");

fn parse_stall(text: &str) -> Result<lab::Stall, Failure> {
    let bad = || {
        Failure::usage(anyhow!(
            "--stall {text:?}: give STALL,PERIOD, e.g. '1s,10s' (a 1 s freeze every 10 s)"
        ))
    };
    let (s, p) = text.split_once(',').ok_or_else(bad)?;
    let stall = plan::parse_duration(s.trim()).map_err(|_| bad())?;
    let period = plan::parse_duration(p.trim()).map_err(|_| bad())?;
    if period.is_zero() || stall >= period {
        return Err(Failure::usage(anyhow!(
            "--stall {text:?}: the freeze must be shorter than the period"
        )));
    }
    Ok(lab::Stall { stall, period })
}

fn apply(p: &Pathologies, config: &mut lab::Config) -> Result<(), Failure> {
    if let Some(r) = p.release {
        config.release = match r {
            ReleaseArg::V1 => lab::Release::V1,
            ReleaseArg::V2 => lab::Release::V2,
        };
    }
    config.login_scan = p.login_scan;
    if p.db_pool == Some(0) {
        return Err(Failure::usage(anyhow!(
            "--db-pool 0: the pool needs at least one connection"
        )));
    }
    config.db_pool = p.db_pool;
    config.db_wait = Duration::from_millis(p.db_wait);
    config.race = p.race;
    config.replica_lag = p.replica_lag.map(Duration::from_millis);
    config.replica_apply = p
        .replica_apply
        .map_or(Duration::ZERO, Duration::from_millis);
    config.misroute = p.misroute;
    config.header_limit = p.header_limit;
    config.stall = p.stall.as_deref().map(parse_stall).transpose()?;
    config.short_cache = p.short_cache;
    config.metastable = p.metastable;
    config.slow_assets = p.slow_assets;
    config.ws_cap = p.ws_cap;
    config.delay = p
        .delay
        .as_deref()
        .map(|text| {
            plan::parse_duration(text.trim()).map_err(|_| {
                Failure::usage(anyhow!(
                    "--delay {text:?}: give a duration such as 2.5ms or 1s"
                ))
            })
        })
        .transpose()?;
    Ok(())
}

fn start(config: lab::Config, quiet: bool) -> Result<lab::Lab, Failure> {
    if !quiet {
        eprintln!("lab: generating {} users...", config.users);
    }
    lab::start(config).map_err(|e| Failure {
        code: exit::ABORTED,
        error: e.into(),
    })
}

fn failures_line(config: &lab::Config) -> String {
    let p = config.pathologies();
    if p.is_empty() {
        "none (a healthy site)".to_string()
    } else {
        p.join(" ")
    }
}

/// `throng lab`: serve until Ctrl-C or SIGTERM.
pub fn lab(args: &LabArgs) -> Result<u8, Failure> {
    let listen: SocketAddr = args.listen.parse().map_err(|_| {
        Failure::usage(anyhow!(
            "--listen {:?}: give an address and port, e.g. 127.0.0.1:8080 (port 0 picks a free one)",
            args.listen
        ))
    })?;
    if !listen.ip().is_loopback() && !args.public {
        return Err(Failure::usage(anyhow!(
            "--listen {listen}: the lab has deliberate failures and no security; it binds \
             loopback only unless you add --public"
        )));
    }
    if args.users == 0 {
        return Err(Failure::usage(anyhow!(
            "--users 0: the lab needs at least one user"
        )));
    }
    let mut config = lab::Config {
        listen,
        users: args.users,
        seed: args.seed,
        threads: args.threads.max(1),
        ..lab::Config::default()
    };
    apply(&args.pathologies, &mut config)?;
    let failures = failures_line(&config);
    let users = config.users;
    let lab = start(config, false)?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "throng lab listening on {}", lab.url());
    let _ = writeln!(out, "  failures: {failures}");
    let _ = writeln!(
        out,
        "  users: user1@example.com .. user{users}@example.com, password '{}' (generated in {} ms)",
        lab::PASSWORD,
        lab.generated_in.as_millis()
    );
    let _ = writeln!(out, "  metrics: {}/metrics; stop with Ctrl-C", lab.url());
    let _ = out.flush();
    drop(out);
    crate::controller::runtime()?.block_on(crate::controller::interrupted());
    eprintln!("lab: stopping");
    lab.stop();
    Ok(exit::OK)
}

/// `throng demo`: the lab in-process, the launch-day scenario against it.
pub fn demo(args: &DemoArgs) -> Result<u8, Failure> {
    let mut config = lab::Config {
        users: args.users.max(1),
        ..lab::Config::default()
    };
    // Failures chosen on the command line replace the default set.
    let mut chosen_config = config.clone();
    apply(&args.pathologies, &mut chosen_config)?;
    let chosen = !chosen_config.pathologies().is_empty();
    if chosen && args.healthy {
        return Err(Failure::usage(anyhow!(
            "--healthy means no failures; leave it out to choose some"
        )));
    }
    if chosen {
        config = chosen_config;
    } else if !args.healthy {
        config.race = true;
        config.login_scan = true;
        config.short_cache = true;
    }
    let failures = failures_line(&config);
    let lab = start(config, args.quiet)?;
    let file = spec::compile_scenario(
        "launch-day.yaml".into(),
        LAUNCH_DAY.into(),
        None,
        Some(lab.url()),
    )?;
    let mut outputs = OutputArgs {
        out: args.out.clone(),
        quiet: args.quiet,
        ..OutputArgs::default()
    };
    outputs.exports.report = Some(args.report.clone());
    let mut run = RunSpec::new(
        Source::File(file),
        &RunOptions::default(),
        spec::Outputs::new(&outputs, false),
    )?;
    // The lab runs in this process: watch its threads (named lab*), not
    // throng's, beside the metrics the scenario scrapes.
    run.watch.processes.push(crate::watch::Process {
        pid: std::process::id(),
        name: "throng demo".into(),
        threads: Some("lab".into()),
    });
    if !args.quiet {
        eprintln!(
            "demo: lab at {} with failures: {failures}{}",
            lab.url(),
            if chosen || args.healthy {
                ""
            } else {
                " (the default set; --healthy for none)"
            }
        );
        eprintln!(
            "demo: running examples/launch-day.yaml: a normal day, then a flash crowd at 10x (about 60 s)"
        );
    }
    let code = crate::run::execute(run)?;
    let metrics = lab.metrics();
    lab.stop();
    say!("\nWhat the lab itself counted (its /metrics):");
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let interesting = [
            "lab_uow_conflicts_total",
            "lab_db_pool_timeouts_total",
            "lab_misrouted_total",
            "lab_cache_misses_total",
            "lab_cache_hits_total",
            "lab_deploys_abandoned_worked_total",
            "lab_stalled_total",
        ];
        if interesting.iter().any(|i| line.starts_with(i)) {
            say!("  {line}");
        }
    }
    // A demo that ran to its end succeeded, whatever its thresholds say:
    // failing them is what the lab's failures are for.
    Ok(match code {
        exit::THRESHOLD => {
            say!("\nSome thresholds failed: that is what the lab's failures look like. Try `throng demo --healthy`.");
            exit::OK
        }
        c => c,
    })
}
