//! Arbitrary bytes from the peer, arriving in arbitrary pieces: the channel
//! never panics, every message it delivers is valid JSON (by our scanner
//! and by serde_json's), and decoding it into common shapes never panics
//! either.
#![no_main]

use ipc_core::json::{from_slice_mut, RawJson};
use ipc_core::{Channel, Error};
use libfuzzer_sys::fuzz_target;
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Shape<'a> {
    cmd: Option<&'a str>,
    n: Option<f64>,
    list: Option<Vec<(bool, String)>>,
}

fuzz_target!(|data: &[u8]| {
    let (a, b) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    let mut ch = Channel::<256, 256>::new(a).unwrap();
    // Small, so that long lines are skipped too.
    ch.set_limit(2048);
    // The first byte of each piece says how long the piece is.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (piece, tail) = tail.split_at(n);
        rest = tail;
        if !piece.is_empty() {
            rustix::io::write(&b, piece).unwrap();
        }
        loop {
            match ch.try_recv() {
                Ok(m) => {
                    let text = m.as_str().to_owned();
                    assert!(
                        RawJson::new(&text).is_ok(),
                        "delivered invalid JSON: {text:?}"
                    );
                    // A second opinion from an independent parser (which
                    // also refuses lone surrogates that we accept, and stops
                    // at 128 levels where we go on to 16,384).
                    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
                        let e = e.to_string();
                        assert!(
                            e.contains("surrogate") || e.contains("recursion limit"),
                            "serde_json refuses what we delivered: {e}: {text:?}"
                        );
                    }
                    let _ = from_slice_mut::<Shape>(&mut text.clone().into_bytes());
                    let _ = from_slice_mut::<serde::de::IgnoredAny>(&mut text.into_bytes());
                }
                Err(Error::WouldBlock) => break,
                Err(e) => assert!(!e.is_fatal(), "fatal error on a live channel: {e}"),
            }
        }
    }
});
