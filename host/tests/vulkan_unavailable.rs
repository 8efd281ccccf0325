//! Device selection through the environment, and without a Vulkan driver the backend reports `Unavailable`
//! with the reason instead of failing to build or crashing. (Its own test binary with one test: it changes
//! environment variables the loader and the backend read, which no other thread may race with.)

use gpu_uring::backend::hal::ADAPTER_ENV;
use gpu_uring::backend::{
    backend, open, open_with, Device, DeviceConfig, DeviceError, DeviceSelector,
};

/// `--device vulkan[:NAME]` as a binary opens it: the environment read into the config.
fn open_vulkan(name: Option<&str>) -> Result<Box<dyn Device>, DeviceError> {
    open_with(
        &DeviceSelector::Vulkan(name.map(str::to_owned)),
        &DeviceConfig::from_env(),
    )
    .map(|(d, _)| d)
}

fn list() -> Result<Vec<gpu_uring::backend::AdapterInfo>, DeviceError> {
    backend("vulkan")?.adapters()
}

#[test]
fn env_selection_then_no_driver_gives_unavailable_with_a_reason() {
    // GPU_URING_VULKAN_DEVICE names the device when `--device vulkan` does not.
    std::env::set_var(ADAPTER_ENV, "no-such-device-anywhere");
    match open_vulkan(None) {
        Err(DeviceError::Unavailable { reason, .. }) => {
            // With a Vulkan driver: the name did not match. Without one: the loader's reason.
            eprintln!("env selection: {reason}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    if let Ok(list) = list() {
        if let Some(d) = list.iter().find(|d| d.usable.is_ok()) {
            std::env::set_var(ADAPTER_ENV, d.index.to_string());
            let opened = open_vulkan(None).unwrap();
            assert_eq!(opened.info().name, d.name);
            // An explicit name wins over the environment.
            std::env::set_var(ADAPTER_ENV, "no-such-device-anywhere");
            assert!(open_vulkan(Some(&d.index.to_string())).is_ok());
        }
    }
    std::env::remove_var(ADAPTER_ENV);

    // Set before any Vulkan call of this process (this binary has one test, so no other thread reads them).
    std::env::set_var("VK_ICD_FILENAMES", "/nonexistent/gpu-uring-no-icd.json");
    std::env::set_var("VK_DRIVER_FILES", "/nonexistent/gpu-uring-no-icd.json");
    match open_vulkan(None) {
        Err(DeviceError::Unavailable { backend, reason }) => {
            assert_eq!(backend, "vulkan");
            eprintln!("reason: {reason}");
            assert!(!reason.is_empty());
        }
        Err(e) => panic!("expected Unavailable, got {e}"),
        Ok(d) => panic!("expected Unavailable, got a device {}", d.info()),
    }
    assert!(list().is_err());
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
