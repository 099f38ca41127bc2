//! The Rust side of the Python binding's interop test
//! (`python/tests/test_interop.py`): a named `Value<f64>` and `Array<i64>`
//! that share one named `RLock`, made or opened here and incremented under
//! that lock while a Python process does the same.
//!
//! ```text
//! cargo run --example py_interop -- create|open VALUE ARRAY LOCK N
//! ```
//!
//! It prints `ready` once the objects exist (or are open), waits for a
//! `go` line on stdin, adds 1 to the value and to each of the array's
//! elements `N` times (one lock hold each time), prints `done`, and exits
//! at the end of stdin, printing the final values; the creating side
//! removes the names then.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use shmsync::{Array, RLock, Value};

fn run(args: &[String]) -> Result<String, Box<dyn std::error::Error>> {
    let [mode, vname, aname, lname, n] = args else {
        return Err("usage: py_interop create|open VALUE ARRAY LOCK N".into());
    };
    let n: u64 = n.parse()?;
    let (v, a, _lock) = match mode.as_str() {
        "create" => {
            let lock = RLock::create(lname)?;
            let v = Value::<f64>::create_with_lock(vname, 0.0, &lock)?;
            let a = Array::<i64>::create_with_lock(aname, &[0; 3], &lock)?;
            (v, a, Some(lock))
        }
        // Each re-opens the lock it records by name.
        "open" => (Value::<f64>::open(vname)?, Array::<i64>::open(aname)?, None),
        m => return Err(format!("unknown mode {m:?}").into()),
    };
    let mut out = std::io::stdout();
    let mut lines = std::io::stdin().lock().lines();
    writeln!(out, "ready")?;
    out.flush()?;
    match lines.next() {
        Some(Ok(l)) if l == "go" => {}
        other => return Err(format!("expected go, got {other:?}").into()),
    }
    for _ in 0..n {
        let gv = v.lock().map_err(|e| e.to_string())?;
        gv.set(gv.get() + 1.0);
        // The array's lock is the same RLock: a recursive hold.
        let ga = a.lock().map_err(|e| e.to_string())?;
        for i in 0..ga.len() {
            ga.set(i, ga.get(i) + 1);
        }
    }
    writeln!(out, "done")?;
    out.flush()?;
    for l in lines {
        l?;
    }
    let a = a.to_vec().map_err(|e| e.to_string())?;
    Ok(format!("{} {:?}", v.get().map_err(|e| e.to_string())?, a))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("py_interop: {e}");
            ExitCode::FAILURE
        }
    }
}
