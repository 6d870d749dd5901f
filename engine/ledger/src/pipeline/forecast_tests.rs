//! Issue 16: the `batch_size` slot's `arrival_rate` feature is the forecast the node hands
//! the pipeline (`Pipeline::set_arrival_forecast`) while it is fresh, and the measured
//! arrival rate otherwise (no forecast, cleared, or expired). A unit test module of
//! `pipeline` (`cargo test -p aurigraph-ledger --lib forecast_tests`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::pipeline::{Pipeline, PipelineConfig, PipelineSlots};
use crate::workload::{Event, Workload};
use aurigraph_decision::host::{DecisionRecord, HostConfig};
use aurigraph_decision::metrics::EngineMetrics;
use aurigraph_decision::slot::batch_size::BatchSizeFeatures;

/// A pipeline whose `batch_size` decisions' `arrival_rate` inputs are recorded.
fn recorded(workload: &Workload) -> (Pipeline, Arc<Mutex<Vec<f32>>>) {
    let hosts = HostConfig {
        deadline: Some(Duration::from_secs(1)),
        ..HostConfig::default()
    };
    let slots = PipelineSlots::new(&hosts, &EngineMetrics::default()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    slots
        .batch_size
        .set_observer(Some(Arc::new(move |r: &DecisionRecord<'_>| {
            let row = r.input.row(0).expect("one row");
            let f = BatchSizeFeatures::from_row(row).expect("the contract's columns");
            sink.lock().unwrap().push(f.arrival_rate);
        })));
    let p = Pipeline::new(PipelineConfig::default(), slots, workload.genesis()).unwrap();
    (p, seen)
}

/// Submits `events` and produces blocks until the mempool is empty; returns the
/// `arrival_rate` of the decisions this took.
fn run(p: &Pipeline, seen: &Mutex<Vec<f32>>, events: &[Event]) -> Vec<f32> {
    let from = seen.lock().unwrap().len();
    let bytes: Vec<&[u8]> = events.iter().map(|e| e.bytes.as_slice()).collect();
    let accepted = p.submit(&bytes).iter().filter(|r| r.is_ok()).count();
    assert!(accepted > 0);
    while p.produce_block().unwrap().is_some() {}
    let rates = seen.lock().unwrap()[from..].to_vec();
    assert!(!rates.is_empty(), "no batch_size decision");
    rates
}

#[test]
fn batch_size_reads_the_forecast_while_it_is_fresh_and_the_measured_rate_otherwise() {
    let workload = Workload::preset("uniform", 16).unwrap();
    let events = workload.generate(800);
    let (p, seen) = recorded(&workload);
    let forecast = 1_234.5f32;

    // Off (no forecast): the measured rate, which is not the forecast.
    for r in run(&p, &seen, &events[..200]) {
        assert!(r.is_finite() && r >= 0.0);
        assert_ne!(r, forecast);
    }

    // On: every decision sees exactly the forecast.
    p.set_arrival_forecast(forecast, Duration::from_secs(60));
    for r in run(&p, &seen, &events[200..400]) {
        assert_eq!(r, forecast);
    }

    // A newer forecast replaces it.
    p.set_arrival_forecast(42.0, Duration::from_secs(60));
    for r in run(&p, &seen, &events[400..500]) {
        assert_eq!(r, 42.0);
    }

    // Cleared: the measured rate again.
    p.clear_arrival_forecast();
    for r in run(&p, &seen, &events[500..600]) {
        assert_ne!(r, 42.0);
    }

    // Expired: the measured rate again.
    p.set_arrival_forecast(forecast, Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(20));
    for r in run(&p, &seen, &events[600..700]) {
        assert_ne!(r, forecast);
    }

    // Not a rate (NaN, negative): ignored, the measured rate.
    p.set_arrival_forecast(f32::NAN, Duration::from_secs(60));
    p.set_arrival_forecast(-1.0, Duration::from_secs(60));
    for r in run(&p, &seen, &events[700..]) {
        assert!(r.is_finite() && r >= 0.0);
    }
}
