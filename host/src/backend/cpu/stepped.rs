//! A subgroup of lanes stepped on one thread, as a GPU runs a subgroup's lanes on one core: each lane's program
//! is a resumable state machine ([`SteppedLane`]) whose [`SteppedLane::step`] never blocks, and
//! [`step_subgroup`] steps the lanes round-robin until all are done. A round in which no lane (and not the
//! subgroup's own aggregated work, [`Group`]) made progress ends with *one* idle wait for the whole subgroup —
//! the device's [`crate::protocol::idle`] wait installed on the thread (the CPU device's blocks on the ring's
//! completion eventfd or the pump's lane wake-up, bounded) — instead of every lane parking on its own.
//!
//! Budgets stay per lane: a lane is told how many idle waits its subgroup made since it last progressed
//! (`pauses`, what a lane alone counts as its polls) and gives up with its program's status when that reaches
//! its budget, so every lane ends within a bounded number of bounded waits whatever its siblings do.

use crate::protocol::idle;

/// What one step of a lane did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The lane moved forward in its program (submitted, consumed a completion, gave up on an operation).
    Progress,
    /// The lane waits for something outside the subgroup (a completion, a free slot).
    Waiting,
    /// The lane's program has ended; it is not stepped again.
    Done,
}

/// What the lanes of a subgroup share, with the subgroup's aggregated work around each round and its lanes'
/// steps (the read program: one reap pass for all lanes before their steps, batched submissions of what they
/// asked for between and after them).
pub trait Group {
    /// Before the lanes' steps of a round. Returns whether it made progress.
    fn begin_round(&mut self) -> bool {
        false
    }
    /// After each lane's step within a round: the CPU device steps a subgroup's lanes one after another, where
    /// a GPU runs them at once, so work the lanes asked for can go out before the later lanes' steps. Returns
    /// whether it made progress.
    fn after_step(&mut self) -> bool {
        false
    }
    /// After the lanes' steps of a round. Returns whether it made progress.
    fn end_round(&mut self) -> bool {
        false
    }
}

/// Lanes that share nothing.
impl Group for () {}

/// A lane program as a resumable state machine.
///
/// Contract: `step` never blocks; it returns [`Step::Progress`] only when the lane's (finite) program moved
/// forward, and [`Step::Done`] once `pauses` reaches its budget while it waits (with the status its program
/// gives a timed-out wait), so a subgroup of such lanes always ends.
pub trait SteppedLane<G: ?Sized = ()> {
    /// One step. `pauses`: the idle waits the subgroup made since this lane last progressed.
    fn step(&mut self, group: &mut G, pauses: u32) -> Step;
}

/// What [`step_subgroup`] did: rounds stepped and idle waits made (for tests and experiments).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SubgroupStats {
    /// Rounds (each steps every lane not yet done once).
    pub rounds: u64,
    /// Idle waits (rounds without progress, spins included).
    pub pauses: u64,
}

/// What a subgroup sleeps (asked; the timer slack makes it tens of µs) after an idle round, once it has spun
/// its spin rounds, where its thread has no idle wait installed: a yield would not free the core for the
/// SQPOLL or pump thread the lanes wait for (the scheduler runs the yielding thread again); a sleep does.
const FALLBACK_SLEEP: std::time::Duration = std::time::Duration::from_micros(1);

/// Steps `lanes` round-robin on this thread until every one is [`Step::Done`]. A round without progress is
/// followed by one wait: a spin for the first `spin_rounds` consecutive idle rounds, then the installed idle
/// wait ([`idle::pause`], with the count of consecutive idle rounds as its poll count and the epoch read at the
/// round's start, so a completion reaped during the round is not slept through), or a short sleep without one.
pub fn step_subgroup<G: Group, L: SteppedLane<G>>(
    group: &mut G,
    lanes: &mut [L],
    spin_rounds: u32,
) -> SubgroupStats {
    let mut pauses = vec![0u32; lanes.len()];
    let mut done = vec![false; lanes.len()];
    let mut left = lanes.len();
    let mut idle_rounds = 0u32;
    let mut stats = SubgroupStats::default();
    while left > 0 {
        stats.rounds += 1;
        let epoch = idle::epoch();
        let mut progress = group.begin_round();
        for ((lane, p), d) in lanes.iter_mut().zip(&mut pauses).zip(&mut done) {
            if *d {
                continue;
            }
            match lane.step(group, *p) {
                Step::Progress => {
                    *p = 0;
                    progress = true;
                }
                Step::Waiting => {}
                Step::Done => {
                    *d = true;
                    left -= 1;
                    progress = true;
                }
            }
            progress |= group.after_step();
        }
        progress |= group.end_round();
        if left == 0 {
            break;
        }
        if progress {
            idle_rounds = 0;
            continue;
        }
        stats.pauses += 1;
        if idle_rounds < spin_rounds {
            std::hint::spin_loop();
        } else if idle::installed() {
            idle::pause(idle_rounds - spin_rounds, epoch);
        } else {
            std::thread::sleep(FALLBACK_SLEEP);
        }
        idle_rounds = idle_rounds.saturating_add(1);
        for (p, d) in pauses.iter_mut().zip(&done) {
            if !*d {
                *p = p.saturating_add(1);
            }
        }
    }
    stats
}
