//! The ring's memory and descriptor, in drop order: the kernel ring is closed before the arena is unmapped.
//! Shared by the [`super::Ring`], its waker thread and every [`ArenaKeepAlive`].

use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::layout::RingLayout;
use super::local::LocalBlock;
use super::view::RingView;

/// Ring fd, arena and the device-local block's host copy, in drop order: the ring is closed before the arena
/// is unmapped.
pub(crate) struct Inner {
    pub(crate) fd: OwnedFd,
    pub(crate) arena: memmap2::MmapMut,
    pub(crate) local: LocalBlock,
    pub(crate) layout: RingLayout,
}

impl Inner {
    pub(crate) fn view(&self) -> RingView<'_> {
        RingView::of_mappings(&self.arena, &self.local, &self.layout)
    }
}

/// Keeps a ring's arena and device-local host copy mapped (and its ring open) while it lives, independently of the [`super::Ring`]: a GPU
/// API that imported the arena holds one for as long as the import exists, so the memory can never be
/// unmapped under a dispatch that is still running (e.g. one that exceeded its time limit).
#[derive(Clone)]
pub struct ArenaKeepAlive(#[allow(dead_code)] pub(super) Arc<Inner>);

impl std::fmt::Debug for ArenaKeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArenaKeepAlive")
            .field("base", &self.0.arena.as_ptr())
            .field("len", &self.0.arena.len())
            .finish()
    }
}

impl ArenaKeepAlive {
    /// The arena's base address and length (what [`super::Ring::arena`] returns).
    pub fn arena(&self) -> (*mut u8, usize) {
        (self.0.arena.as_ptr() as *mut u8, self.0.arena.len())
    }

    /// The device-local block's host copy (what [`super::Ring::local_block`] returns).
    pub fn local_block(&self) -> &LocalBlock {
        &self.0.local
    }
}
