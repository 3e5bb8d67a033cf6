//! Reading a live window: the master and media playlists (blocking
//! requests wait here for what they ask), init, parts and segments.

use super::*;

impl LiveStream {
    /// The master playlist, if the stream has produced one.
    pub fn master(&self) -> Option<String> {
        self.master
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A rendition's init segment by file name.
    pub fn init(&self, rendition: &str, name: &str) -> Option<Media> {
        let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
        r.get(rendition).and_then(|w| w.inits.get(name).cloned())
    }

    /// Waits (bounded) until `check` on the rendition's window returns `Some`.
    async fn wait_for<T>(
        &self,
        rendition: &str,
        what: &str,
        mut check: impl FnMut(&RenditionWindow) -> Result<Option<T>, OriginError>,
    ) -> Result<T, OriginError> {
        let mut rx = self.version.subscribe();
        let deadline = tokio::time::Instant::now() + self.max_wait;
        loop {
            {
                let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
                let w = r
                    .get(rendition)
                    .ok_or_else(|| OriginError::NotFound(format!("rendition {rendition}")))?;
                if let Some(v) = check(w)? {
                    return Ok(v);
                }
                rx.borrow_and_update();
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                // The stream was dropped: nothing more will come.
                Ok(Err(_)) => return Err(OriginError::NotFound(format!("rendition {rendition}"))),
                Err(_) => return Err(OriginError::Timeout(what.to_string())),
            }
        }
    }

    /// Answers a media playlist request, blocking per `_HLS_msn`/`_HLS_part`.
    pub async fn media_playlist(
        &self,
        rendition: &str,
        q: PlaylistQuery,
    ) -> Result<String, OriginError> {
        Ok(self
            .media_playlist_shared(rendition, q)
            .await?
            .text()
            .to_string())
    }

    /// [`LiveStream::media_playlist`], as the rendering every request for
    /// this version of the window shares (with its gzip, made once).
    ///
    /// - `_HLS_msn=M`: waits until segment `M` or a later one is complete.
    /// - `_HLS_msn=M&_HLS_part=N`: waits until part `M.N` or a later one is
    ///   listed; `N` past the final part of a complete segment `M` waits for
    ///   part 0 of segment `M + 1` (6.2.5.2).
    /// - More than two segments ahead: [`OriginError::BadRequest`], at once.
    /// - Once the playlist has `EXT-X-ENDLIST`, `_HLS_msn`, `_HLS_part` and
    ///   `_HLS_skip` are ignored and the whole playlist is the answer, at once
    ///   (6.2.5.1, 6.2.5.2: "A Server MUST ignore _HLS_msn and _HLS_part if
    ///   the Playlist contains an EXT-X-ENDLIST tag").
    pub async fn media_playlist_shared(
        &self,
        rendition: &str,
        q: PlaylistQuery,
    ) -> Result<Arc<Playlist>, OriginError> {
        let what = match (q.msn, q.part) {
            (Some(m), Some(p)) => format!("part {m}.{p}"),
            (Some(m), None) => format!("segment {m}"),
            _ => "the playlist".to_string(),
        };
        self.wait_for(rendition, &what, |w| {
            // A plain reload is answered once the playlist lists a whole
            // segment (or the stream ended): a plain HLS client needs one, and
            // the target duration is known by then. A blocking request names
            // a part it saw, so it is answered by the LL-HLS rules below.
            let ended = w.snapshot.as_ref().is_some_and(|s| s.ended);
            if !ended && q.part.is_some() && q.msn.is_none() {
                return Err(OriginError::BadRequest(
                    "_HLS_part requires _HLS_msn".into(),
                ));
            }
            let Some(snap) = w
                .snapshot
                .as_ref()
                .filter(|s| q.msn.is_some() || !s.segments.is_empty() || s.ended)
            else {
                return Ok(None);
            };
            if ended {
                return Ok(Some(()));
            }
            let Some(msn) = q.msn else {
                return Ok(Some(()));
            };
            let last = w.last_msn().unwrap_or(0);
            if msn > last.saturating_add(2) {
                return Err(OriginError::BadRequest(format!(
                    "_HLS_msn={msn} is more than two segments past the last one ({last})"
                )));
            }
            let ready = match q.part {
                Some(p) => snap.lists_part(msn, p),
                // Without _HLS_part: the segment must be complete.
                None => snap.segments.iter().any(|s| s.msn >= msn),
            };
            Ok(ready.then_some(()))
        })
        .await?;
        self.render_current(rendition, q.skip)
    }

    /// The rendition's playlist as it is now (at least as new as the state
    /// the caller waited for), rendered once per version.
    fn render_current(&self, rendition: &str, skip: bool) -> Result<Arc<Playlist>, OriginError> {
        let key = (rendition.to_string(), skip);
        let (version, mut snapshot, reports) = {
            let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
            let version = *self.version.borrow();
            if let Some((v, text)) = self
                .rendered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
            {
                if *v == version {
                    return Ok(text.clone());
                }
            }
            let snapshot = r
                .get(rendition)
                .and_then(|w| w.snapshot.clone())
                .ok_or_else(|| OriginError::NotFound(format!("rendition {rendition}")))?;
            (version, snapshot, reports_except(&r, rendition))
        };
        snapshot.reports = reports;
        let text = Arc::new(Playlist::new(playlist::render_media(
            &snapshot,
            MediaRequest { skip },
        )));
        let mut cache = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(&key) {
            Some((v, _)) if *v >= version => {}
            _ => {
                cache.insert(key, (version, text.clone()));
            }
        }
        Ok(text)
    }
}

fn reports_except(r: &BTreeMap<String, RenditionWindow>, rendition: &str) -> Vec<RenditionReport> {
    r.iter()
        .filter(|(name, _)| name.as_str() != rendition)
        .filter_map(|(name, w)| {
            let (msn, part) = w.snapshot.as_ref()?.last_part()?;
            Some(RenditionReport {
                uri: format!("../{name}/index.m3u8"),
                last_msn: msn,
                last_part: part as u64,
            })
        })
        .collect()
}

impl LiveStream {
    /// A part's bytes. A request for a part that is not published yet but is at
    /// most the next one (the preload hint) waits for it.
    pub async fn part(
        &self,
        rendition: &str,
        msn: u64,
        index: usize,
    ) -> Result<Media, OriginError> {
        self.wait_for(rendition, &format!("part {msn}.{index}"), |w| {
            if let Some(p) = w.parts.get(&(msn, index)) {
                return Ok(Some(p.media.clone()));
            }
            let snap = w.snapshot.as_ref();
            let next = snap.map(|s| s.next_part()).unwrap_or((0, 0));
            let hinted = (msn, index) == next || (msn == next.0 + 1 && index == 0);
            if !hinted || w.ended() {
                return Err(OriginError::NotFound(format!("part {msn}.{index}")));
            }
            Ok(None)
        })
        .await
    }

    /// Publishes the subtitle playlist with new segments; segments older than
    /// `oldest` (no longer listed) are dropped.
    pub fn publish_subtitles(&self, playlist: String, segments: Vec<(u64, Bytes)>, oldest: u64) {
        let mut s = self.subtitles.write().unwrap_or_else(|e| e.into_inner());
        let w = s.get_or_insert_with(SubtitleWindow::default);
        w.playlist = playlist;
        w.segments
            .extend(segments.into_iter().map(|(m, b)| (m, Media::new(b))));
        w.segments.retain(|m, _| *m >= oldest);
        drop(s);
        self.bump();
    }

    /// The subtitle playlist, if captions run for this stream.
    pub fn subtitle_playlist(&self) -> Option<String> {
        let s = self.subtitles.read().unwrap_or_else(|e| e.into_inner());
        s.as_ref().map(|w| w.playlist.clone())
    }

    /// A subtitle segment, if still in the window.
    pub fn subtitle_segment(&self, msn: u64) -> Option<Media> {
        let s = self.subtitles.read().unwrap_or_else(|e| e.into_inner());
        s.as_ref().and_then(|w| w.segments.get(&msn).cloned())
    }

    /// A complete segment's bytes, if still in the window.
    pub fn segment(&self, rendition: &str, msn: u64) -> Option<Media> {
        let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
        r.get(rendition)
            .and_then(|w| w.segments.get(&msn))
            .map(|s| s.media.clone())
    }

    /// A receiver that changes on every publish (for realtime features and benchmarks).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// The last published part of a rendition, `(msn, index)`.
    pub fn last_part(&self, rendition: &str) -> Option<(u64, usize)> {
        let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
        r.get(rendition)
            .and_then(|w| w.snapshot.as_ref()?.last_part())
    }

    /// One past the highest media sequence number published on any rendition
    /// (where a later session of the stream continues); `None` if nothing was.
    pub fn next_msn(&self) -> Option<u64> {
        let r = self.renditions.read().unwrap_or_else(|e| e.into_inner());
        r.values()
            .filter_map(|w| w.snapshot.as_ref()?.last_part().map(|(m, _)| m + 1))
            .max()
    }

    /// How many requests are waiting right now (for metrics and tests).
    pub fn waiters(&self) -> usize {
        self.version.receiver_count()
    }
}
