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

/// The id in a reply at `pointer`: a JSON number, or a string of digits (servers often echo
/// ids as strings). `None` when the reply is not JSON or has no such id.
pub fn reply_id(text: &str, pointer: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    match value.pointer(pointer)? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// What a reply's seq turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// An outstanding request, sent (intended) at this instant.
    Pending(Instant),
    /// A request already answered or timed out.
    Late,
    /// No request of this user has that seq.
    Unknown,
}

/// Outstanding requests of one session, by seq. Seqs are sent in order, so the table is a
/// ring of slots from the oldest outstanding seq: push, match and expire are O(1) and the
/// ring only grows to the number of requests in flight at once.
#[derive(Debug)]
pub struct Pending {
    /// Seq of the first slot.
    base: u64,
    /// Intended send time per seq from `base`; `None` once answered.
    slots: VecDeque<Option<Instant>>,
}

impl Pending {
    /// An empty table with room for `capacity` requests in flight before it grows.
    pub fn with_capacity(capacity: usize) -> Pending {
        Pending {
            base: 1,
            slots: VecDeque::with_capacity(capacity),
        }
    }

    /// Records request `seq` (one more than the last) intended at `at`.
    pub fn push(&mut self, seq: u64, at: Instant) {
        if self.slots.is_empty() {
            self.base = seq;
        }
        debug_assert_eq!(
            seq,
            self.base + self.slots.len() as u64,
            "seqs are consecutive"
        );
        self.slots.push_back(Some(at));
    }

    /// Takes request `seq` out of the table.
    pub fn take(&mut self, seq: u64) -> Match {
        let Some(offset) = seq.checked_sub(self.base) else {
            return Match::Late;
        };
        let found = usize::try_from(offset)
            .ok()
            .and_then(|i| self.slots.get_mut(i))
            .map(Option::take);
        let result = match found {
            Some(Some(at)) => Match::Pending(at),
            Some(None) => Match::Late,
            None => Match::Unknown,
        };
        self.trim();
        result
    }

    /// Removes requests intended before `now - timeout`; returns how many.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> u32 {
        let mut expired = 0;
        while let Some(&front) = self.slots.front() {
            match front {
                Some(at) if at + timeout > now => break,
                Some(_) => expired += 1,
                None => {}
            }
            self.slots.pop_front();
            self.base += 1;
        }
        expired
    }

    /// When the oldest outstanding request times out.
    pub fn next_deadline(&self, timeout: Duration) -> Option<Instant> {
        self.slots.front().copied().flatten().map(|at| at + timeout)
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

    fn trim(&mut self) {
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
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

    #[test]
    fn reply_ids_from_numbers_strings_and_nested_pointers() {
        assert_eq!(
            reply_id(r#"{"id": 5000000012}"#, "/id"),
            Some(5_000_000_012)
        );
        assert_eq!(
            reply_id(r#"{"id": "5000000012"}"#, "/id"),
            Some(5_000_000_012)
        );
        assert_eq!(reply_id(r#"{"m": {"rid": 7}}"#, "/m/rid"), Some(7));
        assert_eq!(reply_id("42", ""), Some(42));
        assert_eq!(reply_id("not json", "/id"), None);
        assert_eq!(reply_id(r#"{"id": null}"#, "/id"), None);
        assert_eq!(reply_id(r#"{"id": -3}"#, "/id"), None);
        assert_eq!(reply_id(r#"{"x": 1}"#, "/id"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_order_replies_match_and_duplicates_are_late() {
        let t0 = Instant::now();
        let mut p = Pending::with_capacity(4);
        for seq in 1..=3 {
            p.push(seq, t0 + Duration::from_millis(seq));
        }
        assert_eq!(p.take(2), Match::Pending(t0 + Duration::from_millis(2)));
        assert_eq!(p.take(2), Match::Late);
        assert_eq!(p.take(1), Match::Pending(t0 + Duration::from_millis(1)));
        assert_eq!(p.take(1), Match::Late);
        assert_eq!(p.take(9), Match::Unknown);
        assert_eq!(p.outstanding(), 1);
        assert_eq!(p.take(3), Match::Pending(t0 + Duration::from_millis(3)));
        assert_eq!(p.outstanding(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_removes_only_overdue_requests() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(1);
        let mut p = Pending::with_capacity(4);
        p.push(1, t0);
        p.push(2, t0 + Duration::from_millis(500));
        p.push(3, t0 + Duration::from_millis(900));
        assert_eq!(p.take(2), Match::Pending(t0 + Duration::from_millis(500)));
        assert_eq!(p.next_deadline(timeout), Some(t0 + timeout));
        assert_eq!(p.expire(t0 + Duration::from_millis(1600), timeout), 1);
        assert_eq!(
            p.next_deadline(timeout),
            Some(t0 + Duration::from_millis(1900))
        );
        assert_eq!(p.take(1), Match::Late, "a reply after its timeout is late");
        assert_eq!(p.clear(), 1);
        p.push(4, t0);
        assert_eq!(p.take(4), Match::Pending(t0));
    }
}
