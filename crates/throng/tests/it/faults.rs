//! Targets that misbehave: each test runs throng against a loopback server
//! that fails in one way, and checks that the run completes, counts every
//! request under the right error kind, and writes its results.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::{num, server, throng};

/// How a fault server treats each connection.
#[derive(Clone, Copy)]
enum Fault {
    /// Accepts, reads the request, closes without a word.
    AcceptThenClose,
    /// Sends half a response head, then resets the connection.
    ResetMidResponse,
    /// Answers with something that is not HTTP.
    Garbage,
    /// A 200 whose body never ends.
    EndlessBody,
    /// One byte a second.
    Trickle,
    /// A response head of 1 MB of headers.
    HugeHeaders,
}

/// A blocking server on port 0, one thread per connection; it lives as
/// long as the test process (each connection ends when throng closes it).
fn fault_server(fault: Fault) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            thread::spawn(move || serve(stream, fault));
        }
    });
    addr
}

fn read_head(stream: &mut TcpStream) -> bool {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    true
}

fn serve(mut stream: TcpStream, fault: Fault) {
    while read_head(&mut stream) {
        let _ = match fault {
            Fault::AcceptThenClose => return,
            Fault::ResetMidResponse => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Le");
                // Linger 0: closing sends a reset, not a FIN.
                let _ = socket_reset(&stream);
                return;
            }
            Fault::Garbage => {
                stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 not http\r\n\r\n")
            }
            Fault::EndlessBody => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
                let block = [b'x'; 16 * 1024];
                // Until throng closes the connection.
                while stream.write_all(&block).is_ok() {}
                return;
            }
            Fault::Trickle => {
                for b in b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" {
                    if stream.write_all(&[*b]).is_err() {
                        return;
                    }
                    thread::sleep(Duration::from_secs(1));
                }
                Ok(())
            }
            Fault::HugeHeaders => {
                let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
                for i in 0..20_000 {
                    head.extend_from_slice(
                        format!("X-Filler-{i}: {}\r\n", "y".repeat(40)).as_bytes(),
                    );
                }
                head.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
                let _ = stream.write_all(&head);
                return;
            }
        };
    }
}

/// Closes `stream` with a reset (SO_LINGER 0).
fn socket_reset(stream: &TcpStream) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(stream);
    sock.set_linger(Some(Duration::ZERO))?;
    stream.shutdown(std::net::Shutdown::Both)
}

/// Runs 20 requests at 20/s against `addr` with `extra` arguments (a 2 s
/// timeout unless they give one).
fn run_against(addr: SocketAddr, extra: &[&str]) -> (i32, Value, String) {
    let url = format!("http://{addr}/");
    let mut args = vec!["--url", url.as_str(), "--rate", "20", "--requests", "20"];
    if !extra.contains(&"--timeout") {
        args.extend_from_slice(&["--timeout", "2s"]);
    }
    args.extend_from_slice(extra);
    let r = throng(&args);
    let res = r
        .results
        .unwrap_or_else(|| panic!("no results written\n{}", r.stderr));
    (r.code, res, r.stderr)
}

/// Every one of the 20 requests failed with `kind`, and the run completed.
fn all_failed_with(res: &Value, kind: &str, stderr: &str) {
    assert_eq!(res["status"], "completed", "{stderr}");
    assert_eq!(num(res, "totals.requests"), 20.0, "{res}");
    assert_eq!(
        num(res, &format!("errors.{kind}")),
        20.0,
        "errors {} ({stderr})",
        res["errors"]
    );
}

#[test]
fn a_target_that_is_not_listening_counts_refused_connections() {
    let (code, res, stderr) = run_against(server::closed_port(), &[]);
    assert_eq!(code, 0);
    all_failed_with(&res, "connect_refused", &stderr);
}

#[test]
fn a_target_that_accepts_then_closes_counts_resets() {
    let (_, res, stderr) = run_against(fault_server(Fault::AcceptThenClose), &[]);
    all_failed_with(&res, "reset", &stderr);
}

#[test]
fn a_target_that_resets_mid_response_counts_resets() {
    let (_, res, stderr) = run_against(fault_server(Fault::ResetMidResponse), &[]);
    all_failed_with(&res, "reset", &stderr);
}

#[test]
fn a_target_that_answers_garbage_counts_protocol_errors() {
    let (_, res, stderr) = run_against(fault_server(Fault::Garbage), &[]);
    all_failed_with(&res, "protocol", &stderr);
}

#[test]
fn an_endless_body_is_cut_at_max_body() {
    let (_, res, stderr) = run_against(fault_server(Fault::EndlessBody), &["--max-body", "256KiB"]);
    all_failed_with(&res, "body_too_large", &stderr);
    assert_eq!(
        num(&res, "load.max_body"),
        256.0 * 1024.0,
        "{}",
        res["load"]
    );
    // Cut at the limit, not at the timeout.
    assert!(
        num(&res, "latency_ms.max") < 1000.0,
        "{}",
        res["latency_ms"]
    );
}

#[test]
fn a_target_that_trickles_times_out() {
    let (_, res, stderr) = run_against(fault_server(Fault::Trickle), &["--timeout", "1s"]);
    all_failed_with(&res, "timeout", &stderr);
}

#[test]
fn huge_response_headers_are_a_protocol_error() {
    let (_, res, stderr) = run_against(fault_server(Fault::HugeHeaders), &[]);
    all_failed_with(&res, "protocol", &stderr);
}

#[test]
fn a_target_that_restarts_mid_run_is_reconnected_to() {
    // Serves for 1 s, goes away for 1 s (refusing connections), then
    // comes back on the same port: throng counts the gap and goes on.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let serve_until = |listener: TcpListener, until: std::time::Instant| {
            listener.set_nonblocking(true).unwrap();
            let mut conns = Vec::new();
            while std::time::Instant::now() < until {
                match listener.accept() {
                    Ok((s, _)) => {
                        let c = s.try_clone().unwrap();
                        thread::spawn(move || ok_server(s));
                        conns.push(c);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
            // The restart: every connection goes, and so does the port.
            for c in conns {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        };
        let t0 = std::time::Instant::now();
        serve_until(listener, t0 + Duration::from_secs(1));
        thread::sleep(Duration::from_secs(1));
        let listener = TcpListener::bind(addr).unwrap();
        serve_until(listener, t0 + Duration::from_secs(60));
    });
    let url = format!("http://{addr}/");
    let r = throng(&[
        "--url",
        &url,
        "--rate",
        "50",
        "--duration",
        "3s",
        "--timeout",
        "1s",
    ]);
    let res = r.results.unwrap();
    assert_eq!(res["status"], "completed", "{}", r.stderr);
    assert_eq!(num(&res, "totals.requests"), 150.0);
    let ok = num(&res, "totals.ok");
    let count = |kind: &str| res["errors"][kind].as_f64().unwrap_or(0.0);
    let failed = count("connect_refused") + count("reset");
    // About 50 ok before, 50 refused during, 50 ok after (minus the edges).
    assert!(
        (80.0..=110.0).contains(&ok),
        "ok {ok}, errors {}",
        res["errors"]
    );
    assert!(failed >= 40.0, "errors {}", res["errors"]);
    assert_eq!(ok + failed, 150.0, "errors {}", res["errors"]);
    // The last second is served again.
    let last = res["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(num(&last, "errors"), 0.0, "{last}");
}

/// 200 "hello" for each request head, keep-alive.
fn ok_server(mut stream: TcpStream) {
    while read_head(&mut stream) {
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .is_err()
        {
            return;
        }
    }
}
