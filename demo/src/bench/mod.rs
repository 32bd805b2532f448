//! `demo bench [--quick] [FIGURE...]`: our channel against Node's
//! `child.send`, against bare syscalls and against hand-written JSON lines,
//! in the same run. Release builds, medians of several runs. One
//! `name: value unit` line per figure on stdout, plus `raw_*`, `lines_*`,
//! `node_*` and `ratio_*` (ours over Node's, oriented so that bigger is
//! better for us; `ratio_lines_*`: ours over `lines_*`). With the `tokio`
//! feature, `async_*` figures too: ours through `ipc_fork::tokio`, and
//! `ratio_async_*`, async over blocking. Progress goes to stderr.

mod allocs;
mod children;
mod clients;
mod cluster;
mod lines;
mod node;
mod ours;
#[cfg(feature = "tokio")]
mod ours_async;
mod progress;
mod raw;

use std::io;

use serde::Serialize;

pub use allocs::{allocations, CountingAlloc};
pub use children::run as run_child;

use node::NodeScript;

/// The benchmark message: `{"seq":n,"payload":"..."}`.
#[derive(Serialize)]
struct Msg<'a> {
    seq: u64,
    payload: &'a str,
}

/// The figures, in the order they run; `demo bench NAME..` picks some.
pub const FIGURES: [&str; 9] = [
    "throughput_small",
    "throughput_1k",
    "throughput_1m",
    "rtt",
    "socket_handoff",
    "socket_handoff_4w",
    "server_handoff",
    "allocs_per_msg",
    "cluster_rr",
];

/// Connections in flight for `socket_handoff`.
const IN_FLIGHT: usize = 64;
/// The payload of `throughput_1m`.
const MIB: usize = 1024 * 1024;

/// Sizes of one run.
struct Plan {
    runs: usize,
    /// Messages per throughput run of ours, raw, lines and async.
    messages: u64,
    /// Messages per throughput run of Node's (100 times slower: a run of
    /// `messages` would take a minute).
    node_messages: u64,
    pings: usize,
    connections: usize,
    servers: usize,
    /// Messages of 1 MiB per `throughput_1m` run.
    big_messages: u64,
    /// HTTP requests per `cluster_rr` run.
    requests: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                runs: 3,
                messages: 50_000,
                node_messages: 50_000,
                pings: 2_000,
                connections: 5_000,
                servers: 200,
                big_messages: 50,
                requests: 2_000,
            }
        } else {
            Plan {
                runs: 5,
                // Long enough that the steady state counts, not the
                // first touches of buffers (a run of 200,000 took 20 ms).
                messages: 1_000_000,
                node_messages: 200_000,
                pings: 20_000,
                connections: 20_000,
                servers: 1_000,
                big_messages: 200,
                requests: 10_000,
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `p` (0..=1) of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The median of `runs` runs of `f`, the `side` of `figure`, each run
/// announced on stderr.
fn median_of(
    figure: &str,
    side: &str,
    runs: usize,
    mut f: impl FnMut() -> io::Result<f64>,
) -> io::Result<f64> {
    let values = (1..=runs).map(|i| {
        progress::run(figure, side, i, runs);
        f()
    });
    Ok(median(values.collect::<io::Result<_>>()?))
}

/// A throughput side: messages/s for `n` messages of a payload.
type Throughput = fn(u64, &str) -> io::Result<f64>;

/// Medians of ours, raw, lines and (with the `tokio` feature) async for
/// throughput figure `figure`. The runs take turns (ours, raw, lines,
/// async, ours, ...), so that a slow spell of the machine falls on every
/// side alike instead of on one side's block of runs and the ratios hold
/// still better.
fn throughput_medians(figure: &str, plan: &Plan, payload: &str) -> io::Result<Vec<f64>> {
    #[allow(unused_mut)] // without tokio
    let mut sides: Vec<(&str, Throughput)> = vec![
        ("ours", ours::throughput),
        ("raw", raw::throughput),
        ("lines", lines::throughput),
    ];
    #[cfg(feature = "tokio")]
    sides.push(("async", ours_async::throughput));
    let mut rates = vec![Vec::with_capacity(plan.runs); sides.len()];
    for i in 1..=plan.runs {
        for ((side, f), rates) in sides.iter().zip(&mut rates) {
            progress::run(figure, side, i, plan.runs);
            rates.push(f(plan.messages, payload)?);
        }
    }
    Ok(rates.into_iter().map(median).collect())
}

/// Says once, on stderr, that the `async_*` figures need the `tokio`
/// feature.
fn without_async() {
    #[cfg(not(feature = "tokio"))]
    {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            warning(format_args!(
                "no async_* figures: build the demo with --features tokio for them"
            ))
        });
    }
}

/// Prints one `name: value unit` line on stdout.
fn line(name: &str, value: f64, unit: &str) {
    progress::clear();
    say!("{name}: {value:.2} {unit}");
}

/// Prints `name: ratiox` on stdout.
fn ratio(name: &str, value: f64) {
    progress::clear();
    say!("{name}: {value:.2}x");
}

/// Prints a warning on stderr, on a line of its own.
fn warning(text: std::fmt::Arguments<'_>) {
    progress::clear();
    warn!("demo bench: {text}");
}

/// Prints Node's figure and our ratio to it; `higher_is_better` orients
/// the ratio so that bigger is better for us.
fn versus_node(name: &str, ours: f64, node: Option<f64>, unit: &str, higher_is_better: bool) {
    if let Some(n) = node {
        line(&format!("node_{name}"), n, unit);
        ratio(
            &format!("ratio_{name}"),
            if higher_is_better { ours / n } else { n / ours },
        );
    }
}

/// Runs Node's side `runs` times (each run prints the seconds `count`
/// items took), then prints its median rate and our ratio to it.
fn versus_node_rate(name: &str, ours: f64, unit: &str, node: NodeRuns<'_>) {
    let Some(script) = node.script else { return };
    let rates: Option<Vec<f64>> = (1..=node.runs)
        .map(|i| {
            progress::run(name, "node", i, node.runs);
            script.run(node.args).map(|secs| node.count / secs[0])
        })
        .collect();
    versus_node(name, ours, rates.map(median), unit, true);
}

/// Runs of Node's script for a rate figure.
struct NodeRuns<'a> {
    script: Option<&'a NodeScript>,
    args: &'a [&'a str],
    runs: usize,
    count: f64,
}

/// Runs the benchmarks named in `only` (all when empty); 0 when every
/// figure could be measured.
pub fn run(quick: bool, only: &[String]) -> i32 {
    if let Some(bad) = only.iter().find(|f| !FIGURES.contains(&f.as_str())) {
        warn!(
            "demo bench: unknown figure {bad:?}; the figures are {}",
            FIGURES.join(", ")
        );
        return 2;
    }
    let plan = Plan::new(quick);
    let script = NodeScript::write();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|f| f == name);
    let result = FIGURES
        .iter()
        .filter(|name| wanted(name))
        .try_for_each(|name| figure(name, &plan, script.as_ref()));
    progress::clear();
    match result {
        Ok(()) => 0,
        Err(e) => {
            warning(format_args!("{e}"));
            1
        }
    }
}

/// Runs `f` with this thread, and the processes it starts meanwhile, on the
/// CPU it is on now: for the latency figures. A ping-pong between two CPUs
/// mostly measures how fast an idle CPU wakes up: on a VM that swings
/// between 3 and 45 µs from run to run, for Node, raw syscalls and us alike.
fn on_one_cpu<T>(f: impl FnOnce() -> T) -> T {
    use rustix::thread::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
    let saved = sched_getaffinity(None);
    let mut one = CpuSet::new();
    one.set(sched_getcpu());
    let pinned = sched_setaffinity(None, &one);
    if let Err(e) = &pinned {
        warning(format_args!(
            "cannot pin to one CPU ({e}); round trips may be noisy"
        ));
    }
    let result = f();
    if let (Ok(()), Ok(saved)) = (pinned, saved) {
        let _ = sched_setaffinity(None, &saved);
    }
    result
}

/// One side of a round-trip figure: a child that answers each ping.
trait Pinger {
    /// One round trip, µs.
    fn ping(&mut self) -> io::Result<f64>;
    /// Ends the child, checking that it exited well.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Round trips taken in turns of [`TURN`], `pings` per side after one turn
/// each to warm up, µs, each side's sorted. Both children live throughout,
/// so that a slow spell of the machine falls on both sides alike instead of
/// on one side's block of runs.
fn in_turns<const N: usize>(
    mut sides: [Box<dyn Pinger>; N],
    pings: usize,
) -> io::Result<[Vec<f64>; N]> {
    let mut us: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(pings));
    for side in &mut sides {
        for _ in 0..TURN {
            side.ping()?;
        }
    }
    while us[0].len() < pings {
        for (side, us) in sides.iter_mut().zip(&mut us) {
            for _ in 0..TURN.min(pings - us.len()) {
                us.push(side.ping()?);
            }
        }
    }
    for side in sides {
        side.finish()?;
    }
    for us in &mut us {
        us.sort_by(f64::total_cmp);
    }
    Ok(us)
}

/// Round trips per side before the other side's turn.
const TURN: usize = 100;

/// Measures and prints one figure.
fn figure(name: &str, plan: &Plan, script: Option<&NodeScript>) -> io::Result<()> {
    match name {
        "throughput_small" | "throughput_1k" => {
            let len: usize = if name == "throughput_small" { 16 } else { 1024 };
            let payload = "x".repeat(len);
            let medians = throughput_medians(name, plan, &payload)?;
            let (ours, raw, lines) = (medians[0], medians[1], medians[2]);
            line(name, ours, "msg/s");
            match medians.get(3) {
                Some(&async_rate) => {
                    line(&format!("async_{name}"), async_rate, "msg/s");
                    ratio(&format!("ratio_async_{name}"), async_rate / ours);
                }
                None => without_async(),
            }
            line(&format!("raw_{name}"), raw, "msg/s");
            line(&format!("lines_{name}"), lines, "msg/s");
            ratio(&format!("ratio_lines_{name}"), ours / lines);
            let (n, len) = (plan.node_messages.to_string(), len.to_string());
            let node = NodeRuns {
                script,
                args: &["throughput", &n, &len],
                runs: plan.runs,
                count: plan.node_messages as f64,
            };
            versus_node_rate(name, ours, "msg/s", node);
        }
        "rtt" => {
            let (ours, raw, node) = on_one_cpu(|| -> io::Result<_> {
                progress::step(name, "ours and raw, in turns");
                let sides: [Box<dyn Pinger>; 2] = [
                    Box::new(ours::Echo::start()?),
                    Box::new(raw::Echo::start()?),
                ];
                let [ours, raw] = in_turns(sides, plan.pings)?;
                let node = script.and_then(|s| {
                    progress::step(name, "node");
                    s.run(&["rtt", &plan.pings.to_string()])
                });
                Ok((ours, raw, node))
            })?;
            for (name, p) in [("rtt_p50", 0.5), ("rtt_p99", 0.99)] {
                let o = percentile(&ours, p);
                line(name, o, "us");
                line(&format!("raw_{name}"), percentile(&raw, p), "us");
                let n = node.as_deref().map(|n| percentile(n, p));
                versus_node(name, o, n, "us", false);
            }
        }
        "throughput_1m" => {
            let payload = "x".repeat(MIB);
            let n = plan.big_messages;
            let megabytes = |msgs_per_s: f64| msgs_per_s * MIB as f64 / 1e6;
            let ours = median_of(name, "ours", plan.runs, || ours::throughput(n, &payload))?;
            let raw = median_of(name, "raw", plan.runs, || raw::throughput(n, &payload))?;
            line(name, megabytes(ours), "MB/s");
            line(&format!("raw_{name}"), megabytes(raw), "MB/s");
            let (count, len) = (n.to_string(), MIB.to_string());
            let node = NodeRuns {
                script,
                args: &["throughput", &count, &len],
                runs: plan.runs,
                count: n as f64 * MIB as f64 / 1e6,
            };
            versus_node_rate(name, megabytes(ours), "MB/s", node);
        }
        "socket_handoff" | "socket_handoff_4w" => {
            let workers = if name == "socket_handoff" { 1 } else { 4 };
            let ours = median_of(name, "ours", plan.runs, || {
                ours::socket_handoff(plan.connections, IN_FLIGHT, workers)
            })?;
            line(name, ours, "sockets/s");
            if workers == 1 {
                let raw = median_of(name, "raw", plan.runs, || {
                    raw::socket_handoff(plan.connections, IN_FLIGHT)
                })?;
                line(&format!("raw_{name}"), raw, "sockets/s");
            }
            let (n, k, w) = (
                plan.connections.to_string(),
                IN_FLIGHT.to_string(),
                workers.to_string(),
            );
            let node = NodeRuns {
                script,
                args: &["socket-handoff", &n, &k, &w],
                runs: plan.runs,
                count: plan.connections as f64,
            };
            versus_node_rate(name, ours, "sockets/s", node);
        }
        "server_handoff" => {
            let (ours, node) = on_one_cpu(|| -> io::Result<_> {
                progress::step(name, "ours");
                let ours = ours::server_handoff(plan.servers)?;
                let node = script.and_then(|s| {
                    progress::step(name, "node");
                    s.run(&["server-handoff", &plan.servers.to_string()])
                });
                Ok((ours, node))
            })?;
            let ours = percentile(&ours, 0.5);
            line(name, ours, "us");
            let node = node.map(|n| percentile(&n, 0.5));
            versus_node(name, ours, node, "us", false);
        }
        "allocs_per_msg" => {
            // A send each (not queued): 200,000 say as much as more would.
            let n = plan.messages.min(200_000);
            progress::step(name, "ours");
            let blocking = ours::allocs_per_msg(n)?;
            #[cfg(feature = "tokio")]
            let sides = {
                progress::step(name, "async");
                [("", blocking), ("async_", ours_async::allocs_per_msg(n)?)]
            };
            #[cfg(not(feature = "tokio"))]
            let sides = {
                without_async();
                [("", blocking)]
            };
            for (prefix, per_msg) in sides {
                match per_msg {
                    Some(per_msg) => {
                        progress::clear();
                        say!("{prefix}{name}: {per_msg:.3} allocs");
                    }
                    None => warning(format_args!(
                        "{prefix}{name} needs the demo binary's counting allocator"
                    )),
                }
            }
        }
        "cluster_rr" => {
            if script.is_none() {
                warning(format_args!(
                    "cluster_rr needs node (its workers are Node's)"
                ));
                return Ok(());
            }
            let Some(scripts) = cluster::Scripts::write() else {
                return Ok(());
            };
            // Alternating runs: a slow spell falls on both sides alike.
            let (mut ours, mut node) = (Vec::new(), Vec::new());
            for i in 1..=plan.runs {
                progress::run(name, "ours", i, plan.runs);
                ours.push(scripts.ours(plan.requests)?);
                progress::run(name, "node", i, plan.runs);
                node.push(scripts.node(plan.requests)?);
            }
            let ours = median(ours);
            line(name, ours, "req/s");
            versus_node(name, ours, Some(median(node)), "req/s", true);
        }
        other => unreachable!("not a figure: {other}"),
    }
    Ok(())
}
