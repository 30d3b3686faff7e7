//! A firmware zip, unpacked into memory, refusing anything that cannot land safely on FAT.

use crate::firmware::fileset::FileSet;
use anyhow::{bail, Context, Result};
use std::io::{Cursor, Read};

/// Default cap on the total uncompressed size of an archive (a zip-bomb guard).
pub const DEFAULT_MAX_UNPACKED: u64 = 256 * 1024 * 1024;

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;

/// Unpacks `zip` (its bytes), refusing unsafe or unstorable names, links and other special
/// entries, FAT name collisions, more than `max_unpacked` bytes in all, and a missing `required`
/// file. `origin` names the archive in errors.
pub fn unpack_zip(
    zip: &[u8],
    origin: &str,
    max_unpacked: u64,
    required: &[String],
) -> Result<FileSet> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip))
        .with_context(|| format!("{origin} is not a readable zip archive"))?;
    // The zip crate keeps one of two entries with the same name; `unzip -l` lists both and
    // extracting tools disagree on which wins. Refuse any name the central directory holds twice.
    let names = central_directory_names(zip)
        .with_context(|| format!("{origin} is not a readable zip archive"))?;
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        if !seen.insert(n.as_slice()) {
            bail!(
                "{origin}: the entry '{}' appears twice in its central directory",
                String::from_utf8_lossy(n).escape_debug()
            );
        }
    }
    if names.len() != archive.len() {
        bail!(
            "{origin}: its central directory lists {} entries, the zip reader sees {}",
            names.len(),
            archive.len()
        );
    }

    // First pass on the central directory: names, kinds and declared sizes, before inflating.
    let mut declared: u64 = 0;
    for i in 0..archive.len() {
        let f = archive
            .by_index_raw(i)
            .with_context(|| format!("reading entry {i} of {origin}"))?;
        let name = f
            .name()
            .with_context(|| format!("entry {i} of {origin} has an undecodable name"))?
            .to_string();
        entry_path(&name, f.is_dir(), f.is_symlink(), f.unix_mode())
            .with_context(|| format!("{origin}: refusing entry '{}'", name.escape_debug()))?;
        declared = declared.saturating_add(f.size());
        if declared > max_unpacked {
            bail!("{origin} unpacks to more than the limit of {max_unpacked} bytes (a zip bomb?); raise it with --max-unpacked if the archive is genuine");
        }
    }

    let mut set = FileSet::new();
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let mut f = archive
            .by_index(i)
            .with_context(|| format!("reading entry {i} of {origin}"))?;
        let name = f.name()?.to_string();
        let path = entry_path(&name, f.is_dir(), f.is_symlink(), f.unix_mode())?;
        if f.is_dir() {
            set.add_dir(&path)
                .with_context(|| format!("{origin}: refusing entry '{name}'"))?;
            continue;
        }
        let executable = f.unix_mode().is_some_and(|m| m & 0o100 != 0);
        let mut data = Vec::with_capacity(f.size().min(max_unpacked) as usize);
        // The declared size can lie: never inflate past the remaining budget.
        let budget = max_unpacked - total;
        (&mut f)
            .take(budget + 1)
            .read_to_end(&mut data)
            .with_context(|| format!("{origin}: inflating '{name}'"))?;
        total += data.len() as u64;
        if total > max_unpacked {
            bail!("{origin} unpacks to more than the limit of {max_unpacked} bytes (a zip bomb?); raise it with --max-unpacked if the archive is genuine");
        }
        set.add_file(&path, data, executable)
            .with_context(|| format!("{origin}: refusing entry '{name}'"))?;
    }
    set.check_fat_collisions()
        .with_context(|| format!("{origin}: refusing the archive"))?;
    for r in required {
        if set.file(r).is_none() {
            bail!("{origin} lacks the required file '{r}': is it the right board's firmware?");
        }
    }
    Ok(set)
}

fn u16_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u16::from_le_bytes(b.get(o..o.checked_add(2)?)?.try_into().ok()?) as u64)
}
fn u32_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u32::from_le_bytes(b.get(o..o.checked_add(4)?)?.try_into().ok()?) as u64)
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(o..o.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The raw names of every central-directory entry, read with checked arithmetic (ZIP64 too).
fn central_directory_names(zip: &[u8]) -> Result<Vec<Vec<u8>>> {
    const EOCD: &[u8] = &[0x50, 0x4b, 0x05, 0x06];
    let search_from = zip.len().saturating_sub(22 + 65535);
    let eocd = (search_from..zip.len().saturating_sub(21))
        .rev()
        .find(|&i| zip.get(i..i + 4) == Some(EOCD))
        .context("no end of central directory record")?;
    let bad = || anyhow::anyhow!("its central directory is damaged");
    let mut count = u16_at(zip, eocd + 10).ok_or_else(bad)?;
    let mut offset = u32_at(zip, eocd + 16).ok_or_else(bad)?;
    if count == 0xFFFF || offset == 0xFFFF_FFFF {
        // ZIP64: the locator sits right before the EOCD and points at the ZIP64 record.
        let loc = eocd.checked_sub(20).ok_or_else(bad)?;
        if zip.get(loc..loc + 4) != Some(&[0x50, 0x4b, 0x06, 0x07][..]) {
            bail!("its ZIP64 end of central directory locator is missing");
        }
        let rec = usize::try_from(u64_at(zip, loc + 8).ok_or_else(bad)?).map_err(|_| bad())?;
        if zip.get(rec..rec.checked_add(4).ok_or_else(bad)?) != Some(&[0x50, 0x4b, 0x06, 0x06][..])
        {
            bail!("its ZIP64 end of central directory record is missing");
        }
        count = u64_at(zip, rec + 32).ok_or_else(bad)?;
        offset = u64_at(zip, rec + 48).ok_or_else(bad)?;
    }
    let mut at = usize::try_from(offset).map_err(|_| bad())?;
    let mut names = Vec::new();
    for _ in 0..count {
        if zip.get(at..at.checked_add(4).ok_or_else(bad)?) != Some(&[0x50, 0x4b, 0x01, 0x02][..]) {
            return Err(bad());
        }
        let name_len = u16_at(zip, at + 28).ok_or_else(bad)? as usize;
        let extra_len = u16_at(zip, at + 30).ok_or_else(bad)? as usize;
        let comment_len = u16_at(zip, at + 32).ok_or_else(bad)? as usize;
        let name_start = at.checked_add(46).ok_or_else(bad)?;
        let name_end = name_start.checked_add(name_len).ok_or_else(bad)?;
        names.push(zip.get(name_start..name_end).ok_or_else(bad)?.to_vec());
        at = name_end
            .checked_add(extra_len)
            .and_then(|x| x.checked_add(comment_len))
            .ok_or_else(bad)?;
        if names.len() > 1 << 20 {
            bail!("its central directory lists more than a million entries");
        }
    }
    Ok(names)
}

/// The entry's path without a trailing `/`, after the safety and FAT checks.
fn entry_path(name: &str, is_dir: bool, is_symlink: bool, mode: Option<u32>) -> Result<String> {
    if is_symlink {
        bail!("it is a symbolic link");
    }
    if let Some(m) = mode {
        let kind = m & S_IFMT;
        if kind != 0 && kind != S_IFREG && kind != S_IFDIR {
            bail!("it is not a regular file or directory (mode {m:o})");
        }
    }
    let trimmed = if is_dir {
        name.trim_end_matches('/')
    } else {
        name
    };
    crate::firmware::fileset::check_path(trimmed)?;
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn unpacks_nested_files_and_keeps_exact_names() {
        let z = zip_of(&[("Readme.md", b"hi"), ("firmware/brcm/x.bin", b"\0\x01")]);
        let s = unpack_zip(&z, "t.zip", DEFAULT_MAX_UNPACKED, &["Readme.md".into()]).unwrap();
        assert_eq!(s.file("Readme.md"), Some(&b"hi"[..]));
        assert_eq!(s.file("firmware/brcm/x.bin"), Some(&b"\0\x01"[..]));
    }

    #[test]
    fn refuses_traversal_and_absolute_names() {
        for bad in ["../evil", "a/../../evil", "/abs"] {
            let z = zip_of(&[(bad, b"x")]);
            let e = format!(
                "{:#}",
                unpack_zip(&z, "t.zip", DEFAULT_MAX_UNPACKED, &[]).unwrap_err()
            );
            assert!(e.contains("t.zip") && e.contains("refusing"), "{bad}: {e}");
        }
    }

    #[test]
    fn refuses_symlinks() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.add_symlink("link", "/etc/passwd", SimpleFileOptions::default())
            .unwrap();
        let z = w.finish().unwrap().into_inner();
        let e = format!(
            "{:#}",
            unpack_zip(&z, "t.zip", DEFAULT_MAX_UNPACKED, &[]).unwrap_err()
        );
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn refuses_more_than_the_limit() {
        let z = zip_of(&[("big", &[0u8; 4096])]);
        let e = format!("{:#}", unpack_zip(&z, "t.zip", 1000, &[]).unwrap_err());
        assert!(e.contains("limit of 1000 bytes"), "{e}");
    }

    #[test]
    fn refuses_a_missing_required_file_and_fat_collisions() {
        let z = zip_of(&[("a", b"x")]);
        let e = format!(
            "{:#}",
            unpack_zip(&z, "t.zip", DEFAULT_MAX_UNPACKED, &["start4.elf".into()]).unwrap_err()
        );
        assert!(e.contains("start4.elf"), "{e}");
        let z = zip_of(&[("Readme.md", b"x"), ("README.md", b"y")]);
        let e = format!(
            "{:#}",
            unpack_zip(&z, "t.zip", DEFAULT_MAX_UNPACKED, &[]).unwrap_err()
        );
        assert!(e.contains("same name on FAT"), "{e}");
    }

    #[test]
    fn not_a_zip_is_a_clear_error() {
        let e = format!(
            "{:#}",
            unpack_zip(b"hello", "t.zip", DEFAULT_MAX_UNPACKED, &[]).unwrap_err()
        );
        assert!(e.contains("not a readable zip"), "{e}");
    }

    #[test]
    fn a_name_twice_in_the_central_directory_is_refused() {
        // Regression (issue 14): the zip crate merged them and the last copy won.
        // Build two entries whose names differ only in case, then make them equal in both the
        // local headers and the central directory.
        let z = zip_of(&[("config.txt", b"arm_64bit=1"), ("CONFIG.txt", b"x")]);
        let mut bytes = z;
        let mut i = 0;
        while let Some(p) = crate::util::find(&bytes[i..], b"CONFIG.txt") {
            let at = i + p;
            bytes[at..at + 10].copy_from_slice(b"config.txt");
            i = at + 10;
        }
        let e = format!(
            "{:#}",
            unpack_zip(&bytes, "dup.zip", DEFAULT_MAX_UNPACKED, &[]).unwrap_err()
        );
        assert!(
            e.contains("appears twice") && e.contains("config.txt"),
            "{e}"
        );
        assert_eq!(
            central_directory_names(&zip_of(&[("a", b"1"), ("b", b"2")]))
                .unwrap()
                .len(),
            2
        );
    }
}
