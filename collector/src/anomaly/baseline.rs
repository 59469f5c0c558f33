//! An exponentially weighted baseline of one metric of one series: mean and variance updated
//! once per time bucket, so recent buckets weigh more and a bucket `half_life` buckets old
//! weighs half as much as the newest. The z-score of a new value is measured against the
//! baseline as it stood before that value (West's incremental formulas).

use serde::{Deserialize, Serialize};

/// Mean, variance and sample count of one metric.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub mean: f64,
    pub variance: f64,
    /// Buckets seen (saturating).
    pub samples: u32,
}

impl Baseline {
    /// The weight of a new bucket for a half-life in buckets (`1 - 2^(-1/h)`).
    pub fn alpha(half_life_buckets: f64) -> f64 {
        if half_life_buckets <= 0.0 {
            return 1.0;
        }
        1.0 - (-std::f64::consts::LN_2 / half_life_buckets).exp()
    }

    /// Adds one bucket's value with weight `alpha`. The first value sets the mean.
    pub fn update(&mut self, value: f64, alpha: f64) {
        if !value.is_finite() {
            return;
        }
        if self.samples == 0 {
            self.mean = value;
            self.variance = 0.0;
        } else {
            let diff = value - self.mean;
            let increment = alpha * diff;
            self.mean += increment;
            self.variance = (1.0 - alpha) * (self.variance + diff * increment);
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// Moves the mean towards `value` with weight `alpha`, leaving the variance (for values
    /// judged anomalous: they should not widen the spread they are judged by).
    pub fn shift_mean(&mut self, value: f64, alpha: f64) {
        if value.is_finite() && self.samples > 0 {
            self.mean += alpha * (value - self.mean);
            self.samples = self.samples.saturating_add(1);
        }
    }

    /// Standard deviation.
    pub fn std_dev(&self) -> f64 {
        self.variance.max(0.0).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converges_to_the_mean_and_spread_of_a_steady_series() {
        let mut b = Baseline::default();
        let alpha = Baseline::alpha(30.0);
        // alternating 90 / 110: mean 100, standard deviation 10
        for i in 0..2000 {
            b.update(if i % 2 == 0 { 90.0 } else { 110.0 }, alpha);
        }
        assert!((b.mean - 100.0).abs() < 1.0, "{b:?}");
        assert!((b.std_dev() - 10.0).abs() < 1.0, "{b:?}");
        assert_eq!(b.samples, 2000);
    }

    #[test]
    fn half_life_means_half_weight() {
        // a step from 0 to 1: after one half-life the mean is halfway
        let alpha = Baseline::alpha(10.0);
        let mut b = Baseline::default();
        b.update(0.0, alpha);
        for _ in 0..10 {
            b.update(1.0, alpha);
        }
        assert!((b.mean - 0.5).abs() < 1e-9, "{b:?}");
        assert_eq!(Baseline::alpha(0.0), 1.0);
    }

    #[test]
    fn ignores_values_that_are_not_numbers() {
        let mut b = Baseline::default();
        b.update(f64::NAN, 0.1);
        b.update(f64::INFINITY, 0.1);
        assert_eq!(b, Baseline::default());
    }
}
