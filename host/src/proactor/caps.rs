//! Which backend runs, and what it does natively, emulates, or lacks.

use std::fmt;

/// The backend a proactor runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Linux io_uring.
    IoUring,
    /// epoll + timerfd + eventfd, with file I/O run on the poll thread.
    Epoll,
}

/// A feature a backend may provide natively or by emulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Capability {
    /// Linked sequences executed by the kernel (io_uring `IOSQE_IO_LINK`, 5.3+, with
    /// `IORING_TIMEOUT_ETIME_SUCCESS` 5.16+ so an expired timer does not break the chain).
    /// Emulated: the proactor starts step *n+1* when step *n* completes.
    LinkedOperations = 1 << 0,
    /// Buffers pinned once with the kernel (`IORING_REGISTER_BUFFERS`, 5.1+).
    /// Emulated: plain reads and writes into the same memory.
    RegisteredBuffers = 1 << 1,
    /// Descriptors registered with the kernel (`IORING_REGISTER_FILES`, 5.1+).
    /// Emulated: the proactor keeps `dup`ed descriptors and maps indices to them.
    FixedFiles = 1 << 2,
    /// Absolute-deadline timers (`IORING_TIMEOUT_ABS` 5.4+, `TFD_TIMER_ABSTIME`).
    /// Emulated: converted to a relative timeout at submission.
    AbsoluteTimers = 1 << 3,
    /// Notification waits done by the kernel (`IORING_OP_FUTEX_WAIT`, 6.7+).
    /// Emulated: `Notification::signal` completes registered waits in user space.
    KernelNotificationWait = 1 << 4,
    /// Ring created with `IORING_SETUP_SINGLE_ISSUER` (6.0+): only the poll thread enters
    /// the kernel. No emulation needed: the proactor routes all entering through poll anyway.
    SingleIssuer = 1 << 5,
    /// Ring created with `IORING_SETUP_DEFER_TASKRUN` (6.1+): completion work runs only
    /// when the poll thread asks for events.
    DeferTaskrun = 1 << 6,
    /// Per-operation timeouts on connect and recv (`IORING_OP_LINK_TIMEOUT`, 5.5+,
    /// linked after the operation). Emulated: the poll loop cancels the operation at
    /// its deadline. Either way a timed-out operation completes with `ETIMEDOUT`.
    OperationTimeouts = 1 << 7,
    /// Multishot accept: one submission, one completion per connection
    /// (`IORING_ACCEPT_MULTISHOT`, 5.19+; reported native from Linux 6.0). Emulated:
    /// the proactor re-arms a single-shot accept after each connection (io_uring) or
    /// accepts while the listener is readable (epoll).
    Multishot = 1 << 8,
    /// Zero-copy send (`IORING_OP_SEND_ZC`, 6.0+, found by probing): the kernel sends
    /// from the caller's pages and posts a notification once it no longer reads them;
    /// the operation keeps the buffer until then. Emulated: a plain send (the buffer
    /// comes back with its completion, as natively). On loopback the kernel copies
    /// anyway, so this carries no speed claim there.
    ZeroCopySend = 1 << 9,
    /// Cross-proactor messages posted by the kernel into the target's ring
    /// (`IORING_OP_MSG_RING`, 5.18+, found by probing; both proactors io_uring).
    /// Emulated: the payload goes into the target's bounded queue and its wake
    /// eventfd is set. Either way "target full" is the library's credit count.
    Messaging = 1 << 10,
    /// Device fences as sync_file descriptors made by a device driver. Never native
    /// here yet (no backend exports a sync_file to the proactor); emulated, the
    /// counted fallback: a timeline [`Semaphore`](super::Semaphore) value stands in
    /// for the fence, imported fences are any pollable descriptor watched by the
    /// kernel (`POLL_ADD` / epoll), exports are eventfds made readable by the
    /// signalling thread.
    DeviceFence = 1 << 11,
}

impl Capability {
    /// Every capability, for iteration.
    pub const ALL: [Capability; 12] = [
        Capability::LinkedOperations,
        Capability::RegisteredBuffers,
        Capability::FixedFiles,
        Capability::AbsoluteTimers,
        Capability::KernelNotificationWait,
        Capability::SingleIssuer,
        Capability::DeferTaskrun,
        Capability::OperationTimeouts,
        Capability::Multishot,
        Capability::ZeroCopySend,
        Capability::Messaging,
        Capability::DeviceFence,
    ];
}

/// How a backend provides a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Done by the kernel.
    Native,
    /// Same semantics, implemented by the proactor in user space.
    Emulated,
    /// Not provided.
    Absent,
}

/// A set of capabilities (used for `Options::allowed_capabilities`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CapabilitySet(u32);

impl CapabilitySet {
    /// Every capability allowed (the default).
    pub const ALL: CapabilitySet = CapabilitySet(u32::MAX);
    /// Nothing native allowed: forces every emulated path.
    pub const NONE: CapabilitySet = CapabilitySet(0);

    /// Whether `c` is in the set.
    pub fn contains(self, c: Capability) -> bool {
        self.0 & c as u32 != 0
    }
    /// The set without `c`.
    pub fn without(self, c: Capability) -> CapabilitySet {
        CapabilitySet(self.0 & !(c as u32))
    }
    /// The set with `c`.
    pub fn with(self, c: Capability) -> CapabilitySet {
        CapabilitySet(self.0 | c as u32)
    }
}

impl Default for CapabilitySet {
    fn default() -> Self {
        CapabilitySet::ALL
    }
}

impl fmt::Debug for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(Capability::ALL.iter().filter(|c| self.contains(**c)))
            .finish()
    }
}

/// The capabilities of a running proactor, after `allowed_capabilities` was applied.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    native: CapabilitySet,
    emulated: CapabilitySet,
}

impl Capabilities {
    pub(crate) fn new(native: CapabilitySet, emulated: CapabilitySet) -> Self {
        Capabilities {
            native,
            emulated: CapabilitySet(emulated.0 & !native.0),
        }
    }

    /// How `c` is provided.
    pub fn get(&self, c: Capability) -> Support {
        if self.native.contains(c) {
            Support::Native
        } else if self.emulated.contains(c) {
            Support::Emulated
        } else {
            Support::Absent
        }
    }

    /// Whether `c` is done by the kernel.
    pub fn is_native(&self, c: Capability) -> bool {
        self.native.contains(c)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for c in Capability::ALL {
            m.entry(&c, &self.get(c));
        }
        m.finish()
    }
}
