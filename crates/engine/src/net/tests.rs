//! Unit tests: which of a target's addresses a run sends to, and what
//! source addresses allow.

use expect_test::expect;

#[test]
fn a_target_of_several_addresses_is_sent_to_the_first_that_takes_a_connection() {
    use std::net::{SocketAddr, TcpListener};
    // Where `localhost` is `::1` first and the server listens on
    // 127.0.0.1 alone, the first address refuses: the next one is used.
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    let live = live.local_addr().unwrap();
    let dead = |_| -> SocketAddr {
        let port = TcpListener::bind("127.0.0.1:0").unwrap();
        port.local_addr().unwrap()
    };
    let (dead, dead2) = (dead(1), dead(2));
    let wait = std::time::Duration::from_millis(500);
    assert_eq!(crate::net::reachable(&[dead, live], wait, None), Some(live));
    assert_eq!(crate::net::reachable(&[live, dead], wait, None), Some(live));
    // None takes one: the run sends to the first, and counts its errors.
    assert_eq!(crate::net::reachable(&[dead, dead2], wait, None), None);
    // One address is used as it is, without a connection first.
    assert_eq!(crate::net::reachable(&[dead], wait, None), Some(dead));
    // What the user is told: nothing when the first was used.
    let v6: SocketAddr = "[::1]:8080".parse().unwrap();
    let v4: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let note = |reached| crate::net::probe_note("localhost", &[v6, v4], reached);
    assert_eq!(note(Some(v6)), None);
    expect![[r#"localhost resolves to [::1]:8080, 127.0.0.1:8080; those before 127.0.0.1:8080 took no TCP connection within 500 ms, so the run sends to 127.0.0.1:8080"#]]
        .assert_eq(&note(Some(v4)).unwrap());
    expect![[r#"localhost resolves to [::1]:8080, 127.0.0.1:8080, and none took a TCP connection within 500 ms: the run sends to [::1]:8080, and counts what its connections meet"#]]
        .assert_eq(&note(None).unwrap());
}

#[test]
fn source_addresses_decide_the_family_of_the_target_address() {
    use std::net::{IpAddr, SocketAddr};
    let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let v6: SocketAddr = "[::1]:80".parse().unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let of = |addrs: &[SocketAddr], sources: &[IpAddr]| {
        crate::net::of_sources_family("web", addrs.to_vec(), sources).map_err(|e| e.to_string())
    };
    // Without sources, every address; with IPv4 sources, the IPv4 ones.
    assert_eq!(of(&[v6, v4], &[]), Ok(vec![v6, v4]));
    assert_eq!(of(&[v6, v4], &[ip("127.0.0.2")]), Ok(vec![v4]));
    assert_eq!(of(&[v6, v4], &[ip("::1")]), Ok(vec![v6]));
    // None of theirs, or a mix: the run does not start, and says why.
    expect![[r#"Err("\"web\" has no IPv4 address (::1), and clients.source_ips are IPv4 addresses: send from addresses of the target's family")"#]]
        .assert_eq(&format!("{:?}", of(&[v6], &[ip("127.0.0.2")])));
    expect![[r#"Err("clients.source_ips mixes IPv4 (127.0.0.2) and IPv6 (::1) addresses: a target is reached over one of them, and the users of the other could not connect. Give addresses of one family")"#]]
        .assert_eq(&format!("{:?}", of(&[v4], &[ip("127.0.0.2"), ip("::1")])));
}

#[test]
fn source_addresses_this_machine_lacks_stop_the_run_before_it_starts() {
    use std::net::IpAddr;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // Every address of 127.0.0.0/8 is local on Linux.
    let range = plan::parse_source_ips("127.0.0.2-127.0.1.1").unwrap();
    assert!(crate::net::check_sources(&range).is_ok());
    // 192.0.2.0/24 is for documentation (RFC 5737): on no machine. Binding
    // it sends nothing anywhere.
    let err = crate::net::check_sources(&[ip("127.0.0.2"), ip("192.0.2.7")]).unwrap_err();
    // Of a longer list, a spread that keeps its first and last addresses.
    let mut long = range.clone();
    long.extend(plan::parse_source_ips("127.0.2.0-127.0.255.255").unwrap());
    long.push(ip("192.0.2.7"));
    assert!(long.len() > 4096);
    assert!(crate::net::check_sources(&long).is_err());
    long.pop();
    long.insert(0, ip("192.0.2.7"));
    assert!(crate::net::check_sources(&long).is_err());
    expect![[r#"source address 192.0.2.7 cannot be used: Cannot assign requested address (os error 99). On Linux every address of 127.0.0.0/8 is local; others must be configured on this machine first (ip addr add 192.0.2.7/32 dev DEVICE)"#]]
        .assert_eq(&err.to_string());
}

#[test]
fn the_probe_connects_from_the_source_address() {
    use std::net::{SocketAddr, TcpListener};
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v4 = v4.local_addr().unwrap();
    let v6 = match TcpListener::bind("[::1]:0") {
        Ok(l) => l,
        Err(e) if std::env::var_os("THRONG_REQUIRE_TOOLS").is_none() => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: the probe from a source address: no IPv6 loopback here ({e}). \
                 .ci/run turns this skip into a failure. ***\n"
            );
            return;
        }
        Err(e) => panic!("IPv6 loopback is needed, and THRONG_REQUIRE_TOOLS is set: {e}"),
    };
    let v6: SocketAddr = v6.local_addr().unwrap();
    let wait = std::time::Duration::from_millis(500);
    // Both listen. From the system's address, `::1` takes the connection;
    // from 127.0.0.2 it cannot, and the IPv4 address is the one.
    assert_eq!(crate::net::reachable(&[v6, v4], wait, None), Some(v6));
    let source = "127.0.0.2".parse().ok();
    assert_eq!(crate::net::reachable(&[v6, v4], wait, source), Some(v4));
}

#[test]
fn a_run_sends_to_the_address_chosen_before_it_without_choosing_again() {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;
    // A server on 127.0.0.2 alone. The plan's host is `localhost`
    // (127.0.0.1 or ::1, where nothing listens on that port): a run that
    // chose its address itself would be refused.
    let server = TcpListener::bind("127.0.0.2:0").unwrap();
    let pinned = server.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in server.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(1..) = conn.read(&mut buf) {
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if conn.write_all(ok).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let url = format!("http://localhost:{}/", pinned.port());
    let request = plan::RequestSpec::get(&url).unwrap();
    let plan = plan::Plan {
        model: plan::Model::Closed {
            vus: plan::Profile::constant(1.0, Some(Duration::from_secs(10))),
            think: Duration::ZERO,
        },
        max_requests: Some(3),
        scenario: plan::Scenario::single(&request),
        timeout: Duration::from_secs(5),
        grace: Duration::from_secs(1),
        workers: 1,
        seed: 1,
        ab: Vec::new(),
        segment: plan::Segment::default(),
        start_at: None,
        snapshot_every: None,
        max_rate: None,
        max_body: 0,
        addrs: vec![pinned],
    };
    let mut run = crate::start(&plan, Duration::from_secs(1)).unwrap();
    assert!(run.notes.is_empty(), "{:?}", run.notes);
    let mut ok = 0;
    while let Some(event) = run.events.blocking_recv() {
        if let crate::Event::Done(out) = event {
            ok += out.stats.counts.ok;
            break;
        }
    }
    run.join();
    assert_eq!(ok, 3);
}
