//! Validators and conditional GET, so that caches (browsers, nginx
//! `proxy_cache_revalidate`, CDNs) revalidate with a `304 Not Modified`
//! instead of fetching the body again.
//!
//! - Init segments, parts and segments never change under their name within
//!   one incarnation of a stream (rfc8216bis §6.2.1), so their strong ETag is
//!   that identity: no bytes are hashed per request.
//! - Playlists change with every part; their ETag is a hash of the rendered
//!   body, weak because the same body may be sent gzip-compressed or not.
//!   They carry no `Last-Modified`: HTTP dates have one-second resolution and
//!   a playlist changes several times a second, so `If-Modified-Since` could
//!   not tell its versions apart.

use std::fmt::Display;
use std::hash::{DefaultHasher, Hasher};
use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::Bytes;
use packager::units::WallTime;

use super::hls::Answer;

/// What a response says about its version.
#[derive(Clone)]
pub(super) struct Validators {
    etag: String,
    last_modified: Option<SystemTime>,
}

impl Validators {
    /// An object that is immutable under its name within stream incarnation
    /// `incarnation`: a strong ETag.
    pub(super) fn immutable(incarnation: WallTime, rendition: &str, object: impl Display) -> Self {
        Self {
            etag: format!("\"{:x}-{rendition}/{object}\"", incarnation.0),
            last_modified: None,
        }
    }

    /// A rendered playlist: a weak ETag of its text.
    pub(super) fn playlist(body: &[u8]) -> Self {
        let mut h = DefaultHasher::new();
        h.write(body);
        Self {
            etag: format!("W/\"{:016x}\"", h.finish()),
            last_modified: None,
        }
    }

    /// RFC 9110 §8.8.2.1: "An origin server with a clock MUST NOT generate a
    /// Last-Modified date that is later than the server's time of message
    /// origination".
    pub(super) fn last_modified(mut self, at: SystemTime) -> Self {
        self.last_modified = Some(at.min(SystemTime::now()));
        self
    }

    /// Adds the validators to `res` (a 200 response) and, when the request's
    /// preconditions say the client already holds this version, turns it into
    /// a 304 that keeps the headers a cache needs to refresh its copy.
    pub(super) fn apply(self, req: &HeaderMap, mut res: Answer) -> Answer {
        let last_modified = self.last_modified.map(httpdate::fmt_http_date);
        let current = self.is_current(req);
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.etag) {
            h.insert(header::ETAG, v);
        }
        if let Some(v) = last_modified.and_then(|d| HeaderValue::from_str(&d).ok()) {
            h.insert(header::LAST_MODIFIED, v);
        }
        if !current {
            return res;
        }
        // RFC 9110 §15.4.5: a 304 carries the Cache-Control, ETag and Vary
        // that a 200 would have, and no representation body.
        let mut not_modified = Answer::new(Bytes::new());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        for name in [
            header::CACHE_CONTROL,
            header::ETAG,
            header::LAST_MODIFIED,
            header::VARY,
        ] {
            if let Some(v) = res.headers().get(&name) {
                not_modified.headers_mut().insert(name, v.clone());
            }
        }
        not_modified
    }

    /// RFC 9110 §13.2.2: If-None-Match is evaluated first and, when present,
    /// If-Modified-Since is ignored (§13.1.3: "A recipient MUST ignore
    /// If-Modified-Since if the request contains an If-None-Match header
    /// field").
    fn is_current(&self, req: &HeaderMap) -> bool {
        let mut if_none_match = req.get_all(header::IF_NONE_MATCH).iter().peekable();
        if if_none_match.peek().is_some() {
            // §13.1.2: "A recipient MUST use the weak comparison function when
            // comparing entity tags for If-None-Match".
            let ours = opaque(&self.etag);
            return if_none_match
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .any(|tag| tag == "*" || opaque(tag) == ours);
        }
        let (Some(modified), Some(since)) = (
            self.last_modified,
            req.get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok()),
        ) else {
            return false;
        };
        // Whole seconds, as sent in Last-Modified.
        httpdate::parse_http_date(&httpdate::fmt_http_date(modified))
            .is_ok_and(|modified| modified <= since)
    }
}

/// The opaque tag of an entity tag: weak comparison ignores `W/`.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn req(headers: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in headers {
            h.append(n, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_lists() {
        let v = Validators::immutable(WallTime(0xabc), "main", "part7.m4s");
        assert_eq!(v.etag, "\"abc-main/part7.m4s\"");
        assert!(v.is_current(&req(&[(header::IF_NONE_MATCH, "\"abc-main/part7.m4s\"")])));
        assert!(v.is_current(&req(&[(header::IF_NONE_MATCH, "W/\"abc-main/part7.m4s\"")])));
        assert!(v.is_current(&req(&[(
            header::IF_NONE_MATCH,
            "\"x\", \"abc-main/part7.m4s\""
        )])));
        assert!(v.is_current(&req(&[
            (header::IF_NONE_MATCH, "\"x\""),
            (header::IF_NONE_MATCH, "\"abc-main/part7.m4s\"")
        ])));
        assert!(v.is_current(&req(&[(header::IF_NONE_MATCH, "*")])));
        assert!(!v.is_current(&req(&[(header::IF_NONE_MATCH, "\"abc-main/part8.m4s\"")])));
        assert!(!v.is_current(&req(&[])));
    }

    #[test]
    fn playlist_etags_follow_the_text() {
        let a = Validators::playlist(b"#EXTM3U\n#EXT-X-PART:...\n");
        assert!(a.etag.starts_with("W/\""), "{}", a.etag);
        assert_eq!(
            a.etag,
            Validators::playlist(b"#EXTM3U\n#EXT-X-PART:...\n").etag
        );
        assert_ne!(a.etag, Validators::playlist(b"#EXTM3U\n").etag);
    }

    #[test]
    fn if_modified_since_only_without_if_none_match() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_700);
        let v = Validators::immutable(WallTime(1), "main", "seg1.m4s").last_modified(t);
        let same_second = httpdate::fmt_http_date(t);
        let earlier = httpdate::fmt_http_date(t - Duration::from_secs(1));
        assert!(v.is_current(&req(&[(header::IF_MODIFIED_SINCE, &same_second)])));
        assert!(!v.is_current(&req(&[(header::IF_MODIFIED_SINCE, &earlier)])));
        assert!(!v.is_current(&req(&[(header::IF_MODIFIED_SINCE, "yesterday")])));
        assert!(!v.is_current(&req(&[
            (header::IF_NONE_MATCH, "\"other\""),
            (header::IF_MODIFIED_SINCE, &same_second)
        ])));
    }
}
