/*
 * peer.sys: a minimal Storport virtual miniport in C, the benchmark's yardstick for vstor.
 *
 * One RAM disk of 16 MiB in 512-byte blocks at path 0, target 0, LUN 0, in one nonpaged pool
 * block. It serves what the benchmark sends and what `storemu run` needs to find, size and
 * verify a disk: TEST UNIT READY, INQUIRY (standard data only, 74 bytes as vstor returns),
 * READ CAPACITY(10), READ(10), WRITE(10), SYNCHRONIZE CACHE(10) and REPORT LUNS. Anything
 * else is CHECK CONDITION with fixed-format sense. The data copy is one `rep movsb`, as
 * vstor's memcpy is.
 *
 * Built with PEER_LOCK=1 it takes, per READ or WRITE, the kind of lock vstor takes around each
 * copy: the disk's EX_SPIN_LOCK from ntoskrnl.exe, shared to read and exclusive to write
 * (ExAcquireSpinLockShared / ExAcquireSpinLockExclusive and their releases). Built with
 * PEER_LOCK=0 it takes none.
 *
 * Freestanding: no headers, no C runtime. Imports come from storport.sys and ntoskrnl.exe
 * through import libraries made from storport.def and ntoskrnl.def.
 */

#ifndef PEER_LOCK
#define PEER_LOCK 1
#endif

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;
typedef u64 size_t;

#define WINAPI __attribute__((ms_abi))
#define IMPORT __declspec(dllimport) WINAPI

/* The parts of storport.h and srb.h used here, laid out as the x64 ABI has them. */

typedef struct {
    u16 Length;
    u8 Function;
    u8 SrbStatus;
    u8 ScsiStatus;
    u8 PathId;
    u8 TargetId;
    u8 Lun;
    u8 QueueTag;
    u8 QueueAction;
    u8 CdbLength;
    u8 SenseInfoBufferLength;
    u32 SrbFlags;
    u32 DataTransferLength;
    u32 TimeOutValue;
    void *DataBuffer;
    void *SenseInfoBuffer;
    void *NextSrb;
    void *OriginalRequest;
    void *SrbExtension;
    u32 InternalStatus;
    u32 Reserved;
    u8 Cdb[16];
} SCSI_REQUEST_BLOCK;
_Static_assert(sizeof(SCSI_REQUEST_BLOCK) == 0x58, "SCSI_REQUEST_BLOCK is 0x58 bytes on x64");
_Static_assert(__builtin_offsetof(SCSI_REQUEST_BLOCK, Cdb) == 0x48, "Cdb at 0x48");

typedef struct {
    void *VirtualBase;
    i64 PhysicalBase;
    u32 Length;
} MEMORY_REGION;

typedef struct {
    u32 Length;
    u32 SystemIoBusNumber;
    u32 AdapterInterfaceType;
    u32 BusInterruptLevel;
    u32 BusInterruptVector;
    u32 InterruptMode;
    u32 MaximumTransferLength;
    u32 NumberOfPhysicalBreaks;
    u32 DmaChannel;
    u32 DmaPort;
    u32 DmaWidth;
    u32 DmaSpeed;
    u32 AlignmentMask;
    u32 NumberOfAccessRanges;
    void *AccessRanges;
    void *MiniportDumpData;
    u8 NumberOfBuses;
    char InitiatorBusId[8];
    u8 ScatterGather;
    u8 Master;
    u8 CachesData;
    u8 AdapterScansDown;
    u8 AtdiskPrimaryClaimed;
    u8 AtdiskSecondaryClaimed;
    u8 Dma32BitAddresses;
    u8 DemandMode;
    u8 MapBuffers;
    u8 NeedPhysicalAddresses;
    u8 TaggedQueuing;
    u8 AutoRequestSense;
    u8 MultipleRequestPerLu;
    u8 ReceiveEvent;
    u8 RealModeInitialized;
    u8 BufferAccessScsiPortControlled;
    u8 MaximumNumberOfTargets;
    u8 SrbType;
    u8 AddressType;
    u32 SlotNumber;
    u32 BusInterruptLevel2;
    u32 BusInterruptVector2;
    u32 InterruptMode2;
    u32 DmaChannel2;
    u32 DmaPort2;
    u32 DmaWidth2;
    u32 DmaSpeed2;
    u32 DeviceExtensionSize;
    u32 SpecificLuExtensionSize;
    u32 SrbExtensionSize;
    u8 Dma64BitAddresses;
    u8 ResetTargetSupported;
    u8 MaximumNumberOfLogicalUnits;
    u8 WmiDataProvider;
    u32 SynchronizationModel;
    void *HwMSInterruptRoutine;
    u32 InterruptSynchronizationMode;
    MEMORY_REGION DumpRegion;
    u32 RequestedDumpBufferSize;
    u8 VirtualDevice;
    u8 DumpMode;
    u32 ExtendedFlags1;
    u32 MaxNumberOfIO;
    u32 MaxIOsPerLun;
    u32 InitialLunQueueDepth;
    u32 BusResetHoldTime;
    u32 FeatureSupport;
} PORT_CONFIGURATION_INFORMATION;

typedef struct {
    u32 HwInitializationDataSize;
    u32 AdapterInterfaceType;
    void *HwInitialize;
    void *HwStartIo;
    void *HwInterrupt;
    void *HwFindAdapter;
    void *HwResetBus;
    void *HwDmaStarted;
    void *HwAdapterState;
    u32 DeviceExtensionSize;
    u32 SpecificLuExtensionSize;
    u32 SrbExtensionSize;
    u32 NumberOfAccessRanges;
    void *Reserved;
    u8 MapBuffers;
    u8 NeedPhysicalAddresses;
    u8 TaggedQueuing;
    u8 AutoRequestSense;
    u8 MultipleRequestPerLu;
    u8 ReceiveEvent;
    u16 VendorIdLength;
    void *VendorId;
    u16 PortVersionFlags;
    u16 DeviceIdLength;
    void *DeviceId;
    void *HwAdapterControl;
    void *HwBuildIo;
    void *HwFreeAdapterResources;
    void *HwProcessServiceRequest;
    void *HwCompleteServiceIrp;
    void *HwInitializeTracing;
    void *HwCleanupTracing;
    void *HwTracingEnabled;
    u32 FeatureSupport;
    u32 SrbTypeFlags;
    u32 AddressTypeFlags;
    u32 Reserved1;
    void *HwUnitControl;
} HW_INITIALIZATION_DATA;

typedef struct {
    u32 MaxControlType;
    u8 SupportedTypeList[1];
} SCSI_SUPPORTED_CONTROL_TYPE_LIST;

IMPORT u32 StorPortInitialize(void *driver, void *path, HW_INITIALIZATION_DATA *init, void *context);
IMPORT void StorPortNotification(u32 type, void *extension, void *srb);
IMPORT void *ExAllocatePool2(u64 flags, size_t bytes, u32 tag);
IMPORT void ExFreePoolWithTag(void *block, u32 tag);
IMPORT u8 ExAcquireSpinLockShared(volatile long *lock);
IMPORT void ExReleaseSpinLockShared(volatile long *lock, u8 old_irql);
IMPORT u8 ExAcquireSpinLockExclusive(volatile long *lock);
IMPORT void ExReleaseSpinLockExclusive(volatile long *lock, u8 old_irql);

#define POOL_FLAG_NON_PAGED 0x40ull
#define STOR_FEATURE_VIRTUAL_MINIPORT 1u
#define STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE 3
#define SP_RETURN_FOUND 1u
#define SP_RETURN_ERROR 2u
#define REQUEST_COMPLETE 0u

#define SRB_FUNCTION_EXECUTE_SCSI 0x00
#define SRB_FUNCTION_SHUTDOWN 0x07
#define SRB_FUNCTION_FLUSH 0x08
#define SRB_FUNCTION_ABORT_COMMAND 0x10
#define SRB_FUNCTION_RESET_BUS 0x12
#define SRB_FUNCTION_RESET_DEVICE 0x13
#define SRB_FUNCTION_RESET_LOGICAL_UNIT 0x20
#define SRB_FUNCTION_POWER 0x24
#define SRB_FUNCTION_PNP 0x25

#define SRB_STATUS_SUCCESS 0x01
#define SRB_STATUS_ERROR 0x04
#define SRB_STATUS_INVALID_REQUEST 0x06
#define SRB_STATUS_NO_DEVICE 0x08
#define SRB_STATUS_DATA_OVERRUN 0x12
#define SRB_STATUS_INVALID_LUN 0x20
#define SRB_STATUS_AUTOSENSE_VALID 0x80

#define SRB_FLAGS_DISABLE_AUTOSENSE 0x20
#define SRB_FLAGS_DATA_IN 0x40
#define SRB_FLAGS_DATA_OUT 0x80

#define SCSI_STATUS_GOOD 0x00
#define SCSI_STATUS_CHECK_CONDITION 0x02

#define ILLEGAL_REQUEST 0x05
#define ASC_INVALID_OPCODE 0x20
#define ASC_LBA_OUT_OF_RANGE 0x21
#define ASC_INVALID_FIELD_IN_CDB 0x24

#define TAG 0x43747376u /* 'vstC' */
#define BLOCK_SHIFT 9
#define DISK_BYTES (16u << 20)
#define DISK_BLOCKS (DISK_BYTES >> BLOCK_SHIFT)
#define MAX_TRANSFER (1u << 20)

struct extension {
    u8 *disk;
    volatile long lock; /* EX_SPIN_LOCK */
};

/* The C runtime routines the compiler may call for structure copies and fills. */
void *memcpy(void *to, const void *from, size_t n)
{
    void *ret = to;
    __asm__ volatile("rep movsb" : "+D"(to), "+S"(from), "+c"(n) : : "memory");
    return ret;
}

void *memset(void *to, int value, size_t n)
{
    void *ret = to;
    __asm__ volatile("rep stosb" : "+D"(to), "+c"(n) : "a"(value) : "memory");
    return ret;
}

/* The one copy of a request's data. */
static inline __attribute__((always_inline)) void copy(void *to, const void *from, size_t n)
{
    __asm__ volatile("rep movsb" : "+D"(to), "+S"(from), "+c"(n) : : "memory");
}

static inline u32 be16(const u8 *p) { return ((u32)p[0] << 8) | p[1]; }
static inline u32 be32(const u8 *p) { return __builtin_bswap32(*(const u32 *)(const void *)p); }

/* Standard INQUIRY data: the bytes vstor returns with its default identity. */
static const u8 inquiry_data[74] = {
    0x00, 0x00, 0x06, 0x12, 74 - 5, 0x00, 0x00, 0x02,
    'V', 'S', 'T', 'O', 'R', ' ', ' ', ' ',
    'R', 'A', 'M', ' ', 'D', 'I', 'S', 'K', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
    '0', '0', '0', '1',
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* vendor specific */
    0, 0,
    0x00, 0xA0, 0x04, 0x60, 0x04, 0xC0, /* SAM-5, SPC-4, SBC-3 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* CHECK CONDITION with fixed-format sense (response code 70h). */
static __attribute__((noinline, cold)) u8 check(SCSI_REQUEST_BLOCK *srb, u8 key, u8 asc)
{
    u8 sense[18] = {0x70, 0, key, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, 0, 0, 0, 0, 0};
    srb->ScsiStatus = SCSI_STATUS_CHECK_CONDITION;
    srb->DataTransferLength = 0;
    if (srb->SenseInfoBuffer && srb->SenseInfoBufferLength &&
        !(srb->SrbFlags & SRB_FLAGS_DISABLE_AUTOSENSE)) {
        size_t n = srb->SenseInfoBufferLength < sizeof sense ? srb->SenseInfoBufferLength
                                                                : sizeof sense;
        copy(srb->SenseInfoBuffer, sense, n);
        return SRB_STATUS_ERROR | SRB_STATUS_AUTOSENSE_VALID;
    }
    return SRB_STATUS_ERROR;
}

/* A data-in reply of `len` bytes from `data`, cut to the allocation length and the buffer. */
static u8 reply(SCSI_REQUEST_BLOCK *srb, const u8 *data, u32 len, u32 allocation)
{
    u32 n = len < allocation ? len : allocation;
    if (n > srb->DataTransferLength)
        n = srb->DataTransferLength;
    if (n && !(srb->SrbFlags & SRB_FLAGS_DATA_IN))
        return SRB_STATUS_INVALID_REQUEST;
    copy(srb->DataBuffer, data, n);
    srb->DataTransferLength = n;
    return SRB_STATUS_SUCCESS;
}

static __attribute__((noinline)) u8 other_command(SCSI_REQUEST_BLOCK *srb)
{
    const u8 *cdb = srb->Cdb;
    u8 buffer[16] = {0};
    switch (cdb[0]) {
    case 0x25: /* READ CAPACITY(10) */
        *(u32 *)(void *)buffer = __builtin_bswap32(DISK_BLOCKS - 1);
        *(u32 *)(void *)(buffer + 4) = __builtin_bswap32(1u << BLOCK_SHIFT);
        return reply(srb, buffer, 8, 8);
    case 0x35: /* SYNCHRONIZE CACHE(10) */
        srb->DataTransferLength = 0;
        return SRB_STATUS_SUCCESS;
    case 0xA0: /* REPORT LUNS: LUN 0 */
        if (srb->CdbLength < 12)
            return SRB_STATUS_INVALID_REQUEST;
        buffer[3] = 8;
        return reply(srb, buffer, 16, be32(cdb + 6));
    default:
        return check(srb, ILLEGAL_REQUEST, ASC_INVALID_OPCODE);
    }
}

static __attribute__((noinline, cold)) u8 other_function(u8 function)
{
    switch (function) {
    case SRB_FUNCTION_SHUTDOWN:
    case SRB_FUNCTION_FLUSH:
    case SRB_FUNCTION_ABORT_COMMAND:
    case SRB_FUNCTION_RESET_BUS:
    case SRB_FUNCTION_RESET_DEVICE:
    case SRB_FUNCTION_RESET_LOGICAL_UNIT:
    case SRB_FUNCTION_POWER:
    case SRB_FUNCTION_PNP:
        return SRB_STATUS_SUCCESS;
    default:
        return SRB_STATUS_INVALID_REQUEST;
    }
}

/* READ(10) or WRITE(10) (`write`), inlined into each case so the direction is a constant. */
static inline __attribute__((always_inline)) u8 read_write(struct extension *ext,
                                                           SCSI_REQUEST_BLOCK *srb, int write)
{
    const u8 *cdb = srb->Cdb;
    if (__builtin_expect(srb->CdbLength < 10, 0))
        return SRB_STATUS_INVALID_REQUEST;
    u32 lba = be32(cdb + 2);
    u32 blocks = be16(cdb + 7);
    if (__builtin_expect((u64)lba + blocks > DISK_BLOCKS, 0))
        return check(srb, ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
    u32 bytes = blocks << BLOCK_SHIFT;
    if (__builtin_expect(bytes > MAX_TRANSFER, 0))
        return check(srb, ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
    if (__builtin_expect(bytes > srb->DataTransferLength, 0)) {
        srb->DataTransferLength = 0;
        return SRB_STATUS_DATA_OVERRUN;
    }
    if (__builtin_expect(bytes && !(srb->SrbFlags & (write ? SRB_FLAGS_DATA_OUT
                                                           : SRB_FLAGS_DATA_IN)), 0))
        return SRB_STATUS_INVALID_REQUEST;
    u8 *medium = ext->disk + ((u64)lba << BLOCK_SHIFT);
    if (write) {
#if PEER_LOCK
        u8 irql = ExAcquireSpinLockExclusive(&ext->lock);
#endif
        copy(medium, srb->DataBuffer, bytes);
#if PEER_LOCK
        ExReleaseSpinLockExclusive(&ext->lock, irql);
#endif
    } else {
#if PEER_LOCK
        u8 irql = ExAcquireSpinLockShared(&ext->lock);
#endif
        copy(srb->DataBuffer, medium, bytes);
#if PEER_LOCK
        ExReleaseSpinLockShared(&ext->lock, irql);
#endif
    }
    srb->DataTransferLength = bytes;
    return SRB_STATUS_SUCCESS;
}

static WINAPI u8 hw_start_io(void *extension, SCSI_REQUEST_BLOCK *srb)
{
    struct extension *ext = extension;
    const u8 *cdb = srb->Cdb;
    u8 status;
    if (__builtin_expect(srb->Function != SRB_FUNCTION_EXECUTE_SCSI, 0)) {
        /* Other layouts: only SrbStatus is the miniport's to set. */
        status = other_function(srb->Function);
        goto complete;
    }
    if (__builtin_expect(srb->PathId | srb->TargetId | srb->Lun, 0)) {
        status = (srb->PathId | srb->TargetId) ? SRB_STATUS_NO_DEVICE : SRB_STATUS_INVALID_LUN;
        goto complete;
    }
    srb->ScsiStatus = SCSI_STATUS_GOOD;
    switch (cdb[0]) {
    case 0x28: /* READ(10) */
        status = read_write(ext, srb, 0);
        break;
    case 0x2A: /* WRITE(10) */
        status = read_write(ext, srb, 1);
        break;
    case 0x00: /* TEST UNIT READY */
        srb->DataTransferLength = 0;
        status = SRB_STATUS_SUCCESS;
        break;
    case 0x12: /* INQUIRY: standard data only */
        if (cdb[1] & 3 || cdb[2]) {
            status = check(srb, ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
            break;
        }
        status = reply(srb, inquiry_data, sizeof inquiry_data, be16(cdb + 3));
        break;
    default:
        status = other_command(srb);
        break;
    }
complete:
    srb->SrbStatus = status;
    StorPortNotification(REQUEST_COMPLETE, extension, srb);
    return 1;
}

static WINAPI u32 hw_find_adapter(void *extension, void *context, void *bus, void *lower,
                                  char *arguments, PORT_CONFIGURATION_INFORMATION *config,
                                  u8 *again)
{
    struct extension *ext = extension;
    (void)context, (void)bus, (void)lower, (void)arguments, (void)again;
    if (!ext->disk) {
        ext->disk = ExAllocatePool2(POOL_FLAG_NON_PAGED, DISK_BYTES, TAG);
        if (!ext->disk)
            return SP_RETURN_ERROR;
    }
    ext->lock = 0;
    config->VirtualDevice = 1;
    config->MaximumTransferLength = MAX_TRANSFER;
    config->NumberOfPhysicalBreaks = MAX_TRANSFER / 4096 + 1;
    config->AlignmentMask = 0;
    config->NumberOfBuses = 1;
    config->MaximumNumberOfTargets = 1;
    config->MaximumNumberOfLogicalUnits = 1;
    config->ScatterGather = 1;
    config->CachesData = 0;
    config->MapBuffers = STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE;
    return SP_RETURN_FOUND;
}

static WINAPI u8 hw_initialize(void *extension)
{
    (void)extension;
    return 1;
}

static WINAPI u8 hw_reset_bus(void *extension, u32 path)
{
    (void)extension, (void)path;
    return 1;
}

static WINAPI u32 hw_adapter_control(void *extension, u32 type, void *parameters)
{
    (void)extension;
    switch (type) {
    case 0: { /* ScsiQuerySupportedControlTypes */
        SCSI_SUPPORTED_CONTROL_TYPE_LIST *list = parameters;
        for (u32 i = 0; i < 3 && i < list->MaxControlType; i++)
            list->SupportedTypeList[i] = 1; /* query, stop, restart */
        return 0;
    }
    case 1: /* ScsiStopAdapter */
    case 2: /* ScsiRestartAdapter */
        return 0;
    default:
        return 1;
    }
}

static WINAPI void hw_free_adapter_resources(void *extension)
{
    struct extension *ext = extension;
    if (ext->disk)
        ExFreePoolWithTag(ext->disk, TAG);
    ext->disk = 0;
}

WINAPI u32 DriverEntry(void *driver, void *path)
{
    HW_INITIALIZATION_DATA init = {
        .HwInitializationDataSize = sizeof init,
        .AdapterInterfaceType = 0, /* Internal */
        .HwInitialize = (void *)hw_initialize,
        .HwStartIo = (void *)hw_start_io,
        .HwFindAdapter = (void *)hw_find_adapter,
        .HwResetBus = (void *)hw_reset_bus,
        .DeviceExtensionSize = sizeof(struct extension),
        .MapBuffers = STOR_MAP_ALL_BUFFERS_INCLUDING_READ_WRITE,
        .TaggedQueuing = 1,
        .AutoRequestSense = 1,
        .MultipleRequestPerLu = 1,
        .HwAdapterControl = (void *)hw_adapter_control,
        .HwFreeAdapterResources = (void *)hw_free_adapter_resources,
        .FeatureSupport = STOR_FEATURE_VIRTUAL_MINIPORT,
    };
    return StorPortInitialize(driver, path, &init, 0);
}
