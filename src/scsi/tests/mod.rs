//! Host tests of the SCSI module: a table of every command and error path, data round trips,
//! mode page changes, the SRB level, and a no-panic run over millions of random CDBs.
#![expect(
    clippy::cast_possible_truncation,
    reason = "test geometry is small; every narrowing here is of a value chosen to fit"
)]

mod data;
mod fuzz;
mod hlk;
mod log;
mod mode;
mod nexus;
mod parts;
mod plain;
mod srb;
mod table;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{
    Autosense, BlockSize, BlockStore, DataBuffer, Disk, DiskConfig, Identity, Limits, LunSet,
    Outcome, Request,
};

/// Page size of the test store: reads and writes crossing it exercise "chunk" boundaries the
/// way the driver's pool chunks will.
pub const PAGE: u64 = 4096;

/// A sparse in-memory medium: 4 KiB pages in a map, absent pages read as zero. Also checks
/// the [`BlockStore`] contract (ranges inside the capacity) and counts calls.
pub struct MemStore {
    capacity: u64,
    pages: Mutex<BTreeMap<u64, Box<[u8; PAGE as usize]>>>,
    pub flushes: AtomicUsize,
    pub zeroes: AtomicUsize,
    pub writes: AtomicUsize,
    unit_lock: Mutex<()>,
}

impl MemStore {
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            pages: Mutex::new(BTreeMap::new()),
            flushes: AtomicUsize::new(0),
            zeroes: AtomicUsize::new(0),
            writes: AtomicUsize::new(0),
            unit_lock: Mutex::new(()),
        }
    }

    pub fn for_disk(disk: &Disk) -> Self {
        Self::new(disk.config().block_count * u64::from(disk.config().block_size.bytes()))
    }

    fn check(&self, offset: u64, len: u64) {
        let end = offset.checked_add(len).expect("range overflows");
        assert!(
            end <= self.capacity,
            "store accessed past capacity: {offset}+{len} > {}",
            self.capacity
        );
    }

    /// Applies `f(page_bytes, range_in_page, range_in_buffer)` over the pages of a range.
    fn each_page(offset: u64, len: u64, mut f: impl FnMut(u64, usize, usize, usize)) {
        let mut done = 0u64;
        while done < len {
            let at = offset + done;
            let page = at / PAGE;
            let in_page = (at % PAGE) as usize;
            let n = (PAGE - at % PAGE).min(len - done) as usize;
            f(page, in_page, done as usize, n);
            done += n as u64;
        }
    }

    /// Fills a range with a byte directly (test setup, not counted).
    pub fn fill(&self, offset: u64, len: u64, byte: u8) {
        self.write_direct(offset, &vec![byte; len as usize]);
    }

    /// Stores bytes directly (test setup, not counted).
    pub fn write_direct(&self, offset: u64, data: &[u8]) {
        self.check(offset, data.len() as u64);
        let mut pages = self.pages.lock().unwrap();
        Self::each_page(offset, data.len() as u64, |page, at, buf, n| {
            let p = pages
                .entry(page)
                .or_insert_with(|| Box::new([0; PAGE as usize]));
            p[at..at + n].copy_from_slice(&data[buf..buf + n]);
        });
    }

    /// Reads a range directly (test checks).
    pub fn get(&self, offset: u64, len: u64) -> Vec<u8> {
        let mut v = vec![0; len as usize];
        self.read(offset, &mut v);
        v
    }
}

impl BlockStore for MemStore {
    /// A host mutex: the host tests run no IRQL.
    fn with_unit_lock(
        &self,
        f: &mut dyn FnMut() -> Result<Outcome, super::SenseData>,
    ) -> Result<Outcome, super::SenseData> {
        let _held = self.unit_lock.lock().unwrap();
        f()
    }

    fn read(&self, byte_offset: u64, out: &mut [u8]) {
        self.check(byte_offset, out.len() as u64);
        let pages = self.pages.lock().unwrap();
        Self::each_page(byte_offset, out.len() as u64, |page, at, buf, n| {
            let dst = &mut out[buf..buf + n];
            match pages.get(&page) {
                Some(p) => dst.copy_from_slice(&p[at..at + n]),
                None => dst.fill(0),
            }
        });
    }

    fn write(&self, byte_offset: u64, data: &[u8]) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.write_direct(byte_offset, data);
    }

    /// Copies the range out, runs `f` on the copy and stores it back, with the page map
    /// locked throughout; counts as one write. Checks the length bound of the contract.
    fn atomically(
        &self,
        byte_offset: u64,
        len: usize,
        f: &mut dyn FnMut(&mut [u8], &mut [u8]),
    ) -> bool {
        self.check(byte_offset, len as u64);
        assert!(
            len <= super::MAX_ATOMIC_BYTES as usize,
            "atomic step of {len} bytes exceeds MAX_ATOMIC_BYTES"
        );
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut pages = self.pages.lock().unwrap();
        let mut bytes = vec![0; len];
        Self::each_page(byte_offset, len as u64, |page, at, buf, n| {
            if let Some(p) = pages.get(&page) {
                bytes[buf..buf + n].copy_from_slice(&p[at..at + n]);
            }
        });
        f(&mut bytes, &mut []);
        Self::each_page(byte_offset, len as u64, |page, at, buf, n| {
            let p = pages
                .entry(page)
                .or_insert_with(|| Box::new([0; PAGE as usize]));
            p[at..at + n].copy_from_slice(&bytes[buf..buf + n]);
        });
        true
    }

    fn zero(&self, byte_offset: u64, len: u64) {
        self.check(byte_offset, len);
        self.zeroes.fetch_add(1, Ordering::Relaxed);
        let mut pages = self.pages.lock().unwrap();
        Self::each_page(byte_offset, len, |page, at, _, n| {
            if n as u64 == PAGE {
                pages.remove(&page);
            } else if let Some(p) = pages.get_mut(&page) {
                p[at..at + n].fill(0);
            }
        });
    }

    fn flush(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }
}

/// The kinds of disk the tests use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 2048 × 512 B, writable, WCE off.
    Rw,
    /// Same, read-only.
    Ro,
    /// 256 × 4096 B, WCE on.
    B4k,
    /// 2^32 + 1 blocks of 512 B (READ CAPACITY(10) overflow); never written.
    Huge,
}

pub const RW_BLOCKS: u64 = 2048;
pub const B4K_BLOCKS: u64 = 256;
pub const HUGE_BLOCKS: u64 = (1 << 32) + 1;
pub const NAA: u64 = 0x0012_3456_789A_BCDE;

pub fn config(kind: Kind) -> DiskConfig {
    let (block_size, block_count) = match kind {
        Kind::Rw | Kind::Ro => (BlockSize::Bytes512, RW_BLOCKS),
        Kind::B4k => (BlockSize::Bytes4096, B4K_BLOCKS),
        Kind::Huge => (BlockSize::Bytes512, HUGE_BLOCKS),
    };
    DiskConfig {
        identity: Identity::new("VSTOR", "RAM DISK", "0.1", "SN-0001").unwrap(),
        block_size,
        block_count,
        read_only: kind == Kind::Ro,
        naa_local_id: NAA,
        write_cache: kind == Kind::B4k,
        limits: Limits::DEFAULT,
    }
}

pub fn disk(kind: Kind) -> Disk {
    Disk::new(config(kind)).unwrap()
}

/// LUNs 0, 1 and 5 on the target.
pub fn luns() -> LunSet {
    let mut set = LunSet::new();
    for lun in [0, 1, 5] {
        set.insert(lun);
    }
    set
}

/// Runs one CDB with autosense.
pub fn run(disk: &Disk, store: &MemStore, cdb: &[u8], data: DataBuffer<'_>) -> Outcome {
    disk.execute(
        store,
        Request {
            cdb,
            data,
            autosense: Autosense::Enabled,
            luns: &luns(),
            port: 0,
        },
    )
}

/// Runs a data-in CDB with a buffer of `len` bytes (filled with 0xAA); returns the outcome and
/// the bytes transferred.
pub fn run_in(disk: &Disk, store: &MemStore, cdb: &[u8], len: usize) -> (Outcome, Vec<u8>) {
    let mut buf = vec![0xAA; len];
    let outcome = run(disk, store, cdb, DataBuffer::In(&mut buf));
    buf.truncate(outcome.transferred as usize);
    (outcome, buf)
}

/// Asserts a CHECK CONDITION with autosense and the given sense key, ASC and ASCQ.
#[track_caller]
pub fn assert_check(outcome: &Outcome, key: u8, code: (u8, u8)) {
    assert_eq!(outcome.srb_status, 0x84, "srb status of {outcome:?}");
    assert_eq!(outcome.scsi_status, 0x02, "scsi status of {outcome:?}");
    assert_eq!(outcome.transferred, 0, "transferred of {outcome:?}");
    let sense = outcome.sense.expect("sense present");
    assert_eq!(
        (sense.key, sense.asc, sense.ascq),
        (key, code.0, code.1),
        "sense of {outcome:?}"
    );
}

/// Asserts GOOD with `transferred` bytes.
#[track_caller]
pub fn assert_good(outcome: &Outcome, transferred: usize) {
    assert_eq!(
        *outcome,
        Outcome::good(transferred),
        "expected GOOD with {transferred} bytes"
    );
}

/// CDB builders.
pub mod cdb {
    pub fn rw10(op: u8, flags: u8, lba: u32, blocks: u16) -> [u8; 10] {
        let l = lba.to_be_bytes();
        let n = blocks.to_be_bytes();
        [op, flags, l[0], l[1], l[2], l[3], 0, n[0], n[1], 0]
    }

    pub fn rw12(op: u8, flags: u8, lba: u32, blocks: u32) -> [u8; 12] {
        let l = lba.to_be_bytes();
        let n = blocks.to_be_bytes();
        [
            op, flags, l[0], l[1], l[2], l[3], n[0], n[1], n[2], n[3], 0, 0,
        ]
    }

    pub fn rw16(op: u8, flags: u8, lba: u64, blocks: u32) -> [u8; 16] {
        let mut c = [0u8; 16];
        c[0] = op;
        c[1] = flags;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[10..14].copy_from_slice(&blocks.to_be_bytes());
        c
    }

    pub fn rw6(op: u8, lba: u32, blocks: u8) -> [u8; 6] {
        let l = lba.to_be_bytes();
        [op, l[1] & 0x1F, l[2], l[3], blocks, 0]
    }

    /// UNMAP parameter list with the given (lba, blocks) descriptors.
    pub fn unmap_list(descriptors: &[(u64, u32)]) -> Vec<u8> {
        let bd = (descriptors.len() * 16) as u16;
        let mut v = Vec::new();
        v.extend_from_slice(&(bd + 6).to_be_bytes());
        v.extend_from_slice(&bd.to_be_bytes());
        v.extend_from_slice(&[0; 4]);
        for &(lba, n) in descriptors {
            v.extend_from_slice(&lba.to_be_bytes());
            v.extend_from_slice(&n.to_be_bytes());
            v.extend_from_slice(&[0; 4]);
        }
        v
    }

    pub fn unmap(plen: u16) -> [u8; 10] {
        let p = plen.to_be_bytes();
        [0x42, 0, 0, 0, 0, 0, 0, p[0], p[1], 0]
    }
}
