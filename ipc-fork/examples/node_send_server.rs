//! Node's documented example "Sending a server object"
//! (`subprocess.send(message, sendHandle)`), in Rust: the parent listens,
//! hands its server to a child, and both answer connections from the same
//! listening socket.
//!
//! Without arguments it checks itself: 32 loopback connections, each
//! answered by the parent or the child, then it stops the child. With
//! `--serve` it listens on 127.0.0.1:1337, as Node's example does.
//!
//! ```sh
//! cargo run -p ipc-fork --example node_send_server
//! cargo run -p ipc-fork --example node_send_server -- --serve   # then: nc 127.0.0.1 1337
//! ```

use std::error::Error;
use std::io::{Read, Write};
use std::net::TcpStream;

use ipc_fork::{Command, Event};
use ipc_net::{Received, Server};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> Result<()> {
    if ipc_fork::has_parent() {
        return child();
    }
    let serve = std::env::args().nth(1).as_deref() == Some("--serve");
    // const subprocess = fork('subprocess.js');
    let mut subprocess = Command::current_exe()?.spawn()?;
    // const server = net.createServer(); server.listen(1337, () => ...)
    let server = Server::bind(if serve {
        "127.0.0.1:1337"
    } else {
        "127.0.0.1:0"
    })?;
    let addr = server.local_addr()?.as_inet().ok_or("not TCP")?;
    // subprocess.send('server', server);
    subprocess.send_handle(&"server", server.to_handle()?)?;
    // server.on('connection', (socket) => socket.end('handled by parent'));
    std::thread::spawn(move || {
        while let Ok(mut socket) = server.accept() {
            let _ = socket.write_all(b"handled by parent");
        }
    });
    if serve {
        println!("listening on {addr}");
        loop {
            std::thread::park();
        }
    }
    for _ in 0..32 {
        let mut answer = String::new();
        TcpStream::connect(addr)?.read_to_string(&mut answer)?;
        assert!(
            answer == "handled by parent" || answer == "handled by child",
            "unexpected answer {answer:?}"
        );
    }
    subprocess.disconnect()?;
    loop {
        if let Event::Exit(status) = subprocess.recv()? {
            assert!(status.success(), "child: {status}");
            break;
        }
    }
    println!("OK: every connection answered");
    Ok(())
}

/// subprocess.js: `process.on('message', (m, server) => ...)`.
fn child() -> Result<()> {
    let mut parent = ipc_fork::parent()?;
    loop {
        match parent.recv() {
            Ok(Event::Message(m, Some(Ok(Received::Server(server)))))
                if m.as_str() == "\"server\"" =>
            {
                std::thread::spawn(move || {
                    while let Ok(mut socket) = server.accept() {
                        let _ = socket.write_all(b"handled by child");
                    }
                });
            }
            Ok(Event::Disconnect) => return Ok(()),
            Ok(_) => {}
            Err(e) if !e.is_fatal() => eprintln!("child: skipped: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
}
