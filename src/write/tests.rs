//! The flash engine against in-memory targets: every write recorded, failures injected.

use super::*;
use crate::disk::geometry::{esp_type, SdLayout, TableKind};
use crate::disk::sparse::SparseImage;
use crate::disk::table::read_table as read_disk_table;
use crate::progress::Recorder;
use crate::util::units::MIB;
use std::sync::Mutex;

struct Mem {
    name: String,
    data: Arc<Mutex<Vec<u8>>>,
    ss: u64,
    /// Fail every write after this many bytes.
    fail_after: Option<u64>,
    written: u64,
    /// Flip a bit of every read-back at this byte (a medium that does not keep what it got).
    flip_on_read: Option<u64>,
}

impl Sink for Mem {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn size(&self) -> u64 {
        self.data.lock().unwrap().len() as u64
    }
    fn sector_size(&self) -> u64 {
        self.ss
    }
    fn write_at(&mut self, off: u64, d: &[u8]) -> io::Result<()> {
        if let Some(n) = self.fail_after {
            if self.written + d.len() as u64 > n {
                return Err(io::Error::other("no space left on device"));
            }
        }
        self.written += d.len() as u64;
        self.data.lock().unwrap()[off as usize..off as usize + d.len()].copy_from_slice(d);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
    fn read_back(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.copy_from_slice(&self.data.lock().unwrap()[off as usize..off as usize + buf.len()]);
        if let Some(at) = self.flip_on_read {
            if at >= off && at < off + buf.len() as u64 {
                buf[(at - off) as usize] ^= 1;
            }
        }
        Ok(())
    }
}

fn mem(name: &str, size: u64, fill: u8) -> (Box<dyn Sink>, Arc<Mutex<Vec<u8>>>) {
    let data = Arc::new(Mutex::new(vec![fill; size as usize]));
    (
        Box::new(Mem {
            name: name.into(),
            data: data.clone(),
            ss: 512,
            fail_after: None,
            written: 0,
            flip_on_read: None,
        }),
        data,
    )
}

/// A 20 MiB GPT image with a 16 MiB partition holding a recognisable pattern.
fn image() -> SparseImage {
    let layout = SdLayout {
        sector_size: 512,
        table: TableKind::Gpt,
        mbr_type: 0xef,
        gpt_type: esp_type(),
        partition_size: 16 * MIB,
        partition_name: "disk-sdcard-FIRMWARE".into(),
        seed: "t".into(),
    };
    let plan = layout.plan(20 * MIB).unwrap();
    let mut img = SparseImage::new(plan.size);
    img.write_at(MIB, &[0xAB; 8192]).unwrap();
    img.zero_range(3 * MIB, 4096).unwrap();
    img.write_at(10 * MIB + 17, b"middle").unwrap();
    crate::disk::table::write_table(&plan, &mut img).unwrap();
    img
}

fn whole(img: &SparseImage) -> Vec<u8> {
    let mut v = vec![0u8; img.size() as usize];
    img.read_at(0, &mut v);
    v
}

fn bmap_plan(img: &SparseImage) -> Plan {
    Plan::from_bmap(&crate::disk::bmap::from_image(img))
}

fn stream(bytes: Vec<u8>) -> Input<'static> {
    Input::Stream(Box::new(io::Cursor::new(bytes)))
}

#[test]
fn a_bmap_flash_writes_exactly_the_mapped_ranges_and_verifies() {
    let img = image();
    let (sink, data) = mem("a", 20 * MIB, 0x55);
    let out = flash(
        stream(whole(&img)),
        &bmap_plan(&img),
        vec![sink],
        true,
        &Recorder::default(),
        vec![],
    )
    .unwrap();
    assert!(out[0].ok, "{:?}", out[0]);
    let got = data.lock().unwrap().clone();
    // Mapped blocks are the image's; the rest keeps the old 0x55, except the wiped table areas.
    let want = whole(&img);
    for (off, len) in crate::disk::bmap::from_image(&img).byte_ranges() {
        assert_eq!(
            got[off as usize..(off + len) as usize],
            want[off as usize..(off + len) as usize]
        );
    }
    assert_eq!(
        got[5 * MIB as usize],
        0x55,
        "an unmapped block is not written"
    );
    assert_eq!(got[MIB as usize - 1], 0x55, "nor one in the first MiB");
    assert_eq!(
        out[0].bytes_written,
        img.written_bytes() + 65536,
        "mapped data plus the wiped table areas (32 KiB at each end)"
    );
    assert_eq!(out[0].bytes_read_back, img.written_bytes());
    assert!(!out[0].gpt_relocated);
}

#[test]
fn a_bigger_target_gets_its_backup_gpt_moved_to_its_end() {
    let img = image();
    let (sink, data) = mem("big", 64 * MIB, 0);
    let out = flash(
        stream(whole(&img)),
        &Plan {
            image_size: None,
            ranges: None,
            require_table: true,
        },
        vec![sink],
        true,
        &Recorder::default(),
        vec![],
    )
    .unwrap();
    assert!(out[0].ok && out[0].gpt_relocated, "{:?}", out[0]);
    let bytes = data.lock().unwrap().clone();
    let mut disk = io::Cursor::new(bytes);
    // The gpt crate reads both headers and checks their CRCs.
    let gdisk = gpt::GptConfig::new()
        .writable(false)
        .open_from_device(&mut disk)
        .unwrap();
    let primary = gdisk.primary_header().unwrap();
    let backup = gdisk.backup_header().unwrap();
    assert_eq!(primary.backup_lba, 64 * 2048 - 1);
    assert_eq!(backup.current_lba, 64 * 2048 - 1);
    assert_eq!(primary.last_usable, 64 * 2048 - 34);
    let t = read_disk_table(&mut disk, Some(512)).unwrap();
    assert_eq!(t.partitions[0].name, "disk-sdcard-FIRMWARE");
    assert_eq!(
        (t.partitions[0].first_lba, t.partitions[0].last_lba),
        (2048, 2048 + 32768 - 1)
    );
}

#[test]
fn a_failing_target_stops_only_itself_and_a_too_small_one_is_untouched() {
    let img = image();
    let (good, gdata) = mem("good", 20 * MIB, 0);
    let (small, sdata) = mem("small", 8 * MIB, 0x77);
    let data = Arc::new(Mutex::new(vec![0x11u8; 32 << 20]));
    let failing: Box<dyn Sink> = Box::new(Mem {
        name: "failing".into(),
        data: data.clone(),
        ss: 512,
        fail_after: Some(2 * MIB + 4096),
        written: 0,
        flip_on_read: None,
    });
    let out = flash(
        stream(whole(&img)),
        &Plan {
            image_size: None,
            ranges: None,
            require_table: true,
        },
        vec![good, small, failing],
        true,
        &Recorder::default(),
        vec![],
    )
    .unwrap();
    assert!(out[0].ok, "{:?}", out[0]);
    assert_eq!(*gdata.lock().unwrap(), whole(&img));
    assert!(
        !out[1].ok
            && out[1]
                .error
                .as_ref()
                .unwrap()
                .contains("larger than the device")
            && out[1]
                .error
                .as_ref()
                .unwrap()
                .contains("nothing was written"),
        "{:?}",
        out[1]
    );
    assert!(
        sdata.lock().unwrap().iter().all(|b| *b == 0x77),
        "the small target was not touched"
    );
    assert!(
        !out[2].ok && out[2].error.as_ref().unwrap().contains("burn it again"),
        "{:?}",
        out[2]
    );
    let d = data.lock().unwrap();
    assert!(
        d[..512].iter().all(|b| *b == 0),
        "the failed target's table area is wiped"
    );
    assert!(d[510..512] != [0x55, 0xAA]);
}

#[test]
fn a_source_that_does_not_match_its_map_aborts_every_target() {
    let img = image();
    let mut plan = bmap_plan(&img);
    let mut bytes = whole(&img);
    bytes[10 * MIB as usize + 17] ^= 1;
    plan.image_size = Some(img.size());
    let (sink, data) = mem("a", 20 * MIB, 0x55);
    let out = flash(
        stream(bytes),
        &plan,
        vec![sink],
        true,
        &Recorder::default(),
        vec![],
    )
    .unwrap();
    assert!(!out[0].ok);
    assert!(
        out[0]
            .error
            .as_ref()
            .unwrap()
            .contains("does not match its block map"),
        "{:?}",
        out[0]
    );
    assert!(
        data.lock().unwrap()[..512].iter().all(|b| *b == 0),
        "no table was written"
    );
}

#[test]
fn reads_the_table_of_gpt_and_mbr_heads() {
    let img = image();
    let mut head = vec![0u8; HEAD as usize];
    img.read_at(0, &mut head);
    match read_table(&head).unwrap() {
        Table::Gpt(g) => {
            assert_eq!(g.sector_size, 512);
            assert_eq!(g.alternate_lba, 20 * 2048 - 1);
            assert_eq!(g.max_end_lba, 2048 + 32768 - 1);
            assert_eq!(g.entries_lba, 2);
        }
        t => panic!("{t:?}"),
    }
    assert!(
        misfit(&read_table(&head).unwrap(), Some(20 * MIB), 20 * MIB, 4096)
            .unwrap()
            .contains("512-byte sectors")
    );
    assert_eq!(read_table(&vec![0u8; 4096]).unwrap(), Table::None);
}

/// A stream that yields `good` bytes, then fails.
struct Failing {
    good: Vec<u8>,
    pos: usize,
}

impl io::Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.good.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "zstd: corrupt block",
            ));
        }
        let n = buf.len().min(self.good.len() - self.pos);
        buf[..n].copy_from_slice(&self.good[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn a_stream_that_fails_within_its_first_mib_touches_no_device() {
    // Regression (issue 11): an undecodable stream wiped the device's table before failing.
    let img = image();
    let mut good = whole(&img);
    good.truncate(300 * 1024);
    let (sink, data) = mem("card", 20 * MIB, 0x5A);
    let out = flash(
        Input::Stream(Box::new(Failing { good, pos: 0 })),
        &Plan {
            image_size: None,
            ranges: None,
            require_table: true,
        },
        vec![sink],
        true,
        &Recorder::default(),
        vec![],
    )
    .unwrap();
    assert!(!out[0].ok);
    let e = out[0].error.clone().unwrap_or_default();
    assert!(
        e.contains("corrupt block") && e.contains("nothing was written"),
        "{e}"
    );
    assert!(
        data.lock().unwrap().iter().all(|b| *b == 0x5A),
        "the card is as it was"
    );
}

#[test]
fn a_read_back_difference_wipes_the_table_again() {
    // Regression (issue 11): a card whose read-back differed kept a valid GPT.
    let img = image();
    let at = crate::disk::bmap::from_image(&img).byte_ranges()[1].0 + 7;
    let data = Arc::new(Mutex::new(vec![0u8; 20 * MIB as usize]));
    let sink = Box::new(Mem {
        name: "flaky".into(),
        data: data.clone(),
        ss: 512,
        fail_after: None,
        written: 0,
        flip_on_read: Some(at),
    });
    let out = flash(
        stream(whole(&img)),
        &bmap_plan(&img),
        vec![sink],
        true,
        &Recorder::default(),
        vec![],
    )
    .unwrap();
    assert!(!out[0].ok && out[0].read_back_differs, "{:?}", out[0]);
    let e = out[0].error.clone().unwrap();
    assert!(e.contains("differs") && e.contains("wiped"), "{e}");
    let got = data.lock().unwrap().clone();
    for (o, l) in table_areas(got.len() as u64) {
        assert!(
            got[o as usize..(o + l) as usize].iter().all(|b| *b == 0),
            "table area at {o} is wiped"
        );
    }
    assert!(read_disk_table(&mut io::Cursor::new(got), Some(512)).is_err());
}
