//! The programs' SPIR-V, built from `device-shaders/src/*.comp` by `device-shaders/build.sh` and committed, so
//! building gpu-uring needs no shader compiler (CI checks the committed files match a fresh compile).

/// `print.comp`: formatted lines, one write per line (Program::Print, `PrintMode::LinePerWrite`).
pub static PRINT: &[u8] = include_bytes!("../../../device-shaders/spirv/print.spv");
/// `print_log.comp`: formatted lines through the print log (Program::Print, `PrintMode::GroupCommit`).
pub static PRINT_LOG: &[u8] = include_bytes!("../../../device-shaders/spirv/print_log.spv");
/// `nop.comp`: NOPs or writes (Program::Nop, Program::Write).
pub static NOP: &[u8] = include_bytes!("../../../device-shaders/spirv/nop.spv");
/// `read.comp`: READ_FIXED + checksum (Program::Read).
pub static READ: &[u8] = include_bytes!("../../../device-shaders/spirv/read.spv");
/// `lane_stress.comp`: waited and fire-and-forget NOPs on a tiny ring (Program::LaneStress).
pub static LANE_STRESS: &[u8] = include_bytes!("../../../device-shaders/spirv/lane_stress.spv");
/// `edit_buffer.comp`: values the host sees while the dispatch runs (Program::EditBuffer).
pub static EDIT_BUFFER: &[u8] = include_bytes!("../../../device-shaders/spirv/edit_buffer.spv");
/// `layout.comp`: known SQE fields and struct probes (Program::Layout).
pub static LAYOUT: &[u8] = include_bytes!("../../../device-shaders/spirv/layout.spv");
/// `exact.comp`: SQE images published exactly as given (Program::Exact).
pub static EXACT: &[u8] = include_bytes!("../../../device-shaders/spirv/exact.spv");
/// `format.comp`: the §7 number formatter, case by case (Programs::format_probe).
pub static FORMAT: &[u8] = include_bytes!("../../../device-shaders/spirv/format.spv");
/// `pump_stream.comp`: the megakernel_stream kernel on the io_queue (backend::pump, PumpProgram::STREAM).
pub static PUMP_STREAM: &[u8] = include_bytes!("../../../device-shaders/spirv/pump_stream.spv");
/// `pump_probe.comp`: io_queue layout echo, exactly-once and validation probes (PumpProgram::PROBE).
pub static PUMP_PROBE: &[u8] = include_bytes!("../../../device-shaders/spirv/pump_probe.spv");
/// `hostile.comp`: lane 0 corrupts its own ring the way hostile device code could (Program::Hostile).
pub static HOSTILE: &[u8] = include_bytes!("../../../device-shaders/spirv/hostile.spv");
