//! Delivery directives: the `_HLS_*` query parameters of a media playlist
//! request (rfc8216bis §6.2.5).
//!
//! [`parse`] turns the raw query string of the request URI
//! into typed values; what to do with them is decided in `crate::blocking`.
//!
//! Parsing rules:
//! - The query is split on `&`; each pair at its first `=`. Empty pairs are
//!   skipped; a single leading `?` is tolerated.
//! - Names and values are percent-decoded (RFC 3986 §2.1, hex digits in either
//!   case), so `%5FHLS_msn=%31` is `_HLS_msn=1`. `+` is not a space here: it is
//!   kept as is, so `_HLS_msn=+1` is not a number. A name whose encoding is
//!   invalid cannot be one of ours and is ignored; a directive value whose
//!   encoding is invalid is an error.
//! - Names are case-sensitive. Parameters other than `_HLS_msn`, `_HLS_part` and
//!   `_HLS_skip` are ignored, including other `_HLS_` names: rfc8216bis §6.2.5
//!   reserves the prefix for future directives.
//! - `_HLS_msn` and `_HLS_part` are decimal-integers (rfc8216bis §4.2: "an
//!   unquoted string of characters from the set [0-9]"): no sign, no spaces, no
//!   empty value; leading zeros are allowed by that grammar and accepted.
//!   `_HLS_msn` must fit `u64`, `_HLS_part` `u32` (a `PartIndex`).
//! - `_HLS_skip` is `YES` or `v2`, exactly (rfc8216bis §6.2.5.1).
//! - A directive given twice is an error, even with equal values.
//! - `_HLS_part` without `_HLS_msn` is an error; rfc8216bis §6.2.5.2: "If the
//!   Playlist URI contains an _HLS_part directive but no _HLS_msn directive, the
//!   Server MUST return Bad Request, such as HTTP 400."
//!
//! The result does not depend on the order of the parameters, errors included:
//! values are collected first and checked in a fixed order (`_HLS_msn`,
//! `_HLS_part`, `_HLS_skip`, then their combination). Clients put them "in UTF-8
//! order" (rfc8216bis §6.3.2), but caches key on the whole URI and must not see
//! two answers for one request.

#![deny(clippy::indexing_slicing)]

use std::fmt;

use thiserror::Error;

use crate::units::{Msn, PartIndex};

/// The delivery directives of one playlist request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Directives {
    /// `_HLS_msn`: block until the playlist has this segment (or later).
    pub msn: Option<Msn>,
    /// `_HLS_part`: with `msn`, block until the playlist has this part of it.
    pub part: Option<PartIndex>,
    /// `_HLS_skip`: ask for a playlist delta update.
    pub skip: Option<Skip>,
}

/// The value of `_HLS_skip` (rfc8216bis §6.2.5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// `YES`: skip old segments.
    Yes,
    /// `v2`: skip old segments and old date ranges.
    V2,
}

/// One of the directives we understand, named as in the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Directive {
    Msn,
    Part,
    Skip,
}

impl Directive {
    const ALL: [Self; 3] = [Self::Msn, Self::Part, Self::Skip];

    /// The query parameter name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Msn => "_HLS_msn",
            Self::Part => "_HLS_part",
            Self::Skip => "_HLS_skip",
        }
    }

    fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.name().as_bytes() == name)
    }
}

impl fmt::Display for Directive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a query was refused. The message is safe to send as a 400 body: it names
/// the parameter but never echoes the client's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DirectiveError {
    #[error("{0} appears more than once")]
    Duplicate(Directive),
    #[error("{0} has no value")]
    Empty(Directive),
    #[error("{0} has invalid percent-encoding")]
    BadEncoding(Directive),
    #[error("{0} must be a decimal integer")]
    NotDecimal(Directive),
    #[error("{0} is out of range")]
    OutOfRange(Directive),
    #[error("_HLS_skip must be YES or v2")]
    BadSkip,
    #[error("_HLS_part requires _HLS_msn")]
    PartWithoutMsn,
}

/// Parses the query string of a playlist request (the part after `?`).
///
/// # Errors
/// [`DirectiveError`] as listed in the module documentation; the HTTP layer
/// answers 400 with its message.
pub fn parse(query: &str) -> Result<Directives, DirectiveError> {
    let query = query.strip_prefix('?').unwrap_or(query);

    // Pass 1: collect the raw value of each directive, noting repeats.
    let mut msn = Raw::default();
    let mut part = Raw::default();
    let mut skip_raw = Raw::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(directive) = percent_decode(name)
            .ok()
            .and_then(|n| Directive::from_name(&n))
        else {
            continue;
        };
        let slot = match directive {
            Directive::Msn => &mut msn,
            Directive::Part => &mut part,
            Directive::Skip => &mut skip_raw,
        };
        slot.repeated |= slot.value.is_some();
        slot.value = Some(value);
    }

    // Pass 2: check in a fixed order, whatever the order of the query.
    for (d, raw) in [
        (Directive::Msn, &msn),
        (Directive::Part, &part),
        (Directive::Skip, &skip_raw),
    ] {
        if raw.repeated {
            return Err(DirectiveError::Duplicate(d));
        }
    }
    let msn = msn
        .value
        .map(|v| decimal(Directive::Msn, v))
        .transpose()?
        .map(Msn);
    let part = part
        .value
        .map(|v| decimal(Directive::Part, v))
        .transpose()?
        .map(|n| u32::try_from(n).map_err(|_| DirectiveError::OutOfRange(Directive::Part)))
        .transpose()?
        .map(PartIndex);
    let skip = skip_raw.value.map(skip).transpose()?;
    if part.is_some() && msn.is_none() {
        return Err(DirectiveError::PartWithoutMsn);
    }
    Ok(Directives { msn, part, skip })
}

/// What the query gave for one directive.
#[derive(Default)]
struct Raw<'a> {
    value: Option<&'a str>,
    repeated: bool,
}

/// A decimal-integer value (rfc8216bis §4.2): "an unquoted string of characters
/// from the set [0-9] expressing an integer in base-10 arithmetic in the range
/// from 0 to 2^64-1".
fn decimal(d: Directive, value: &str) -> Result<u64, DirectiveError> {
    let bytes = percent_decode(value).map_err(|()| DirectiveError::BadEncoding(d))?;
    if bytes.is_empty() {
        return Err(DirectiveError::Empty(d));
    }
    if !bytes.iter().all(u8::is_ascii_digit) {
        return Err(DirectiveError::NotDecimal(d));
    }
    bytes.iter().try_fold(0_u64, |n, &b| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(DirectiveError::OutOfRange(d))
    })
}

/// rfc8216bis §6.2.5.1: "an _HLS_skip directive whose value is YES or v2".
fn skip(value: &str) -> Result<Skip, DirectiveError> {
    let bytes = percent_decode(value).map_err(|()| DirectiveError::BadEncoding(Directive::Skip))?;
    match bytes.as_slice() {
        [] => Err(DirectiveError::Empty(Directive::Skip)),
        b"YES" => Ok(Skip::Yes),
        b"v2" => Ok(Skip::V2),
        _ => Err(DirectiveError::BadSkip),
    }
}

/// Decodes `%XX` escapes (RFC 3986 §2.1); every other byte stands for itself.
/// A `%` not followed by two hex digits is an error.
fn percent_decode(s: &str) -> Result<Vec<u8>, ()> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex).ok_or(())?;
            let lo = bytes.next().and_then(hex).ok_or(())?;
            out.push(hi << 4 | lo);
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ok(
        msn: Option<u64>,
        part: Option<u32>,
        skip: Option<Skip>,
    ) -> Result<Directives, DirectiveError> {
        Ok(Directives {
            msn: msn.map(Msn),
            part: part.map(PartIndex),
            skip,
        })
    }

    #[test]
    fn table() {
        use Directive as D;
        use DirectiveError as E;
        let table: &[(&str, Result<Directives, DirectiveError>)] = &[
            ("", ok(None, None, None)),
            ("?", ok(None, None, None)),
            ("_HLS_msn=12", ok(Some(12), None, None)),
            ("?_HLS_msn=12", ok(Some(12), None, None)),
            ("_HLS_msn=12&_HLS_part=3", ok(Some(12), Some(3), None)),
            ("_HLS_msn=0&_HLS_part=0", ok(Some(0), Some(0), None)),
            ("_HLS_msn=007", ok(Some(7), None, None)),
            (
                "_HLS_msn=18446744073709551615&_HLS_part=4294967295",
                ok(Some(u64::MAX), Some(u32::MAX), None),
            ),
            ("_HLS_skip=YES", ok(None, None, Some(Skip::Yes))),
            ("_HLS_skip=v2", ok(None, None, Some(Skip::V2))),
            (
                "_HLS_msn=5&_HLS_part=1&_HLS_skip=YES",
                ok(Some(5), Some(1), Some(Skip::Yes)),
            ),
            // Unknown parameters, other _HLS_ names, wrong case: ignored.
            ("token=abc&_HLS_msn=4&x", ok(Some(4), None, None)),
            ("_HLS_pathway=CDN-A&_HLS_msn=4", ok(Some(4), None, None)),
            ("_hls_msn=4&_HLS_MSN=5", ok(None, None, None)),
            ("_HLS_msnx=4", ok(None, None, None)),
            ("&&_HLS_msn=4&&", ok(Some(4), None, None)),
            // Percent-encoding.
            ("%5FHLS_msn=%31%32", ok(Some(12), None, None)),
            ("%5fHLS%5fmsn=3", ok(Some(3), None, None)),
            ("_HLS_skip=v%32", ok(None, None, Some(Skip::V2))),
            ("bad%zz=1&_HLS_msn=2", ok(Some(2), None, None)),
            ("_HLS_msn=%3", Err(E::BadEncoding(D::Msn))),
            ("_HLS_msn=%zz", Err(E::BadEncoding(D::Msn))),
            ("_HLS_skip=%", Err(E::BadEncoding(D::Skip))),
            // Values.
            ("_HLS_msn", Err(E::Empty(D::Msn))),
            ("_HLS_msn=", Err(E::Empty(D::Msn))),
            ("_HLS_msn=-1", Err(E::NotDecimal(D::Msn))),
            ("_HLS_msn=+1", Err(E::NotDecimal(D::Msn))),
            ("_HLS_msn=%2B1", Err(E::NotDecimal(D::Msn))),
            ("_HLS_msn=1%20", Err(E::NotDecimal(D::Msn))),
            ("_HLS_msn= 1", Err(E::NotDecimal(D::Msn))),
            ("_HLS_msn=1.0", Err(E::NotDecimal(D::Msn))),
            ("_HLS_msn=0x10", Err(E::NotDecimal(D::Msn))),
            ("_HLS_msn=1=2", Err(E::NotDecimal(D::Msn))),
            ("_HLS_msn=\u{0661}", Err(E::NotDecimal(D::Msn))),
            ("_HLS_msn=18446744073709551616", Err(E::OutOfRange(D::Msn))),
            (
                "_HLS_msn=1&_HLS_part=4294967296",
                Err(E::OutOfRange(D::Part)),
            ),
            ("_HLS_msn=1&_HLS_part=", Err(E::Empty(D::Part))),
            ("_HLS_msn=1&_HLS_part=a", Err(E::NotDecimal(D::Part))),
            ("_HLS_skip=yes", Err(E::BadSkip)),
            ("_HLS_skip=V2", Err(E::BadSkip)),
            ("_HLS_skip=", Err(E::Empty(D::Skip))),
            // Combinations.
            ("_HLS_part=1", Err(E::PartWithoutMsn)),
            ("_HLS_part=1&_HLS_skip=YES", Err(E::PartWithoutMsn)),
            ("_HLS_msn=1&_HLS_msn=1", Err(E::Duplicate(D::Msn))),
            ("_HLS_msn=1&%5FHLS_msn=2", Err(E::Duplicate(D::Msn))),
            (
                "_HLS_msn=1&_HLS_part=1&_HLS_part=2",
                Err(E::Duplicate(D::Part)),
            ),
            ("_HLS_skip=YES&_HLS_skip=v2", Err(E::Duplicate(D::Skip))),
            // Several problems: the fixed check order decides.
            ("_HLS_part=x&_HLS_msn=y", Err(E::NotDecimal(D::Msn))),
            ("_HLS_skip=no&_HLS_part=1", Err(E::BadSkip)),
            (
                "_HLS_msn=y&_HLS_skip=YES&_HLS_skip=YES",
                Err(E::Duplicate(D::Skip)),
            ),
        ];
        for (query, want) in table {
            assert_eq!(&parse(query), want, "{query:?}");
        }
    }

    #[test]
    fn messages_name_the_parameter_not_the_value() {
        let table = [
            ("_HLS_msn=<script>", "_HLS_msn must be a decimal integer"),
            ("_HLS_part=1", "_HLS_part requires _HLS_msn"),
            ("_HLS_msn=1&_HLS_msn=2", "_HLS_msn appears more than once"),
            (
                "_HLS_msn=1&_HLS_part=99999999999",
                "_HLS_part is out of range",
            ),
            ("_HLS_skip=maybe", "_HLS_skip must be YES or v2"),
            ("_HLS_msn=", "_HLS_msn has no value"),
            ("_HLS_msn=%G0", "_HLS_msn has invalid percent-encoding"),
        ];
        for (query, want) in table {
            let err = parse(query).expect_err(query);
            assert_eq!(err.to_string(), want);
        }
    }

    fn param() -> impl Strategy<Value = String> {
        prop_oneof![
            (0_u64..30).prop_map(|n| format!("_HLS_msn={n}")),
            (0_u32..10).prop_map(|n| format!("_HLS_part={n}")),
            Just("_HLS_skip=YES".to_owned()),
            Just("_HLS_skip=v2".to_owned()),
            Just("_HLS_msn=x".to_owned()),
            Just("_HLS_part=-1".to_owned()),
            Just("%5FHLS_part=2".to_owned()),
            Just("token=abc".to_owned()),
            Just("_HLS_pathway=A".to_owned()),
            Just(String::new()),
        ]
    }

    proptest! {
        /// Directive order must not change the answer (rfc8216bis §6.3.2 has
        /// clients sort them, but caches key on whatever arrives).
        #[test]
        fn order_does_not_matter(
            params in proptest::collection::vec(param(), 0..6),
            perm in any::<proptest::sample::Index>(),
        ) {
            let forward = parse(&params.join("&"));
            let mut rotated = params.clone();
            if !rotated.is_empty() {
                let k = perm.index(rotated.len());
                rotated.rotate_left(k);
            }
            let mut reversed = params.clone();
            reversed.reverse();
            prop_assert_eq!(&forward, &parse(&rotated.join("&")));
            prop_assert_eq!(&forward, &parse(&reversed.join("&")));
        }

        /// Whatever parses, re-encoded canonically, parses to the same value.
        #[test]
        fn parsed_values_round_trip(query in "[_HLSmsnpartkiYESv2%0-9A-F=&]{0,40}") {
            if let Ok(d) = parse(&query) {
                let mut parts = Vec::new();
                if let Some(m) = d.msn { parts.push(format!("_HLS_msn={m}")); }
                if let Some(p) = d.part { parts.push(format!("_HLS_part={p}")); }
                match d.skip {
                    Some(Skip::Yes) => parts.push("_HLS_skip=YES".to_owned()),
                    Some(Skip::V2) => parts.push("_HLS_skip=v2".to_owned()),
                    None => {}
                }
                prop_assert_eq!(parse(&parts.join("&")), Ok(d));
            }
        }

        /// Never panics, on any input.
        #[test]
        fn total(query in "\\PC{0,64}") {
            let _ = parse(&query);
        }
    }
}
