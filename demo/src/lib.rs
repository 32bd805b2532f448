//! The `demo` program: the two examples of Node's
//! `child.send(message, sendHandle)` documentation, in Rust.
//!
//! - **Shared server**: the parent sends its listening server to a forked
//!   child with `"server"`; both accept from it.
//! - **Socket routing**: the parent accepts every connection and sends each
//!   socket with `"socket"` to the `special` worker when the client address
//!   is the VIP one, else to `normal`.
//!
//! ```no_run
//! // What `demo` with no arguments does:
//! std::process::exit(demo::run(&[]));
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

/// `println!` that never panics: a serving demo goes on, and still stops on
/// a signal, when nobody reads its output any more.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics.
macro_rules! warn {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod bench;
pub mod cli;
mod cluster;
mod cluster_worker;
mod common;
pub mod linger;
mod restart;
mod router;
mod selfcheck;
mod serve;
mod signals;
mod worker;

pub use bench::{allocations, CountingAlloc};

/// Runs the demo with `args` (without the program name); returns the exit
/// code.
pub fn run(args: &[String]) -> i32 {
    match cli::parse(args) {
        Ok(cli::Mode::SelfCheck) => selfcheck::run(),
        Ok(cli::Mode::ShareServer(opts)) => serve::share_server(&opts),
        Ok(cli::Mode::RouteSockets(opts)) => serve::route_sockets(&opts),
        Ok(cli::Mode::Worker(role)) => worker::run(&role),
        Ok(cli::Mode::Cluster(opts)) => cluster::run(&opts),
        Ok(cli::Mode::ClusterWorker) => cluster_worker::run(),
        Ok(cli::Mode::Bench { quick, only }) => bench::run(quick, &only),
        Ok(cli::Mode::BenchChild(args)) => bench::run_child(&args),
        Ok(cli::Mode::Help) => {
            println!("{}", cli::USAGE);
            0
        }
        Err(e) => {
            eprintln!("demo: {e}\n{}", cli::USAGE);
            2
        }
    }
}

/// `main` of the `demo` binary: runs with the process's arguments.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = run(&args);
    // Answered clients close first (each within the linger time).
    linger::drain();
    code
}
