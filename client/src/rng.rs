//! Randomness of the client (producer ids, retry jitter, round-robin starts): the OS
//! generator in real runs, the simulator's seeded generator under madsim, so a simulated
//! run replays exactly from its seed.

/// A uniformly random u64.
pub(crate) fn random_u64() -> u64 {
    #[cfg(madsim)]
    {
        madsim::rand::random()
    }
    #[cfg(not(madsim))]
    {
        rand::random()
    }
}

/// A uniformly random number in `[0, 1)`.
pub(crate) fn random_unit() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn unit_values_stay_in_range() {
        for _ in 0..1000 {
            let x = super::random_unit();
            assert!((0.0..1.0).contains(&x), "{x}");
        }
    }
}
