//! [`WorkloadRng`]: the workload generator's own, fixed random number generator.

use rand::RngCore;

/// The workload generator's random number generator, fixed forever so that a
/// seed names the same workload in every build (rand's `SmallRng` may change between
/// releases).
///
/// xoshiro256** (Blackman and Vigna), seeded by a BLAKE3 key derivation from the workload
/// seed and a purpose string. Not cryptographic; it only shapes traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadRng {
    s: [u64; 4],
}

impl WorkloadRng {
    /// A generator for `purpose` (a domain-separation string) under `seed`.
    pub fn derive(seed: u64, purpose: &str) -> Self {
        let key = blake3::derive_key(
            &format!("aurigraph workload v1 rng {purpose}"),
            &seed.to_le_bytes(),
        );
        let mut s = [0u64; 4];
        for (i, w) in s.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&key[8 * i..8 * i + 8]);
            *w = u64::from_le_bytes(b);
        }
        if s == [0; 4] {
            s[0] = 1; // the all-zero state is a fixed point
        }
        Self { s }
    }
}

impl RngCore for WorkloadRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn stable_and_separated() {
        let mut a = WorkloadRng::derive(1, "x");
        let mut b = WorkloadRng::derive(1, "x");
        let mut c = WorkloadRng::derive(1, "y");
        let va: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let vb: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let vc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(va, vb);
        assert_ne!(va, vc);
        let mean = (0..10_000).map(|_| a.random::<f64>()).sum::<f64>() / 10_000.0;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
    }
}
