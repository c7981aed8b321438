//! Comparing two `reproduce` rows of one metric.

use infersim::calibrate::Residual;

/// Asserts that `a` and `b` hold the same measured and predicted figures, bit for bit.
pub fn assert_same_figures(a: &Residual, b: &Residual) {
    assert_eq!(
        a.measured.to_bits(),
        b.measured.to_bits(),
        "{} measured",
        b.metric
    );
    assert_eq!(
        a.predicted.to_bits(),
        b.predicted.to_bits(),
        "{} predicted",
        b.metric
    );
}
