//! LL-HLS by the letter (draft-pantos-hls-rfc8216bis) on a real published
//! stream: `onair publish --realtime` of an FFmpeg-made H.264 file with
//! B-frames plus AAC, followed over HTTP the way a low-latency player does
//! (blocking reload of the hinted part, the hinted part fetched at the same
//! time, every newly listed URI fetched at once).

use std::collections::{BTreeSet, HashSet};
use std::io::Read as _;
use std::time::Duration;

use crate::support::TestApp;

/// 720p30 H.264 with B-frames (x264 veryfast), a keyframe a second, and AAC.
const B_FRAMES: &[&str] = &[
    "-pix_fmt",
    "yuv420p",
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-g",
    "30",
    "-c:a",
    "aac",
    "-shortest",
];

/// A media playlist as far as this test reads it.
#[derive(Debug, Default)]
struct Listing {
    /// `(msn, index)` of every `EXT-X-PART`.
    parts: Vec<(u64, usize)>,
    /// Complete segments, with their number of parts where listed.
    segments: Vec<u64>,
    hint: Option<(u64, usize)>,
    endlist: bool,
    skip: bool,
}

fn part_of(uri: &str) -> Option<(u64, usize)> {
    let (m, p) = uri.strip_suffix(".m4s")?.split_once('.')?;
    Some((m.parse().ok()?, p.parse().ok()?))
}

fn quoted_uri(line: &str) -> Option<&str> {
    line.split("URI=\"").nth(1)?.split('"').next()
}

fn parse(text: &str) -> Listing {
    let mut l = Listing::default();
    for line in text.lines() {
        if line.starts_with("#EXT-X-PART:") {
            l.parts
                .push(quoted_uri(line).and_then(part_of).expect("part URI"));
        } else if line.starts_with("#EXT-X-PRELOAD-HINT:") {
            l.hint = quoted_uri(line).and_then(part_of);
        } else if line == "#EXT-X-ENDLIST" {
            l.endlist = true;
        } else if line.starts_with("#EXT-X-SKIP:") {
            l.skip = true;
        } else if let Some(msn) = line.strip_suffix(".m4s").filter(|_| !line.starts_with('#')) {
            l.segments.push(msn.parse().expect("segment"));
        }
    }
    l
}

/// A GET with `Accept-Encoding: gzip`: status, headers, and the body
/// (decompressed when it came compressed).
async fn get(app: &TestApp, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let res = app
        .http
        .get(url)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.bytes().await.expect("body").to_vec();
    let gzip = headers.get("content-encoding").is_some_and(|v| v == "gzip");
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    } else {
        body
    };
    (status, headers, body)
}

/// What following one rendition to its end saw.
#[derive(Debug, Default)]
struct Followed {
    /// Playlists received.
    playlists: usize,
    /// Preload hints that named the part published next, and those that did not.
    hints_right: usize,
    hints_wrong: Vec<(u64, usize)>,
    /// Segment boundaries seen (a segment's part 0 after the first), and
    /// those whose part 0 a hint had named.
    boundaries: usize,
    boundaries_hinted: usize,
    /// GETs of the hinted part that did not answer 200.
    hinted_gets_failed: Vec<((u64, usize), u16)>,
    /// Listed URIs that could not be fetched the moment they were listed.
    listed_but_missing: Vec<(String, u16)>,
    /// Blocking requests answered without the part they asked for (or, past
    /// the end of a segment, the next segment's part 0).
    early_answers: Vec<(u64, usize)>,
    /// Playlist answers that were not gzip, or had no `Vary`.
    not_gzipped: usize,
    /// Blocking requests asked again after a 503.
    retries: usize,
}

/// Follows `rendition` of stream `id` as a low-latency player does, until
/// `EXT-X-ENDLIST`.
async fn follow(app: &TestApp, id: &str, rendition: &str) -> Followed {
    let base = app.url(&format!("/live/{id}/{rendition}/"));
    let mut f = Followed::default();
    // The first playlist: wait until the rendition has one (a stream that
    // never gets one fails here instead of hanging).
    let mut tries = 0;
    let mut text = loop {
        let (status, _, body) = get(app, &format!("{base}index.m3u8")).await;
        if status == 200 {
            break String::from_utf8(body).expect("utf8");
        }
        tries += 1;
        assert!(tries < 1000, "{base}index.m3u8 never answered: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut seen: HashSet<String> = HashSet::new();
    // Every part any playlist listed, and every hint with the parts listed
    // when it was given.
    let mut all_parts: BTreeSet<(u64, usize)> = BTreeSet::new();
    let mut hints: Vec<(u64, usize)> = Vec::new();
    loop {
        let l = parse(&text);
        f.playlists += 1;
        all_parts.extend(l.parts.iter().copied());
        // Every URI listed for the first time is fetched at once.
        let uris = l
            .parts
            .iter()
            .map(|(m, p)| format!("{m}.{p}.m4s"))
            .chain(l.segments.iter().map(|m| format!("{m}.m4s")));
        let fresh: Vec<String> = uris.filter(|u| seen.insert(u.clone())).collect();
        for uri in fresh {
            let (status, _, _) = get(app, &format!("{base}{uri}")).await;
            if status != 200 {
                f.listed_but_missing.push((uri, status));
            }
        }
        if l.endlist {
            break;
        }
        let hint = l.hint.expect("a live playlist has a preload hint");
        hints.push(hint);
        // Block on the playlist that lists the hinted part, and fetch the
        // hinted part meanwhile.
        let playlist_url = format!("{base}index.m3u8?_HLS_msn={}&_HLS_part={}", hint.0, hint.1);
        let part_url = format!("{base}{}.{}.m4s", hint.0, hint.1);
        let ((mut status, mut headers, mut body), (mut part_status, _, _)) =
            tokio::join!(get(app, &playlist_url), get(app, &part_url));
        // A part that takes longer than the bounded wait (the ladder behind
        // real time on a busy machine) is a 503: ask again, as players do.
        while status == 503 || part_status == 503 {
            f.retries += 1;
            assert!(f.retries < 50, "{playlist_url} keeps timing out");
            if status == 503 {
                (status, headers, body) = get(app, &playlist_url).await;
            }
            if part_status == 503 {
                part_status = get(app, &part_url).await.0;
            }
        }
        assert_eq!(status, 200, "{playlist_url}");
        if headers.get("content-encoding").is_none_or(|v| v != "gzip")
            || headers.get("vary").is_none_or(|v| v != "accept-encoding")
        {
            f.not_gzipped += 1;
        }
        text = String::from_utf8(body).expect("utf8");
        let next = parse(&text);
        if next.endlist && !next.parts.contains(&hint) {
            // The stream ended before the hinted part was made.
            hints.pop();
        }
        // The answer holds the part asked for, or the stream ended.
        if !next.endlist && !next.parts.contains(&hint) && !next.parts.contains(&(hint.0 + 1, 0)) {
            f.early_answers.push(hint);
        }
        if part_status != 200 && !next.endlist {
            f.hinted_gets_failed.push((hint, part_status));
        }
    }
    let hinted: HashSet<(u64, usize)> = hints.iter().copied().collect();
    let first = all_parts.first().map(|p| p.0).unwrap_or(0);
    for &(msn, index) in &all_parts {
        if index == 0 && msn > first {
            f.boundaries += 1;
            f.boundaries_hinted += usize::from(hinted.contains(&(msn, 0)));
        }
    }
    // A hint is right when the part it names was published (listed later).
    for hint in hints {
        if all_parts.contains(&hint) {
            f.hints_right += 1;
        } else {
            f.hints_wrong.push(hint);
        }
    }
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_b_frame_stream_followed_like_a_player_keeps_the_ll_hls_rules() {
    follow_a_published_stream(false).await;
}

/// The same with the ladder: 720p passed through, 480p and 360p encoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ladder_every_rendition_keeps_the_ll_hls_rules() {
    follow_a_published_stream(true).await;
}

async fn follow_a_published_stream(ladder: bool) {
    let app = TestApp::start(|c| c.live.passthrough_only = !ladder).await;
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("b-frames.mp4");
    onair_server::media::testsrc::av("1280x720", 10, B_FRAMES, file.to_str().expect("utf8 path"))
        .expect("test media");
    let probe = onair_server::media::testsrc::ffprobe_json(&[
        "-select_streams",
        "v",
        "-show_entries",
        "stream=has_b_frames",
        file.to_str().expect("utf8"),
    ])
    .expect("ffprobe");
    assert_ne!(
        probe["streams"][0]["has_b_frames"], 0,
        "the source has B-frames: {probe}"
    );

    let publisher = tokio::process::Command::new(env!("CARGO_BIN_EXE_onair"))
        .args([
            "publish",
            "--server",
            &format!("http://{}", app.addr),
            "--stream",
            &id,
            "--token",
            &token,
            "--realtime",
            "--chunk-ms",
            "100",
        ])
        .arg(&file)
        .output();
    let renditions: &[&str] = if ladder {
        &["720p", "480p", "360p", "audio"]
    } else {
        &["720p", "audio"]
    };
    let followers = futures::future::join_all(renditions.iter().map(|r| follow(&app, &id, r)));
    let (out, followed) = tokio::join!(publisher, followers);
    let out = out.expect("onair publish runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let followed: Vec<(&str, Followed)> = renditions.iter().copied().zip(followed).collect();
    for (name, f) in &followed {
        eprintln!(
            "{name}: {} playlists; hints {} right, {} wrong; segment boundaries {}, hinted {}; \
             hinted GETs failed {}; listed but missing {}; blocking answers without the part {}; \
             not gzip {}; 503s asked again {}",
            f.playlists,
            f.hints_right,
            f.hints_wrong.len(),
            f.boundaries,
            f.boundaries_hinted,
            f.hinted_gets_failed.len(),
            f.listed_but_missing.len(),
            f.early_answers.len(),
            f.not_gzipped,
            f.retries,
        );
    }
    // Every rule is checked and every broken one named, so one run shows
    // all that fail.
    let mut broken: Vec<String> = Vec::new();
    let mut check = |ok: bool, rule: String| {
        if !ok {
            broken.push(rule);
        }
    };
    for (name, f) in &followed {
        // 4.4.5.3: the hint names the URI that is added to the playlist next.
        check(
            f.hints_right > 20,
            format!("{name}: few hints followed: {f:?}"),
        );
        check(
            f.hints_wrong.is_empty(),
            format!("{name}: hints that never came: {:?}", f.hints_wrong),
        );
        // (A player that falls a part behind skips a hint; most boundaries
        // were seen coming.)
        check(
            2 * f.boundaries_hinted > f.boundaries,
            format!(
                "{name}: {} of {} segment boundaries hinted",
                f.boundaries_hinted, f.boundaries
            ),
        );
        // 6.2.6: a hinted resource can be requested, and is answered once it exists.
        check(
            f.hinted_gets_failed.is_empty(),
            format!("{name}: hinted GETs failed: {:?}", f.hinted_gets_failed),
        );
        // 6.2.1: media is available when the playlist lists it.
        check(
            f.listed_but_missing.is_empty(),
            format!("{name}: listed but missing: {:?}", f.listed_but_missing),
        );
        // 6.2.5.2: a blocking request returns the part it asked for.
        check(
            f.early_answers.is_empty(),
            format!("{name}: answered without the part: {:?}", f.early_answers),
        );
        // 6.2.1 / B.1: playlists come gzip-compressed.
        check(
            f.not_gzipped == 0,
            format!("{name}: {} playlists not gzip", f.not_gzipped),
        );
    }

    // After EXT-X-ENDLIST the delivery directives are ignored (6.2.5): the
    // whole playlist, at once, even for a far-ahead or delta request.
    let base = app.url(&format!("/live/{id}/720p/index.m3u8"));
    let (_, _, full) = get(&app, &base).await;
    let full = String::from_utf8(full).expect("utf8");
    assert!(parse(&full).endlist, "{full}");
    for query in [
        "?_HLS_msn=100000",
        "?_HLS_msn=3&_HLS_part=99",
        "?_HLS_skip=YES",
    ] {
        let (status, _, body) = get(&app, &format!("{base}{query}")).await;
        let text = String::from_utf8(body).expect("utf8");
        let l = parse(&text);
        check(
            status == 200 && text == full && l.endlist && !l.skip && l.hint.is_none(),
            format!("after ENDLIST, {query} is not the whole playlist: {status} {text}"),
        );
    }

    // Errors are not for caches to keep: a part that does not exist yet, a
    // malformed directive, an unknown rendition, and the playback gate's own
    // refusal of a stream that does not exist.
    for path in [
        format!("{id}/720p/99999.0.m4s"),
        format!("{id}/720p/index.m3u8?_HLS_msn=x"),
        format!("{id}/nope/index.m3u8"),
        "nosuchstream/master.m3u8".to_string(),
    ] {
        let (status, headers, _) = get(&app, &app.url(&format!("/live/{path}"))).await;
        assert!(status >= 400, "{path}: {status}");
        let cache = headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap_or(""));
        check(
            cache == Some("no-store"),
            format!("{status} for {path} has Cache-Control {cache:?}"),
        );
    }

    // FRAME-RATE is the media's 30 fps on every variant (encoded rungs too),
    // not 1000/33 from millisecond timestamps.
    let (_, _, master) = get(&app, &app.url(&format!("/live/{id}/master.m3u8"))).await;
    let master = String::from_utf8(master).expect("utf8");
    let variants: Vec<&str> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    assert_eq!(variants.len(), renditions.len() - 1, "{master}");
    for v in variants {
        check(
            v.contains(",FRAME-RATE=30.000,"),
            format!("not FRAME-RATE=30.000: {v}"),
        );
    }
    assert!(broken.is_empty(), "broken rules:\n{}", broken.join("\n"));
}
