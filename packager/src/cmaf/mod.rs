//! CMAF (ISO/IEC 23000-19) init segments and fragments, written with `mp4-atom`.
