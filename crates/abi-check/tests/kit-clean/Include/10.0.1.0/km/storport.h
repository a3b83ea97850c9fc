/* Test header written for vstor-abi-check (not a kit header): a few of
   storport.h's declarations, in its style. The include name's case differs
   from the file's on purpose, as in the kit. */
#include <minidefs.h>
#include <EXCPT.H>
#ifndef VSTOR_TEST_CRT_SEEN
#error km/crt was not searched
#endif

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

typedef struct _STOR_DEVICE_CAPABILITIES_EX {
    USHORT Version;
    USHORT Size;
    ULONG  DeviceD1:1;
    ULONG  DeviceD2:1;
    ULONG  LockSupported:1;
    ULONG  EjectSupported:1;
    ULONG  Removable:1;
    ULONG  DockDevice:1;
    ULONG  UniqueID:1;
    ULONG  SilentInstall:1;
    ULONG  RawDeviceOK:1;
    ULONG  SurpriseRemovalOK:1;
    ULONG  NoDisplayInUI:1;
    ULONG  DefaultWriteCacheEnabled:1;
    ULONG  Reserved0:20;
    ULONG  Address;
    ULONG  UINumber;
    ULONG  Reserved1[2];
} STOR_DEVICE_CAPABILITIES_EX;
