//! `pi-burn firmware list|fetch|verify`.

use super::{load_firmware, request, Global};
use crate::cli::FirmwareCommand;
use crate::disk::verify::Mismatch;
use crate::firmware::cache::Cache;
use crate::firmware::manifest::Manifest;
use crate::firmware::{verify_zip, Source};
use anyhow::{Context, Result};
use serde::Serialize;

#[derive(Serialize)]
struct ReleaseRow {
    board: String,
    version: String,
    date: String,
    default: bool,
    sha256: Option<String>,
    nar_sha256: Option<String>,
    pinned: bool,
    cached: Option<String>,
    gpt_boot_warning: bool,
    url: String,
}

pub fn run(cmd: &FirmwareCommand, g: &Global) -> Result<()> {
    match cmd {
        FirmwareCommand::List { manifest } => list(manifest.as_deref(), g),
        FirmwareCommand::Fetch(a) => {
            let fw = load_firmware(&a.firmware, g)?;
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
            if g.json {
                let (kind, hash) = fw.hash();
                let j = serde_json::json!({
                    "board": fw.board, "version": fw.version, "source": fw.source,
                    "hash_kind": kind, "hash": hash, "zip_sha256": fw.zip_sha256.hex(),
                    "nar_sha256": fw.nar_sha256.sri(),
                    "cached_at": Cache::from_env()?.blob_path(&fw.zip_sha256).display().to_string(),
                });
                println!("{}", serde_json::to_string_pretty(&j)?);
            } else if !g.quiet {
                println!(
                    "{} {}: {} (sha256 {}, NAR {})",
                    fw.board,
                    fw.version,
                    match fw.source {
                        Source::Cache => "already in the cache",
                        Source::Local => "verified and imported into the cache",
                        Source::Network => "downloaded, verified and cached",
                    },
                    fw.zip_sha256,
                    fw.nar_sha256.sri()
                );
            }
            Ok(())
        }
        FirmwareCommand::Settings { file } => settings(file, g),
        FirmwareCommand::Verify { path, firmware } => {
            let manifest = Manifest::load(firmware.manifest.as_deref())?;
            let req = request(firmware)?;
            let zip = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let name = path.display().to_string();
            match verify_zip(&manifest, &req, &zip, &name, None, Source::Local) {
                Ok(fw) => {
                    let (kind, hash) = fw.hash();
                    if g.json {
                        let j = serde_json::json!({
                            "path": name, "board": fw.board, "version": fw.version,
                            "hash_kind": kind, "hash": hash, "zip_sha256": fw.zip_sha256.hex(),
                            "nar_sha256": fw.nar_sha256.sri(), "files": fw.files.file_count(),
                            "bytes": fw.files.payload_bytes(),
                        });
                        println!("{}", serde_json::to_string_pretty(&j)?);
                    } else {
                        println!(
                            "{name}: OK: {} {} ({kind} matched)\n  sha256 {}\n  NAR    {}\n  {} files, {} bytes",
                            fw.board,
                            fw.version,
                            fw.zip_sha256,
                            fw.nar_sha256.sri(),
                            fw.files.file_count(),
                            fw.files.payload_bytes()
                        );
                    }
                    Ok(())
                }
                // Only a wrong hash is a mismatch (exit 3); an unreadable zip is an error.
                Err(e) if e.downcast_ref::<crate::firmware::HashMismatch>().is_some() => {
                    let line = format!("{e:#}");
                    println!("{name}: {line}");
                    Err(Mismatch(vec![line]).into())
                }
                Err(e) => Err(e),
            }
        }
    }
}

fn list(manifest: Option<&std::path::Path>, g: &Global) -> Result<()> {
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
                gpt_boot_warning: r.gpt_boot_warning,
                url: r.url.clone(),
            });
        }
    }
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "cache": cache.root.display().to_string(), "releases": rows })
            )?
        );
        return Ok(());
    }
    println!("cache: {}", cache.root.display());
    println!(
        "{:<6} {:<8} {:<10} {:<8} {:<7} {:<7} notes",
        "board", "version", "date", "pinned", "cached", "default"
    );
    for r in rows {
        let pinned = match (&r.sha256, &r.nar_sha256) {
            (Some(_), Some(_)) => "zip+nar",
            (Some(_), None) => "zip",
            (None, Some(_)) => "nar",
            (None, None) => "-",
        };
        println!(
            "{:<6} {:<8} {:<10} {:<8} {:<7} {:<7} {}",
            r.board,
            r.version,
            r.date,
            pinned,
            if r.cached.is_some() { "yes" } else { "no" },
            if r.default { "*" } else { "" },
            if r.gpt_boot_warning {
                "start4.elf predates the EEPROM 2025-02-11 GPT fix"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn settings(file: &std::path::Path, g: &Global) -> Result<()> {
    use crate::firmware::uefivars::{find_store, read_vars};
    let name = file.display().to_string();
    let fd = std::fs::read(file).with_context(|| format!("reading {name}"))?;
    let store = find_store(&fd, &name)?;
    let (vars, free) = read_vars(&fd, &store, &name)?;
    if g.json {
        let j = serde_json::json!({ "file": name, "store": store, "free_bytes": store.store_offset + store.store_size - free, "variables": vars });
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    println!(
        "{name}: variable store at 0x{:x} ({} bytes, {} free), firmware volume at 0x{:x}",
        store.store_offset,
        store.store_size,
        store.store_offset + store.store_size - free,
        store.fv_offset
    );
    for v in &vars {
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
        println!(
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
    Ok(())
}
