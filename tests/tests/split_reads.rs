//! Property: any sequence of messages and handles, written in pieces cut at
//! any byte boundary (each descriptor riding on the piece that starts its
//! handle line, as Node sends it), arrives intact, in order, each handle
//! with its own descriptor and one ACK per handle.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

use integration_tests::{fd_count, serial, socket_pair, RawPeer};
use ipc_core::{wire, Channel, Error, Handle, HandleKind};
use proptest::prelude::*;

/// What the receiver saw: the JSON text and the inode of the descriptor.
type Seen = (String, Option<u64>);

fn inode(fd: impl AsFd) -> u64 {
    rustix::fs::fstat(fd).unwrap().st_ino
}

fn drain(ch: &mut Channel<4096, 4096>, seen: &mut Vec<Seen>) {
    loop {
        match ch.try_recv() {
            Ok(mut m) => {
                let fd = m.take_handle().map(|h| inode(&h));
                seen.push((m.as_str().to_owned(), fd));
            }
            Err(Error::WouldBlock) => return,
            Err(e) => panic!("unexpected {e}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn messages_split_anywhere_arrive_intact_and_in_order(
        msgs in prop::collection::vec(("\\PC{0,40}", any::<bool>()), 1..12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
    ) {
        let _serial = serial();
        let before = fd_count();
        let (a, b) = socket_pair();
        let mut ch = Channel::<4096, 4096>::new(a).unwrap();
        let mut peer = RawPeer::new(b);

        // The stream as Node would write it, and where each handle line starts.
        let mut stream = Vec::new();
        let mut handle_starts = Vec::new();
        let mut ends = Vec::new();
        let mut want = Vec::new();
        for (text, with_handle) in &msgs {
            let mut buf = [0u8; 1024];
            let json_len = ipc_core::json::to_slice(text, &mut buf).unwrap();
            let json = String::from_utf8(buf[..json_len].to_vec()).unwrap();
            if *with_handle {
                let (ours, theirs) = UnixStream::pair().unwrap();
                                let h = Handle::new(HandleKind::Socket, theirs);
                let n = wire::handle_frame(&mut buf, text, &h).unwrap();
                want.push((json, Some(inode(&h))));
                handle_starts.push((stream.len(), h));
                stream.extend_from_slice(&buf[..n]);
                ends.push(ours);
            } else {
                let n = wire::plain_frame(&mut buf, text).unwrap();
                stream.extend_from_slice(&buf[..n]);
                want.push((json, None));
            }
        }
        // Cut points: random ones, plus every handle line start.
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len())).collect();
        points.extend(handle_starts.iter().map(|(s, _)| *s));
        points.push(0);
        points.push(stream.len());
        points.sort_unstable();
        points.dedup();

        let mut seen = Vec::new();
        for w in points.windows(2) {
            let (from, to) = (w[0], w[1]);
            match handle_starts.iter().find(|(s, _)| *s == from) {
                Some((_, h)) => peer.write(&stream[from..to], &[h]),
                None => peer.write(&stream[from..to], &[]),
            }
            drain(&mut ch, &mut seen);
        }
        drop(handle_starts);
        while seen.len() < want.len() {
            let mut m = ch.recv().unwrap();
            let fd = m.take_handle().map(|h| inode(&h));
            seen.push((m.as_str().to_owned(), fd));
        }
        prop_assert_eq!(&seen, &want);
        let handles = want.iter().filter(|(_, fd)| fd.is_some()).count();
        for _ in 0..handles {
            prop_assert_eq!(peer.read_line().0, wire::ACK.to_vec());
        }
        prop_assert!(!peer.has_data(), "more replies than handles");
        drop((ch, peer, ends));
        prop_assert_eq!(fd_count(), before);
    }
}
