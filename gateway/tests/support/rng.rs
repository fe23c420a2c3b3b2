//! A seeded PRNG (xorshift64*): impairment tests print their seed and can be
//! replayed exactly with `DROPLINE_TEST_SEED`.

pub struct Rng(u64);

impl Rng {
    /// Seed from `DROPLINE_TEST_SEED` if set, else `default`; prints it.
    pub fn from_env_or(default: u64) -> Self {
        let seed = std::env::var("DROPLINE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default);
        eprintln!("rng seed {seed} (replay with DROPLINE_TEST_SEED={seed})");
        Self::new(seed)
    }

    pub fn new(seed: u64) -> Self {
        // xorshift must not start at 0.
        Self(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
}
