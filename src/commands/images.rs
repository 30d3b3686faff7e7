//! `pi-burn images --flake DIR --out DIR`: every node's SD card image and SSD image, each with
//! its block map, from the flake's hosts/ and pi-burn.toml, with one firmware download. All or
//! nothing: the set is made in a staging directory and replaces `--out` as one.

use super::{Global, Outcome};
use crate::cli::{Compress, ImagesArgs};
use crate::disk::sparse::SparseImage;
use crate::firmware::digest::Sha256Digest;
use crate::firmware::Firmware;
use crate::job::images::{ImagesJob, NodeJobs};
use crate::progress::Progress;
use crate::util::units::human;
use crate::write::{deliver, Options};
use anyhow::{Context, Result};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Serialize)]
struct Row {
    node: String,
    kind: &'static str,
    /// The file: the raw image, or with --compress its .zst.
    image: String,
    bmap: String,
    size: u64,
    bytes_written: u64,
    /// SHA-256 of the block map, which holds the SHA-256 of every mapped range (the rest of
    /// the image is zeros): equal digests, equal images.
    bmap_sha256: String,
    /// SHA-256 of `image` as written (its line in SHA256SUMS): with --compress.
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    /// Bytes of `image` (with --compress, the compressed size).
    file_size: u64,
}

/// The row of an image made in `staging` from `img`, named by where it ends up in `out`; with
/// `compress` its raw file is replaced by the .zst of `img`.
fn row(
    node: &str,
    kind: &'static str,
    (made, img): (&Path, &SparseImage),
    out: &Path,
    compress: Option<Compress>,
    written: u64,
) -> Result<Row> {
    let map = crate::disk::bmap::sidecar(made);
    let bytes = std::fs::read(&map).with_context(|| format!("reading {}", map.display()))?;
    let (file, sha256, file_size) = match compress {
        // A raw image's SHA-256 would read its every zero (2 GiB an SSD): its block map's
        // digests stand for it, and SHA256SUMS comes with --compress.
        None => (made.to_path_buf(), None, img.size()),
        Some(Compress::Zstd) => {
            let zst = made.with_file_name(format!(
                "{}.zst",
                made.file_name()
                    .context("an image has a file name")?
                    .to_string_lossy()
            ));
            let (sha, n) = write_zst(img, &zst)?;
            std::fs::remove_file(made).with_context(|| format!("removing {}", made.display()))?;
            (zst, Some(sha), n)
        }
    };
    let name = file.file_name().context("an image has a file name")?;
    Ok(Row {
        node: node.to_string(),
        kind,
        bmap: crate::disk::bmap::sidecar(&out.join(made.file_name().unwrap_or(name)))
            .display()
            .to_string(),
        image: out.join(name).display().to_string(),
        size: img.size(),
        bytes_written: written,
        bmap_sha256: Sha256Digest::of(&bytes).hex(),
        sha256: sha256.map(|s| s.hex()),
        file_size,
    })
}

/// Writes `img` as zstd to `path`: its SHA-256 and size.
fn write_zst(img: &SparseImage, path: &Path) -> Result<(Sha256Digest, u64)> {
    use sha2::{Digest, Sha256};
    struct Hashing<W>(W, Sha256);
    impl<W: Write> Write for Hashing<W> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = self.0.write(b)?;
            self.1.update(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let mut w = Hashing(std::io::BufWriter::with_capacity(1 << 20, f), Sha256::new());
    let n = crate::write::zst::write_image(img, &mut w)
        .and_then(|n| w.flush().map(|()| n))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((Sha256Digest::from_hasher(w.1), n))
}

/// `SHA256SUMS` in the staging directory (with --compress): every compressed image and block
/// map, by name, as `sha256sum -c` reads it.
fn write_sums(rows: &[Row], staging: &Path) -> Result<()> {
    let mut lines = vec![];
    for r in rows {
        let name = |p: &str| {
            Path::new(p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        if let Some(sha) = &r.sha256 {
            lines.push((name(&r.image), sha.clone()));
        }
        lines.push((name(&r.bmap), r.bmap_sha256.clone()));
    }
    lines.sort();
    let text: String = lines.iter().map(|(n, h)| format!("{h}  {n}\n")).collect();
    std::fs::write(staging.join("SHA256SUMS"), text).context("writing SHA256SUMS")
}

/// Builds and writes one node's card (unless its firmware is on its SSD) and SSD into the
/// staging directory.
fn make(
    n: &NodeJobs,
    release: &Firmware,
    out: &Path,
    compress: Option<Compress>,
    g: &Global,
) -> Result<Vec<Row>> {
    let quiet = Options::default();
    let progress = crate::progress::Prefixed {
        inner: g.progress(),
        prefix: format!("{}: ", n.node),
    };
    let progress = &progress;
    let mut rows = vec![];
    if let Some(job) = &n.card {
        let mut fw = release.clone();
        let sd_target = job.target.claim(Default::default())?;
        let card = job.build(&mut fw, &sd_target, progress)?;
        let done = deliver(&card.built().disk, &sd_target, &quiet, progress)?;
        rows.push(row(
            &n.node,
            "sdcard",
            (sd_target.path(), &card.built().disk),
            out,
            compress,
            done.bytes_written,
        )?);
    }
    let ssd_target = n.ssd.target.claim(Default::default())?;
    let mut ssd_fw = n.ssd.firmware.as_ref().map(|_| release.clone());
    let built = n.ssd.build(&ssd_target, ssd_fw.as_mut(), progress)?;
    for l in &built.left {
        progress.notice(&format!("notice: {l}"));
    }
    let done = deliver(
        &built.img,
        &ssd_target,
        &n.ssd.write_options(&ssd_target),
        progress,
    )?;
    rows.push(row(
        &n.node,
        "ssd",
        (ssd_target.path(), &built.img),
        out,
        compress,
        done.bytes_written,
    )?);
    Ok(rows)
}

/// The EEPROM card `name` (the cluster's, or a node's) into the staging directory.
fn make_eeprom(
    name: &str,
    e: &crate::job::eeprom::EepromJob,
    files: &crate::eeprom::ReleaseFiles,
    out: &Path,
    compress: Option<Compress>,
    g: &Global,
) -> Result<Row> {
    let target = e.target.claim(Default::default())?;
    let b = e.build(files, &target)?;
    let done = deliver(&b.built.disk, &target, &Options::default(), g.progress())?;
    row(
        name,
        "eeprom",
        (target.path(), &b.built.disk),
        out,
        compress,
        done.bytes_written,
    )
}

pub fn run(a: &ImagesArgs, g: &Global) -> Result<Outcome> {
    let job = ImagesJob::from_args(a)?;
    for n in job
        .notices
        .iter()
        .chain(job.nodes.iter().flat_map(|n| &n.ssd.notices))
    {
        g.progress().notice(n);
    }
    let fw = job.firmware.obtain(g.progress())?;
    // The bootloader's files too, before anything is built.
    let eeprom_files = job
        .eeprom
        .iter()
        .map(|(_, e)| e.obtain(g.progress()))
        .collect::<Result<Vec<_>>>()?;
    let staging = crate::write::image::StagedDir::create(&job.staging)?;
    // One thread per node: building the FATs and hashing the ranges is CPU work.
    let results: Vec<Result<Vec<Row>>> = std::thread::scope(|s| {
        let handles: Vec<_> = job
            .nodes
            .iter()
            .map(|n| {
                s.spawn(|| {
                    make(n, &fw, &job.out, a.compress, g)
                        .with_context(|| format!("node {}", n.node))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker panicked")))
            })
            .collect()
    });
    let mut rows = vec![];
    for r in results {
        rows.extend(r?);
    }
    for ((name, e), files) in job.eeprom.iter().zip(&eeprom_files) {
        rows.push(
            make_eeprom(name, e, files, &job.out, a.compress, g)
                .with_context(|| format!("{name}'s EEPROM card"))?,
        );
    }
    if a.compress.is_some() {
        write_sums(&rows, &job.staging)?;
    }
    let own = crate::job::images::own_output;
    let kept = staging.commit(&job.out, job.force.then_some(&own as _))?;
    if let Some(k) = kept {
        g.progress().notice(&format!(
            "notice: files that are not pi-burn's appeared in {} while it worked: they are kept in {}",
            job.out.display(),
            k.display()
        ));
    }
    let zst = a.compress.is_some();
    let mut lines = vec![format!(
        "{:<10} {:<7} {:<32} {:>9} {:>9}{}  bmap sha256",
        "node",
        "kind",
        "image",
        "size",
        "written",
        if zst { "       zst" } else { "" }
    )];
    for r in &rows {
        let name = Path::new(&r.image)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        lines.push(format!(
            "{:<10} {:<7} {:<32} {:>9} {:>9}{}  {}",
            r.node,
            r.kind,
            name,
            human(r.size),
            human(r.bytes_written),
            if zst {
                format!(" {:>9}", human(r.file_size))
            } else {
                String::new()
            },
            r.bmap_sha256
        ));
    }
    lines.push(format!(
        "{} nodes, firmware {} {}, in {}{}",
        job.nodes.len(),
        fw.board,
        fw.version,
        job.out.display(),
        if zst {
            " (SHA256SUMS lists every file: `sha256sum -c SHA256SUMS` there)"
        } else {
            ""
        }
    ));
    lines.push(format!(
        "next: the nodes' SSH host keys before their first boot (for secrets.nix and nixos-anywhere --extra-files): pi-burn keys --flake {} --out DIR (outside the flake's git work tree)",
        job.flake.display()
    ));
    Ok(Outcome::of(&serde_json::json!({
        "flake": job.flake.display().to_string(), "out": job.out.display().to_string(),
        "firmware": { "board": fw.board, "version": fw.version, "zip_sha256": fw.zip_sha256.hex(), "nar_sha256": fw.nar_sha256.sri() },
        "images": rows,
    }))?
    .lines(lines))
}
