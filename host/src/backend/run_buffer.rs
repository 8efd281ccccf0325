//! The structs built-in programs share with the host through the *run buffer* (Vulkan: binding 2): the run
//! parameters, the text table and one [`LaneState`] per lane, defined in [`crate::abi::run`] (layout asserted
//! at compile time there) and re-exported here; `device-shaders/include/gpu_uring.glsl` (`GuRunParams`,
//! `GuLaneState`, `GuRunBuffer`) reads their sizes from the generated ABI header, and the `layout` program
//! (device suite) checks the GLSL side against them on a real device.

pub use crate::abi::run::{
    LaneState, RunHeader, RunParams, LANE_FINISHED, LANE_NO_TARGET, PROGRAM_EDIT_BUFFER,
    PROGRAM_EXACT, PROGRAM_FORMAT, PROGRAM_HOSTILE, PROGRAM_LANE_STRESS, PROGRAM_LAYOUT,
    PROGRAM_NOP, PROGRAM_PRINT, PROGRAM_READ, TEXT_BYTES, TEXT_ENTRIES,
};

/// The bytes of the text pieces of [`crate::backend::Program::Print`] (ids 0–5), in the order
/// [`crate::backend::format_print_line`] uses them.
pub const PRINT_TEXT: [&str; 6] = ["lane=", " seq=", " d=", " x=", " v=", " gpu-uring"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_table_round_trips() {
        let h = RunHeader::new(RunParams::default(), &PRINT_TEXT);
        let bytes: &[u8] = bytemuck::cast_slice(&h.text_bytes);
        for (k, t) in PRINT_TEXT.iter().enumerate() {
            let (o, n) = (
                h.text_index[2 * k] as usize,
                h.text_index[2 * k + 1] as usize,
            );
            assert_eq!(&bytes[o..o + n], t.as_bytes());
        }
        let mut l = crate::protocol::LineBuf::with_capacity(256);
        crate::backend::format_print_line(&mut l, 3, 7);
        let line = String::from_utf8(l.as_bytes().to_vec()).unwrap();
        for t in PRINT_TEXT {
            assert!(line.contains(t), "{t:?} is a piece of {line:?}");
        }
    }
}
