//! What a card's record says of its firmware, checked beyond the card: the release against
//! the manifest's pins and, when the release's zip is in the cache, every file against what the
//! release with the recorded settings and edits gives. What nothing checked is named.

use crate::disk::cardcheck::CardCheck;
use crate::firmware::cache::Cache;
use crate::firmware::digest::Sha256Digest;
use crate::firmware::manifest::Manifest;
use crate::firmware::{verify_zip, Request, Source};
use crate::progress::Progress;
use crate::util::text::printable;

/// The record's release against the manifest's pins of it.
fn check_pins(
    c: &mut CardCheck,
    manifest: &Manifest,
    release: Option<&crate::firmware::manifest::Release>,
    zip: &Sha256Digest,
) {
    let r = c.record.clone();
    let (board, version) = (printable(&r.board), printable(&r.firmware.version));
    match release.map(|rel| rel.pins()) {
        Some(Ok(pins)) => {
            if pins.zip.is_some_and(|p| &p != zip) {
                c.problems.push(format!(
                    "the record says {board} {version} with zip sha256 {}, but the manifest pins {}",
                    zip,
                    pins.zip.map(|p| p.hex()).unwrap_or_default()
                ));
            }
            if pins.nar.is_some_and(|p| p.sri() != r.firmware.nar_sha256) {
                c.problems.push(format!(
                    "the record says {board} {version} with NAR {}, but the manifest pins {}",
                    printable(&r.firmware.nar_sha256),
                    pins.nar.map(|p| p.sri()).unwrap_or_default()
                ));
            }
        }
        Some(Err(_)) => {}
        None if r.firmware.version == format!("custom-{}", &zip.hex()[..12]) => {}
        None => c.unchecked.push(format!(
            "that {board} {version} is a release (the manifest checked against does not list it{})",
            made_with(&r, manifest)
        )),
    }
}

/// "; the card was made with manifest NAME (sha256 ...): give it with --manifest PATH", when
/// its record names a manifest other than the built-in one and other than the one given.
fn made_with(r: &crate::disk::record::CardRecord, manifest: &Manifest) -> String {
    r.manifest
        .as_ref()
        .filter(|m| !matches!(&manifest.source, Some((_, sha)) if *sha == m.sha256))
        .map(|m| {
            format!(
                "; the card was made with the manifest {} (sha256 {}): give it with --manifest PATH",
                printable(&m.name),
                printable(&m.sha256)
            )
        })
        .unwrap_or_default()
}

/// The manifest the record names against the one given: whether it is that one.
fn check_manifest(c: &mut CardCheck, manifest: &Manifest) {
    let Some(m) = c.record.manifest.clone() else {
        return;
    };
    match &manifest.source {
        Some((_, sha)) if *sha == m.sha256 => {}
        Some((path, sha)) => c.unchecked.push(format!(
            "the release's pins as the card was made: it was made with the manifest {} (sha256 {}), not {path} (sha256 {sha})",
            printable(&m.name),
            printable(&m.sha256)
        )),
        None => {}
    }
}

/// The record's zip hash and release, after the release is checked against `manifest`'s pins;
/// None (a problem said) when the record's hash is no SHA-256.
fn record_zip<'m>(
    c: &mut CardCheck,
    manifest: &'m Manifest,
) -> Option<(Sha256Digest, Option<&'m crate::firmware::manifest::Release>)> {
    let r = c.record.clone();
    let release = manifest
        .board(&r.board)
        .ok()
        .and_then(|b| b.release(&r.firmware.version).ok());
    let Ok(zip) = Sha256Digest::from_hex(&r.firmware.zip_sha256) else {
        c.problems
            .push("the record's zip sha256 is not a SHA-256".into());
        return None;
    };
    check_manifest(c, manifest);
    check_pins(c, manifest, release, &zip);
    Some((zip, release))
}

/// The record's firmware claims: its release against `manifest`, its files against the
/// release's when the zip is in the cache. Adds to the check's problems and unchecked claims.
pub fn check_firmware(c: &mut CardCheck, manifest: &Manifest, progress: &dyn Progress) {
    let Some((zip, release)) = record_zip(c, manifest) else {
        return;
    };
    let r = c.record.clone();
    let (board, version) = (printable(&r.board), printable(&r.firmware.version));
    let blob = Cache::from_env().ok().map(|cache| cache.blob_path(&zip));
    let Some(zip_bytes) = blob
        .filter(|b| b.is_file())
        .and_then(|b| crate::util::read_limited(&b, 256 << 20, "a cached zip").ok())
    else {
        let with = match (&r.manifest, &manifest.source) {
            (None, _) => String::new(),
            (Some(_), Some((path, _))) => format!(" --manifest {}", printable(path)),
            (Some(_), None) => " --manifest PATH".to_string(),
        };
        // A release the manifest names by version; any other by its zip's hash.
        let which = match release {
            Some(_) => format!("--firmware {version}"),
            None => format!("--sha256 {}", zip.hex()),
        };
        c.unchecked.push(format!(
            "that the files are {board} {version}'s (its zip is not in the cache: `pi-burn firmware fetch --board {board} {which}{with}` puts it there, with --firmware-zip ZIP for a zip you have; then inspect checks them{})",
            made_with(&r, manifest)
        ));
        return;
    };
    let req = Request {
        board: r.board.clone(),
        version: release.map(|rel| rel.version.clone()),
        sha256: Some(zip),
        max_unpacked: 256 << 20,
    };
    let fw = verify_zip(
        manifest,
        &req,
        &zip_bytes,
        "the cached zip",
        Some(zip),
        Source::Cache,
    );
    match fw {
        Ok(fw) => against_release(c, fw, "the cached zip", progress),
        Err(e) => c.unchecked.push(format!(
            "that the files are {board} {version}'s (the cached zip does not verify: {e:#})"
        )),
    }
}

/// The record's firmware claims against a firmware the user named (`verify --firmware ...` on
/// a card with a record): the release against the manifest's pins, and every file against
/// what the named firmware with the recorded settings and edits gives.
pub fn check_named_firmware(
    c: &mut CardCheck,
    manifest: &Manifest,
    fw: crate::firmware::Firmware,
    progress: &dyn Progress,
) {
    if record_zip(c, manifest).is_some() {
        against_release(c, fw, "the firmware named", progress);
    }
}

/// Every file the record lists against what `fw` (a verified release, `whence`) with the
/// recorded settings and edits gives; the record's NAR against `fw`'s.
fn against_release(
    c: &mut CardCheck,
    mut fw: crate::firmware::Firmware,
    whence: &str,
    progress: &dyn Progress,
) {
    let r = c.record.clone();
    let (board, version) = (printable(&fw.board), printable(&fw.version));
    if fw.board != r.board || fw.nar_sha256.sri() != r.firmware.nar_sha256 {
        c.problems.push(format!(
            "the record says {} {} (NAR {}); {whence} is {board} {version} (NAR {})",
            printable(&r.board),
            printable(&r.firmware.version),
            printable(&r.firmware.nar_sha256),
            fw.nar_sha256.sri()
        ));
    }
    let custom = match super::custom::from_record(&c.record, "the record") {
        Ok(custom) => custom,
        Err(e) => {
            c.problems.push(format!("{e:#}"));
            return;
        }
    };
    let quiet = crate::progress::Silent { notices: false };
    if let Err(e) = crate::job::customise(&mut fw, &custom, &quiet) {
        c.problems.push(format!(
            "the recorded settings do not apply to {board} {version}: {e:#}"
        ));
        return;
    }
    let mut differ = 0;
    for (path, data) in fw.files.files() {
        let recorded = r.files.iter().find(|f| f.path == path);
        if recorded.is_none_or(|f| f.sha256 != Sha256Digest::of(data).hex()) {
            differ += 1;
            c.problems.push(format!(
                "/{}: not what {board} {version} with the recorded settings and edits gives",
                printable(path)
            ));
        }
    }
    for f in r.files.iter().filter(|f| fw.files.file(&f.path).is_none()) {
        differ += 1;
        c.problems.push(format!(
            "/{}: in the record, but not in {board} {version}",
            printable(&f.path)
        ));
    }
    if differ == 0 {
        progress.phase(&format!(
            "every file checked against {board} {version} ({whence}), with the recorded settings and edits"
        ));
        c.files_from = Some(format!("{board} {version} ({whence})"));
    }
}
