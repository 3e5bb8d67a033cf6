#!/usr/bin/env bash
# Server CPU per media second for one RTMP publish (issue #22: AAC copied, not
# re-encoded). Starts `onair serve` (embedded database, local store) with
# --passthrough-only, publishes SECONDS of 720p30 H.264 + AAC 48 kHz stereo
# with `ffmpeg -re -c copy -f flv`, and reads the server's user+system time
# from /proc/<pid>/stat before the publish and after the stream has ended.
#
#   tools/bench/rtmp-cpu.sh path/to/onair [SECONDS]
#
# Prints: cpu_s media_s cpu_per_media_s load_1min_at_start
set -euo pipefail
BIN=${1:?usage: rtmp-cpu.sh ONAIR_BIN [SECONDS]}
SECONDS_MEDIA=${2:-30}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
ffmpeg -hide_banner -v error -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -f lavfi -i sine=frequency=440:sample_rate=48000 -t "$SECONDS_MEDIA" \
  -pix_fmt yuv420p -c:v libx264 -preset veryfast -bf 2 -g 30 -b:v 2500k \
  -c:a aac -b:a 128k -ac 2 "$dir/in.mp4"
"$BIN" serve --addr 127.0.0.1:0 --rtmp-addr 127.0.0.1:0 --data-dir "$dir/data" \
  --passthrough-only >"$dir/log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q 'open http' "$dir/log" && grep -q 'rtmp://' "$dir/log" && break; sleep 0.1; done
url=$(grep -o 'open http://127.0.0.1:[0-9]*/' "$dir/log" | head -1 | cut -d' ' -f2)
rtmp=$(grep -o 'rtmp://127.0.0.1:[0-9]*/live' "$dir/log" | head -1)
origin=${url%/}
jar="$dir/cookies"
curl -sf -c "$jar" -H "origin: $origin" -H 'content-type: application/json' \
  -d '{"username":"bench","password":"correct horse battery"}' "${url}api/v1/auth/register" >/dev/null
id=$(curl -sf -b "$jar" -H "origin: $origin" -H 'content-type: application/json' \
  -d '{"title":"bench","visibility":"public"}' "${url}api/v1/streams" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
key=$(curl -sf -b "$jar" "${url}api/v1/streams/$id/encoder" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stream_key"])')
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
load=$(cut -d' ' -f1 /proc/loadavg)
t0=$(ticks)
ffmpeg -hide_banner -v error -re -i "$dir/in.mp4" -c copy -f flv "$rtmp/$key"
for _ in $(seq 300); do
  curl -sf -b "$jar" "${url}api/v1/streams/$id" | grep -q '"state":"ended"' && break
  sleep 0.1
done
t1=$(ticks)
awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$SECONDS_MEDIA" -v l="$load" \
  'BEGIN { c = (b - a) / hz; printf "%.2f %d %.4f %s\n", c, s, c / s, l }'
