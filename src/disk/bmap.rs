//! Block maps in bmaptool's XML format (version 2.0): which blocks of an image must be written,
//! zeros included, with a SHA-256 per range: made from a disk built in memory, serialised and
//! parsed (pi-burn's own maps and `bmaptool create`'s). Writing the files is `write::image`'s.

use crate::disk::sparse::SparseImage;
use crate::firmware::digest::Sha256Digest;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The element that carries an SSD image's disk description.
pub const DISK_ELEMENT: &str = "PiBurnDisk";

/// The largest disk description read (a config of 128 partitions is about 40 KB).
const MAX_DISK_JSON: usize = 1 << 20;

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The version of bmaptool's format pi-burn writes.
pub const VERSION: &str = "2.0";

/// The comment every block map pi-burn writes carries: an existing `IMAGE.bmap` without it is
/// someone else's, and is not replaced without `--force`.
pub const MARK: &str = "Block map written by pi-burn";

/// One range of blocks, `first..=last`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmapRange {
    pub first: u64,
    pub last: u64,
    pub sha256: Option<Sha256Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bmap {
    pub image_size: u64,
    pub block_size: u64,
    pub ranges: Vec<BmapRange>,
    /// pi-burn's own element (other readers pass over it): the disko disk an SSD image was
    /// laid out from, as JSON, so that `flash` can lay the same disk out on a larger device.
    pub disk: Option<String>,
}

impl Bmap {
    /// The byte ranges to write: (offset, len), the last one cut at the image's end.
    pub fn byte_ranges(&self) -> Vec<(u64, u64)> {
        self.ranges
            .iter()
            .map(|r| {
                let off = r.first * self.block_size;
                let end = ((r.last + 1) * self.block_size).min(self.image_size);
                (off, end - off)
            })
            .collect()
    }

    pub fn mapped_bytes(&self) -> u64 {
        self.byte_ranges().iter().map(|r| r.1).sum()
    }
}

/// The sidecar path of an image: `IMAGE.bmap`.
pub fn sidecar(image: &Path) -> PathBuf {
    let mut s = image.as_os_str().to_owned();
    s.push(".bmap");
    PathBuf::from(s)
}

/// The bmap of a disk built in memory: every written extent, with its SHA-256.
pub fn from_image(img: &SparseImage) -> Bmap {
    const B: u64 = crate::disk::sparse::BLOCK;
    let mut ranges = vec![];
    for e in img.extents() {
        let mut data = vec![0u8; e.len as usize];
        img.read_at(e.offset, &mut data);
        ranges.push(BmapRange {
            first: e.offset / B,
            last: (e.end() - 1) / B,
            sha256: Some(Sha256Digest::of(&data)),
        });
    }
    Bmap {
        image_size: img.size(),
        block_size: B,
        ranges,
        disk: None,
    }
}

const ZERO_CHECKSUM: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Serialises a bmap, with its own checksum filled in as bmaptool expects.
pub fn to_xml(b: &Bmap) -> String {
    let blocks = b.image_size.div_ceil(b.block_size);
    let mapped: u64 = b.ranges.iter().map(|r| r.last - r.first + 1).sum();
    let mut x = String::new();
    x.push_str(&format!("<?xml version=\"1.0\" ?>\n<!-- {MARK}: the blocks to write to a device, zeros included. -->\n"));
    x.push_str(&format!("<bmap version=\"{VERSION}\">\n"));
    x.push_str(&format!("    <ImageSize> {} </ImageSize>\n", b.image_size));
    x.push_str(&format!("    <BlockSize> {} </BlockSize>\n", b.block_size));
    x.push_str(&format!("    <BlocksCount> {blocks} </BlocksCount>\n"));
    x.push_str(&format!(
        "    <MappedBlocksCount> {mapped} </MappedBlocksCount>\n"
    ));
    x.push_str("    <ChecksumType> sha256 </ChecksumType>\n");
    x.push_str(&format!(
        "    <BmapFileChecksum> {ZERO_CHECKSUM} </BmapFileChecksum>\n"
    ));
    if let Some(d) = &b.disk {
        x.push_str(&format!(
            "    <{DISK_ELEMENT}> {} </{DISK_ELEMENT}>\n",
            xml_escape(d)
        ));
    }
    x.push_str("    <BlockMap>\n");
    for r in &b.ranges {
        let span = if r.first == r.last {
            r.first.to_string()
        } else {
            format!("{}-{}", r.first, r.last)
        };
        match &r.sha256 {
            Some(c) => x.push_str(&format!("        <Range chksum=\"{c}\"> {span} </Range>\n")),
            None => x.push_str(&format!("        <Range> {span} </Range>\n")),
        }
    }
    x.push_str("    </BlockMap>\n</bmap>\n");
    let sum = Sha256Digest::of(x.as_bytes());
    x.replace(ZERO_CHECKSUM, &sum.hex())
}

/// The largest image a block map may describe (2^60 bytes): keeps every offset computation
/// far from overflowing.
const MAX_IMAGE: u64 = 1 << 60;

/// Parses a bmap (version 2.x, SHA-256 checksums) with an XML parser, checking its own
/// checksum as bmaptool does (the file with the checksum's digits zeroed). `origin` names it.
pub fn parse(text: &str, origin: &str) -> Result<Bmap> {
    let doc = roxmltree::Document::parse(text)
        .with_context(|| format!("{origin} is not a bmap file (not XML)"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "bmap" {
        bail!(
            "{origin} is not a bmap file (its root element is <{}>)",
            root.tag_name().name()
        );
    }
    let version = root
        .attribute("version")
        .with_context(|| format!("{origin}: <bmap> has no version"))?;
    if !version.starts_with("2.") {
        bail!("{origin}: bmap version {version} is not supported (2.x)");
    }
    let child = |name: &str| root.children().find(|n| n.has_tag_name(name));
    let text_of = |name: &str| child(name).map(|n| n.text().unwrap_or("").trim().to_string());
    let num = |name: &str| -> Result<u64> {
        text_of(name)
            .with_context(|| format!("{origin}: no <{name}>"))?
            .parse()
            .with_context(|| format!("{origin}: <{name}> is not a number"))
    };
    let image_size = num("ImageSize")?;
    let block_size = num("BlockSize")?;
    if block_size == 0 || block_size % 512 != 0 || block_size > 1 << 30 {
        bail!("{origin}: block size {block_size} is not a multiple of 512 up to 1 GiB");
    }
    if image_size > MAX_IMAGE {
        bail!("{origin}: image size {image_size} is beyond any disk");
    }
    let ctype = text_of("ChecksumType").unwrap_or_else(|| "sha256".into());
    if ctype != "sha256" {
        bail!("{origin}: checksum type {ctype} is not supported (sha256; recreate it with a current bmaptool)");
    }
    if let Some(sum) = text_of("BmapFileChecksum") {
        let want =
            Sha256Digest::from_hex(&sum).with_context(|| format!("{origin}: BmapFileChecksum"))?;
        let zeroed = text.replacen(sum.as_str(), ZERO_CHECKSUM, 1);
        if Sha256Digest::of(zeroed.as_bytes()) != want {
            bail!("{origin} is damaged: its BmapFileChecksum does not match its contents");
        }
    }
    let map = child("BlockMap").with_context(|| format!("{origin}: no <BlockMap>"))?;
    let blocks = image_size.div_ceil(block_size);
    let mut ranges: Vec<BmapRange> = vec![];
    for r in map.children().filter(|n| n.has_tag_name("Range")) {
        let span = r.text().unwrap_or("").trim();
        let sha256 = r
            .attribute("chksum")
            .map(Sha256Digest::from_hex)
            .transpose()
            .with_context(|| format!("{origin}: range {span}"))?;
        let (a, b) = match span.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (span, span),
        };
        let first: u64 = a
            .parse()
            .with_context(|| format!("{origin}: range '{span}'"))?;
        let last: u64 = b
            .parse()
            .with_context(|| format!("{origin}: range '{span}'"))?;
        if last < first || last >= blocks {
            bail!("{origin}: range '{span}' lies outside the {blocks}-block image");
        }
        if let Some(prev) = ranges.last().map(|r| r.last) {
            if first <= prev {
                bail!("{origin}: ranges overlap or are out of order at '{span}'");
            }
        }
        ranges.push(BmapRange {
            first,
            last,
            sha256,
        });
    }
    if ranges.is_empty() {
        bail!("{origin} lists no ranges: there is nothing to write");
    }
    let disk = text_of(DISK_ELEMENT);
    if disk.as_ref().is_some_and(|d| d.len() > MAX_DISK_JSON) {
        bail!("{origin}: <{DISK_ELEMENT}> is larger than {MAX_DISK_JSON} bytes");
    }
    Ok(Bmap {
        image_size,
        block_size,
        ranges,
        disk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes pi-burn writes as a block map are pinned by a fixture named by the format's
    /// version: a change fails here until both move (PI_BURN_UPDATE_FIXTURES=1 writes it).
    #[test]
    fn the_bmap_format_is_pinned_by_a_fixture_of_its_version() {
        let mut img = SparseImage::new(3 << 20);
        img.write_at(0, &[1u8; 512]).unwrap();
        img.zero_range(1 << 20, 8192).unwrap();
        img.write_at((3 << 20) - 4096, b"end").unwrap();
        let xml = to_xml(&from_image(&img));
        let path = format!(
            "{}/fixtures/formats/image-bmap-{VERSION}.bmap",
            env!("CARGO_MANIFEST_DIR")
        );
        if std::env::var("PI_BURN_UPDATE_FIXTURES").as_deref() == Ok("1") {
            std::fs::write(&path, &xml).unwrap();
        }
        let pinned = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            xml, pinned,
            "the block map format changed: bump VERSION and add its fixture"
        );
        assert_eq!(parse(&pinned, "fixture").unwrap(), from_image(&img));
    }

    #[test]
    fn round_trips_with_its_checksum() {
        let mut img = SparseImage::new(1 << 20);
        img.write_at(0, &[1u8; 512]).unwrap();
        img.zero_range(8192, 4096 * 3).unwrap();
        img.write_at((1 << 20) - 4096, b"end").unwrap();
        let b = from_image(&img);
        assert_eq!(
            b.ranges
                .iter()
                .map(|r| (r.first, r.last))
                .collect::<Vec<_>>(),
            [(0, 0), (2, 4), (255, 255)]
        );
        let xml = to_xml(&b);
        assert_eq!(parse(&xml, "t").unwrap(), b);
        assert_eq!(b.mapped_bytes(), 5 * 4096);
        let damaged = xml.replace("> 2-4 <", "> 2-5 <");
        assert!(parse(&damaged, "t")
            .unwrap_err()
            .to_string()
            .contains("damaged"));
    }

    #[test]
    fn reads_bmaptool_s_format_with_comments() {
        let text = r#"<?xml version="1.0" ?>
<!-- less data is copied: <MappedBlocksCount> blocks instead of <BlocksCount> blocks. -->
<bmap version="2.0">
    <ImageSize> 10000 </ImageSize>
    <BlockSize> 4096 </BlockSize>
    <BlocksCount> 3 </BlocksCount>
    <MappedBlocksCount> 2 </MappedBlocksCount>
    <ChecksumType> sha256 </ChecksumType>
    <BlockMap>
        <Range chksum="a3a80a906450c1e0ed5f4528afe57adc2064d31a49c9c1eac66d5e32bfe9d037"> 0 </Range>
        <Range> 2 </Range>
    </BlockMap>
</bmap>"#;
        let b = parse(text, "t").unwrap();
        assert_eq!(b.byte_ranges(), [(0, 4096), (8192, 10000 - 8192)]);
        assert!(parse(&text.replace("sha256 </Ch", "sha1 </Ch"), "t").is_err());
        assert!(parse(&text.replace("> 2 <", "> 3 <"), "t").is_err());
    }

    #[test]
    fn hostile_maps_are_errors() {
        let good = to_xml(&Bmap {
            image_size: 8192,
            block_size: 4096,
            ranges: vec![BmapRange {
                first: 0,
                last: 1,
                sha256: None,
            }],
            disk: Some("{\"a\": \"<&>\"}".into()),
        });
        assert_eq!(
            parse(&good, "t").unwrap().disk.as_deref(),
            Some("{\"a\": \"<&>\"}")
        );
        let no_sum = |x: &str| {
            x.replace(
                &x[x.find("<BmapFileChecksum>").unwrap()
                    ..x.find("</BmapFileChecksum>").unwrap() + 19],
                "",
            )
        };
        let cases = [
            ("not xml at all".to_string(), "not XML"),
            ("<?xml version=\"1.0\"?><html/>".to_string(), "root element"),
            (
                no_sum(&good).replace("<Range> 0-1 </Range>", ""),
                "no ranges",
            ),
            (
                no_sum(&good).replace("8192", "18446744073709551615"),
                "beyond any disk",
            ),
            (
                no_sum(&good).replace("<BlockSize> 4096", "<BlockSize> 0"),
                "block size 0",
            ),
            (no_sum(&good).replace("0-1", "1-0"), "outside"),
            (no_sum(&good).replace("0-1", "0-99"), "outside"),
            (
                good.replace("<ImageSize> 8192", "<ImageSize> 8193"),
                "damaged",
            ),
        ];
        for (x, want) in cases {
            let e = format!("{:#}", parse(&x, "m.bmap").unwrap_err());
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
