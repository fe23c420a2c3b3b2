//! `gateway::ingest::streamid::parse_publish` on arbitrary UTF-8 stream ids.
//!
//! Invariants: `Ok(name)` ⇒ `name` is 1–64 of `[A-Za-z0-9_-]` (it becomes a
//! path segment and a map key), `name` occurs in the stream id, and the name
//! round-trips through both accepted spellings.
#![no_main]

use gateway::ingest::streamid::parse_publish;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|sid: &str| {
    let Ok(name) = parse_publish(Some(sid)) else {
        return;
    };
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
    assert_eq!(
        parse_publish(Some(&format!("publish:{name}"))).as_deref(),
        Ok(name.as_str())
    );
    assert_eq!(
        parse_publish(Some(&format!("#!::r={name},m=publish"))).as_deref(),
        Ok(name.as_str())
    );
});
