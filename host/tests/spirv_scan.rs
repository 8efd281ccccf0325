//! Scans every committed SPIR-V module (`device-shaders/spirv/*.spv`) for atomic read-modify-writes on
//! host-shared memory. The placement rule of PROTOCOL.md: no RMW on host-shared memory (on a PCIe GPU an RMW
//! on mapped host memory is not atomic, or not performed at all); only single-writer atomic loads and stores
//! cross the bus. In the ring shaders (every shader that includes `gpu_uring.glsl`) set 0, bindings 0 and 1
//! are the host-shared arena, so no atomic RMW may be rooted there; `OpAtomicLoad` / `OpAtomicStore` are
//! allowed.
//!
//! Each RMW's pointer is followed back through access chains, copies and bitcasts to its `OpVariable` and
//! that variable's `DescriptorSet` / `Binding` decorations. A pointer that leads anywhere else (a function
//! parameter, a physical pointer) cannot be placed and counts as offending in a ring shader.
//!
//! `SPIRV_SCAN_DIR=path` scans another folder of `.spv` files (e.g. a branch's `device-shaders/spirv`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rspirv::dr::{Instruction, Module, Operand};
use rspirv::spirv::{Decoration, Op};

/// Atomic instructions that read, modify and write their pointer.
const RMW: &[Op] = &[
    Op::AtomicExchange,
    Op::AtomicCompareExchange,
    Op::AtomicCompareExchangeWeak,
    Op::AtomicIIncrement,
    Op::AtomicIDecrement,
    Op::AtomicIAdd,
    Op::AtomicISub,
    Op::AtomicSMin,
    Op::AtomicUMin,
    Op::AtomicSMax,
    Op::AtomicUMax,
    Op::AtomicAnd,
    Op::AtomicOr,
    Op::AtomicXor,
    Op::AtomicFAddEXT,
    Op::AtomicFMinEXT,
    Op::AtomicFMaxEXT,
    Op::AtomicFlagTestAndSet,
];

/// Atomic loads and stores: allowed everywhere (plain single-writer accesses with an ordering).
const LOAD_STORE: &[Op] = &[Op::AtomicLoad, Op::AtomicStore];

/// Bindings of set 0 that hold the host-shared arena in a ring shader.
const HOST_SHARED_BINDINGS: &[u32] = &[0, 1];

/// How a shader's bindings are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// A shader of the ring protocol: set 0 bindings 0 and 1 are the host-shared arena; no RMW there.
    Ring,
    /// A megakernel pump shader (`gpu_uring_pump.glsl`): binding 0 is the io_queue arena, host-shared. Its
    /// lane hand-off still uses RMWs on slot words and the ready bitmap there until it is made single-writer;
    /// they are listed (and bounded by `KNOWN_PUMP_RMWS`) rather than refused.
    Pump,
    /// Not a protocol shader; binding 0 is something else, named in the reason.
    Other(&'static str),
}

fn classify(shader: &str) -> Class {
    match shader {
        "pump_probe" | "pump_stream" => Class::Pump,
        "memory_placement" => Class::Other(
            "memory_placement measures loads, stores (and possibly atomics) on whatever memory the experiment \
             binds at 0, host memory on purpose; it is not the ring arena",
        ),
        "rpc_print" => Class::Other(
            "rpc_print is the host-RPC baseline: binding 0 holds its mailboxes, not the ring arena",
        ),
        _ => Class::Ring,
    }
}

/// Host-shared RMW sites each pump shader has today (an upper bound: more is a regression; fewer means the
/// hand-off moved towards single-writer and this table should shrink; the goal is none).
const KNOWN_PUMP_RMWS: &[(&str, usize)] = &[("pump_probe", 2), ("pump_stream", 2)];

/// Where an atomic's pointer comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Root {
    /// A descriptor-bound variable.
    Bound {
        set: u32,
        binding: u32,
        name: String,
    },
    /// A variable without a binding (workgroup, private, function storage).
    Unbound { name: String },
    /// Something the scan cannot place (function parameter, physical pointer, …): the opcode found.
    Unresolved(String),
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Root::Bound { set, binding, name } => write!(f, "set {set} binding {binding} ({name})"),
            Root::Unbound { name } => write!(f, "unbound variable {name}"),
            Root::Unresolved(what) => write!(f, "unresolved pointer (from {what})"),
        }
    }
}

/// One atomic instruction of a shader.
#[derive(Clone, Debug)]
struct Atomic {
    shader: String,
    op: Op,
    root: Root,
}

impl Atomic {
    fn is_rmw(&self) -> bool {
        RMW.contains(&self.op)
    }

    fn on_host_shared(&self) -> bool {
        match &self.root {
            Root::Bound { set, binding, .. } => *set == 0 && HOST_SHARED_BINDINGS.contains(binding),
            Root::Unbound { .. } => false,
            Root::Unresolved(_) => true,
        }
    }
}

impl fmt::Display for Atomic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: Op{:?} on {}", self.shader, self.op, self.root)
    }
}

fn spirv_dir() -> PathBuf {
    match std::env::var_os("SPIRV_SCAN_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../device-shaders/spirv"),
    }
}

/// Every `.spv` in the scanned folder, by name, parsed.
fn modules() -> Vec<(String, Module)> {
    let dir = spirv_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "spv"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .spv files in {}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let bytes =
                std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            let module = rspirv::dr::load_bytes(bytes)
                .unwrap_or_else(|e| panic!("parsing {}: {e:?}", p.display()));
            (name, module)
        })
        .collect()
}

fn id_operand(i: &Instruction, n: usize) -> Option<u32> {
    match i.operands.get(n) {
        Some(Operand::IdRef(id)) => Some(*id),
        _ => None,
    }
}

/// Every atomic load, store and RMW of `module`, with the root of its pointer.
fn atomics(shader: &str, module: &Module) -> Vec<Atomic> {
    let mut defs: HashMap<u32, &Instruction> = HashMap::new();
    let function_insts = module.functions.iter().flat_map(|f| {
        f.parameters
            .iter()
            .chain(f.blocks.iter().flat_map(|b| b.instructions.iter()))
    });
    for i in module.types_global_values.iter().chain(function_insts) {
        if let Some(id) = i.result_id {
            defs.insert(id, i);
        }
    }
    let mut names: HashMap<u32, String> = HashMap::new();
    for i in &module.debug_names {
        if let (Op::Name, Some(id), Some(Operand::LiteralString(s))) =
            (i.class.opcode, id_operand(i, 0), i.operands.get(1))
        {
            names.insert(id, s.clone());
        }
    }
    let mut set: HashMap<u32, u32> = HashMap::new();
    let mut binding: HashMap<u32, u32> = HashMap::new();
    for i in &module.annotations {
        if i.class.opcode != Op::Decorate {
            continue;
        }
        if let (Some(id), Some(Operand::Decoration(d)), Some(Operand::LiteralBit32(v))) =
            (id_operand(i, 0), i.operands.get(1), i.operands.get(2))
        {
            match d {
                Decoration::DescriptorSet => {
                    set.insert(id, *v);
                }
                Decoration::Binding => {
                    binding.insert(id, *v);
                }
                _ => {}
            }
        }
    }
    let root = |mut id: u32| -> Root {
        // Access chains, copies and casts only ever lead to an earlier definition; the bound keeps a malformed
        // module from looping.
        for _ in 0..64 {
            let Some(def) = defs.get(&id) else {
                return Root::Unresolved(format!("undefined %{id}"));
            };
            match def.class.opcode {
                Op::AccessChain
                | Op::InBoundsAccessChain
                | Op::PtrAccessChain
                | Op::InBoundsPtrAccessChain
                | Op::CopyObject
                | Op::Bitcast => match id_operand(def, 0) {
                    Some(base) => id = base,
                    None => {
                        return Root::Unresolved(format!("Op{:?} without a base", def.class.opcode))
                    }
                },
                Op::Variable => {
                    let name = names.get(&id).cloned().unwrap_or_else(|| format!("%{id}"));
                    return match binding.get(&id) {
                        // glslang always writes DescriptorSet; a binding without one is in set 0.
                        Some(&b) => Root::Bound {
                            set: set.get(&id).copied().unwrap_or(0),
                            binding: b,
                            name,
                        },
                        None => Root::Unbound { name },
                    };
                }
                other => return Root::Unresolved(format!("Op{other:?}")),
            }
        }
        Root::Unresolved("a pointer chain longer than 64".into())
    };
    module
        .functions
        .iter()
        .flat_map(|f| f.blocks.iter().flat_map(|b| b.instructions.iter()))
        .filter(|i| RMW.contains(&i.class.opcode) || LOAD_STORE.contains(&i.class.opcode))
        .map(|i| Atomic {
            shader: shader.to_owned(),
            op: i.class.opcode,
            root: id_operand(i, 0)
                .map_or_else(|| Root::Unresolved("no pointer operand".into()), root),
        })
        .collect()
}

fn all_atomics() -> Vec<(String, Class, Vec<Atomic>)> {
    modules()
        .iter()
        .map(|(name, m)| (name.clone(), classify(name), atomics(name, m)))
        .collect()
}

/// One line per distinct (shader, opcode, root), with its number of sites.
fn list(items: &[Atomic]) -> String {
    let mut lines: Vec<(String, usize)> = Vec::new();
    for a in items {
        let line = a.to_string();
        match lines.iter_mut().find(|(l, _)| *l == line) {
            Some((_, n)) => *n += 1,
            None => lines.push((line, 1)),
        }
    }
    lines
        .into_iter()
        .map(|(l, n)| {
            if n > 1 {
                format!("\n  {l} (x{n})")
            } else {
                format!("\n  {l}")
            }
        })
        .collect()
}

/// The rule itself: no ring shader does an atomic RMW on the host-shared arena.
#[test]
fn ring_shaders_do_no_rmw_on_host_shared_memory() {
    let scanned = all_atomics();
    let mut offending = Vec::new();
    let mut ring = 0;
    for (_, class, found) in &scanned {
        if *class == Class::Ring {
            ring += 1;
            offending.extend(
                found
                    .iter()
                    .filter(|a| a.is_rmw() && a.on_host_shared())
                    .cloned(),
            );
        }
    }
    assert!(ring > 0, "no ring shader in {}", spirv_dir().display());
    println!("{ring} ring shaders scanned in {}", spirv_dir().display());
    assert!(
        offending.is_empty(),
        "{} atomic RMWs on host-shared memory (set 0 binding 0/1) in ring shaders:{}",
        offending.len(),
        list(&offending)
    );
}

/// The pump's known host-shared RMWs, printed, and bounded so that none is added.
#[test]
fn pump_shaders_host_shared_rmws_are_known() {
    for (name, class, found) in all_atomics() {
        if class != Class::Pump {
            continue;
        }
        let host: Vec<Atomic> = found
            .into_iter()
            .filter(|a| a.is_rmw() && a.on_host_shared())
            .collect();
        println!(
            "{name}: {} known host-shared RMWs (io_queue arena):{}",
            host.len(),
            list(&host)
        );
        let known = KNOWN_PUMP_RMWS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, k)| *k);
        assert!(
            host.len() <= known,
            "{name}: {} host-shared RMWs, {known} known: a new RMW on the io_queue arena:{}",
            host.len(),
            list(&host)
        );
        if host.len() < known {
            println!("{name}: fewer than the {known} known; lower KNOWN_PUMP_RMWS");
        }
    }
}

/// Shaders that bind something else at 0/1, each with its reason; their atomics are printed for the record.
#[test]
fn other_shaders_are_classified() {
    for (name, class, found) in all_atomics() {
        if let Class::Other(reason) = class {
            let rmw: Vec<Atomic> = found.into_iter().filter(Atomic::is_rmw).collect();
            println!(
                "{name}: not scanned ({reason}); {} atomic RMWs:{}",
                rmw.len(),
                list(&rmw)
            );
        }
    }
}

/// The scan itself: every atomic access (loads and stores too) leads to a variable, and the ring shaders do
/// have atomic accesses (a scan that finds nothing would pass vacuously).
#[test]
fn scan_resolves_every_atomic_pointer() {
    let mut ring_atomics = 0;
    for (name, class, found) in all_atomics() {
        let unresolved: Vec<Atomic> = found
            .iter()
            .filter(|a| matches!(a.root, Root::Unresolved(_)))
            .cloned()
            .collect();
        assert!(
            unresolved.is_empty(),
            "{name}: pointers the scan cannot place:{}",
            list(&unresolved)
        );
        if class == Class::Ring {
            ring_atomics += found.len();
        }
    }
    assert!(
        ring_atomics > 0,
        "no atomic access found in any ring shader"
    );
}
