//! `gateway::ingest::streamid::parse_publish` on arbitrary UTF-8 stream ids.
//!
//! Invariants: `Ok(name)` ⇒ `name` is 1–64 of `[A-Za-z0-9_-]` (it becomes a
//! path segment and a map key), `name` occurs in the stream id, and the name
//! round-trips with its role through both accepted spellings.
#![no_main]

use gateway::ingest::streamid::parse_publish;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|sid: &str| {
    let Ok(req) = parse_publish(Some(sid)) else {
        return;
    };
    let name = req.name;
    let role = req.role.as_str();
    assert!(
        (1..=64).contains(&name.len()),
        "name of {} bytes from {sid:?}",
        name.len()
    );
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "name {name:?} from {sid:?}"
    );
    assert!(sid.contains(name.as_str()), "name {name:?} not in {sid:?}");
    for spelling in [
        format!("publish:{name}?role={role}"),
        format!("#!::r={name},m=publish,role={role}"),
    ] {
        let again = parse_publish(Some(&spelling)).expect("a valid spelling parses");
        assert_eq!((again.name.as_str(), again.role), (name.as_str(), req.role));
    }
});
