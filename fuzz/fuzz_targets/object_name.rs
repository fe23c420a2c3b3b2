//! `packager::playlist::parse_object_name` on arbitrary UTF-8.
//!
//! Invariants: `parse(x) == Some(n)` ⇒ `n.to_string() == x` (names are
//! canonical: one object, one URI), and every name we write parses back
//! (checked on an object built from the input bytes as well).
#![no_main]

use libfuzzer_sys::fuzz_target;
use packager::playlist::{ObjectName, parse_object_name, part_uri, segment_uri};
use packager::units::{InitId, Msn, PartSeq};

fuzz_target!(|data: &[u8]| {
    if let Ok(name) = std::str::from_utf8(data)
        && let Some(n) = parse_object_name(name)
    {
        assert_eq!(n.to_string(), name, "non-canonical name accepted");
        match n {
            ObjectName::Segment(msn) => assert_eq!(segment_uri(msn), name),
            ObjectName::Part(seq) => assert_eq!(part_uri(seq), name),
            ObjectName::Init(_) | ObjectName::Playlist => {}
        }
    }

    // The other direction: an object from the first 9 bytes.
    if let Some((&kind, rest)) = data.split_first() {
        let mut n = [0_u8; 8];
        for (d, s) in n.iter_mut().zip(rest) {
            *d = *s;
        }
        let n = u64::from_le_bytes(n);
        let o = match kind % 4 {
            0 => ObjectName::Init(InitId(n as u32)),
            1 => ObjectName::Playlist,
            2 => ObjectName::Segment(Msn(n)),
            _ => ObjectName::Part(PartSeq(n)),
        };
        assert_eq!(parse_object_name(&o.to_string()), Some(o));
    }
});
