//! inf (under construction).
