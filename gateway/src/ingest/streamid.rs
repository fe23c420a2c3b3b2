//! SRT stream ids that name what a caller wants to do.
//!
//! Two spellings are accepted:
//! - `publish:NAME` — the convention of MediaMTX and most encoder presets;
//! - `#!::r=NAME,m=publish` — the SRT Access Control syntax (SRT's
//!   `AccessControl.md`: keys `r` resource, `m` mode, `u` user, `s` session).
//!
//! A backup uplink adds `role=backup` (`role=primary` is the default):
//! `publish:NAME?role=backup` or `#!::r=NAME,m=publish,role=backup`. Both are
//! plain text that any encoder's stream id field takes; in an ffmpeg or
//! srt-live-transmit URL the first needs no escaping
//! (`srt://HOST:9000?streamid=publish:NAME?role=backup&latency=…`), the
//! second needs `#` written as `%23`.

use crate::stream::uplink::Role;
use crate::stream::valid_name;

/// What a publisher asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct PublishRequest {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, PartialEq, Eq)]
pub enum StreamIdError {
    Missing,
    NotPublish(String),
    BadName(String),
    Malformed(String),
    BadRole(String),
}

impl std::fmt::Display for StreamIdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => write!(f, "no stream id: use streamid=publish:NAME"),
            Self::NotPublish(m) => {
                write!(
                    f,
                    "mode {m:?} is not supported: only publishing (publish:NAME)"
                )
            }
            Self::BadName(n) => write!(f, "stream name {n:?} is not 1-64 of [A-Za-z0-9_-]"),
            Self::Malformed(s) => write!(
                f,
                "stream id {s:?} is neither publish:NAME nor #!::r=NAME,m=publish"
            ),
            Self::BadRole(r) => write!(f, "role {r:?} is neither primary nor backup"),
        }
    }
}

impl std::error::Error for StreamIdError {}

/// Returns the stream name and role a publisher asks for.
pub fn parse_publish(stream_id: Option<&str>) -> Result<PublishRequest, StreamIdError> {
    let sid = stream_id.ok_or(StreamIdError::Missing)?;
    let mut role = None;
    let name = if let Some(rest) = sid.strip_prefix("#!::") {
        let mut resource = None;
        let mut mode = None;
        for kv in rest.split(',') {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(StreamIdError::Malformed(sid.to_owned()));
            };
            match k {
                "r" => resource = Some(v),
                "m" => mode = Some(v),
                "role" => role = Some(v),
                _ => {} // u, s, t, h and custom keys carry nothing we use
            }
        }
        match mode {
            Some("publish") => {}
            Some(m) => return Err(StreamIdError::NotPublish(m.to_owned())),
            // AccessControl.md: the default mode is "request" (reading).
            None => return Err(StreamIdError::NotPublish("request".to_owned())),
        }
        resource.ok_or_else(|| StreamIdError::Malformed(sid.to_owned()))?
    } else if let Some((mode, name)) = sid.split_once(':') {
        if mode != "publish" {
            return Err(StreamIdError::NotPublish(mode.to_owned()));
        }
        match name.split_once('?') {
            Some((name, query)) => {
                // Only `role` is defined; anything else is a typo to report.
                role = Some(
                    query
                        .strip_prefix("role=")
                        .ok_or_else(|| StreamIdError::Malformed(sid.to_owned()))?,
                );
                name
            }
            None => name,
        }
    } else if sid.is_empty() {
        return Err(StreamIdError::Missing);
    } else {
        return Err(StreamIdError::Malformed(sid.to_owned()));
    };
    if !valid_name(name) {
        return Err(StreamIdError::BadName(name.to_owned()));
    }
    let role = match role {
        None | Some("primary") => Role::Primary,
        Some("backup") => Role::Backup,
        Some(r) => return Err(StreamIdError::BadRole(r.to_owned())),
    };
    Ok(PublishRequest {
        name: name.to_owned(),
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let ok = |s: &str| parse_publish(Some(s)).unwrap().name;
        assert_eq!(ok("publish:show"), "show");
        assert_eq!(ok("publish:Pop-Up_2"), "Pop-Up_2");
        assert_eq!(ok("#!::r=show,m=publish"), "show");
        assert_eq!(ok("#!::m=publish,u=crew,r=show"), "show");
        let err = |s: Option<&str>| parse_publish(s).unwrap_err();
        assert_eq!(err(None), StreamIdError::Missing);
        assert_eq!(err(Some("")), StreamIdError::Missing);
        assert_eq!(
            err(Some("read:show")),
            StreamIdError::NotPublish("read".into())
        );
        assert_eq!(
            err(Some("#!::r=show")),
            StreamIdError::NotPublish("request".into())
        );
        assert!(matches!(err(Some("publish:")), StreamIdError::BadName(_)));
        assert!(matches!(
            err(Some("publish:a/b")),
            StreamIdError::BadName(_)
        ));
        assert!(matches!(
            err(Some("publish:../x")),
            StreamIdError::BadName(_)
        ));
        assert!(matches!(err(Some("show")), StreamIdError::Malformed(_)));
        assert!(matches!(err(Some("#!::r")), StreamIdError::Malformed(_)));
        assert!(matches!(
            err(Some("#!::m=publish")),
            StreamIdError::Malformed(_)
        ));
        let role = |s: &str| parse_publish(Some(s)).map(|r| (r.name, r.role));
        assert_eq!(role("publish:show"), Ok(("show".into(), Role::Primary)));
        assert_eq!(
            role("publish:show?role=backup"),
            Ok(("show".into(), Role::Backup))
        );
        assert_eq!(
            role("publish:show?role=primary"),
            Ok(("show".into(), Role::Primary))
        );
        assert_eq!(
            role("#!::r=show,m=publish,role=backup"),
            Ok(("show".into(), Role::Backup))
        );
        assert_eq!(
            err(Some("publish:show?role=spare")),
            StreamIdError::BadRole("spare".into())
        );
        assert_eq!(
            err(Some("#!::r=show,m=publish,role=")),
            StreamIdError::BadRole(String::new())
        );
        assert!(matches!(
            err(Some("publish:show?rol=backup")),
            StreamIdError::Malformed(_)
        ));
        assert!(matches!(
            err(Some("publish:show?role=backup?x")),
            StreamIdError::BadRole(_)
        ));
        let long = format!("publish:{}", "a".repeat(65));
        assert!(matches!(err(Some(&long)), StreamIdError::BadName(_)));
    }
}
