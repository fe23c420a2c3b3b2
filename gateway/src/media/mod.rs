//! GStreamer media handling.
