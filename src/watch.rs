//! A watched run: the commands that touch a device the user named do their work in a child
//! process, and this process relays its output and watches the devices it claims.
//!
//! Why: a read or write that a device never completes leaves the process that made it in
//! uninterruptible sleep, deaf to SIGTERM and even SIGKILL, holding its stdout and its exit
//! until the kernel gives up (measured: `inspect` of a stalled FUSE fake sat in
//! `folio_wait_bit_common` through SIGKILL). The child tells this process which devices it
//! claims and what it is doing to each (probing, wiping, writing the data, the table, reading
//! back); this process reads each device's `/sys/block/NAME/stat`, and when requests wait there
//! with none completing for `PI_BURN_DEVICE_TIMEOUT` seconds (default 30), or when SIGTERM or
//! Ctrl-C found the child unable to stop, it says what state the device was left in, kills
//! the child (which dies when the device answers or goes) and ends the run itself.

use crate::blockdev::sys;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The bound, unless `PI_BURN_DEVICE_TIMEOUT` says otherwise.
const DEFAULT_TIMEOUT: u64 = 30;
/// After SIGTERM or Ctrl-C: how long requests may wait with none completing before the run
/// ends without the child (which stops by itself while its devices answer).
const AFTER_INTERRUPT: Duration = Duration::from_secs(5);

/// `PI_BURN_DEVICE_TIMEOUT`: how long requests may wait on a device with none completing.
pub fn timeout() -> anyhow::Result<Duration> {
    match std::env::var("PI_BURN_DEVICE_TIMEOUT") {
        Err(_) => Ok(Duration::from_secs(DEFAULT_TIMEOUT)),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if (1..=86_400).contains(&n) => Ok(Duration::from_secs(n)),
            _ => Err(crate::error::usage(format!(
                "PI_BURN_DEVICE_TIMEOUT='{}' is not a number of seconds from 1 to 86400",
                crate::util::text::printable(&v)
            ))),
        },
    }
}

/// A device the child claimed, as this process watches it.
struct Watched {
    path: String,
    /// Its name under /sys/block.
    name: String,
    /// What the child last said it was doing to it.
    state: String,
    /// Completed requests when they last changed, and when.
    completed: u64,
    since: Instant,
}

/// (completed requests, requests in flight) of /sys/block/NAME/stat.
fn counters(name: &str) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/sys/block/{name}/stat")).ok()?;
    let f: Vec<u64> = text
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // reads, writes, discards and flushes completed; in flight.
    let done = [0, 4, 11, 15]
        .iter()
        .filter_map(|i| f.get(*i))
        .fold(0u64, |a, b| a.wrapping_add(*b));
    Some((done, *f.get(8)?))
}

/// What the device was left as, in the words of its last state.
fn left_as(state: &str) -> &'static str {
    match state {
        "probing" => "the capacity probe was running: blocks it stamped may be on it (what they replaced was read first, and not all of it was put back)",
        "wiping" => "its table areas were being wiped: it may hold its old partition table, or none",
        "data" => "its table areas were wiped before anything else (where the device took those writes) and its new partition table was not written: do not boot from it; burn it again",
        "table" => "its new partition table was being written: burn it again",
        "verifying" => "it was written completely and was being read back: check it with `pi-burn verify` once it answers",
        "done" => "it was written and read back",
        "failed" => "it failed and its table areas were being wiped again: burn it again",
        _ => "nothing was written to it",
    }
}

/// Copies what is readable on `from` to `to` (fd 1 or 2); false at its end.
fn relay(from: &OwnedFd, to: i32) -> bool {
    let mut buf = [0u8; 65536];
    match sys::read_fd(from.as_raw_fd(), &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            sys::write_fd(to, &buf[..n]);
            true
        }
    }
}

/// Runs `body` (which returns the exit code) in a watched child; returns the run's exit code.
/// `json`: a run ended here prints its one JSON object too. When the child cannot be forked
/// (another thread runs), `body` runs here, unwatched.
pub fn run(json: bool, bound: Duration, body: impl FnOnce() -> u8) -> u8 {
    use std::io::IsTerminal;
    // The terminal's stderr stays the child's own (progress bars, the confirmation prompt);
    // otherwise it comes through this process, like stdout, so that a child stuck in the
    // kernel holds nothing a caller waits on.
    let relay_err = !std::io::stderr().is_terminal();
    let pipes = (|| -> std::io::Result<_> {
        Ok((
            sys::pipe()?,
            if relay_err { Some(sys::pipe()?) } else { None },
            sys::pipe()?,
        ))
    })();
    let Ok((out, err, state)) = pipes else {
        return body();
    };
    let pid = match sys::fork_process() {
        Ok(sys::Forked::Child) => {
            let ok = sys::dup_onto(&out.1, 1).is_ok()
                && err.as_ref().is_none_or(|e| sys::dup_onto(&e.1, 2).is_ok());
            if !ok {
                std::process::exit(1);
            }
            sys::set_state_fd(state.1.as_raw_fd());
            drop((out, err));
            let code = body();
            let _ = std::io::stdout().flush();
            std::process::exit(code as i32);
        }
        Ok(sys::Forked::Parent(pid)) => pid,
        Err(_) => return body(),
    };
    let (out, err, state) = (out.0, err.map(|e| e.0), state.0);
    sys::watch_signals();
    let mut devices: Vec<Watched> = vec![];
    let mut told = String::new();
    let mut interrupted: Option<&'static str> = None;
    let mut open = (true, err.is_some(), true);
    loop {
        let mut fds = vec![out.as_raw_fd(), state.as_raw_fd()];
        if let Some(e) = &err {
            fds.push(e.as_raw_fd());
        }
        let ready = sys::poll_readable(&fds, 200);
        if open.0 && ready[0] {
            open.0 = relay(&out, 1);
        }
        if let (Some(e), true, Some(true)) = (&err, open.1, ready.get(2)) {
            open.1 = relay(e, 2);
        }
        if open.2 && ready[1] {
            let mut buf = [0u8; 4096];
            match sys::read_fd(state.as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => open.2 = false,
                Ok(n) => told.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
            while let Some(i) = told.find('\n') {
                let line: String = told.drain(..=i).collect();
                heard(line.trim_end(), &mut devices);
            }
        }
        if let Some(code) = sys::child_ended(pid) {
            // What it wrote last (a grandchild may hold the pipes: no waiting for their end).
            while open.0 && sys::poll_readable(&[out.as_raw_fd()], 0)[0] {
                open.0 = relay(&out, 1);
            }
            while let (Some(e), true) = (&err, open.1) {
                if !sys::poll_readable(&[e.as_raw_fd()], 0)[0] {
                    break;
                }
                open.1 = relay(e, 2);
            }
            return u8::try_from(code).unwrap_or(1);
        }
        match sys::watch_signal() {
            (0, _) => {}
            (sig, from_process) => {
                interrupted = Some(if sig == libc::SIGTERM {
                    "SIGTERM"
                } else {
                    "Ctrl-C"
                });
                // Ctrl-C on the terminal reaches the child itself; a kill is passed on.
                if from_process || sig == libc::SIGTERM {
                    sys::send_signal(pid, sig);
                }
            }
        }
        let now = Instant::now();
        let limit = match interrupted {
            Some(_) => bound.min(AFTER_INTERRUPT),
            None => bound,
        };
        for d in devices.iter_mut() {
            match counters(&d.name) {
                Some((done, inflight)) if inflight > 0 && done == d.completed => {}
                Some((done, _)) => {
                    d.completed = done;
                    d.since = now;
                }
                None => d.since = now,
            }
        }
        let stalled: Vec<&Watched> = devices
            .iter()
            .filter(|d| now.duration_since(d.since) >= limit)
            .collect();
        if !stalled.is_empty() {
            return give_up(pid, &stalled, now, interrupted, json);
        }
    }
}

/// A line the child told: `device PATH NAME` or `state PATH WHAT`.
fn heard(line: &str, devices: &mut Vec<Watched>) {
    let mut parts = line.splitn(3, '\t');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("device"), Some(path), Some(name)) if !devices.iter().any(|d| d.path == path) => {
            let (completed, _) = counters(name).unwrap_or((0, 0));
            devices.push(Watched {
                path: path.to_string(),
                name: name.to_string(),
                state: String::new(),
                completed,
                since: Instant::now(),
            });
        }
        (Some("state"), Some(path), Some(what)) => {
            if let Some(d) = devices.iter_mut().find(|d| d.path == path) {
                d.state = what.to_string();
            }
        }
        _ => {}
    }
}

/// Ends the run without the child: says which devices stopped answering and what each was
/// left as; the child is killed (it ends when its device answers or goes).
fn give_up(
    pid: libc::pid_t,
    stalled: &[&Watched],
    now: Instant,
    interrupted: Option<&str>,
    json: bool,
) -> u8 {
    sys::send_signal(pid, libc::SIGKILL);
    let what = stalled
        .iter()
        .map(|d| format!("{}: {}", d.path, left_as(&d.state)))
        .collect::<Vec<_>>()
        .join("; ");
    let msg = format!(
        "{} stopped answering: requests waited {:.0} s with none completed{}; pi-burn ends here and leaves them to the kernel (the device stays busy until it answers or is unplugged): {what}",
        stalled
            .iter()
            .map(|d| d.path.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        stalled
            .iter()
            .map(|d| now.duration_since(d.since).as_secs_f64())
            .fold(0.0, f64::max),
        interrupted
            .map(|s| format!(" after {s}"))
            .unwrap_or_default()
    );
    let code = if interrupted.is_some() { 130 } else { 1 };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "error": msg, "exit_code": code }))
                .unwrap_or_default()
        );
    }
    eprintln!("pi-burn: {msg}");
    code
}
