//! `packager::directives::parse` on arbitrary UTF-8 query strings.
//!
//! Invariants (beyond "no panic"):
//! - `_HLS_part` present ⇒ `_HLS_msn` present (rfc8216bis §6.2.5.2);
//! - whatever parses, re-serialised canonically as
//!   `_HLS_msn=..&_HLS_part=..&_HLS_skip=..`, parses to the same value, with or
//!   without a leading `?`;
//! - the answer (value or error) does not depend on the order of the
//!   parameters, as the module documentation promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use packager::directives::{Directives, Skip, parse};

fn canonical(d: &Directives) -> String {
    let mut params = Vec::new();
    if let Some(m) = d.msn {
        params.push(format!("_HLS_msn={m}"));
    }
    if let Some(p) = d.part {
        params.push(format!("_HLS_part={p}"));
    }
    match d.skip {
        Some(Skip::Yes) => params.push("_HLS_skip=YES".to_owned()),
        Some(Skip::V2) => params.push("_HLS_skip=v2".to_owned()),
        None => {}
    }
    params.join("&")
}

fuzz_target!(|query: &str| {
    let result = parse(query);

    // Order independence: the same pairs reversed. Exactly one leading `?` is
    // stripped by the parser, so strip it here first and put one back in front:
    // a pair that itself starts with `?` must not become a prefix.
    let body = query.strip_prefix('?').unwrap_or(query);
    let mut pairs: Vec<&str> = body.split('&').collect();
    pairs.reverse();
    let reversed = format!("?{}", pairs.join("&"));
    assert_eq!(
        parse(&reversed),
        result,
        "order changed the answer: {query:?} vs {reversed:?}"
    );

    let Ok(d) = result else {
        return;
    };
    if d.part.is_some() {
        assert!(
            d.msn.is_some(),
            "_HLS_part without _HLS_msn accepted: {query:?}"
        );
    }
    let again = canonical(&d);
    assert_eq!(parse(&again), Ok(d), "{query:?} -> {again:?}");
    assert_eq!(
        parse(&format!("?{again}")),
        Ok(d),
        "{query:?} -> ?{again:?}"
    );
});
