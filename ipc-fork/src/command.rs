//! [`Command`]: starting a child with the channel on descriptor 3.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::child::Child;
use crate::CHANNEL_FD;

/// Builds a child process with a Node-compatible channel, like Node's
/// `child_process.fork()`: the child gets one end of a socketpair as
/// descriptor 3, `NODE_CHANNEL_FD=3` and
/// `NODE_CHANNEL_SERIALIZATION_MODE=json`. The child may be a Rust program
/// using [`parent`](crate::parent) or `node script.js`.
#[derive(Debug)]
pub struct Command {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    silent: bool,
}

impl Command {
    /// A child running `program` (looked up in `PATH` like
    /// `std::process::Command`).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            silent: false,
        }
    }

    /// A child running this very executable again, as Node's cluster does:
    /// give it arguments that select its worker role.
    pub fn current_exe() -> io::Result<Command> {
        Ok(Command::new(std::env::current_exe()?))
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

    /// Node's `silent`: the child's stdin, stdout and stderr are pipes to
    /// the parent ([`Child::stdout`] etc.) instead of inherited.
    pub fn silent(&mut self, silent: bool) -> &mut Command {
        self.silent = silent;
        self
    }

    /// Starts the child.
    ///
    /// Both socket ends are created close-on-exec, and only the child's copy
    /// of its end becomes descriptor 3 (between fork and exec), so children
    /// started at the same time from other threads inherit nothing.
    pub fn spawn(&self) -> io::Result<Child> {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let mut cmd = std::process::Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.env("NODE_CHANNEL_FD", CHANNEL_FD.to_string());
        cmd.env("NODE_CHANNEL_SERIALIZATION_MODE", "json");
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if self.silent {
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        let raw = theirs.as_raw_fd();
        // SAFETY: the closure runs in the child between fork and exec, and
        // only makes async-signal-safe system calls on plain integers; it
        // allocates nothing and touches no lock.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || place_channel(raw));
        }
        let process = cmd.spawn()?;
        drop(theirs);
        Child::new(process, ours)
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

/// In the child: makes `raw` descriptor 3, without close-on-exec.
fn place_channel(raw: i32) -> io::Result<()> {
    // SAFETY: dup2 and fcntl on integer descriptors; async-signal-safe.
    #[allow(unsafe_code)]
    let rc = unsafe {
        if raw == CHANNEL_FD {
            // dup2 onto itself keeps FD_CLOEXEC: clear it explicitly.
            libc::fcntl(raw, libc::F_SETFD, 0)
        } else {
            libc::dup2(raw, CHANNEL_FD)
        }
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
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
