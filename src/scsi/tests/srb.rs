//! srb
