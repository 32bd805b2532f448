//! Our side again, on tokio (`ipc_fork::tokio`, the `tokio` feature): the
//! same figures through the async API, each process on a current-thread
//! runtime, for the `async_*` lines next to the blocking ones.

use std::io;
use std::time::Instant;

use ipc_core::Message;
use ipc_fork::tokio::{AsyncChild, AsyncParent};
use ipc_fork::{Command, Event};

use super::allocs::allocations;
use super::Msg;

/// A current-thread runtime, as a single-threaded server would use.
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn fail(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("bench child: {e}"))
}

/// Waits for the child's next user message.
async fn answer<T>(child: &mut AsyncChild, read: impl FnOnce(&Message<'_>) -> T) -> io::Result<T> {
    loop {
        match child.recv().await {
            Ok(Event::Message(m, _)) => return Ok(read(&m)),
            Ok(Event::Internal(..)) => {}
            other => return Err(fail(format_args!("{other:?}"))),
        }
    }
}

/// Disconnects and waits for the child to exit.
async fn finish(mut child: AsyncChild) -> io::Result<()> {
    child.disconnect().await.map_err(io::Error::from)?;
    let status = child.wait().await?;
    if status.success() {
        Ok(())
    } else {
        Err(fail(status))
    }
}

/// Messages/s as [`super::ours::throughput`] measures them, both processes
/// async: the parent `queue().await`s every message and `flush().await`s; the child
/// (`bench-child async-count N`) `recv().await`s them.
pub(super) fn throughput(n: u64, payload: &str) -> io::Result<f64> {
    runtime()?.block_on(async {
        let mut child = AsyncChild::spawn(Command::current_exe()?.args([
            "bench-child",
            "async-count",
            &n.to_string(),
        ]))?;
        answer(&mut child, |_| ()).await?; // "ready"
        let start = Instant::now();
        for seq in 0..n {
            child
                .queue(&Msg { seq, payload })
                .await
                .map_err(io::Error::from)?;
        }
        child.flush().await.map_err(io::Error::from)?;
        answer(&mut child, |_| ()).await?;
        let rate = n as f64 / start.elapsed().as_secs_f64();
        finish(child).await?;
        Ok(rate)
    })
}

/// Heap allocations per small message on the async path, sender (`send`
/// awaited) and receiver (`recv` awaited) together, as
/// [`super::ours::allocs_per_msg`]; `None` without the counting allocator.
pub(super) fn allocs_per_msg(n: u64) -> io::Result<Option<f64>> {
    runtime()?.block_on(async {
        let mut child = AsyncChild::spawn(Command::current_exe()?.args([
            "bench-child",
            "async-allocs",
            &n.to_string(),
            &n.to_string(),
        ]))?;
        let payload = "x".repeat(16);
        answer(&mut child, |_| ()).await?; // "ready"
        for pass in 0..2 {
            let before = allocations();
            for seq in 0..n {
                child
                    .send(&Msg {
                        seq,
                        payload: &payload,
                    })
                    .await
                    .map_err(io::Error::from)?;
            }
            if pass == 1 {
                let ours = before.zip(allocations()).map(|(b, a)| a - b);
                let theirs: Option<u64> = answer(&mut child, |m| m.as_str().parse().ok()).await?;
                finish(child).await?;
                return Ok(ours
                    .zip(theirs)
                    .map(|(ours, theirs)| (ours + theirs) as f64 / n as f64));
            }
        }
        unreachable!("two passes")
    })
}

/// The children of the async figures (`demo bench-child async-...`).
pub(super) fn run_child(words: &[&str]) -> Option<i32> {
    let number = |s: &str| s.parse::<u64>().ok();
    let run = |f: std::pin::Pin<Box<dyn std::future::Future<Output = io::Result<()>>>>| {
        let code = match runtime().and_then(|rt| rt.block_on(f)) {
            Ok(()) => 0,
            Err(e) => {
                warn!("demo bench-child: {e}");
                1
            }
        };
        Some(code)
    };
    match words {
        ["async-count", n] => {
            let n = number(n)?;
            run(Box::pin(count(n)))
        }
        ["async-allocs", warmup, n] => {
            let (warmup, n) = (number(warmup)?, number(n)?);
            run(Box::pin(count_allocations(warmup, n)))
        }
        _ => None,
    }
}

fn parent() -> io::Result<AsyncParent> {
    ipc_fork::tokio::parent().map_err(io::Error::other)
}

/// Waits for the next user message; `false` once the channel is gone.
async fn next_message(parent: &mut AsyncParent) -> bool {
    loop {
        match parent.recv().await {
            Ok(Event::Message(..)) => return true,
            Ok(Event::Disconnect | Event::Exit(_)) => return false,
            Ok(Event::Internal(..) | Event::Fate(_)) => {}
            Err(e) if !e.is_fatal() => warn!("demo bench-child: {e}"),
            Err(_) => return false,
        }
    }
}

async fn count(n: u64) -> io::Result<()> {
    let mut parent = parent()?;
    parent.send(&"ready").await.map_err(io::Error::from)?;
    for _ in 0..n {
        if !next_message(&mut parent).await {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    parent.send(&("done", n)).await.map_err(io::Error::from)?;
    while next_message(&mut parent).await {}
    Ok(())
}

async fn count_allocations(warmup: u64, n: u64) -> io::Result<()> {
    let mut parent = parent()?;
    parent.send(&"ready").await.map_err(io::Error::from)?;
    for _ in 0..warmup {
        if !next_message(&mut parent).await {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    let before = allocations();
    for _ in 0..n {
        if !next_message(&mut parent).await {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    let counted = before.zip(allocations()).map(|(b, a)| a - b);
    parent.send(&counted).await.map_err(io::Error::from)?;
    while next_message(&mut parent).await {}
    Ok(())
}
