//! A metrics endpoint to scrape, on a loopback port, with the ways a real
//! one goes wrong: `/metrics` is good text whose gauge counts the scrapes
//! so far; `/garbage` mixes good lines with bad ones; `/huge` is 5 MiB;
//! `/slow` answers after 3 s; `/error` answers 500; `/binary` is not
//! UTF-8. One request per connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::server::{read_message, Running};

/// What the exporter saw: scrapes by path.
#[derive(Default)]
pub struct Scrapes {
    /// Requests to `/metrics`.
    pub metrics: AtomicU64,
    /// Requests to any path.
    pub all: AtomicU64,
}

/// Starts the exporter.
pub fn exporter() -> Running<Scrapes> {
    let seen = Arc::new(Scrapes::default());
    let s = seen.clone();
    Running::start(seen, move |listener| async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let Some((head, _)) = read_message(&mut stream, &mut buf).await else {
                    return;
                };
                let head = String::from_utf8_lossy(&buf[..head]).to_string();
                let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                s.all.fetch_add(1, Ordering::Relaxed);
                let (status, body): (&str, Vec<u8>) = match path.as_str() {
                    "/metrics" => {
                        let n = s.metrics.fetch_add(1, Ordering::Relaxed) + 1;
                        let text = format!(
                            "# TYPE demo_scrapes gauge\ndemo_scrapes {n}\n\
                             # TYPE demo_work counter\ndemo_work_total {}\n\
                             # TYPE other_thing gauge\nother_thing 1\n",
                            n * 10
                        );
                        ("200 OK", text.into_bytes())
                    }
                    "/garbage" => (
                        "200 OK",
                        b"demo_ok 1\n}{ not = a line\nname{unclosed=\"x 1\n\xff\xfe 2\ndemo_ok_too 2\n"
                            .to_vec(),
                    ),
                    "/huge" => ("200 OK", b"x 1\n".repeat(5 << 18)),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                        ("200 OK", b"late 1\n".to_vec())
                    }
                    "/binary" => ("200 OK", vec![0xff, 0x00, 0xfe, b'\n', 0x80]),
                    _ => ("500 Internal Server Error", b"no".to_vec()),
                };
                let mut out = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                out.extend_from_slice(&body);
                let _ = stream.write_all(&out).await;
            });
        }
    })
}
