//! Rings are confined by default (R_DISABLED → IORING_REGISTER_RESTRICTIONS → ENABLE_RINGS): device-written SQEs
//! act only on registered files and registered buffers, with allowed opcodes only. Each attack below fails with
//! the kernel's error and changes nothing; an unconfined ring is an explicit, loudly named choice.

mod common;

use gpu_uring::backend::Programs;
use std::os::fd::AsRawFd;
use std::time::Duration;

use gpu_uring::backend::cpu::run_lanes;
use gpu_uring::protocol::shared::TAG_SLOT;
use gpu_uring::protocol::PrintTarget;
use gpu_uring::protocol::{CompletionMode, FileRef, DEFAULT_BUDGET};
use gpu_uring::ring::{DeviceAccess, RingConfig, Sqe};
use io_uring::{opcode, squeue::Flags, types};

#[test]
fn default_ring_refuses_forbidden_opcode_raw_fd_and_foreign_address() {
    let _serial = common::serial();
    let out = tempfile::tempfile().unwrap();
    let ring = common::ring(RingConfig {
        lanes: 1,
        fixed_buffer_bytes: 4096,
        fixed_files: vec![out.as_raw_fd()],
        ..Default::default()
    });
    assert!(ring.access().is_confined(), "confined is the default");
    let l = ring.layout();
    let results = run_lanes(&ring, 1, |lane| {
        let v = lane.view();
        v.write_bytes(l.fixed, b"allowed fixed write\n");
        let mut res = Vec::new();
        // 1. Allowed: WRITE_FIXED from the registered buffer to fixed file 0.
        lane.write(
            FileRef::Fixed(0),
            l.fixed,
            20,
            0,
            CompletionMode::Slot(0),
            DEFAULT_BUDGET,
        )
        .unwrap();
        res.push(lane.wait(0, DEFAULT_BUDGET).unwrap());
        // 2. A NOP (what the protocol itself needs) is allowed.
        lane.nop(CompletionMode::Slot(0), DEFAULT_BUDGET).unwrap();
        res.push(lane.wait(0, DEFAULT_BUDGET).unwrap());
        let slot = lane.slot_index(0).unwrap() as u64;
        let addr = v.host_addr(l.fixed) as *const u8;
        // 3. Forbidden opcode: plain WRITE on the fixed file.
        let mut sqe = Sqe::from_entry(
            &opcode::Write::new(types::Fixed(0), addr, 5)
                .offset(0)
                .build(),
        );
        sqe.user_data = TAG_SLOT | slot;
        let r = lane.reserve(DEFAULT_BUDGET).unwrap();
        lane.commit_exact(r, sqe);
        res.push(lane.wait(0, DEFAULT_BUDGET).unwrap());
        // 4. A raw fd: WRITE_FIXED without IOSQE_FIXED_FILE.
        let mut sqe = Sqe::from_entry(
            &opcode::WriteFixed::new(
                types::Fd(out.as_raw_fd()),
                addr,
                5,
                l.fixed_buf_index as u16,
            )
            .offset(0)
            .build(),
        );
        sqe.user_data = TAG_SLOT | slot;
        let r = lane.reserve(DEFAULT_BUDGET).unwrap();
        lane.commit_exact(r, sqe);
        res.push(lane.wait(0, DEFAULT_BUDGET).unwrap());
        // 5. An address outside every registered buffer (the SQ ring itself), claimed to be in buffer 1.
        let mut sqe = Sqe::from_entry(
            &opcode::WriteFixed::new(
                types::Fixed(0),
                v.host_addr(l.sqes) as *const u8,
                64,
                l.fixed_buf_index as u16,
            )
            .offset(0)
            .build()
            .flags(Flags::FIXED_FILE),
        );
        sqe.user_data = TAG_SLOT | slot;
        let r = lane.reserve(DEFAULT_BUDGET).unwrap();
        lane.commit_exact(r, sqe);
        res.push(lane.wait(0, DEFAULT_BUDGET).unwrap());
        res
    })
    .expect("lanes start");
    assert!(ring.quiesce(Duration::from_secs(5)));
    let r = &results[0];
    assert_eq!(r[0], 20, "allowed WRITE_FIXED wrote 20 bytes");
    assert_eq!(r[1], 0, "NOP allowed");
    assert_eq!(r[2], -libc::EACCES, "forbidden opcode");
    assert_eq!(r[3], -libc::EACCES, "raw fd (IOSQE_FIXED_FILE required)");
    assert_eq!(r[4], -libc::EFAULT, "address outside the registered buffer");
    assert_eq!(
        common::read_fd_file(out.as_raw_fd()),
        b"allowed fixed write\n",
        "the refused SQEs changed nothing"
    );
}

#[test]
fn confined_ring_prints_to_a_plain_fd_through_its_print_slot() {
    let _serial = common::serial();
    for target in ["fd", "fixed"] {
        let out = tempfile::tempfile().unwrap();
        let ring = common::ring(RingConfig {
            lanes: 4,
            fixed_files: vec![out.as_raw_fd()],
            ..Default::default()
        });
        let t = if target == "fd" {
            PrintTarget::Fd(out.as_raw_fd())
        } else {
            PrintTarget::Fixed(0)
        };
        ring.set_print_target(t).unwrap();
        let rep = common::cpu()
            .run(
                &ring,
                4,
                &gpu_uring::backend::Program::Print { lines: 500 },
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(rep.total().failed, 0, "{target}");
        assert!(ring.quiesce(Duration::from_secs(5)));
        ring.finish_prints();
        common::check_prints(&common::read_fd_file(out.as_raw_fd()), 4, 500);
    }
}

/// What the attacks below did: the result of each, in order.
fn run_attacks(access: DeviceAccess) -> (Vec<i32>, Canaries) {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, b"the host's secret\n").unwrap();
    let secret_c = std::ffi::CString::new(secret.to_str().unwrap()).unwrap();
    let unregistered = tempfile::tempfile().unwrap();
    let registered = tempfile::tempfile().unwrap();
    std::fs::write(
        format!("/proc/self/fd/{}", registered.as_raw_fd()),
        b"registered file!",
    )
    .unwrap();
    let heap = vec![0x5au8; 4096];
    let other = io_uring::IoUring::new(8).unwrap();
    let fds_before = common::fd_count();
    let ring = common::ring(RingConfig {
        lanes: 1,
        fixed_buffer_bytes: 4096,
        fixed_files: vec![registered.as_raw_fd()],
        access,
        ..Default::default()
    });
    let l = ring.layout();
    let heap_addr = heap.as_ptr() as u64;
    let results = run_lanes(&ring, 1, |lane| {
        let v = lane.view();
        let slot = lane.slot_index(0).unwrap() as u64;
        let fixed = v.host_addr(l.fixed) as *const u8;
        v.write_bytes(l.fixed, b"device bytes\n");
        let mut res = Vec::new();
        let mut go = |lane: &mut gpu_uring::protocol::Lane<'_>,
                      sqes: &[io_uring::squeue::Entry]| {
            // A chain: every SQE but the last is linked to the next; the last one's result is reported.
            for (i, e) in sqes.iter().enumerate() {
                let mut sqe = Sqe::from_entry(e);
                sqe.user_data = if i + 1 == sqes.len() {
                    TAG_SLOT | slot
                } else {
                    gpu_uring::protocol::shared::TAG_FF | 0xffff_0000
                };
                let r = lane.reserve(DEFAULT_BUDGET).unwrap();
                lane.commit_exact(r, sqe);
            }
            res.push(lane.wait(0, DEFAULT_BUDGET).unwrap());
        };
        // 1. Open a file the host can read (as root this could be /etc/shadow).
        go(
            lane,
            &[
                opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), secret_c.as_ptr())
                    .flags(libc::O_RDONLY)
                    .build(),
            ],
        );
        // 2. READ into a host heap address outside every registered buffer.
        go(
            lane,
            &[opcode::Read::new(types::Fixed(0), heap_addr as *mut u8, 16)
                .offset(0)
                .build()
                .flags(Flags::FIXED_FILE)],
        );
        // 3. READ_FIXED into the heap, claiming it lies in the fixed buffer.
        go(
            lane,
            &[
                opcode::ReadFixed::new(types::Fixed(0), heap_addr as *mut u8, 16, 1)
                    .offset(0)
                    .build()
                    .flags(Flags::FIXED_FILE),
            ],
        );
        // 4. WRITE_FIXED to an unregistered fd (raw).
        go(
            lane,
            &[
                opcode::WriteFixed::new(types::Fd(unregistered.as_raw_fd()), fixed, 13, 1)
                    .offset(0)
                    .build(),
            ],
        );
        // 5. MSG_RING: post a forged CQE into another io_uring of this process.
        go(
            lane,
            &[
                opcode::MsgRingData::new(types::Fd(other.as_raw_fd()), 0x1234, 0xdead_beef, None)
                    .build(),
            ],
        );
        // 6. A linked NOP → WRITE on a raw fd.
        go(
            lane,
            &[
                opcode::Nop::new()
                    .build()
                    .flags(Flags::IO_LINK | Flags::FIXED_FILE),
                opcode::Write::new(types::Fd(unregistered.as_raw_fd()), fixed, 13)
                    .offset(0)
                    .build(),
            ],
        );
        res
    })
    .expect("lanes start");
    assert!(ring.quiesce(Duration::from_secs(5)));
    drop(ring);
    let mut other = other;
    let forged = other.completion().count();
    let canaries = Canaries {
        heap_intact: heap.iter().all(|&b| b == 0x5a),
        secret_intact: std::fs::read(&secret).unwrap() == b"the host's secret\n",
        unregistered_len: common::read_fd_file(unregistered.as_raw_fd()).len(),
        forged_cqes: forged,
        fds_leaked: common::fd_count() as isize - fds_before as isize,
    };
    (results.into_iter().next().unwrap(), canaries)
}

#[derive(Debug, PartialEq)]
struct Canaries {
    heap_intact: bool,
    secret_intact: bool,
    unregistered_len: usize,
    forged_cqes: usize,
    fds_leaked: isize,
}

#[test]
fn default_ring_refuses_every_attack_and_changes_nothing() {
    let (r, c) = run_attacks(DeviceAccess::default());
    assert_eq!(r[0], -libc::EACCES, "OPENAT refused");
    assert_eq!(r[1], -libc::EACCES, "READ (not an allowed opcode) refused");
    assert_eq!(
        r[2],
        -libc::EFAULT,
        "READ_FIXED outside the registered buffer"
    );
    assert_eq!(
        r[3],
        -libc::EACCES,
        "raw fd refused (IOSQE_FIXED_FILE required)"
    );
    assert_eq!(r[4], -libc::EACCES, "MSG_RING refused");
    assert_eq!(r[5], -libc::EACCES, "the linked WRITE on a raw fd refused");
    assert_eq!(
        c,
        Canaries {
            heap_intact: true,
            secret_intact: true,
            unregistered_len: 0,
            forged_cqes: 0,
            fds_leaked: 0,
        }
    );
}

/// The same attacks on a ring built with `DeviceAccess::DangerouslyUnconfined` go through: the choice is real,
/// which is why it must be explicit. (The opened file is the test's own temp file.)
#[test]
fn unconfined_ring_lets_the_same_attacks_through() {
    let (r, c) = run_attacks(DeviceAccess::DangerouslyUnconfined);
    assert!(r[0] >= 0, "OPENAT opened the file: {}", r[0]);
    assert_eq!(r[1], 16, "READ overwrote 16 bytes of the host heap");
    assert!(!c.heap_intact);
    assert_eq!(r[3], 13, "WRITE_FIXED to the unregistered fd");
    assert_eq!(r[4], 0, "MSG_RING posted a CQE into the other ring");
    assert_eq!(r[5], 13, "linked WRITE on a raw fd");
    assert_eq!(c.forged_cqes, 1, "a forged CQE arrived in the other ring");
    assert_eq!(c.unregistered_len, 13, "the unregistered file was written");
    // The opened fd belongs to this process now: the leak that confinement prevents.
    assert_eq!(c.fds_leaked, 1);
    // SAFETY: closing the fd the attack opened (it is ours, and nothing else uses it).
    unsafe { libc::close(r[0]) };
}
