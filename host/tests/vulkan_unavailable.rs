//! Device selection through the environment, and without a Vulkan driver the backend reports `Unavailable`
//! with the reason instead of failing to build or crashing. (Its own test binary with one test: it changes
//! environment variables the loader and the backend read, which no other thread may race with.)

use gpu_uring::backend::vulkan::VulkanDevice;
use gpu_uring::backend::{open, DeviceError, DeviceSelector};

#[test]
fn env_selection_then_no_driver_gives_unavailable_with_a_reason() {
    // GPU_URING_VULKAN_DEVICE names the device when `--device vulkan` does not.
    std::env::set_var(
        gpu_uring::backend::vulkan::DEVICE_ENV,
        "no-such-device-anywhere",
    );
    match VulkanDevice::open(None) {
        Err(DeviceError::Unavailable { reason, .. }) => {
            // With a Vulkan driver: the name did not match. Without one: the loader's reason.
            eprintln!("env selection: {reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    if let Ok(list) = VulkanDevice::list() {
        if let Some(d) = list.iter().find(|d| d.usable.is_ok()) {
            std::env::set_var(gpu_uring::backend::vulkan::DEVICE_ENV, d.index.to_string());
            let opened = VulkanDevice::open(None).unwrap();
            assert_eq!(opened.physical().index, d.index);
            // An explicit name wins over the environment.
            std::env::set_var(
                gpu_uring::backend::vulkan::DEVICE_ENV,
                "no-such-device-anywhere",
            );
            assert!(VulkanDevice::open(Some(&d.index.to_string())).is_ok());
        }
    }
    std::env::remove_var(gpu_uring::backend::vulkan::DEVICE_ENV);

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
