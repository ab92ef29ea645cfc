//! Behaviours `make mutants` found no test observing (see ARCHITECTURE.md, Mutation testing).

use super::*;

#[test]
fn an_id_already_taken_is_refused_and_nothing_written() {
    // A 128-bit collision never happens; the store here draws the same id on purpose.
    let t = Timeouts::new(100, 250).unwrap();
    let mut s = one_session();
    s.ids.push(ID1.as_bytes().try_into().unwrap());
    let e = ops::create(&mut s, b"idx", t, None, &[b"user", b"7"], 10);
    assert_eq!(e, Err(CmdError::Internal));
    assert!(s.take().is_empty());
    s.ids.push(ID1.as_bytes().try_into().unwrap());
    s.ids.push(ID2.as_bytes().try_into().unwrap());
    let key2 = ops::create(&mut s, b"idx", t, None, &[], 10).unwrap().0;
    s.take();
    // ROTATE of the second session draws the first's id.
    assert_eq!(ops::rotate(&mut s, &key2, 20), Err(CmdError::Internal));
    assert!(s.take().is_empty());
    assert_eq!(ops::count(&mut s, b"idx", 20), Ok(2));
}
