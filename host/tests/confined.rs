//! A confined ring (R_DISABLED → IORING_REGISTER_RESTRICTIONS → ENABLE_RINGS): device-written SQEs act only on
//! registered files and registered buffers, with allowed opcodes only. Each violation fails with the kernel's
//! error and changes nothing.

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use gpu_uring::backend::cpu::run_lanes;
use gpu_uring::protocol::shared::TAG_SLOT;
use gpu_uring::protocol::{Completion, FileRef, DEFAULT_BUDGET};
use gpu_uring::ring::{Confinement, RingConfig, Sqe};
use io_uring::{opcode, squeue::Flags, types};

#[test]
fn confined_ring_refuses_forbidden_opcode_raw_fd_and_foreign_address() {
    let out = tempfile::tempfile().unwrap();
    let ring = common::ring(RingConfig {
        lanes: 1,
        fixed_buffer_bytes: 4096,
        fixed_files: vec![out.as_raw_fd()],
        confined: Some(Confinement::default()),
        ..Default::default()
    });
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
            Completion::Slot(0),
            DEFAULT_BUDGET,
        )
        .unwrap();
        res.push(lane.wait(0, DEFAULT_BUDGET).unwrap());
        // 2. A NOP (what the protocol itself needs) is allowed.
        lane.nop(Completion::Slot(0), DEFAULT_BUDGET).unwrap();
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
    });
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
fn confined_ring_prints_only_to_fixed_files() {
    let out = tempfile::tempfile().unwrap();
    let ring = common::ring(RingConfig {
        lanes: 4,
        fixed_files: vec![out.as_raw_fd()],
        confined: Some(Confinement::default()),
        ..Default::default()
    });
    assert!(ring
        .set_print_target(gpu_uring::ring::PrintTarget::Fd(out.as_raw_fd()))
        .is_err());
    ring.set_print_target(gpu_uring::ring::PrintTarget::Fixed(0))
        .unwrap();
    let rep = gpu_uring::backend::Device::run(
        &gpu_uring::backend::cpu::CpuDevice::default(),
        &ring,
        4,
        &gpu_uring::backend::Program::Print { lines: 500 },
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(rep.total().failed, 0);
    assert!(ring.quiesce(Duration::from_secs(5)));
    ring.finish_prints();
    common::check_prints(&common::read_fd_file(out.as_raw_fd()), 4, 500);
}
