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
    connections: usize,
    servers: usize,
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

/// The `bench-handoff` child: answers each socket with one byte and each
/// server with a message, after rebuilding it.
pub fn handoff_child() -> i32 {
    let Ok(mut parent) = ipc_fork::parent() else {
        return 2;
    };
    loop {
        let got = match parent.recv() {
            Ok(Event::Message(_, Some(Ok(received)))) => received,
            Ok(Event::Disconnect | Event::Exit(_)) => return 0,
            Ok(_) => continue,
            Err(e) if !e.is_fatal() => continue,
            Err(_) => return 1,
        };
        match got {
            ipc_net::Received::Socket(mut s) => {
                let _ = s.write_all(b"!");
            }
            ipc_net::Received::Server(_) => {
                if parent.send(&"rebuilt").is_err() {
                    return 1;
                }
            }
            ipc_net::Received::Datagram(_) => {}
        }
    }
}

/// Ours: sockets/s, `n` connections with `in_flight` clients at a time; the
/// parent accepts each and sends it to the child, which writes one byte.
fn ours_socket_handoff(n: usize, in_flight: usize) -> io::Result<f64> {
    let server = ipc_net::Server::bind("127.0.0.1:0")?;
    let port = server.local_addr()?.as_inet().expect("TCP").port();
    let mut child = Command::current_exe()?.arg("bench-handoff").spawn()?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| -> io::Result<()> {
        for _ in 0..in_flight {
            s.spawn(|| {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                    if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                        let _ = c.read_to_end(&mut Vec::new());
                    }
                }
            });
        }
        for _ in 0..n {
            let conn = server.accept()?;
            child
                .send_handle(&"socket", conn.into_handle())
                .map_err(|e| io::Error::from(e.error))?;
        }
        Ok(())
    })?;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    child.disconnect()?;
    while !matches!(child.recv(), Ok(Event::Exit(_)) | Err(_)) {}
    Ok(rate)
}

/// Ours: µs to send a fresh listening server and hear back from the child
/// that rebuilt it.
fn ours_server_handoff(n: usize) -> io::Result<Vec<f64>> {
    let mut child = Command::current_exe()?.arg("bench-handoff").spawn()?;
    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        let server = ipc_net::Server::bind("127.0.0.1:0")?;
        let t = Instant::now();
        child
            .send_handle(&"server", server.to_handle()?)
            .map_err(|e| io::Error::from(e.error))?;
        match child.recv() {
            Ok(Event::Message(..)) => us.push(t.elapsed().as_secs_f64() * 1e6),
            other => return Err(io::Error::other(format!("handoff child: {other:?}"))),
        }
    }
    child.disconnect()?;
    while !matches!(child.recv(), Ok(Event::Exit(_)) | Err(_)) {}
    us.sort_by(f64::total_cmp);
    Ok(us)
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

/// Runs Node's side `runs` times (each prints the seconds `count` items
/// took) and prints its median rate and our ratio to it; nothing without
/// `node`.
fn node_rate(
    script: &std::path::Path,
    args: &[String],
    runs: usize,
    count: f64,
    name: &str,
    ours: f64,
    unit: &str,
) {
    let rates: Option<Vec<f64>> = (0..runs)
        .map(|_| {
            node(script, args)
                .and_then(|o| numbers(&o).first().copied())
                .map(|secs| count / secs)
        })
        .collect();
    if let Some(rates) = rates {
        let n = median(rates);
        line(&format!("node_{name}"), n, unit);
        say!("ratio_{name}: {:.2}x", ours / n);
    }
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
            connections: 5_000,
            servers: 200,
        }
    } else {
        Plan {
            runs: 5,
            messages: 200_000,
            pings: 20_000,
            connections: 20_000,
            servers: 1_000,
        }
    };
    let script = std::env::temp_dir().join(format!("ipc-demo-bench-{}.js", std::process::id()));
    if let Err(e) = std::fs::write(&script, include_str!("../node/bench.js")) {
        warn!("demo bench: cannot write Node's script, Node figures skipped: {e}");
    }
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
            node_rate(
                &script,
                &args,
                plan.runs,
                plan.messages as f64,
                name,
                ours,
                "msg/s",
            );
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
        const IN_FLIGHT: usize = 64;
        let ours = median(
            (0..plan.runs)
                .map(|_| ours_socket_handoff(plan.connections, IN_FLIGHT))
                .collect::<io::Result<_>>()?,
        );
        line("socket_handoff", ours, "sockets/s");
        let args = [
            "socket-handoff".to_owned(),
            plan.connections.to_string(),
            IN_FLIGHT.to_string(),
        ];
        node_rate(
            &script,
            &args,
            plan.runs,
            plan.connections as f64,
            "socket_handoff",
            ours,
            "sockets/s",
        );
        let ours = percentile(&ours_server_handoff(plan.servers)?, 0.5);
        line("server_handoff", ours, "us");
        if let Some(n) = node(
            &script,
            &["server-handoff".to_owned(), plan.servers.to_string()],
        )
        .map(|o| numbers(&o))
        .filter(|v| !v.is_empty())
        {
            let n = percentile(&n, 0.5);
            line("node_server_handoff", n, "us");
            say!("ratio_server_handoff: {:.2}x", n / ours);
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
