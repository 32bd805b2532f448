//! Heap allocations per steady-state message: a counting global allocator
//! around real sends and receives over a socketpair.

use demo::{allocations, CountingAlloc};
use ipc_core::{Channel, Handle, HandleKind};

// The demo's counting allocator (the one `demo bench` reports with).
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations so far (the counting allocator is installed just above).
fn allocs() -> u64 {
    allocations().expect("counting allocator installed")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Small<'a> {
    seq: u64,
    payload: &'a str,
}

fn main() {
    steady_state_messages_do_not_allocate();
    println!("test steady_state_messages_do_not_allocate ... ok");
}

fn steady_state_messages_do_not_allocate() {
    let (a, b) = Channel::<65536, 65536>::pair().unwrap();
    let (mut a, mut b) = (Box::new(a), Box::new(b));
    let payload = "xxxxxxxxxxxxxxxx";
    let (_x, y) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut spare = Some(Handle::new(HandleKind::Socket, y));
    let key = ipc_core::Key::try_from("4:127.0.0.1:80").unwrap();
    // `keyed`: the handle carries a key from then on (set once).
    let mut round = |n: u64, with_handle: bool, keyed: bool| {
        if with_handle {
            let mut h = spare.take().unwrap();
            if keyed && h.key().is_none() {
                h = h.with_key(key.clone());
            }
            a.queue_handle(&Small { seq: n, payload }, h).unwrap();
        } else {
            a.send(&Small { seq: n, payload }).unwrap();
        }
        let mut m = b.recv().unwrap();
        let handle = m.take_handle();
        let got: Small = m.parse().unwrap();
        assert_eq!((got.seq, got.payload), (n, payload));
        if let Some(h) = handle {
            spare = Some(h);
            // Reads the ACK; no message is pending, the fate is known.
            assert!(a.try_recv().is_err());
            assert!(matches!(
                a.next_fate(),
                Some(ipc_core::Fate::Acknowledged(_))
            ));
        }
    };
    for n in 0..100 {
        round(n, n % 10 == 0, false);
    }
    let before = allocs();
    for n in 0..10_000 {
        round(n, false, false);
    }
    let plain = allocs() - before;
    let before = allocs();
    for n in 0..1_000 {
        round(n, true, false);
    }
    let handles = allocs() - before;
    // A handle with a key (a `net.Socket` from a server, as Node sends
    // them) keeps the key boxed, so that a `Handle` stays two words: the
    // receiver allocates it once per handle (the sender once per
    // `with_key`, here in the warm-up round).
    round(0, true, true);
    let before = allocs();
    for n in 0..1_000 {
        round(n, true, true);
    }
    let keyed = allocs() - before;
    println!(
        "allocations: {plain} in 10000 plain messages, {handles} in 1000 handle messages, \
         {keyed} in 1000 with a key"
    );
    assert_eq!((plain, handles, keyed), (0, 0, 1000));
    assert_eq!(std::mem::size_of::<Handle>(), 16);
}
