//! Helpers shared by the integration tests: descriptor counting, a raw
//! protocol peer that reads and writes exact bytes, and SIGPIPE control.

use std::os::fd::{AsFd, OwnedFd};

use ipc_core::sys::{self, ReceivedFds};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

/// Serializes the tests of one binary that count descriptors: the count is
/// per process, and tests run on parallel threads.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Number of open descriptors of this process (`/proc/self/fd`, minus the
/// one the listing itself uses).
///
/// glibc opens `/proc/sys/vm/overcommit_memory` once per process, the
/// first time a thread's malloc arena shrinks, typically while a finished
/// test's thread exits, after its [`serial`] guard is gone: that one is
/// not counted.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.as_os_str() != "/proc/sys/vm/overcommit_memory")
        .count()
        - 1
}

/// Restores SIGPIPE's default action (death), which Rust's runtime replaces
/// with "ignore": a write that forgets `MSG_NOSIGNAL` then kills the test.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler,
    // so no Rust code runs in signal context.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A connected blocking `AF_UNIX` stream pair.
pub fn socket_pair() -> (OwnedFd, OwnedFd) {
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair")
}

/// Our channel (buffers of `RX` and `TX` bytes) on one end of a socketpair,
/// a [`RawPeer`] on the other.
pub fn channel_and_peer<const RX: usize, const TX: usize>(
) -> (Box<ipc_core::Channel<RX, TX>>, RawPeer) {
    let (a, b) = socket_pair();
    (
        Box::new(ipc_core::Channel::new(a).expect("channel")),
        RawPeer::new(b),
    )
}

/// The far end of a channel, spoken to byte by byte.
pub struct RawPeer {
    pub sock: OwnedFd,
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl RawPeer {
    /// Wraps a blocking socket.
    pub fn new(sock: OwnedFd) -> Self {
        RawPeer {
            sock,
            buf: Vec::new(),
            fds: Vec::new(),
        }
    }

    /// Writes `bytes` with `fds` on one `sendmsg`, all of it.
    pub fn write(&self, bytes: &[u8], fds: &[&dyn AsFd]) {
        let fds: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        sys::send_all_with_fds(self.sock.as_fd(), bytes, &fds).expect("raw write");
    }

    /// Writes `bytes` with any number of descriptors in one `SCM_RIGHTS`
    /// message (more than the library itself would send).
    pub fn write_many_fds(&self, bytes: &[u8], fds: &[&dyn AsFd]) {
        use std::mem::MaybeUninit;
        let fds: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)));
        let n = rustix::net::sendmsg(
            &self.sock,
            &[std::io::IoSlice::new(bytes)],
            &mut control,
            rustix::net::SendFlags::NOSIGNAL,
        )
        .expect("sendmsg");
        assert_eq!(n, bytes.len());
    }

    /// Reads until a whole line is buffered; returns it (with its `\n`)
    /// and every descriptor received so far.
    pub fn read_line(&mut self) -> (Vec<u8>, Vec<OwnedFd>) {
        let have = String::from_utf8_lossy(&self.buf).into_owned();
        self.try_read_line()
            .unwrap_or_else(|| panic!("EOF while waiting for a line; have {have:?}"))
    }

    /// [`read_line`](Self::read_line), or `None` at EOF.
    pub fn try_read_line(&mut self) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line = self.buf.drain(..=i).collect();
                return Some((line, std::mem::take(&mut self.fds)));
            }
            let mut chunk = [0u8; 65536];
            let mut fds = ReceivedFds::new();
            let got = match sys::recv_with_fds(
                self.sock.as_fd(),
                &mut chunk,
                &mut fds,
                sys::Wait::AsSocket,
            ) {
                Ok(got) => got,
                Err(rustix::io::Errno::CONNRESET) => return None,
                Err(e) => panic!("raw read: {e}"),
            };
            assert!(!got.fds_truncated, "raw peer lost descriptors");
            if got.bytes == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..got.bytes]);
            self.fds.extend(fds);
        }
    }

    /// Reads a line and returns it as text, without its `\n`.
    pub fn read_text(&mut self) -> String {
        let (line, fds) = self.read_line();
        assert!(
            fds.is_empty(),
            "unexpected descriptors with {:?}",
            String::from_utf8_lossy(&line)
        );
        String::from_utf8(line)
            .expect("utf-8")
            .trim_end_matches('\n')
            .to_owned()
    }

    /// Whether bytes are waiting, without blocking.
    pub fn has_data(&self) -> bool {
        let mut fds = [rustix::event::PollFd::new(
            &self.sock,
            rustix::event::PollFlags::IN,
        )];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut fds, Some(&zero)).expect("poll") > 0
    }
}

/// What the test children (`test-child`, `tokio-child`) report back over
/// their channel.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Always "child".
    pub role: String,
    /// `started`, `served`, `refused`, `internal`, `error`, `released`.
    pub what: String,
    /// Free text about it.
    pub detail: String,
    /// The child's open descriptor count at that moment.
    pub fds: usize,
}

impl Report {
    /// A child's report of `what`, with `fds` its descriptor count.
    pub fn new(what: &str, detail: String, fds: usize) -> Report {
        Report {
            role: "child".into(),
            what: what.into(),
            detail,
            fds,
        }
    }
}

/// Waits for the next user message from `child` and reads it as a
/// [`Report`]; other events are a test failure.
pub fn next_report(child: &mut ipc_fork::Child) -> Report {
    match child.recv().expect("event from child") {
        ipc_fork::Event::Message(mut msg, None) => msg.parse().expect("a report"),
        other => panic!("expected a report, got {other:?}"),
    }
}

/// The path of `tests/node/NAME`.
pub fn node_script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("node")
        .join(name)
}

/// Runs `node tests/node/SCRIPT ARGS..` and expects it to exit 0 having
/// printed `PASS`; its output is shown otherwise.
pub fn node_script_passes(script: &str, args: &[&str]) {
    let out = std::process::Command::new("node")
        .arg(node_script(script))
        .args(args)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("PASS"),
        "node {script}: {}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a `node` can be run. Without one the Node tests say so and pass,
/// except under CI (`CI` set), where `node` is required.
pub fn have_node() -> bool {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "node is required under CI"
        );
        eprintln!("skipped: node is not installed");
    }
    found
}

/// Connects to `127.0.0.1:port` from the loopback address `from` (Linux
/// lets a client bind any 127.0.0.0/8 address), sends a request as curl
/// would, and reads the whole reply. A server that closes without reading
/// the request resets the connection, and the read fails, as curl does.
pub fn ask(port: u16, from: std::net::Ipv4Addr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    use std::net::SocketAddr;
    // Close-on-exec: the tests of a binary run on parallel threads, and a
    // process another test spawns meanwhile would otherwise inherit this
    // connection for its whole life (holding other tests' clients open,
    // and taking descriptor numbers a limit counts).
    let sock = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::bind(&sock, &SocketAddr::from((from, 0)))?;
    rustix::net::connect(&sock, &SocketAddr::from(([127, 0, 0, 1], port)))?;
    let mut stream = std::net::TcpStream::from(sock);
    // A server that never answers fails the test instead of hanging it.
    stream.set_read_timeout(Some(LINE_TIMEOUT))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// The number that follows `marker` in `line` (a port or a pid).
pub fn number_after(line: &str, marker: &str) -> u32 {
    let rest = line
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {marker:?} in {line:?}"));
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A serving demo process: started, read up to the line that says where it
/// listens, and killed if a failing test leaves it behind. Its stdout and
/// stderr are read by threads all along, so a talkative process never
/// blocks on a full pipe.
pub struct Running {
    child: Option<std::process::Child>,
    /// Its stdout, line by line.
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The line that named the port (with the pids of its children).
    pub line: String,
    /// The port it listens on.
    pub port: u16,
    /// Every stdout line read so far.
    history: Vec<String>,
}

/// How long a test waits for a line before it calls the process stuck.
const LINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

impl Running {
    /// Starts `program args` and reads stdout up to `listening on 127.0.0.1:`.
    pub fn start(program: &str, args: &[&str]) -> Running {
        let mut cmd = std::process::Command::new(program);
        cmd.args(args);
        Running::spawn(cmd)
    }

    /// Starts `cmd` (its stdout and stderr are taken over) and reads
    /// stdout up to `listening on 127.0.0.1:`.
    pub fn spawn(cmd: std::process::Command) -> Running {
        Running::spawn_until(cmd, "listening on 127.0.0.1:", "127.0.0.1:")
    }

    /// Starts `cmd` and reads stdout up to a line with `what`; the port is
    /// the number after `port_marker` in it.
    pub fn spawn_until(mut cmd: std::process::Command, what: &str, port_marker: &str) -> Running {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let err = std::io::BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                eprintln!("{line}");
                sink.lock().unwrap().push(line);
            }
        });
        let mut running = Running {
            child: Some(child),
            lines,
            stderr,
            line: String::new(),
            port: 0,
            history: Vec::new(),
        };
        running.line = running.wait_for_line(what);
        running.port = number_after(&running.line, port_marker) as u16;
        running
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Reads its output until a line contains `what`.
    pub fn wait_for_line(&mut self, what: &str) -> String {
        loop {
            match self.lines.recv_timeout(LINE_TIMEOUT) {
                Ok(line) => {
                    self.history.push(line.clone());
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(e) => panic!("no line with {what:?}: {e}"),
            }
        }
    }

    /// The stdout lines read so far (by [`wait_for_line`](Self::wait_for_line)).
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// What it wrote to stderr so far, line by line.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until it exits by itself (a restarted server does), with the
    /// usual guard against hangs; its output stays readable (its
    /// successors write there too).
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().expect("running");
        // Kept until std has reaped it: dropping it would reap first.
        let process = Process::open(child.id());
        assert!(
            process.exited_within(LINE_TIMEOUT),
            "pid {} did not exit",
            child.id()
        );
        let status = child.wait().unwrap();
        drop(process);
        self.child = None;
        status
    }

    /// Sends SIGTERM, expects a clean exit, returns the rest of its output.
    pub fn stop(self) -> String {
        self.stop_with(rustix::process::Signal::TERM)
    }

    /// Sends `signal`, expects a clean exit, returns the rest of its output.
    pub fn stop_with(mut self, signal: rustix::process::Signal) -> String {
        let mut child = self.child.take().expect("running");
        rustix::process::kill_process(rustix::process::Pid::from_child(&child), signal).unwrap();
        let status = child.wait().unwrap();
        let rest: Vec<String> = self.lines.iter().collect();
        let rest = rest.join("\n");
        assert!(status.success(), "{status}: {rest}");
        rest
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A process known by its pidfd, whether or not it is this process's
/// child (the successors of a restarted server are not): signalled and
/// waited for without pid-reuse races, and killed if a failing test leaves
/// it behind.
pub struct Process {
    pid: u32,
    fd: OwnedFd,
}

impl Process {
    /// Process `pid`, which must exist (it may have exited, unreaped).
    pub fn open(pid: u32) -> Process {
        let raw = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
        let fd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
            .unwrap_or_else(|e| panic!("pidfd_open({pid}): {e}"));
        Process { pid, fd }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Sends it `signal`.
    pub fn signal(&self, signal: rustix::process::Signal) {
        rustix::process::pidfd_send_signal(&self.fd, signal)
            .unwrap_or_else(|e| panic!("signal pid {}: {e}", self.pid));
    }

    /// Whether it exits within `timeout` (its pidfd becomes readable).
    pub fn exited_within(&self, timeout: std::time::Duration) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let left = Timespec::try_from(left).expect("a timeout");
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&left)) {
                Ok(n) => return n > 0,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => panic!("poll pidfd: {e}"),
            }
        }
    }

    /// Waits until it exits (with the usual guard against hangs), and
    /// reaps it: its exit code, or `None` when it died of a signal or is
    /// not this process's child (see [`adopt_orphans`]).
    pub fn wait(&self) -> Option<i32> {
        assert!(
            self.exited_within(LINE_TIMEOUT),
            "pid {} did not exit",
            self.pid
        );
        self.reap()?.exit_status()
    }

    fn reap(&self) -> Option<rustix::process::WaitIdStatus> {
        use rustix::process::{waitid, WaitId, WaitIdOptions};
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
        waitid(WaitId::PidFd(self.fd.as_fd()), options).ok()?
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.exited_within(std::time::Duration::ZERO) {
            let _ = rustix::process::pidfd_send_signal(&self.fd, rustix::process::Signal::KILL);
            self.exited_within(LINE_TIMEOUT);
        }
        self.reap();
    }
}

/// Makes this process the reaper of its orphaned descendants
/// (`PR_SET_CHILD_SUBREAPER`): a restarted server's successors outlive
/// their parent, and their exit status is then this process's to read
/// ([`Process::wait`]); no zombie is left behind either.
pub fn adopt_orphans() {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid())).expect("subreaper");
}

/// Open descriptors of process `pid`.
pub fn fd_count_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// TCP connections (not listeners) process `pid` holds open: its socket
/// descriptors whose inode `/proc/PID/net/tcp{,6}` lists in a state other
/// than LISTEN. The demo keeps an answered connection until the client has
/// closed its end (a lingering close), so a test that counts descriptors
/// waits for this to reach 0 first.
pub fn tcp_connections_of(pid: u32) -> usize {
    let mut connected = std::collections::HashSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for row in text.lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // st (column 3) 0A is LISTEN; the inode is column 9.
            if cols.len() > 9 && cols[3] != "0A" {
                connected.insert(format!("socket:[{}]", cols[9]));
            }
        }
    }
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|target| connected.contains(&*target.to_string_lossy()))
                .count()
        })
        .unwrap_or(0)
}

/// CPU time process `pid` has used (user + system), in clock ticks.
pub fn cpu_ticks_of(pid: u32) -> u64 {
    // utime and stime.
    let ticks = |n| stat_field(pid, n).parse::<u64>().expect("a number");
    ticks(14) + ticks(15)
}

/// Field `n` of `/proc/PID/stat` (1-based, as proc(5) numbers them; the
/// command name, field 2, may hold spaces: fields are counted after it).
pub fn stat_field(pid: u32, n: usize) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    after_name
        .split(' ')
        .nth(n - 3)
        .expect("a field")
        .to_owned()
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    rustix::process::kill_process(pid, signal).expect("kill");
}

/// Retries `check` until it holds, up to a generous guard against hangs.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + LINE_TIMEOUT;
    while !check() {
        assert!(std::time::Instant::now() < give_up, "never: {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The workspace README's Rust snippets, compiled and run by
/// `cargo test --doc -p integration-tests` (and so by `cargo test
/// --workspace`), so that the README cannot drift from the API unseen.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The published crates' READMEs (what crates.io shows), compiled and run
/// the same way.
#[doc = include_str!("../../ipc-core/README.md")]
#[doc = include_str!("../../ipc-net/README.md")]
#[doc = include_str!("../../ipc-fork/README.md")]
#[cfg(doctest)]
pub struct CrateReadmeDoctests;

/// One HTTP/1.0 GET to `127.0.0.1:port` (so the reply is not chunked); the body.
pub fn http_get(port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(LINE_TIMEOUT))?;
    conn.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    match reply.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a 200 reply: {reply:?}"),
        )),
    }
}

/// Process `pid`'s descriptor count comes back to `baseline` (retried, up
/// to the hang guard).
pub fn fds_settle_at(pid: u32, baseline: usize) {
    eventually(
        &format!("process {pid}'s descriptor count is back to its baseline {baseline}"),
        || fd_count_of(pid) == baseline,
    );
}

/// Starts `systemd-socket-activate -l 127.0.0.1:PORT ARGS..` (stdout
/// piped) on a port borrowed from the kernel, and returns once the tool
/// says it listens there: `None` where the tool is not installed.
///
/// A borrowed listener can outlive its drop for a moment: a child that
/// another test's thread forked and has not exec'd yet holds a copy of
/// every descriptor. A client connecting then is queued on that copy and
/// reset when the exec closes it, and the tool's own `bind` fails with
/// `EADDRINUSE`. So nothing connects before the tool's `Listening on` line
/// (its bind worked: the port is its own), and a tool that could not bind
/// is tried again on another port.
pub fn socket_activate(args: &[&str]) -> Option<(u16, std::process::Child)> {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    if Command::new("systemd-socket-activate")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-socket-activate is not installed");
        return None;
    }
    for _ in 0..100 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut proc = Command::new("systemd-socket-activate")
            .arg("-l")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            // Its log on stderr (not the journal), at info: "Listening on".
            .env("SYSTEMD_LOG_TARGET", "console")
            .env("SYSTEMD_LOG_LEVEL", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut log = std::io::BufReader::new(proc.stderr.take().unwrap()).lines();
        let listening = log
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.starts_with("Listening on "));
        if listening {
            // The rest (the child's stderr too) is shown, never left to fill.
            std::thread::spawn(move || log.map_while(Result::ok).for_each(|l| eprintln!("{l}")));
            return Some((port, proc));
        }
        // It exited: the port was not free after all.
        proc.wait().unwrap();
    }
    panic!("systemd-socket-activate never listened");
}

/// Calls `f` `n` times from up to `at_once` threads; the results.
pub fn fan_out<T: Send + 'static>(
    n: usize,
    at_once: usize,
    f: impl Fn() -> T + Send + Copy + 'static,
) -> Vec<T> {
    let at_once = at_once.clamp(1, n.max(1));
    let threads: Vec<_> = (0..at_once)
        .map(|t| {
            std::thread::spawn(move || (t..n).step_by(at_once).map(|_| f()).collect::<Vec<_>>())
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("a client thread"))
        .collect()
}
