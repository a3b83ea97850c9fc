//! port (under construction).
