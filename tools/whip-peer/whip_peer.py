#!/usr/bin/env python3
"""A WHIP publisher that Onair did not write: aiortc (PyPI) sends a media
file, decoded by FFmpeg (PyAV) and encoded again by aiortc (H.264 with
libx264, or VP8 with --video-codec VP8; Opus), to a WHIP endpoint (RFC 9725), for the given number of
seconds, then ends the session with DELETE.

Used by server/tests/it/whip.rs; installed by tools/whip-peer/setup.sh.
Only loopback candidates are gathered and no STUN server is asked, so every
packet stays on 127.0.0.1.

Prints one JSON line: {"status", "location", "connected", "delete_status"}.
With --offer-only, prints the offer's SDP and exits (nothing is sent).
"""

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request

import aioice.ice

# Loopback only: the test's server listens on 127.0.0.1.
aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=False: ["127.0.0.1"]

from aiortc import (  # noqa: E402
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaPlayer  # noqa: E402


def request(method, url, token, body=None, content_type=None):
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return res.status, dict(res.headers), res.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the WHIP endpoint")
    ap.add_argument("--token", default="", help="the bearer token (stream key)")
    ap.add_argument("--file", required=True, help="media to send")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--offer-only", action="store_true")
    ap.add_argument("--video-codec", default="H264", choices=["H264", "VP8"])
    args = ap.parse_args()

    player = MediaPlayer(args.file)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    async def on_state():
        if pc.connectionState == "connected":
            connected.set()

    video = pc.addTransceiver(player.video, direction="sendonly")
    wanted = [
        c
        for c in RTCRtpSender.getCapabilities("video").codecs
        if c.mimeType == f"video/{args.video_codec}"
    ]
    video.setCodecPreferences(wanted)
    if player.audio is not None:
        pc.addTransceiver(player.audio, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    if args.offer_only:
        sys.stdout.write(pc.localDescription.sdp)
        await pc.close()
        return 0

    status, headers, body = request(
        "POST", args.url, args.token, pc.localDescription.sdp.encode(), "application/sdp"
    )
    location = headers.get("Location") or headers.get("location")
    result = {"status": status, "location": location, "connected": False}
    if status != 201:
        result["body"] = body
        print(json.dumps(result), flush=True)
        await pc.close()
        return 1
    await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    try:
        await asyncio.wait_for(connected.wait(), timeout=20)
        result["connected"] = True
    except asyncio.TimeoutError:
        pass
    if result["connected"]:
        await asyncio.sleep(args.seconds)
    base = args.url.split("/api/")[0]
    status, _, _ = request("DELETE", base + location, args.token)
    result["delete_status"] = status
    await pc.close()
    print(json.dumps(result), flush=True)
    return 0 if result["connected"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
