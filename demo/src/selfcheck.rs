//! `demo` with no arguments: both scenarios end to end with our own
//! loopback clients, every reply checked.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};

use ipc_fork::Event;
use ipc_net::Server;

use crate::common::{role_reply, spawn_worker, Serving, CHILD_REPLY, PARENT_REPLY};
use crate::router::{Router, RouterOptions};
use crate::signals::Workers;

/// Connections per scenario.
const CONNECTIONS: usize = 300;
/// Client threads running at once.
const CLIENTS: usize = 8;
/// The shared-server check goes on in batches until both processes have
/// answered, up to this many connections.
const SHARE_LIMIT: usize = 3000;
/// The VIP client address on loopback.
const VIP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Connects from `from` (any loopback address) and reads the whole reply.
fn ask(to: SocketAddr, from: Ipv4Addr) -> io::Result<String> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    // Close-on-exec: a worker started meanwhile must not inherit it.
    let sock = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::bind(&sock, &SocketAddr::from((from, 0)))?;
    rustix::net::connect(&sock, &to)?;
    let mut reply = String::new();
    TcpStream::from(sock).read_to_string(&mut reply)?;
    Ok(reply)
}

/// Runs `n` clients, `CLIENTS` at a time; client `i` connects from
/// `source(i)` and its reply goes to `tally`.
fn run_clients(
    n: usize,
    to: SocketAddr,
    source: impl Fn(usize) -> Ipv4Addr + Sync,
    tally: impl Fn(usize, io::Result<String>) + Sync,
) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                tally(i, ask(to, source(i)));
            });
        }
    });
}

struct ShareResult {
    addr: SocketAddr,
    parent: usize,
    child: usize,
    wrong: usize,
}

fn check_share_server() -> io::Result<ShareResult> {
    let server = Server::bind("127.0.0.1:0")?;
    let addr = server.local_addr()?.as_inet().expect("TCP");
    let mut child = spawn_worker(None, None)?;
    child
        .send_handle(&"server", server.to_handle()?)
        .map_err(|e| io::Error::from(e.error))?;
    // The worker handles messages in order: once it echoes this, it serves.
    child.send(&"ready?")?;
    match child.recv() {
        Ok(Event::Message(m, None)) if m.as_str() == "\"ready?\"" => {}
        other => return Err(io::Error::other(format!("worker did not echo: {other:?}"))),
    }
    let mut serving = Serving::new()?;
    serving.serve(server, PARENT_REPLY);
    let (parent, by_child, wrong) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let mut total = 0;
    while total < CONNECTIONS
        || (total < SHARE_LIMIT
            && (parent.load(Ordering::Relaxed) == 0 || by_child.load(Ordering::Relaxed) == 0))
    {
        run_clients(
            CONNECTIONS,
            addr,
            |_| Ipv4Addr::LOCALHOST,
            |_, reply| {
                let counter = match reply.as_deref().map(str::as_bytes) {
                    Ok(r) if r == PARENT_REPLY => &parent,
                    Ok(r) if r == CHILD_REPLY => &by_child,
                    _ => &wrong,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            },
        );
        total += CONNECTIONS;
    }
    serving.stop();
    child.disconnect()?;
    wait_exit(&mut child)?;
    Ok(ShareResult {
        addr,
        parent: parent.into_inner(),
        child: by_child.into_inner(),
        wrong: wrong.into_inner(),
    })
}

/// Waits for a worker's `Exit`; an unclean one is an error.
fn wait_exit(child: &mut ipc_fork::Child) -> io::Result<()> {
    loop {
        match child.recv() {
            Ok(Event::Exit(status)) if status.success() => return Ok(()),
            Ok(Event::Exit(status)) => {
                return Err(io::Error::other(format!("worker exited: {status}")))
            }
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

struct RouteResult {
    addr: SocketAddr,
    normal: usize,
    special: usize,
    wrong: usize,
}

fn check_route_sockets() -> io::Result<RouteResult> {
    let server = Server::bind("127.0.0.1:0")?;
    let addr = server.local_addr()?.as_inet().expect("TCP");
    let options = RouterOptions {
        vip: IpAddr::V4(VIP),
        child_cmd: None,
        handoff_timeout: std::time::Duration::from_secs(5),
    };
    let mut router = Router::new(server, options, Workers::default())?;
    let router = std::thread::spawn(move || -> io::Result<_> {
        // Until every connection is in a worker's hands.
        while {
            let (normal, special) = router.delivered();
            normal + special < CONNECTIONS
        } {
            router.turn()?;
        }
        Ok(router)
    });
    let source = |i: usize| {
        if i.is_multiple_of(3) {
            VIP
        } else {
            Ipv4Addr::LOCALHOST
        }
    };
    let (normal, special, wrong) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    run_clients(CONNECTIONS, addr, source, |i, reply| {
        let (want, counter) = if source(i) == VIP {
            ("special", &special)
        } else {
            ("normal", &normal)
        };
        match reply {
            Ok(r) if r == role_reply(want) => counter.fetch_add(1, Ordering::Relaxed),
            _ => wrong.fetch_add(1, Ordering::Relaxed),
        };
    });
    router
        .join()
        .map_err(|_| io::Error::other("router panicked"))??
        .shut_down()?;
    Ok(RouteResult {
        addr,
        normal: normal.into_inner(),
        special: special.into_inner(),
        wrong: wrong.into_inner(),
    })
}

/// Runs both checks and prints the report; 0 only if every reply was right.
pub fn run() -> i32 {
    println!("demo: Node's child.send(message, sendHandle) examples, in Rust");
    let mut ok = true;
    match check_share_server() {
        Ok(r) => {
            let both = r.parent > 0 && r.child > 0;
            ok &= both && r.wrong == 0;
            println!(
                "  share-server  {}: {} connections; parent answered {}, child answered {}; {} wrong{}",
                r.addr,
                r.parent + r.child + r.wrong,
                r.parent,
                r.child,
                r.wrong,
                if both { "" } else { "; only one process served" }
            );
        }
        Err(e) => {
            ok = false;
            println!("  share-server  failed: {e}");
        }
    }
    match check_route_sockets() {
        Ok(r) => {
            ok &= r.wrong == 0;
            println!(
                "  route-sockets {}: {} connections; normal worker answered {}, special worker answered {} (clients from {VIP}); {} wrong",
                r.addr,
                r.normal + r.special + r.wrong,
                r.normal,
                r.special,
                r.wrong
            );
        }
        Err(e) => {
            ok = false;
            println!("  route-sockets failed: {e}");
        }
    }
    println!(
        "{}",
        if ok {
            "OK: every reply checked"
        } else {
            "FAILED"
        }
    );
    if ok {
        0
    } else {
        1
    }
}
