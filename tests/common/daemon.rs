//! `postdesk run` in the background for tests that need a live daemon: its
//! log in a file, signals, and the monitoring endpoint over plain HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use super::Desk;
use super::mail::wait_for;

/// `postdesk run` in the background, its log in a file.
pub struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    pub fn start(desk: &Desk, env: &[(&str, &str)]) -> Daemon {
        let log = desk.path("daemon.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let child = desk
            .cmd()
            .args(["run"])
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn postdesk run");
        Daemon {
            child: Some(child),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle` `times` times.
    pub fn wait_log(&mut self, needle: &str, times: usize, limit: Duration) {
        let log = self.log.clone();
        wait_for(&format!("`{needle}` in the daemon's log"), limit, || {
            self.assert_running();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            (text.matches(needle).count() >= times).then_some(())
        });
    }

    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("daemon");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the daemon exited ({status}):\n{}", self.log());
        }
    }

    /// SIGTERM; the daemon must exit 0 (within 30 s).
    pub fn stop(mut self) -> String {
        let mut child = self.child.take().expect("daemon");
        // SAFETY: kill(2) on the pid of our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let status = wait_for(
            "the daemon to exit after SIGTERM",
            Duration::from_secs(30),
            || child.try_wait().expect("try_wait"),
        );
        let log = self.log();
        assert!(status.success(), "exit after SIGTERM: {status}\n{log}");
        log
    }

    /// SIGKILL.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Daemon {
    /// Sends `signal` (e.g. `libc::SIGHUP`) to the daemon.
    pub fn signal(&mut self, signal: i32) {
        self.assert_running();
        let child = self.child.as_ref().expect("daemon");
        // SAFETY: kill(2) on the pid of our own, still running child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    }
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0, so the server closes the
/// connection): the status code, the Content-Type and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the http endpoint");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header/body split: {response:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

/// Polls `GET path` until it answers `status`; returns the body. Panics
/// with the last answer seen.
pub fn wait_http(port: u16, path: &str, status: u16, limit: Duration) -> String {
    let deadline = std::time::Instant::now() + limit;
    let mut last = None;
    loop {
        let answer = std::panic::catch_unwind(|| http_get(port, path)).ok();
        if let Some((got, _, body)) = &answer
            && *got == status
        {
            return body.clone();
        }
        last = answer.or(last);
        assert!(
            std::time::Instant::now() < deadline,
            "gave up after {limit:?} waiting for GET {path} to answer {status}; last answer: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
