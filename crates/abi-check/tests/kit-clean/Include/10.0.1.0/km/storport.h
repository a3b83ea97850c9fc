/* Test header written for vstor-abi-check (not a kit header): a few of
   storport.h's declarations, in its style. The include name's case differs
   from the file's on purpose, as in the kit. */
#include <minidefs.h>

#define SP_RETURN_FOUND 1
#define MINIPORT_REG_DWORD 4

typedef struct _STOR_LOCK_HANDLE {
    ULONG Lock;
    union {
        struct { PVOID Reserved[3]; } Context;
        PVOID Reserved2;
    };
} STOR_LOCK_HANDLE;

typedef struct _UNICODE_STRING {
    USHORT Length;
    USHORT MaximumLength;
    union {
        unsigned short *Buffer;
        PVOID Alternative;
    };
} UNICODE_STRING;

ULONG StorPortStallExecution(ULONG Delay);
BOOLEAN StorPortRegistryRead(PVOID HwDeviceExtension, UCHAR *ValueName, ULONG Global, ULONG Type, UCHAR *Buffer, ULONG *BufferLength);
