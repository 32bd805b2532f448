//! A tokio worker under a Node parent. `tokio_worker_under_node.js`, next
//! to this file, forks it with an `'ipc'` channel, serves HTTP, and hands
//! every connection to it (`child.send('socket', socket)`); the worker
//! answers each as a tokio stream, keeping it open for more requests
//! (keep-alive) until the client closes. The Node parent's
//! `server.getConnections()` counts the connections the worker holds, and
//! its `server.close()` completes once the worker has dropped the last.
//!
//! Run it as it is, and it starts that Node parent on itself (with the
//! `node` on `PATH`) and exits with its status:
//!
//! ```sh
//! cargo run -p ipc-fork --features tokio --example tokio_worker_under_node
//! ```

use std::error::Error;
use std::io;
use std::process::ExitCode;

use ipc_fork::Event;
use ipc_net::Received;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

fn main() -> ExitCode {
    if !ipc_fork::has_parent() {
        return run_under_node();
    }
    match worker() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The worker, as Node's parent sees it: `process.send()` and
/// `process.on('message')`, in Rust, on tokio.
#[tokio::main]
async fn worker() -> Result<()> {
    // Sound inside #[tokio::main], with the runtime's threads running: the
    // channel's variables were read (and removed) before main.
    let mut parent = ipc_fork::tokio::parent()?;
    parent.send(&"ready").await?;
    loop {
        match parent.recv().await {
            Ok(Event::Message(_, Some(Ok(Received::Socket(socket))))) => {
                // One call. The stream stays counted until it is dropped,
                // so Node's getConnections() and close() stay right.
                let stream = socket.into_tokio_tcp()?;
                tokio::spawn(serve(stream));
            }
            Ok(Event::Message(msg, None)) if msg.as_str() == "\"pid?\"" => {
                parent.send(&std::process::id()).await?;
            }
            Ok(Event::Message(msg, _)) => eprintln!("worker: unexpected {}", msg.as_str()),
            // Node's NODE_SOCKET_* questions: already answered.
            Ok(Event::Internal(..) | Event::Fate(_) | Event::Exit(_)) => {}
            Ok(Event::Disconnect) => return Ok(()),
            Err(e) if !e.is_fatal() => eprintln!("worker: skipped: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Answers requests on one connection until the client closes it.
async fn serve(stream: impl AsyncRead + AsyncWrite + Unpin) -> io::Result<()> {
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    let mut served = 0;
    loop {
        // A request head: lines up to an empty one.
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        while line.trim_end() != "" {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Ok(());
            }
        }
        served += 1;
        let body = format!("hello from a tokio worker (request {served} on this connection)\n");
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.get_mut().write_all(reply.as_bytes()).await?;
    }
}

/// Started without a channel: runs the Node parent on this program.
fn run_under_node() -> ExitCode {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/tokio_worker_under_node.js"
    );
    let status = std::env::current_exe().and_then(|me| {
        std::process::Command::new("node")
            .arg(script)
            .arg(me)
            .status()
    });
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => {
            eprintln!("node parent: {s}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot run node {script}: {e}");
            ExitCode::FAILURE
        }
    }
}
