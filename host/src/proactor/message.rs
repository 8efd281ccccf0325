//! Cross-proactor messages: 64-bit payloads sent to a proactor and handed to its
//! message callback from its `poll`.
//!
//! # Paths
//! - **native** ([`Capability::Messaging`] on both the
//!   sender and the target): the sender submits `IORING_OP_MSG_RING`, and the kernel
//!   posts a completion carrying the payload into the target's ring; the target's
//!   `poll` moves it into the mailbox queue and runs the callback. If the kernel
//!   refuses (the target has not polled yet, so its ring is still disabled, or it is
//!   gone) the sender's `poll` puts the payload into the fallback queue instead.
//! - **fallback**: the payload goes into the target's bounded queue and its wake
//!   eventfd is set; the target watches that eventfd with an internal event source.
//!
//! # Credits, loss and duplication
//! Each target has `Options::message_capacity` credits. A send takes one before
//! anything else (none left: [`Error::SubmissionQueueFull`] with
//! [`QueueKind::Messages`], retryable) and the target returns it after its callback
//! ran for that message, so the queue and the target's completion ring never
//! overflow (`MSG_RING` itself has no backpressure). Every accepted message is
//! delivered exactly once: a `MSG_RING` either posted it or failed and queued it.
//! Messages wait (keeping their credits) while no callback is set. What is lost: a
//! native send whose sending proactor is dropped before its `poll` submitted it, and
//! messages to a proactor that is dropped.
//!
//! # Threading and ownership
//! `send_message` and `post_message` are thread-safe; the callback runs on the
//! target's poll thread, in `poll`, and may send messages (also to itself). The
//! proactor owns the callback: one that holds a handle of its own proactor keeps it
//! alive (replace the callback before dropping the last other handle).

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::caps::Capability;
use super::core::{Core, Done, Driver};
use super::error::{Error, QueueKind, Result};
use super::op::{OpId, Outcome};
use super::operation::Operation;
use super::ops::{msg_ring::MsgRing, poll_source::PollSource, OpKind};
use super::service::Route;
use super::sync::{lock, Event};
use super::{sys, Proactor};

/// user_data of a message posted by `MSG_RING`: bit 63 (the proactor's own
/// requests) with a zero generation field, which no slot key or request has; the
/// low 32 bits carry the low half of the payload.
pub(crate) const MSG_TAG: u64 = 1 << 63;
const MSG_MASK: u64 = 0xffff_ffff_0000_0000;

pub(crate) fn is_message(user_data: u64) -> bool {
    user_data & MSG_MASK == MSG_TAG
}

/// The payload of a posted message: the low half from user_data, the high half
/// from the result.
pub(crate) fn payload(user_data: u64, res: i32) -> u64 {
    ((res as u32 as u64) << 32) | (user_data & 0xffff_ffff)
}

type Callback = Box<dyn FnMut(u64) + Send>;

/// Message counts of one proactor (snapshots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageStats {
    /// Messages handed to the callback.
    pub delivered: u64,
    /// Of those received, how many the kernel posted (`MSG_RING`).
    pub via_ring: u64,
    /// Of those received, how many came through the fallback queue.
    pub via_queue: u64,
    /// Messages accepted and not yet delivered (credits in use).
    pub waiting: u32,
}

pub(crate) struct Mailbox {
    capacity: u32,
    /// Credits left (see the module docs).
    credits: AtomicU32,
    queue: Mutex<VecDeque<u64>>,
    /// Fallback wake: set when the queue gets a message and no drain is scheduled.
    wake: Event,
    /// This proactor's ring, for senders' `MSG_RING` (native messaging only).
    ring: Option<OwnedFd>,
    /// A drain is scheduled (the wake is set, or a drain completion is parked).
    scheduled: AtomicBool,
    callback: Mutex<Option<Callback>>,
    /// The wake source is registered (once a callback is set).
    watching: AtomicBool,
    delivered: AtomicU64,
    via_ring: AtomicU64,
    via_queue: AtomicU64,
}

impl Mailbox {
    pub(crate) fn new(capacity: u32, ring: Option<OwnedFd>) -> Result<Mailbox> {
        if capacity == 0 {
            return Err(Error::InvalidArgument(
                "message_capacity must be at least 1",
            ));
        }
        Ok(Mailbox {
            capacity,
            credits: AtomicU32::new(capacity),
            queue: Mutex::new(VecDeque::with_capacity(capacity as usize)),
            wake: Event::new()?,
            ring,
            scheduled: AtomicBool::new(false),
            callback: Mutex::new(None),
            watching: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            via_ring: AtomicU64::new(0),
            via_queue: AtomicU64::new(0),
        })
    }

    fn take_credit(&self) -> Result<()> {
        // AcqRel: pairs with the credit returned after a delivery.
        self.credits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| c.checked_sub(1))
            .map(|_| ())
            .map_err(|_| Error::SubmissionQueueFull {
                queue: QueueKind::Messages,
                capacity: self.capacity,
            })
    }

    fn give_credit(&self) {
        self.credits.fetch_add(1, Ordering::AcqRel);
    }

    /// Queues a message and makes sure a drain follows (fallback path, any thread).
    pub(crate) fn enqueue_fallback(&self, data: u64) {
        lock(&self.queue).push_back(data);
        self.via_queue.fetch_add(1, Ordering::Relaxed);
        // SeqCst: ordered after the push, against the drain's clear-then-pop.
        if !self.scheduled.swap(true, Ordering::SeqCst) {
            // A full counter is still readable; nothing else can fail here.
            let _ = self.wake.set();
        }
    }

    /// A message the kernel posted into this proactor's ring (poll thread, core lock
    /// held): queued, and a drain is parked for this `poll`'s delivery.
    pub(crate) fn post_from_ring<D: Driver>(self: &Arc<Self>, core: &mut Core<D>, data: u64) {
        lock(&self.queue).push_back(data);
        self.via_ring.fetch_add(1, Ordering::Relaxed);
        if !self.scheduled.swap(true, Ordering::SeqCst) {
            core.done_res.push(Route::Mailbox(self.clone()).res());
            core.done.push(Done {
                id: OpId::default(),
                user_data: 0,
                outcome: Outcome::Ok(0),
                owns: true,
                more: true,
            });
        }
    }

    /// Hands waiting messages to the callback (poll thread). Bounded per call; what
    /// is left schedules another drain.
    pub(crate) fn drain(&self) {
        // Consume the wake first, then clear the flag: a sender that finds the flag
        // clear sets the wake again, which this drain then cannot swallow.
        let _ = sys::eventfd_drain(self.wake.0.as_fd());
        self.scheduled.store(false, Ordering::SeqCst);
        // Taken out while it runs, so that it may replace itself or send messages.
        let Some(mut cb) = lock(&self.callback).take() else {
            return;
        };
        let mut n = 0;
        while n < self.capacity {
            let Some(data) = lock(&self.queue).pop_front() else {
                break;
            };
            n += 1;
            self.delivered.fetch_add(1, Ordering::Relaxed);
            // Returned before the callback runs, so a callback that answers through
            // a full round trip to itself finds its credit back.
            self.give_credit();
            cb(data);
        }
        {
            let mut slot = lock(&self.callback);
            if slot.is_none() {
                *slot = Some(cb);
            }
        }
        if n == self.capacity
            && !lock(&self.queue).is_empty()
            && !self.scheduled.swap(true, Ordering::SeqCst)
        {
            let _ = self.wake.set();
        }
    }

    fn stats(&self) -> MessageStats {
        MessageStats {
            delivered: self.delivered.load(Ordering::Relaxed),
            via_ring: self.via_ring.load(Ordering::Relaxed),
            via_queue: self.via_queue.load(Ordering::Relaxed),
            waiting: self.capacity - self.credits.load(Ordering::Acquire).min(self.capacity),
        }
    }
}

impl Proactor {
    /// Sets the callback that receives messages sent to this proactor (replacing any
    /// earlier one); it runs on the poll thread, inside `poll`. Messages that arrived
    /// before it was set are delivered by the next `poll`. Thread-safe; the first
    /// call registers the proactor's wake source (one internal operation, counted by
    /// `in_flight`).
    pub fn set_message_callback(&self, callback: impl FnMut(u64) + Send + 'static) -> Result<()> {
        *lock(&self.mailbox.callback) = Some(Box::new(callback));
        if !self.mailbox.watching.swap(true, Ordering::SeqCst) {
            let op = PollSource::new(
                self.mailbox.wake.as_raw_fd(),
                libc::POLLIN as u32,
                true,
                Route::Mailbox(self.mailbox.clone()),
            );
            if let Err(e) = self.submit(Operation::internal(OpKind::PollSource(op))) {
                self.mailbox.watching.store(false, Ordering::SeqCst);
                return Err(e.error);
            }
        }
        // Deliver what waits already.
        self.mailbox.scheduled.store(true, Ordering::SeqCst);
        self.mailbox
            .wake
            .set()
            .map_err(|_| Error::InvalidArgument("message wake eventfd unusable"))
    }

    /// Sends `data` to `target`'s message callback. Thread-safe, never blocks. With
    /// [`Capability::Messaging`] native on both proactors it goes by `MSG_RING` from
    /// this proactor's ring (submitted by this proactor's `poll`, like any operation);
    /// otherwise through the target's fallback queue. Errors:
    /// [`Error::SubmissionQueueFull`] with [`QueueKind::Messages`] when the target
    /// has no credit left ("target full", retryable once it polled), or with
    /// [`QueueKind::OperationSlots`] when this proactor has no free slot for the send.
    pub fn send_message(&self, target: &Proactor, data: u64) -> Result<()> {
        let to = &target.mailbox;
        to.take_credit()?;
        let native = self.capabilities().is_native(Capability::Messaging);
        match (&to.ring, native) {
            (Some(ring), true) => {
                let op = MsgRing {
                    to: to.clone(),
                    ring: ring.as_raw_fd(),
                    data,
                };
                match self.submit(Operation::internal(OpKind::MsgRing(op))) {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        to.give_credit();
                        Err(e.error)
                    }
                }
            }
            _ => {
                to.enqueue_fallback(data);
                Ok(())
            }
        }
    }

    /// Sends `data` to this proactor's own message callback through the fallback
    /// queue: from any thread, no sending proactor needed. Same credits and errors
    /// as [`send_message`](Self::send_message).
    pub fn post_message(&self, data: u64) -> Result<()> {
        self.mailbox.take_credit()?;
        self.mailbox.enqueue_fallback(data);
        Ok(())
    }

    /// Message counts of this proactor (as a target).
    pub fn message_stats(&self) -> MessageStats {
        self.mailbox.stats()
    }
}
