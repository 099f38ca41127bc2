//! Shared test machinery: unique `/dev/shm` names that must be gone when a
//! test ends, and cross-process tests that re-spawn the test binary.
//!
//! # Child processes
//!
//! A cross-process test re-runs its own test binary with
//! `--exact <test> --nocapture --test-threads=1` and the environment
//! variable [`ROLE_ENV`] set to `<test>/<role>`. The same `#[test]` function
//! starts with
//!
//! ```ignore
//! if common::run_child("my_test", |role| match role { ... }) {
//!     return;
//! }
//! ```
//!
//! which, in the child, runs the role and prints a `done` message. The two
//! sides talk in lines: the child writes `@@shmsync:<msg>` lines to stdout
//! ([`tell`]) and reads plain lines from stdin ([`await_msg`]); the parent
//! uses [`Child::expect`] and [`Child::send`]. Every wait is bounded by
//! [`HANG_LIMIT`] (a watchdog against a hung test, not a timing assertion),
//! and a child that did not print `done` (wrong test name, panic) fails the
//! parent.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `<test>/<role>` of a child process.
pub(crate) const ROLE_ENV: &str = "SHMSYNC_CHILD_ROLE";
/// Prefix of the environment variables carrying a child's arguments.
const ARG_PREFIX: &str = "SHMSYNC_ARG_";
/// Prefix of the environment variables carrying inherited descriptors.
const FD_PREFIX: &str = "SHMSYNC_FD_";
/// Prefix of protocol lines on a child's stdout.
const MSG_PREFIX: &str = "@@shmsync:";
/// Watchdog: the longest any single wait on a child may take before the
/// test is declared hung. Generous (debug builds, a loaded 2-core machine).
pub(crate) const HANG_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/// A unique shared-memory name for one test, which must no longer exist in
/// `/dev/shm` when the value is dropped.
///
/// Declare it *before* the objects that use it, so that it is dropped after
/// them. If the test is already failing, a leftover file is removed
/// silently; otherwise a leftover file is removed and the test fails.
#[derive(Debug)]
pub(crate) struct ShmName {
    name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl ShmName {
    /// `shmsync_t_<tag>_<pid>_<n>`: unique among concurrently running tests
    /// and processes.
    pub(crate) fn new(tag: &str) -> ShmName {
        // Relaxed: only uniqueness of the returned numbers matters.
        let n = COUNTER.fetch_add(1, Relaxed);
        ShmName {
            name: format!("shmsync_t_{tag}_{}_{n}", std::process::id()),
        }
    }

    /// Adopts a name made elsewhere (e.g. by CPython), with the same
    /// must-be-gone check.
    pub(crate) fn adopt(name: &str) -> ShmName {
        ShmName {
            name: name.trim_start_matches('/').to_owned(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.name
    }

    pub(crate) fn path(&self) -> PathBuf {
        shm_path(&self.name)
    }

    pub(crate) fn exists(&self) -> bool {
        self.path().exists()
    }
}

impl std::ops::Deref for ShmName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for ShmName {
    fn drop(&mut self) {
        let path = self.path();
        if path.exists() {
            let _ = std::fs::remove_file(&path);
            if !std::thread::panicking() {
                panic!("test left {} behind", path.display());
            }
        }
    }
}

/// `/dev/shm/<bare name>`.
pub(crate) fn shm_path(name: &str) -> PathBuf {
    PathBuf::from("/dev/shm").join(name.trim_start_matches('/'))
}

/// Asserts that the name no longer exists in `/dev/shm`.
pub(crate) fn assert_gone(name: &str) {
    let p = shm_path(name);
    assert!(!p.exists(), "{} still exists", p.display());
}

/// Asserts that the name exists in `/dev/shm`.
pub(crate) fn assert_exists(name: &str) {
    let p = shm_path(name);
    assert!(p.exists(), "{} does not exist", p.display());
}

/// Permission bits of `/dev/shm/<name>`.
pub(crate) fn mode_of(name: &str) -> u32 {
    std::fs::metadata(shm_path(name))
        .expect("metadata of /dev/shm file")
        .permissions()
        .mode()
        & 0o777
}

/// `n` random bytes from `getrandom(2)`.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        filled += rustix::rand::getrandom(&mut b[filled..], rustix::rand::GetRandomFlags::empty())
            .expect("getrandom");
    }
    b
}

// ---------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------

/// A child process to be started: the test binary, running one test in one
/// role.
#[derive(Debug)]
pub(crate) struct Spawn {
    test: String,
    role: String,
    args: Vec<(String, String)>,
    fds: Vec<(String, RawFd)>,
}

/// Describes a child that runs test `test` in role `role`.
pub(crate) fn spawn(test: &str, role: &str) -> Spawn {
    Spawn {
        test: test.to_owned(),
        role: role.to_owned(),
        args: Vec::new(),
        fds: Vec::new(),
    }
}

impl Spawn {
    /// Passes `value` to the child, read there with [`arg`].
    pub(crate) fn arg(mut self, key: &str, value: impl ToString) -> Spawn {
        self.args.push((key.to_owned(), value.to_string()));
        self
    }

    /// Lets the child inherit `fd` (at the same number), read there with
    /// [`take_fd`]. `fd` must stay open until [`start`](Spawn::start)
    /// returns; the parent's copy keeps its close-on-exec flag, so children
    /// of concurrently running tests never see it.
    pub(crate) fn fd(mut self, key: &str, fd: BorrowedFd<'_>) -> Spawn {
        self.fds.push((key.to_owned(), fd.as_raw_fd()));
        self
    }

    /// Starts the child.
    pub(crate) fn start(self) -> Child {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", &self.test, "--nocapture", "--test-threads=1"])
            .env(ROLE_ENV, format!("{}/{}", self.test, self.role))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &self.args {
            cmd.env(format!("{ARG_PREFIX}{k}"), v);
        }
        for (k, fd) in &self.fds {
            cmd.env(format!("{FD_PREFIX}{k}"), fd.to_string());
        }
        let fds: Vec<RawFd> = self.fds.iter().map(|&(_, fd)| fd).collect();
        // SAFETY: the closure runs in the forked child before `execve`, where
        // only async-signal-safe work is allowed: it iterates a vector
        // allocated before the fork (no allocation) and makes `fcntl(2)`
        // system calls, which are async-signal-safe. The descriptors were
        // open in the parent at fork time (the caller keeps them open until
        // `spawn` returns), so they are open in the child too.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &fds {
                    // SAFETY: `fd` is open in this (child) process, see above.
                    let b = BorrowedFd::borrow_raw(fd);
                    rustix::io::fcntl_setfd(b, rustix::io::FdFlags::empty())?;
                }
                Ok(())
            });
        }
        let mut proc = cmd.spawn().expect("spawn child test process");
        let stdin = proc.stdin.take();
        let stdout = proc.stdout.take().expect("child stdout");
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest prints `test NAME ... ` without a newline before
                // running the test, so a message can follow other text.
                match line.find(MSG_PREFIX) {
                    Some(at) => {
                        let msg = &line[at + MSG_PREFIX.len()..];
                        if tx.send(msg.to_owned()).is_err() {
                            break;
                        }
                    }
                    None => log2.lock().unwrap().push(line),
                }
            }
        });
        Child {
            label: format!("{}/{}", self.test, self.role),
            proc: Some(proc),
            stdin,
            msgs: rx,
            log,
            reader: Some(reader),
            done: false,
        }
    }
}

/// A running child test process.
#[derive(Debug)]
pub(crate) struct Child {
    label: String,
    proc: Option<std::process::Child>,
    stdin: Option<ChildStdin>,
    msgs: Receiver<String>,
    /// The child's non-protocol stdout lines (libtest's report, prints).
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    done: bool,
}

impl Child {
    /// Sends one line to the child's stdin.
    pub(crate) fn send(&mut self, msg: &str) {
        let stdin = self.stdin.as_mut().expect("child stdin open");
        writeln!(stdin, "{msg}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: cannot write to child: {e}", self.label));
    }

    /// The next protocol message from the child.
    pub(crate) fn recv(&mut self) -> String {
        match self.msgs.recv_timeout(HANG_LIMIT) {
            Ok(m) => {
                if m == "done" {
                    self.done = true;
                }
                m
            }
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no message within {HANG_LIMIT:?} (hung?)", self.label)
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.reap();
                panic!(
                    "{}: exited ({status}) before sending the expected message; output:\n{}",
                    self.label,
                    self.output()
                )
            }
        }
    }

    /// Waits for the message `want` (and fails on any other).
    pub(crate) fn expect(&mut self, want: &str) {
        let got = self.recv();
        assert_eq!(got, want, "{}: unexpected message", self.label);
    }

    /// Waits for the next message, which must start with `prefix`, and
    /// returns the rest.
    pub(crate) fn expect_prefixed(&mut self, prefix: &str) -> String {
        let got = self.recv();
        match got.strip_prefix(prefix) {
            Some(rest) => rest.to_owned(),
            None => panic!("{}: expected {prefix:?}..., got {got:?}", self.label),
        }
    }

    fn output(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// Waits for the exit, bounded by the watchdog (then kills).
    fn reap(&mut self) -> ExitStatus {
        let mut proc = self.proc.take().expect("child not reaped yet");
        let start = Instant::now();
        loop {
            match proc.try_wait().expect("try_wait") {
                Some(status) => return status,
                None if start.elapsed() > HANG_LIMIT => {
                    let _ = proc.kill();
                    let _ = proc.wait();
                    panic!("{}: did not exit within {HANG_LIMIT:?}", self.label);
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Closes the child's stdin, waits for it to exit, and checks that it
    /// ran its role to the end (`done`) and exited successfully.
    pub(crate) fn wait(mut self) {
        self.stdin = None;
        let status = self.reap();
        if let Some(r) = self.reader.take() {
            r.join().expect("reader thread");
        }
        while let Ok(m) = self.msgs.try_recv() {
            if m == "done" {
                self.done = true;
            }
        }
        assert!(
            status.success(),
            "{}: child failed ({status}); output:\n{}",
            self.label,
            self.output()
        );
        assert!(
            self.done,
            "{}: child did not run its role (wrong test name?); output:\n{}",
            self.label,
            self.output()
        );
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Only reached with a live process when the test is failing: never
        // leave a child behind.
        if let Some(mut p) = self.proc.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// Starts `n` children in the same role and releases them together once
/// all have sent `ready` (so that they really contend).
pub(crate) fn start_together(n: usize, make: impl Fn(usize) -> Spawn) -> Vec<Child> {
    let mut kids: Vec<Child> = (0..n).map(|i| make(i).start()).collect();
    for k in &mut kids {
        k.expect("ready");
    }
    for k in &mut kids {
        k.send("go");
    }
    kids
}

// ---------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------

/// In a child started for `test`, runs `role` with the role's name, reports
/// `done`, and returns `true`; in any other process returns `false`.
pub(crate) fn run_child(test: &str, role: impl FnOnce(&str)) -> bool {
    let Ok(v) = std::env::var(ROLE_ENV) else {
        return false;
    };
    let Some((t, r)) = v.split_once('/') else {
        panic!("malformed {ROLE_ENV}={v:?}");
    };
    if t != test {
        return false;
    }
    role(r);
    tell("done");
    true
}

/// Sends a protocol message to the parent.
pub(crate) fn tell(msg: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MSG_PREFIX}{msg}").expect("write to parent");
    out.flush().expect("flush to parent");
}

/// Reads the next line from the parent, which must be `want`.
pub(crate) fn await_msg(want: &str) {
    let mut line = String::new();
    let n = std::io::stdin().read_line(&mut line).expect("read stdin");
    assert!(
        n > 0,
        "parent closed stdin while the child waited for {want:?}"
    );
    assert_eq!(line.trim_end(), want, "unexpected message from the parent");
}

/// The child's rendezvous: reports `ready`, then waits for `go`.
pub(crate) fn ready_go() {
    tell("ready");
    await_msg("go");
}

/// An argument passed with [`Spawn::arg`].
pub(crate) fn arg(key: &str) -> String {
    std::env::var(format!("{ARG_PREFIX}{key}"))
        .unwrap_or_else(|_| panic!("child argument {key} missing"))
}

/// [`arg`], parsed.
pub(crate) fn arg_parse<T: std::str::FromStr>(key: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    arg(key).parse().expect("child argument parses")
}

/// Takes ownership of a descriptor passed with [`Spawn::fd`].
pub(crate) fn take_fd(key: &str) -> OwnedFd {
    let n: RawFd = std::env::var(format!("{FD_PREFIX}{key}"))
        .unwrap_or_else(|_| panic!("child fd {key} missing"))
        .parse()
        .expect("fd number");
    // Check that it really is open before claiming it.
    // SAFETY: borrowing for the duration of one `fcntl` call; an invalid
    // number makes `fcntl` fail with EBADF, nothing worse.
    let flags = rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(n) });
    assert!(flags.is_ok(), "inherited fd {n} ({key}) is not open");
    // SAFETY: the descriptor was inherited from the parent for this child
    // alone (see `Spawn::fd`); nothing else in this process owns or closes
    // it, and `take_fd` is called once per key.
    unsafe { OwnedFd::from_raw_fd(n) }
}
