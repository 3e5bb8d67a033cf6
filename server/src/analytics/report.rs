//! Adding minute rows up into what the API and the dashboard show. The rows
//! may be stored ones of any size (older versions stored unclamped beacons),
//! so every sum saturates ([`add`]).

use std::collections::BTreeMap;

use app::analytics::{Count, Minute, QualitySummary, StreamAnalytics, WATCH_BUCKETS};

use super::hist::Hist;
use super::tracker::{add, add_count, city_count, ratio, sorted, MinuteRow};

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
        let (mut m_new, mut m_stalls) = (0u64, 0u64);
        for r in parts {
            m.peak = m.peak.max(r.peak);
            add(&mut sum, r.viewer_sum);
            add(&mut samples, r.samples);
            add(&mut m_new, u64::from(r.new_viewers));
            add(&mut m_watch, r.watch_ms);
            add(&mut m_stalls, r.stalls);
            add(&mut m.stall_ms, r.stall_ms);
            m_ttff.merge(&r.detail.ttff);
            m_latency.merge(&r.detail.latency);
            let d = &r.detail;
            for (k, n) in &d.countries {
                add_count(&mut countries, k.clone(), *n);
            }
            for (k, n) in &d.cities {
                add_count(&mut cities, k.clone(), *n);
            }
            for (k, n) in &d.renditions {
                add_count(&mut renditions, k.clone(), *n);
            }
            for (w, n) in watch.iter_mut().zip(&d.watch) {
                add(w, *n);
            }
            add(&mut bitrate_sum, d.bitrate_kbps_sum);
            add(&mut bitrate_n, d.bitrate_samples);
            add(&mut q.switches, d.switches);
            add(&mut q.errors, d.errors);
            add(&mut q.stalls, r.stalls);
            add(&mut q.stall_ms, r.stall_ms);
        }
        m.new_viewers = u32::try_from(m_new).unwrap_or(u32::MAX);
        m.stalls = u32::try_from(m_stalls).unwrap_or(u32::MAX);
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
        add(&mut watch_ms, m_watch);
        into.peak_viewers = into.peak_viewers.max(m.peak);
        add(&mut into.unique_viewers, m_new);
        minutes.push(m);
    }
    into.watch_seconds = watch_ms / 1000;
    q.ttff_ms = ttff.summary();
    q.latency_ms = latency.summary();
    q.stall_ratio = ratio(q.stall_ms, watch_ms.max(q.stall_ms));
    q.avg_bitrate = (bitrate_n > 0).then(|| {
        u64::try_from(u128::from(bitrate_sum) * 1000 / u128::from(bitrate_n)).unwrap_or(u64::MAX)
    });
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
