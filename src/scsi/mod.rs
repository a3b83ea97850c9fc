//! SCSI disk logic: pure, no FFI (under construction).
