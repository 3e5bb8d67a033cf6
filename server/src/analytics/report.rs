//! Adding minute rows up into what the API and the dashboard show.

use std::collections::BTreeMap;

use app::analytics::{Count, Minute, QualitySummary, StreamAnalytics, WATCH_BUCKETS};

use super::hist::Hist;
use super::tracker::{city_count, ratio, sorted, MinuteRow};

/// Totals over a stream's minutes (rows of one minute may come in several
/// parts, e.g. before and after a restart; they are added together).
pub fn fold(rows: &[MinuteRow], into: &mut StreamAnalytics) {
    let mut by_minute: BTreeMap<i64, Vec<&MinuteRow>> = BTreeMap::new();
    for r in rows {
        by_minute.entry(r.minute_ms).or_default().push(r);
    }
    let mut countries = BTreeMap::new();
    let mut cities = BTreeMap::new();
    let mut renditions = BTreeMap::new();
    let (mut ttff, mut latency) = (Hist::default(), Hist::default());
    let mut watch = vec![0u64; WATCH_BUCKETS.len()];
    let mut q = QualitySummary::default();
    let (mut watch_ms, mut bitrate_sum, mut bitrate_n) = (0u64, 0u64, 0u64);
    let mut minutes = Vec::with_capacity(by_minute.len());
    for (at_ms, parts) in by_minute {
        let mut m = Minute {
            at_ms,
            ..Default::default()
        };
        let (mut sum, mut samples, mut m_watch) = (0u64, 0u64, 0u64);
        let (mut m_ttff, mut m_latency) = (Hist::default(), Hist::default());
        for r in parts {
            m.peak = m.peak.max(r.peak);
            sum += r.viewer_sum;
            samples += r.samples;
            m.new_viewers += r.new_viewers;
            m_watch += r.watch_ms;
            m.stalls += u32::try_from(r.stalls).unwrap_or(u32::MAX);
            m.stall_ms += r.stall_ms;
            m_ttff.merge(&r.detail.ttff);
            m_latency.merge(&r.detail.latency);
            let d = &r.detail;
            for (k, n) in &d.countries {
                *countries.entry(k.clone()).or_insert(0) += n;
            }
            for (k, n) in &d.cities {
                *cities.entry(k.clone()).or_insert(0) += n;
            }
            for (k, n) in &d.renditions {
                *renditions.entry(k.clone()).or_insert(0) += n;
            }
            for (i, n) in d.watch.iter().enumerate() {
                if let Some(w) = watch.get_mut(i) {
                    *w += n;
                }
            }
            bitrate_sum += d.bitrate_kbps_sum;
            bitrate_n += d.bitrate_samples;
            q.switches += d.switches;
            q.errors += d.errors;
            q.stalls += r.stalls;
            q.stall_ms += r.stall_ms;
        }
        m.avg = if samples == 0 {
            0.0
        } else {
            sum as f64 / samples as f64
        };
        m.watch_seconds = m_watch / 1000;
        m.ttff_p50 = m_ttff.percentile(50);
        m.latency_p50 = m_latency.percentile(50);
        m.latency_p90 = m_latency.percentile(90);
        ttff.merge(&m_ttff);
        latency.merge(&m_latency);
        watch_ms += m_watch;
        into.peak_viewers = into.peak_viewers.max(m.peak);
        into.unique_viewers += u64::from(m.new_viewers);
        minutes.push(m);
    }
    into.watch_seconds = watch_ms / 1000;
    q.ttff_ms = ttff.summary();
    q.latency_ms = latency.summary();
    q.stall_ratio = ratio(q.stall_ms, watch_ms.max(q.stall_ms));
    q.avg_bitrate = (bitrate_n > 0).then(|| bitrate_sum * 1000 / bitrate_n);
    q.renditions = sorted(renditions.into_iter().map(|(k, n)| plain(k, n)));
    into.quality = q;
    into.countries = sorted(countries.into_iter().map(|(k, n)| plain(k, n)));
    into.cities = sorted(cities.iter().map(|(k, n)| city_count(k, *n)));
    into.watch_time = WATCH_BUCKETS
        .iter()
        .zip(watch)
        .map(|((_, label), n)| plain(label.to_string(), n))
        .collect();
    into.minutes = minutes;
}

fn plain(key: String, n: u64) -> Count {
    Count {
        key,
        region: None,
        city: None,
        n,
    }
}
