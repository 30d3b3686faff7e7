//! A block device as a target of the engine: buffered writes through the exclusive
//! descriptor, read-back (and the probe's writes) through an O_DIRECT one, the table reread
//! when done.

use crate::blockdev::device::{reread, Direct, OpenDevice};
use crate::blockdev::sys::pwrite_all;
use crate::write::sink::Sink;
use anyhow::Result;

pub struct DeviceSink {
    dev: OpenDevice,
    direct: Direct,
}

impl DeviceSink {
    pub fn new(dev: OpenDevice) -> Result<Self> {
        let direct = Direct::open(&dev)?;
        Ok(DeviceSink { dev, direct })
    }
}

impl Sink for DeviceSink {
    fn name(&self) -> String {
        self.dev.path.display().to_string()
    }
    fn size(&self) -> u64 {
        self.dev.size
    }
    fn sector_size(&self) -> u64 {
        self.dev.sector_size
    }
    fn write_at(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        pwrite_all(&self.dev.file, off, &[data]).map(|_| ())
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.dev.file.sync_data()
    }
    fn read_back(&mut self, off: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.direct.read_at(off, out)
    }
    fn write_direct(&mut self, off: u64, data: &[u8]) -> std::io::Result<()> {
        self.direct.write_at(off, data)
    }
    fn reread(&mut self) {
        reread(&self.dev, &crate::progress::Silent { notices: true });
    }
}
