//! CUDA kernels: PTX loaded with `cuModuleLoadData`, launched with `cuLaunchKernel`. The launch path below is
//! complete up to the driver call: it turns the HAL's argument list into the kernel-parameter list CUDA
//! takes.

use super::error::no_driver;
use crate::backend::hal::{Grid, Kernel, KernelArg, KernelCode, KernelLayout};
use crate::backend::DeviceError;

/// One kernel parameter as `cuLaunchKernel` takes it (a pointer to each value).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Param {
    /// A device pointer (a buffer, or the registered ring arena).
    #[allow(dead_code)] // built once a driver binding resolves buffers to device pointers
    DevicePtr(u64),
    /// A value passed by copy.
    Value(Vec<u8>),
}

/// The HAL's arguments as CUDA kernel parameters: argument `i` becomes parameter `i`. Device pointers come
/// from the driver once buffers exist; until then a buffer argument cannot be resolved.
pub(super) fn params(args: &[KernelArg<'_>]) -> Result<Vec<Param>, DeviceError> {
    args.iter()
        .map(|a| match a {
            KernelArg::Bytes(v) => Ok(Param::Value(v.to_vec())),
            KernelArg::Buffer(_) => Err(no_driver("a buffer's device pointer")),
            KernelArg::RingArena(_) => Err(no_driver("the ring arena's device pointer")),
        })
        .collect()
}

/// The launch geometry: (grid x, block x); a group size of 0 is one warp.
pub(super) fn geometry(grid: Grid, warp: u32) -> (u32, u32) {
    let block = if grid.group_size == 0 {
        warp
    } else {
        grid.group_size
    };
    (grid.groups.max(1), block.max(1))
}

pub(super) fn load(
    name: &str,
    code: KernelCode<'_>,
    _layout: KernelLayout,
) -> Result<Kernel, DeviceError> {
    match code {
        KernelCode::Ptx(_) => Err(no_driver(&format!("loading PTX kernel {name}"))),
        other => Err(DeviceError::Unsupported {
            backend: "cuda",
            what: format!("a {} kernel (CUDA loads PTX)", other.format()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_map_onto_kernel_parameters() {
        let layout = [1u8, 2, 3, 4];
        let p = params(&[KernelArg::Bytes(&layout), KernelArg::Bytes(&[9])]).unwrap();
        assert_eq!(
            p,
            vec![Param::Value(vec![1, 2, 3, 4]), Param::Value(vec![9])]
        );
        assert_eq!(geometry(Grid::groups(3), 32), (3, 32));
        assert_eq!(
            geometry(
                Grid {
                    groups: 2,
                    group_size: 128
                },
                32
            ),
            (2, 128)
        );
    }
}
