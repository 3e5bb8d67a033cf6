#!/usr/bin/env python3
"""A WHIP publisher and a WHEP player that Onair did not write: aiortc (PyPI).

--mode whip (the default): sends a media file, decoded by FFmpeg (PyAV) and
encoded again by aiortc (H.264 with libx264, or VP8 with --video-codec VP8;
Opus), to a WHIP endpoint (RFC 9725), for the given number of seconds, then
ends the session with DELETE.

--mode whep: offers to receive video and audio (recvonly) from a WHEP
endpoint, decodes what arrives for the given number of seconds (from the
first frame on, at most twice that in all), then ends the session with
DELETE. --token is the playback token (sent as Authorization: Bearer).

Used by server/tests/it/whip.rs and whep.rs; installed by
tools/whip-peer/setup.sh. Only loopback candidates are gathered and no STUN
server is asked, so every packet stays on 127.0.0.1.

Prints one JSON line: {"status", "location", "connected", "delete_status"},
and in whep mode also "video_frames", "width", "height", "distinct_pictures"
(decoded pictures whose luma differs from the one before), "audio_frames",
"audio_rate", "audio_loud" (audio frames that are not silence).
With --offer-only, prints the offer's SDP and exits (nothing is sent).
"""

import argparse
import asyncio
import hashlib
import json
import sys
import time
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


class Received:
    """What a WHEP player decoded."""

    def __init__(self):
        self.video_frames = 0
        self.width = 0
        self.height = 0
        self.distinct = 0
        self.last_luma = None
        self.audio_frames = 0
        self.audio_rate = 0
        self.audio_loud = 0
        self.first = asyncio.Event()

    async def video(self, track):
        while True:
            frame = await track.recv()
            self.first.set()
            self.video_frames += 1
            self.width, self.height = frame.width, frame.height
            luma = hashlib.sha1(bytes(frame.planes[0])).digest()
            if luma != self.last_luma:
                self.distinct += 1
                self.last_luma = luma

    async def audio(self, track):
        while True:
            frame = await track.recv()
            self.audio_frames += 1
            self.audio_rate = frame.sample_rate
            raw = bytes(frame.planes[0])
            if any(b not in (0, 0xFF) for b in raw[:: max(1, len(raw) // 64)]):
                self.audio_loud += 1

    def report(self):
        return {
            "video_frames": self.video_frames,
            "width": self.width,
            "height": self.height,
            "distinct_pictures": self.distinct,
            "audio_frames": self.audio_frames,
            "audio_rate": self.audio_rate,
            "audio_loud": self.audio_loud,
        }


async def play(args):
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected = asyncio.Event()
    got = Received()
    tasks = []

    @pc.on("connectionstatechange")
    async def on_state():
        if pc.connectionState == "connected":
            connected.set()

    @pc.on("track")
    def on_track(track):
        run = got.video if track.kind == "video" else got.audio
        tasks.append(asyncio.ensure_future(run(track)))

    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
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
        start = time.monotonic()
        try:
            await asyncio.wait_for(got.first.wait(), timeout=args.seconds)
        except asyncio.TimeoutError:
            pass
        left = args.seconds - (time.monotonic() - start)
        await asyncio.sleep(max(args.seconds / 2, left))
    base = args.url.split("/api/")[0]
    if location:
        status, _, _ = request("DELETE", base + location, None)
        result["delete_status"] = status
    for t in tasks:
        t.cancel()
    await pc.close()
    result.update(got.report())
    print(json.dumps(result), flush=True)
    return 0 if result["connected"] else 1


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the WHIP endpoint")
    ap.add_argument("--token", default="", help="the bearer token (stream key)")
    ap.add_argument("--mode", default="whip", choices=["whip", "whep"])
    ap.add_argument("--file", help="media to send (whip)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--offer-only", action="store_true")
    ap.add_argument("--video-codec", default="H264", choices=["H264", "VP8"])
    args = ap.parse_args()
    if args.mode == "whep":
        return await play(args)
    if not args.file:
        ap.error("--file is required with --mode whip")

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
