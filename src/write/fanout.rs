//! Reading the image once and feeding every target: the first MiB is held back until its table
//! is known (then each target is refused or started in its own thread), later chunks go out to
//! every writer, the image's backup GPT is held back for the end.

use super::engine::{Final, TargetOutcome, Writer};
use super::plan::{Plan, Ranges};
use super::sink::{Sink, TargetError};
use crate::disk::geometry::HEAD;
use crate::disk::gpt::{misfit, HeadTable};
use crate::disk::sparse::SparseImage;
use crate::firmware::digest::Sha256Digest;
use crate::progress::{Progress, TargetPhase};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

const CHUNK: u64 = 4 << 20;

/// Where the bytes come from.
pub enum Input<'a> {
    /// A seekable raw file: each range is read where it lies.
    File(std::fs::File),
    /// A stream: read in order, bytes outside the ranges skipped.
    Stream(Box<dyn Read + Send>),
    /// A card or SSD built in memory (sdcard and ssd onto a device): its extents are its map.
    Sparse(&'a SparseImage),
}

/// How every target is written.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Read back everything written and compare it.
    pub verify: bool,
    /// For an image file: the disk description its block map carries (an SSD image).
    pub bmap_disk: Option<String>,
    /// Test each device's real capacity before its data (the probe; devices only).
    pub probe: bool,
}

/// Why the reading side stopped every writer.
#[derive(Debug, Clone)]
enum Abort {
    Interrupted,
    Source(String),
}

impl Abort {
    fn error(&self) -> TargetError {
        match self {
            Abort::Interrupted => TargetError::Interrupted(crate::blockdev::sys::interrupt_name()),
            Abort::Source(s) => TargetError::Source(s.clone()),
        }
    }
}

struct Reader<'a> {
    input: Input<'a>,
    pos: u64,
}

fn interrupted_io() -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, "interrupted")
}

impl Reader<'_> {
    fn read_exact_at(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        match &mut self.input {
            Input::File(f) => {
                use std::os::unix::fs::FileExt;
                f.read_exact_at(buf, off)
            }
            Input::Sparse(img) => {
                if off + buf.len() as u64 > img.size() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "past the end of the image",
                    ));
                }
                img.read_at(off, buf);
                Ok(())
            }
            Input::Stream(s) => {
                if off < self.pos {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "ranges out of order",
                    ));
                }
                io::copy(&mut s.by_ref().take(off - self.pos), &mut io::sink())?;
                s.read_exact(buf)?;
                self.pos = off + buf.len() as u64;
                Ok(())
            }
        }
    }

    /// Up to `buf.len()` bytes at the current position (for whole-input plans).
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let got = match &mut self.input {
                Input::Stream(s) => s.read(&mut buf[n..]),
                Input::File(f) => {
                    use std::os::unix::fs::FileExt;
                    f.read_at(&mut buf[n..], self.pos + n as u64)
                }
                Input::Sparse(img) => {
                    let left = img.size().saturating_sub(self.pos + n as u64);
                    let k = left.min((buf.len() - n) as u64) as usize;
                    img.read_at(self.pos + n as u64, &mut buf[n..n + k]);
                    Ok(k)
                }
            };
            match got {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if crate::blockdev::sys::interrupted() {
                        return Err(interrupted_io());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Splits the plan into chunks (never straddling the head's end), handing each to `emit`.
/// Ranges are checked against their block map's hashes.
fn produce(
    reader: &mut Reader<'_>,
    plan: &Plan,
    emit: &mut dyn FnMut(u64, Vec<u8>) -> Result<(), Abort>,
) -> Result<(), Abort> {
    let failed = |at: u64, e: io::Error| {
        if e.kind() == io::ErrorKind::Interrupted && crate::blockdev::sys::interrupted() {
            Abort::Interrupted
        } else {
            Abort::Source(format!("reading the image at byte {at}: {e}"))
        }
    };
    match &plan.ranges {
        Ranges::Map(ranges) => {
            for r in ranges {
                let mut h = Sha256::new();
                let mut at = r.offset;
                while at < r.end() {
                    let lim = if at < HEAD {
                        HEAD.min(r.end())
                    } else {
                        r.end()
                    };
                    let n = (lim - at).min(CHUNK);
                    let mut buf = vec![0u8; n as usize];
                    reader
                        .read_exact_at(at, &mut buf)
                        .map_err(|e| failed(at, e))?;
                    if r.sha256.is_some() {
                        h.update(&buf);
                    }
                    emit(at, buf)?;
                    at += n;
                }
                if let Some(want) = &r.sha256 {
                    let got = Sha256Digest::from_hasher(h);
                    if &got != want {
                        return Err(Abort::Source(format!(
                            "the image does not match its block map at bytes {}-{}: sha256 {got}, the map says {want}",
                            r.offset,
                            r.end()
                        )));
                    }
                }
            }
        }
        Ranges::Whole => loop {
            let at = reader.pos;
            let n = if at < HEAD { HEAD - at } else { CHUNK };
            let mut buf = vec![0u8; n as usize];
            let got = reader.read_some(&mut buf).map_err(|e| failed(at, e))?;
            if got == 0 {
                break;
            }
            buf.truncate(got);
            emit(at, buf)?;
        },
    }
    Ok(())
}

struct Chunk {
    off: u64,
    data: Vec<u8>,
}

enum Msg {
    Data(Arc<Chunk>),
    Finish(Arc<Final>),
    Abort(Abort),
}

pub(super) const NO_TABLE: &str = "the image is not a disk image: its first MiB holds neither an MBR boot signature nor a GPT (a bare filesystem needs --no-table)";

/// The image's table, or why no target may take the image: no table where one is required, a
/// damaged GPT, or an image shorter than its own table says (a partial download).
fn head_table(
    head: &[u8],
    image_size: Option<u64>,
    require_table: bool,
) -> Result<HeadTable, String> {
    let table = HeadTable::from_head(head).map_err(|e| format!("{e:#}"))?;
    if table == HeadTable::None && require_table {
        return Err(NO_TABLE.into());
    }
    if let (Some(size), Some(span)) = (image_size, table.spans(512)) {
        if span > size {
            let what = match table {
                HeadTable::Gpt(_) => "its GPT says it ends at byte",
                _ => "its last MBR partition ends at byte",
            };
            return Err(format!(
                "the image is {size} bytes but {what} {span}: it is truncated (a partial download?)"
            ));
        }
    }
    Ok(table)
}

/// The first MiB of `input` (less when the image is smaller), as the engine reads it.
pub fn read_head(input: Input<'_>) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; HEAD as usize];
    let mut r = Reader { input, pos: 0 };
    let n = r.read_some(&mut head)?;
    head.truncate(n);
    Ok(head)
}

/// What a real run would refuse, per target (name, size, sector size), from the image's head:
/// the checks made before any device is touched. One entry per target, in order: `None` for
/// one that can take the image.
pub fn target_problems(
    head: &[u8],
    image_size: Option<u64>,
    require_table: bool,
    targets: impl Iterator<Item = (String, u64, u64)>,
) -> Vec<Option<String>> {
    let table = head_table(head, image_size, require_table);
    targets
        .map(|(name, size, ss)| match &table {
            Err(e) => Some(format!("{name}: {e}")),
            Ok(t) => {
                let image_size = image_size.or(match t {
                    HeadTable::Gpt(g) => Some(g.image_size()),
                    _ => None,
                });
                misfit(t, image_size, size, ss).map(|why| format!("{name}: {why}"))
            }
        })
        .collect()
}

/// The producer side: it collects the image's first MiB, then (knowing the table) refuses the
/// targets that cannot take the image and starts a writer thread for each of the others, and
/// fans every later chunk out to them, holding the backup GPT back for the end.
struct Fanout<'s, 'e> {
    scope: &'s std::thread::Scope<'s, 'e>,
    progress: &'e dyn Progress,
    options: &'e Options,
    /// Targets not started yet.
    pending: Vec<Box<dyn Sink>>,
    require_table: bool,
    plan_bytes: Option<u64>,
    head: Vec<u8>,
    head_mapped: Vec<(u64, u64)>,
    started: bool,
    table: HeadTable,
    image_size: Option<u64>,
    relayout: Option<super::plan::RelayoutRef>,
    /// The plan's ranges (offset, end), when it has a map.
    map: Option<Vec<(u64, u64)>>,
    /// One sender per started target.
    txs: Vec<Option<SyncSender<Msg>>>,
    tail_region: Option<(u64, u64)>,
    tail: Vec<(u64, Arc<Vec<u8>>)>,
    outcomes: Vec<Option<TargetOutcome>>,
    handles: Vec<(usize, std::thread::ScopedJoinHandle<'s, TargetOutcome>)>,
}

/// Whether and how a target is probed: not, or with its samples kept out of these ranges
/// (sorted, disjoint: all the data writes), or with the full test before the data (`None`: what
/// the data writes is not known before it ends).
type ProbeWith = Option<Option<Vec<(u64, u64)>>>;

/// One target's thread: wipe, (probe,) data, flush, table last, flush, (probe,) reread, read
/// back.
fn run_target(mut w: Writer<'_>, rx: Receiver<Msg>, total: u64, probe: ProbeWith) -> TargetOutcome {
    let result = (|| -> Result<(), TargetError> {
        if let Some(avoid) = probe {
            // The wipe goes first, then the probe, then the data.
            let avoid = avoid.map(|mut a| {
                a.extend(w.relaid_ranges());
                coalesce_ranges(a)
            });
            let wipe = super::engine::table_area_bytes(w.size());
            w.step(TargetPhase::Probe, w.probe_costs(avoid.is_some())[0] + wipe);
            w.wipe()?;
            w.probe_begin(avoid.as_deref())?;
            // One count for the write: the wipe's bytes are in it, done.
            w.step(TargetPhase::Write, total);
            w.advance(wipe);
        } else {
            w.step(TargetPhase::Write, total);
            w.wipe()?;
        }
        loop {
            match rx.recv() {
                Ok(Msg::Data(c)) => w.write(c.off, &c.data)?,
                Ok(Msg::Abort(a)) => return Err(a.error()),
                Err(_) => return Err(TargetError::Source("the image ended early".into())),
                Ok(Msg::Finish(f)) => {
                    w.finish(&f)?;
                    break;
                }
            }
        }
        w.probe_end()?;
        w.sink().reread();
        w.read_back()
    })();
    // The reader may still be sending: let it see this target is gone.
    drop(rx);
    let result = match result {
        Ok(()) => Ok(std::mem::take(&mut w.stats)),
        Err(e) => Err(w.fail(e)),
    };
    w.end();
    TargetOutcome {
        name: w.name().to_string(),
        result,
    }
}

impl<'s, 'e> Fanout<'s, 'e> {
    fn refuse(&mut self, sink: &dyn Sink, why: String) {
        self.outcomes.push(Some(TargetOutcome {
            name: sink.name(),
            result: Err(super::engine::Failed {
                error: TargetError::Refused(why),
                wipe: super::engine::Wipe::Untouched,
                done: Default::default(),
            }),
        }));
        self.txs.push(None);
    }

    /// The head is complete: read its table, then refuse or start each target.
    fn start(&mut self) {
        self.started = true;
        let pending = std::mem::take(&mut self.pending);
        self.table = match head_table(&self.head, self.image_size, self.require_table) {
            Ok(t) => t,
            Err(why) => {
                for sink in &pending {
                    self.refuse(sink.as_ref(), why.clone());
                }
                return;
            }
        };
        if let HeadTable::Gpt(g) = &self.table {
            self.tail_region = Some(g.backup_region());
            // A stream's size: where its backup GPT ends.
            self.image_size.get_or_insert(g.image_size());
        }
        let data = self.plan_bytes.or(self.image_size).unwrap_or(0);
        if let Err(why) = self.check_relayout() {
            for sink in &pending {
                self.refuse(sink.as_ref(), why.clone());
            }
            return;
        }
        for sink in pending {
            if let Some(why) = misfit(
                &self.table,
                self.image_size,
                sink.size(),
                sink.sector_size(),
            ) {
                self.refuse(sink.as_ref(), why);
                continue;
            }
            let relaid = match self.relaid_for(sink.as_ref()) {
                Ok(r) => r,
                Err(why) => {
                    self.refuse(sink.as_ref(), why);
                    continue;
                }
            };
            let (tx, rx) = sync_channel::<Msg>(4);
            let id = self.outcomes.len();
            let total = data + super::engine::table_area_bytes(sink.size());
            let probe = self.options.probe.then(|| self.data_ranges());
            let mut w = Writer::new(id, sink, self.options.verify, self.progress);
            if let Some(r) = relaid {
                w.relay(r);
            }
            // Writers ignore Ctrl-C: it reaches the reading thread, which stops them.
            let handle = crate::blockdev::sys::with_interrupts_blocked(|| {
                self.scope.spawn(move || run_target(w, rx, total, probe))
            });
            self.handles.push((id, handle));
            self.outcomes.push(None);
            self.txs.push(Some(tx));
        }
    }

    /// Every range of a target the image's data covers (`end` exclusive), when known before the
    /// data: the block map's ranges, or the whole image when its size is known.
    fn data_ranges(&self) -> Option<Vec<(u64, u64)>> {
        match (&self.map, self.image_size) {
            (Some(m), _) => Some(m.clone()),
            (None, Some(size)) => Some(vec![(0, size)]),
            (None, None) => None,
        }
    }

    /// A relayout must reproduce the image's own table on the image's own size: else the block
    /// map's disk description is not this image's.
    fn check_relayout(&self) -> Result<(), String> {
        let (Some(r), HeadTable::Gpt(g), Some(size)) =
            (&self.relayout, &self.table, self.image_size)
        else {
            return Ok(());
        };
        let own = r.0.relayout(size, g.sector_size)?;
        for (off, data) in own.blocks.iter().filter(|(o, _)| *o < HEAD) {
            let end = (*off as usize + data.len()).min(self.head.len());
            if self.head[*off as usize..end] != data[..end - *off as usize] {
                return Err(format!(
                    "the disk its block map describes does not give the image's own table (they differ at byte {off}): the map is not this image's"
                ));
            }
        }
        Ok(())
    }

    /// The table a larger target gets, when the plan lays the disk out anew.
    fn relaid_for(&self, sink: &dyn Sink) -> Result<Option<super::plan::Relaid>, String> {
        match (&self.relayout, self.image_size) {
            (Some(r), Some(size)) if sink.size() > size => {
                r.0.relayout(sink.size(), sink.sector_size()).map(Some)
            }
            _ => Ok(None),
        }
    }

    fn send(&mut self, m: &dyn Fn() -> Msg) {
        for t in self.txs.iter_mut() {
            if let Some(tx) = t {
                if tx.send(m()).is_err() {
                    *t = None;
                }
            }
        }
    }

    fn send_data(&mut self, off: u64, data: Vec<u8>) {
        let c = Arc::new(Chunk { off, data });
        self.send(&|| Msg::Data(c.clone()));
    }

    /// One chunk of the image: into the head below 1 MiB, else out to every writer.
    fn chunk(&mut self, off: u64, data: Vec<u8>) {
        if off < HEAD {
            self.head[off as usize..off as usize + data.len()].copy_from_slice(&data);
            match self.head_mapped.last_mut() {
                Some(l) if l.0 + l.1 == off => l.1 += data.len() as u64,
                _ => self.head_mapped.push((off, data.len() as u64)),
            }
            return;
        }
        if !self.started {
            self.start();
        }
        let end = off + data.len() as u64;
        let Some((t0, tl)) = self
            .tail_region
            .filter(|(t0, tl)| end > *t0 && off < t0 + tl)
        else {
            return self.send_data(off, data);
        };
        // Keep the image's backup GPT for the end (or for relocation); split around it.
        let (a, b) = (t0.max(off), (t0 + tl).min(end));
        if off < a {
            self.send_data(off, data[..(a - off) as usize].to_vec());
        }
        self.tail.push((
            a,
            Arc::new(data[(a - off) as usize..(b - off) as usize].to_vec()),
        ));
        if b < end {
            self.send_data(b, data[(b - off) as usize..].to_vec());
        }
    }

    /// The image has been read (or failed with `err`): tell every writer, collect outcomes.
    fn finish(mut self, err: Option<Abort>) -> Vec<TargetOutcome> {
        if !self.started {
            match &err {
                // The image failed before its first MiB was read: no device is touched.
                Some(e) => {
                    let why = e.error().to_string();
                    for sink in std::mem::take(&mut self.pending) {
                        self.refuse(sink.as_ref(), why.clone());
                    }
                }
                None => self.start(),
            }
        }
        match err {
            Some(e) => self.send(&|| Msg::Abort(e.clone())),
            None => {
                let fin = Arc::new(Final {
                    head: std::mem::take(&mut self.head),
                    head_mapped: std::mem::take(&mut self.head_mapped),
                    table: self.table.clone(),
                    tail: std::mem::take(&mut self.tail),
                    image_size: self.image_size,
                });
                self.send(&|| Msg::Finish(fin.clone()));
            }
        }
        self.txs.clear();
        for (i, h) in std::mem::take(&mut self.handles) {
            let name = format!("target {}", i + 1);
            self.outcomes[i] = Some(h.join().unwrap_or_else(|_| TargetOutcome {
                name,
                result: Err(super::engine::Failed {
                    error: TargetError::Source("the writer thread panicked".into()),
                    wipe: super::engine::Wipe::Untouched,
                    done: Default::default(),
                }),
            }));
        }
        self.outcomes.into_iter().flatten().collect()
    }
}

/// Flashes `input` per `plan` onto every sink. Sinks that cannot take the image fail before
/// anything is written to them; the others run in parallel, each in its own thread.
pub fn flash(
    input: Input<'_>,
    plan: &Plan,
    sinks: Vec<Box<dyn Sink>>,
    options: &Options,
    progress: &dyn Progress,
) -> Vec<TargetOutcome> {
    // From here an interrupt stops the writers, which wipe what they touched.
    let _writing = crate::blockdev::sys::Writing::start();
    std::thread::scope(|scope| {
        let mut fanout = Fanout {
            scope,
            progress,
            options,
            pending: sinks,
            require_table: plan.require_table,
            plan_bytes: match &plan.ranges {
                Ranges::Map(_) => Some(plan.bytes()),
                Ranges::Whole => None,
            },
            head: vec![0u8; HEAD as usize],
            head_mapped: vec![],
            started: false,
            table: HeadTable::None,
            image_size: plan.image_size,
            relayout: plan.relayout.clone(),
            map: match &plan.ranges {
                Ranges::Map(r) => Some(coalesce_ranges(
                    r.iter().map(|r| (r.offset, r.end())).collect(),
                )),
                Ranges::Whole => None,
            },
            txs: vec![],
            tail_region: None,
            tail: vec![],
            outcomes: vec![],
            handles: vec![],
        };
        let mut reader = Reader { input, pos: 0 };
        let r = produce(&mut reader, plan, &mut |off, data| {
            if crate::blockdev::sys::interrupted() {
                return Err(Abort::Interrupted);
            }
            fanout.chunk(off, data);
            Ok(())
        });
        // A stream that ends before the end its GPT gives is truncated: its backup GPT never
        // came.
        let r = r.and_then(|()| match fanout.image_size {
            Some(size) if plan.ranges == Ranges::Whole && fanout.started && reader.pos < size => {
                Err(Abort::Source(format!(
                    "the image ended after {} bytes, but its GPT says it is {size} bytes long: it is truncated",
                    reader.pos
                )))
            }
            _ => Ok(()),
        });
        fanout.finish(r.err())
    })
}

/// `ranges` (offset, end) sorted, with overlapping and touching ones made one.
fn coalesce_ranges(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(l) if a <= l.1 => l.1 = l.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}
