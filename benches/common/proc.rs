//! Running a child process and measuring it: wall time, exit status, its
//! own peak RSS (wait4) and its captured output.

#![allow(dead_code, reason = "each bench uses a part of this module")]

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Measured {
    pub status: i32,
    pub elapsed: Duration,
    /// Peak resident set size of the child, KiB.
    pub peak_kb: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Writes back what the bench itself wrote (corpora, copies, configs) before
/// a measured run: otherwise the run's first fsync also waits for the disk to
/// take those files (ext4 commits them in the same journal transaction), and
/// the figure depends on how much the generator wrote just before. Done
/// before every measured run, postdesk's and the peers' alike.
pub fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Runs `cmd` to completion (stdin from /dev/null unless set), capturing
/// stdout and stderr.
#[allow(
    clippy::zombie_processes,
    reason = "the child is reaped with wait4, which also gives its peak RSS"
)]
pub fn measure(cmd: &mut Command) -> Measured {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let mut stderr = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut stderr);
    }
    let stdout = reader.join().expect("stdout reader");
    let mut status = 0;
    // SAFETY: wait4 on our own child, writing into the zeroed struct and the int we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4");
    let elapsed = started.elapsed();
    let status = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Measured {
        status,
        elapsed,
        peak_kb: usage.ru_maxrss,
        stdout,
        stderr,
    }
}
