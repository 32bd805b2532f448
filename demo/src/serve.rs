//! The two serving modes: `share-server` and `route-sockets`.

use std::io;
use std::net::IpAddr;

use ipc_fork::{Child, Event};
use ipc_net::Server;

use crate::cli::Serve;
use crate::common::{listener, serve_forever, spawn_worker, PARENT_REPLY};
use crate::signals::{stop_on_signal, Workers};

fn fail(what: &str, e: impl std::fmt::Display) -> i32 {
    warn!("demo: {what}: {e}");
    1
}

/// The docs' first example: parent and child accept from one server until
/// stopped. A child that dies is reported; the parent keeps serving.
pub fn share_server(opts: &Serve) -> i32 {
    let workers = Workers::default();
    stop_on_signal(workers.clone());
    let server = match listener(opts.port) {
        Ok(s) => s,
        Err(e) => return fail("listen", e),
    };
    let addr = server
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let mut child = match spawn_worker(opts.child_cmd.as_deref(), None) {
        Ok(c) => c,
        Err(e) => return fail("start the child", e),
    };
    workers.lock().unwrap().push(child.id());
    let handle = match server.to_handle() {
        Ok(h) => h,
        Err(e) => return fail("share the server", e),
    };
    if let Err(e) = child.send_handle(&"server", handle) {
        return fail("send the server", e);
    }
    say!(
        "share-server: listening on {addr}; parent pid {} and child pid {} both answer",
        std::process::id(),
        child.id()
    );
    std::thread::spawn(move || serve_forever(server, PARENT_REPLY));
    watch(child, "child");
    say!("share-server: the parent serves alone from now on");
    loop {
        std::thread::park();
    }
}

/// Reports a child's events until it is gone.
fn watch(mut child: Child, name: &str) {
    loop {
        match child.recv() {
            Ok(Event::Message(m, _)) => say!("{name} says {}", m.as_str()),
            Ok(Event::Internal(..) | Event::Fate(_)) => {}
            Ok(Event::Disconnect) => say!("{name} (pid {}) disconnected", child.id()),
            Ok(Event::Exit(status)) => {
                say!("{name} (pid {}) exited: {status}", child.id());
                return;
            }
            Err(e) if !e.is_fatal() => warn!("{name}: {e}"),
            Err(_) => return,
        }
    }
}

/// A routing worker and how to start it again.
pub struct Route {
    pub role: &'static str,
    pub child: Child,
    pub sent: usize,
}

/// Starts the `normal` and `special` workers.
pub fn start_routes(child_cmd: Option<&[String]>, workers: &Workers) -> io::Result<[Route; 2]> {
    let start = |role: &'static str| -> io::Result<Route> {
        let child = spawn_worker(child_cmd, Some(role))?;
        workers.lock().unwrap().push(child.id());
        Ok(Route {
            role,
            child,
            sent: 0,
        })
    };
    Ok([start("normal")?, start("special")?])
}

/// Accepts one connection and sends it to the worker its client address
/// calls for. A worker found dead is reported and replaced, as Node's
/// cluster does, and the socket goes to the new one.
pub fn route_one(
    server: &Server,
    routes: &mut [Route; 2],
    vip: IpAddr,
    child_cmd: Option<&[String]>,
    workers: &Workers,
) -> io::Result<()> {
    let conn = server.accept()?;
    let from = conn.peer_addr()?.as_inet().map(|a| a.ip());
    let route = &mut routes[usize::from(from == Some(vip))];
    let mut handle = conn.into_handle();
    for _attempt in 0..2 {
        match route.child.send_handle(&"socket", handle) {
            Ok(()) => {
                route.sent += 1;
                return Ok(());
            }
            Err(e) if e.error.is_fatal() => {
                let old_pid = route.child.id();
                let _ = route.child.kill();
                let status = route.child.wait()?;
                let child = spawn_worker(child_cmd, Some(route.role))?;
                say!(
                    "worker {} (pid {old_pid}) is gone ({status}); started pid {}",
                    route.role,
                    child.id()
                );
                workers.lock().unwrap().push(child.id());
                // Dropping the old channel closes whatever it still held.
                route.child = child;
                match e.handle {
                    Some(h) => handle = h,
                    None => return Err(io::Error::from(e.error)),
                }
            }
            Err(e) => return Err(io::Error::from(e.error)),
        }
    }
    Err(io::Error::other("a fresh worker refused the socket"))
}

/// The docs' second example, serving until stopped.
pub fn route_sockets(opts: &Serve) -> i32 {
    let workers = Workers::default();
    stop_on_signal(workers.clone());
    let server = match listener(opts.port) {
        Ok(s) => s,
        Err(e) => return fail("listen", e),
    };
    let mut routes = match start_routes(opts.child_cmd.as_deref(), &workers) {
        Ok(r) => r,
        Err(e) => return fail("start the workers", e),
    };
    let addr = server
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    say!(
        "route-sockets: listening on {addr}; clients from {} go to 'special' (pid {}), others to 'normal' (pid {})",
        opts.vip,
        routes[1].child.id(),
        routes[0].child.id()
    );
    loop {
        if let Err(e) = route_one(
            &server,
            &mut routes,
            opts.vip,
            opts.child_cmd.as_deref(),
            &workers,
        ) {
            warn!("demo: {e}");
        }
    }
}
