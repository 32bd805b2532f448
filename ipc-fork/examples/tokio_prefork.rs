//! A pre-fork HTTP server on tokio: the parent starts N workers (this same
//! program, `worker I`), each with its own tokio runtime, and shares the
//! work in one of two ways:
//!
//! - `sockets`: the parent accepts every connection and hands the socket to
//!   the next worker in turn, which answers it as a tokio stream;
//! - `listener`: the parent hands its listener to every worker, and they
//!   all accept from it.
//!
//! Without `--serve` it checks itself in both ways: 64 requests from its
//! own loopback clients, every answer checked, then the workers stopped.
//! With `--serve` it serves until killed.
//!
//! ```sh
//! cargo run -p ipc-fork --features tokio --example tokio_prefork
//! cargo run -p ipc-fork --features tokio --example tokio_prefork -- --serve sockets 4
//! curl -s 127.0.0.1:PORT
//! ```

use std::error::Error;
use std::io;

use ipc_fork::tokio::AsyncChild;
use ipc_fork::{Command, Event};
use ipc_net::{Received, Server, Socket};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Requests of the self-check, per way of sharing.
const REQUESTS: usize = 64;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["worker", i] => worker(i.parse()?).await,
        ["--serve", mode, rest @ ..] => {
            let workers = rest.first().map_or(Ok(2), |n| n.parse())?;
            let prefork = Prefork::start(mode, workers).await?;
            println!(
                "listening on http://{} ({mode}, {workers} workers)",
                prefork.addr
            );
            prefork.serve(None).await
        }
        [] => {
            for mode in ["sockets", "listener"] {
                self_check(mode, 4).await?;
            }
            println!("OK: every answer checked");
            Ok(())
        }
        _ => Err("usage: tokio_prefork [--serve sockets|listener [WORKERS]]".into()),
    }
}

/// The worker: answers every connection it is given, and every one it
/// accepts from a listener it is given, until the parent disconnects.
async fn worker(me: usize) -> Result<()> {
    // Sound inside #[tokio::main]: the channel's variables were read
    // before main.
    let mut parent = ipc_fork::tokio::parent()?;
    loop {
        match parent.recv().await {
            Ok(Event::Message(_, Some(Ok(Received::Socket(socket))))) => {
                // One call; the connection stays counted until dropped.
                let stream = socket.into_tokio_tcp()?;
                tokio::spawn(answer(stream, me));
            }
            Ok(Event::Message(_, Some(Ok(Received::Server(server))))) => {
                let listener = server.into_tokio_tcp()?;
                tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        tokio::spawn(answer(stream, me));
                    }
                });
            }
            Ok(Event::Disconnect) => return Ok(()),
            Ok(_) => {}
            Err(e) if !e.is_fatal() => eprintln!("worker {me}: skipped: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads one request head and answers it; the connection then closes.
async fn answer(mut stream: impl AsyncRead + AsyncWrite + Unpin, me: usize) -> io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let body = format!("hello from worker {me}\n");
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

/// The parent's side: the workers, each driven by a task of its own, and
/// the address clients connect to.
struct Prefork {
    addr: std::net::SocketAddr,
    /// Sockets for each worker's task (sockets mode).
    to_workers: Vec<mpsc::Sender<Socket>>,
    /// The parent's listener (sockets mode).
    listener: Option<tokio::net::TcpListener>,
    workers: Vec<tokio::task::JoinHandle<Result<std::process::ExitStatus>>>,
}

impl Prefork {
    async fn start(mode: &str, n: usize) -> Result<Prefork> {
        let server = Server::bind("127.0.0.1:0")?;
        let addr = server.local_addr()?.as_inet().ok_or("not TCP")?;
        let mut to_workers = Vec::new();
        let mut workers = Vec::new();
        for i in 0..n {
            let mut child =
                AsyncChild::spawn(Command::current_exe()?.args(["worker", &i.to_string()]))?;
            if mode == "listener" {
                // By reference: every worker accepts from the same queue.
                child.send_handle(&"listener", server.to_handle()?).await?;
            }
            let (tx, rx) = mpsc::channel(64);
            to_workers.push(tx);
            workers.push(tokio::spawn(drive(child, rx)));
        }
        let listener = match mode {
            "sockets" => Some(server.into_tokio_tcp()?),
            "listener" => None, // ours closes: only the workers accept
            other => return Err(format!("unknown mode {other:?}").into()),
        };
        Ok(Prefork {
            addr,
            to_workers,
            listener,
            workers,
        })
    }

    /// Accepts and hands sockets to the workers in turn (sockets mode),
    /// until `stop` resolves (or for ever); then stops the workers.
    async fn serve(self, stop: Option<tokio::task::JoinHandle<Result<()>>>) -> Result<()> {
        let Prefork {
            to_workers,
            listener,
            workers,
            ..
        } = self;
        let accepting = async {
            let Some(listener) = listener else {
                return std::future::pending().await;
            };
            for next in (0..to_workers.len()).cycle() {
                let (conn, _) = listener.accept().await?;
                to_workers[next].send(Socket::try_from(conn)?).await?;
            }
            unreachable!("cycle() never ends")
        };
        let result = match stop {
            Some(stop) => tokio::select! {
                r = accepting => r,
                r = stop => r?,
            },
            None => accepting.await,
        };
        drop(to_workers); // each worker's task disconnects it
        for worker in workers {
            let status = worker.await??;
            if !status.success() {
                return Err(format!("a worker ended with {status}").into());
            }
        }
        result
    }
}

/// One worker, from the parent: hands it the sockets that come, reads its
/// events (the ACKs among them), and when no more sockets will come,
/// disconnects it and waits for its exit.
async fn drive(
    mut child: AsyncChild,
    mut sockets: mpsc::Receiver<Socket>,
) -> Result<std::process::ExitStatus> {
    let pid = child.id();
    loop {
        tokio::select! {
            socket = sockets.recv() => match socket {
                // Resolves once the worker has the socket.
                Some(socket) => child.send_handle(&"socket", socket.into_handle()).await?,
                None => break,
            },
            // Cancel-safe: an event is never lost to the other branch.
            event = child.recv() => match event? {
                Event::Exit(status) => return Err(format!("worker exited early: {status}").into()),
                Event::Message(msg, _) => println!("worker {pid}: {}", msg.as_str()),
                _ => {}
            },
        }
    }
    child.disconnect().await?;
    loop {
        if let Event::Exit(status) = child.recv().await? {
            return Ok(status);
        }
    }
}

/// Starts a prefork server, sends it REQUESTS requests at once from
/// loopback clients, checks every answer, and stops it.
async fn self_check(mode: &'static str, workers: usize) -> Result<()> {
    let prefork = Prefork::start(mode, workers).await?;
    let addr = prefork.addr;
    let clients = tokio::spawn(async move {
        let requests: Vec<_> = (0..REQUESTS).map(|_| tokio::spawn(request(addr))).collect();
        let mut answered = vec![0usize; workers];
        for r in requests {
            let body = r.await??;
            let me: usize = body
                .strip_prefix("hello from worker ")
                .and_then(|n| n.trim_end().parse().ok())
                .ok_or_else(|| format!("wrong answer {body:?}"))?;
            *answered.get_mut(me).ok_or("no such worker")? += 1;
        }
        println!("{mode}: {REQUESTS} requests answered, per worker {answered:?}");
        Ok(())
    });
    prefork.serve(Some(clients)).await
}

/// One HTTP request; the body of its answer.
async fn request(addr: std::net::SocketAddr) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await?;
    let (head, body) = reply.split_once("\r\n\r\n").ok_or("no head")?;
    if !head.starts_with("HTTP/1.1 200 OK") {
        return Err(format!("wrong reply {reply:?}").into());
    }
    Ok(body.to_owned())
}
