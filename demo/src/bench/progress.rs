//! Progress on stderr while `demo bench` runs: which figure, which run,
//! whose side (`bench: throughput_small run 2/5 (ours)`). Stdout keeps only
//! the `name: value unit` lines. On a terminal the progress line is
//! rewritten in place and cleared before each result line; otherwise each
//! step is a line of its own.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a progress line is on the terminal now, waiting to be cleared.
static SHOWN: AtomicBool = AtomicBool::new(false);

/// Shows `bench: FIGURE run I/N (SIDE)`, before run `i` of `n`.
pub(super) fn run(figure: &str, side: &str, i: usize, n: usize) {
    show(format_args!("bench: {figure} run {i}/{n} ({side})"));
}

/// Shows `bench: FIGURE (SIDE)`, before a figure's only run.
pub(super) fn step(figure: &str, side: &str) {
    show(format_args!("bench: {figure} ({side})"));
}

fn show(text: std::fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[K{text}");
        let _ = err.flush();
        SHOWN.store(true, Ordering::Relaxed);
    } else {
        let _ = writeln!(err, "{text}");
    }
}

/// Clears the progress line, if one is on the terminal, so that what is
/// printed next starts on an empty line.
pub(super) fn clear() {
    if SHOWN.swap(false, Ordering::Relaxed) {
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}
