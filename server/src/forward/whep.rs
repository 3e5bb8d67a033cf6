//! WHEP between nodes: a relay's offer POSTed to the stream's owner, and
//! its `DELETE` (`crate::webrtc`'s relays, cluster mode). Same client,
//! owner lookup, edge header and errors as the LL-HLS forwarding.

use super::*;

/// What the owner answered a relay's WHEP offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhepPosted {
    /// `201`: the SDP answer and the resource's path.
    Answer {
        /// The owner's SDP answer.
        answer: String,
        /// The owner's `Location` (a path under `/api/v1/streams/{id}/whep/`).
        location: String,
    },
    /// A refusal (4xx, or 503): its status and JSON body.
    Refused {
        /// The owner's status code.
        status: u16,
        /// The owner's body.
        body: Bytes,
    },
}

/// The largest SDP answer read from an owner.
const MAX_SDP_BYTES: usize = 64 * 1024;

impl Forwarder {
    /// The stream's owner (another node), from its lease.
    pub async fn owner_of(&self, stream: &str) -> Result<Owner, ForwardError> {
        self.owner(stream).await
    }

    /// POSTs a WHEP `offer` for `stream` to `owner`, with `token` (a
    /// playback token this node signs) as `Authorization: Bearer`.
    pub async fn whep_offer(
        &self,
        owner: &Owner,
        stream: &str,
        offer: String,
        token: &str,
    ) -> Result<WhepPosted, ForwardError> {
        let unreachable = |message: String| owner.unreachable(message);
        let url = owner.url_of(&format!("/api/v1/streams/{stream}/whep"))?;
        let res = self
            .client
            .post(&url)
            .header(EDGE_HEADER, self.config.node_id.as_str())
            .header(reqwest::header::CONTENT_TYPE, "application/sdp")
            .bearer_auth(token)
            .body(offer)
            .send()
            .await
            .map_err(|e| {
                self.forget(stream);
                unreachable(e.without_url().to_string())
            })?;
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if res
            .content_length()
            .is_some_and(|n| n > MAX_SDP_BYTES as u64)
        {
            return Err(unreachable(format!("an answer over {MAX_SDP_BYTES} bytes")));
        }
        let body = res
            .bytes()
            .await
            .map_err(|e| unreachable(e.without_url().to_string()))?;
        if body.len() > MAX_SDP_BYTES {
            return Err(unreachable(format!("an answer over {MAX_SDP_BYTES} bytes")));
        }
        match status {
            201 => {
                let prefix = format!("/api/v1/streams/{stream}/whep/");
                let location = location
                    .filter(|l| {
                        l.strip_prefix(&prefix).is_some_and(|r| {
                            !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric())
                        })
                    })
                    .ok_or_else(|| unreachable("an answer without a WHEP Location".into()))?;
                let answer = String::from_utf8(body.to_vec())
                    .map_err(|_| unreachable("an answer that is not text".into()))?;
                Ok(WhepPosted::Answer { answer, location })
            }
            400..=499 | 503 => Ok(WhepPosted::Refused { status, body }),
            _ => {
                self.forget(stream);
                Err(unreachable(format!("status {status}")))
            }
        }
    }

    /// `DELETE`s a relay's resource `location` (a path) at `owner`, as far
    /// as it goes.
    pub async fn whep_delete(&self, owner: &Owner, location: &str) {
        // No URL: nothing to reach (and no owner error to count: the
        // offer already failed on it).
        if owner.url.is_empty() {
            return;
        }
        let Ok(url) = owner.url_of(location) else {
            return;
        };
        let res = self
            .client
            .delete(&url)
            .header(EDGE_HEADER, self.config.node_id.as_str())
            .send()
            .await;
        if let Err(e) = res {
            tracing::debug!(error = %e.without_url(), "the relay's DELETE at the owner failed");
        }
    }
}
