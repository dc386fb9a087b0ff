//! Fan-out in chat rooms (`[rooms] deliver`): every message a user sends is expected at
//! every other member of its room connected when it was sent (and at the sender with
//! `include_sender`), and each member's copy is timed from the message's *intended* send.
//!
//! No lock is shared per delivery and nothing is allocated per delivery: a receiver reads
//! the sender and seq from the id in the frame, and the intended instant from the sender's
//! ring of its last [`SLOTS`] sends (atomics, written by the sender alone); room membership
//! is one atomic counter per room. A receiver keeps, per member of its room, the highest
//! seq seen and a window of the 64 before it, for duplicates and out-of-order copies.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Sends remembered per user (a copy arriving after its sender sent this many more cannot
/// be timed, and counts as late).
pub const SLOTS: usize = 16;

/// Bits of a slot holding the send's µs offset from the run's epoch (12 days); the rest
/// hold its seq.
const OFFSET_BITS: u32 = 40;

/// A tally's expected half before the sender has counted its room.
const UNCOUNTED: u64 = u32::MAX as u64;

/// One remembered send.
#[derive(Debug, Default)]
struct Slot {
    /// `seq << 40 | µs since the epoch` of the intended send.
    sent: AtomicU64,
    /// When the copies expected were counted (µs since the epoch + 1; 0: not yet).
    counted: AtomicU64,
    /// `expected << 32 | copies delivered in time` (expected [`UNCOUNTED`] until counted).
    tally: AtomicU64,
    /// The slowest copy delivered in time so far, µs from the intended send.
    slowest: AtomicU64,
}

/// What a timed copy completed: the first member's, or every expected member's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reached {
    /// This copy was the message's first one.
    pub first: bool,
    /// It was the last one expected: every member got the message, the slowest after
    /// this many µs.
    pub last: Option<u64>,
}

/// The run's shared fan-out state.
#[derive(Debug)]
pub struct Fanout {
    /// The field the delivered message's id is read from.
    pub deliver_at: usize,
    /// Whether the sender gets its own copy.
    pub include_sender: bool,
    /// Users per room.
    pub room_size: u32,
    /// Connected members, per room.
    members: Box<[AtomicU32]>,
    /// Per user, its last sends.
    sends: Box<[[Slot; SLOTS]]>,
    epoch: Instant,
}

impl Fanout {
    /// The state for `users` users in rooms of `room_size`.
    pub fn new(users: u32, room_size: u32, deliver_at: usize, include_sender: bool) -> Fanout {
        let rooms = users.div_ceil(room_size.max(1)) as usize;
        Fanout {
            deliver_at,
            include_sender,
            room_size: room_size.max(1),
            members: (0..rooms).map(|_| AtomicU32::new(0)).collect(),
            sends: (0..users as usize)
                .map(|_| std::array::from_fn(|_| Slot::default()))
                .collect(),
            epoch: Instant::now(),
        }
    }

    fn room(&self, user: u32) -> Option<&AtomicU32> {
        self.members.get((user / self.room_size) as usize)
    }

    /// `user` is connected (its steps passed): a member deliveries are expected at.
    pub fn joined(&self, user: u32) {
        if let Some(m) = self.room(user) {
            m.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// `user`'s connection ended.
    pub fn left(&self, user: u32) {
        if let Some(m) = self.room(user) {
            let _ = m.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// `user` is about to send its message `seq`, intended at `intended`: remembered for
    /// its members before it leaves, since a fast server's copy can beat the send's return.
    pub fn sending(&self, user: u32, seq: u64, intended: Instant) {
        if let Some(slots) = self.sends.get(user as usize) {
            let offset = intended.saturating_duration_since(self.epoch).as_micros() as u64;
            let packed = (seq << OFFSET_BITS) | (offset & ((1 << OFFSET_BITS) - 1));
            let slot = &slots[(seq as usize) % SLOTS];
            slot.counted.store(0, Ordering::Release);
            slot.tally.store(UNCOUNTED << 32, Ordering::Release);
            slot.slowest.store(0, Ordering::Release);
            slot.sent.store(packed, Ordering::Release);
        }
    }

    /// µs since the epoch (+1, so never 0).
    fn now_mark(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.epoch)
            .as_micros() as u64
            + 1
    }

    /// How many copies of `user`'s message `seq`, just sent, are expected: the members of
    /// its room connected now, less the sender unless it gets its own. When they were
    /// counted is noted, so a member that connected after is not held to it. With them,
    /// when a fast server's copies all came before this count, how long the slowest took.
    pub fn expected(&self, user: u32, seq: u64) -> (u32, Option<u64>) {
        let connected = self.room(user).map_or(0, |m| m.load(Ordering::Acquire));
        let expected = if self.include_sender {
            connected
        } else {
            connected.saturating_sub(1)
        };
        let Some(slots) = self.sends.get(user as usize) else {
            return (expected, None);
        };
        let slot = &slots[(seq as usize) % SLOTS];
        slot.counted.store(self.now_mark(), Ordering::Release);
        let mut before = 0;
        let _ = slot
            .tally
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                before = t & u64::from(u32::MAX);
                Some((u64::from(expected) << 32) | before)
            });
        let all = expected > 0 && before >= u64::from(expected);
        (expected, all.then(|| slot.slowest.load(Ordering::Acquire)))
    }

    /// A copy of `sender`'s message `seq` was delivered in time after `micros`: whether it
    /// was the first, and whether it completed the message's expected copies.
    pub fn reached(&self, sender: u32, seq: u64, micros: u64) -> Reached {
        let Some(slots) = self.sends.get(sender as usize) else {
            return Reached::default();
        };
        let slot = &slots[(seq as usize) % SLOTS];
        let slowest = slot.slowest.fetch_max(micros, Ordering::AcqRel).max(micros);
        let tally = slot.tally.fetch_add(1, Ordering::AcqRel);
        let (expected, got) = (tally >> 32, (tally & u64::from(u32::MAX)) + 1);
        Reached {
            first: got == 1,
            last: (expected != UNCOUNTED && got == expected).then_some(slowest),
        }
    }

    /// When `sender`'s message `seq` was intended, and when its expected copies were
    /// counted (`None`: not yet), if it is still remembered.
    pub fn intended(&self, sender: u32, seq: u64) -> Option<(Instant, Option<Instant>)> {
        let remembered = &self.sends.get(sender as usize)?[(seq as usize) % SLOTS];
        let slot = remembered.sent.load(Ordering::Acquire);
        let counted = remembered.counted.load(Ordering::Acquire);
        let stored_seq = slot >> OFFSET_BITS;
        let want = seq & ((1 << (64 - OFFSET_BITS)) - 1);
        (slot != 0 && stored_seq == want).then(|| {
            let at = self.epoch + Duration::from_micros(slot & ((1 << OFFSET_BITS) - 1));
            let counted = (counted > 0).then(|| self.epoch + Duration::from_micros(counted - 1));
            (at, counted)
        })
    }

    /// Whether `a` and `b` share a room.
    pub fn same_room(&self, a: u32, b: u32) -> bool {
        a / self.room_size == b / self.room_size
    }
}

/// What one receiver has seen from each member of its room.
#[derive(Debug)]
pub struct Seen {
    /// Per member (by user mod room size): highest seq, and a bit for each of the 64 below.
    members: Vec<(u64, u64)>,
}

impl Seen {
    /// A receiver in rooms of `room_size`.
    pub fn new(room_size: u32) -> Seen {
        Seen {
            members: vec![(0, 0); room_size.max(1) as usize],
        }
    }

    /// Notes `sender`'s message `seq`: (a duplicate, out of order).
    pub fn note(&mut self, sender: u32, seq: u64) -> (bool, bool) {
        let n = self.members.len() as u32;
        let Some((high, below)) = self.members.get_mut((sender % n) as usize) else {
            return (false, false);
        };
        if seq > *high {
            let shift = seq - *high;
            // Bit k: seq `high - 1 - k` was seen; the old high becomes bit shift - 1.
            *below = if shift >= 64 {
                0
            } else {
                (*below << shift) | (u64::from(*high > 0) << (shift - 1))
            };
            *high = seq;
            return (false, false);
        }
        if seq == *high {
            return (true, false);
        }
        let k = *high - 1 - seq;
        if k >= 64 {
            return (false, true); // too old to tell: out of order, not a duplicate
        }
        let bit = 1 << k;
        let duplicate = *below & bit != 0;
        *below |= bit;
        (duplicate, !duplicate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sends_are_remembered_for_receivers_and_members_are_counted() {
        let f = Fanout::new(10, 5, 0, false);
        for u in [0, 1, 2, 5] {
            f.joined(u);
        }
        let at = Instant::now() + Duration::from_millis(1500);
        // Room 0 has 3 members connected: 2 others expect user 1's message.
        f.sending(1, 7, at);
        assert_eq!(f.intended(1, 7).unwrap().1, None, "not counted yet");
        assert_eq!(f.expected(1, 7), (2, None));
        f.sending(5, 1, at);
        assert_eq!(f.expected(5, 1), (0, None), "alone in room 1");
        let (got, counted) = f.intended(1, 7).unwrap();
        assert!(counted.unwrap() <= Instant::now());
        assert!(
            got.duration_since(at) < Duration::from_micros(2),
            "{got:?} {at:?}"
        );
        assert_eq!(f.intended(1, 8), None);
        assert_eq!(
            f.intended(1, 7 + SLOTS as u64),
            None,
            "overwritten later, not yet"
        );
        f.sending(1, 7 + SLOTS as u64, at);
        assert_eq!(f.intended(1, 7), None, "overwritten: cannot be timed");
        f.left(2);
        assert_eq!(f.expected(0, 1).0, 1);
        assert!(f.same_room(0, 4) && !f.same_room(4, 5));
        let with_sender = Fanout::new(4, 4, 0, true);
        with_sender.joined(0);
        with_sender.joined(1);
        assert_eq!(with_sender.expected(0, 1).0, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_copy_and_the_copy_completing_a_message_are_told_once() {
        let f = Fanout::new(8, 4, 0, false);
        for u in 0..4 {
            f.joined(u);
        }
        let at = Instant::now();
        // Counted before any copy: 3 expected; the third completes it with the slowest.
        f.sending(0, 1, at);
        assert_eq!(f.expected(0, 1), (3, None));
        let r = f.reached(0, 1, 900);
        assert_eq!(
            r,
            Reached {
                first: true,
                last: None
            }
        );
        assert_eq!(
            f.reached(0, 1, 400),
            Reached::default(),
            "neither first nor last"
        );
        assert_eq!(
            f.reached(0, 1, 700).last,
            Some(900),
            "the slowest, not this one"
        );
        // Every copy before the count (a fast server): the count tells the slowest.
        f.sending(0, 2, at);
        assert!(f.reached(0, 2, 50).first);
        assert_eq!(f.reached(0, 2, 80).last, None, "not counted yet");
        assert_eq!(f.reached(0, 2, 60).last, None);
        assert_eq!(f.expected(0, 2), (3, Some(80)));
        // Some copies before the count, the rest after.
        f.sending(0, 3, at);
        f.reached(0, 3, 10);
        assert_eq!(f.expected(0, 3), (3, None));
        f.reached(0, 3, 30);
        assert_eq!(f.reached(0, 3, 20).last, Some(30));
        // A message one member never got is never complete; a reused slot starts afresh.
        f.sending(0, 4, at);
        assert_eq!(f.expected(0, 4), (3, None));
        f.reached(0, 4, 10);
        f.reached(0, 4, 10);
        f.sending(0, 4 + SLOTS as u64, at);
        assert_eq!(f.expected(0, 4 + SLOTS as u64), (3, None));
        assert!(f.reached(0, 4 + SLOTS as u64, 5).first);
        // Nobody else in the room: nothing to complete.
        f.sending(4, 1, at);
        f.joined(4);
        assert_eq!(f.expected(4, 1), (0, None));
    }

    #[test]
    fn duplicates_and_out_of_order_copies_are_told_apart() {
        let mut seen = Seen::new(4);
        assert_eq!(seen.note(1, 1), (false, false));
        assert_eq!(seen.note(1, 3), (false, false));
        assert_eq!(seen.note(1, 3), (true, false), "the same copy twice");
        assert_eq!(seen.note(1, 2), (false, true), "2 after 3");
        assert_eq!(seen.note(1, 2), (true, false));
        assert_eq!(seen.note(1, 1), (true, false), "1 was seen before 3");
        assert_eq!(seen.note(2, 1), (false, false), "another member");
        assert_eq!(seen.note(1, 200), (false, false));
        assert_eq!(seen.note(1, 3), (false, true), "too old to tell");
    }
}
