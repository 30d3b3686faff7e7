//! Flashing an image onto one or many targets: one read of the source feeds every target;
//! each writes in its own thread, wipes its table areas first and writes the partition table
//! last, moves a GPT's backup to its end when it is larger than the image, and reads back
//! everything it wrote. A failing target stops only itself.

use crate::firmware::digest::Sha256Digest;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

/// Bytes at the start of an image held back and written last: the MBR, the primary GPT and
/// whatever else lies in the first MiB.
pub const HEAD: u64 = 1 << 20;
const CHUNK: u64 = 4 << 20;

/// A target of a flash: a block device, or anything that behaves like one (tests).
pub trait Sink: Send {
    fn name(&self) -> String;
    fn size(&self) -> u64;
    fn sector_size(&self) -> u64;
    fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()>;
    fn sync(&mut self) -> io::Result<()>;
    /// Reads what the medium holds, bypassing any cache.
    fn read_back(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Asks the kernel to reread the partition table (a no-op by default).
    fn reread(&mut self) {}
}

pub mod device;
pub mod image;
pub mod source;

pub use crate::disk::gpt::{misfit, read_table, relocate_gpt, Table};

/// Where the bytes come from.
pub enum Input<'a> {
    /// A seekable raw file: each range is read where it lies.
    File(std::fs::File),
    /// A stream: read in order, bytes outside the ranges skipped.
    Stream(Box<dyn Read + Send>),
    /// A card or SSD built in memory (sdcard and ssd onto a device): its extents are its map.
    Sparse(&'a crate::disk::sparse::SparseImage),
}

/// The areas wiped before anything else is written and again on any failure, so that no stale
/// or half-written table survives: the first and last 32 KiB hold the MBR and a whole GPT
/// (header and 128 entries) at 512- and 4096-byte sectors, primary and backup.
pub fn table_areas(size: u64) -> Vec<(u64, u64)> {
    const AREA: u64 = 32 << 10;
    if size <= 2 * AREA {
        vec![(0, size)]
    } else {
        vec![(0, AREA), (size - AREA, AREA)]
    }
}

/// What to write: byte ranges in order (with the bmap's SHA-256 of each), or the whole input.
pub struct Plan {
    pub image_size: Option<u64>,
    pub ranges: Option<Vec<(u64, u64, Option<Sha256Digest>)>>,
    /// Refuse data whose first MiB holds neither an MBR nor a GPT (a bare filesystem, random
    /// bytes): only an explicit flag writes such data.
    pub require_table: bool,
}

impl Plan {
    /// Exactly the ranges of a block map, each checked against its SHA-256.
    pub fn from_bmap(b: &crate::disk::bmap::Bmap) -> Self {
        Plan {
            require_table: true,
            image_size: Some(b.image_size),
            ranges: Some(
                b.byte_ranges()
                    .into_iter()
                    .zip(&b.ranges)
                    .map(|((o, l), r)| (o, l, r.sha256))
                    .collect(),
            ),
        }
    }

    /// Bytes to read: the ranges, or the whole image when its size is known (0 otherwise).
    pub fn bytes(&self) -> u64 {
        self.ranges
            .as_ref()
            .map(|r| r.iter().map(|x| x.1).sum())
            .or(self.image_size)
            .unwrap_or(0)
    }
}

struct Chunk {
    off: u64,
    data: Vec<u8>,
}

enum Msg {
    Data(Arc<Chunk>),
    Finish(Arc<Final>),
    Abort(String),
}

struct Final {
    head: Vec<u8>,
    head_mapped: Vec<(u64, u64)>,
    table: Table,
    tail: Vec<Arc<Chunk>>,
    image_size: Option<u64>,
}

/// How one target fared.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outcome {
    pub target: String,
    pub ok: bool,
    pub error: Option<String>,
    pub bytes_written: u64,
    pub bytes_read_back: u64,
    pub gpt_relocated: bool,
    /// The failure was a read-back that differs from what was written (exit code 3).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_back_differs: bool,
}

/// Reads the plan's bytes in order, calling `emit` with chunks; checks each range's SHA-256.
struct Reader<'a> {
    input: Input<'a>,
    pos: u64,
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

    /// Up to `buf.len()` bytes of a stream at its current position (for whole-stream plans).
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Input::Stream(s) = &mut self.input else {
            unreachable!("whole-input plans read streams")
        };
        let mut n = 0;
        while n < buf.len() {
            match s.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    if crate::blockdev::sys::interrupted() {
                        return Err(io::Error::new(io::ErrorKind::Interrupted, INTERRUPTED));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Splits the plan into chunks, handing each to `emit`. Ranges are checked against their hashes.
fn produce(
    reader: &mut Reader<'_>,
    plan: &Plan,
    emit: &mut dyn FnMut(u64, Vec<u8>) -> Result<()>,
) -> Result<()> {
    match &plan.ranges {
        Some(ranges) => {
            for (off, len, sum) in ranges {
                let mut h = Sha256::new();
                let mut at = *off;
                while at < off + len {
                    // Chunks never straddle the head's end.
                    let lim = if at < HEAD {
                        HEAD.min(off + len)
                    } else {
                        off + len
                    };
                    let n = (lim - at).min(CHUNK);
                    let mut buf = vec![0u8; n as usize];
                    reader
                        .read_exact_at(at, &mut buf)
                        .with_context(|| format!("reading the image at byte {at}"))?;
                    h.update(&buf);
                    emit(at, buf)?;
                    at += n;
                }
                if let Some(want) = sum {
                    let got = Sha256Digest::from_hasher(h);
                    if &got != want {
                        bail!("the image does not match its block map at bytes {off}-{}: sha256 {got}, the map says {want}", off + len);
                    }
                }
            }
        }
        None => loop {
            let at = reader.pos;
            let n = if at < HEAD { HEAD - at } else { CHUNK };
            let mut buf = vec![0u8; n as usize];
            let got = reader
                .read_some(&mut buf)
                .with_context(|| format!("reading the image at byte {at}"))?;
            if got == 0 {
                break;
            }
            buf.truncate(got);
            emit(at, buf)?;
        },
    }
    Ok(())
}

/// One target's thread: wipe, data, flush, head and table last, flush, reread, read back.
/// Told how many more bytes a target has written (a progress bar per device).
pub type Meter = Box<dyn Fn(u64) + Send>;

fn run_sink(
    mut sink: Box<dyn Sink>,
    rx: Receiver<Msg>,
    verify: bool,
    meter: Option<Meter>,
) -> Outcome {
    let mut out = Outcome {
        target: sink.name(),
        ..Default::default()
    };
    let size = sink.size();
    let areas = table_areas(size);
    // What went where, as CRC-32 (hardware-assisted): enough to catch a bad read-back.
    let mut written: Vec<(u64, u64, u32)> = vec![];
    let wipe = |sink: &mut Box<dyn Sink>| -> io::Result<u64> {
        let mut n = 0;
        for (o, l) in &areas {
            sink.write_at(*o, &vec![0u8; *l as usize])?;
            n += l;
        }
        Ok(n)
    };
    let result = (|| -> Result<()> {
        out.bytes_written += wipe(&mut sink).context("wiping the table areas")?;
        let mut write =
            |sink: &mut Box<dyn Sink>, off: u64, data: &[u8], out: &mut Outcome| -> Result<()> {
                if off + data.len() as u64 > size {
                    bail!(
                        "the image goes past the device's end ({size} bytes) at byte {}",
                        off + data.len() as u64
                    );
                }
                sink.write_at(off, data)
                    .with_context(|| format!("writing at byte {off}"))?;
                out.bytes_written += data.len() as u64;
                if let Some(m) = &meter {
                    m(data.len() as u64);
                }
                if verify {
                    written.push((off, data.len() as u64, crc32fast::hash(data)));
                }
                Ok(())
            };
        loop {
            match rx.recv() {
                Ok(Msg::Data(c)) => write(&mut sink, c.off, &c.data, &mut out)?,
                Ok(Msg::Abort(why)) => bail!("{why}"),
                Err(_) => bail!("the image ended early"),
                Ok(Msg::Finish(f)) => {
                    sink.sync().context("flushing")?;
                    let relocate = match (&f.table, f.image_size) {
                        (Table::Gpt(g), Some(s)) => {
                            s < size && (size / g.sector_size) > g.alternate_lba + 1
                        }
                        (Table::Gpt(_), None) => false,
                        _ => false,
                    };
                    let head = match (&f.table, relocate) {
                        (Table::Gpt(g), true) => {
                            let (head, (boff, backup)) =
                                relocate_gpt(&f.head, g, size / g.sector_size);
                            write(&mut sink, boff, &backup, &mut out)?;
                            out.gpt_relocated = true;
                            head
                        }
                        _ => {
                            for c in &f.tail {
                                write(&mut sink, c.off, &c.data, &mut out)?;
                            }
                            f.head.clone()
                        }
                    };
                    // The head: its mapped parts only (a block map may leave gaps).
                    for (o, l) in &f.head_mapped {
                        write(
                            &mut sink,
                            *o,
                            &head[*o as usize..(o + l) as usize],
                            &mut out,
                        )?;
                    }
                    sink.sync().context("flushing")?;
                    return Ok(());
                }
            }
        }
    })();
    if let Err(e) = result {
        let _ = wipe(&mut sink).and_then(|_| sink.sync());
        drop(rx);
        out.error = Some(format!(
            "{e:#}; its partition table was wiped: burn it again"
        ));
        return out;
    }
    sink.reread();
    if verify {
        let checked = (|| -> Result<(), (String, bool)> {
            let mut buf = vec![];
            for (off, len, sum) in &written {
                if crate::blockdev::sys::interrupted() {
                    return Err((INTERRUPTED.to_string(), false));
                }
                buf.resize(*len as usize, 0);
                sink.read_back(*off, &mut buf)
                    .map_err(|e| (format!("reading back at byte {off}: {e}"), false))?;
                out.bytes_read_back += len;
                if crc32fast::hash(&buf) != *sum {
                    return Err((
                        format!(
                            "read back differs from what was written at bytes {off}-{}",
                            off + len
                        ),
                        true,
                    ));
                }
            }
            Ok(())
        })();
        if let Err((e, differs)) = checked {
            // A card that failed must never look bootable.
            let wiped = wipe(&mut sink).and_then(|_| sink.sync());
            sink.reread();
            out.read_back_differs = differs;
            out.error = Some(match wiped {
                Ok(()) => format!("{e}; its partition table was wiped: burn it again"),
                Err(w) => {
                    format!("{e}; wiping its partition table failed too ({w}): do not boot from it")
                }
            });
            return out;
        }
    }
    out.ok = true;
    out
}

/// The first MiB of `input` (less when the image is smaller), as the engine reads it.
pub fn read_head(input: Input<'_>) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; HEAD as usize];
    let n = match input {
        Input::File(f) => {
            use std::os::unix::fs::FileExt;
            let mut n = 0;
            while n < head.len() {
                match f.read_at(&mut head[n..], n as u64)? {
                    0 => break,
                    k => n += k,
                }
            }
            n
        }
        Input::Sparse(img) => {
            let n = (img.size().min(HEAD)) as usize;
            img.read_at(0, &mut head[..n]);
            n
        }
        Input::Stream(mut s) => {
            let mut n = 0;
            while n < head.len() {
                match s.read(&mut head[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            n
        }
    };
    head.truncate(n);
    Ok(head)
}

/// What a real run would refuse, per target (name, size, sector size), from the image's head:
/// the checks made before any device is touched.
pub fn head_problems(
    head: &[u8],
    image_size: Option<u64>,
    require_table: bool,
    targets: impl Iterator<Item = (String, u64, u64)>,
) -> Vec<String> {
    let table = match read_table(head) {
        Ok(Table::None) if require_table => Err(anyhow::anyhow!(NO_TABLE)),
        other => other,
    };
    let mut out = vec![];
    for (name, size, ss) in targets {
        match &table {
            Err(e) => out.push(format!("{name}: {e:#}")),
            Ok(t) => {
                let image_size = image_size.or(match t {
                    Table::Gpt(g) => Some((g.alternate_lba + 1) * g.sector_size),
                    _ => None,
                });
                if let Some(why) = misfit(t, image_size, size, ss) {
                    out.push(format!("{name}: {why}"));
                }
            }
        }
    }
    out
}

const NO_TABLE: &str = "the image is not a disk image: its first MiB holds neither an MBR boot signature nor a GPT (a bare filesystem needs --no-table)";

/// The producer side of a flash: it collects the image's first MiB, then (knowing the table)
/// refuses the targets that cannot take the image and starts a writer thread for each of the
/// others, and fans every later chunk out to them, holding the backup GPT back for the end.
struct Fanout {
    /// Targets not started yet, with their meters.
    pending: Vec<(Box<dyn Sink>, Option<Meter>)>,
    verify: bool,
    require_table: bool,
    head: Vec<u8>,
    head_mapped: Vec<(u64, u64)>,
    started: bool,
    table: Table,
    image_size: Option<u64>,
    /// One sender per target (none for a target refused before it was touched).
    txs: Vec<Option<SyncSender<Msg>>>,
    tail_region: Option<(u64, u64)>,
    tail: Vec<Arc<Chunk>>,
    handles: Vec<(usize, std::thread::JoinHandle<Outcome>)>,
    outcomes: Vec<Option<Outcome>>,
}

impl Fanout {
    fn new(sinks: Vec<Box<dyn Sink>>, meters: Vec<Meter>, plan: &Plan, verify: bool) -> Self {
        let meters: Vec<Option<Meter>> = if meters.len() == sinks.len() {
            meters.into_iter().map(Some).collect()
        } else {
            sinks.iter().map(|_| None).collect()
        };
        Fanout {
            pending: sinks.into_iter().zip(meters).collect(),
            verify,
            require_table: plan.require_table,
            head: vec![0u8; HEAD as usize],
            head_mapped: vec![],
            started: false,
            table: Table::None,
            image_size: plan.image_size,
            txs: vec![],
            tail_region: None,
            tail: vec![],
            handles: vec![],
            outcomes: vec![],
        }
    }

    /// Every target not started yet fails with `why`, untouched.
    fn refuse_all(&mut self, why: &str) {
        for (sink, _) in std::mem::take(&mut self.pending) {
            self.outcomes.push(Some(Outcome {
                target: sink.name(),
                error: Some(format!("{why}; nothing was written")),
                ..Default::default()
            }));
            self.txs.push(None);
        }
    }

    /// The head is complete: read its table, then refuse or start each target.
    fn start(&mut self) {
        self.started = true;
        self.table = match read_table(&self.head) {
            Ok(Table::None) if self.require_table => return self.refuse_all(NO_TABLE),
            Ok(t) => t,
            Err(e) => return self.refuse_all(&format!("{e:#}")),
        };
        if let Table::Gpt(g) = &self.table {
            self.tail_region = Some(g.backup_region());
            // A stream's size: where its backup GPT ends.
            self.image_size
                .get_or_insert((g.alternate_lba + 1) * g.sector_size);
        }
        for (sink, meter) in std::mem::take(&mut self.pending) {
            if let Some(why) = misfit(
                &self.table,
                self.image_size,
                sink.size(),
                sink.sector_size(),
            ) {
                self.outcomes.push(Some(Outcome {
                    target: sink.name(),
                    error: Some(format!("{why}; nothing was written")),
                    ..Default::default()
                }));
                self.txs.push(None);
                continue;
            }
            let (tx, rx) = sync_channel::<Msg>(4);
            let verify = self.verify;
            // Writers ignore Ctrl-C: it reaches the reading thread, which stops them.
            let handle = crate::blockdev::sys::with_interrupts_blocked(|| {
                std::thread::spawn(move || run_sink(sink, rx, verify, meter))
            });
            self.handles.push((self.outcomes.len(), handle));
            self.outcomes.push(None);
            self.txs.push(Some(tx));
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
        if let Some((t0, tl)) = self.tail_region {
            if end > t0 && off < t0 + tl {
                // Keep the image's backup GPT for the end (or for relocation); split around it.
                let (a, b) = (t0.max(off), (t0 + tl).min(end));
                if off < a {
                    let pre = Arc::new(Chunk {
                        off,
                        data: data[..(a - off) as usize].to_vec(),
                    });
                    self.send(&|| Msg::Data(pre.clone()));
                }
                self.tail.push(Arc::new(Chunk {
                    off: a,
                    data: data[(a - off) as usize..(b - off) as usize].to_vec(),
                }));
                if b < end {
                    let post = Arc::new(Chunk {
                        off: b,
                        data: data[(b - off) as usize..].to_vec(),
                    });
                    self.send(&|| Msg::Data(post.clone()));
                }
                return;
            }
        }
        let c = Arc::new(Chunk { off, data });
        self.send(&|| Msg::Data(c.clone()));
    }

    /// The image has been read (or failed with `err`): tell every writer, collect outcomes.
    fn finish(mut self, err: Option<String>) -> Vec<Outcome> {
        if !self.started {
            match &err {
                // The image failed before its first MiB was read: no device is touched.
                Some(e) => self.refuse_all(e),
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
            self.outcomes[i] = Some(h.join().unwrap_or_else(|_| Outcome {
                error: Some("the writer thread panicked".into()),
                ..Default::default()
            }));
        }
        self.outcomes
            .into_iter()
            .map(|o| o.expect("every target has an outcome"))
            .collect()
    }
}

/// What a target hears when the user interrupts.
const INTERRUPTED: &str = "interrupted (Ctrl-C)";

/// Flashes `input` per `plan` onto every sink. Sinks that cannot take the image (`misfit`) fail
/// before anything is written to them; the others run in parallel. `meters`, when there is one
/// per sink, hear of every write.
pub fn flash(
    input: Input<'_>,
    plan: &Plan,
    sinks: Vec<Box<dyn Sink>>,
    verify: bool,
    progress: &dyn Progress,
    meters: Vec<Meter>,
) -> Result<Vec<Outcome>> {
    // From here an interrupt stops the writers, which wipe what they touched.
    let _writing = crate::blockdev::sys::Writing::start();
    let mut reader = Reader { input, pos: 0 };
    let mut fanout = Fanout::new(sinks, meters, plan, verify);
    progress.start("reading image", plan.bytes());
    let r = produce(&mut reader, plan, &mut |off, data| {
        if crate::blockdev::sys::interrupted() {
            bail!(INTERRUPTED);
        }
        progress.advance(data.len() as u64);
        fanout.chunk(off, data);
        Ok(())
    });
    progress.finish();
    // A stream that ends before the end its GPT gives is truncated: its backup GPT never came.
    let r = r.and_then(|()| match fanout.image_size {
        Some(size) if plan.ranges.is_none() && fanout.started && reader.pos < size => bail!(
            "the image ended after {} bytes, but its GPT says it is {size} bytes long: it is truncated",
            reader.pos
        ),
        _ => Ok(()),
    });
    Ok(fanout.finish(r.err().map(|e| format!("{e:#}"))))
}

#[cfg(test)]
mod tests;
