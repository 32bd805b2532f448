//! The command line.

use std::net::IpAddr;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// No arguments: both scenarios against our own clients, then a report.
    SelfCheck,
    /// Serve one server from two processes until stopped.
    ShareServer(Serve),
    /// Route connections to two workers by client address until stopped.
    RouteSockets(Serve),
    /// The child role.
    Worker(String),
    /// A cluster primary running workers of any language.
    Cluster(ClusterOpts),
    /// A Rust HTTP worker for any cluster primary.
    ClusterWorker,
    /// Measure throughput and round trips against Node and raw syscalls.
    Bench {
        /// A run under a minute.
        quick: bool,
        /// The figures to measure; all when empty.
        only: Vec<String>,
    },
    /// A benchmark child process, with its role and arguments (internal).
    BenchChild(Vec<String>),
    /// Print usage.
    Help,
}

/// Options of the serving modes.
#[derive(Debug, Clone, PartialEq)]
pub struct Serve {
    /// Port on 127.0.0.1 (0: the kernel picks).
    pub port: u16,
    /// The client address routed to the `special` worker.
    pub vip: IpAddr,
    /// Another program to use as the child, split on whitespace.
    pub child_cmd: Option<Vec<String>>,
    /// How long a routing worker may leave a socket unacknowledged before
    /// it is replaced.
    pub handoff_timeout: std::time::Duration,
    /// share-server: how long a successor may take to say it is ready, and
    /// the old workers to drain, on a restart (SIGHUP).
    pub restart_timeout: std::time::Duration,
    /// share-server: started by a predecessor, which hands the listener
    /// over the channel (internal: `--successor`).
    pub successor: bool,
}

impl Serve {
    /// The arguments that start the successor of a share-server running
    /// with these options.
    pub fn successor_args(&self) -> Vec<String> {
        let mut args = vec![
            "share-server".to_owned(),
            "--port".to_owned(),
            self.port.to_string(),
            "--restart-timeout".to_owned(),
            self.restart_timeout.as_millis().to_string(),
        ];
        if let Some(cmd) = &self.child_cmd {
            args.extend(["--child-cmd".to_owned(), cmd.join(" ")]);
        }
        args.push("--successor".to_owned());
        args
    }
}

/// Options of `demo cluster`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOpts {
    /// How many workers.
    pub workers: usize,
    /// `rr` or `none`.
    pub policy: ipc_fork::cluster::Policy,
    /// The worker command and its arguments.
    pub cmd: Vec<String>,
}

/// Usage text.
pub const USAGE: &str = "\
usage: demo                                   run both scenarios with built-in clients and check every reply
       demo share-server [--port P] [--restart-timeout MS] [--child-cmd 'CMD ARGS']
       demo route-sockets [--port P] [--vip ADDR] [--handoff-timeout MS] [--child-cmd 'CMD ARGS']
       demo worker [normal|special]           the child role (any Node-protocol parent)
       demo cluster [--workers N] [--policy rr|none] -- CMD [ARGS..]
                                              Node's cluster primary, running N workers CMD ARGS
       demo cluster-worker                    a Rust HTTP worker for any cluster primary ($PORT, default 8000)
       demo bench [--quick] [FIGURE..]        our speed vs Node's and raw syscalls; figures:
                                              throughput_small throughput_1k throughput_1m rtt
                                              socket_handoff socket_handoff_4w server_handoff
                                              allocs_per_msg cluster_rr (default: all)

share-server   parent and child accept from the same listening socket; on SIGHUP it
               starts its successor (this program, as now on disk), hands it the
               listener, and once it is ready (within --restart-timeout, default
               10000 ms) drains its own worker and exits; if it fails, serving goes on
route-sockets  parent accepts; sockets from --vip (default 127.0.0.2) go to the
               'special' child, the rest to 'normal' (the role is appended to --child-cmd);
               a worker that leaves a socket unacknowledged for --handoff-timeout
               (default 5000 ms) is replaced, one that dies is restarted
cluster        workers (e.g. `node app.js`) listen through the primary; one line per
               worker event; a worker that dies is replaced (with back-off); SIGHUP
               restarts them one by one, SIGINT/SIGTERM disconnects them and exits
Under systemd-socket-activate the passed listener is used instead of --port.";

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Mode, String> {
    let Some((first, rest)) = args.split_first() else {
        return Ok(Mode::SelfCheck);
    };
    match first.as_str() {
        "-h" | "--help" | "help" => Ok(Mode::Help),
        "worker" => match rest {
            [] => Ok(Mode::Worker("normal".into())),
            [role] => Ok(Mode::Worker(role.clone())),
            _ => Err("worker takes at most one argument: the role".into()),
        },
        "share-server" => serve_options(rest, false).map(Mode::ShareServer),
        "bench" => {
            let quick = rest.iter().any(|a| a == "--quick");
            let only: Vec<String> = rest.iter().filter(|a| *a != "--quick").cloned().collect();
            match only.iter().find(|f| f.starts_with('-')) {
                Some(flag) => Err(format!("bench: unknown option {flag:?}")),
                None => Ok(Mode::Bench { quick, only }),
            }
        }
        "cluster" => cluster_options(rest).map(Mode::Cluster),
        "cluster-worker" => match rest {
            [] => Ok(Mode::ClusterWorker),
            _ => Err("cluster-worker takes no arguments (the port is $PORT)".into()),
        },
        "bench-child" => Ok(Mode::BenchChild(rest.to_vec())),
        "route-sockets" => serve_options(rest, true).map(Mode::RouteSockets),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn cluster_options(mut args: &[String]) -> Result<ClusterOpts, String> {
    use ipc_fork::cluster::Policy;
    let mut opts = ClusterOpts {
        workers: 2,
        policy: Policy::from_env(),
        cmd: Vec::new(),
    };
    loop {
        match args {
            [dashes, cmd @ ..] if dashes == "--" => {
                if cmd.is_empty() {
                    return Err("cluster: no worker command after --".into());
                }
                opts.cmd = cmd.to_vec();
                return Ok(opts);
            }
            [flag, value, rest @ ..] if flag == "--workers" => {
                opts.workers = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--workers: not a positive number: {value:?}"))?;
                args = rest;
            }
            [flag, value, rest @ ..] if flag == "--policy" => {
                opts.policy = Policy::parse(value)
                    .ok_or_else(|| format!("--policy: rr or none, not {value:?}"))?;
                args = rest;
            }
            [] => return Err("cluster: the worker command goes after --".into()),
            [other, ..] => return Err(format!("cluster: unknown option {other:?}")),
        }
    }
}

fn serve_options(mut args: &[String], routing: bool) -> Result<Serve, String> {
    let mut serve = Serve {
        port: 0,
        vip: IpAddr::from([127, 0, 0, 2]),
        child_cmd: None,
        handoff_timeout: std::time::Duration::from_secs(5),
        restart_timeout: std::time::Duration::from_secs(10),
        successor: false,
    };
    loop {
        let (flag, value, rest) = match args {
            [] => return Ok(serve),
            [flag, rest @ ..] if flag == "--successor" && !routing => {
                serve.successor = true;
                args = rest;
                continue;
            }
            [flag, value, rest @ ..] => (flag, value, rest),
            [flag] => return Err(format!("{flag} needs a value")),
        };
        match flag.as_str() {
            "--port" => {
                serve.port = value
                    .parse()
                    .map_err(|_| format!("--port: not a port: {value:?}"))?
            }
            "--vip" if routing => {
                serve.vip = value
                    .parse()
                    .map_err(|_| format!("--vip: not an IP address: {value:?}"))?
            }
            "--handoff-timeout" if routing => serve.handoff_timeout = millis(flag, value)?,
            "--restart-timeout" if !routing => serve.restart_timeout = millis(flag, value)?,
            "--child-cmd" => {
                let words: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
                if words.is_empty() {
                    return Err("--child-cmd is empty".into());
                }
                serve.child_cmd = Some(words);
            }
            other => return Err(format!("unknown option {other:?}")),
        }
        args = rest;
    }
}

fn millis(flag: &str, value: &str) -> Result<std::time::Duration, String> {
    let ms: u64 = value
        .parse()
        .map_err(|_| format!("{flag}: not milliseconds: {value:?}"))?;
    Ok(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse(&[]), Ok(Mode::SelfCheck));
        assert_eq!(
            parse(&args("worker special")),
            Ok(Mode::Worker("special".into()))
        );
        let Ok(Mode::RouteSockets(s)) = parse(&args("route-sockets --port 8000 --vip 127.0.0.9"))
        else {
            panic!()
        };
        assert_eq!((s.port, s.vip.to_string()), (8000, "127.0.0.9".into()));
        let mut a = args("share-server --child-cmd");
        a.push("node child.js".into());
        let Ok(Mode::ShareServer(s)) = parse(&a) else {
            panic!()
        };
        assert_eq!(s.child_cmd, Some(vec!["node".into(), "child.js".into()]));
        assert!(parse(&args("share-server --vip 1.2.3.4")).is_err());
        assert!(parse(&args("share-server --port")).is_err());
        assert!(parse(&args("bogus")).is_err());
        assert_eq!(
            parse(&args("bench rtt --quick")),
            Ok(Mode::Bench {
                quick: true,
                only: vec!["rtt".into()]
            })
        );
        assert!(parse(&args("bench --fast")).is_err());
        let Ok(Mode::Cluster(c)) = parse(&args("cluster --workers 3 --policy none -- node app.js"))
        else {
            panic!()
        };
        assert_eq!((c.workers, c.policy.to_string()), (3, "none".into()));
        assert_eq!(c.cmd, vec!["node".to_string(), "app.js".into()]);
        assert!(parse(&args("cluster --workers 0 -- node")).is_err());
        assert!(parse(&args("cluster --policy fifo -- node")).is_err());
        assert!(parse(&args("cluster node app.js")).is_err());
    }

    #[test]
    fn a_successor_gets_the_options_of_its_predecessor() {
        let mut a = args("share-server --restart-timeout 2500 --child-cmd");
        a.push("node child.js".into());
        let Ok(Mode::ShareServer(s)) = parse(&a) else {
            panic!()
        };
        assert!(!s.successor);
        let Ok(Mode::ShareServer(next)) = parse(&s.successor_args()) else {
            panic!()
        };
        assert!(next.successor);
        assert_eq!(next.successor_args(), s.successor_args());
        assert_eq!(
            Serve {
                successor: false,
                ..next
            },
            s
        );
        assert!(parse(&args("route-sockets --successor")).is_err());
        assert!(parse(&args("route-sockets --restart-timeout 5")).is_err());
    }
}
