//! [`Command`]: starting a child with the channel on descriptor 3.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::child::Child;
use crate::CHANNEL_FD;

/// What one of a child's standard streams is connected to
/// ([`Command::stdin`], [`stdout`](Command::stdout),
/// [`stderr`](Command::stderr)). Unlike `std::process::Stdio` it can be
/// used for any number of spawns: a descriptor is duplicated for each.
#[derive(Debug)]
pub enum Stdio {
    /// The parent's own stream (the default).
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe to the parent: [`Child::stdin`], [`Child::stdout`],
    /// [`Child::stderr`] take its end.
    Piped,
    /// This descriptor (a file, a socket, one end of a pipe).
    Fd(OwnedFd),
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Stdio {
        Stdio::Fd(fd)
    }
}

impl From<File> for Stdio {
    fn from(file: File) -> Stdio {
        Stdio::Fd(file.into())
    }
}

impl Stdio {
    /// The `std` form for one spawn.
    fn for_spawn(&self) -> io::Result<std::process::Stdio> {
        Ok(match self {
            Stdio::Inherit => std::process::Stdio::inherit(),
            Stdio::Null => std::process::Stdio::null(),
            Stdio::Piped => std::process::Stdio::piped(),
            Stdio::Fd(fd) => fd.try_clone()?.into(),
        })
    }
}

/// Builds a child process with a Node-compatible channel, like Node's
/// `child_process.fork()`: the child gets one end of a socketpair as
/// descriptor 3 (see [`channel_fd`](Command::channel_fd)),
/// `NODE_CHANNEL_FD=3` and `NODE_CHANNEL_SERIALIZATION_MODE=json`. The child
/// may be a Rust program using [`parent`](crate::parent) or
/// `node script.js`.
///
/// Beside what `std::process::Command` offers (arguments, environment,
/// working directory, per-stream stdio), it places extra descriptors at
/// chosen numbers ([`fd`](Command::fd), as systemd passes sockets), and
/// starts the child in a process group ([`process_group`](Command::process_group)),
/// as another user ([`uid`](Command::uid), [`gid`](Command::gid), Node's
/// fork options of the same names), or replaces the current process
/// ([`exec`](Command::exec)).
///
/// ```no_run
/// use ipc_fork::{Command, Signal, Stdio};
///
/// # fn main() -> std::io::Result<()> {
/// let mut child = Command::new("node")
///     .arg("worker.js")
///     .stdout(Stdio::Piped)
///     .process_group(0)
///     .kill_on_drop(true)
///     .spawn()?;
/// child.send(&"hello")?;
/// child.signal(Signal::TERM)?; // Node's child.kill()
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Command {
    program: OsString,
    /// `argv[0]` when it is not `program`.
    arg0: Option<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    stdio: [Stdio; 3],
    channel_fd: RawFd,
    fds: Vec<(RawFd, OwnedFd)>,
    process_group: Option<i32>,
    uid: Option<u32>,
    gid: Option<u32>,
    kill_on_drop: bool,
}

impl Command {
    /// A child running `program` (looked up in `PATH` like
    /// `std::process::Command`).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            arg0: None,
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdio: [Stdio::Inherit, Stdio::Inherit, Stdio::Inherit],
            channel_fd: CHANNEL_FD,
            fds: Vec::new(),
            process_group: None,
            uid: None,
            gid: None,
            kill_on_drop: false,
        }
    }

    /// A child running this very executable again, as Node's cluster does:
    /// give it arguments that select its worker role. Once the file has
    /// been replaced or removed since this process started, it is still
    /// this executable that runs (through `/proc/self/exe`, with its path
    /// as `argv[0]`), not what is at the path now (see
    /// [`current_exe_on_disk`](Self::current_exe_on_disk) for that).
    ///
    /// # Errors
    /// As `std::env::current_exe`.
    pub fn current_exe() -> io::Result<Command> {
        let exe = std::env::current_exe()?;
        if exe.exists() {
            return Ok(Command::new(exe));
        }
        // Linux names it `PATH (deleted)` then.
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg0 = Some(on_disk(exe).into_os_string());
        Ok(cmd)
    }

    /// A child running the program that is now at this executable's path:
    /// for a successor, after an upgrade that replaced the file. Once the
    /// running file is replaced or removed, Linux names it `PATH
    /// (deleted)` (`/proc/self/exe`, which [`current_exe`](Self::current_exe)
    /// reads); the suffix is dropped then, so the new file at `PATH` runs.
    /// `argv[0]` is not used: it may be relative to a directory the
    /// process has left, or a name looked up in a `PATH` that has changed.
    ///
    /// # Errors
    /// As `std::env::current_exe` (no `/proc`).
    pub fn current_exe_on_disk() -> io::Result<Command> {
        Ok(Command::new(on_disk(std::env::current_exe()?)))
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Command {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable for the child.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The child's standard input.
    pub fn stdin(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stdio[0] = stdio.into();
        self
    }

    /// The child's standard output.
    pub fn stdout(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stdio[1] = stdio.into();
        self
    }

    /// The child's standard error.
    pub fn stderr(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stdio[2] = stdio.into();
        self
    }

    /// Node's `silent`: `true` makes all three standard streams
    /// [`Stdio::Piped`], `false` all three [`Stdio::Inherit`].
    pub fn silent(&mut self, silent: bool) -> &mut Command {
        let stdio = || if silent { Stdio::Piped } else { Stdio::Inherit };
        self.stdio = [stdio(), stdio(), stdio()];
        self
    }

    /// The descriptor number the channel gets in the child (3 unless set;
    /// `NODE_CHANNEL_FD` says which). Move it when descriptor 3 must hold
    /// something else, e.g. the first socket of a systemd-style `LISTEN_FDS`
    /// hand-over. Numbers below 3 are refused by [`spawn`](Command::spawn).
    pub fn channel_fd(&mut self, number: RawFd) -> &mut Command {
        self.channel_fd = number;
        self
    }

    /// Gives the child `fd` as descriptor `number` (systemd style: a
    /// listening socket at 3, 4, ...), without close-on-exec. The
    /// descriptor stays open here until the `Command` is dropped, and is
    /// duplicated into every child spawned. Placements may name any free
    /// numbers (even ones the sources occupy here: they are moved out of the
    /// way first); a number given twice, or one of 0, 1, 2 (use
    /// [`stdin`](Command::stdin) and friends) or the channel's, is refused by
    /// [`spawn`](Command::spawn).
    pub fn fd(&mut self, number: RawFd, fd: impl Into<OwnedFd>) -> &mut Command {
        self.fds.push((number, fd.into()));
        self
    }

    /// Starts the child in process group `pgid` (`setpgid(2)`): 0 makes it
    /// the leader of a new group, so that signals for this process's group
    /// (Ctrl-C in a terminal) do not reach it and `kill(-pid, sig)` reaches
    /// it and its own children.
    pub fn process_group(&mut self, pgid: i32) -> &mut Command {
        self.process_group = Some(pgid);
        self
    }

    /// Runs the child as user `uid` (`setuid(2)`, Node's `uid` option),
    /// e.g. a parent running as root hands a port below 1024 to a child
    /// running as `nobody`. As root, the child's supplementary groups are
    /// dropped too. Set [`gid`](Command::gid) as well, or the child keeps
    /// this process's group.
    pub fn uid(&mut self, uid: u32) -> &mut Command {
        self.uid = Some(uid);
        self
    }

    /// Runs the child with group `gid` (`setgid(2)`, Node's `gid` option).
    pub fn gid(&mut self, gid: u32) -> &mut Command {
        self.gid = Some(gid);
        self
    }

    /// Whether dropping the [`Child`] kills (`SIGKILL`) and reaps the
    /// process if it still runs. Off by default, as with
    /// `std::process::Child` and Node (a child outlives its handle); when
    /// off, a dropped child that exits later stays a zombie until this
    /// process exits or reaps it.
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    /// Starts the child.
    ///
    /// Both socket ends are created close-on-exec, and only the child's copy
    /// of its end becomes the channel's descriptor (between fork and exec),
    /// so children started at the same time from other threads inherit
    /// nothing. The child starts with no signal blocked, as Node's do:
    /// std empties the mask between fork and exec, so a parent that blocks
    /// signals to take them with `sigwait` does not pass that on.
    ///
    /// # Errors
    /// `InvalidInput` for a bad descriptor placement (see
    /// [`fd`](Command::fd)); otherwise as `std::process::Command::spawn`
    /// (the program was not found, `setuid` was refused, ...) or the
    /// `socketpair(2)` failed (`EMFILE`).
    pub fn spawn(&self) -> io::Result<Child> {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let mut cmd = self.std_command(Some(theirs.as_raw_fd()))?;
        cmd.env("NODE_CHANNEL_FD", self.channel_fd.to_string());
        cmd.env("NODE_CHANNEL_SERIALIZATION_MODE", "json");
        let targets = self.fds.iter().map(|(n, _)| *n).chain([self.channel_fd]);
        let held = hold_free(targets, &ours);
        let process = cmd.spawn();
        drop(held);
        let process = process?;
        drop(theirs);
        Child::new(process, ours, self.kill_on_drop)
    }

    /// Replaces this process with the program (`execve(2)`), as a restart in
    /// place does: same pid, so the process's own parent and supervisor
    /// keep it, and the descriptors given with [`fd`](Command::fd) stay
    /// open at their numbers (everything else close-on-exec closes, as
    /// usual). No channel is created and `NODE_CHANNEL_FD` is removed: pass
    /// this process's own channel on with `fd` and
    /// `env("NODE_CHANNEL_FD", ..)` if the new program should keep it.
    /// Returns only on failure.
    ///
    /// # Errors
    /// The reason `execve` (or the set-up before it) failed. The set-up
    /// runs in this process, so after a failure the placed descriptors are
    /// open at their numbers here, and the calling thread's signal mask is
    /// empty (std empties it before `execve`); nothing else changed.
    pub fn exec(&self) -> io::Error {
        match self.std_command(None) {
            Ok(mut cmd) => {
                cmd.env_remove("NODE_CHANNEL_FD");
                cmd.env_remove("NODE_CHANNEL_SERIALIZATION_MODE");
                cmd.exec()
            }
            Err(e) => e,
        }
    }

    /// The `std` command with everything but the channel's variables;
    /// `channel` is this spawn's end of the socketpair.
    fn std_command(&self, channel: Option<RawFd>) -> io::Result<std::process::Command> {
        let mut placements: Vec<(RawFd, RawFd)> = self
            .fds
            .iter()
            .map(|(n, fd)| (fd.as_raw_fd(), *n))
            .collect();
        if let Some(raw) = channel {
            placements.push((raw, self.channel_fd));
        }
        check_placements(&placements)?;
        let mut cmd = std::process::Command::new(&self.program);
        if let Some(arg0) = &self.arg0 {
            cmd.arg0(arg0);
        }
        cmd.args(&self.args);
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let [stdin, stdout, stderr] = &self.stdio;
        cmd.stdin(stdin.for_spawn()?)
            .stdout(stdout.for_spawn()?)
            .stderr(stderr.for_spawn()?);
        if let Some(pgid) = self.process_group {
            cmd.process_group(pgid);
        }
        if let Some(gid) = self.gid {
            cmd.gid(gid);
        }
        if let Some(uid) = self.uid {
            cmd.uid(uid);
        }
        // SAFETY: the closure runs in the child between fork and exec (or
        // just before exec), and only makes async-signal-safe system calls
        // on plain integers; it allocates nothing and touches no lock.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || place_fds(&mut placements));
        }
        Ok(cmd)
    }
}

/// `exe` without the ` (deleted)` Linux appends to the name of a running
/// executable whose file has been replaced or removed.
fn on_disk(exe: PathBuf) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    if exe.exists() {
        return exe;
    }
    match exe.as_os_str().as_bytes().strip_suffix(b" (deleted)") {
        Some(path) => PathBuf::from(OsStr::from_bytes(path)),
        None => exe,
    }
}

/// Takes each of `numbers` that is free in this process (a close-on-exec
/// copy of `any` there), for the time std spawns: std's spawn makes a pipe
/// through which the child reports a failed exec, at the lowest free
/// numbers, and a placement onto its write end in the child would hide the
/// failure (the spawn would look fine, and the exec error would go into
/// the placed descriptor). Taken by `F_DUPFD_CLOEXEC`, which never touches
/// a number in use: another thread's descriptors stay as they are.
fn hold_free(numbers: impl Iterator<Item = RawFd>, any: &OwnedFd) -> Vec<OwnedFd> {
    numbers
        .filter_map(|n| {
            let copy = rustix::io::fcntl_dupfd_cloexec(any, n).ok()?;
            // Above `n`: `n` was in use already, and so is not free for std.
            (copy.as_raw_fd() == n).then_some(copy)
        })
        .collect()
}

/// Refuses placements onto the standard streams and numbers given twice.
fn check_placements(placements: &[(RawFd, RawFd)]) -> io::Result<()> {
    for (i, &(_, number)) in placements.iter().enumerate() {
        let taken = placements[..i].iter().any(|&(_, n)| n == number);
        if number <= 2 || taken {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot place a descriptor at {number}: standard stream or given twice"),
            ));
        }
    }
    Ok(())
}

/// In the child: makes each `(source, number)` descriptor `number`, without
/// close-on-exec. Sources first move above every target, so that no
/// `dup2` overwrites a source still to be placed.
fn place_fds(placements: &mut [(RawFd, RawFd)]) -> io::Result<()> {
    let floor = placements.iter().map(|&(_, n)| n).max().unwrap_or(0) + 1;
    for (source, _) in placements.iter_mut() {
        // SAFETY: fcntl on an integer descriptor; async-signal-safe.
        #[allow(unsafe_code)]
        let moved = unsafe { libc::fcntl(*source, libc::F_DUPFD_CLOEXEC, floor) };
        if moved < 0 {
            return Err(io::Error::last_os_error());
        }
        *source = moved;
    }
    for &(source, number) in placements.iter() {
        // SAFETY: dup2 on integer descriptors; async-signal-safe. The copy
        // at `number` is not close-on-exec; the moved source is, and goes
        // at exec.
        #[allow(unsafe_code)]
        let placed = unsafe { libc::dup2(source, number) };
        if placed < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_executable_is_found_at_its_path() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(on_disk(exe.clone()), exe);
        let mut deleted = exe.clone().into_os_string();
        deleted.push(" (deleted)");
        assert_eq!(on_disk(deleted.into()), exe);
        let gone = PathBuf::from("/nonexistent/app");
        assert_eq!(on_disk(gone.clone()), gone);
    }
}
