//! Your own device code on a ring: [`RingKernel`] loads a kernel written against the device library (GLSL:
//! `device-shaders/include/gpu_uring_print.glsl`, over `gpu_uring.glsl`) and runs it exactly as the built-in
//! programs run, on any [`Device`] that loads one of its formats: it imports the ring's arena, places the
//! device-local block, fills the run buffer (the [`RunParams`] from a [`RunConfig`], the kernel's text table,
//! one zeroed [`LaneState`](super::run_buffer::LaneState) per lane) and the push constants (the ring's
//! [`RingLayout`](crate::ring::RingLayout)), and re-dispatches until every lane has set `GU_LANE_FINISHED` or the
//! run's time is up. [`super::glsl`] compiles a GLSL shader to the SPIR-V it loads.
//!
//! The kernel's interface (what `gpu_uring.glsl` declares): storage buffers at set 0, bindings 0 and 1 = the
//! ring's arena (as 32- and 64-bit words), 2 = the run buffer, 3 and 4 = the device-local block (likewise);
//! the 128-byte `RingLayout` as push constants; the workgroup size as specialization constant 0 (the device
//! dispatches workgroups of one subgroup, `lanes / subgroup size` of them, rounded up). A native kernel (the CPU
//! reference device, [`KernelCode::Native`]) gets the same six arguments and a 4-byte 0, one invocation per lane.

use std::time::Duration;

use super::builtin::{run_plan, Flavor, Plan, PlanKernel};
use super::error::DeviceError;
use super::hal::{Device, Kernel, KernelCode, KernelFormat, KernelLayout};
use super::run_buffer::{RunParams, LANE_FINISHED, LANE_NO_TARGET};
use super::RunReport;
use crate::abi::run::RunHeader;
use crate::protocol::DeviceRing;
use crate::ring::RingLayout;

/// Bindings a ring kernel has (set 0): arena ×2, run buffer, device-local block ×2.
const BINDINGS: u32 = 5;

/// The largest soft loop budget `gpu_uring.glsl` takes from the run parameters (`GU_HARD_BUDGET / 2`).
const GLSL_MAX_BUDGET: u32 = 30_000;

/// How one run of a [`RingKernel`] goes: what every lane is told (`gu_run.params` in GLSL) and how long the host
/// waits. `RunConfig::lanes(n)` gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// Lanes (1..= the ring's `lanes`): invocations with a larger id return at once (`gu_begin`).
    pub lanes: u32,
    /// `params.count`: yours to use (lines, steps, operations per lane). Default 1.
    pub count: u32,
    /// `params.arg0`: yours to use. Default 0.
    pub arg0: u32,
    /// `params.arg1`: yours to use. Default 0.
    pub arg1: u32,
    /// `params.arg2`: yours to use. Default 0.
    pub arg2: u32,
    /// `params.total`: yours to use. Default 0.
    pub total: u64,
    /// The whole run's time limit, re-dispatches included ([`DeviceError::Timeout`] past it). Default 60 s.
    pub timeout: Duration,
    /// Loop iterations one lane may spend per dispatch before it saves its state and returns (the GLSL's soft
    /// budget, `params.iter_budget`): `None` (the default) takes the device's
    /// ([`Device::lane_iter_budget`]), sized below the device's loop cap. At least 1.
    pub iter_budget: Option<u32>,
}

impl RunConfig {
    /// `lanes` lanes with the defaults: `count` 1, arguments 0, 60 s, the device's loop budget.
    pub fn lanes(lanes: u32) -> RunConfig {
        RunConfig {
            lanes,
            count: 1,
            arg0: 0,
            arg1: 0,
            arg2: 0,
            total: 0,
            timeout: Duration::from_secs(60),
            iter_budget: None,
        }
    }
}

impl Default for RunConfig {
    /// One lane ([`RunConfig::lanes`]).
    fn default() -> Self {
        RunConfig::lanes(1)
    }
}

/// A kernel of your own, loaded on one device, that runs on a [`DeviceRing`] through the library's run buffer
/// and re-dispatch (module docs). GLSL: write it with `gpu_uring_print.glsl`, compile it with
/// [`super::glsl::compile`], load it with [`RingKernel::spirv`], run it with [`RingKernel::run`]. A complete
/// program is `host/examples/user_kernel/`.
pub struct RingKernel<'d> {
    dev: &'d dyn Device,
    kernel: Kernel,
    flavor: Flavor,
    texts: Vec<String>,
}

impl std::fmt::Debug for RingKernel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingKernel")
            .field("device", &self.dev.info().name)
            .field("kernel", &self.kernel)
            .field("texts", &self.texts)
            .finish()
    }
}

fn run_error(backend: &'static str, message: impl std::fmt::Display) -> DeviceError {
    DeviceError::Run {
        backend,
        message: message.to_string(),
    }
}

impl<'d> RingKernel<'d> {
    /// Loads a SPIR-V ring kernel (a compute shader that includes `gpu_uring.glsl` or `gpu_uring_print.glsl`) on
    /// `dev`. Checks what can be checked without running it, each with its own error: the bytes are a SPIR-V
    /// module, its entry point is a compute shader named `main`, its workgroup size is specialization constant 0,
    /// and its storage buffers are bindings 0–4 of set 0. A device that does not load SPIR-V refuses it
    /// ([`DeviceError::Unsupported`]).
    ///
    /// # Safety
    /// A kernel is code the library cannot prove safe, and devices run it without robust buffer access. The
    /// SPIR-V must be valid for Vulkan 1.2 (what `spirv-val --target-env vulkan1.2` accepts, which
    /// [`super::glsl::compile`]'s compiler produces from a shader that compiles) and must not access memory
    /// outside its buffers (the library's own functions check their indices; an index of your own that can
    /// leave an array is yours to check). What it submits through the ring is bounded by the ring's
    /// confinement (the default [`DeviceAccess`](crate::ring::DeviceAccess)): only the ring's registered files
    /// and buffers; on an unconfined ring it can do anything the process can. Words it writes are untrusted
    /// by the host either way.
    pub unsafe fn spirv(
        dev: &'d dyn Device,
        name: &str,
        spirv: &[u8],
    ) -> Result<Self, DeviceError> {
        let backend = dev.info().backend;
        check_spirv(spirv).map_err(|e| run_error(backend, format!("kernel {name}: {e}")))?;
        // SAFETY: the caller's contract.
        unsafe { Self::load(dev, name, &[KernelCode::SpirV(spirv)]) }
    }

    /// Loads a ring kernel from the first of `code` (one per format: SPIR-V, PTX, AMD code object, native
    /// closure) that `dev` loads, in the device's order of preference. SPIR-V is checked as in
    /// [`RingKernel::spirv`].
    ///
    /// # Safety
    /// As [`RingKernel::spirv`], for every code given: each must be a valid kernel for a device of its format
    /// with the interface in the module docs, and stay inside its buffers.
    pub unsafe fn load(
        dev: &'d dyn Device,
        name: &str,
        code: &[KernelCode<'_>],
    ) -> Result<Self, DeviceError> {
        let backend = dev.info().backend;
        let chosen = dev
            .kernel_formats()
            .iter()
            .find_map(|f| code.iter().find(|c| c.kind() == *f))
            .ok_or_else(|| DeviceError::Unsupported {
                backend,
                what: format!(
                    "kernel {name} in {:?} (this device loads {:?}; GLSL kernels run on Vulkan devices: \
                     DeviceSelector::Vulkan)",
                    code.iter().map(KernelCode::format).collect::<Vec<_>>(),
                    dev.kernel_formats()
                ),
            })?;
        if let KernelCode::SpirV(bytes) = chosen {
            check_spirv(bytes).map_err(|e| run_error(backend, format!("kernel {name}: {e}")))?;
        }
        // Native kernels run one invocation per lane (no subgroup aggregation); every other format is a
        // device kernel dispatched in workgroups of one subgroup, like the SPIR-V of the built-in programs.
        let flavor = match chosen.kind() {
            KernelFormat::Native => Flavor::Native,
            _ => Flavor::SpirV,
        };
        let layout = KernelLayout {
            buffers: BINDINGS,
            value_bytes: std::mem::size_of::<RingLayout>() as u32,
        };
        // SAFETY: the caller's contract; `layout` is the interface every ring kernel has (module docs), which
        // run_plan's arguments match.
        let kernel = unsafe { dev.load_kernel(name, chosen.clone(), layout) }?;
        Ok(RingKernel {
            dev,
            kernel,
            flavor,
            texts: Vec::new(),
        })
    }

    /// The kernel's text table (GLSL has no strings): `gup_text(k)` appends `texts[k]`. At most
    /// [`TEXT_ENTRIES`](super::run_buffer::TEXT_ENTRIES) pieces and [`TEXT_BYTES`](super::run_buffer::TEXT_BYTES) bytes in all.
    pub fn with_texts(mut self, texts: &[&str]) -> Result<Self, DeviceError> {
        RunHeader::with_texts(RunParams::default(), texts)
            .map_err(|e| run_error(self.dev.info().backend, e))?;
        self.texts = texts.iter().map(|t| (*t).to_owned()).collect();
        Ok(self)
    }

    /// The loaded kernel (its name and interface).
    pub fn kernel(&self) -> &Kernel {
        &self.kernel
    }

    /// Runs the kernel on `ring` with `run.lanes` lanes and waits until every lane has finished (a lane
    /// whose work takes several dispatches keeps its state in the run buffer and is dispatched again), at most
    /// `run.timeout`. Returns every lane's report and final state. Errors: a bad [`RunConfig`], a lane that
    /// printed with no print target set ([`DeviceRing::set_print_target`]; the run stops after that dispatch),
    /// a lane that ended a dispatch unfinished before its loop budget (a device's loop cap stopped it, maybe in
    /// the middle of an operation: the run stops after that dispatch; on a ring with SQPOLL, where a lane ends a
    /// dispatch only finished or at its budget), [`DeviceError::Timeout`], or the device's. Prints still in the print log are the host's to finish:
    /// call [`DeviceRing::finish_prints`] when the ring's last run is over.
    pub fn run(&self, ring: &DeviceRing, run: &RunConfig) -> Result<RunReport, DeviceError> {
        self.run_with(ring, run, &mut |_, _| Ok(()))
    }

    /// [`RingKernel::run`] with a host callback between dispatches, as
    /// [`Programs::run_with`](super::Programs::run_with): `between(i, states)` runs after dispatch `i`, with
    /// every lane's state; an error from it ends the run.
    pub fn run_with(
        &self,
        ring: &DeviceRing,
        run: &RunConfig,
        between: &mut super::BetweenDispatches<'_>,
    ) -> Result<RunReport, DeviceError> {
        let backend = self.dev.info().backend;
        let ring_lanes = ring.layout().lanes;
        if run.lanes == 0 || run.lanes > ring_lanes || run.lanes > 65535 {
            return Err(run_error(
                backend,
                format!(
                    "{} lanes requested; the ring has 1..={ring_lanes} (RingConfig::lanes)",
                    run.lanes
                ),
            ));
        }
        if run.timeout.is_zero() {
            return Err(run_error(backend, "RunConfig::timeout is zero"));
        }
        let iter_budget =
            match run.iter_budget {
                Some(0) => return Err(run_error(
                    backend,
                    "RunConfig::iter_budget is 0: every lane would return before doing any work \
                     (None takes the device's budget)",
                )),
                Some(b) => b,
                None => self.dev.lane_iter_budget().max(1),
            };
        let params = RunParams {
            program: 0,
            lanes: run.lanes,
            count: run.count,
            arg0: run.arg0,
            arg1: run.arg1,
            arg2: run.arg2,
            iter_budget,
            total: run.total,
            ..RunParams::default()
        };
        let texts: Vec<&str> = self.texts.iter().map(String::as_str).collect();
        let plan = Plan {
            kernel: PlanKernel::Loaded(self.kernel.clone()),
            params,
            texts: &texts,
        };
        let name = self.kernel.name().to_owned();
        // A resumable lane ends a dispatch at its loop budget or finished (on a ring without SQPOLL also when
        // it can make no progress before the host's next enter).
        let budget_or_done = self.flavor == Flavor::SpirV
            && ring.layout().ring_flags & crate::ring::layout::RING_FLAG_SQPOLL != 0;
        let mut checked = |i: u32, states: &[super::run_buffer::LaneState]| {
            if let Some(lane) = states.iter().position(|s| s.flags & LANE_NO_TARGET != 0) {
                return Err(run_error(
                    backend,
                    format!(
                        "kernel {name}: lane {lane} printed, but the ring has no print target \
                         (call DeviceRing::set_print_target before the run)"
                    ),
                ));
            }
            let cut = states.iter().position(|s| {
                s.flags & LANE_FINISHED == 0 && s.iters < iter_budget.min(GLSL_MAX_BUDGET)
            });
            if let (true, Some(lane)) = (budget_or_done, cut) {
                return Err(run_error(
                    backend,
                    format!(
                        "kernel {name}: dispatch {i} ended lane {lane} after {} of its {iter_budget} loop \
                         iterations, unfinished: the device's loop cap stopped it (lavapipe stops every loop \
                         of an invocation at once after 65 535 iterations, counting code no lane runs), \
                         possibly in the middle of an operation. Count more per pass (gup_pass_cost) or do \
                         the work in an inner loop: gpu_uring_print.glsl, \"The loop cap counts code your \
                         lanes skip\"",
                        states[lane].iters
                    ),
                ));
            }
            between(i, states)
        };
        run_plan(
            self.dev,
            self.flavor,
            ring,
            run.lanes,
            plan,
            run.timeout,
            &mut checked,
        )
    }
}

/// Why a SPIR-V module cannot be a ring kernel (what [`RingKernel::spirv`] checks).
fn check_spirv(bytes: &[u8]) -> Result<(), String> {
    use rspirv::dr::Operand;
    use rspirv::spirv::{Decoration, ExecutionModel, Op};
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "{} bytes is not a SPIR-V module (a whole number of 32-bit words)",
            bytes.len()
        ));
    }
    let module = rspirv::dr::load_bytes(bytes).map_err(|e| {
        format!("not a SPIR-V module ({e}); compile GLSL with backend::glsl::compile")
    })?;
    let main = module.entry_points.iter().any(|e| {
        matches!(
            e.operands.first(),
            Some(Operand::ExecutionModel(ExecutionModel::GLCompute))
        ) && matches!(e.operands.get(2), Some(Operand::LiteralString(n)) if n == "main")
    });
    if !main {
        return Err("no compute entry point named main (a GLSL compute shader has one)".into());
    }
    let decorations = || {
        module
            .annotations
            .iter()
            .filter(|i| i.class.opcode == Op::Decorate)
    };
    let decoration = |d: Decoration| {
        decorations().filter_map(move |i| match (i.operands.get(1), i.operands.get(2)) {
            (Some(Operand::Decoration(x)), Some(Operand::LiteralBit32(v))) if *x == d => Some(*v),
            _ => None,
        })
    };
    if !decoration(Decoration::SpecId).any(|id| id == 0) {
        return Err(
            "its workgroup size is not specialization constant 0: include gpu_uring.glsl (it declares \
             `layout(local_size_x_id = 0) in;`) and declare no workgroup size of your own"
                .into(),
        );
    }
    if let Some(set) = decoration(Decoration::DescriptorSet).find(|s| *s != 0) {
        return Err(format!(
            "it declares a buffer in descriptor set {set}; ring kernels have set 0 only"
        ));
    }
    if let Some(b) = decoration(Decoration::Binding).find(|b| *b >= BINDINGS) {
        return Err(format!(
            "it declares binding {b}; ring kernels have bindings 0-{} (gpu_uring.glsl declares them): keep \
             your data in the ring's fixed buffer or the lane state",
            BINDINGS - 1
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spirv_checks_name_what_is_wrong() {
        assert!(check_spirv(&[0; 6]).unwrap_err().contains("whole number"));
        assert!(check_spirv(&[0; 8])
            .unwrap_err()
            .contains("not a SPIR-V module"));
        // The built-in programs are ring kernels.
        for spv in [super::super::spirv::PRINT, super::super::spirv::READ] {
            check_spirv(spv).unwrap();
        }
        // The print program with one decoration changed (OpDecorate words: header, target, decoration, value).
        let patched = |decoration: u32, value: u32| -> Vec<u8> {
            let mut w: Vec<u32> = super::super::spirv::PRINT
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let at = (5..w.len() - 3)
                .find(|&i| w[i] == (4 << 16 | 71) && w[i + 2] == decoration)
                .expect("the print program has the decoration");
            w[at + 3] = value;
            w.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
        assert!(check_spirv(&patched(33, 7))
            .unwrap_err()
            .contains("binding 7"));
        assert!(check_spirv(&patched(34, 1)).unwrap_err().contains("set 1"));
        assert!(check_spirv(&patched(1, 3))
            .unwrap_err()
            .contains("specialization constant 0"));
    }

    #[test]
    fn run_config_defaults_do_work() {
        let r = RunConfig::lanes(8);
        assert_eq!((r.lanes, r.count), (8, 1));
        assert_eq!(r.iter_budget, None);
        assert!(!r.timeout.is_zero());
        assert_eq!(RunConfig::default().lanes, 1);
    }
}
