//! `pi-burn firmware list|fetch|verify`.

use super::{Global, Outcome};
use crate::cli::{ExportArgs, FirmwareCommand, SettingsArgs};
use crate::error::usage;
use crate::error::Mismatch;
use crate::firmware::cache::Cache;
use crate::firmware::manifest::Manifest;
use crate::firmware::{verify_zip, Source};
use crate::job::target::ReadTarget;
use crate::job::{customise, FirmwareJob};
use anyhow::{bail, Context, Result};
use serde::Serialize;

#[derive(Serialize)]
struct ReleaseRow {
    board: String,
    version: String,
    date: Option<String>,
    default: bool,
    sha256: Option<String>,
    nar_sha256: Option<String>,
    pinned: bool,
    cached: Option<String>,
    url: String,
    /// Where the pinned hashes were taken from.
    hash_source: Option<String>,
    /// Why it does not boot from a microSD card, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_on_sd: Option<String>,
}

pub fn run(cmd: &FirmwareCommand, g: &Global) -> Result<Outcome> {
    match cmd {
        FirmwareCommand::List { manifest } => list(manifest.as_deref()),
        FirmwareCommand::Fetch(a) => {
            let fw = FirmwareJob::from_args(&a.firmware)?.obtain(g.progress())?;
            if let Some(path) = &a.firmware.firmware_zip {
                // A zip fetched by hand enters the cache once it verified, so that later runs
                // work --offline. Read again and compared with the hash that verified.
                let bytes =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let sha = crate::firmware::digest::Sha256Digest::of(&bytes);
                if sha != fw.zip_sha256 {
                    anyhow::bail!("{} changed while it was being verified", path.display());
                }
                Cache::from_env()?.store(&fw.board, &fw.version, &sha, &bytes)?;
            }
            let (kind, hash) = fw.hash();
            let cached_at = Cache::from_env()?.blob_path(&fw.zip_sha256);
            Ok(Outcome::of(&serde_json::json!({
                "board": fw.board, "version": fw.version, "source": fw.source,
                "hash_kind": kind, "hash": hash, "zip_sha256": fw.zip_sha256.hex(),
                "nar_sha256": fw.nar_sha256.sri(),
                "cached_at": cached_at.display().to_string(),
            }))?
            .line(format!(
                "{} {}: {} at {} (sha256 {}, NAR {})",
                fw.board,
                fw.version,
                match fw.source {
                    Source::Cache => "already in the cache",
                    Source::Local => "verified and imported into the cache",
                    Source::Network => "downloaded, verified and cached",
                },
                cached_at.display(),
                fw.zip_sha256,
                fw.nar_sha256.sri()
            )))
        }
        FirmwareCommand::Settings(a) => settings(a),
        FirmwareCommand::Export(a) => export(a, g),
        FirmwareCommand::Verify { path, pin } => {
            let (manifest, req) = crate::job::firmware::request(pin)?;
            let zip = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let name = path.display().to_string();
            match verify_zip(&manifest, &req, &zip, &name, None, Source::Local) {
                Ok(fw) => {
                    let (kind, hash) = fw.hash();
                    Ok(Outcome::of(&serde_json::json!({
                        "path": name, "ok": true, "board": fw.board, "version": fw.version,
                        "hash_kind": kind, "hash": hash, "zip_sha256": fw.zip_sha256.hex(),
                        "nar_sha256": fw.nar_sha256.sri(), "files": fw.files.file_count(),
                        "bytes": fw.files.payload_bytes(),
                    }))?
                    .line(format!(
                            "{name}: OK: {} {} ({kind} matched)\n  sha256 {}\n  NAR    {}\n  {} files, {} bytes",
                            fw.board,
                            fw.version,
                            fw.zip_sha256,
                            fw.nar_sha256.sri(),
                            fw.files.file_count(),
                            fw.files.payload_bytes()
                        )))
                }
                // Only a wrong hash is a mismatch (exit 3); an unreadable zip is an error.
                Err(e) if e.downcast_ref::<crate::firmware::HashMismatch>().is_some() => {
                    let line = format!("{e:#}");
                    Ok(Outcome::of(
                        &serde_json::json!({ "path": name, "ok": false, "mismatches": [line] }),
                    )?
                    .problems([format!("{name}: {line}")])
                    .ending(Err(Mismatch(vec![line]).into())))
                }
                Err(e) => Err(e),
            }
        }
    }
}

fn list(manifest: Option<&std::path::Path>) -> Result<Outcome> {
    let m = Manifest::load(manifest)?;
    let cache = Cache::from_env()?;
    let mut rows = vec![];
    for (name, board) in &m.boards {
        for r in &board.releases {
            let pins = r.pins()?;
            rows.push(ReleaseRow {
                board: name.clone(),
                version: r.version.clone(),
                date: r.date.clone(),
                default: r.version == board.default,
                sha256: pins.zip.map(|p| p.hex()),
                nar_sha256: pins.nar.map(|p| p.sri()),
                pinned: pins.is_pinned(),
                cached: cache
                    .lookup(name, &r.version, pins.zip)
                    .map(|p| p.display().to_string()),
                url: r.url.clone(),
                hash_source: r.hash_source.clone(),
                not_on_sd: r.not_on_sd.clone(),
            });
        }
    }
    // Cached zips the manifest does not pin as a release: custom builds, mirrors' zips.
    let custom: Vec<serde_json::Value> = cache
        .refs()
        .into_iter()
        .filter(|(b, v, _, blob)| {
            blob.is_some() && !rows.iter().any(|r| &r.board == b && &r.version == v)
        })
        .map(|(b, v, sha, blob)| {
            serde_json::json!({
                "board": b, "version": v, "sha256": sha.hex(),
                "cached": blob.map(|p| p.display().to_string()),
            })
        })
        .collect();
    let mut lines = vec![];
    macro_rules! say {
        ($($t:tt)*) => { lines.push(format!($($t)*)) };
    }
    say!("cache: {}", cache.root.display());
    for (n, b) in &m.boards {
        say!("board {n}: {}", b.description);
    }
    say!(
        "{:<6} {:<8} {:<10} {:<8} {:<7} default",
        "board",
        "version",
        "date",
        "pinned",
        "cached"
    );
    for r in &rows {
        let pinned = match (&r.sha256, &r.nar_sha256) {
            (Some(_), Some(_)) => "zip+nar",
            (Some(_), None) => "zip",
            (None, Some(_)) => "nar",
            (None, None) => "-",
        };
        say!(
            "{:<6} {:<8} {:<10} {:<8} {:<7} {}{}",
            r.board,
            r.version,
            r.date.as_deref().unwrap_or("?"),
            pinned,
            if r.cached.is_some() { "yes" } else { "no" },
            if r.default { "*" } else { "" },
            r.not_on_sd
                .as_deref()
                .map(|w| format!("  not on SD cards: {w}"))
                .unwrap_or_default()
        );
    }
    if !custom.is_empty() {
        say!("cached builds the manifest does not pin (use them with --sha256 HEX):");
        for c in &custom {
            say!(
                "  {:<6} {:<20} sha256 {}",
                c["board"].as_str().unwrap_or(""),
                c["version"].as_str().unwrap_or(""),
                c["sha256"].as_str().unwrap_or("")
            );
        }
    }
    Ok(Outcome::of(&serde_json::json!({
        "custom": custom,
        "cache": cache.root.display().to_string(),
        "boards": m.boards.iter().map(|(n, b)| (n.clone(), b.description.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        "releases": rows,
    }))?
    .lines(lines))
}

/// The largest RPI_EFI.fd read (the real ones are 2 or 4 MiB).
const MAX_FD: u64 = 64 << 20;

/// The RPI_EFI.fd to list: a firmware file, or the one on a card or in a card image; and the
/// board a card's record names.
fn fd_of(a: &SettingsArgs) -> Result<(String, Vec<u8>, Option<String>)> {
    use std::os::unix::fs::FileTypeExt;
    let card = match (&a.file, &a.image) {
        (Some(f), None) => std::fs::metadata(f)
            .with_context(|| format!("opening {}", f.display()))?
            .file_type()
            .is_block_device(),
        _ => true,
    };
    if let (false, Some(file)) = (card, &a.file) {
        let name = file.display().to_string();
        let fd = crate::util::read_limited(file, MAX_FD, "a firmware file (RPI_EFI.fd)")?;
        return Ok((name, fd, None));
    }
    let mut t = ReadTarget::open(
        a.file.as_deref().filter(|_| a.image.is_none()),
        a.image.as_deref(),
    )?;
    const FD: &str = "RPI_EFI.fd";
    let (size, path) = (t.size(), t.path().to_string());
    use crate::disk::cardread::{read_one, OneFile};
    let OneFile::File(fd) = read_one(&mut t.file, size, FD, MAX_FD, &path)? else {
        bail!("{path}: partition 1 has no /{FD} of at most 64 MiB");
    };
    let board = match crate::media::identify(&mut t.file, size) {
        crate::media::Identity::Card(r) => Some(r.board),
        _ => None,
    };
    Ok((format!("{path}:/{FD}"), fd, board))
}

fn settings(a: &SettingsArgs) -> Result<Outcome> {
    use crate::firmware::uefivars::{find_store, listing, read_vars};
    let (name, fd, card_board) = fd_of(a)?;
    // Which firmware's settings: --board, else the card record's board, else the Pi 4's.
    let board = a
        .board
        .clone()
        .or(card_board)
        .unwrap_or_else(|| "rpi4".into());
    let defs = crate::firmware::uefivars::settings::table(&board)?;
    let store = find_store(&fd, &name)?;
    let (vars, free) = read_vars(&fd, &store, &name)?;
    let known = listing(&vars, defs);
    let mut lines = vec![];
    macro_rules! say {
        ($($t:tt)*) => { lines.push(format!($($t)*)) };
    }
    say!(
        "{name}: variable store at 0x{:x} ({} bytes, {} free), firmware volume at 0x{:x}",
        store.store_offset,
        store.store_size,
        store.store_offset + store.store_size - free,
        store.fv_offset
    );
    say!("{:<26} {:<22} {:<10} vendor", "setting", "value", "width");
    for k in &known {
        let value = match (&k.value, &k.problem) {
            (Some(v), None) => v.to_string(),
            (Some(v), Some(p)) => format!("{v} ({p})"),
            (None, Some(p)) => format!("(default {}; {p})", k.default),
            (None, None) => format!("(default {})", k.default),
        };
        say!("{:<26} {value:<22} {:<10} {}", k.name, k.width, k.guid);
    }
    let others: Vec<_> = vars
        .iter()
        .filter(|v| {
            !known
                .iter()
                .any(|k| k.name == v.name && k.guid == v.guid.to_string().to_uppercase())
                || !v.live
        })
        .collect();
    if !others.is_empty() {
        say!("all other records:");
    }
    for v in others {
        let value = match v.data.len() {
            1 => format!("{}", v.data[0]),
            4 => format!("{}", u32::from_le_bytes(v.data[..4].try_into().unwrap())),
            n if n <= 16 => v
                .data
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            n => format!("({n} bytes)"),
        };
        say!(
            "{:<8} {:<24} {} attr 0x{:x} = {value}",
            if v.live {
                "live"
            } else if v.state & 0x02 == 0 {
                "deleted"
            } else {
                "partial"
            },
            v.name,
            v.guid.to_string().to_uppercase(),
            v.attributes
        );
    }
    Ok(Outcome::of(&serde_json::json!({ "file": name, "board": board, "store": store, "free_bytes": store.store_offset + store.store_size - free, "settings": known, "variables": vars }))?
        .lines(lines))
}

/// `firmware export --dir DIR`: the verified tree, customised, for a TFTP server. Written into
/// a staging directory beside DIR and moved into place, so DIR is whole or absent.
fn export(a: &ExportArgs, g: &Global) -> Result<Outcome> {
    use crate::firmware::fileset::Node;
    use std::os::unix::fs::PermissionsExt;
    let dir = &a.dir;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(usage(format!(
                    "--dir {}: the directory is not empty (pi-burn exports into a new or empty directory)",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("--dir {}", dir.display())),
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!(usage(format!(
            "--dir {}: {} is not a directory",
            dir.display(),
            parent.display()
        )));
    }
    let firmware = FirmwareJob::from_args(&a.firmware)?;
    let custom = crate::job::custom::custom(
        &a.custom,
        firmware.board(),
        a.node.as_deref().map(|n| (a.flake.as_path(), n)),
    )?;
    let mut fw = firmware.obtain(g.progress())?;
    let done = customise(&mut fw, &custom, g.progress())?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let staged = crate::write::image::StagedDir::create(
        &parent.join(format!(".{name}.pi-burn-{}.tmp", std::process::id())),
    )?;
    let mut bytes = 0;
    for (path, node) in fw.files.iter() {
        let p = staged.path().join(path);
        match node {
            Node::Dir => {
                std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?
            }
            Node::File { data, executable } => {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d)
                        .with_context(|| format!("creating {}", d.display()))?;
                }
                std::fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
                let mode = if *executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
                bytes += data.len() as u64;
            }
        }
    }
    // An empty DIR is replaced; a DIR that was filled meanwhile is not.
    staged.commit(dir, None)?;
    Ok(Outcome::of(&serde_json::json!({
        "dir": dir.display().to_string(), "board": fw.board, "version": fw.version,
        "zip_sha256": fw.zip_sha256.hex(), "nar_sha256": fw.nar_sha256.sri(),
        "files": fw.files.file_count(), "bytes": bytes,
        "uefi_settings": done.uefi, "config_txt": done.config_txt,
    }))?
    .line(format!(
        "{}: firmware {} {} ({} files, {}), {} UEFI setting{}, {} config.txt edit{}",
        dir.display(),
        fw.board,
        fw.version,
        fw.files.file_count(),
        crate::util::units::human(bytes),
        done.uefi.len(),
        if done.uefi.len() == 1 { "" } else { "s" },
        done.config_txt.len(),
        if done.config_txt.len() == 1 { "" } else { "s" }
    )))
}
