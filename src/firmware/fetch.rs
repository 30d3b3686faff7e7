//! Downloads over HTTPS (plain HTTP only to loopback), following redirects, with timeouts,
//! retries with backoff on transient failures, resumption of partial downloads with Range
//! requests, and hashing while streaming.

use crate::firmware::digest::Sha256Digest;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub connect_timeout: Duration,
    /// Longest wait for any single read (or for the response headers).
    pub read_timeout: Duration,
    /// Attempts after the first one, for transient failures only.
    pub retries: u32,
    /// Refuse bodies larger than this.
    pub max_bytes: u64,
    /// No new attempt starts after this much time in all.
    pub total: Duration,
}

/// A finished download, in memory, with its SHA-256 computed as it streamed.
pub struct Downloaded {
    pub bytes: Vec<u8>,
    pub sha256: Sha256Digest,
}

/// Refuses anything but `https://`, and `http://` to a loopback address.
pub fn check_url(url: &reqwest::Url) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                Some(url::Host::Domain(d)) => d == "localhost",
                None => false,
            };
            if loopback {
                Ok(())
            } else {
                bail!("refusing plain http:// to {url}: firmware is fetched over https only (http is allowed to loopback addresses, for local testing)")
            }
        }
        s => bail!("refusing {url}: unsupported scheme '{s}' (use https)"),
    }
}

/// Why an attempt failed, and whether another one may help.
enum Failure {
    Transient(anyhow::Error),
    Fatal(anyhow::Error),
}

fn client(opts: &FetchOptions) -> Result<reqwest::blocking::Client> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() >= 10 {
            attempt.error("more than 10 redirects")
        } else if let Err(e) = check_url(attempt.url()) {
            attempt.error(e.to_string())
        } else {
            attempt.follow()
        }
    });
    reqwest::blocking::Client::builder()
        .user_agent(concat!("pi-burn/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.read_timeout)
        .redirect(policy)
        .build()
        .context("setting up the HTTP client")
}

/// Holds an exclusive lock on a file for as long as it lives (concurrent runs take turns on the
/// cache's downloads). The lock goes with the descriptor; the file itself stays (one per cache:
/// removing a lock file others may hold open would let two runs in at once).
pub struct Lock(#[allow(dead_code)] File);

impl Lock {
    pub fn take(path: &Path) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        // Never through a link (a lock file planted as one would create or truncate its target).
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("opening lock {}", path.display()))?;
        // flock(2), as std implements File::lock on Linux: blocks until the lock is ours.
        f.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(Lock(f))
    }
}

/// Downloads `url`, resuming from `partial` (kept between attempts and runs until complete).
/// The caller holds the cache's lock.
pub fn download(
    url: &str,
    partial: &Path,
    opts: &FetchOptions,
    progress: &dyn Progress,
) -> Result<Downloaded> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("'{url}' is not a URL"))?;
    check_url(&parsed)?;
    let dir = partial
        .parent()
        .context("partial path without a directory")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let client = client(opts)?;
    let host = parsed.host_str().unwrap_or("the server").to_string();
    let started = std::time::Instant::now();
    let mut attempt = 0u32;
    loop {
        // Say what is being waited on: an unresponsive host is otherwise silence.
        progress.phase(&format!(
            "connecting to {host} (attempt {} of {}; up to {} s per wait, {} s in all)",
            attempt + 1,
            opts.retries + 1,
            opts.connect_timeout.as_secs(),
            opts.total.as_secs()
        ));
        let tries = |n: u32| format!("{n} attempt{}", if n == 1 { "" } else { "s" });
        match try_once(&client, url, partial, opts, progress) {
            Ok(d) => {
                let _ = fs::remove_file(partial);
                return Ok(d);
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Transient(e)) if attempt < opts.retries => {
                let wait = Duration::from_millis(500 << attempt.min(5));
                if started.elapsed() + wait >= opts.total {
                    return Err(e.context(format!(
                        "downloading {url}: gave up after {} and {:.0} s (--max-time {})",
                        tries(attempt + 1),
                        started.elapsed().as_secs_f64(),
                        opts.total.as_secs()
                    )));
                }
                progress.notice(&format!("{e:#}; retrying in {:.1} s", wait.as_secs_f64()));
                std::thread::sleep(wait);
                attempt += 1;
            }
            Err(Failure::Transient(e)) => {
                return Err(e.context(format!(
                    "downloading {url}: gave up after {}",
                    tries(attempt + 1)
                )));
            }
        }
    }
}

/// A host name that does not resolve: retrying will not help (no network, or a typo).
fn is_dns(e: &reqwest::Error) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if [
            "dns error",
            "failed to lookup address",
            "Name or service not known",
            "No address associated with hostname",
            "Temporary failure in name resolution",
        ]
        .iter()
        .any(|n| text.contains(n))
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The innermost cause of a send error: the words a user can act on.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Classifies a failed request; the URL is named once, by the caller.
fn send_failure(e: reqwest::Error, url: &str) -> Failure {
    if is_dns(&e) {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| url.to_string());
        return Failure::Fatal(anyhow::anyhow!(
            "downloading {url}: cannot resolve {host} ({}): is this machine offline?",
            root_cause(&e)
        ));
    }
    let e = e.without_url();
    if e.is_redirect() {
        Failure::Fatal(anyhow::Error::new(e).context(format!("downloading {url}")))
    } else if transient(&e) {
        Failure::Transient(anyhow::Error::new(e))
    } else {
        Failure::Fatal(anyhow::Error::new(e).context(format!("downloading {url}")))
    }
}

fn transient(e: &reqwest::Error) -> bool {
    e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() || e.is_decode()
}

/// Whether the answer continues the `have` bytes already downloaded (206 with a
/// Content-Range from there), starts over (200), or is a failure.
fn resumes(
    resp: &reqwest::blocking::Response,
    url: &str,
    have: u64,
    partial: &Path,
) -> std::result::Result<bool, Failure> {
    let status = resp.status();
    let final_url = resp.url().to_string();
    match status.as_u16() {
        206 if have > 0 => {
            // Only a range that continues the partial download is appended; a server that
            // answers 206 with something else (the whole body, another offset) starts over.
            let continues = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.trim().parse::<u64>().ok())
                == Some(have);
            if !continues {
                let _ = fs::remove_file(partial);
                return Err(Failure::Transient(anyhow::anyhow!(
                    "{url}: the server's Content-Range does not continue the {have} bytes already here; starting again"
                )));
            }
            Ok(true)
        }
        200 => Ok(false),
        416 => {
            // The partial is no prefix of what the server has: start again.
            let _ = fs::remove_file(partial);
            Err(Failure::Transient(anyhow::anyhow!(
                "{url}: the server refused to resume; starting again"
            )))
        }
        s if (500..600).contains(&s) || s == 429 || s == 408 => {
            Err(Failure::Transient(anyhow::anyhow!("{url}: HTTP {status}")))
        }
        _ => Err(Failure::Fatal(anyhow::anyhow!(
            "{url}: HTTP {status}{}",
            if final_url != url {
                format!(" (from {final_url})")
            } else {
                String::new()
            }
        ))),
    }
}

fn try_once(
    client: &reqwest::blocking::Client,
    url: &str,
    partial: &Path,
    opts: &FetchOptions,
    progress: &dyn Progress,
) -> std::result::Result<Downloaded, Failure> {
    let fatal = |e: anyhow::Error| Failure::Fatal(e);
    // What an earlier attempt left (a partial larger than the limit is no download of ours).
    let mut bytes = crate::util::read_limited(partial, opts.max_bytes, "a partial download")
        .unwrap_or_else(|_| {
            let _ = fs::remove_file(partial);
            vec![]
        });
    let mut req = client.get(url);
    if !bytes.is_empty() {
        req = req.header(reqwest::header::RANGE, format!("bytes={}-", bytes.len()));
    }
    let mut resp = match req.send() {
        Ok(r) => r,
        Err(e) => return Err(send_failure(e, url)),
    };
    let append = resumes(&resp, url, bytes.len() as u64, partial)?;
    if !append {
        bytes.clear();
    }
    let expected_total = resp.content_length().map(|n| n + bytes.len() as u64);
    if let Some(t) = expected_total {
        if t > opts.max_bytes {
            return Err(fatal(anyhow::anyhow!(
                "{url} is {t} bytes, more than the limit of {}",
                opts.max_bytes
            )));
        }
    }
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(partial)
        .map_err(|e| {
            fatal(anyhow::Error::new(e).context(format!("opening {}", partial.display())))
        })?;
    let mut hasher = Sha256::new();
    hasher.update(&bytes);
    progress.start("downloading", expected_total.unwrap_or(0));
    progress.advance(bytes.len() as u64);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match resp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                progress.finish();
                let _ = file.sync_all();
                return Err(Failure::Transient(anyhow::Error::new(e).context(format!(
                    "reading {url} (kept {} bytes to resume from)",
                    bytes.len()
                ))));
            }
        };
        file.write_all(&buf[..n]).map_err(|e| {
            fatal(anyhow::Error::new(e).context(format!("writing {}", partial.display())))
        })?;
        hasher.update(&buf[..n]);
        bytes.extend_from_slice(&buf[..n]);
        progress.advance(n as u64);
        if bytes.len() as u64 > opts.max_bytes {
            progress.finish();
            drop(file);
            let _ = fs::remove_file(partial);
            return Err(fatal(anyhow::anyhow!(
                "{url} sends more than the limit of {} bytes",
                opts.max_bytes
            )));
        }
    }
    progress.finish();
    if let Some(t) = expected_total {
        if (bytes.len() as u64) < t {
            return Err(Failure::Transient(anyhow::anyhow!(
                "{url}: the connection closed after {} of {t} bytes",
                bytes.len()
            )));
        }
    }
    Ok(Downloaded {
        sha256: Sha256Digest::from_hasher(hasher),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        let ok = [
            "https://github.com/x.zip",
            "http://127.0.0.1:8080/x",
            "http://[::1]/x",
            "http://localhost/x",
            "http://127.1.2.3/x",
        ];
        for u in ok {
            check_url(&reqwest::Url::parse(u).unwrap()).unwrap();
        }
        let bad = [
            "http://github.com/x.zip",
            "http://10.0.0.1/x",
            "ftp://127.0.0.1/x",
            "file:///etc/passwd",
        ];
        for u in bad {
            assert!(check_url(&reqwest::Url::parse(u).unwrap()).is_err(), "{u}");
        }
    }
}
