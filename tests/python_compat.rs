//! Interoperability with CPython's `multiprocessing.shared_memory`, both
//! directions. Skipped (with a clear message) when `python3` is missing.
//!
//! CPython 3.11's resource tracker unlinks every segment a process *opened*
//! when that process exits; the scripts unregister opened segments so that
//! they do not remove ours, and unlink the segments they create themselves.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};

use common::ShmName;
use shmsync::{SharedMemory, Value};

/// Whether `python3` can run; prints the skip notice when it cannot.
fn have_python() -> bool {
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            println!("SKIPPED: python3 not found");
            false
        }
    }
}

/// Starts `python3 -c script args...` with its stdin, stdout and stderr
/// piped.
fn spawn_python(script: &str, args: &[&str]) -> Child {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3")
}

/// The stdout of a finished Python process (what its pipe still held);
/// fails the test if Python failed or warned about leaked segments.
fn python_output(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "python failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(!stderr.contains("leaked"), "python warned:\n{stderr}");
    stdout
}

/// Runs `python3 -c script args...`, feeding `stdin` and returning stdout
/// ([`python_output`]).
fn python(script: &str, args: &[&str], stdin: &str) -> String {
    let mut child = spawn_python(script, args);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    python_output(child.wait_with_output().unwrap())
}

const PY_CREATOR: &str = r#"
import sys
from multiprocessing import shared_memory
shm = shared_memory.SharedMemory(create=True, size=5000)
try:
    shm.buf[0:17] = b"hello from python"
    shm.buf[4000:4256] = bytes(range(256))
    print("NAME", shm.name, flush=True)
    # Wait until Rust has read and written.
    assert sys.stdin.readline().strip() == "written"
    print("RUST", bytes(shm.buf[1000:1010]).hex(), flush=True)
finally:
    shm.close()
    shm.unlink()
print("BYE", flush=True)
"#;

#[test]
fn python_creates_rust_opens_by_name() {
    if !have_python() {
        return;
    }
    let mut py = spawn_python(PY_CREATOR, &[]);
    let mut lines = BufReader::new(py.stdout.take().unwrap()).lines();
    let mut stdin = py.stdin.take().unwrap();
    let Some(Ok(first)) = lines.next() else {
        drop(stdin);
        let out = py.wait_with_output().unwrap();
        panic!(
            "python printed no name ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let name = first.strip_prefix("NAME ").expect("NAME line").to_owned();
    // CPython's `.name` has no leading slash; the file is /dev/shm/NAME.
    assert!(!name.starts_with('/'), "{name}");
    let guard = ShmName::adopt(&name);
    assert_eq!(common::mode_of(&name), 0o600);
    {
        let m = SharedMemory::open(&name).unwrap();
        assert_eq!(m.len(), 5000);
        assert_eq!(m.name(), Some(name.as_str()));
        let mut b = [0u8; 17];
        m.read_at(0, &mut b).unwrap();
        assert_eq!(&b, b"hello from python");
        let mut r = [0u8; 256];
        m.read_at(4000, &mut r).unwrap();
        assert!(r.iter().enumerate().all(|(i, &x)| x as usize == i));
        m.write_at(1000, b"from rust!").unwrap();
        // The same segment under its POSIX name.
        let slashed = SharedMemory::open(&format!("/{name}")).unwrap();
        slashed.read_at(1000, &mut b[..10]).unwrap();
        assert_eq!(&b[..10], b"from rust!");
    }
    writeln!(stdin, "written").unwrap();
    drop(stdin);
    let rust = lines.next().expect("RUST line").unwrap();
    assert_eq!(rust, format!("RUST {}", hex(b"from rust!")));
    let bye = lines.next().expect("BYE line").unwrap();
    assert_eq!(bye, "BYE");
    python_output(py.wait_with_output().unwrap());
    // Python unlinked its own segment; our open handle did not interfere.
    common::assert_gone(&name);
    drop(guard);
}

const PY_OPENER: &str = r#"
import struct, sys
from multiprocessing import shared_memory, resource_tracker
name, want_size = sys.argv[1], int(sys.argv[2])
shm = shared_memory.SharedMemory(name=name)
# Opening registered the segment; without this the tracker would unlink
# it when this process exits.
resource_tracker.unregister(shm._name, "shared_memory")
try:
    assert shm.size >= want_size, (shm.size, want_size)
    print("READ", bytes(shm.buf[0:16]).hex())
    if len(sys.argv) == 3:
        shm.buf[100:116] = b"written by cpyth"
    else:
        # A shmsync Value<f64>: magic, then the data at the header's
        # data offset (u64 at 40).
        magic = bytes(shm.buf[0:8])
        (off,) = struct.unpack_from("<Q", shm.buf, 40)
        (x,) = struct.unpack_from("<d", shm.buf, off)
        print("VALUE", magic.hex(), repr(x))
finally:
    shm.close()
"#;

#[test]
fn rust_creates_python_opens_by_name() {
    if !have_python() {
        return;
    }
    let name = ShmName::new("py");
    let m = SharedMemory::create(&name, 3000).unwrap();
    m.write_at(0, b"hello from rust!").unwrap();
    let out = python(PY_OPENER, &[&name, "3000"], "");
    assert!(
        out.contains(&format!("READ {}", hex(b"hello from rust!"))),
        "{out}"
    );
    let mut b = [0u8; 16];
    m.read_at(100, &mut b).unwrap();
    assert_eq!(&b, b"written by cpyth");
    // Python closed (and did not unlink) the segment.
    common::assert_exists(&name);
    drop(m);
    common::assert_gone(&name);
}

#[test]
fn python_reads_a_shmsync_value_through_its_header() {
    if !have_python() {
        return;
    }
    let name = ShmName::new("pyval");
    let v = Value::<f64>::create(&name, 2.5).unwrap();
    let out = python(PY_OPENER, &[&name, "1", "value"], "");
    assert!(
        out.contains(&format!("VALUE {} 2.5", hex(b"SHMSYNC\0"))),
        "{out}"
    );
    assert_eq!(v.get().unwrap(), 2.5);
    assert_eq!(Value::<f64>::open(&name).unwrap().get().unwrap(), 2.5);
    common::assert_exists(&name);
    drop(v);
    common::assert_gone(&name);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
