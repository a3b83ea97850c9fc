//! The block back end the network front ends share.
//!
//! It holds the started adapter and the logical units the bus scan found,
//! and translates block operations (read, write, flush, trim, write
//! zeroes) into SCSI CDBs that go to the miniport as SRBs.
//!
//! Nothing here answers SCSI itself: every CDB, including the ones the
//! front ends forward unchanged (iSCSI), runs through `HwStartIo`. What the
//! back end decides on its own is only block-protocol work: splitting a
//! request at the adapter's `MaximumTransferLength`, and checking that a
//! request lies inside the disk before any part of it is sent.

use std::sync::Arc;

use storport_sys::srb_status;

use crate::port::{DataDirection, Port, PortError, SrbResult};

/// SCSI status GOOD.
pub const SCSI_GOOD: u8 = 0x00;
/// SCSI status CHECK CONDITION.
pub const SCSI_CHECK_CONDITION: u8 = 0x02;

/// Largest logical block the back end serves (SBC allows larger, no disk here uses them).
const MAX_BLOCK_BYTES: u32 = 64 * 1024;
/// Largest transfer per request when the adapter reports none (or an absurd one).
const FALLBACK_TRANSFER_BYTES: u32 = 64 * 1024;
/// Upper bound on one request's data, whatever the adapter says.
const MAX_TRANSFER_BYTES: u32 = 16 << 20;

/// One logical unit the bus scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lun {
    /// (`PathId`, `TargetId`, `Lun`).
    pub address: (u8, u8, u8),
    /// Export name: `lun<N>` in scan order.
    pub name: String,
    /// Standard INQUIRY data.
    pub inquiry: Vec<u8>,
    /// Peripheral device type (0 = direct access).
    pub device_type: u8,
    /// Logical block length in bytes (0 when READ CAPACITY failed).
    pub block_size: u32,
    /// Number of logical blocks.
    pub blocks: u64,
    /// MODE SENSE reported the medium write-protected.
    pub read_only: bool,
    /// Blocks one WRITE SAME may cover (VPD B0h; 0: WRITE SAME not offered).
    pub max_write_same_blocks: u64,
    /// Blocks one UNMAP may cover (VPD B0h; 0: UNMAP not offered).
    pub max_unmap_blocks: u32,
    /// WRITE SAME(16) may deallocate (UNMAP bit; VPD B2h LBPWS).
    pub write_same_unmap: bool,
}

impl Lun {
    /// Capacity in bytes.
    #[must_use]
    pub const fn size_bytes(&self) -> u64 {
        self.blocks.saturating_mul(self.block_size as u64)
    }
}

/// Why a block operation failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The request reaches past the end of the disk.
    #[error("the request for bytes {offset}..{end} reaches past the end of the {size}-byte disk")]
    OutOfRange {
        /// First byte.
        offset: u64,
        /// One past the last byte.
        end: u64,
        /// Disk size in bytes.
        size: u64,
    },
    /// The request does not start and end on a logical block boundary.
    #[error(
        "the request for {length} bytes at offset {offset} is not aligned to the {block_size}-byte logical block"
    )]
    Unaligned {
        /// First byte.
        offset: u64,
        /// Length in bytes.
        length: u64,
        /// Logical block length.
        block_size: u32,
    },
    /// The disk is write-protected.
    #[error("the disk is write-protected")]
    ReadOnly,
    /// The miniport ended the request with CHECK CONDITION.
    #[error(
        "the miniport answered CHECK CONDITION, sense key {key:#x} ASC {asc:#04x} ASCQ {ascq:#04x}"
    )]
    Sense {
        /// Sense key.
        key: u8,
        /// Additional sense code.
        asc: u8,
        /// Additional sense code qualifier.
        ascq: u8,
    },
    /// The miniport ended the request with another SRB or SCSI status.
    #[error("the miniport ended the request with SRB status {srb:#04x}, SCSI status {scsi:#04x}")]
    Status {
        /// SRB status (flags masked).
        srb: u8,
        /// SCSI status.
        scsi: u8,
    },
    /// The port could not run the request (adapter stopped, bug check).
    #[error("{0}")]
    Port(#[from] PortError),
}

/// Sense key, ASC and ASCQ of fixed- or descriptor-format sense data.
#[must_use]
pub fn sense_triple(sense: &[u8]) -> Option<(u8, u8, u8)> {
    let code = sense.first()? & 0x7F;
    match code {
        0x70 | 0x71 if sense.len() >= 14 => Some((sense[2] & 0x0F, sense[12], sense[13])),
        0x72 | 0x73 if sense.len() >= 4 => Some((sense[1] & 0x0F, sense[2], sense[3])),
        _ => None,
    }
}

/// Whether a result carries its data: `SUCCESS`, or `DATA_OVERRUN` (a short transfer).
#[must_use]
pub const fn succeeded(result: &SrbResult) -> bool {
    result.status() == srb_status::SUCCESS
        || (result.status() == srb_status::DATA_OVERRUN && result.scsi_status == SCSI_GOOD)
}

fn check(result: &SrbResult) -> Result<(), BlockError> {
    if succeeded(result) {
        return Ok(());
    }
    if result.scsi_status == SCSI_CHECK_CONDITION
        && let Some((key, asc, ascq)) = sense_triple(&result.sense)
    {
        return Err(BlockError::Sense { key, asc, ascq });
    }
    Err(BlockError::Status {
        srb: result.status(),
        scsi: result.scsi_status,
    })
}

/// A 16-byte CDB with an 8-byte LBA at byte 2 and a 4-byte count at byte 10
/// (READ(16), WRITE(16), WRITE SAME(16), SYNCHRONIZE CACHE(16)).
#[must_use]
pub fn cdb16(opcode: u8, flags: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut cdb = [0_u8; 16];
    cdb[0] = opcode;
    cdb[1] = flags;
    cdb[2..10].copy_from_slice(&lba.to_be_bytes());
    cdb[10..14].copy_from_slice(&blocks.to_be_bytes());
    cdb
}

const READ_16: u8 = 0x88;
const WRITE_16: u8 = 0x8A;
const SYNCHRONIZE_CACHE_16: u8 = 0x91;
const WRITE_SAME_16: u8 = 0x93;
const UNMAP: u8 = 0x42;
/// FUA bit of READ/WRITE(16) byte 1.
const FUA: u8 = 0x08;
/// UNMAP bit of WRITE SAME(16) byte 1.
const WRITE_SAME_UNMAP: u8 = 0x08;

/// The adapter and its logical units.
pub struct Backend {
    port: Arc<Port>,
    luns: Vec<Lun>,
    max_transfer_bytes: u32,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("luns", &self.luns)
            .field("max_transfer_bytes", &self.max_transfer_bytes)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// Scans the started adapter behind `port` and describes every LUN.
    ///
    /// # Errors
    ///
    /// When the adapter is not started or the driver bug-checks.
    pub fn discover(port: Arc<Port>) -> Result<Self, PortError> {
        let config = port.config().ok_or(PortError::NotStarted)?;
        let max_transfer_bytes = match config.MaximumTransferLength {
            0 | crate::port::adapter::SP_UNINITIALIZED_VALUE => FALLBACK_TRANSFER_BYTES,
            bytes => bytes.min(MAX_TRANSFER_BYTES),
        };
        let buses = config.NumberOfBuses.clamp(1, 8);
        let targets = config.MaximumNumberOfTargets.clamp(1, 128);
        let per_target = config.MaximumNumberOfLogicalUnits.max(1);
        let found = crate::setup::scan::scan(&port, buses, targets, per_target)?;
        let mut luns = Vec::new();
        for (index, (bus, target, lun, inquiry)) in found.into_iter().enumerate() {
            let mut entry = Lun {
                address: (bus, target, lun),
                name: format!("lun{index}"),
                device_type: inquiry.first().map_or(0x1F, |b| b & 0x1F),
                inquiry,
                block_size: 0,
                blocks: 0,
                read_only: false,
                max_write_same_blocks: 0,
                max_unmap_blocks: 0,
                write_same_unmap: false,
            };
            if entry.device_type == 0 {
                describe_disk(&port, &mut entry)?;
            }
            luns.push(entry);
        }
        port.log(format!(
            "serving {} LUN(s), {max_transfer_bytes} bytes per request at most",
            luns.len()
        ));
        Ok(Self {
            port,
            luns,
            max_transfer_bytes,
        })
    }

    /// The port the back end sends its SRBs to.
    #[must_use]
    pub const fn port(&self) -> &Arc<Port> {
        &self.port
    }

    /// Every LUN, in scan order.
    #[must_use]
    pub fn luns(&self) -> &[Lun] {
        &self.luns
    }

    /// Largest data transfer of one SRB, in bytes.
    #[must_use]
    pub const fn max_transfer_bytes(&self) -> u32 {
        self.max_transfer_bytes
    }

    /// The disk LUN exported as `name`.
    #[must_use]
    pub fn disk(&self, name: &str) -> Option<&Lun> {
        self.luns
            .iter()
            .find(|l| l.name == name && l.device_type == 0 && l.block_size > 0)
    }

    /// Sends one CDB to the LUN at `address`.
    ///
    /// # Errors
    ///
    /// When the adapter is not started or the driver bug-checks.
    pub fn execute(
        &self,
        address: (u8, u8, u8),
        cdb: &[u8],
        direction: &DataDirection,
    ) -> Result<SrbResult, PortError> {
        self.port.execute(address, cdb, direction)
    }

    /// Blocks per SRB for `lun`.
    fn chunk_blocks(&self, lun: &Lun) -> u64 {
        (u64::from(self.max_transfer_bytes) / u64::from(lun.block_size.max(1))).max(1)
    }

    fn blocks_of(lun: &Lun, offset: u64, length: u64) -> Result<(u64, u64), BlockError> {
        let size = lun.size_bytes();
        let end = offset.saturating_add(length);
        if end > size {
            return Err(BlockError::OutOfRange { offset, end, size });
        }
        let block = u64::from(lun.block_size.max(1));
        if !offset.is_multiple_of(block) || !length.is_multiple_of(block) {
            return Err(BlockError::Unaligned {
                offset,
                length,
                block_size: lun.block_size,
            });
        }
        Ok((offset / block, length / block))
    }

    /// Reads `length` bytes at `offset` (both block-aligned) with READ(16).
    ///
    /// # Errors
    ///
    /// Out of range, unaligned, or the miniport's error.
    pub fn read(&self, lun: &Lun, offset: u64, length: u64) -> Result<Vec<u8>, BlockError> {
        let (lba, blocks) = Self::blocks_of(lun, offset, length)?;
        let step = self.chunk_blocks(lun);
        if blocks == 0 {
            return Ok(Vec::new());
        }
        if blocks <= step {
            // One SRB: its data buffer is the result, without a copy.
            return self.read_chunk(lun, lba, blocks);
        }
        let mut out = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
        let mut done = 0;
        while done < blocks {
            let count = step.min(blocks - done);
            out.extend_from_slice(&self.read_chunk(lun, lba + done, count)?);
            done += count;
        }
        Ok(out)
    }

    /// One READ(16) of `count` blocks at `lba` (at most one SRB's worth).
    fn read_chunk(&self, lun: &Lun, lba: u64, count: u64) -> Result<Vec<u8>, BlockError> {
        let bytes = usize::try_from(count * u64::from(lun.block_size)).unwrap_or(0);
        let result = self.port.execute_owned(
            lun.address,
            &cdb16(READ_16, 0, lba, u32::try_from(count).unwrap_or(0)),
            DataDirection::In(bytes),
        )?;
        check(&result)?;
        if result.data.len() != bytes {
            return Err(BlockError::Status {
                srb: result.status(),
                scsi: result.scsi_status,
            });
        }
        Ok(result.data)
    }

    /// Writes `data` at `offset` (both block-aligned) with WRITE(16), FUA when asked.
    ///
    /// # Errors
    ///
    /// Out of range, unaligned, read-only, or the miniport's error.
    pub fn write(&self, lun: &Lun, offset: u64, data: &[u8], fua: bool) -> Result<(), BlockError> {
        let (lba, blocks) = Self::blocks_of(lun, offset, data.len() as u64)?;
        let step = self.chunk_blocks(lun);
        let block = lun.block_size as usize;
        let mut done = 0;
        while done < blocks {
            let count = step.min(blocks - done);
            let start = usize::try_from(done).unwrap_or(0) * block;
            let end = start + usize::try_from(count).unwrap_or(0) * block;
            let result = self.port.execute(
                lun.address,
                &cdb16(
                    WRITE_16,
                    if fua { FUA } else { 0 },
                    lba + done,
                    u32::try_from(count).unwrap_or(0),
                ),
                &DataDirection::Out(data[start..end].to_vec()),
            )?;
            check(&result).map_err(|e| write_error(lun, e))?;
            done += count;
        }
        Ok(())
    }

    /// [`Self::write`] of bytes the back end may take over: when they fit in
    /// one SRB they become its data buffer without a copy (give the vector
    /// [`crate::port::srb::DATA_GUARD_BYTES`] of spare capacity for that).
    ///
    /// # Errors
    ///
    /// As [`Self::write`].
    pub fn write_owned(
        &self,
        lun: &Lun,
        offset: u64,
        data: Vec<u8>,
        fua: bool,
    ) -> Result<(), BlockError> {
        let (lba, blocks) = Self::blocks_of(lun, offset, data.len() as u64)?;
        if blocks == 0 || blocks > self.chunk_blocks(lun) {
            return self.write(lun, offset, &data, fua);
        }
        let result = self.port.execute_owned(
            lun.address,
            &cdb16(
                WRITE_16,
                if fua { FUA } else { 0 },
                lba,
                u32::try_from(blocks).unwrap_or(0),
            ),
            DataDirection::Out(data),
        )?;
        check(&result).map_err(|e| write_error(lun, e))
    }

    /// SYNCHRONIZE CACHE(16) of the whole disk.
    ///
    /// # Errors
    ///
    /// The miniport's error.
    pub fn flush(&self, lun: &Lun) -> Result<(), BlockError> {
        let result = self.port.execute(
            lun.address,
            &cdb16(SYNCHRONIZE_CACHE_16, 0, 0, 0),
            &DataDirection::None,
        )?;
        check(&result)
    }

    /// Deallocates the whole blocks inside `offset..offset+length` with UNMAP
    /// (a trim is advisory: partial blocks at either end stay as they are).
    ///
    /// # Errors
    ///
    /// Out of range, read-only, or the miniport's error.
    pub fn trim(&self, lun: &Lun, offset: u64, length: u64) -> Result<(), BlockError> {
        let size = lun.size_bytes();
        let end = offset.saturating_add(length);
        if end > size {
            return Err(BlockError::OutOfRange { offset, end, size });
        }
        if lun.read_only {
            return Err(BlockError::ReadOnly);
        }
        let block = u64::from(lun.block_size.max(1));
        let first = offset.div_ceil(block);
        let last = end / block;
        if last <= first || lun.max_unmap_blocks == 0 {
            return Ok(());
        }
        // One descriptor per command keeps each UNMAP within both MAXIMUM
        // UNMAP LBA COUNT and MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
        let per_descriptor = u64::from(lun.max_unmap_blocks);
        let mut descriptors = Vec::new();
        let mut lba = first;
        while lba < last {
            let count = per_descriptor.min(last - lba);
            descriptors.push((lba, u32::try_from(count).unwrap_or(0)));
            lba += count;
        }
        for (lba, count) in descriptors {
            let mut parameters = vec![0_u8; 24];
            parameters[0..2].copy_from_slice(&22_u16.to_be_bytes());
            parameters[2..4].copy_from_slice(&16_u16.to_be_bytes());
            parameters[8..16].copy_from_slice(&lba.to_be_bytes());
            parameters[16..20].copy_from_slice(&count.to_be_bytes());
            let cdb = [UNMAP, 0, 0, 0, 0, 0, 0, 0, 24, 0];
            let result = self
                .port
                .execute(lun.address, &cdb, &DataDirection::Out(parameters))?;
            check(&result).map_err(|e| write_error(lun, e))?;
        }
        Ok(())
    }

    /// Writes zeroes to `offset..offset+length` with WRITE SAME(16), with
    /// the UNMAP bit unless `keep_allocated`; WRITE(16) of zeroes where the
    /// disk offers no WRITE SAME.
    ///
    /// # Errors
    ///
    /// Out of range, unaligned, read-only, or the miniport's error.
    pub fn write_zeroes(
        &self,
        lun: &Lun,
        offset: u64,
        length: u64,
        keep_allocated: bool,
    ) -> Result<(), BlockError> {
        let (lba, blocks) = Self::blocks_of(lun, offset, length)?;
        if lun.max_write_same_blocks == 0 {
            let step = self.chunk_blocks(lun);
            let mut done = 0;
            while done < blocks {
                let count = step.min(blocks - done);
                let zeroes =
                    vec![0_u8; usize::try_from(count * u64::from(lun.block_size)).unwrap_or(0)];
                self.write(
                    lun,
                    (lba + done) * u64::from(lun.block_size),
                    &zeroes,
                    false,
                )?;
                done += count;
            }
            return Ok(());
        }
        let step = lun.max_write_same_blocks.min(u64::from(u32::MAX));
        let flags = if keep_allocated || !lun.write_same_unmap {
            0
        } else {
            WRITE_SAME_UNMAP
        };
        let mut done = 0;
        while done < blocks {
            let count = step.min(blocks - done);
            let result = self.port.execute(
                lun.address,
                &cdb16(
                    WRITE_SAME_16,
                    flags,
                    lba + done,
                    u32::try_from(count).unwrap_or(0),
                ),
                &DataDirection::Out(vec![0_u8; lun.block_size as usize]),
            )?;
            check(&result).map_err(|e| write_error(lun, e))?;
            done += count;
        }
        Ok(())
    }
}

fn write_error(lun: &Lun, error: BlockError) -> BlockError {
    match error {
        BlockError::Sense { key: 0x07, .. } if lun.read_only => BlockError::ReadOnly,
        other => other,
    }
}

fn be32(data: &[u8], at: usize) -> u32 {
    data.get(at..at + 4)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(data: &[u8], at: usize) -> u64 {
    data.get(at..at + 8).map_or(0, |b| {
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    })
}

/// READ CAPACITY(16), MODE SENSE(6) for write protection, and the Block
/// Limits VPD page (B0h) for the WRITE SAME and UNMAP limits.
fn describe_disk(port: &Port, lun: &mut Lun) -> Result<(), PortError> {
    let mut cdb = [0_u8; 16];
    cdb[0] = 0x9E;
    cdb[1] = 0x10;
    cdb[13] = 32;
    let capacity = port.execute(lun.address, &cdb, &DataDirection::In(32))?;
    if succeeded(&capacity) && capacity.data.len() >= 12 {
        lun.blocks = be64(&capacity.data, 0).saturating_add(1);
        lun.block_size = be32(&capacity.data, 8);
    } else {
        let capacity = port.execute(
            lun.address,
            &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &DataDirection::In(8),
        )?;
        if succeeded(&capacity) && capacity.data.len() >= 8 {
            lun.blocks = u64::from(be32(&capacity.data, 0)) + 1;
            lun.block_size = be32(&capacity.data, 4);
        }
    }
    if lun.block_size == 0 || lun.block_size > MAX_BLOCK_BYTES || !lun.block_size.is_power_of_two()
    {
        port.log(format!(
            "LUN {:?} reports a {}-byte logical block; it is not served as a disk",
            lun.address, lun.block_size
        ));
        lun.block_size = 0;
        lun.blocks = 0;
        return Ok(());
    }
    let sense = port.execute(
        lun.address,
        &[0x1A, 0x08, 0x3F, 0, 4, 0],
        &DataDirection::In(4),
    )?;
    if succeeded(&sense) && sense.data.len() >= 3 {
        lun.read_only = sense.data[2] & 0x80 != 0;
    }
    let vpd = port.execute(
        lun.address,
        &[0x12, 0x01, 0xB0, 0, 64, 0],
        &DataDirection::In(64),
    )?;
    if succeeded(&vpd) && vpd.data.len() >= 44 && vpd.data[1] == 0xB0 {
        lun.max_unmap_blocks = be32(&vpd.data, 20);
        lun.max_write_same_blocks = be64(&vpd.data, 36);
    }
    // Logical Block Provisioning VPD (B2h): offer UNMAP and WRITE SAME only where it says so.
    let lbp = port.execute(
        lun.address,
        &[0x12, 0x01, 0xB2, 0, 8, 0],
        &DataDirection::In(8),
    )?;
    if succeeded(&lbp) && lbp.data.len() >= 6 && lbp.data[1] == 0xB2 {
        if lbp.data[5] & 0x80 == 0 {
            lun.max_unmap_blocks = 0;
        }
        lun.write_same_unmap = lbp.data[5] & 0x40 != 0;
    } else {
        lun.max_unmap_blocks = 0;
    }
    Ok(())
}
