//! `demo bench [--quick]`: message throughput and round-trip time, ours
//! against Node's `child.send` and against bare syscalls on a socketpair, in
//! the same run. Release builds, medians of several runs. One
//! `name: value unit` line per figure, plus `node_*`, `raw_*` and `ratio_*`
//! (ours over Node's, bigger is better for us).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use ipc_core::Error;
use ipc_fork::{Command, Event};
use serde::Serialize;

/// The benchmark message: `{"seq":n,"payload":"..."}`.
#[derive(Serialize)]
struct Msg<'a> {
    seq: u64,
    payload: &'a str,
}

/// Sizes of one run.
struct Plan {
    runs: usize,
    messages: u64,
    pings: usize,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn frame(seq: u64, payload: &str) -> Vec<u8> {
    let mut buf = vec![0u8; payload.len() + 64];
    let n = ipc_core::wire::plain_frame(&mut buf, &Msg { seq, payload }).expect("fits");
    buf.truncate(n);
    buf
}

/// The `bench-count N` child: counts N messages, then says so.
pub fn count_child(n: u64) -> i32 {
    let Ok(mut parent) = ipc_fork::parent() else {
        return 2;
    };
    let mut count = 0;
    loop {
        match parent.recv() {
            Ok(Event::Message(..)) => {
                count += 1;
                if count == n && parent.send(&("done", count)).is_err() {
                    return 1;
                }
            }
            Ok(Event::Disconnect | Event::Exit(_)) => return 0,
            Ok(Event::Internal(..)) => {}
            Err(e) if !e.is_fatal() => {}
            Err(_) => return 1,
        }
    }
}

/// Ours: messages/s from the first send until the child has counted all.
fn ours_throughput(n: u64, payload: &str) -> io::Result<f64> {
    let mut child = Command::current_exe()?
        .args(["bench-count", &n.to_string()])
        .spawn()?;
    let start = Instant::now();
    {
        let ch = child.channel();
        for seq in 0..n {
            loop {
                match ch.try_send(&Msg { seq, payload }) {
                    Ok(()) => break,
                    Err(Error::WouldBlock) => ch.flush()?,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        ch.flush()?;
    }
    match child.recv() {
        Ok(Event::Message(..)) => {}
        other => return Err(io::Error::other(format!("counting child: {other:?}"))),
    }
    let secs = start.elapsed().as_secs_f64();
    child.disconnect()?;
    while !matches!(child.recv(), Ok(Event::Exit(_)) | Err(_)) {}
    Ok(n as f64 / secs)
}

/// Ours: round trips of the small message through `demo worker`'s echo, µs.
fn ours_rtt(pings: usize) -> io::Result<Vec<f64>> {
    let mut child = Command::current_exe()?.arg("worker").spawn()?;
    let payload = "x".repeat(16);
    let mut us = Vec::with_capacity(pings);
    for seq in 0..pings as u64 {
        let t = Instant::now();
        child.send(&Msg {
            seq,
            payload: &payload,
        })?;
        match child.recv() {
            Ok(Event::Message(..)) => us.push(t.elapsed().as_secs_f64() * 1e6),
            other => return Err(io::Error::other(format!("echo: {other:?}"))),
        }
    }
    child.disconnect()?;
    while !matches!(child.recv(), Ok(Event::Exit(_)) | Err(_)) {}
    us.sort_by(f64::total_cmp);
    Ok(us)
}

/// Raw limit: the same bytes, one `write` per message, on a socketpair.
fn raw_throughput(n: u64, payload: &str) -> io::Result<f64> {
    let bytes = frame(0, payload);
    let (mut w, mut r) = UnixStream::pair()?;
    let total = bytes.len() as u64 * n;
    let start = Instant::now();
    let reader = std::thread::spawn(move || -> io::Result<()> {
        let mut buf = vec![0u8; 65536];
        let mut got = 0u64;
        while got < total {
            got += r.read(&mut buf)? as u64;
        }
        Ok(())
    });
    for _ in 0..n {
        w.write_all(&bytes)?;
    }
    reader
        .join()
        .map_err(|_| io::Error::other("reader panicked"))??;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Raw limit: ping-pong of the small message's bytes between two threads.
fn raw_rtt(pings: usize) -> io::Result<Vec<f64>> {
    let bytes = frame(0, &"x".repeat(16));
    let len = bytes.len();
    let (mut a, mut b) = UnixStream::pair()?;
    let echo = std::thread::spawn(move || -> io::Result<()> {
        let mut buf = vec![0u8; len];
        for _ in 0..pings {
            b.read_exact(&mut buf)?;
            b.write_all(&buf)?;
        }
        Ok(())
    });
    let mut buf = vec![0u8; len];
    let mut us = Vec::with_capacity(pings);
    for _ in 0..pings {
        let t = Instant::now();
        a.write_all(&bytes)?;
        a.read_exact(&mut buf)?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    echo.join()
        .map_err(|_| io::Error::other("echo panicked"))??;
    us.sort_by(f64::total_cmp);
    Ok(us)
}

/// Runs the Node script; `None` without a working `node`.
fn node(script: &std::path::Path, args: &[String]) -> Option<String> {
    let out = std::process::Command::new("node")
        .arg(script)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The numbers inside a JSON line like `{"secs":1.5}` or `{"us":[..]}`.
fn numbers(json: &str) -> Vec<f64> {
    json.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'e' || c == '-'))
        .filter_map(|t| t.parse().ok())
        .collect()
}

fn line(name: &str, value: f64, unit: &str) {
    say!("{name}: {value:.1} {unit}");
}

/// Runs the benchmarks; 0 when every figure could be measured.
pub fn run(quick: bool) -> i32 {
    let plan = if quick {
        Plan {
            runs: 3,
            messages: 50_000,
            pings: 2_000,
        }
    } else {
        Plan {
            runs: 5,
            messages: 200_000,
            pings: 20_000,
        }
    };
    let script = std::env::temp_dir().join(format!("ipc-demo-bench-{}.js", std::process::id()));
    let have_node = std::fs::write(&script, include_str!("../node/bench.js")).is_ok();
    let result = (|| -> io::Result<()> {
        for (name, len) in [("throughput_small", 16usize), ("throughput_1k", 1024)] {
            let payload = "x".repeat(len);
            let ours = median(
                (0..plan.runs)
                    .map(|_| ours_throughput(plan.messages, &payload))
                    .collect::<io::Result<_>>()?,
            );
            let raw = median(
                (0..plan.runs)
                    .map(|_| raw_throughput(plan.messages, &payload))
                    .collect::<io::Result<_>>()?,
            );
            line(name, ours, "msg/s");
            line(&format!("raw_{name}"), raw, "msg/s");
            let args = [
                "throughput".to_owned(),
                plan.messages.to_string(),
                len.to_string(),
            ];
            let node_runs: Option<Vec<f64>> = (0..plan.runs)
                .map(|_| {
                    node(&script, &args)
                        .and_then(|o| numbers(&o).first().copied())
                        .map(|secs| plan.messages as f64 / secs)
                })
                .collect();
            if let Some(runs) = node_runs.filter(|_| have_node) {
                let n = median(runs);
                line(&format!("node_{name}"), n, "msg/s");
                say!("ratio_{name}: {:.2}x", ours / n);
            }
        }
        let ours = ours_rtt(plan.pings)?;
        let raw = raw_rtt(plan.pings)?;
        let node_us =
            node(&script, &["rtt".to_owned(), plan.pings.to_string()]).map(|o| numbers(&o));
        for (name, p) in [("rtt_p50", 0.5), ("rtt_p99", 0.99)] {
            let o = percentile(&ours, p);
            line(name, o, "us");
            line(&format!("raw_{name}"), percentile(&raw, p), "us");
            if let Some(n) = node_us.as_deref().filter(|v| !v.is_empty()) {
                let n = percentile(n, p);
                line(&format!("node_{name}"), n, "us");
                say!("ratio_{name}: {:.2}x", n / o);
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&script);
    match result {
        Ok(()) => 0,
        Err(e) => {
            warn!("demo bench: {e}");
            1
        }
    }
}
