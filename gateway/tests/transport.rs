//! HTTPS: the origin over TLS, HTTP/2 and HTTP/1.1 chosen by ALPN, checked
//! with curl against a self-signed certificate made by openssl (and h2c on
//! the plain port); and the startup errors for unusable certificate files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::gateway::{BASE_CONFIG, Gateway};
use support::peers::publish_av;

const LIVE: Duration = Duration::from_secs(30);

/// A self-signed P-256 certificate for localhost / 127.0.0.1: (cert, key).
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("running openssl");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

fn https_config(cert: &Path, key: &Path) -> String {
    format!(
        "{BASE_CONFIG}\n[http]\nhttps_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    )
}

/// What curl saw: the HTTP version it spoke, the status, the body.
struct Fetched {
    version: String,
    status: u16,
    body: String,
}

fn curl(version_flag: &str, url: &str) -> Fetched {
    let out = Command::new("curl")
        .args(["-sS", "-k", "--max-time", "20", version_flag])
        .args(["-w", "\n%{http_version} %{http_code}"])
        .arg(url)
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {version_flag} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, trailer) = text.rsplit_once('\n').unwrap();
    let (version, status) = trailer.split_once(' ').unwrap();
    Fetched {
        version: version.to_owned(),
        status: status.parse().unwrap(),
        body: body.to_owned(),
    }
}

#[test]
fn https_and_h2c_serve_the_origin_over_http2_and_http11() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "localhost");
    let gw = Gateway::start(&https_config(&cert, &key));
    let https = gw.https.expect("the ready line lists https=");
    assert!(https.ip().is_loopback() && https.port() != 0);
    let _publisher = publish_av(gw.srt, "publish:tls", "");
    gw.wait_live("tls", LIVE);

    // HTTPS negotiates by ALPN; the plain port takes HTTP/2 with prior knowledge (h2c).
    for (flag, version, base) in [
        ("--http2", "2", format!("https://{https}/tls")),
        ("--http1.1", "1.1", format!("https://{https}/tls")),
        (
            "--http2-prior-knowledge",
            "2",
            format!("http://{}/tls", gw.http),
        ),
    ] {
        let multivariant = curl(flag, &format!("{base}/index.m3u8"));
        assert_eq!(
            (multivariant.version.as_str(), multivariant.status),
            (version, 200),
            "{flag}: {}",
            multivariant.body
        );
        assert!(
            multivariant.body.contains("#EXT-X-STREAM-INF:"),
            "{}",
            multivariant.body
        );

        // A blocking reload for the part after the newest one: answered once
        // that part exists, and the playlist then lists it.
        let (msn, parts) = gw.playlist("tls").unwrap().progress();
        let blocking = curl(
            flag,
            &format!("{base}/main/playlist.m3u8?_HLS_msn={msn}&_HLS_part={parts}"),
        );
        assert_eq!(
            (blocking.version.as_str(), blocking.status),
            (version, 200),
            "{flag}: {}",
            blocking.body
        );
        let answered = support::playlist::MediaPlaylist::parse(&blocking.body).unwrap();
        assert!(
            answered.progress() > (msn, parts),
            "{flag}: asked for {msn}.{parts}, got {:?}:\n{}",
            answered.progress(),
            blocking.body
        );
    }
}

#[test]
fn https_stays_off_unless_configured() {
    let gw = Gateway::start(BASE_CONFIG);
    assert_eq!(gw.https, None);
}

/// `dropline serve` with `config`; it must exit, not print a ready line.
fn refused_start(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropline.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dropline"))
        .args(["serve", "--srt-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("running dropline");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "started anyway: {stdout}");
    assert!(!stdout.contains("dropline ready"), "{stdout}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unusable_certificate_files_stop_startup_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path(), "one");
    let (_, other_key) = self_signed(dir.path(), "two");
    let missing = dir.path().join("missing.crt");

    let err = refused_start(&https_config(&missing, &key));
    assert!(
        err.contains("TLS certificate file") && err.contains("missing.crt"),
        "{err}"
    );
    let err = refused_start(&https_config(&key, &key));
    assert!(
        err.contains("TLS certificate file") && err.contains("no items found"),
        "{err}"
    );
    let err = refused_start(&https_config(&cert, &cert));
    assert!(
        err.contains("TLS key file") && err.contains("one.crt"),
        "{err}"
    );
    // A key that does not belong to the certificate.
    let err = refused_start(&https_config(&cert, &other_key));
    assert!(
        err.contains("TLS certificate") && err.contains("two.key"),
        "{err}"
    );
    // Half a configuration is refused too.
    let err = refused_start(&format!(
        "{BASE_CONFIG}\n[http]\nhttps_listen = \"127.0.0.1:0\"\n"
    ));
    assert!(err.contains("http.https_listen"), "{err}");
}
