//! The feature schemas of the five slots (contract v1; `leader_health` schema v2), as plain
//! constants.
//!
//! This file mirrors the node's slot contracts (`engine/decision/src/slot/`): names and order of the
//! columns, schema versions and output ranges. The node's test suite includes this very file
//! and checks it against the engine's contracts, so the two cannot drift apart.

/// Length of a slot's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputLen {
    /// One value per input row.
    PerRow,
    /// A fixed number of values.
    Fixed(usize),
}

/// `ordering`: Orders the transactions of a batch: one score per row, higher first.
pub mod ordering {
    use super::OutputLen;

    /// Feature-schema version this SDK was written for.
    pub const SCHEMA_VERSION: u32 = 1;
    /// Number of features per row.
    pub const FEATURE_COUNT: usize = 9;
    /// Feature names, in column order.
    pub const FEATURES: [&str; FEATURE_COUNT] = [
        "fee",
        "fee_per_byte",
        "size_bytes",
        "arrival_seq",
        "sender_pending",
        "nonce_gap",
        "accounts_touched",
        "hot_account_share",
        "age_ms",
    ];
    /// Length of the output.
    pub const OUTPUT_LEN: OutputLen = OutputLen::PerRow;
    /// Smallest valid output value.
    pub const OUTPUT_MIN: f32 = -1e9;
    /// Largest valid output value.
    pub const OUTPUT_MAX: f32 = 1e9;
    /// Column of `fee`.
    pub const FEE: usize = 0;
    /// Column of `fee_per_byte`.
    pub const FEE_PER_BYTE: usize = 1;
    /// Column of `size_bytes`.
    pub const SIZE_BYTES: usize = 2;
    /// Column of `arrival_seq`.
    pub const ARRIVAL_SEQ: usize = 3;
    /// Column of `sender_pending`.
    pub const SENDER_PENDING: usize = 4;
    /// Column of `nonce_gap`.
    pub const NONCE_GAP: usize = 5;
    /// Column of `accounts_touched`.
    pub const ACCOUNTS_TOUCHED: usize = 6;
    /// Column of `hot_account_share`.
    pub const HOT_ACCOUNT_SHARE: usize = 7;
    /// Column of `age_ms`.
    pub const AGE_MS: usize = 8;
}

/// `batch_size`: Chooses the size of the next batch: one value, the target size.
pub mod batch_size {
    use super::OutputLen;

    /// Feature-schema version this SDK was written for.
    pub const SCHEMA_VERSION: u32 = 1;
    /// Number of features per row.
    pub const FEATURE_COUNT: usize = 8;
    /// Feature names, in column order.
    pub const FEATURES: [&str; FEATURE_COUNT] = [
        "queue_depth",
        "current_batch_size",
        "last_block_latency_ms",
        "target_latency_ms",
        "arrival_rate",
        "min_batch_size",
        "max_batch_size",
        "conflict_rate",
    ];
    /// Length of the output.
    pub const OUTPUT_LEN: OutputLen = OutputLen::Fixed(1);
    /// Smallest valid output value.
    pub const OUTPUT_MIN: f32 = 0.0;
    /// Largest valid output value.
    pub const OUTPUT_MAX: f32 = 1e7;
    /// Column of `queue_depth`.
    pub const QUEUE_DEPTH: usize = 0;
    /// Column of `current_batch_size`.
    pub const CURRENT_BATCH_SIZE: usize = 1;
    /// Column of `last_block_latency_ms`.
    pub const LAST_BLOCK_LATENCY_MS: usize = 2;
    /// Column of `target_latency_ms`.
    pub const TARGET_LATENCY_MS: usize = 3;
    /// Column of `arrival_rate`.
    pub const ARRIVAL_RATE: usize = 4;
    /// Column of `min_batch_size`.
    pub const MIN_BATCH_SIZE: usize = 5;
    /// Column of `max_batch_size`.
    pub const MAX_BATCH_SIZE: usize = 6;
    /// Column of `conflict_rate`.
    pub const CONFLICT_RATE: usize = 7;
}

/// `leader_health`: Predicts the leader's failure probability: one value in 0..=1.
pub mod leader_health {
    use super::OutputLen;

    /// Feature-schema version this SDK was written for.
    pub const SCHEMA_VERSION: u32 = 2;
    /// Number of features per row.
    pub const FEATURE_COUNT: usize = 18;
    /// Feature names, in column order.
    pub const FEATURES: [&str; FEATURE_COUNT] = [
        "heartbeat_interval_ms",
        "election_timeout_ms",
        "ms_since_last_heartbeat",
        "missed_heartbeats",
        "rtt_mean_ms",
        "rtt_p99_ms",
        "rtt_trend",
        "replication_lag_entries",
        "window_ticks",
        "heartbeat_jitter_ms",
        "fsync_ms_mean",
        "fsync_ms_trend",
        "apply_ms_mean",
        "cpu_utilisation",
        "tick_lag_ms",
        "rss_growth_mb_s",
        "mempool_depth",
        "self_scored",
    ];
    /// Length of the output.
    pub const OUTPUT_LEN: OutputLen = OutputLen::Fixed(1);
    /// Smallest valid output value.
    pub const OUTPUT_MIN: f32 = 0.0;
    /// Largest valid output value.
    pub const OUTPUT_MAX: f32 = 1.0;
    /// Column of `heartbeat_interval_ms`.
    pub const HEARTBEAT_INTERVAL_MS: usize = 0;
    /// Column of `election_timeout_ms`.
    pub const ELECTION_TIMEOUT_MS: usize = 1;
    /// Column of `ms_since_last_heartbeat`.
    pub const MS_SINCE_LAST_HEARTBEAT: usize = 2;
    /// Column of `missed_heartbeats`.
    pub const MISSED_HEARTBEATS: usize = 3;
    /// Column of `rtt_mean_ms`.
    pub const RTT_MEAN_MS: usize = 4;
    /// Column of `rtt_p99_ms`.
    pub const RTT_P99_MS: usize = 5;
    /// Column of `rtt_trend`.
    pub const RTT_TREND: usize = 6;
    /// Column of `replication_lag_entries`.
    pub const REPLICATION_LAG_ENTRIES: usize = 7;
    /// Column of `window_ticks`.
    pub const WINDOW_TICKS: usize = 8;
    /// Column of `heartbeat_jitter_ms`.
    pub const HEARTBEAT_JITTER_MS: usize = 9;
    /// Column of `fsync_ms_mean`.
    pub const FSYNC_MS_MEAN: usize = 10;
    /// Column of `fsync_ms_trend`.
    pub const FSYNC_MS_TREND: usize = 11;
    /// Column of `apply_ms_mean`.
    pub const APPLY_MS_MEAN: usize = 12;
    /// Column of `cpu_utilisation`.
    pub const CPU_UTILISATION: usize = 13;
    /// Column of `tick_lag_ms`.
    pub const TICK_LAG_MS: usize = 14;
    /// Column of `rss_growth_mb_s`.
    pub const RSS_GROWTH_MB_S: usize = 15;
    /// Column of `mempool_depth`.
    pub const MEMPOOL_DEPTH: usize = 16;
    /// Column of `self_scored`.
    pub const SELF_SCORED: usize = 17;
}

/// `anomaly`: Scores transactions at admission: one score per row in 0..=1.
pub mod anomaly {
    use super::OutputLen;

    /// Feature-schema version this SDK was written for.
    pub const SCHEMA_VERSION: u32 = 1;
    /// Number of features per row.
    pub const FEATURE_COUNT: usize = 8;
    /// Feature names, in column order.
    pub const FEATURES: [&str; FEATURE_COUNT] = [
        "size_bytes",
        "sender_rate",
        "sender_rate_z",
        "size_z",
        "fee_per_byte",
        "fee_z",
        "nonce_gap",
        "sender_age_s",
    ];
    /// Length of the output.
    pub const OUTPUT_LEN: OutputLen = OutputLen::PerRow;
    /// Smallest valid output value.
    pub const OUTPUT_MIN: f32 = 0.0;
    /// Largest valid output value.
    pub const OUTPUT_MAX: f32 = 1.0;
    /// Column of `size_bytes`.
    pub const SIZE_BYTES: usize = 0;
    /// Column of `sender_rate`.
    pub const SENDER_RATE: usize = 1;
    /// Column of `sender_rate_z`.
    pub const SENDER_RATE_Z: usize = 2;
    /// Column of `size_z`.
    pub const SIZE_Z: usize = 3;
    /// Column of `fee_per_byte`.
    pub const FEE_PER_BYTE: usize = 4;
    /// Column of `fee_z`.
    pub const FEE_Z: usize = 5;
    /// Column of `nonce_gap`.
    pub const NONCE_GAP: usize = 6;
    /// Column of `sender_age_s`.
    pub const SENDER_AGE_S: usize = 7;
}

/// `demand`: Forecasts demand: 8 values, the arrival rate of the next intervals (tx/s).
pub mod demand {
    use super::OutputLen;

    /// Feature-schema version this SDK was written for.
    pub const SCHEMA_VERSION: u32 = 1;
    /// Number of features per row.
    pub const FEATURE_COUNT: usize = 32;
    /// Feature names, in column order.
    pub const FEATURES: [&str; FEATURE_COUNT] = [
        "rate_t_minus_31",
        "rate_t_minus_30",
        "rate_t_minus_29",
        "rate_t_minus_28",
        "rate_t_minus_27",
        "rate_t_minus_26",
        "rate_t_minus_25",
        "rate_t_minus_24",
        "rate_t_minus_23",
        "rate_t_minus_22",
        "rate_t_minus_21",
        "rate_t_minus_20",
        "rate_t_minus_19",
        "rate_t_minus_18",
        "rate_t_minus_17",
        "rate_t_minus_16",
        "rate_t_minus_15",
        "rate_t_minus_14",
        "rate_t_minus_13",
        "rate_t_minus_12",
        "rate_t_minus_11",
        "rate_t_minus_10",
        "rate_t_minus_9",
        "rate_t_minus_8",
        "rate_t_minus_7",
        "rate_t_minus_6",
        "rate_t_minus_5",
        "rate_t_minus_4",
        "rate_t_minus_3",
        "rate_t_minus_2",
        "rate_t_minus_1",
        "rate_t_minus_0",
    ];
    /// Length of the output.
    pub const OUTPUT_LEN: OutputLen = OutputLen::Fixed(8);
    /// Smallest valid output value.
    pub const OUTPUT_MIN: f32 = 0.0;
    /// Largest valid output value.
    pub const OUTPUT_MAX: f32 = 1e9;
    /// Number of past intervals in the row (oldest first; the last column is the latest).
    pub const WINDOW: usize = 32;
    /// Number of future intervals to forecast.
    pub const HORIZON: usize = 8;
}
