//! Tests of `segment.rs`: the N slices partition the plan exactly.

use std::time::{Duration, SystemTime};

use super::*;
use crate::plan::Plan;

#[test]
fn the_segments_partition_users_probes_and_rates_exactly() {
    for n in 1..=16 {
        for users in [0, 1, 7, 10, 99, 1001] {
            for room in [1, 3, 10] {
                let plan = Plan::new(
                    users,
                    Duration::from_secs(60),
                    Duration::from_secs(10),
                    Duration::from_secs(5),
                );
                let mut owner = vec![0u32; users as usize];
                let mut total = 0;
                for i in 0..n {
                    let seg = Segment::new(i, n).unwrap();
                    let own = plan.sliced(seg, room).own_users();
                    total += own.len();
                    for u in own {
                        owner[u as usize] += 1;
                        // Whole rooms stay in one segment.
                        let first = u / room * room;
                        assert!(plan.sliced(seg, room).owns(first), "room of {u} split");
                    }
                }
                assert_eq!(total, users as usize, "n={n} users={users} room={room}");
                assert!(owner.iter().all(|&k| k == 1), "each user in exactly one");
                // At every offset, the segments' active users add up to the plan's.
                for t in [0, 3, 10, 30, 57, 60] {
                    let t = Duration::from_secs(t);
                    let sum: u32 = (0..n)
                        .map(|i| plan.sliced(Segment::new(i, n).unwrap(), room).active_at(t))
                        .sum();
                    assert_eq!(sum, plan.active_at(t), "active at {t:?}");
                }
            }
        }
        for probes in [0, 1, 4, 17] {
            let owned: usize = (0..n)
                .map(|i| {
                    let seg = Segment::new(i, n).unwrap();
                    (0..probes).filter(|&k| seg.owns_probe(k)).count()
                })
                .sum();
            assert_eq!(owned, probes as usize);
        }
        let shares: f64 = (0..n)
            .map(|i| Segment::new(i, n).unwrap().share(1000.0))
            .sum();
        assert!((shares - 1000.0).abs() < 1e-9, "{shares}");
    }
}

#[test]
fn a_segment_is_i_of_n_and_bad_ones_say_what_is_expected() {
    assert_eq!(Segment::parse("2/4"), Ok(Segment { index: 2, count: 4 }));
    assert_eq!(Segment::parse(" 0 / 1 "), Ok(Segment::WHOLE));
    for bad in ["4/4", "1/0", "x/2", "1", "", "-1/2", "1/99999"] {
        let e = Segment::parse(bad).unwrap_err();
        assert!(e.contains("expected I/N"), "{bad}: {e}");
    }
    assert_eq!(Segment::new(1, 3).unwrap().label(), "seg1of3");
    // --segments N takes the index from JOB_COMPLETION_INDEX.
    assert_eq!(
        chosen(None, Some(3), Some("2")),
        Ok(Segment { index: 2, count: 3 })
    );
    assert!(
        chosen(None, Some(3), None)
            .unwrap_err()
            .contains("JOB_COMPLETION_INDEX")
    );
    assert!(chosen(None, Some(3), Some("3")).is_err());
    assert!(
        chosen(None, Some(3), Some("a"))
            .unwrap_err()
            .contains("`a`")
    );
    assert_eq!(chosen(None, None, Some("5")), Ok(Segment::WHOLE));
}

#[test]
fn the_shared_start_is_a_time_or_a_delay_and_is_met_or_joined_late() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert_eq!(start_at("+30s", now), Ok(now + Duration::from_secs(30)));
    // 2027-01-15T08:00:00Z is 1 800 000 000 s after the epoch.
    assert_eq!(start_at("2027-01-15T08:00:00Z", now), Ok(now));
    assert_eq!(
        start_at("2027-01-15T08:00:10Z", now),
        Ok(now + Duration::from_secs(10))
    );
    assert!(start_at("tomorrow", now).unwrap_err().contains("RFC 3339"));
    assert!(start_at("+soon", now).unwrap_err().contains("+DURATION"));
    assert_eq!(
        meet(now + Duration::from_secs(5), now),
        Meet::Wait(Duration::from_secs(5))
    );
    assert_eq!(
        meet(now, now + Duration::from_secs(7)),
        Meet::Late(Duration::from_secs(7))
    );
}
