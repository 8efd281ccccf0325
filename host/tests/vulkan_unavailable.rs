//! Without a Vulkan driver the backend reports `Unavailable` with the reason instead of failing to build or
//! crashing. (Its own test binary: it points the loader at a driver list that does not exist, before any
//! Vulkan instance is created in this process.)

use gpu_uring::backend::vulkan::VulkanDevice;
use gpu_uring::backend::{open, DeviceError, DeviceSelector};

#[test]
fn no_driver_gives_unavailable_with_a_reason() {
    // Set before any Vulkan call of this process (this binary has one test, so no other thread reads them).
    std::env::set_var("VK_ICD_FILENAMES", "/nonexistent/gpu-uring-no-icd.json");
    std::env::set_var("VK_DRIVER_FILES", "/nonexistent/gpu-uring-no-icd.json");
    match VulkanDevice::open(None) {
        Err(DeviceError::Unavailable { backend, reason }) => {
            assert_eq!(backend, "vulkan");
            eprintln!("reason: {reason}");
            assert!(!reason.is_empty());
        }
        Err(e) => panic!("expected Unavailable, got {e}"),
        Ok(d) => panic!("expected Unavailable, got a device {d:?}"),
    }
    assert!(VulkanDevice::list().is_err());
    // `--device vulkan` fails with the reason; `auto` falls back to the CPU reference device.
    assert!(open(&DeviceSelector::Vulkan(None)).is_err());
    let (d, skipped) = open(&DeviceSelector::Auto).unwrap();
    assert_eq!(d.info().backend, "cpu");
    assert!(skipped.iter().any(|e| matches!(
        e,
        DeviceError::Unavailable {
            backend: "vulkan",
            ..
        }
    )));
}
