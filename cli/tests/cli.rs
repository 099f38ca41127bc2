//! The built `shmsync` binary against segments made in the same test (and
//! by `python3` for `ls --all`): listings, a held lock and its dead owner,
//! a waiter, `gc`, `unlink`, broken files, and JSON that agrees with the
//! table.

use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use shmsync::{
    Array, AtomicArray, AtomicValue, Event, Lock, LockError, RLock, RawArray, RawValue, Value,
};

const ROLE: &str = "SHMSYNC_CLI_TEST_ROLE";
const ARG: &str = "SHMSYNC_CLI_TEST_ARG";
/// What a child prints once it is ready.
const READY: &str = "SHMSYNC_CHILD_READY";

/// A unique segment name, removed (if still there) when dropped.
struct Name(String);

impl Name {
    fn new(tag: &str) -> Name {
        static N: AtomicU32 = AtomicU32::new(0);
        // Relaxed: only uniqueness matters.
        Name(format!(
            "shmsync_cli_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Relaxed)
        ))
    }
    fn path(&self) -> String {
        format!("/dev/shm/{}", self.0)
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.path());
    }
}

fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shmsync"))
        .args(args)
        .output()
        .expect("run the shmsync binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `shmsync ARGS --json`, parsed; the command must succeed.
fn tool_json(args: &[&str]) -> Json {
    let mut a = args.to_vec();
    a.push("--json");
    let o = tool(&a);
    assert!(o.status.success(), "{args:?}: {o:?}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: bad JSON ({e}): {o:?}"))
}

/// The `ls --all --json` entry of `name`.
fn listed(name: &str) -> Option<Json> {
    tool_json(&["ls", "--all"])
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
}

/// Runs this test binary's `test` as a child in role `role`; waits for it
/// to print `ready`.
fn child(test: &str, role: &str, arg: &str) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(ARG, arg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    // libtest prints "test NAME ... " before running it, so the marker
    // may share a line with it. A reader thread bounds the wait.
    let out = BufReader::new(c.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if line.contains(READY) {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = c.kill();
        let _ = c.wait();
        panic!("the child ({role}) never got ready");
    }
    c
}

/// In a child: `Some(role)`.
fn role() -> Option<(String, String)> {
    Some((std::env::var(ROLE).ok()?, std::env::var(ARG).ok()?))
}

fn ready_and_wait_for_stdin() {
    println!("{READY}");
    std::io::stdout().flush().unwrap();
    let mut s = String::new();
    let _ = std::io::stdin().read_line(&mut s);
}

fn kill(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ls_lists_every_kind_with_its_fields() {
    let n: Vec<Name> = (0..18).map(|_| Name::new("ls")).collect();
    let rl = RLock::create(&n[10]).unwrap();
    let objects: Vec<Box<dyn std::any::Any>> = vec![
        Box::new(Value::<f64>::create(&n[0], 2.5).unwrap()),
        Box::new(RawValue::<i32>::create(&n[1], -3).unwrap()),
        Box::new(Array::<u8>::create(&n[2], &[1, 2, 3]).unwrap()),
        Box::new(RawArray::<u16>::create(&n[3], &[7; 5]).unwrap()),
        Box::new(Lock::create(&n[4]).unwrap()),
        Box::new(AtomicValue::<u64>::create(&n[5], 9).unwrap()),
        Box::new(AtomicArray::<i64>::create(&n[6], &[4, 5]).unwrap()),
        Box::new(Event::create(&n[7]).unwrap()),
        Box::new(Value::<i32>::create_with_lock(&n[8], 1, &rl).unwrap()),
        Box::new(Array::<shmsync::CChar>::create(&n[9], &[shmsync::CChar(b'x'); 4]).unwrap()),
        Box::new(shmsync::Condition::<RLock>::create(&n[11]).unwrap()),
        Box::new(shmsync::Barrier::create(&n[12], 3).unwrap()),
        Box::new(shmsync::Semaphore::create(&n[13], 2).unwrap()),
        Box::new(shmsync::BoundedSemaphore::create(&n[14], 2).unwrap()),
        Box::new(shmsync::Queue::<u64>::create(&n[15], 8).unwrap()),
        Box::new(shmsync::MessageQueue::create(&n[16], 4, 100).unwrap()),
        Box::new(shmsync::Pipe::create(&n[17], 64).unwrap()),
    ];
    let want = [
        ("Value", Some("d"), "f64", 1, Some("2.5")),
        ("RawValue", Some("i"), "i32", 1, Some("-3")),
        ("Array", Some("B"), "u8", 3, Some("1")),
        ("RawArray", Some("H"), "u16", 5, Some("7")),
        ("Lock", None, "-", -1, None),
        ("AtomicValue", Some("Q"), "u64", 1, Some("9")),
        ("AtomicArray", Some("q"), "i64", 2, Some("4")),
        ("Event", None, "-", -1, None),
        ("Value", Some("i"), "i32", 1, Some("1")),
        ("Array", Some("c"), "CChar", 4, Some("b'x'")),
        ("RLock", None, "-", -1, None),
        ("Condition", None, "-", -1, None),
        ("Barrier", None, "-", -1, None),
        ("Semaphore", None, "-", -1, None),
        ("BoundedSemaphore", None, "-", -1, None),
        ("Queue", None, "-", -1, None),
        ("MessageQueue", None, "-", -1, None),
        ("Pipe", None, "-", -1, None),
    ];
    let list = tool_json(&["ls"]);
    let table = stdout(&tool(&["ls"]));
    for (name, (kind, code, rust, len, first)) in n.iter().zip(want) {
        let e = list
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == **name)
            .unwrap_or_else(|| panic!("{} not listed", &**name));
        assert_eq!(e["status"], "ok", "{e}");
        assert_eq!(e["kind"], kind, "{e}");
        assert_eq!(e["type_code"].as_str(), code, "{e}");
        assert_eq!(e["rust_type"], rust, "{e}");
        if len >= 0 {
            assert_eq!(e["length"], len, "{e}");
        } else {
            assert!(e["length"].is_null(), "{e}");
        }
        if kind == "Condition" {
            assert_eq!(e["state"], "lock free, 0 waiting on the condition", "{e}");
        } else if !["Lock", "RLock", "Event"].contains(&kind) && first.is_none() {
            assert_eq!(e["state"], "nobody waiting", "{e}");
        }
        assert_eq!(e["mode"], "0600");
        let bytes = std::fs::metadata(name.path()).unwrap().len();
        assert_eq!(e["bytes"], bytes);
        let me = std::process::id();
        assert!(
            e["attached"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["pid"] == me),
            "this process maps it: {e}"
        );
        assert_eq!(e["creator"]["pid"], me);
        assert_eq!(e["creator"]["alive"], true);
        if let Some(v) = first {
            let vals = e["values"].as_array().unwrap();
            assert_eq!(vals[0], v, "{e}");
        }
        // The table row has the same facts.
        let row = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&**name))
            .unwrap_or_else(|| panic!("{} not in the table:\n{table}", &**name));
        assert!(row.contains(kind), "{row}");
        assert!(row.contains(&bytes.to_string()), "{row}");
        assert!(row.contains("0600"), "{row}");
    }
    assert!(list[0].get("name").is_some());
    let l = list.as_array().unwrap();
    let lock = l.iter().find(|e| e["name"] == *n[4]).unwrap();
    assert_eq!(lock["lock"]["state"], "free");
    let locked = l.iter().find(|e| e["name"] == *n[8]).unwrap();
    assert_eq!(locked["lock_name"], *n[10]);
    let ev = l.iter().find(|e| e["name"] == *n[7]).unwrap();
    assert_eq!(ev["event"]["set"], false);
    drop(objects);
    drop(rl);
}

#[test]
fn held_lock_shows_its_owner_a_waiter_and_then_owner_dead() {
    let test = "held_lock_shows_its_owner_a_waiter_and_then_owner_dead";
    if let Some((role, name)) = role() {
        let l = Lock::open(&name).unwrap();
        if role == "waiter" {
            println!("{READY}");
            std::io::stdout().flush().unwrap();
            let _ = l.lock();
            panic!("the waiter must be killed while it waits");
        }
        let _g = l.lock().unwrap();
        ready_and_wait_for_stdin();
        return;
    }
    let n = Name::new("held");
    let lock = Lock::create(&n).unwrap();
    let holder = child(test, "holder", &n);
    let pid = holder.id();
    let e = tool_json(&["inspect", &n]);
    assert_eq!(e["lock"]["state"], "held", "{e}");
    assert_eq!(e["lock"]["owner_pid"], pid, "{e}");
    assert_eq!(e["lock"]["owner_alive"], true, "{e}");
    assert!(
        e["attached"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["pid"] == pid),
        "{e}"
    );
    let text = stdout(&tool(&["inspect", &n]));
    assert!(text.contains(&format!("of PID {pid}")), "{text}");
    // A waiter in another process is seen asleep on the lock word.
    let waiter = child(test, "waiter", &n);
    let wpid = waiter.id();
    poll("the waiter seen", || {
        let e = tool_json(&["inspect", &n]);
        let w = e["lock"]["waiting"].as_array().unwrap().clone();
        w.iter().any(|x| x["pid"] == wpid).then_some(())
    });
    let table = stdout(&tool(&["ls"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&*n) && l.contains("1 waiting")),
        "{table}"
    );
    kill(waiter);
    // The holder dies: its death is shown (the kernel's mark, or a TID
    // that no longer exists), and the next locker recovers the lock.
    kill(holder);
    let dead = tool_json(&["inspect", &n]);
    let st = &dead["lock"];
    assert!(
        st["state"] == "owner died" || (st["state"] == "held" && st["owner_alive"] == false),
        "{dead}"
    );
    assert!(stdout(&tool(&["inspect", &n])).contains("owner dead"));
    match lock.lock() {
        Err(LockError::OwnerDied(g)) => g.mark_consistent(),
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert_eq!(tool_json(&["inspect", &n])["lock"]["state"], "free");
}

#[test]
fn gc_removes_exactly_the_orphans() {
    let test = "gc_removes_exactly_the_orphans";
    if let Some((_, names)) = role() {
        // Create and leave behind (persist), then exit.
        for n in names.split(',') {
            Value::<u32>::create(n, 1).unwrap().persist();
        }
        println!("{READY}");
        return;
    }
    let prefix = format!("shmsync_cli_gc_{}_", std::process::id());
    let orphan = Name(format!("{prefix}orphan"));
    let held = Name(format!("{prefix}held"));
    let mine = Name(format!("{prefix}mine"));
    let mut c = child(test, "creator", &format!("{},{}", &*orphan, &*held));
    c.wait().unwrap();
    // `held`: open here, so attached; `mine`: created (and kept) by this
    // live process.
    let h = Value::<u32>::open(&held).unwrap();
    let m = Value::<u32>::create(&mine, 2).unwrap();
    m.persist();
    drop(m);
    let dry = tool_json(&["gc", "--dry-run", "--prefix", &prefix]);
    let action = |j: &Json, n: &str| {
        j.as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .map(|e| e["action"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        action(&dry, &orphan).as_deref(),
        Some("would remove"),
        "{dry}"
    );
    assert_eq!(action(&dry, &held).as_deref(), Some("kept"), "{dry}");
    assert_eq!(action(&dry, &mine).as_deref(), Some("kept"), "{dry}");
    assert!(
        std::path::Path::new(&orphan.path()).exists(),
        "dry run removed"
    );
    // --older-than keeps a young orphan.
    let young = tool_json(&["gc", "--dry-run", "--prefix", &prefix, "--older-than", "1h"]);
    assert_eq!(action(&young, &orphan).as_deref(), Some("kept"), "{young}");
    // The real thing.
    let o = tool(&["gc", "--prefix", &prefix]);
    assert!(o.status.success());
    assert!(
        stdout(&o).contains(&format!("removed {}", &*orphan)),
        "{o:?}"
    );
    assert!(!std::path::Path::new(&orphan.path()).exists());
    assert!(std::path::Path::new(&held.path()).exists());
    assert!(std::path::Path::new(&mine.path()).exists());
    drop(h);
}

#[test]
fn broken_garbage_and_foreign_files_are_listed_not_fatal() {
    let garbage = Name::new("garbage");
    let trunc = Name::new("trunc");
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(garbage.path())
        .unwrap()
        .write_all(&[0xa5; 300])
        .unwrap();
    let v = Value::<u64>::create(&trunc, 5).unwrap();
    let bytes = std::fs::read(trunc.path()).unwrap();
    drop(v);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(trunc.path())
        .unwrap()
        .write_all(&bytes[..bytes.len() - 3])
        .unwrap();
    let e = listed(&trunc).expect("truncated file listed");
    assert_eq!(e["status"], "broken", "{e}");
    assert!(e["problem"].as_str().unwrap().contains("runcated"), "{e}");
    let g = listed(&garbage).expect("garbage listed with --all");
    assert_eq!(g["status"], "foreign", "{g}");
    // Without --all: the broken shmsync file yes, the garbage no.
    let plain = tool_json(&["ls"]);
    let names: Vec<&str> = plain
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&&*trunc.0) && !names.contains(&&*garbage.0));
    // inspect shows what it could read, and succeeds.
    let o = tool(&["inspect", &trunc]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("broken"), "{o:?}");
    // unlink removes both, though no typed open accepts them.
    let o = tool(&["unlink", &trunc, &garbage]);
    assert!(o.status.success(), "{o:?}");
    assert!(!std::path::Path::new(&trunc.path()).exists());
    assert!(!std::path::Path::new(&garbage.path()).exists());
}

#[test]
fn errors_are_one_line_and_fail() {
    let o = tool(&["inspect", "shmsync_cli_no_such_segment"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        err.trim(),
        "shmsync: shmsync_cli_no_such_segment: no such segment"
    );
    let o = tool(&["unlink", "shmsync_cli_no_such_segment"]);
    assert!(!o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    let o = tool(&["inspect", "a/b"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid name"));
    let o = tool(&["gc", "--older-than", "ten minutes"]);
    assert!(!o.status.success());
}

#[test]
fn inspect_shows_every_header_field_and_all_elements() {
    let n = Name::new("insp");
    let a = Array::<i32>::create(&n, &(0..40).collect::<Vec<_>>()).unwrap();
    let text = stdout(&tool(&["inspect", &n]));
    for field in [
        "magic",
        "version",
        "kind",
        "init",
        "type code",
        "size",
        "align",
        "stride",
        "count",
        "data at",
        "mode",
        "lock id",
        "creator PID",
        "word",
        "extra holds",
        "prev",
        "next",
        "attached",
    ] {
        assert!(text.contains(field), "{field} missing:\n{text}");
    }
    assert!(text.contains("--all for every element"), "{text}");
    let all = stdout(&tool(&["inspect", "--all", &n]));
    assert!(all.contains(", 39]"), "{all}");
    let j = tool_json(&["inspect", "--all", &n]);
    assert_eq!(j["values"].as_array().unwrap().len(), 40);
    assert_eq!(j["header"]["count"], 40);
    drop(a);
}

#[test]
fn ls_all_marks_python_segments_foreign() {
    let code = "from multiprocessing import shared_memory as s\n\
                m = s.SharedMemory(create=True, size=64)\n\
                m.buf[:4] = b'abcd'\n\
                print(m.name, flush=True)\n\
                import sys; sys.stdin.read()\n\
                m.close(); m.unlink()\n";
    let Ok(mut py) = Command::new("python3")
        .args(["-c", code])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    else {
        eprintln!("python3 not found: skipping the CPython segment check");
        return;
    };
    let mut line = String::new();
    BufReader::new(py.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let name = line.trim().trim_start_matches('/').to_owned();
    let e = listed(&name);
    let plain = tool_json(&["ls"]);
    drop(py.stdin.take()); // input() ends: Python unlinks its segment
    py.wait().unwrap();
    let e = e.expect("the Python segment listed with --all");
    assert_eq!(e["status"], "foreign", "{e}");
    assert!(!plain.as_array().unwrap().iter().any(|x| x["name"] == *name));
}
