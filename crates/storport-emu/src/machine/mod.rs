//! machine (under construction).
