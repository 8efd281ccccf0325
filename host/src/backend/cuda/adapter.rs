//! CUDA adapters: `cuDeviceGet*` enumeration once a driver binding exists; today none.

use super::no_driver;
use crate::backend::{AdapterInfo, DeviceError};

pub(super) fn enumerate() -> Result<Vec<AdapterInfo>, DeviceError> {
    Err(no_driver("enumerating CUDA devices"))
}

pub(super) fn choose(list: &[AdapterInfo], name: Option<&str>) -> Result<AdapterInfo, DeviceError> {
    let pick = match name {
        Some(n) => list.iter().find(|a| {
            a.index.to_string() == n || a.name.to_lowercase().contains(&n.to_lowercase())
        }),
        None => list.iter().find(|a| a.usable.is_ok()),
    };
    pick.cloned()
        .ok_or_else(|| no_driver("choosing a CUDA device"))
}
