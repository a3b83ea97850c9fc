//! storemu: a user-mode emulator of the Storport port driver that loads a
//! real miniport `.sys`, drives it through the adapter life cycle and I/O, and
//! checks it against the rules Driver Verifier, Static Driver Verifier and
//! Storport itself enforce.

pub mod cli;
pub mod files;
pub mod inf;
pub mod machine;
pub mod port;
pub mod registry;
pub mod serve;
pub mod setup;
