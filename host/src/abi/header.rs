//! The C header generated from this module: `abi/gpu_uring_abi.h` at the repository root, included by GLSL
//! (`GL_GOOGLE_include_directive`), HIP and CUDA.
//!
//! Outside C++ the header holds include-guarded `#define`s only — field offsets and struct sizes in bytes
//! (`GU_<STRUCT>_<FIELD>`, `GU_SIZEOF_<STRUCT>`), enum values and constants — every one unsigned, with a `u`
//! suffix (`UL` for 64-bit values), so that GLSL's preprocessor reads it. Under `#ifndef __cplusplus` it adds
//! the member lists of the structs GLSL declares (`GU_<STRUCT>_MEMBERS`: `uint`, `int`, `uint64_t`, arrays and
//! nested structs by their GLSL type name), which the GLSL library expands inside its push-constant blocks,
//! buffer blocks and structs, so no GLSL file retypes a layout; the generator checks that GLSL's std430 rules
//! place every member at the Rust offset (`#error` in the header otherwise). Under `#ifdef __cplusplus` it adds
//! plain C++ struct views (`namespace gpu_uring`) with `static_assert`s of every size, alignment and offset
//! against those defines.
//!
//! [`render`] is pure; `cargo run -p gpu-uring --example gen-abi-header` writes its output to the header, and
//! `-- --check` (run by CI, like `device-shaders/build.sh --check`) fails when the committed header differs.

use std::fmt::Write as _;

use super::describe::{AbiStruct, WireEnum};
use super::queue::*;
use super::ring::*;
use super::run::*;
use super::uring::*;

/// Path of the generated header, relative to the repository root.
pub const HEADER_PATH: &str = "abi/gpu_uring_abi.h";

/// The header's text.
pub fn render() -> String {
    let mut h = Header::default();
    h.line("// gpu_uring_abi.h: the memory host and device code of gpu-uring share (PROTOCOL.md).");
    h.line("// GENERATED from host/src/abi/ by `cargo run -p gpu-uring --example gen-abi-header`: do not edit; CI checks");
    h.line("// it is current. Outside C++: #defines only (byte offsets GU_<STRUCT>_<FIELD>, sizes GU_SIZEOF_<STRUCT>,");
    h.line("// enum values and constants, all unsigned; GLSL member lists GU_<STRUCT>_MEMBERS), so GLSL");
    h.line("// (GL_GOOGLE_include_directive), HIP and CUDA include it.");
    h.line("#ifndef GPU_URING_ABI_H");
    h.line("#define GPU_URING_ABI_H");

    h.section("RingLayout: the ring layout descriptor (push constants / kernel argument)");
    h.offsets::<RingLayout>("RING_LAYOUT");
    h.u32("RING_FLAG_NO_SQARRAY", RING_FLAG_NO_SQARRAY);
    h.u32("RING_FLAG_CONFINED", RING_FLAG_CONFINED);
    h.u32("RING_FLAG_SQPOLL", RING_FLAG_SQPOLL);

    h.section("LocalControl: the device-local control block (offset 0 of the device-local block)");
    h.offsets::<LocalControl>("LOCAL_CONTROL");
    h.u32("BELL_LOCK", BELL_LOCK);
    h.u32("BELL_DIRTY", BELL_DIRTY);
    h.u32("BELL_ROUNDS", BELL_ROUNDS);
    h.u32("CQ_HEAD_LAG_DIVISOR", CQ_HEAD_LAG_DIVISOR);

    h.section("SharedControl: the host-shared control block (offsets from RingLayout.control, in the arena)");
    h.offsets::<SharedControl>("SHARED_CONTROL");
    h.u32("PRINT_FIXED_FILE", PRINT_FIXED_FILE);
    h.u32("PRINT_OFFSET_MODE", PRINT_OFFSET_MODE);
    h.u32("PRINT_FIXED_BUF", PRINT_FIXED_BUF);
    h.u32("PRINT_LOG", PRINT_LOG);
    h.u32("LOG_TICKETS", LOG_TICKETS);
    h.u32("LOG_DUTY_WRITES", LOG_DUTY_WRITES);
    h.u32("LOG_PRINT_POLLS", LOG_PRINT_POLLS);
    h.u32("LOG_SLOT", LOG_SLOT);
    h.u32("RESERVE_TRIES", RESERVE_TRIES);
    h.u32("MAX_LINE", MAX_LINE);

    h.section(
        "CompletionSlot: a ring completion slot; state word = generation << 8 | RingSlotState",
    );
    h.offsets::<CompletionSlot>("COMPLETION_SLOT");
    h.enumeration::<RingSlotState>("RING_SLOT");
    h.u32("RING_SLOT_STATE_MASK", SLOT_STATE_MASK);
    h.u32("RING_SLOT_GEN_SHIFT", SLOT_GEN_SHIFT);
    h.u32("RING_SLOT_GEN_MASK", SLOT_GEN_MASK);

    h.section("user_data tags (bits 62-63): GU_TAG_<X> is the 2-bit tag, _HI the high word, _UD the 64-bit value");
    h.u32("TAG_SHIFT", TAG_SHIFT);
    for t in UserDataTag::ALL {
        let ud = (t.raw() as u64) << TAG_SHIFT;
        let name = t.name().to_ascii_uppercase();
        h.u32(&format!("TAG_{name}"), t.raw());
        h.u32(&format!("TAG_{name}_HI"), (ud >> 32) as u32);
        h.u64(&format!("TAG_{name}_UD"), ud);
    }

    h.section("WaitStatus: what device-side ring protocol calls return");
    h.enumeration::<WaitStatus>("STATUS");

    h.section(
        "io_uring: the kernel's SQE and CQE, and the opcodes and SQE flags device code writes",
    );
    h.offsets::<Sqe>("SQE");
    h.offsets::<Cqe>("CQE");
    h.u32("IORING_OP_NOP", IORING_OP_NOP);
    h.u32("IORING_OP_READ_FIXED", IORING_OP_READ_FIXED);
    h.u32("IORING_OP_WRITE_FIXED", IORING_OP_WRITE_FIXED);
    h.u32("IORING_OP_READ", IORING_OP_READ);
    h.u32("IORING_OP_WRITE", IORING_OP_WRITE);
    h.u32("IOSQE_FIXED_FILE", IOSQE_FIXED_FILE);
    h.u32("IOSQE_IO_LINK", IOSQE_IO_LINK);
    h.u32("IOSQE_IO_HARDLINK", IOSQE_IO_HARDLINK);
    h.u32("IOSQE_CQE_SKIP_SUCCESS", IOSQE_CQE_SKIP_SUCCESS);

    h.section("Ring programs' run buffer: RunHeader, then one LaneState per lane");
    h.offsets::<RunParams>("RUN_PARAMS");
    h.offsets::<RunHeader>("RUN_HEADER");
    h.offsets::<LaneState>("LANE_STATE");
    h.u32("TEXT_ENTRIES", TEXT_ENTRIES as u32);
    h.u32("TEXT_BYTES", TEXT_BYTES as u32);
    h.u32("LANE_FINISHED", LANE_FINISHED);
    h.u32("LANE_NO_TARGET", LANE_NO_TARGET);
    for (name, v) in [
        ("PRINT", PROGRAM_PRINT),
        ("NOP", PROGRAM_NOP),
        ("READ", PROGRAM_READ),
        ("LANE_STRESS", PROGRAM_LANE_STRESS),
        ("EDIT_BUFFER", PROGRAM_EDIT_BUFFER),
        ("LAYOUT", PROGRAM_LAYOUT),
        ("EXACT", PROGRAM_EXACT),
        ("FORMAT", PROGRAM_FORMAT),
        ("HOSTILE", PROGRAM_HOSTILE),
    ] {
        h.u32(&format!("PROGRAM_{name}"), v);
    }

    h.section("io_queue: QueueHeader at arena offset 0, request sequences, RegionDesc table, IoSlots; device-local slot words; PumpLayout (push constants)");
    h.offsets::<QueueHeader>("QUEUE_HEADER");
    h.offsets::<RegionDesc>("REGION_DESC");
    h.offsets::<IoSlot>("IO_SLOT");
    h.offsets::<PumpLayout>("PUMP_LAYOUT");
    h.u32("QUEUE_MAGIC", QUEUE_MAGIC);
    h.u32("QUEUE_VERSION", QUEUE_VERSION);
    h.u32("QUEUE_GUARD_BYTE", GUARD_BYTE.into());
    h.u32("QUEUE_MAX_SLOTS", MAX_SLOTS);
    h.u32("QUEUE_MAX_REGION", MAX_REGION as u32);
    h.enumeration::<QueueSlotState>("QUEUE_SLOT");
    h.u32("QUEUE_SLOT_STATE_MASK", QUEUE_SLOT_STATE_MASK);
    h.u32("QUEUE_SEQ_SHIFT", QUEUE_SEQ_SHIFT);
    h.u32("QUEUE_SEQ_MASK", QUEUE_SEQ_MASK);
    h.enumeration::<QueueOp>("QUEUE_OP");
    h.enumeration::<QueueErrorCode>("QUEUE_ERR");
    h.u32("QUEUE_ERR_COUNT", ERR_COUNT as u32);
    h.enumeration::<PumpState>("PUMP");

    h.section("io_queue programs' run buffer: PumpRunParams, then one PumpLaneState per lane");
    h.offsets::<PumpRunParams>("PUMP_RUN_PARAMS");
    h.offsets::<PumpLaneState>("PUMP_LANE_STATE");
    h.u32("PUMP_LANE_FINISHED", PUMP_LANE_FINISHED);
    h.u32("PUMP_NO_SLOT", PUMP_NO_SLOT);
    h.enumeration::<QueueStatus>("QUEUE_STATUS");

    h.line("");
    h.line("#ifndef __cplusplus");
    h.line("// GLSL member lists of the structs GLSL declares, each expanded as `struct <GlslType> { GU_<STRUCT>_MEMBERS };`");
    h.line("// or inside a push-constant / buffer block. Members keep the Rust names (GLSL-reserved names renamed);");
    h.line("// nested structs are named by their GLSL type. std430 places every member at the offset defined above.");
    h.glsl::<RingLayout>("RING_LAYOUT", "GuRingLayout");
    h.glsl::<RunParams>("RUN_PARAMS", "GuRunParams");
    h.glsl::<RunHeader>("RUN_HEADER", "GuRunBuffer");
    h.glsl::<LaneState>("LANE_STATE", "GuLaneState");
    h.glsl::<PumpLayout>("PUMP_LAYOUT", "GqPumpLayout");
    h.glsl::<PumpRunParams>("PUMP_RUN_PARAMS", "GqRunParams");
    h.glsl::<PumpLaneState>("PUMP_LANE_STATE", "GqLaneState");
    h.line("#endif // !__cplusplus");
    h.line("");
    h.line("#ifdef __cplusplus");
    h.line("// C++ views (HIP, CUDA, host C++): plain structs, checked against the defines above.");
    h.line("#include <stddef.h>");
    h.line("#include <stdint.h>");
    h.line("namespace gpu_uring {");
    h.view::<RingLayout>("RING_LAYOUT");
    h.view::<LocalControl>("LOCAL_CONTROL");
    h.view::<SharedControl>("SHARED_CONTROL");
    h.view::<CompletionSlot>("COMPLETION_SLOT");
    h.view::<Sqe>("SQE");
    h.view::<Cqe>("CQE");
    h.view::<RunParams>("RUN_PARAMS");
    h.view::<RunHeader>("RUN_HEADER");
    h.view::<LaneState>("LANE_STATE");
    h.view::<QueueHeader>("QUEUE_HEADER");
    h.view::<RegionDesc>("REGION_DESC");
    h.view::<IoSlot>("IO_SLOT");
    h.view::<PumpLayout>("PUMP_LAYOUT");
    h.view::<PumpRunParams>("PUMP_RUN_PARAMS");
    h.view::<PumpLaneState>("PUMP_LANE_STATE");
    h.line("} // namespace gpu_uring");
    h.line("#endif // __cplusplus");
    h.line("");
    h.line("#endif // GPU_URING_ABI_H");
    h.out
}

#[derive(Default)]
struct Header {
    out: String,
    /// Structs given a GLSL member list so far: (Rust name, GLSL type name, size, alignment), so that a later
    /// struct can nest them.
    glsl_types: Vec<GlslType>,
}

#[derive(Clone, Copy)]
struct GlslType {
    rust: &'static str,
    glsl: &'static str,
    size: usize,
    align: usize,
}

/// Fields whose Rust name is a GLSL reserved word, and the name GLSL gives them: (struct, field, GLSL name).
const GLSL_RENAMES: &[(&str, &str, &str)] = &[("RingLayout", "fixed", "fixed_off")];

/// GLSL keywords and reserved words (GLSL 4.60 §3.6) that could plausibly be field names; a member list naming
/// one fails with `#error` until [`GLSL_RENAMES`] renames it.
const GLSL_RESERVED: &str = "\
    active asm atomic_uint attribute bool break buffer case cast centroid class coherent common const \
    continue default discard do double else enum extern external false filter fixed flat float for goto \
    half highp if in inline inout input int interface invariant layout long lowp mediump namespace \
    noinline noperspective out output partition patch precise precision public readonly resource \
    restrict return sample sampler shared short sizeof smooth static struct subroutine superp switch \
    template this true typedef uint uniform union unsigned using varying void volatile while writeonly";

/// A field name as the define spells it: upper case, without leading underscores.
fn define_name(field: &str) -> String {
    field.trim_start_matches('_').to_ascii_uppercase()
}

/// A field's name in GLSL: the Rust name, unless [`GLSL_RENAMES`] renames it.
fn glsl_field_name(strukt: &str, field: &'static str) -> &'static str {
    GLSL_RENAMES
        .iter()
        .find(|(s, f, _)| *s == strukt && *f == field)
        .map_or(field, |r| r.2)
}

impl Header {
    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn section(&mut self, title: &str) {
        let _ = write!(self.out, "\n// ---- {title}\n");
    }

    fn u32(&mut self, name: &str, v: u32) {
        let _ = if v > 0xffff || name.ends_with("MASK") {
            writeln!(self.out, "#define GU_{name} 0x{v:08x}u")
        } else {
            writeln!(self.out, "#define GU_{name} {v}u")
        };
    }

    fn u64(&mut self, name: &str, v: u64) {
        let _ = writeln!(self.out, "#define GU_{name} 0x{v:016x}UL");
    }

    fn offsets<S: AbiStruct>(&mut self, prefix: &str) {
        self.u32(&format!("SIZEOF_{prefix}"), std::mem::size_of::<S>() as u32);
        for f in S::FIELDS {
            self.u32(
                &format!("{prefix}_{}", define_name(f.name)),
                f.offset as u32,
            );
        }
    }

    fn enumeration<E: WireEnum>(&mut self, prefix: &str) {
        for e in E::ALL {
            self.u32(
                &format!("{prefix}_{}", e.name().to_ascii_uppercase()),
                e.raw(),
            );
        }
    }

    /// `GU_<prefix>_MEMBERS`: `S`'s members as GLSL declares them, after checking that std430 gives each the
    /// Rust offset. A member GLSL cannot express (8/16-bit scalars, an unregistered nested struct, a reserved
    /// name) or a layout std430 would place differently becomes an `#error` line instead, so neither the
    /// committed-header test nor a shader compile can miss it.
    fn glsl<S: AbiStruct>(&mut self, prefix: &str, glsl_type: &'static str) {
        let mut members = Vec::new();
        let mut errors = Vec::new();
        let (mut at, mut align) = (0usize, 1usize);
        for f in S::FIELDS {
            let name = glsl_field_name(S::NAME, f.name);
            if GLSL_RESERVED.split_whitespace().any(|w| w == name)
                || name.starts_with("gl_")
                || name.contains("__")
            {
                errors.push(format!(
                    "{}::{} is reserved in GLSL: rename it in GLSL_RENAMES",
                    S::NAME,
                    f.name
                ));
                continue;
            }
            // (GLSL type, std430 size, std430 alignment) of one element.
            let elem = match f.c_type {
                "uint32_t" => Some(("uint", 4, 4)),
                "int32_t" => Some(("int", 4, 4)),
                "uint64_t" => Some(("uint64_t", 8, 8)),
                nested => self
                    .glsl_types
                    .iter()
                    .find(|t| t.rust == nested)
                    .map(|t| (t.glsl, t.size, t.align)),
            };
            let Some((ty, size, elem_align)) = elem else {
                errors.push(format!(
                    "{}::{} ({}) has no GLSL type (8/16-bit, or a struct not yet given a member list)",
                    S::NAME,
                    f.name,
                    f.c_type
                ));
                continue;
            };
            at = at.next_multiple_of(elem_align);
            align = align.max(elem_align);
            if at != f.offset {
                errors.push(format!(
                    "std430 puts {}::{} at {at}, Rust at {}",
                    S::NAME,
                    f.name,
                    f.offset
                ));
            }
            at = f.offset + size * f.count.max(1);
            members.push(if f.count == 0 {
                format!("{ty} {name};")
            } else {
                format!("{ty} {name}[{}];", f.count)
            });
        }
        let size = at.next_multiple_of(align);
        if errors.is_empty()
            && (size != std::mem::size_of::<S>() || align != std::mem::align_of::<S>())
        {
            errors.push(format!(
                "std430 makes {} {size} bytes aligned to {align}, Rust {} aligned to {}",
                S::NAME,
                std::mem::size_of::<S>(),
                std::mem::align_of::<S>()
            ));
        }
        for e in &errors {
            let _ = writeln!(self.out, "#error \"{e}\"");
        }
        if !errors.is_empty() {
            return;
        }
        self.glsl_types.push(GlslType {
            rust: S::NAME,
            glsl: glsl_type,
            size,
            align,
        });
        let _ = writeln!(self.out, "// {} as GLSL's {glsl_type}", S::NAME);
        let _ = write!(self.out, "#define GU_{prefix}_MEMBERS");
        for m in &members {
            let _ = write!(self.out, " \\\n    {m}");
        }
        self.out.push('\n');
    }

    fn view<S: AbiStruct>(&mut self, prefix: &str) {
        let name = S::NAME;
        let _ = writeln!(self.out, "struct {name} {{");
        for f in S::FIELDS {
            let _ = if f.count == 0 {
                writeln!(self.out, "    {} {};", f.c_type, f.name)
            } else {
                writeln!(self.out, "    {} {}[{}];", f.c_type, f.name, f.count)
            };
        }
        let _ = writeln!(self.out, "}};");
        let _ = writeln!(
            self.out,
            "static_assert(sizeof({name}) == GU_SIZEOF_{prefix}, \"{name} size\");"
        );
        let _ = writeln!(
            self.out,
            "static_assert(alignof({name}) == {}u, \"{name} alignment\");",
            std::mem::align_of::<S>()
        );
        for f in S::FIELDS {
            let _ = writeln!(
                self.out,
                "static_assert(offsetof({name}, {}) == GU_{prefix}_{}, \"{name}::{}\");",
                f.name,
                define_name(f.name),
                f.name
            );
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_define_is_unique_and_unsigned() {
        let text = render();
        let mut seen = std::collections::HashSet::new();
        for l in text.lines().filter(|l| l.starts_with("#define GU_")) {
            let mut it = l.split_whitespace().skip(1);
            let name = it.next().unwrap();
            assert!(seen.insert(name.to_owned()), "{name} defined twice");
            if name.ends_with("_MEMBERS") {
                continue; // a GLSL member list, continued on the following lines
            }
            let value = it.next().unwrap();
            assert!(value.ends_with('u') || value.ends_with("UL"), "{l}");
        }
        assert!(seen.contains("GU_LOCAL_CONTROL_PROTOCOL_VIOLATIONS"));
        assert!(seen.contains("GU_QUEUE_SLOT_PUBLISHED"));
        assert!(seen.contains("GU_RING_SLOT_DONE"));
    }

    #[test]
    fn glsl_member_lists_follow_rust() {
        let text = render();
        assert!(!text.contains("#error"), "{text}");
        let start = text.find("#define GU_RING_LAYOUT_MEMBERS").unwrap();
        let ring = &text[start..text[start..].find("\n//").unwrap() + start];
        assert!(ring.contains("uint64_t arena_host_base;"), "{ring}");
        assert!(ring.contains("uint fixed_off;"), "{ring}");
        assert!(ring.trim_end().ends_with("uint lane_words;"), "{ring}");
        assert!(text.contains("    GuRunParams params; \\\n    uint text_index[32];"));
        assert!(text.contains("    int last_result; \\\n"));
        assert!(text.contains("    uint reserved2[4];\n"));
    }

    #[test]
    fn glsl_member_lists_refuse_what_glsl_cannot_hold() {
        let mut h = Header::default();
        h.glsl::<Sqe>("SQE", "GuSqe");
        assert!(
            h.out
                .contains("#error \"Sqe::opcode (uint8_t) has no GLSL type"),
            "{}",
            h.out
        );
        assert!(!h.out.contains("#define"), "{}", h.out);
        // A nested struct needs its own member list first.
        let mut h = Header::default();
        h.glsl::<RunHeader>("RUN_HEADER", "GuRunBuffer");
        assert!(
            h.out.contains("#error \"RunHeader::params (RunParams)"),
            "{}",
            h.out
        );
        assert!(GLSL_RESERVED.split_whitespace().any(|w| w == "fixed"));
    }

    /// Compiles the header with `compiler` (`-fsyntax-only`), or says why it was skipped: `None` when it
    /// compiled or no such compiler is installed, else the compiler's errors.
    fn compile(compiler: &str, file: &str, std: &str) -> Option<String> {
        let dir =
            std::env::temp_dir().join(format!("gpu_uring_abi_{}_{compiler}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join(file);
        std::fs::write(
            &src,
            format!("{}\nint main(void) {{ return 0; }}\n", render()),
        )
        .unwrap();
        let out = std::process::Command::new(compiler)
            .args([std, "-Wall", "-Wextra", "-pedantic", "-fsyntax-only"])
            .arg(&src)
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        match out {
            Err(e) => {
                eprintln!("skipped: no `{compiler}` ({e})");
                None
            }
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(String::from_utf8_lossy(&o.stderr).into_owned()),
        }
    }

    /// A C++ compiler agrees with Rust's `repr(C)` layout: the header's `static_assert`s hold. Skipped (saying
    /// so) where no `c++` is installed; CI images with a C++ compiler run it.
    #[test]
    fn cpp_views_compile_and_match() {
        if let Some(e) = compile("c++", "check.cpp", "-std=c++14") {
            panic!("the header's C++ views do not compile:\n{e}");
        }
    }

    /// A C includer sees only defines (the GLSL member lists included, never expanded): the header compiles as
    /// C99. Skipped (saying so) where no `cc` is installed.
    #[test]
    fn c_includers_compile() {
        if let Some(e) = compile("cc", "check.c", "-std=c99") {
            panic!("the header does not compile as C:\n{e}");
        }
    }

    /// The committed header is what [`render`] produces now (the example's `--check` says the same in CI).
    #[test]
    fn committed_header_is_current() {
        let committed = include_str!("../../../abi/gpu_uring_abi.h");
        assert!(
            committed == render(),
            "{HEADER_PATH} is stale: run `cargo run -p gpu-uring --example gen-abi-header` and commit it"
        );
    }
}
