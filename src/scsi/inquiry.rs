//! INQUIRY: standard data and the vital product data pages (SPC-4; SBC-3).

use super::disk::{Disk, Handled};
use super::reply::{Cdb, Reply, data_in};
use super::sense::SenseData;
use super::{DataBuffer, Identity};

/// VPD pages supported, ascending (the Supported VPD Pages page lists exactly these).
pub const VPD_PAGES: [u8; 6] = [0x00, 0x80, 0x83, 0xB0, 0xB1, 0xB2];

/// Length of the standard INQUIRY data returned: through the version descriptors.
pub(super) const STANDARD_LEN: u8 = 74;

/// Version descriptors (T10 version descriptor list): SAM-5, SPC-4, SBC-3.
const VERSION_DESCRIPTORS: [u16; 3] = [0x00A0, 0x0460, 0x04C0];

/// [`VERSION_DESCRIPTORS`] as the big-endian bytes of the standard data.
const VERSION_BYTES: [u8; 6] = {
    let mut bytes = [0_u8; 6];
    let mut i = 0;
    while i < VERSION_DESCRIPTORS.len() {
        let [high, low] = VERSION_DESCRIPTORS[i].to_be_bytes();
        bytes[2 * i] = high;
        bytes[2 * i + 1] = low;
        i += 1;
    }
    bytes
};

/// Standard INQUIRY data (SPC-4) of a disk of `identity`: what INQUIRY with EVPD = 0
/// returns, at most [`STANDARD_LEN`] bytes of it. Nothing in it changes while the disk
/// lives, so [`Disk::new`] builds it once.
pub(super) const fn standard_data(identity: &Identity) -> [u8; STANDARD_LEN as usize] {
    let mut data = [0_u8; STANDARD_LEN as usize];
    let head = [
        0x00,             // PQ 000b, PDT 00h
        0x00,             // RMB = 0: not removable
        0x06,             // VERSION: SPC-4
        0x12,             // HISUP = 1, RESPONSE DATA FORMAT = 2
        STANDARD_LEN - 5, // ADDITIONAL LENGTH = n - 5 (SPC-4)
        0x00,             // no SCCS, ACC, TPGS, 3PC, PROTECT
        0x00,             // no ENCSERV, MULTIP
        0x02,             // CMDQUE = 1
    ];
    put(&mut data, 0, &head);
    put(&mut data, 8, identity.vendor());
    put(&mut data, 16, identity.product());
    put(&mut data, 32, identity.revision());
    // Vendor specific 36..56, clocking/QAS/IUS and a reserved byte: zero.
    put(&mut data, 58, &VERSION_BYTES); // then zeros to the end
    data
}

/// Copies `from` into `to` at `at` (a `const` copy; every caller's range fits).
const fn put(to: &mut [u8], at: usize, from: &[u8]) {
    let mut i = 0;
    while i < from.len() && at + i < to.len() {
        to[at + i] = from[i];
        i += 1;
    }
}

impl Disk {
    /// INQUIRY. CMDDT (obsolete) set, or EVPD = 0 with PAGE CODE ≠ 0, or an unsupported VPD
    /// page: INVALID FIELD IN CDB (SPC-4). ALLOCATION LENGTH is bytes 3–4.
    pub(crate) fn inquiry(&self, cdb: &Cdb, data: DataBuffer<'_>) -> Handled {
        let evpd = cdb.bit(1, 0);
        let page = cdb.u8(2);
        if cdb.bit(1, 1) {
            return Err(SenseData::invalid_cdb_field(1, Some(1)));
        }
        if !evpd && page != 0 {
            return Err(SenseData::invalid_cdb_field(2, None));
        }
        if evpd && !VPD_PAGES.contains(&page) {
            return Err(SenseData::invalid_cdb_field(2, None));
        }
        let buf = match data_in(data) {
            Ok(buf) => buf,
            Err(outcome) => return Ok(outcome),
        };
        let mut reply = Reply::new(buf, usize::from(cdb.be16(3)));
        if evpd {
            reply.byte(0x00); // peripheral qualifier 0, device type 0 (direct access block)
            reply.byte(page);
            reply.be16(0); // PAGE LENGTH, patched below
            match page {
                0x00 => reply.bytes(&VPD_PAGES),
                0x80 => reply.bytes(self.config().identity.serial()),
                0x83 => self.device_identification(&mut reply),
                0xB0 => self.block_limits(&mut reply),
                0xB1 => block_device_characteristics(&mut reply),
                _ => logical_block_provisioning(&mut reply),
            }
            let page_len = u16::try_from(reply.len().saturating_sub(4)).unwrap_or(u16::MAX);
            reply.patch16(2, page_len);
        } else {
            self.standard_inquiry(&mut reply);
        }
        Ok(reply.finish())
    }

    /// Standard INQUIRY data (SPC-4), built once with the disk ([`standard_data`]) and
    /// appended in one copy.
    pub(super) fn standard_inquiry(&self, reply: &mut Reply<'_>) {
        reply.bytes(&self.standard);
    }

    /// Device Identification (83h, SPC-4): an NAA 3 (locally assigned) binary
    /// designator from `naa_local_id`, then a T10 vendor ID based ASCII designator
    /// (vendor + product + serial), both with association 00b (the logical unit).
    fn device_identification(&self, reply: &mut Reply<'_>) {
        let id = &self.config().identity;
        reply.byte(0x01); // protocol 0, CODE SET 1: binary
        reply.byte(0x03); // PIV 0, ASSOCIATION 00b, DESIGNATOR TYPE 3: NAA
        reply.byte(0);
        reply.byte(8);
        reply.be64((3 << 60) | self.config().naa_local_id);

        let serial = id.serial();
        let t10_len = 8 + 16 + serial.len();
        reply.byte(0x02); // CODE SET 2: ASCII
        reply.byte(0x01); // ASSOCIATION 00b, DESIGNATOR TYPE 1: T10 vendor ID based
        reply.byte(0);
        reply.byte(u8::try_from(t10_len).unwrap_or(u8::MAX));
        reply.bytes(id.vendor());
        reply.bytes(id.product());
        reply.bytes(serial);
    }

    /// Block Limits (B0h, SBC-3; the atomic fields from SBC-4). WSNZ = 1: WRITE SAME needs a
    /// block count.
    fn block_limits(&self, reply: &mut Reply<'_>) {
        let limits = &self.config().limits;
        let shift = self.config().block_size.shift();
        let to_blocks = |bytes: u64| u32::try_from(bytes >> shift).unwrap_or(u32::MAX);
        let max_transfer = to_blocks(u64::from(limits.max_transfer_bytes));
        reply.byte(0x01); // WSNZ
        reply.byte(self.max_compare_and_write_blocks()); // MAXIMUM COMPARE AND WRITE LENGTH
        reply.be16(1); // OPTIMAL TRANSFER LENGTH GRANULARITY: one block
        reply.be32(max_transfer); // MAXIMUM TRANSFER LENGTH
        reply.be32(max_transfer); // OPTIMAL TRANSFER LENGTH
        reply.be32(0); // MAXIMUM PREFETCH LENGTH
        reply.be32(to_blocks(limits.max_unmap_bytes)); // MAXIMUM UNMAP LBA COUNT
        reply.be32(limits.max_unmap_descriptors); // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
        reply.be32(1); // OPTIMAL UNMAP GRANULARITY: one block
        reply.be32(0x8000_0000); // UGAVALID = 1, UNMAP GRANULARITY ALIGNMENT = 0
        reply.be64(u64::from(to_blocks(limits.max_write_same_bytes))); // MAXIMUM WRITE SAME LENGTH
        reply.be32(self.max_atomic_blocks()); // MAXIMUM ATOMIC TRANSFER LENGTH
        reply.zeros(16); // no ATOMIC ALIGNMENT, GRANULARITY or BOUNDARY (SBC-4)
    }
}

/// Block Device Characteristics (B1h, SBC-3): MEDIUM ROTATION RATE 1 (non-rotating),
/// NOMINAL FORM FACTOR 0 (not reported: a RAM disk has none), FUAB = 1, VBULS = 1.
fn block_device_characteristics(reply: &mut Reply<'_>) {
    reply.be16(0x0001);
    reply.byte(0); // PRODUCT TYPE: not indicated
    reply.byte(0); // WABEREQ, WACEREQ, NOMINAL FORM FACTOR
    reply.byte(0x03); // FUAB, VBULS
    reply.zeros(55);
}

/// PROVISIONING TYPE 001b: resource provisioned (SBC-4). Every disk's memory is allocated
/// in full when the adapter is found and UNMAP zeroes blocks without giving any of it back,
/// so every block always has its resources; that is a resource provisioned logical unit, not
/// a thin one (010b), and the HLK's SAS SSD SCSI Compliance Test accepts only types 0 and 1.
pub const PROVISIONING_TYPE: u8 = 0x01;

/// Logical Block Provisioning (B2h, SBC-4): LBPU (UNMAP), LBPWS (WRITE SAME(16) with
/// UNMAP), LBPWS10, LBPRZ 001b (unmapped blocks read zero, matching READ CAPACITY(16)'s
/// LBPRZ); `ANC_SUP` = 0 (UNMAP's ANCHOR bit is refused), DP = 0; PROVISIONING TYPE
/// [`PROVISIONING_TYPE`]; THRESHOLD EXPONENT 0 and MINIMUM PERCENTAGE 0: a resource
/// provisioned unit has no provisioning threshold.
fn logical_block_provisioning(reply: &mut Reply<'_>) {
    reply.byte(0); // THRESHOLD EXPONENT
    reply.byte(0xE4); // LBPU, LBPWS, LBPWS10, LBPRZ (001b in bits 4..2)
    reply.byte(PROVISIONING_TYPE); // MINIMUM PERCENTAGE 0, PROVISIONING TYPE
    reply.byte(0); // THRESHOLD PERCENTAGE
}
