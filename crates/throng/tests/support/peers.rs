//! Real HTTP/2 servers written by others, run as child processes on
//! loopback: nghttpd (nghttp2's, h2c), h2o (TLS) and nginx (TLS). throng's
//! HTTP/2 client is its own, so it is tried against the servers people
//! run, not only against the Rust server the other tests use.
//!
//! Each serves the same document root ([`DocRoot`]). None of them can
//! bind port 0 and say which port it got, so the kernel picks a free port,
//! the server is started on it, and a server that exits at once (the port
//! taken meanwhile) is started again on another.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::run::tool_probed;

/// The last line of `/index.html`'s body: a check that finds it saw the
/// whole body.
pub const INDEX_END: &str = "END-OF-INDEX";
/// The last bytes of `/big.bin` (3 MiB: far past HTTP/2's initial flow
/// control windows, so its reading needs WINDOW_UPDATEs).
pub const BIG_END: &str = "END-OF-BIG";
pub const BIG_LEN: usize = 3 * 1024 * 1024;

/// A temporary directory with the files every peer serves, a self-signed
/// certificate for 127.0.0.1 and its key, and room for the servers'
/// configurations and logs.
pub struct DocRoot {
    pub dir: tempfile::TempDir,
}

impl DocRoot {
    pub fn new() -> DocRoot {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let www = dir.path().join("www");
        std::fs::create_dir(&www).expect("www");
        let index = format!(
            "<!doctype html><title>interop</title>\n{}{INDEX_END}\n",
            "<p>a line of the page</p>\n".repeat(40)
        );
        std::fs::write(www.join("index.html"), index).expect("index.html");
        let mut big = vec![b'b'; BIG_LEN - BIG_END.len()];
        big.extend_from_slice(BIG_END.as_bytes());
        std::fs::write(www.join("big.bin"), big).expect("big.bin");
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
            .expect("a certificate");
        std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).expect("cert.pem");
        std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem())
            .expect("key.pem");
        // nginx's and h2o's workers may run as another user: they must be
        // able to read it all.
        chmod_readable(dir.path());
        DocRoot { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn www(&self) -> PathBuf {
        self.path("www")
    }

    /// The certificate's PEM file, for `--cacert`.
    pub fn cert(&self) -> PathBuf {
        self.path("cert.pem")
    }
}

fn chmod_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            chmod_readable(&e.path());
        }
    }
}

/// A server process, killed when dropped.
pub struct Peer {
    child: Child,
    pub addr: SocketAddr,
    /// `http` or `https`.
    scheme: &'static str,
}

impl Peer {
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nghttpd serving the document root over h2c (prior knowledge), or
/// `None` (said loudly) when it is not installed.
pub fn nghttpd(root: &DocRoot) -> Option<Peer> {
    let bin = tool_probed(
        &["nghttpd"],
        "--version",
        "apt-get install nghttp2-server",
        "HTTP/2 interop with nghttpd",
    )?;
    Some(start("http", root.path("nghttpd.log"), |port| {
        let mut cmd = Command::new(&bin);
        cmd.args(["--no-tls", "--address=127.0.0.1", "-d"])
            .arg(root.www())
            .arg(port.to_string());
        cmd
    }))
}

/// h2o serving the document root over TLS (HTTP/2 by ALPN), and `/echo`
/// answering "read N" after reading the request's N body bytes; or
/// `None` (said loudly) when it is not installed.
pub fn h2o(root: &DocRoot) -> Option<Peer> {
    let bin = tool_probed(
        &["h2o"],
        "--version",
        "apt-get install h2o",
        "HTTP/2 interop with h2o",
    )?;
    Some(start("https", root.path("h2o.out"), |port| {
        let conf = root.path("h2o.conf");
        std::fs::write(
            &conf,
            format!(
                "listen:\n  host: 127.0.0.1\n  port: {port}\n  ssl:\n    certificate-file: {cert}\n    key-file: {key}\n\
                 hosts:\n  default:\n    paths:\n      /echo:\n        mruby.handler: |\n\
                 \x20         Proc.new do |env|\n\
                 \x20           [200, {{\"content-type\" => \"text/plain\"}}, [\"read #{{env[\"rack.input\"].read.bytesize}}\\n\"]]\n\
                 \x20         end\n\
                 \x20     /:\n        file.dir: {www}\n",
                cert = root.cert().display(),
                key = root.path("key.pem").display(),
                www = root.www().display(),
            ),
        )
        .expect("h2o.conf");
        let mut cmd = Command::new(&bin);
        cmd.arg("-c").arg(conf);
        cmd
    }))
}

/// nginx serving the document root over TLS (HTTP/2 by ALPN); `/echo`
/// answered 200 at once, whatever the request's body (nginx then resets
/// the upload's stream with NO_ERROR); `/login` setting two cookies (two
/// `set-cookie` fields), `/whoami` echoing the request's `Cookie`, and
/// `/moved` redirecting to it; or `None` (said loudly) when it is not
/// installed.
pub fn nginx(root: &DocRoot) -> Option<Peer> {
    // One process (no master), so that killing it leaves no worker behind.
    let bin = tool_probed(
        &["nginx"],
        "-v",
        "apt-get install nginx-light",
        "HTTP/2 interop with nginx",
    )?;
    Some(start("https", root.path("nginx.out"), |port| {
        let dir = root.dir.path();
        let conf = root.path("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log warn;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  client_max_body_size 10m;\n\
                 server {{\n    listen 127.0.0.1:{port} ssl http2;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
                 root {www};\n\
                 location = /echo {{ return 200 \"posted\\n\"; }}\n\
                 location = /login {{ add_header Set-Cookie \"a=1; Path=/\"; add_header Set-Cookie \"b=2; Path=/\"; return 200 \"in\\n\"; }}\n\
                 location = /whoami {{ return 200 \"cookie=[$http_cookie]\\n\"; }}\n\
                 location = /moved {{ return 302 /whoami; }}\n  }}\n}}\n",
                dir = dir.display(),
                cert = root.cert().display(),
                key = root.path("key.pem").display(),
                www = root.www().display(),
            ),
        )
        .expect("nginx.conf");
        let mut cmd = Command::new(&bin);
        cmd.arg("-c").arg(conf).arg("-p").arg(dir);
        cmd
    }))
}

/// Starts `command(port)` on a free loopback port until one stays up and
/// accepts connections (at most 5 tries, 10 s each); its output goes to
/// `log`.
fn start(scheme: &'static str, log: PathBuf, command: impl Fn(u16) -> Command) -> Peer {
    let mut last = String::new();
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let out = std::fs::File::create(&log).expect("a log file");
        let mut child = command(port)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("a log file"))
            .stderr(out)
            .spawn()
            .expect("the server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(&log).unwrap_or_default();
                last = format!("exited with {status}: {err}");
                break;
            }
            // Some servers bind, then fail on the rest of their
            // configuration: up is listening and still running a moment
            // later.
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                std::thread::sleep(Duration::from_millis(100));
                if child.try_wait().is_ok_and(|s| s.is_some()) {
                    continue;
                }
                return Peer {
                    child,
                    addr,
                    scheme,
                };
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                last = "did not accept connections within 10 s".to_string();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("the server did not start: {last}");
}
