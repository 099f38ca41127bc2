use shmsync::*;
use std::sync::Arc;

#[test]
fn smoke() {
    let name = format!("smoke_{}", std::process::id());
    let v = Value::<i32>::create(&name, 3).unwrap();
    let w = Value::<i32>::open(&name).unwrap();
    assert_eq!(w.get().unwrap(), 3);
    let v = Arc::new(v);
    let hs: Vec<_> = (0..4)
        .map(|_| {
            let v = v.clone();
            std::thread::spawn(move || {
                for _ in 0..100000 {
                    v.update(|x| x + 1).unwrap();
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(w.get().unwrap(), 400003);
    assert!(matches!(
        RawValue::<i32>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        Value::<u32>::open(&name),
        Err(Error::TypeMismatch { .. })
    ));
    let e = Value::<u32>::open(&name).unwrap_err();
    println!("{e}");
    drop(v);
    assert!(matches!(
        Value::<i32>::open(&name),
        Err(Error::NotFound { .. })
    ));
}
