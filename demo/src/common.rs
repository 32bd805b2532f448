//! Pieces both scenarios use: replies, starting workers, serving a listener.

use std::io::{self, Write};

use ipc_fork::{Child, Command};
use ipc_net::Server;

/// What the parent answers on the shared server.
pub const PARENT_REPLY: &[u8] = b"handled by parent\n";
/// What a worker answers on the shared server.
pub const CHILD_REPLY: &[u8] = b"handled by child\n";

/// What a worker of `role` answers on a routed socket.
pub fn role_reply(role: &str) -> String {
    format!("You were handled as a {role} person\n")
}

/// Starts a worker: this executable in the `worker` role, or `child_cmd`
/// (with `role` appended, as the docs' `fork('child.js', ['normal'])`).
pub fn spawn_worker(child_cmd: Option<&[String]>, role: Option<&str>) -> io::Result<Child> {
    let mut cmd = match child_cmd {
        Some([program, args @ ..]) => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
        _ => {
            let mut c = Command::current_exe()?;
            c.arg("worker");
            c
        }
    };
    if let Some(role) = role {
        cmd.arg(role);
    }
    cmd.spawn()
}

/// Answers every connection `server` accepts with `reply`, then closes it.
pub fn serve_forever(server: Server, reply: &'static [u8]) {
    loop {
        match server.accept() {
            Ok(mut conn) => {
                // A client that left early is its own business.
                let _ = conn.write_all(reply);
            }
            Err(e) => {
                warn!("demo: accept failed: {e}");
                if e.kind() != io::ErrorKind::ConnectionAborted
                    && e.raw_os_error() != Some(libc::EMFILE)
                {
                    return;
                }
            }
        }
    }
}

/// The listener to serve: the one systemd passed (`LISTEN_FDS`), else a
/// new one on `127.0.0.1:port`.
pub fn listener(port: u16) -> io::Result<Server> {
    let passed = ipc_net::systemd::listen_servers()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    match passed.into_iter().next() {
        Some((name, server)) => {
            say!("using the listener passed by systemd ({name})");
            Ok(server)
        }
        None => Server::bind(("127.0.0.1", port)),
    }
}
