//! `ADD <url>`: downloads a file the way BuildKit's HTTP source does.
//!
//! The file is named after the last segment of the URL's path (`__unnamed__` when there is
//! none, as `dockerfile2llb` names it), written `0600` and owned by root, and its mtime is the
//! response's `Last-Modified` (the Unix epoch without one). It is never unpacked unless
//! `ADD --unpack=true` asks for it. BuildKit fetches the URL on every build to learn its
//! digest; so do we, and the step's cache key is made from the downloaded content.

use sha2::{Digest as _, Sha256, Sha384, Sha512};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The name BuildKit's Dockerfile frontend gives a download whose URL path has no last segment.
const UNNAMED: &str = "__unnamed__";
/// The mode BuildKit's HTTP source gives downloaded files.
const DOWNLOAD_MODE: u32 = 0o600;

/// Whether an `ADD` source is a URL (BuildKit's `isHTTPSource`).
pub(crate) fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// The file name `ADD` gives a download: Go's `path.Base` of the URL's (unescaped) path, or
/// `__unnamed__` when the path is empty or `/`.
pub(crate) fn file_name(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let before_query = after_scheme
        .split(['?', '#'])
        .next()
        .unwrap_or(after_scheme);
    let path = before_query
        .find('/')
        .map_or("", |slash| &before_query[slash..]);
    let path = percent_decode(path);
    // `path.Base` drops trailing slashes before taking the last element.
    let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    // `..` would climb out of the download directory; BuildKit has no better name for it.
    if base.is_empty() || base == "." || base == ".." {
        UNNAMED.to_owned()
    } else {
        base.to_owned()
    }
}

/// `%XX` escapes decoded, as Go's `url.Parse` does for the path. An invalid escape is kept as
/// written: Go would refuse the URL, but the request itself will tell what is wrong with it.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An `ADD --checksum=ALGORITHM:HEX` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checksum {
    algorithm: Algorithm,
    hex: String,
}

/// A digest algorithm `--checksum` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a `--checksum` value is not a digest.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChecksumError {
    /// No `ALGORITHM:` prefix.
    #[error("invalid checksum {0:?}: expected ALGORITHM:HEX, e.g. sha256:<64 hex digits>")]
    NoAlgorithm(String),
    /// An algorithm other than sha256, sha384 and sha512.
    #[error(
        "invalid checksum {text:?}: unsupported algorithm {name:?} (use sha256, sha384 or sha512)"
    )]
    Unsupported { text: String, name: String },
    /// The hex part has the wrong length or characters.
    #[error("invalid checksum {text:?}: a {} digest is {} lowercase hex digits", algorithm.name(), algorithm.hex_len())]
    BadHex { text: String, algorithm: Algorithm },
}

impl Checksum {
    /// Parses a digest as OCI's `digest.Parse` accepts it: `sha256:`, `sha384:` or `sha512:`
    /// followed by the lowercase hex of the right length.
    pub(crate) fn parse(text: &str) -> Result<Checksum, ChecksumError> {
        let (name, hex) = text
            .split_once(':')
            .ok_or_else(|| ChecksumError::NoAlgorithm(text.to_owned()))?;
        let algorithm = match name {
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(ChecksumError::Unsupported {
                    text: text.to_owned(),
                    name: name.to_owned(),
                });
            }
        };
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ChecksumError::BadHex {
                text: text.to_owned(),
                algorithm,
            });
        }
        Ok(Checksum {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// A downloaded file, ready to be copied like a file of the build context.
#[derive(Debug, Clone)]
pub(crate) struct Download {
    /// Where it was written: `DIR/<name>`.
    pub path: PathBuf,
    /// The name it gets in the destination.
    pub name: String,
    /// The `Last-Modified` header, as sent (part of the cache key: it sets the mtime).
    pub last_modified: Option<String>,
    /// The sha256 of its content (what provenance records of it).
    pub sha256: stagecraft_image::Digest,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DownloadError {
    /// The server could not be reached or the transfer broke off.
    #[error("downloading {url}: {message}")]
    Transfer {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with an error status (BuildKit refuses anything outside 200–399).
    #[error("downloading {url}: the server answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status line's code and reason.
        status: String,
    },
    /// The content is not what `--checksum` promised.
    #[error(
        "downloading {url}: checksum mismatch: --checksum expects {expected} but the content is {actual}"
    )]
    Checksum {
        /// The URL.
        url: String,
        /// The `--checksum` value.
        expected: String,
        /// The digest of what was downloaded, in the same algorithm.
        actual: String,
    },
    /// Writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Downloads `url` into `dir` (which must exist and hold no file of the same name), with
/// BuildKit's mode and mtime, checking `checksum` when given.
pub(crate) fn download(
    url: &str,
    dir: &Path,
    checksum: Option<&Checksum>,
) -> Result<Download, DownloadError> {
    let transfer = |message: String| DownloadError::Transfer {
        url: url.to_owned(),
        message,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        // Statuses are checked below, to report them as BuildKit's range check decides.
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .build()
        .into();
    let response = agent.get(url).call().map_err(|e| transfer(e.to_string()))?;
    let status = response.status();
    if !(200..400).contains(&status.as_u16()) {
        return Err(DownloadError::Status {
            url: url.to_owned(),
            status: status.to_string(),
        });
    }
    let last_modified = response
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let name = file_name(url);
    let path = dir.join(&name);
    let io_error = |source| DownloadError::Io {
        path: path.clone(),
        source,
    };
    let mut file = fs::File::create(&path).map_err(io_error)?;
    let mut reader = response.into_body().into_reader();
    let mut sha256 = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(transfer(e.to_string())),
        };
        sha256.update(&buffer[..read]);
        file.write_all(&buffer[..read]).map_err(io_error)?;
    }
    drop(file);
    let sha256 = stagecraft_image::Digest::from_hex(&hex::encode(sha256.finalize()))
        .expect("a sha256 is 64 hex digits");
    if let Some(expected) = checksum {
        let actual = match expected.algorithm {
            Algorithm::Sha256 => sha256.to_string(),
            Algorithm::Sha384 => format!("sha384:{}", hash_file::<Sha384>(&path)?),
            Algorithm::Sha512 => format!("sha512:{}", hash_file::<Sha512>(&path)?),
        };
        if actual != expected.to_string() {
            return Err(DownloadError::Checksum {
                url: url.to_owned(),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    // `OpenFile(…, 0600)` in BuildKit; set explicitly so the umask cannot change it.
    fs::set_permissions(&path, fs::Permissions::from_mode(DOWNLOAD_MODE)).map_err(io_error)?;
    let mtime = last_modified
        .as_deref()
        .and_then(parse_http_date)
        .unwrap_or(0);
    let time = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        &path,
        &rustix::fs::Timestamps {
            last_access: time,
            last_modification: time,
        },
        rustix::fs::AtFlags::empty(),
    )
    .map_err(|e| io_error(e.into()))?;
    Ok(Download {
        path,
        name,
        last_modified,
        sha256,
    })
}

fn hash_file<H: sha2::Digest>(path: &Path) -> Result<String, DownloadError> {
    let mut file = fs::File::open(path).map_err(|source| DownloadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut hasher = H::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer).map_err(|source| DownloadError::Io {
            path: path.to_owned(),
            source,
        })?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Seconds since the epoch of an HTTP date, in the three formats Go's `http.ParseTime`
/// accepts: `Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT` and
/// `Sun Nov  6 08:49:37 1994`.
fn parse_http_date(text: &str) -> Option<i64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let (day, month, year, clock) = match words.as_slice() {
        // RFC 1123: `Sun, 06 Nov 1994 08:49:37 GMT`.
        [_, day, month, year, clock, "GMT"] => (*day, *month, year.parse::<i64>().ok()?, *clock),
        // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT` (Go reads a two-digit year as 1969–2068).
        [_, date, clock, "GMT"] => {
            let mut parts = date.split('-');
            let (day, month, year) = (parts.next()?, parts.next()?, parts.next()?);
            let year: i64 = year.parse().ok()?;
            let year = if year >= 69 { 1900 + year } else { 2000 + year };
            (day, month, year, *clock)
        }
        // ANSI C: `Sun Nov  6 08:49:37 1994`.
        [_, month, day, clock, year] => (*day, *month, year.parse::<i64>().ok()?, *clock),
        _ => return None,
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let mut hms = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_last_path_segment() {
        assert_eq!(
            file_name("https://example.com/a/b/tool.tar.gz"),
            "tool.tar.gz"
        );
        assert_eq!(file_name("https://example.com/a/dir/"), "dir");
        assert_eq!(file_name("https://example.com/x?name=y#z"), "x");
        assert_eq!(file_name("https://example.com/my%20file"), "my file");
        assert_eq!(file_name("https://example.com/"), UNNAMED);
        assert_eq!(file_name("https://example.com"), UNNAMED);
        assert_eq!(file_name("http://example.com/?a=b"), UNNAMED);
        assert_eq!(file_name("http://example.com/a/.."), UNNAMED);
    }

    #[test]
    fn checksums_parse_like_oci_digests() {
        let hex = "a".repeat(64);
        let checksum = Checksum::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(checksum.to_string(), format!("sha256:{hex}"));
        assert!(Checksum::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        assert!(
            Checksum::parse(&hex)
                .unwrap_err()
                .to_string()
                .contains("ALGORITHM:HEX")
        );
        assert!(
            Checksum::parse("md5:abc")
                .unwrap_err()
                .to_string()
                .contains("unsupported")
        );
        assert!(
            Checksum::parse("sha256:ABC")
                .unwrap_err()
                .to_string()
                .contains("64")
        );
    }

    #[test]
    fn http_dates_in_all_three_formats() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
