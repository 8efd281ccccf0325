//! Unit tests of the lane: the window check, the flag rule, slot words and generations.
#![cfg(test)]
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
use super::*;
use crate::protocol::publish::check_flags;
use crate::protocol::window::mark_and_advance;
use io_uring::squeue::Flags;
use std::sync::atomic::{AtomicU32, AtomicU64};

#[test]
fn mark_and_advance_counts_a_position_outside_the_window_and_marks_nothing() {
    let word = AtomicU64::new(100);
    let violations = AtomicU32::new(0);
    assert_eq!(mark_and_advance(&word, 101, 1, &violations), Ok(None));
    assert_eq!(word.load(Relaxed), 100 | (1 << 33));
    assert_eq!(mark_and_advance(&word, 100, 1, &violations), Ok(Some(102)));
    for pos in [134, 99, 102 + 32, u32::MAX] {
        assert_eq!(
            mark_and_advance(&word, pos, 1, &violations),
            Err(LaneError::ProtocolViolation),
            "{pos}"
        );
    }
    assert_eq!(word.load(Relaxed), 102, "nothing marked");
    assert_eq!(violations.load(Relaxed), 4);
    assert_eq!(mark_and_advance(&word, 102 + 31, 1, &violations), Ok(None));
}

#[test]
fn mark_and_advance_marks_a_range_with_one_cas() {
    let word = AtomicU64::new(u32::MAX as u64 - 2);
    let violations = AtomicU32::new(0);
    // Positions MAX-1 ..= 1 (wrapping) first: no advance while MAX-2 is unfilled; then all five at once.
    assert_eq!(
        mark_and_advance(&word, u32::MAX - 1, 4, &violations),
        Ok(None)
    );
    assert_eq!(
        mark_and_advance(&word, u32::MAX - 2, 1, &violations),
        Ok(Some(2))
    );
    assert_eq!(word.load(Relaxed), 2);
    assert_eq!(mark_and_advance(&word, 2, 32, &violations), Ok(Some(34)));
    assert_eq!(
        mark_and_advance(&word, 40, 30, &violations),
        Err(LaneError::ProtocolViolation),
        "past the window's end"
    );
    assert_eq!(violations.load(Relaxed), 1);
}

#[test]
fn the_flag_rule() {
    let link = Flags::IO_LINK.bits();
    let hard = Flags::IO_HARDLINK.bits();
    let skip = Flags::SKIP_SUCCESS.bits();
    assert!(check_flags(link, CompletionMode::FireAndForget).is_ok());
    assert!(check_flags(hard, CompletionMode::Slot(0)).is_ok());
    assert!(check_flags(0, CompletionMode::SkipSuccess).is_ok());
    for (f, c) in [
        (link, CompletionMode::SkipSuccess),
        (hard, CompletionMode::SkipSuccess),
        (skip, CompletionMode::FireAndForget),
        (skip, CompletionMode::Slot(1)),
        (skip, CompletionMode::SkipSuccess),
    ] {
        assert!(
            matches!(check_flags(f, c), Err(LaneError::BadFlags { flags, .. }) if flags == f),
            "{f:#x} {c:?}"
        );
    }
}

#[test]
fn slot_words_and_generations() {
    assert_eq!(slot_word(5, RING_SLOT_PENDING), 5 << 8 | 1);
    assert_eq!(
        slot_generation(slot_word(SLOT_GEN_MASK, RING_SLOT_DONE)),
        SLOT_GEN_MASK
    );
    assert_eq!(
        slot_state(slot_word(7, RING_SLOT_REAPING)),
        RING_SLOT_REAPING
    );
    assert_eq!(next_generation(SLOT_GEN_MASK), 1, "wraps past 0");
    let ud = slot_user_data(9, 0x12_3456);
    assert_eq!(ud & TAG_MASK, TAG_SLOT);
    assert_eq!(ud as u32, 9);
    assert_eq!((ud >> 32) as u32 & SLOT_GEN_MASK, 0x12_3456);
}
