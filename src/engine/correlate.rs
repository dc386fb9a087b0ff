//! Matching replies to requests: message ids, the reply's id at a JSON pointer, the pending table.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// `{{id}}` is `(user + 1) · USER_STRIDE + seq`: unique in the run, readable in a server log
/// (user 4, message 12 → 5000000012), and below 2^53 (exact in JavaScript) for up to
/// 9 million users.
pub const USER_STRIDE: u64 = 1_000_000_000;

/// The id of message `seq` (1-based) of `user`.
pub fn message_id(user: u32, seq: u64) -> u64 {
    (u64::from(user) + 1) * USER_STRIDE + seq
}

/// The user and seq inside an id.
pub fn split_id(id: u64) -> Option<(u32, u64)> {
    let user = (id / USER_STRIDE).checked_sub(1)?;
    Some((u32::try_from(user).ok()?, id % USER_STRIDE))
}

/// One outstanding request: when it was due, which scenario message, frames seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Intended send instant (latency runs from here).
    pub intended: Instant,
    /// Scenario message index.
    pub msg: u16,
    /// Frames of its reply received so far.
    pub frames: u16,
}

/// What a reply's seq turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Match<'a> {
    /// An outstanding request.
    Pending(&'a mut Slot),
    /// A request that timed out (or was answered too long ago to tell).
    Late,
    /// A request already answered completely: a second reply.
    Duplicate,
    /// No request of this user has that seq.
    Unknown,
}

/// Outstanding requests of one session, by seq. Seqs are sent in order, so the table is a
/// ring of slots from the oldest outstanding seq: push, match and expire are O(1) and the
/// ring only grows to the number of requests in flight at once (24 bytes a slot).
#[derive(Debug)]
pub struct Pending {
    /// Seq of the first slot.
    base: u64,
    /// One slot per seq from `base`; `None` once answered.
    slots: VecDeque<Option<Slot>>,
    /// Which of the last [`ANSWERED_WINDOW`] seqs were answered completely (bit `seq %
    /// 128`), so a second reply is told from a late one; 16 bytes a session.
    answered: u128,
    /// The highest seq pushed (the window is the 128 seqs up to it).
    newest: u64,
}

/// How many recent requests a session remembers as answered. A reply to an older one is
/// counted late: it cannot be told from a late reply any more.
pub const ANSWERED_WINDOW: u64 = 128;

impl Pending {
    /// An empty table with room for `capacity` requests in flight before it grows.
    pub fn with_capacity(capacity: usize) -> Pending {
        Pending {
            base: 1,
            slots: VecDeque::with_capacity(capacity),
            answered: 0,
            newest: 0,
        }
    }

    /// Records request `seq` (one more than the last) of message `msg`, intended at `at`.
    pub fn push(&mut self, seq: u64, msg: u16, at: Instant) {
        if self.slots.is_empty() {
            self.base = seq;
        }
        debug_assert_eq!(
            seq,
            self.base + self.slots.len() as u64,
            "seqs are consecutive"
        );
        self.slots.push_back(Some(Slot {
            intended: at,
            msg,
            frames: 0,
        }));
        self.newest = seq;
        self.answered &= !(1u128 << (seq % ANSWERED_WINDOW));
    }

    /// Whether `seq` is one of the recent requests answered completely.
    fn was_answered(&self, seq: u64) -> bool {
        seq <= self.newest
            && self.newest - seq < ANSWERED_WINDOW
            && self.answered & (1u128 << (seq % ANSWERED_WINDOW)) != 0
    }

    /// Looks request `seq` up, leaving it in the table.
    pub fn get(&mut self, seq: u64) -> Match<'_> {
        let gone = if self.was_answered(seq) {
            Match::Duplicate
        } else {
            Match::Late
        };
        let Some(offset) = seq.checked_sub(self.base) else {
            return gone;
        };
        match usize::try_from(offset)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
        {
            Some(Some(slot)) => Match::Pending(slot),
            Some(None) => gone,
            None => Match::Unknown,
        }
    }

    /// Removes request `seq` (its reply is complete).
    pub fn finish(&mut self, seq: u64) {
        self.answered |= 1u128 << (seq % ANSWERED_WINDOW);
        if let Some(slot) = seq
            .checked_sub(self.base)
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|i| self.slots.get_mut(i))
        {
            *slot = None;
        }
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
    }

    /// Removes requests intended before `now - timeout`, calling `expired` with each one's
    /// message index.
    pub fn expire(&mut self, now: Instant, timeout: Duration, mut expired: impl FnMut(u16)) {
        while let Some(&front) = self.slots.front() {
            match front {
                Some(slot) if slot.intended + timeout > now => break,
                Some(slot) => expired(slot.msg),
                None => {}
            }
            self.slots.pop_front();
            self.base += 1;
        }
    }

    /// The oldest outstanding request's seq.
    pub fn oldest(&self) -> Option<u64> {
        self.slots
            .iter()
            .position(Option::is_some)
            .map(|i| self.base + i as u64)
    }

    /// When the oldest outstanding request times out.
    pub fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.slots
            .front()
            .copied()
            .flatten()
            .map(|s| s.intended + timeout)
    }

    /// Requests still outstanding.
    pub fn outstanding(&self) -> u32 {
        self.slots.iter().filter(|s| s.is_some()).count() as u32
    }

    /// Forgets every request (the connection is gone) and returns how many were outstanding.
    pub fn clear(&mut self) -> u32 {
        let n = self.outstanding();
        self.base += self.slots.len() as u64;
        self.slots.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        assert_eq!(message_id(4, 12), 5_000_000_012);
        assert_eq!(split_id(message_id(4, 12)), Some((4, 12)));
        assert_eq!(split_id(message_id(0, 1)), Some((0, 1)));
        assert_eq!(split_id(12), None);
        assert!(message_id(9_000_000, 1) < 1 << 53);
    }

    fn at(p: &mut Pending, seq: u64) -> Option<Instant> {
        match p.get(seq) {
            Match::Pending(slot) => Some(slot.intended),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_order_replies_match_and_second_replies_are_duplicates() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = Pending::with_capacity(4);
        for seq in 1..=3 {
            p.push(seq, 0, t0 + ms(seq));
        }
        assert_eq!(at(&mut p, 2), Some(t0 + ms(2)));
        p.finish(2);
        assert_eq!(p.get(2), Match::Duplicate);
        assert_eq!(at(&mut p, 1), Some(t0 + ms(1)));
        p.finish(1);
        assert_eq!(p.get(1), Match::Duplicate);
        assert_eq!(p.get(9), Match::Unknown);
        assert_eq!(p.outstanding(), 1);
        p.finish(3);
        assert_eq!(p.outstanding(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn frames_are_counted_on_the_slot() {
        let mut p = Pending::with_capacity(1);
        p.push(1, 3, Instant::now());
        for _ in 0..2 {
            if let Match::Pending(slot) = p.get(1) {
                slot.frames += 1;
            }
        }
        match p.get(1) {
            Match::Pending(slot) => assert_eq!((slot.msg, slot.frames), (3, 2)),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_removes_only_overdue_requests() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let timeout = Duration::from_secs(1);
        let mut p = Pending::with_capacity(4);
        p.push(1, 7, t0);
        p.push(2, 0, t0 + ms(500));
        p.push(3, 0, t0 + ms(900));
        p.finish(2);
        assert_eq!(p.next_deadline(timeout), Some(t0 + timeout));
        let mut expired = Vec::new();
        p.expire(t0 + ms(1600), timeout, |m| expired.push(m));
        assert_eq!(expired, [7]);
        assert_eq!(p.next_deadline(timeout), Some(t0 + ms(1900)));
        assert_eq!(p.get(1), Match::Late, "a reply after its timeout is late");
        assert_eq!(p.clear(), 1);
        p.push(4, 0, t0);
        assert_eq!(at(&mut p, 4), Some(t0));
    }

    #[test]
    fn a_second_reply_is_a_duplicate_and_a_reply_after_the_timeout_is_late() {
        let now = Instant::now();
        let mut p = Pending::with_capacity(4);
        for seq in 1..=3 {
            p.push(seq, 0, now);
        }
        p.finish(2);
        assert_eq!(
            p.get(2),
            Match::Duplicate,
            "answered, still behind an open one"
        );
        p.finish(1);
        assert_eq!(p.get(1), Match::Duplicate, "answered and popped");
        let mut expired = 0;
        p.expire(
            now + Duration::from_secs(10),
            Duration::from_secs(5),
            |_| expired += 1,
        );
        assert_eq!(expired, 1);
        assert_eq!(p.get(3), Match::Late, "timed out, never answered");
        // Far behind the window: no longer known, counted late.
        for seq in 4..=300 {
            p.push(seq, 0, now);
            p.finish(seq);
        }
        assert_eq!(p.get(299), Match::Duplicate);
        assert_eq!(p.get(2), Match::Late);
    }
}
