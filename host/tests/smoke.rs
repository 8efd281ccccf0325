mod common;
use gpu_uring::backend::{cpu::CpuDevice, Device, Program};
use gpu_uring::ring::{DeviceRing, PrintTarget, RingConfig};
use std::os::fd::AsRawFd;
use std::time::Duration;

#[test]
fn smoke_print_file() {
    let f = tempfile::tempfile().unwrap();
    let ring = DeviceRing::new(RingConfig {
        lanes: 8,
        ..Default::default()
    })
    .unwrap();
    ring.set_print_target(PrintTarget::Fd(f.as_raw_fd()))
        .unwrap();
    let rep = CpuDevice::default()
        .run(
            &ring,
            8,
            &Program::Print { lines: 1000 },
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(rep.total().failed, 0);
    assert!(ring.quiesce(Duration::from_secs(5)));
    ring.finish_prints();
    let out = std::fs::read(format!("/proc/self/fd/{}", f.as_raw_fd())).unwrap();
    common::check_prints(&out, 8, 1000);
    eprintln!("{:?} {:?}", rep.elapsed, ring.waker_stats());
}
