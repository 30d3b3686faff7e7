//! Choosing and verifying the firmware: a zip is accepted only when it matches a pin, either the
//! manifest's (SHA-256 of the zip and/or the Nix NAR hash of its tree) or the user's `--sha256`.

pub mod cache;
pub mod configtxt;
pub mod digest;
pub mod fetch;
pub mod fileset;
pub mod manifest;
pub mod nar;
pub mod start4;
pub mod uefivars;
pub mod unpack;

pub use crate::error::HashMismatch;
use crate::firmware::digest::Sha256Digest;
use crate::firmware::fileset::FileSet;
use crate::firmware::manifest::{Board, Manifest, Release};
use crate::firmware::nar::nar_sha256;
use crate::firmware::unpack::unpack_zip;
use anyhow::{bail, Result};

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Request {
    pub board: String,
    /// `None`: identify the zip among the board's pinned releases.
    pub version: Option<String>,
    /// The user's own pin of the zip file.
    pub sha256: Option<Sha256Digest>,
    pub max_unpacked: u64,
}

/// Which pin a firmware matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKind {
    /// SHA-256 of the zip, from the manifest.
    Sha256,
    /// Nix NAR hash of the unpacked tree, from the manifest.
    NarSha256,
    /// SHA-256 of the zip, given with `--sha256`.
    UserSha256,
}

/// A verified, unpacked firmware release.
#[derive(Debug, Clone)]
pub struct Firmware {
    pub board: String,
    /// The manifest version, or `custom-<first 12 hex digits of the zip's hash>`.
    pub version: String,
    /// Release date (y, m, d), if known.
    pub date: Option<(u16, u8, u8)>,
    pub files: FileSet,
    pub zip_sha256: Sha256Digest,
    pub nar_sha256: Sha256Digest,
    pub verified_by: Vec<HashKind>,
    /// The build of its start4.elf, when it has one with build strings.
    pub start4: Option<start4::Build>,
    /// Where the zip came from.
    pub source: Source,
}

/// Where a verified zip came from (for reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Local,
    Cache,
    Network,
}

impl std::fmt::Display for HashKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HashKind::Sha256 => "the manifest's sha256 of the zip",
            HashKind::NarSha256 => "the manifest's NAR hash",
            HashKind::UserSha256 => "your --sha256",
        })
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Local => "a local zip",
            Source::Cache => "the cache",
            Source::Network => "the network",
        })
    }
}

impl Firmware {
    /// The strongest pin that matched, for reports.
    pub fn hash(&self) -> (HashKind, String) {
        let kind = self.verified_by[0];
        let value = match kind {
            HashKind::NarSha256 => self.nar_sha256.sri(),
            _ => self.zip_sha256.hex(),
        };
        (kind, value)
    }
}

/// Checks a release's pins against computed hashes: the kinds that matched, or the mismatches.
fn check_pins(
    r: &Release,
    zip: &Sha256Digest,
    nar: &Sha256Digest,
) -> Result<std::result::Result<Vec<HashKind>, Vec<String>>> {
    let pins = r.pins()?;
    let mut ok = vec![];
    let mut bad = vec![];
    if let Some(p) = pins.zip {
        if &p == zip {
            ok.push(HashKind::Sha256);
        } else {
            bad.push(format!("sha256 of the zip: expected {p}, computed {zip}"));
        }
    }
    if let Some(p) = pins.nar {
        if &p == nar {
            ok.push(HashKind::NarSha256);
        } else {
            bad.push(format!(
                "NAR hash of the unpacked tree: expected {}, computed {}",
                p.sri(),
                nar.sri()
            ));
        }
    }
    Ok(if bad.is_empty() && !ok.is_empty() {
        Ok(ok)
    } else {
        Err(bad)
    })
}

/// Verifies and unpacks `zip` (its bytes) for `req`. `origin` names the zip in messages;
/// `known_sha` is the zip's SHA-256 when it was computed while downloading.
pub fn verify_zip(
    manifest: &Manifest,
    req: &Request,
    zip: &[u8],
    origin: &str,
    known_sha: Option<Sha256Digest>,
    source: Source,
) -> Result<Firmware> {
    let board: &Board = manifest.board(&req.board)?;
    let release = req
        .version
        .as_deref()
        .map(|v| board.release(v))
        .transpose()?;
    // A SHA-256 pin of the zip (the user's, else the named release's) is checked before a
    // byte is inflated: a wrong download is a hash mismatch, not "not a readable zip".
    let zip_pin = match (req.sha256, release) {
        (Some(user), _) => Some((user, "--sha256 expected".to_string())),
        (None, Some(r)) => r
            .pins()?
            .zip
            .map(|p| (p, format!("{} {} pins sha256", req.board, r.version))),
        (None, None) => None,
    };
    let (files, zip_sha) = if let Some((want, who)) = zip_pin {
        let zip_sha = known_sha.unwrap_or_else(|| Sha256Digest::of(zip));
        if want != zip_sha {
            return Err(HashMismatch(format!(
                "hash mismatch for {origin}: {who} {want}, computed {zip_sha}"
            ))
            .into());
        }
        (
            unpack_zip(zip, origin, req.max_unpacked, &board.required_files)?,
            zip_sha,
        )
    } else {
        // Only a NAR pin: hash the zip on the other core while this one inflates it.
        let (files, zip_sha) = std::thread::scope(|scope| {
            let hasher = scope.spawn(|| known_sha.unwrap_or_else(|| Sha256Digest::of(zip)));
            let files = unpack_zip(zip, origin, req.max_unpacked, &board.required_files);
            (files, hasher.join().expect("hashing thread"))
        });
        (files?, zip_sha)
    };
    let nar = nar_sha256(&files);
    let user_kind = req.sha256.map(|_| HashKind::UserSha256);
    let (chosen, verified_by): (Option<&Release>, Vec<HashKind>) = match release {
        Some(r) => match check_pins(r, &zip_sha, &nar)? {
            Ok(kinds) => (Some(r), kinds.into_iter().chain(user_kind).collect()),
            Err(bad) if bad.is_empty() => match user_kind {
                // The release carries no pin in the manifest: the user's pin stands in.
                Some(k) => (Some(r), vec![k]),
                None => bail!(
                    "{} {} has no pinned hash in the manifest; pin it yourself with --sha256 {zip_sha} once you trust {origin}",
                    req.board,
                    r.version
                ),
            },
            Err(bad) => {
                return Err(HashMismatch(format!(
                    "hash mismatch for {origin} as {} {}: {}",
                    req.board,
                    r.version,
                    bad.join("; ")
                ))
                .into())
            }
        },
        None => identify(board, req, &zip_sha, &nar, user_kind, origin)?,
    };
    let start4 = files.file("start4.elf").and_then(start4::build_of);
    Ok(Firmware {
        board: req.board.clone(),
        version: chosen
            .map(|r| r.version.clone())
            .unwrap_or_else(|| format!("custom-{}", &zip_sha.hex()[..12])),
        date: chosen.map(|r| r.ymd()).transpose()?.flatten(),
        files,
        zip_sha256: zip_sha,
        nar_sha256: nar,
        verified_by,
        start4,
        source,
    })
}

/// A zip named by no version: the board's pinned release it matches, the user's pin, or a
/// mismatch naming the default release's pins.
fn identify<'b>(
    board: &'b Board,
    req: &Request,
    zip_sha: &Sha256Digest,
    nar: &Sha256Digest,
    user_kind: Option<HashKind>,
    origin: &str,
) -> Result<(Option<&'b Release>, Vec<HashKind>)> {
    let mut found = None;
    for r in &board.releases {
        if let Ok(kinds) = check_pins(r, zip_sha, nar)? {
            found = Some((Some(r), kinds.into_iter().chain(user_kind).collect()));
            break;
        }
    }
    match (found, user_kind) {
        (Some(f), _) => Ok(f),
        (None, Some(k)) => Ok((None, vec![k])),
        (None, None) => {
            let d = board.default_release();
            let pins = d.pins()?;
            let expected: Vec<String> = [
                pins.zip.map(|p| format!("sha256 {p}")),
                pins.nar.map(|p| format!("NAR {}", p.sri())),
            ]
            .into_iter()
            .flatten()
            .collect();
            Err(HashMismatch(format!(
                "{origin} matches no pinned {} release: computed sha256 {zip_sha} and NAR {}; the default {} expects {}. Name the release with --firmware VERSION, or pin a custom build with --sha256",
                req.board,
                nar.sri(),
                d.version,
                expected.join(" and ")
            ))
            .into())
        }
    }
}

/// Where to get the zip from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A local file.
    Zip(std::path::PathBuf),
    /// A URL outside the manifest, pinned by the request's `sha256`.
    Url(String),
    /// The manifest's release for the request (cache, else network).
    Release,
}

/// How to reach the network, if at all.
pub struct Online<'a> {
    pub offline: bool,
    pub fetch: &'a crate::firmware::fetch::FetchOptions,
    pub cache: &'a crate::firmware::cache::Cache,
}

/// Gets, verifies and unpacks the firmware: from a local zip, the cache, or the network (then
/// cached). Nothing is cached before it verified; a cached zip is verified again before use.
pub fn obtain(
    manifest: &Manifest,
    req: &Request,
    origin: &Origin,
    net: &Online,
    progress: &dyn crate::progress::Progress,
) -> Result<Firmware> {
    use anyhow::Context;
    match origin {
        Origin::Zip(path) => {
            let name = path.display().to_string();
            let meta = std::fs::metadata(path).with_context(|| format!("reading {name}"))?;
            if !meta.is_file() {
                bail!("{name} is not a regular file");
            }
            if meta.len() > req.max_unpacked {
                bail!(
                    "{name} is larger than the --max-unpacked limit of {} bytes",
                    req.max_unpacked
                );
            }
            let zip = crate::util::read_limited(
                path,
                req.max_unpacked,
                "a firmware zip (--max-unpacked)",
            )?;
            verify_zip(manifest, req, &zip, &name, None, Source::Local)
        }
        Origin::Url(url) => {
            let parsed = reqwest::Url::parse(url)
                .with_context(|| format!("--firmware-url: '{url}' is not a URL"))?;
            crate::firmware::fetch::check_url(&parsed)?;
            let Some(sha) = req.sha256 else {
                bail!("--firmware-url needs --sha256 HEX: a release outside the manifest must be pinned");
            };
            let blob = net.cache.blob_path(&sha);
            if let Some(fw) =
                from_cache(manifest, req, blob.is_file().then_some(blob), net, progress)?
            {
                return Ok(fw);
            }
            if net.offline {
                bail!("{url} (sha256 {sha}) is not in the cache at {} and --offline forbids fetching it", net.cache.root.display());
            }
            fetch_and_store(manifest, req, url, "url", &sha.hex(), net, progress)
        }
        Origin::Release => {
            // A zip pinned by the user's own --sha256 may be in the cache as it is (a custom
            // build fetched or imported before): that one, offline too.
            if let Some(sha) = req.sha256 {
                let blob = net.cache.blob_path(&sha);
                if blob.is_file() {
                    if let Some(fw) = from_cache(manifest, req, Some(blob), net, progress)? {
                        return Ok(fw);
                    }
                }
            }
            let board = manifest.board(&req.board)?;
            let release = match &req.version {
                Some(v) => board.release(v)?,
                None => board.default_release(),
            };
            let req = Request {
                version: Some(release.version.clone()),
                ..req.clone()
            };
            let pins = release.pins()?;
            let cached = net.cache.lookup(&req.board, &release.version, pins.zip);
            if let Some(fw) = from_cache(manifest, &req, cached, net, progress)? {
                return Ok(fw);
            }
            if net.offline {
                bail!(
                    "{} {} is not in the cache at {} and --offline forbids downloading it; run `pi-burn firmware fetch --board {} --firmware {}` while online",
                    req.board, release.version, net.cache.root.display(), req.board, release.version
                );
            }
            fetch_and_store(
                manifest,
                &req,
                &release.url,
                &req.board,
                &release.version,
                net,
                progress,
            )
        }
    }
}

/// A cached zip, verified again; one that no longer verifies is evicted (and `None` returned).
fn from_cache(
    manifest: &Manifest,
    req: &Request,
    cached: Option<std::path::PathBuf>,
    net: &Online,
    progress: &dyn crate::progress::Progress,
) -> Result<Option<Firmware>> {
    let Some(path) = cached else { return Ok(None) };
    let zip =
        crate::util::read_limited(&path, req.max_unpacked, "a firmware zip (--max-unpacked)")?;
    match verify_zip(
        manifest,
        req,
        &zip,
        &path.display().to_string(),
        None,
        Source::Cache,
    ) {
        Ok(fw) => Ok(Some(fw)),
        Err(e) if net.offline => bail!(
            "cached {} is corrupt ({e:#}) and --offline forbids fetching it again",
            path.display()
        ),
        Err(e) => {
            // Left in place: a verified download replaces it atomically.
            progress.notice(&format!(
                "cached {} no longer verifies ({e:#}); fetching it again",
                path.display()
            ));
            Ok(None)
        }
    }
}

/// The cache again, after waiting for its lock: another run may just have stored the zip.
fn recheck(
    manifest: &Manifest,
    req: &Request,
    ref_board: &str,
    ref_version: &str,
    net: &Online,
) -> Result<Option<Firmware>> {
    let pin = match (req.sha256, ref_board) {
        (Some(sha), "url") => Some(sha),
        _ => manifest
            .board(&req.board)
            .ok()
            .and_then(|b| b.release(ref_version).ok())
            .and_then(|r| r.pins().ok())
            .and_then(|p| p.zip),
    };
    let cached = net.cache.lookup(ref_board, ref_version, pin);
    match cached {
        Some(path) => {
            let zip = crate::util::read_limited(&path, req.max_unpacked, "a firmware zip")?;
            // Quietly: a blob that does not verify is the one being replaced.
            Ok(verify_zip(
                manifest,
                req,
                &zip,
                &path.display().to_string(),
                None,
                Source::Cache,
            )
            .ok())
        }
        None => Ok(None),
    }
}

fn fetch_and_store(
    manifest: &Manifest,
    req: &Request,
    url: &str,
    ref_board: &str,
    ref_version: &str,
    net: &Online,
    progress: &dyn crate::progress::Progress,
) -> Result<Firmware> {
    // One download into the cache at a time; a run that waited finds what the other cached.
    let _lock = net.cache.lock()?;
    if let Some(fw) = recheck(manifest, req, ref_board, ref_version, net)? {
        return Ok(fw);
    }
    progress.phase(&format!("downloading {url}"));
    let opts = crate::firmware::fetch::FetchOptions {
        max_bytes: req.max_unpacked,
        ..net.fetch.clone()
    };
    let d = crate::firmware::fetch::download(url, &net.cache.partial_path(url), &opts, progress)
        .map_err(|e| {
            // A failed download of a release names the ways on without this network.
            if ref_board == "url" {
                return e;
            }
            crate::error::Hinted {
                inner: e,
                hint: format!("without the network: --firmware-zip FILE (the release zip, fetched elsewhere), or `pi-burn firmware fetch --board {ref_board} --firmware {ref_version}` on a machine that is online and then `pi-burn firmware fetch --firmware-zip FILE` here, or --firmware-url URL --sha256 HEX for a mirror"),
            }
            .into()
        })?;
    // Verified first; only then does it enter the cache.
    let fw = verify_zip(
        manifest,
        req,
        &d.bytes,
        url,
        Some(d.sha256),
        Source::Network,
    )?;
    net.cache
        .store(ref_board, ref_version, &d.sha256, &d.bytes)?;
    Ok(fw)
}
