use aurigraph_ledger::workload::{Label, Preset};
use aurigraph_training::data::Traffic;
use aurigraph_training::metrics::{auc, false_positive_rate, precision_recall};
use aurigraph_training::onnx::eval::{Tensor, run};
fn main() {
    let model = std::fs::read("models/anomaly-logistic/model.onnx").unwrap();
    for (p, n) in [
        (Preset::SpamAttack, 30_000),
        (Preset::AdversarialSpam, 60_000),
        (Preset::Uniform, 20_000),
    ] {
        let t = Traffic::admit(p.config(1001), n).unwrap();
        for (name, lo, hi) in [
            ("first 10 s", 0.0, 10.0),
            ("after 10 s", 10.0, 1e9),
            ("all", 0.0, 1e9),
        ] {
            let rows: Vec<_> = t
                .rows
                .iter()
                .filter(|r| {
                    let s = r.at.as_secs_f64();
                    s >= lo && s < hi
                })
                .collect();
            let data: Vec<f32> = rows.iter().flat_map(|r| r.features.to_row()).collect();
            let out = run(
                &model,
                &Tensor {
                    shape: vec![rows.len(), 8],
                    data,
                },
            )
            .unwrap()
            .data;
            let s: Vec<f64> = out.iter().map(|&v| v as f64).collect();
            let y: Vec<bool> = rows
                .iter()
                .map(|r| matches!(r.label, Label::Spam | Label::Oversized))
                .collect();
            let (pr, rc) = precision_recall(&y, &s, 0.5);
            println!(
                "{p} {name}: rows {} auc {:.3} fpr@0.5 {:.4} fpr@0.8 {:.4} recall@0.5 {:.3} prec {:.3}",
                rows.len(),
                auc(&y, &s),
                false_positive_rate(&y, &s, 0.5),
                false_positive_rate(&y, &s, 0.8),
                rc,
                pr
            );
        }
    }
}
