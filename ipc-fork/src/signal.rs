//! [`Signal`]: the signals a parent sends its children, as this crate's own
//! type.

use std::fmt;

/// A signal to send a child with [`Child::signal`](crate::Child::signal):
/// the standard named signals of Linux.
///
/// ```
/// use ipc_fork::Signal;
///
/// assert_eq!(Signal::TERM.raw(), 15);
/// assert_eq!(Signal::from_raw(9), Some(Signal::KILL));
/// assert_eq!(Signal::from_raw(0), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signal(rustix::process::Signal);

impl Signal {
    /// `SIGHUP`: by convention, reload or restart.
    pub const HUP: Signal = Signal(rustix::process::Signal::HUP);
    /// `SIGINT`: Ctrl-C.
    pub const INT: Signal = Signal(rustix::process::Signal::INT);
    /// `SIGQUIT`.
    pub const QUIT: Signal = Signal(rustix::process::Signal::QUIT);
    /// `SIGKILL`: cannot be caught; [`Child::kill`](crate::Child::kill).
    pub const KILL: Signal = Signal(rustix::process::Signal::KILL);
    /// `SIGUSR1`.
    pub const USR1: Signal = Signal(rustix::process::Signal::USR1);
    /// `SIGUSR2`.
    pub const USR2: Signal = Signal(rustix::process::Signal::USR2);
    /// `SIGTERM`: ask to terminate; what Node's `subprocess.kill()` sends
    /// by default.
    pub const TERM: Signal = Signal(rustix::process::Signal::TERM);
    /// `SIGCONT`: continue a stopped process.
    pub const CONT: Signal = Signal(rustix::process::Signal::CONT);
    /// `SIGSTOP`: stop; cannot be caught.
    pub const STOP: Signal = Signal(rustix::process::Signal::STOP);

    /// The named signal numbered `raw` (e.g. `libc::SIGWINCH`), or `None`
    /// for 0, real-time signals and numbers that name no signal.
    pub fn from_raw(raw: i32) -> Option<Signal> {
        rustix::process::Signal::from_named_raw(raw).map(Signal)
    }

    /// The signal's number.
    pub fn raw(self) -> i32 {
        self.0.as_raw()
    }

    pub(crate) fn to_rustix(self) -> rustix::process::Signal {
        self.0
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signal({})", self.raw())
    }
}
