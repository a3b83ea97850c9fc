//! Windows INF files: the parser ([`Inf`]) and the installer that seeds the
//! emulated registry from a driver's INF ([`install`]), or without one
//! ([`install_default`]).

mod install;
pub mod lint;
pub mod min_build;
mod parse;
pub mod synthetic;

pub use install::{
    At, InstallError, InstallOptions, Installed, install, install_default, service_name_for_image,
};
pub use parse::{Entry, Inf, ParseError, ParseErrorKind, Section};
