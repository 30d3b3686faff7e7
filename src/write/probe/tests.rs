//! The probe against devices in memory that behave as the FUSE fakes do (fixtures/
//! fake-device.py): honest, wrapping, or dropping what is written past their real size, with a
//! cache of the latest written 4 KiB blocks that answers reads first, and a page cache in
//! front that reorders plain writes until a flush (the probe's direct writes go past it).

use super::*;
use std::collections::{HashMap, VecDeque};

const B: u64 = 4096;
const GIB: u64 = 1 << 30;

/// A device in memory, by 4 KiB block (all-zero blocks take no memory).
struct Fake {
    claimed: u64,
    real: u64,
    wrap: bool,
    /// Blocks lost anywhere (a failing medium): every n-th 4 KiB block.
    lose_every: Option<u64>,
    blocks: HashMap<u64, Vec<u8>>,
    /// The controller's cache: the latest `cache_blocks` blocks written, first in first out
    /// (a block written again keeps its place), as the FUSE fake keeps them.
    cache: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
    cache_blocks: usize,
    /// Written, not yet sent to the device: as a page cache, sent in offset order on a flush,
    /// or where a direct read covers them.
    pending: Vec<(u64, Vec<u8>)>,
    /// Every write that reached the device: (offset, length).
    writes: Vec<(u64, u64)>,
}

impl Fake {
    fn new(claimed: u64, real: u64, wrap: bool) -> Self {
        Fake {
            claimed,
            real,
            wrap,
            lose_every: None,
            blocks: HashMap::new(),
            cache: HashMap::new(),
            order: VecDeque::new(),
            cache_blocks: 0,
            pending: vec![],
            writes: vec![],
        }
    }
    fn honest(size: u64) -> Self {
        Fake::new(size, size, false)
    }
    fn limbo(claimed: u64, real: u64, cache: u64) -> Self {
        let mut f = Fake::new(claimed, real, false);
        f.cache_blocks = (cache / B) as usize;
        f
    }

    /// Where a 4 KiB block lands, if it is kept.
    fn place(&self, b: u64) -> Option<u64> {
        if self.wrap {
            return Some(b % (self.real / B));
        }
        if let Some(n) = self.lose_every {
            if b % n == n - 1 {
                return None;
            }
        }
        (b < self.real / B).then_some(b)
    }

    fn block(&self, b: u64) -> Vec<u8> {
        if let Some(d) = self.cache.get(&b) {
            return d.clone();
        }
        self.place(b)
            .and_then(|p| self.blocks.get(&p).cloned())
            .unwrap_or_else(|| vec![0; B as usize])
    }

    /// One write reaching the device: each 4 KiB block read, changed, kept and cached.
    fn land(&mut self, off: u64, data: &[u8]) {
        self.writes.push((off, data.len() as u64));
        let mut pos = 0;
        while pos < data.len() as u64 {
            let (b, within) = ((off + pos) / B, (off + pos) % B);
            let n = (B - within).min(data.len() as u64 - pos);
            let mut block = self.block(b);
            block[within as usize..(within + n) as usize]
                .copy_from_slice(&data[pos as usize..(pos + n) as usize]);
            if let Some(p) = self.place(b) {
                if block.iter().all(|x| *x == 0) {
                    self.blocks.remove(&p);
                } else {
                    self.blocks.insert(p, block.clone());
                }
            }
            if self.cache_blocks > 0 {
                if self.cache.insert(b, block).is_none() {
                    self.order.push_back(b);
                }
                while self.order.len() > self.cache_blocks {
                    let old = self.order.pop_front().unwrap();
                    self.cache.remove(&old);
                }
            }
            pos += n;
        }
    }

    /// Sends the pending writes that `which` picks, in offset order (the later of two writes
    /// at one offset last).
    fn send(&mut self, which: impl Fn(u64, u64) -> bool) {
        let (go, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .enumerate()
            .partition(|(_, (o, d))| which(*o, d.len() as u64));
        self.pending = keep.into_iter().map(|(_, w)| w).collect();
        let mut go = go;
        go.sort_by_key(|(i, (o, _))| (*o, *i));
        for (_, (o, d)) in go {
            self.land(o, &d);
        }
    }

    /// The device's bytes, for comparing before and after.
    fn content(&self) -> Vec<(u64, Vec<u8>)> {
        let mut v: Vec<_> = self.blocks.iter().map(|(k, v)| (*k, v.clone())).collect();
        v.sort();
        v
    }

    fn bytes_written(&self) -> u64 {
        self.writes.iter().map(|w| w.1).sum()
    }
}

impl Sink for Fake {
    fn name(&self) -> String {
        "fake".into()
    }
    fn size(&self) -> u64 {
        self.claimed
    }
    fn sector_size(&self) -> u64 {
        512
    }
    fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        assert!(off.is_multiple_of(512) && (data.len() as u64).is_multiple_of(512));
        assert!(off + data.len() as u64 <= self.claimed);
        self.pending.push((off, data.to_vec()));
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.send(|_, _| true);
        Ok(())
    }
    /// As O_DIRECT: past the page cache (what it holds of the range is written first).
    fn write_direct(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        let end = off + data.len() as u64;
        self.send(|o, l| o < end && off < o + l);
        self.land(off, data);
        Ok(())
    }
    fn read_back(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = off + buf.len() as u64;
        self.send(|o, l| o < end && off < o + l);
        let mut pos = 0;
        while pos < buf.len() as u64 {
            let (b, within) = ((off + pos) / B, (off + pos) % B);
            let n = (B - within).min(buf.len() as u64 - pos);
            let block = self.block(b);
            buf[pos as usize..(pos + n) as usize]
                .copy_from_slice(&block[within as usize..(within + n) as usize]);
            pos += n;
        }
        Ok(())
    }
}

fn probe(dev: &mut Fake) -> Probed {
    run(dev, 42, &mut |_| {}).unwrap()
}

/// Some content all over the device's real part, and a run of it past the first MiB.
fn fill(d: &mut Fake) {
    let mut x = 7u64;
    for _ in 0..2048 {
        let off = next(&mut x) % (d.real / B) * B;
        d.write_at(off, &vec![(off / B % 251) as u8 | 1; B as usize])
            .unwrap();
    }
    d.write_at(MIB, &vec![9u8; (8 * MIB) as usize]).unwrap();
    d.sync().unwrap();
    d.writes.clear();
    d.order.clear();
    d.cache.clear();
}

#[test]
fn an_honest_device_passes_at_the_documented_cost_and_is_left_as_it_was() {
    for size in [GIB, 40 * MIB, 64 * MIB] {
        let mut d = Fake::honest(size);
        fill(&mut d);
        let before = d.content();
        let p = probe(&mut d);
        assert_eq!(p.verdict, Verdict::Honest, "{size}");
        // At most the documented cost: less by the blocks around the samples, which the
        // other writes skip.
        let (w, r) = honest_cost(size, 512);
        let skipped = SAMPLES as u64 * 4096;
        assert!(
            p.bytes_written <= w && p.bytes_written + skipped >= w,
            "{size}"
        );
        assert!(p.bytes_read <= r && p.bytes_read + skipped >= r, "{size}");
        assert_eq!(d.bytes_written(), p.bytes_written);
        assert_eq!(d.content(), before, "{size}");
        // Never the first or the last MiB.
        assert!(d
            .writes
            .iter()
            .all(|(o, l)| *o >= MIB && o + l <= size - MIB));
        // Behind the doubling rounds and the stamped region.
        let max = flush_max(size, 512) + stamped_len(size, 512);
        assert!(p.ruled_out_cache_up_to <= max && p.ruled_out_cache_up_to + skipped >= max);
    }
}

/// f3probe 8.0 on the FUSE fakes, honest ones (bytes from /sys/block/loopN/stat, MiB written
/// and read): 1 GiB 1024/514, 64 MiB 64/34, 40 MiB 16/10. The full test writes less.
#[test]
fn an_honest_device_costs_less_than_f3probe() {
    for (size, f3_written) in [
        (GIB, 1024 * MIB),
        (64 * MIB, 64 * MIB),
        (40 * MIB, 16 * MIB),
    ] {
        let (w, _) = honest_cost(size, 512);
        assert!(w <= f3_written, "{size}: {w} > {f3_written}");
        assert!(w > 0);
    }
    assert!(honest_cost(GIB, 4096).0 <= 1024 * MIB);
}

#[test]
fn a_wrap_around_fake_is_found_with_its_real_size() {
    let mut d = Fake::new(GIB, 256 * MIB, true);
    let p = probe(&mut d);
    assert_eq!(p.verdict, Verdict::Wraps { every: 256 * MIB });
    assert!(p.describe().contains("holds 256 MiB, not 1 GiB"));
}

/// A wrap-around of another size than a power of two: the last round's stamped region names
/// it (f3probe 8.0 passes this one, `Good news`).
#[test]
fn a_wrap_around_of_any_size_is_found() {
    for real in [33 * MIB, 40 * MIB + 3 * B] {
        let claimed = if real < 64 * MIB { 40 * MIB } else { 64 * MIB };
        let claimed = claimed.max(real + 4 * MIB);
        let mut d = Fake::new(claimed, real, true);
        fill(&mut d);
        let before = d.content();
        let p = probe(&mut d);
        assert_eq!(p.verdict, Verdict::Wraps { every: real }, "{real}");
        assert_eq!(d.content(), before, "{real}");
    }
}

#[test]
fn a_limbo_fake_is_found_to_the_block_behind_caches_of_4_16_and_64_mib() {
    for (cache, real) in [
        (0, 256 * MIB),
        (4 * MIB, 300 * MIB + 12 * B),
        (16 * MIB, 256 * MIB),
        (64 * MIB, 200 * MIB + 5 * B),
    ] {
        let mut d = Fake::limbo(GIB, real, cache);
        fill(&mut d);
        let before = d.content();
        let p = probe(&mut d);
        assert_eq!(
            p.verdict,
            Verdict::Limbo {
                holds: real,
                at_least: real,
                exact: true
            },
            "cache {cache}"
        );
        assert_eq!(d.content(), before, "cache {cache}");
        if cache == 0 {
            assert_eq!(p.cache, None);
            continue;
        }
        let c = p.cache.unwrap();
        assert!(
            c.more_than < cache.max(1) && cache <= c.at_most,
            "cache {cache}: {c:?}"
        );
        assert!(
            p.describe().contains(&format!(
                "behind a cache of more than {} and at most {}",
                human(c.more_than),
                human(c.at_most)
            )),
            "{}",
            p.describe()
        );
    }
    let p = probe(&mut Fake::new(GIB, 256 * MIB, false));
    assert!(
        p.describe().contains("holds 256 MiB, not 1 GiB"),
        "{}",
        p.describe()
    );
}

/// A cache just beyond the doubling rounds' bound is pushed out by the last round's stamped
/// region: found, its size bounded by both (f3probe 8.0 passes such a fake: a 1 GiB limbo
/// behind a 512 MiB cache).
#[test]
fn a_cache_just_past_the_doubling_rounds_is_found_by_the_stamped_region() {
    let mut d = Fake::limbo(128 * MIB, 40 * MIB, 65 * MIB);
    let p = probe(&mut d);
    assert!(
        matches!(p.verdict, Verdict::Limbo { holds, .. } if (40 * MIB..128 * MIB).contains(&holds)),
        "{:?}",
        p.verdict
    );
    let c = p.cache.unwrap();
    assert!(c.more_than < 65 * MIB && 65 * MIB <= c.at_most, "{c:?}");
}

/// A cache beyond the full test's bound (the device's high half, as f3probe's): the verdict
/// says how far it looked, not that the device is honest beyond that.
#[test]
fn a_cache_beyond_the_bound_is_named_as_not_ruled_out() {
    let mut d = Fake::limbo(128 * MIB, 40 * MIB, 100 * MIB);
    let p = probe(&mut d);
    assert_eq!(p.verdict, Verdict::Honest);
    let up_to = p.ruled_out_cache_up_to;
    assert!(up_to <= 67 * MIB && up_to > 66 * MIB, "{up_to}");
    assert!(
        p.describe().contains(&format!(
            "no smaller device hides behind a cache of up to {}",
            human(up_to)
        )),
        "{}",
        p.describe()
    );
}

#[test]
fn a_device_losing_blocks_everywhere_is_not_called_honest() {
    let mut d = Fake::honest(GIB);
    d.lose_every = Some(7);
    let p = probe(&mut d);
    assert!(
        matches!(p.verdict, Verdict::Loses { .. }),
        "{:?}",
        p.verdict
    );
    assert!(p.verdict.is_fake());
}

#[test]
fn blocks_are_put_back_when_the_probe_fails_midway() {
    struct Failing(Fake, u32);
    impl Sink for Failing {
        fn name(&self) -> String {
            "failing".into()
        }
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn sector_size(&self) -> u64 {
            512
        }
        fn write_at(&mut self, off: u64, d: &[u8]) -> io::Result<()> {
            self.0.write_at(off, d)
        }
        fn sync(&mut self) -> io::Result<()> {
            self.0.sync()
        }
        fn read_back(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
            self.1 += 1;
            if self.1 == 200 {
                return Err(io::Error::other("input/output error"));
            }
            self.0.read_back(off, buf)
        }
    }
    let mut d = Failing(Fake::honest(GIB), 0);
    fill(&mut d.0);
    let before = d.0.content();
    let e = run(&mut d, 1, &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("input/output error"), "{e}");
    assert_eq!(d.0.content(), before);
}

#[test]
fn small_devices_and_odd_sectors_are_not_probed() {
    let p = probe(&mut Fake::honest(16 * MIB));
    assert!(matches!(p.verdict, Verdict::NotProbed { .. }));
    assert_eq!((p.bytes_written, p.bytes_read), (0, 0));
    assert_eq!(honest_cost(16 * MIB, 512), (0, 0));
    assert_eq!(burn_cost(16 * MIB, 512), [(0, 0); 2]);
    assert!(not_probed(GIB, 1 << 20).is_some());
    assert!(not_probed(GIB, 4096).is_none());
}

#[test]
fn a_stamp_names_its_offset_and_run() {
    let (mut a, mut b, mut c) = (vec![], vec![], vec![]);
    stamp(1, 4096, 512, &mut a);
    stamp(2, 4096, 512, &mut b);
    stamp(1, 8192, 512, &mut c);
    assert_eq!(a.len(), 512);
    assert!(a != b && a != c);
    assert_eq!(&a[..8], &4096u64.to_le_bytes());
    assert_eq!(stamped_for(1, &a), Some(4096));
    assert_eq!(stamped_for(2, &a), None);
}

/// A card's data, as a burn writes it: `len` bytes from 1 MiB (the wrap test's block among
/// them), flushed. Returns the ranges written.
fn card(d: &mut Fake, len: u64) -> Vec<(u64, u64)> {
    let mut x = 99u64;
    let mut data = vec![0u8; len as usize];
    for c in data.chunks_mut(8) {
        c.copy_from_slice(&next(&mut x).to_le_bytes()[..c.len()]);
    }
    d.write_at(MIB, &data).unwrap();
    d.sync().unwrap();
    vec![(MIB, MIB + len)]
}

/// Both halves of a burn's probe around `len` bytes of card.
fn burn(d: &mut Fake, len: u64) -> (Begun, Vec<(u64, u64)>) {
    let avoid = vec![(0, MIB + len)];
    let begun = Stamped::begin(d, 5, &avoid, &mut |_| {}).unwrap();
    let Begun::Stamped(s) = begun else {
        return (begun, avoid);
    };
    card(d, len);
    (Begun::Done(s.end(d, len, &mut |_| {}).unwrap()), avoid)
}

#[test]
fn a_burn_s_probe_costs_the_card_and_leaves_the_card_as_written_without_it() {
    let len = 8 * MIB;
    let mut plain = Fake::honest(GIB);
    fill(&mut plain);
    card(&mut plain, len);
    let mut d = Fake::honest(GIB);
    fill(&mut d);
    let (Begun::Done(p), _) = burn(&mut d, len) else {
        panic!("no verdict")
    };
    assert_eq!(p.verdict, Verdict::Honest);
    assert!(p.in_burn);
    assert_eq!(p.ruled_out_cache_up_to, len);
    let [begin, end] = burn_cost(GIB, 512);
    assert_eq!(
        (p.bytes_written, p.bytes_read),
        (begin.0 + end.0, begin.1 + end.1)
    );
    assert!(p.bytes_written + p.bytes_read < 200 << 10);
    assert_eq!(d.content(), plain.content());
    assert!(
        p.describe().contains("after the card's 8 MiB")
            && p.describe().contains("`pi-burn probe` is the full test"),
        "{}",
        p.describe()
    );
}

#[test]
fn a_burn_finds_a_limbo_fake_behind_a_cache_the_card_flushes_and_says_what_it_cannot() {
    // No cache, and a cache smaller than the card: found, the real size to the block.
    for cache in [0, 4 * MIB] {
        let mut d = Fake::limbo(GIB, 256 * MIB, cache);
        let (Begun::Done(p), _) = burn(&mut d, 8 * MIB) else {
            panic!("no verdict")
        };
        assert_eq!(
            p.verdict,
            Verdict::Limbo {
                holds: 256 * MIB,
                at_least: 256 * MIB,
                exact: true
            },
            "cache {cache}"
        );
    }
    // A cache larger than the card: not ruled out, and said so.
    let mut d = Fake::limbo(GIB, 256 * MIB, 16 * MIB);
    let (Begun::Done(p), _) = burn(&mut d, 8 * MIB) else {
        panic!("no verdict")
    };
    assert_eq!(p.verdict, Verdict::Honest);
    assert!(
        p.describe().contains(
            "no smaller card hides behind a cache of up to 8 MiB; a larger cache could hide one"
        ),
        "{}",
        p.describe()
    );
    // A wrap-around: found before the card is written.
    let mut d = Fake::new(GIB, 256 * MIB, true);
    let (Begun::Done(p), _) = burn(&mut d, 8 * MIB) else {
        panic!("no verdict")
    };
    assert_eq!(p.verdict, Verdict::Wraps { every: 256 * MIB });
}

/// A card as large as the device leaves no room for samples: the full test runs before it,
/// every block put back.
#[test]
fn a_card_filling_the_device_gets_the_full_test_first() {
    let mut d = Fake::honest(64 * MIB);
    fill(&mut d);
    let before = d.content();
    let begun = Stamped::begin(&mut d, 5, &[(0, 64 * MIB)], &mut |_| {}).unwrap();
    let Begun::Done(p) = begun else {
        panic!("samples stamped on the card")
    };
    assert_eq!(p.verdict, Verdict::Honest);
    assert!(!p.in_burn);
    assert!(p.bytes_written <= honest_cost(64 * MIB, 512).0);
    assert_eq!(d.content(), before);
}

#[test]
fn samples_avoid_the_card() {
    let mut d = Fake::honest(GIB);
    let avoid = [(0, 100 * MIB), (300 * MIB, 900 * MIB)];
    let Begun::Stamped(s) = Stamped::begin(&mut d, 5, &avoid, &mut |_| {}).unwrap() else {
        panic!("no room found")
    };
    assert_eq!(s.samples.len(), SAMPLES);
    assert!(s
        .samples
        .iter()
        .all(|p| (100 * MIB..300 * MIB - 512).contains(p)
            || (900 * MIB..GIB - MIB - 512).contains(p)));
    s.abandon(&mut d);
    d.sync().unwrap();
    assert!(d.content().is_empty());
}
