//! The engine against in-memory targets: every write logged in order, failures injected.

use super::engine::{table_areas, TargetOutcome, TABLE_AREA};
use super::sink::{Sink, TargetError};
use super::*;
use crate::disk::geometry::{esp_type, SdLayout, TableKind, HEAD};
use crate::disk::gpt::{misfit, HeadTable};
use crate::disk::sparse::SparseImage;
use crate::disk::table::read_table as read_disk_table;
use crate::progress::Recorder;
use crate::util::units::MIB;
use std::io;
use std::sync::{Arc, Mutex};

/// One operation a target saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// (offset, length, every byte zero)
    Write(u64, u64, bool),
    Sync,
    Read(u64, u64),
}

/// A target in memory that logs every operation.
struct Mem {
    name: String,
    data: Arc<Mutex<Vec<u8>>>,
    log: Arc<Mutex<Vec<Op>>>,
    ss: u64,
    /// Fail every write after this many bytes.
    fail_after: Option<u64>,
    /// Fail the writes that cover this byte (a bad block; the rest of the medium works).
    fail_at: Option<u64>,
    written: u64,
    /// Flip a bit of every read-back at this byte (a medium that does not keep what it got).
    flip_on_read: Option<u64>,
    /// Every address modulo this (a wrap-around counterfeit).
    wrap: Option<u64>,
}

impl Mem {
    fn at(&self, off: u64) -> usize {
        (match self.wrap {
            Some(w) => off % w,
            None => off,
        }) as usize
    }
}

impl Sink for Mem {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn size(&self) -> u64 {
        match self.wrap {
            Some(_) => self.data.lock().unwrap().len() as u64 * 4,
            None => self.data.lock().unwrap().len() as u64,
        }
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
        if let Some(at) = self.fail_at {
            if (off..off + d.len() as u64).contains(&at) {
                return Err(io::Error::other("input/output error"));
            }
        }
        self.written += d.len() as u64;
        self.log
            .lock()
            .unwrap()
            .push(Op::Write(off, d.len() as u64, d.iter().all(|b| *b == 0)));
        let mut data = self.data.lock().unwrap();
        for (i, b) in d.iter().enumerate() {
            let a = self.at(off + i as u64);
            data[a] = *b;
        }
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.log.lock().unwrap().push(Op::Sync);
        Ok(())
    }
    fn read_back(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(Op::Read(off, buf.len() as u64));
        let data = self.data.lock().unwrap();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = data[self.at(off + i as u64)];
        }
        if let Some(at) = self.flip_on_read {
            if at >= off && at < off + buf.len() as u64 {
                buf[(at - off) as usize] ^= 1;
            }
        }
        Ok(())
    }
}

type Shared<T> = Arc<Mutex<T>>;

/// A logging target: the sink, its bytes, its log.
type Logged = (Box<dyn Sink>, Shared<Vec<u8>>, Shared<Vec<Op>>);

fn mem_with(name: &str, size: u64, fill: u8, f: impl FnOnce(&mut Mem)) -> Logged {
    let data = Arc::new(Mutex::new(vec![fill; size as usize]));
    let log = Arc::new(Mutex::new(vec![]));
    let mut m = Mem {
        name: name.into(),
        data: data.clone(),
        log: log.clone(),
        ss: 512,
        fail_after: None,
        fail_at: None,
        written: 0,
        flip_on_read: None,
        wrap: None,
    };
    f(&mut m);
    (Box::new(m), data, log)
}

fn mem(name: &str, size: u64, fill: u8) -> (Box<dyn Sink>, Shared<Vec<u8>>) {
    let (s, d, _) = mem_with(name, size, fill, |_| {});
    (s, d)
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
        partition_guid: None,
    };
    let plan = layout.plan(20 * MIB).unwrap();
    let mut img = SparseImage::new(plan.size);
    img.write_at(MIB, &[0xAB; 8192]).unwrap();
    img.zero_range(3 * MIB, 4096).unwrap();
    let pattern: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8 + 1).collect();
    img.write_at(10 * MIB + 17, &pattern).unwrap();
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

fn verify() -> Options {
    Options {
        verify: true,
        ..Options::default()
    }
}

fn run(input: Input<'_>, plan: &Plan, sinks: Vec<Box<dyn Sink>>) -> Vec<TargetOutcome> {
    flash(input, plan, sinks, &verify(), &Recorder::default())
}

fn err(o: &TargetOutcome) -> String {
    o.error_text().unwrap_or_default()
}

#[test]
fn a_bmap_flash_writes_exactly_the_mapped_ranges_and_verifies() {
    let img = image();
    let (sink, data) = mem("a", 20 * MIB, 0x55);
    let out = run(stream(whole(&img)), &bmap_plan(&img), vec![sink]);
    assert!(out[0].ok(), "{:?}", out[0]);
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
    let s = out[0].stats();
    assert_eq!(
        s.bytes_written,
        img.written_bytes() + 2 * TABLE_AREA,
        "mapped data plus the wiped table areas (32 KiB at each end)"
    );
    assert_eq!(s.bytes_read_back, img.written_bytes());
    assert!(!s.gpt_relocated);
}

/// The engine's promise, from the write log: the table areas are zeroed before any data, the
/// head (the first MiB, with the table) is written last, after a flush, and flushed.
#[test]
fn the_table_areas_are_wiped_first_and_the_head_is_written_last() {
    let img = image();
    let size = 20 * MIB;
    for plan in [bmap_plan(&img), Plan::whole_stream()] {
        let (sink, _, log) = mem_with("a", size, 0x55, |_| {});
        let out = run(stream(whole(&img)), &plan, vec![sink]);
        assert!(out[0].ok(), "{:?}", out[0]);
        let log = log.lock().unwrap().clone();
        let writes: Vec<(usize, u64, u64, bool)> = log
            .iter()
            .enumerate()
            .filter_map(|(i, op)| match op {
                Op::Write(o, l, z) => Some((i, *o, *l, *z)),
                _ => None,
            })
            .collect();
        let areas = table_areas(size);
        // The first writes are exactly the table areas, zeros.
        for (k, (o, l)) in areas.iter().enumerate() {
            assert_eq!(
                (writes[k].1, writes[k].2, writes[k].3),
                (*o, *l, true),
                "write {k} wipes a table area: {writes:?}"
            );
        }
        // Then data, a flush, and after it only the backup GPT and the head, the head last.
        let data_end = log
            .iter()
            .position(|o| *o == Op::Sync)
            .expect("a flush after the data");
        let backup = (size - 33 * 512, 33 * 512);
        let after: Vec<&(usize, u64, u64, bool)> =
            writes.iter().filter(|w| w.0 > data_end).collect();
        assert!(!after.is_empty());
        let first_head = after
            .iter()
            .position(|w| w.1 < HEAD)
            .expect("the head is written after the flush");
        assert!(
            after[..first_head].iter().all(|w| (w.1, w.2) == backup),
            "{after:?}"
        );
        assert!(after[first_head..].iter().all(|w| w.1 < HEAD), "{after:?}");
        assert!(
            writes
                .iter()
                .filter(|w| w.0 < data_end)
                .all(|w| w.1 >= HEAD || w.3),
            "nothing but the wipe touches the first MiB before the flush"
        );
        let last_write = writes.last().unwrap().0;
        assert_eq!(log[last_write + 1], Op::Sync, "a flush after the head");
        // The read-back comes after all of it.
        assert!(log[last_write..].iter().any(|o| matches!(o, Op::Read(..))));
    }
}

#[test]
fn a_failure_or_a_read_back_difference_wipes_the_table_areas_again() {
    let img = image();
    let size = 20 * MIB;
    // A write that fails midway, and a medium that gives back another bit.
    let at = crate::disk::bmap::from_image(&img).byte_ranges()[1].0 + 7;
    type Case = Box<dyn Fn(&mut Mem)>;
    let cases: Vec<Case> = vec![
        Box::new(|m: &mut Mem| m.fail_at = Some(3 * MIB)),
        Box::new(move |m: &mut Mem| m.flip_on_read = Some(at)),
    ];
    for case in cases {
        let (sink, data, log) = mem_with("a", size, 0x55, |m| case(m));
        let out = run(stream(whole(&img)), &bmap_plan(&img), vec![sink]);
        assert!(!out[0].ok());
        let log = log.lock().unwrap().clone();
        // The last writes are the table areas, zeros again, then a flush.
        let tail: Vec<&Op> = log
            .iter()
            .rev()
            .filter(|o| !matches!(o, Op::Read(..)))
            .take(3)
            .collect();
        let areas = table_areas(size);
        assert_eq!(tail[0], &Op::Sync, "{log:?}");
        assert_eq!(tail[1], &Op::Write(areas[1].0, areas[1].1, true));
        assert_eq!(tail[2], &Op::Write(areas[0].0, areas[0].1, true));
        let got = data.lock().unwrap();
        for (o, l) in areas {
            assert!(got[o as usize..(o + l) as usize].iter().all(|b| *b == 0));
        }
        assert!(err(&out[0]).contains("burn it again"), "{}", err(&out[0]));
    }
}

#[test]
fn a_bigger_target_gets_its_backup_gpt_moved_to_its_end() {
    let img = image();
    let (sink, data) = mem("big", 64 * MIB, 0);
    let out = run(stream(whole(&img)), &Plan::whole_stream(), vec![sink]);
    assert!(out[0].ok() && out[0].stats().gpt_relocated, "{:?}", out[0]);
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
    let t = read_disk_table(&mut disk, 64 * MIB, Some(512)).unwrap();
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
    let (failing, fdata, _) = mem_with("failing", 32 * MIB, 0x11, |m| {
        m.fail_after = Some(2 * MIB + 4096)
    });
    let out = run(
        stream(whole(&img)),
        &Plan::whole_stream(),
        vec![good, small, failing],
    );
    assert!(out[0].ok(), "{:?}", out[0]);
    assert_eq!(*gdata.lock().unwrap(), whole(&img));
    let e = err(&out[1]);
    assert!(
        e.contains("larger than the device") && e.contains("nothing was written"),
        "{e}"
    );
    assert!(
        matches!(&out[1].result, Err(f) if matches!(f.error, TargetError::Refused(_))),
        "{:?}",
        out[1]
    );
    assert!(
        sdata.lock().unwrap().iter().all(|b| *b == 0x77),
        "the small target was not touched"
    );
    assert!(err(&out[2]).contains("burn it again"), "{:?}", out[2]);
    let d = fdata.lock().unwrap();
    assert!(
        d[..512].iter().all(|b| *b == 0),
        "the failed target's table area is wiped"
    );
}

#[test]
fn a_source_that_does_not_match_its_map_aborts_every_target() {
    let img = image();
    let plan = bmap_plan(&img);
    let mut bytes = whole(&img);
    bytes[10 * MIB as usize + 17] ^= 1;
    let (sink, data) = mem("a", 20 * MIB, 0x55);
    let out = run(stream(bytes), &plan, vec![sink]);
    assert!(
        err(&out[0]).contains("does not match its block map"),
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
    match HeadTable::from_head(&head).unwrap() {
        HeadTable::Gpt(g) => {
            assert_eq!(g.sector_size, 512);
            assert_eq!(g.alternate_lba, 20 * 2048 - 1);
            assert_eq!(g.max_end_lba, 2048 + 32768 - 1);
            assert_eq!(g.entries_lba, 2);
        }
        t => panic!("{t:?}"),
    }
    assert!(misfit(
        &HeadTable::from_head(&head).unwrap(),
        Some(20 * MIB),
        20 * MIB,
        4096
    )
    .unwrap()
    .contains("512-byte sectors"));
    assert_eq!(HeadTable::from_head(&[0u8; 4096]).unwrap(), HeadTable::None);
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
    let (sink, data, log) = mem_with("card", 20 * MIB, 0x5A, |_| {});
    let out = run(
        Input::Stream(Box::new(Failing { good, pos: 0 })),
        &Plan::whole_stream(),
        vec![sink],
    );
    let e = err(&out[0]);
    assert!(
        e.contains("corrupt block") && e.contains("nothing was written"),
        "{e}"
    );
    assert!(log.lock().unwrap().is_empty(), "the card saw nothing");
    assert!(data.lock().unwrap().iter().all(|b| *b == 0x5A));
}

#[test]
fn a_raw_image_shorter_than_its_table_is_refused_untouched() {
    // Regression (issue 24): a GPT image cut short (a partial download) was flashed "ok".
    let img = image();
    let mut cut = whole(&img);
    cut.truncate(12 * MIB as usize);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.img");
    std::fs::write(&p, &cut).unwrap();
    let (sink, _, log) = mem_with("card", 20 * MIB, 0x5A, |_| {});
    let out = run(
        Input::File(std::fs::File::open(&p).unwrap()),
        &Plan::whole_file(cut.len() as u64),
        vec![sink],
    );
    let e = err(&out[0]);
    assert!(
        e.contains("truncated") && e.contains("nothing was written"),
        "{e}"
    );
    assert!(log.lock().unwrap().is_empty(), "the card saw nothing");
    // The dry run's checks say the same.
    let p = target_problems(
        &cut[..HEAD as usize],
        Some(cut.len() as u64),
        true,
        [("d".to_string(), 20 * MIB, 512)].into_iter(),
    );
    assert!(
        p[0].as_deref().is_some_and(|p| p.contains("truncated")),
        "{p:?}"
    );
}

#[test]
fn a_read_back_difference_names_its_range_and_a_wrap_around_medium() {
    // A medium of 16 MiB that claims 64 MiB, every address modulo 16 MiB: the pattern at
    // 10 MiB lands at 10 MiB, but what was written above 16 MiB lands lower.
    let (sink, _, _) = mem_with("fake", 16 * MIB, 0, |m| m.wrap = Some(16 * MIB));
    // Written at 26 MiB + 17: the same pattern as at 10 MiB + 17, 16 MiB lower; the image's
    // own pattern at 10 MiB is overwritten by it, so its read-back differs.
    let mut big = on_64_mib();
    let other: Vec<u8> = (0..65536u32).map(|i| (i * 13 % 241) as u8 + 3).collect();
    big.write_at(26 * MIB + 17, &other).unwrap();
    let out = run(Input::Sparse(&big), &Plan::from_sparse(&big), vec![sink]);
    let e = err(&out[0]);
    assert!(
        e.contains("read back differs") && e.contains("wraps around every 16 MiB"),
        "{e}"
    );
}

/// A relayout that gives a table other than the image's own.
struct Wrong;
impl super::plan::Relayout for Wrong {
    fn relayout(&self, _: u64, _: u64) -> Result<super::plan::Relaid, String> {
        Ok(super::plan::Relaid {
            blocks: vec![(0, vec![7u8; 4096])],
            zero: vec![],
            note: "x".into(),
        })
    }
}

#[test]
fn a_block_map_whose_disk_is_not_the_image_s_touches_no_target() {
    let img = image();
    let mut plan = bmap_plan(&img);
    plan.relayout = Some(super::plan::RelayoutRef(Arc::new(Wrong)));
    let (sink, _, log) = mem_with("big", 64 * MIB, 0x5A, |_| {});
    let out = run(stream(whole(&img)), &plan, vec![sink]);
    let e = err(&out[0]);
    assert!(
        e.contains("not this image's") && e.contains("nothing was written"),
        "{e}"
    );
    assert!(log.lock().unwrap().is_empty());
}

/// The 20 MiB test image's extents on a 64 MiB disk.
fn on_64_mib() -> SparseImage {
    let mut big = SparseImage::new(64 * MIB);
    for (off, data) in image().blocks() {
        big.write_at(off, data).unwrap();
    }
    big
}

/// `img` onto `sink` with the probe and the read-back.
fn flash_probed(img: &SparseImage, sink: Box<dyn Sink>) -> Vec<TargetOutcome> {
    let options = Options {
        probe: true,
        ..verify()
    };
    flash(
        Input::Sparse(img),
        &Plan::from_sparse(img),
        vec![sink],
        &options,
        &Recorder::default(),
    )
}

/// With the probe on, the same 16-MiB-in-64 fake is refused before any of the image reaches it:
/// the table areas wiped, the probe's blocks the only other writes, the real size named.
#[test]
fn the_probe_refuses_a_counterfeit_before_its_data() {
    let big = on_64_mib();
    let (sink, data, log) = mem_with("fake", 16 * MIB, 0x33, |m| m.wrap = Some(16 * MIB));
    let out = flash_probed(&big, sink);
    let f = out[0].result.as_ref().unwrap_err();
    assert!(matches!(f.error, TargetError::Counterfeit { .. }), "{f}");
    let e = f.to_string();
    assert!(
        e.contains("holds 16 MiB, not 64 MiB") && e.contains("nothing else was written"),
        "{e}"
    );
    let probe = f.done.probe.as_ref().expect("the probe's stats");
    assert_eq!(probe.verdict, probe::Verdict::Wraps { every: 16 * MIB });
    // No write of the image's: every write is a table area (zeros) or a probe block.
    let log = log.lock().unwrap().clone();
    let areas = table_areas(64 * MIB);
    for op in &log {
        if let Op::Write(o, l, zero) = op {
            let is_area = areas.contains(&(*o, *l)) && *zero;
            assert!(is_area || *o >= MIB, "{op:?}");
        }
    }
    assert!(matches!(log.last(), Some(Op::Sync)));
    assert!(data.lock().unwrap()[..512].iter().all(|b| *b == 0));
}

/// The burn's probe: the wrap test and samples stamped beside the card before its data, read
/// back after it and put back; the device ends as the card alone would leave it.
#[test]
fn an_honest_target_is_probed_around_its_data_and_the_cost_is_in_its_stats() {
    let big = on_64_mib();
    let (sink, data, log) = mem_with("honest", 64 * MIB, 0x5a, |_| {});
    let out = flash_probed(&big, sink);
    assert!(out[0].ok(), "{:?}", out[0]);
    let s = out[0].stats();
    let p = s.probe.expect("probed");
    assert_eq!(p.verdict, probe::Verdict::Honest);
    assert!(p.in_burn);
    let [before, after] = probe::burn_cost(64 * MIB, 512);
    assert_eq!(
        (p.bytes_written, p.bytes_read),
        (before.0 + after.0, before.1 + after.1)
    );
    // The card's bytes are the other writes the samples sat behind.
    assert_eq!(p.ruled_out_cache_up_to, big.written_bytes());
    // The probe's writes are counted apart from the card's.
    assert_eq!(s.bytes_written, big.written_bytes() + 2 * TABLE_AREA);
    let mut want = vec![0x5a; 64 * MIB as usize];
    for (o, l) in table_areas(64 * MIB) {
        want[o as usize..(o + l) as usize].fill(0);
    }
    for (off, d) in big.blocks() {
        want[off as usize..off as usize + d.len()].copy_from_slice(d);
    }
    assert!(
        *data.lock().unwrap() == want,
        "the device is not the card alone"
    );
    // Samples stamped beside the card before its first data write, put back after its last.
    let log = log.lock().unwrap().clone();
    let is_card = |o: u64| big.blocks().any(|(b, d)| o >= b && o < b + d.len() as u64);
    let first_card = log
        .iter()
        .position(|op| matches!(op, Op::Write(o, _, _) if *o >= 8 * MIB && is_card(*o)))
        .unwrap();
    let samples: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, Op::Write(o, 512, _) if *o >= 8 * MIB))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(samples.len(), 2 * probe::SAMPLES);
    assert!(samples[..probe::SAMPLES].iter().all(|i| *i < first_card));
    assert!(samples[probe::SAMPLES..].iter().all(|i| *i > first_card));
}

#[test]
fn a_read_back_difference_lists_the_ranges_that_differ() {
    let (sink, _, _) = mem_with("flaky", 20 * MIB, 0, |m| {
        m.flip_on_read = Some(10 * MIB + 100)
    });
    let out = run(
        Input::Sparse(&image()),
        &Plan::from_sparse(&image()),
        vec![sink],
    );
    let e = err(&out[0]);
    assert!(
        e.contains("read back differs from what was written at byte"),
        "{e}"
    );
    match &out[0].result.as_ref().unwrap_err().error {
        TargetError::Differs { ranges, more, .. } => {
            assert_eq!(*more, 0);
            assert!(
                ranges.len() == 1 && ranges[0].0 <= 10 * MIB + 100 && ranges[0].1 > 10 * MIB + 100
            );
        }
        other => panic!("{other:?}"),
    }
}
