//! Evaluation metrics computed on held-out data: regression (R², MAE, MAPE), binary
//! classification (ROC AUC, precision and recall at a threshold) and ranking (pairwise
//! agreement).

/// Coefficient of determination of `pred` against `truth` (1 is perfect, 0 is as good as
/// predicting the mean); 0 when `truth` has no variance.
pub fn r2(truth: &[f64], pred: &[f64]) -> f64 {
    let n = truth.len().max(1) as f64;
    let mean = truth.iter().sum::<f64>() / n;
    let ss_tot: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    let ss_res: f64 = truth.iter().zip(pred).map(|(t, p)| (t - p).powi(2)).sum();
    if ss_tot > 0.0 {
        1.0 - ss_res / ss_tot
    } else {
        0.0
    }
}

/// Mean absolute error.
pub fn mae(truth: &[f64], pred: &[f64]) -> f64 {
    truth
        .iter()
        .zip(pred)
        .map(|(t, p)| (t - p).abs())
        .sum::<f64>()
        / truth.len().max(1) as f64
}

/// Mean absolute percentage error, in percent, over the rows whose truth is at least `floor`
/// (small truths would dominate it otherwise).
pub fn mape(truth: &[f64], pred: &[f64], floor: f64) -> f64 {
    let (sum, n) = truth
        .iter()
        .zip(pred)
        .filter(|(t, _)| t.abs() >= floor)
        .fold((0.0, 0usize), |(s, n), (t, p)| {
            (s + ((t - p) / t).abs(), n + 1)
        });
    100.0 * sum / n.max(1) as f64
}

/// Area under the ROC curve of `scores` for the binary `labels` (the probability that a
/// random positive scores above a random negative, ties counting one half); 0.5 when one
/// class is missing.
pub fn auc(labels: &[bool], scores: &[f64]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties (Mann-Whitney U).
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return 0.5;
    }
    (rank_sum_pos - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Precision and recall of the rule `score >= threshold` (precision is 1 when nothing is
/// flagged, recall 1 when there are no positives).
pub fn precision_recall(labels: &[bool], scores: &[f64], threshold: f64) -> (f64, f64) {
    let (mut tp, mut fp, mut fneg) = (0usize, 0usize, 0usize);
    for (&l, &s) in labels.iter().zip(scores) {
        match (s >= threshold, l) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fneg += 1,
            (false, false) => {}
        }
    }
    let precision = if tp + fp == 0 {
        1.0
    } else {
        tp as f64 / (tp + fp) as f64
    };
    let recall = if tp + fneg == 0 {
        1.0
    } else {
        tp as f64 / (tp + fneg) as f64
    };
    (precision, recall)
}

/// Share of the pairs `(i, j)` within each group with different `truth` whose `pred` orders
/// them the same way (a tie in `pred` counts one half). `groups` are index ranges into both
/// slices (e.g. one batch each); every pair inside a group is compared.
pub fn pairwise_agreement(truth: &[f64], pred: &[f64], groups: &[std::ops::Range<usize>]) -> f64 {
    let (mut agree, mut total) = (0.0f64, 0u64);
    for g in groups {
        for i in g.clone() {
            for j in i + 1..g.end {
                let dt = truth[i] - truth[j];
                if dt == 0.0 {
                    continue;
                }
                total += 1;
                let dp = pred[i] - pred[j];
                if dp == 0.0 {
                    agree += 0.5;
                } else if (dp > 0.0) == (dt > 0.0) {
                    agree += 1.0;
                }
            }
        }
    }
    if total == 0 {
        1.0
    } else {
        agree / total as f64
    }
}

/// Share of negatives with `score >= threshold` (0 when there are no negatives).
pub fn false_positive_rate(labels: &[bool], scores: &[f64], threshold: f64) -> f64 {
    let neg = labels.iter().filter(|&&l| !l).count();
    if neg == 0 {
        return 0.0;
    }
    let fp = labels
        .iter()
        .zip(scores)
        .filter(|&(&l, &s)| !l && s >= threshold)
        .count();
    fp as f64 / neg as f64
}

/// The best recall of a rule `score >= t` whose false-positive rate is at most `max_fpr`
/// (the ROC curve read at that rate; ties are flagged together, so a threshold never splits
/// equal scores): `(recall, threshold)`; recall 0 and threshold infinity when no threshold
/// qualifies.
pub fn recall_at_fpr(labels: &[bool], scores: &[f64], max_fpr: f64) -> (f64, f64) {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best = (0.0, f64::INFINITY);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        if neg > 0 && fp as f64 > max_fpr * neg as f64 {
            break;
        }
        best = (
            if pos == 0 {
                1.0
            } else {
                tp as f64 / pos as f64
            },
            s,
        );
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_metrics() {
        let t = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(r2(&t, &t), 1.0);
        assert_eq!(r2(&t, &[2.5; 4]), 0.0);
        assert_eq!(mae(&t, &[2.0, 2.0, 3.0, 5.0]), 0.5);
        assert!((mape(&[100.0, 0.1], &[110.0, 5.0], 1.0) - 10.0).abs() < 1e-12);
    }

    #[test]
    fn classification_metrics() {
        let l = [false, false, true, true];
        assert_eq!(auc(&l, &[0.1, 0.2, 0.8, 0.9]), 1.0);
        assert_eq!(auc(&l, &[0.9, 0.8, 0.2, 0.1]), 0.0);
        assert_eq!(auc(&l, &[0.5; 4]), 0.5);
        assert_eq!(auc(&l, &[0.1, 0.6, 0.4, 0.9]), 0.75);
        assert_eq!(precision_recall(&l, &[0.1, 0.6, 0.4, 0.9], 0.5), (0.5, 0.5));
        assert_eq!(precision_recall(&l, &[0.1, 0.2, 0.3, 0.4], 0.5), (1.0, 0.0));
    }

    #[test]
    fn ranking_metric() {
        let t = [3.0, 2.0, 1.0, 5.0];
        let first = std::iter::once(0..3).collect::<Vec<_>>();
        assert_eq!(pairwise_agreement(&t, &t, &[0..3, 3..4]), 1.0);
        assert_eq!(pairwise_agreement(&t, &[1.0, 2.0, 3.0, 0.0], &first), 0.0);
        assert_eq!(pairwise_agreement(&t, &[1.0, 1.0, 1.0, 0.0], &first), 0.5);
    }

    #[test]
    fn recall_at_a_false_positive_budget() {
        let labels = [true, true, false, true, false, false];
        let scores = [0.9, 0.8, 0.7, 0.6, 0.2, 0.1];
        // One negative above 0.6: 1/3 false positives buys all three positives.
        assert_eq!(recall_at_fpr(&labels, &scores, 0.34), (1.0, 0.6));
        assert_eq!(recall_at_fpr(&labels, &scores, 0.0), (2.0 / 3.0, 0.8));
        assert!((false_positive_rate(&labels, &scores, 0.65) - 1.0 / 3.0).abs() < 1e-12);
    }
}
