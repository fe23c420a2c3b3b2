//! HTTP origin.
