//! Which command partitions a worker consumes, given the live workers: a
//! pure rule, so that every worker computes the same answer from the same
//! member list without talking to the others.
//!
//! Each partition goes to the worker that ranks it highest (rendezvous
//! hashing: a member keeps most of its partitions when others join or
//! leave), among the workers that still have room: loads never differ by
//! more than one, so no worker is left idle while another decides for
//! two.

use std::collections::BTreeSet;

/// The partitions of `members` that go to `me`. The result does not
/// depend on the order of `members`; empty when `me` is not a member.
pub fn partitions_of(partitions: u16, members: &[String], me: &str) -> BTreeSet<u16> {
    let mut members: Vec<&str> = members.iter().map(String::as_str).collect();
    members.sort_unstable();
    members.dedup();
    let Some(mine) = members.iter().position(|m| *m == me) else {
        return BTreeSet::new();
    };
    owners(partitions, &members)
        .into_iter()
        .enumerate()
        .filter(|(_, owner)| *owner == mine)
        .map(|(partition, _)| partition as u16)
        .collect()
}

/// The index in `members` (sorted, distinct, not empty) of each
/// partition's owner.
fn owners(partitions: u16, members: &[&str]) -> Vec<usize> {
    let count = members.len();
    let floor = usize::from(partitions) / count;
    let mut extras = usize::from(partitions) % count;
    let mut load = vec![0usize; count];
    (0..partitions)
        .map(|partition| {
            let mut ranked: Vec<usize> = (0..count).collect();
            ranked.sort_by_key(|&m| std::cmp::Reverse(score(partition, members[m])));
            let owner = ranked
                .into_iter()
                .find(|&m| load[m] < floor || (load[m] == floor && extras > 0))
                .unwrap_or(0);
            if load[owner] == floor {
                extras -= 1;
            }
            load[owner] += 1;
            owner
        })
        .collect()
}

/// A stable 64-bit hash of (partition, member): FNV-1a then a splitmix64
/// finaliser, fixed here so that every build ranks alike.
fn score(partition: u16, member: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in partition.to_le_bytes().iter().chain(member.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("worker-{i:02}")).collect()
    }

    fn all(partitions: u16, members: &[String]) -> Vec<BTreeSet<u16>> {
        members
            .iter()
            .map(|m| partitions_of(partitions, members, m))
            .collect()
    }

    #[test]
    fn a_lone_worker_takes_every_partition() {
        let members = names(1);
        assert_eq!(
            partitions_of(12, &members, "worker-00"),
            (0..12).collect::<BTreeSet<u16>>()
        );
    }

    #[test]
    fn a_worker_not_in_the_list_takes_nothing() {
        assert!(partitions_of(12, &names(3), "stranger").is_empty());
    }

    proptest! {
        #[test]
        fn every_partition_has_exactly_one_owner_and_loads_are_even(
            partitions in 1u16..64,
            count in 1usize..10,
        ) {
            let members = names(count);
            let shares = all(partitions, &members);
            let mut seen = BTreeSet::new();
            for share in &shares {
                for p in share {
                    prop_assert!(seen.insert(*p), "partition {p} owned twice");
                }
            }
            prop_assert_eq!(seen.len(), usize::from(partitions));
            let loads: Vec<usize> = shares.iter().map(BTreeSet::len).collect();
            let (min, max) = (loads.iter().min().copied(), loads.iter().max().copied());
            prop_assert!(max.unwrap_or(0) - min.unwrap_or(0) <= 1, "loads {loads:?}");
        }

        #[test]
        fn the_order_of_the_member_list_does_not_matter(
            partitions in 1u16..64,
            count in 1usize..10,
            seed in any::<u64>(),
        ) {
            let members = names(count);
            let mut shuffled = members.clone();
            shuffled.sort_by_key(|m| score((seed % 977) as u16, m));
            for m in &members {
                prop_assert_eq!(
                    partitions_of(partitions, &members, m),
                    partitions_of(partitions, &shuffled, m)
                );
            }
        }

        #[test]
        fn a_worker_joining_moves_few_partitions(count in 1usize..8) {
            // With 48 partitions, a join should move about one new share
            // (48 / (count + 1)) and never reshuffle most of them.
            let before = names(count);
            let after = names(count + 1);
            let moved = (0..48u16)
                .filter(|p| {
                    let owner = |members: &[String]| {
                        members.iter().position(|m| partitions_of(48, members, m).contains(p))
                    };
                    owner(&before).map(|i| &before[i]) != owner(&after).map(|i| &after[i])
                })
                .count();
            prop_assert!(moved <= 2 * 48 / (count + 1), "moved {moved} of 48");
        }
    }
}
