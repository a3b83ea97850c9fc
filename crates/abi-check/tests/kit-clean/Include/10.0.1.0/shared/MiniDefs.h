/* Test header written for vstor-abi-check: basic types, declared the way the
   kit's shared headers declare them. */
typedef unsigned char UCHAR, BOOLEAN;
typedef unsigned short USHORT;
typedef unsigned long ULONG;
typedef void *PVOID;
typedef enum _INTERFACE_TYPE { InterfaceTypeUndefined = -1, Internal, Isa } INTERFACE_TYPE;
