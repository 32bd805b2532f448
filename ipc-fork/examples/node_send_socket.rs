//! Node's documented example "Sending a socket object", in Rust: the parent
//! accepts every connection and hands it to the `special` child when it
//! comes from the VIP address, else to the `normal` one.
//!
//! Node's example uses 74.125.127.100 as the VIP; this one uses 127.0.0.2
//! so that it runs on loopback. Without arguments it checks itself: clients
//! from 127.0.0.1 and 127.0.0.2, each answer checked. With `--serve` it
//! listens on 127.0.0.1:1337.
//!
//! ```sh
//! cargo run -p ipc-fork --example node_send_socket
//! ```

use std::error::Error;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};

use ipc_fork::{Child, Command, Event};
use ipc_net::{Received, Server};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const VIP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn main() -> Result<()> {
    if ipc_fork::has_parent() {
        return child();
    }
    let serve = std::env::args().nth(1).as_deref() == Some("--serve");
    // const normal = fork('subprocess.js', ['normal']); and 'special'
    let mut normal = Command::current_exe()?.arg("normal").spawn()?;
    let mut special = Command::current_exe()?.arg("special").spawn()?;
    // const server = require('node:net').createServer({ pauseOnConnect: true });
    let server = Server::bind(if serve {
        "127.0.0.1:1337"
    } else {
        "127.0.0.1:0"
    })?;
    let addr = server.local_addr()?.as_inet().ok_or("not TCP")?;
    let clients = (!serve).then(|| std::thread::spawn(move || check(addr)));
    if serve {
        println!("listening on {addr}");
    }
    let expected = if serve { usize::MAX } else { 2 * ROUNDS };
    for _ in 0..expected {
        let socket = server.accept()?;
        let vip = socket.peer_addr()?.as_inet().map(|a| a.ip()) == Some(IpAddr::V4(VIP));
        // if (socket.remoteAddress === '74.125.127.100') special.send(...)
        let to = if vip { &mut special } else { &mut normal };
        to.send_handle(&"socket", socket.into_handle())?;
    }
    if let Some(clients) = clients {
        clients.join().expect("clients")?;
    }
    for mut child in [normal, special] {
        finish(&mut child)?;
    }
    println!("OK: every connection answered by the right child");
    Ok(())
}

const ROUNDS: usize = 16;

/// Clients from both addresses, each answer checked.
fn check(addr: SocketAddr) -> Result<()> {
    for _ in 0..ROUNDS {
        for (from, priority) in [(Ipv4Addr::LOCALHOST, "normal"), (VIP, "special")] {
            let sock = rustix::net::socket_with(
                rustix::net::AddressFamily::INET,
                rustix::net::SocketType::STREAM,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )?;
            rustix::net::bind(&sock, &SocketAddr::new(from.into(), 0))?;
            rustix::net::connect(&sock, &addr)?;
            let mut answer = String::new();
            TcpStream::from(sock).read_to_string(&mut answer)?;
            assert_eq!(answer, format!("Request handled with {priority} priority"));
        }
    }
    Ok(())
}

fn finish(child: &mut Child) -> Result<()> {
    child.disconnect()?;
    loop {
        if let Event::Exit(status) = child.recv()? {
            return if status.success() {
                Ok(())
            } else {
                Err(status.to_string().into())
            };
        }
    }
}

/// subprocess.js: answers each socket with its priority (`process.argv[2]`).
fn child() -> Result<()> {
    let priority = std::env::args().nth(1).unwrap_or_default();
    let mut parent = ipc_fork::parent()?;
    loop {
        match parent.recv() {
            Ok(Event::Message(m, Some(Ok(Received::Socket(mut socket)))))
                if m.as_str() == "\"socket\"" =>
            {
                socket.write_all(format!("Request handled with {priority} priority").as_bytes())?;
            }
            Ok(Event::Disconnect) => return Ok(()),
            Ok(_) => {}
            Err(e) if !e.is_fatal() => eprintln!("{priority}: skipped: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
}
