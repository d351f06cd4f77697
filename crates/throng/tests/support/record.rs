//! `throng record` as a child process in front of a target, and what it
//! wrote, read back.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use replay::recording::{Exchange, Reader};

use super::run::throng_bin;

/// A recorder running in front of an upstream.
pub struct Recorder {
    child: Child,
    /// Where clients send their requests: `http://127.0.0.1:PORT`.
    pub url: String,
    /// The recording's file.
    pub out: PathBuf,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Recorder {
    /// Starts `throng record --upstream UPSTREAM --out OUT EXTRA...` and
    /// waits for its listening line.
    pub fn start(upstream: &str, out: &Path, extra: &[&str]) -> Recorder {
        let mut child = throng_bin()
            .args(["record", "--upstream", upstream, "--out"])
            .arg(out)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("throng record starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("its stdout"));
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let Some(url) = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(|w| w.trim_end_matches(',').to_string())
        else {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("throng record did not say where it listens: {line:?} {err}");
        };
        Recorder {
            child,
            url,
            out: out.to_path_buf(),
            stdout,
        }
    }

    /// Sends `signal` (`INT`, `TERM`, `KILL`), waits for the exit: the
    /// exit code (None when killed) and what it printed after its first
    /// line.
    pub fn stop(mut self, signal: &str) -> (Option<i32>, String, String) {
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let mut out = String::new();
        let _ = self.stdout.read_to_string(&mut out);
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let status = self.child.wait().expect("throng record exits");
        (status.code(), out, err)
    }
}

/// A recording's reader over its file (gzip or not).
pub fn open(path: &Path) -> Reader<Box<dyn BufRead>> {
    let bytes = std::fs::read(path).expect("the recording");
    let input: Box<dyn BufRead> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            std::io::Cursor::new(bytes),
        )))
    } else {
        Box::new(std::io::Cursor::new(bytes))
    };
    Reader::open(input).expect("a recording")
}

/// Every exchange a recording holds.
pub fn exchanges(path: &Path) -> Vec<Exchange> {
    open(path).collect()
}

/// What `throng replay RECORDING` did.
pub struct Replayed {
    /// Its exit code.
    pub code: Option<i32>,
    /// What it printed on stderr.
    pub stderr: String,
    /// Its results, if it wrote any.
    pub results: Option<serde_json::Value>,
}

/// Runs `throng replay RECORDING --target TARGET EXTRA... --out ...`,
/// with `env` set.
pub fn replay(recording: &Path, target: &str, extra: &[&str], env: &[(String, &str)]) -> Replayed {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let results = dir.path().join("replay.json");
    let o = throng_bin()
        .arg("replay")
        .arg(recording)
        .args(["--target", target])
        .args(extra)
        .arg("--out")
        .arg(&results)
        .envs(env.iter().map(|(k, v)| (k.as_str(), *v)))
        .output()
        .expect("throng replay runs");
    Replayed {
        code: o.status.code(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        results: std::fs::read_to_string(&results)
            .ok()
            .map(|t| serde_json::from_str(&t).expect("results are JSON")),
    }
}
