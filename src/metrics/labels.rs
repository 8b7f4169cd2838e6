//! Label values of every metric: closed enums, so no label ever carries a user, a path, a token or
//! anything a request chose. `Fixed` holds one metric per value, made at start: recording indexes
//! an array (no map, no lock), which keeps the Check hot path lock-free.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// A closed set of label values under one label name.
pub trait LabelValue: Copy + 'static {
    const NAME: &'static str;
    const ALL: &'static [Self];
    fn label(self) -> &'static str;
    /// Its position in `ALL`.
    fn index(self) -> usize;
}

/// One metric per value of `L`, created up front. Cheap to clone (clones share the metrics).
#[derive(Debug, Clone)]
pub struct Fixed<L, M> {
    metrics: Arc<[(L, M)]>,
}

impl<L: LabelValue, M: Default> Default for Fixed<L, M> {
    fn default() -> Self {
        Fixed {
            metrics: L::ALL.iter().map(|value| (*value, M::default())).collect(),
        }
    }
}

impl<L: LabelValue, M> Fixed<L, M> {
    pub fn get(&self, value: L) -> &M {
        &self.metrics[value.index()].1
    }
}

impl<L: LabelValue + std::fmt::Debug + Send + Sync, M: EncodeMetric + TypedMetric> EncodeMetric
    for Fixed<L, M>
{
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (value, metric) in self.metrics.iter() {
            metric.encode(encoder.encode_family(&[(L::NAME, value.label())])?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// Implements `LabelValue` for a field-less enum from its label name and `variant => "value"`
/// pairs, in declaration order.
macro_rules! label_values {
    ($type:ty, $name:literal, { $($variant:ident => $value:literal),+ $(,)? }) => {
        impl $crate::metrics::labels::LabelValue for $type {
            const NAME: &'static str = $name;
            const ALL: &'static [Self] = &[$(<$type>::$variant),+];
            fn label(self) -> &'static str {
                match self {
                    $(<$type>::$variant => $value),+
                }
            }
            fn index(self) -> usize {
                self as usize
            }
        }
    };
}
pub(crate) use label_values;
