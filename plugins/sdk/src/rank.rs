//! Rank-based scores for `ordering` plugins.
//!
//! Only the order of `ordering` scores matters, so the easiest exact way to express "sort by
//! this, then that" is to build one integer key per row whose ascending order is the wanted
//! order, and answer ranks: [`scores_by_key`] gives the best row `N`, the next `N - 1`, and
//! rows with equal keys the same score (the node then breaks their tie by transaction hash).
//! Sorting plain integers is several times faster than sorting with a float comparator.

/// Maps an `f32` to a `u32` whose unsigned order is the `f32` total order, with `-0.0` read as
/// `0.0` and a NaN read as `nan_as`. Use `!ordered_bits(x, ..)` for a descending key.
pub fn ordered_bits(x: f32, nan_as: f32) -> u32 {
    let x = if x.is_nan() { nan_as } else { x + 0.0 }; // -0.0 + 0.0 == +0.0
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// A key whose ascending order is `high` descending, then `low` ascending (e.g. fee descending,
/// then arrival ascending). A NaN `high` sorts last, a NaN `low` latest.
pub fn desc_then_asc(high: f32, low: f32) -> u64 {
    let high = !ordered_bits(high, f32::NEG_INFINITY);
    let low = ordered_bits(low, f32::INFINITY);
    (u64::from(high) << 32) | u64::from(low)
}

/// Scores from one key per row (`keys[i]` is row `i`'s key, lower = better): the row with
/// the `r`-th best key (counting every row with a strictly better key) scores `N - r`.
///
/// Any ordered key works (tuples, say), by a comparison sort. For unsigned integer keys
/// (what [`desc_then_asc`] builds), [`scores_by_int_key`] answers the same scores faster.
pub fn scores_by_key<K: Ord + Copy>(keys: impl IntoIterator<Item = K>) -> Vec<f32> {
    let keys: Vec<K> = keys.into_iter().collect();
    let mut order: Vec<u32> = (0..keys.len() as u32).collect();
    order.sort_unstable_by_key(|&i| keys[i as usize]);
    scores_from_order(&keys, &order)
}

/// An unsigned integer key [`scores_by_int_key`] can sort by its bytes.
pub trait IntKey: Ord + Copy {
    /// Bytes in the key.
    const BYTES: usize;
    /// Byte `i`, the least significant first.
    fn byte(self, i: usize) -> u8;
    /// Bitwise or.
    fn or(self, other: Self) -> Self;
    /// Bitwise and.
    fn and(self, other: Self) -> Self;
    /// All bits set.
    fn ones() -> Self;
}

macro_rules! int_key {
    ($($t:ty),+) => {$(
        impl IntKey for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            fn byte(self, i: usize) -> u8 {
                // One 64-bit half, then a 64-bit shift: wasm has no 128-bit shift, and a
                // variable one on `u128` costs a branchy sequence per byte.
                let half = if i < 8 { self as u64 } else { (self as u128 >> 64) as u64 };
                (half >> (8 * (i % 8))) as u8
            }
            fn or(self, other: Self) -> Self {
                self | other
            }
            fn and(self, other: Self) -> Self {
                self & other
            }
            fn ones() -> Self {
                <$t>::MAX
            }
        }
    )+};
}
int_key!(u8, u16, u32, u64, u128);

/// Batches below this size are ranked by a comparison sort (a radix pass costs more).
const RADIX_MIN: usize = 256;

/// The scores of [`scores_by_key`], for unsigned integer keys, by a least-significant-digit
/// radix sort of the row indices. One pass finds the bytes in which the keys differ (the
/// or and the and of all keys); a byte position where every key agrees (the high bytes of a
/// fee, of an arrival sequence, of a small group number in a `u128`) costs no pass, so a
/// wide key costs what its varying bytes cost. Measured in wasm on a 10,000-row `ordering`
/// batch: see `plugins/README.md`.
pub fn scores_by_int_key<K: IntKey>(keys: impl IntoIterator<Item = K>) -> Vec<f32> {
    let keys: Vec<K> = keys.into_iter().collect();
    let n = keys.len();
    if n < RADIX_MIN {
        return scores_by_key(keys);
    }
    let (any, all) = keys
        .iter()
        .fold((keys[0], K::ones()), |(o, a), &k| (o.or(k), a.and(k)));
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut next = vec![0u32; n];
    for d in 0..K::BYTES {
        // Every key has the same byte here: the pass would not move anything.
        if any.byte(d) == all.byte(d) {
            continue;
        }
        let mut start = [0u32; 256];
        for &k in &keys {
            start[k.byte(d) as usize] += 1;
        }
        let mut at = 0u32;
        for s in start.iter_mut() {
            let count = *s;
            *s = at;
            at += count;
        }
        for &i in &order {
            let b = keys[i as usize].byte(d) as usize;
            next[start[b] as usize] = i;
            start[b] += 1;
        }
        std::mem::swap(&mut order, &mut next);
    }
    scores_from_order(&keys, &order)
}

/// Scores from the rows in key order: `N - (position of the row's first equal key)`.
fn scores_from_order<K: PartialEq + Copy>(keys: &[K], order: &[u32]) -> Vec<f32> {
    let n = order.len();
    let mut scores = vec![0.0; n];
    let mut group_start = 0;
    let mut previous: Option<K> = None;
    for (pos, &row) in order.iter().enumerate() {
        let k = keys[row as usize];
        if previous.is_some_and(|p| p != k) {
            group_start = pos;
        }
        previous = Some(k);
        scores[row as usize] = (n - group_start) as f32;
    }
    scores
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_with_shared_scores_for_equal_keys() {
        assert_eq!(scores_by_key([5u64, 1, 5, 3]), vec![2.0, 4.0, 2.0, 3.0]);
        assert_eq!(scores_by_int_key([5u64, 1, 5, 3]), vec![2.0, 4.0, 2.0, 3.0]);
        assert!(scores_by_int_key(Vec::<u64>::new()).is_empty());
        assert!(desc_then_asc(2.0, 9.0) < desc_then_asc(1.0, 0.0));
        assert!(desc_then_asc(1.0, 0.0) < desc_then_asc(1.0, 1.0));
        assert_eq!(ordered_bits(-0.0, 0.0), ordered_bits(0.0, 0.0));
        assert!(desc_then_asc(f32::NAN, 0.0) > desc_then_asc(-1e30, 0.0));
    }

    /// A small deterministic generator (the SDK has no dependencies).
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 11
    }

    #[test]
    fn the_radix_ranking_equals_the_comparison_ranking() {
        let mut st = 7;
        for n in [0usize, 1, 255, 256, 257, 1_000, 10_000] {
            // Keys as the examples build them: coarse fees (many ties), a sequence, a group.
            let rows: Vec<(f32, f32, u32)> = (0..n)
                .map(|i| {
                    let fee = (lcg(&mut st) % 40) as f32 * 0.25;
                    let seq = if lcg(&mut st).is_multiple_of(10) {
                        3.0
                    } else {
                        i as f32
                    };
                    (fee, seq, (lcg(&mut st) % 9) as u32)
                })
                .collect();
            let k64: Vec<u64> = rows.iter().map(|&(f, s, _)| desc_then_asc(f, s)).collect();
            assert_eq!(
                scores_by_int_key(k64.clone()),
                scores_by_key(k64),
                "u64, {n}"
            );
            let k128: Vec<u128> = rows
                .iter()
                .map(|&(f, s, g)| (u128::from(g) << 64) | u128::from(desc_then_asc(f, s)))
                .collect();
            assert_eq!(
                scores_by_int_key(k128.clone()),
                scores_by_key(k128),
                "u128, {n}"
            );
            let wide: Vec<u64> = (0..n).map(|_| lcg(&mut st)).collect();
            assert_eq!(
                scores_by_int_key(wide.clone()),
                scores_by_key(wide),
                "random, {n}"
            );
            let same = vec![42u32; n];
            assert!(scores_by_int_key(same).iter().all(|&x| x == n as f32));
        }
    }
}
