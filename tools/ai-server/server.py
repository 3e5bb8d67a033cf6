"""A small OpenAI-compatible server with real local models, for Onair's tests.

- POST /v1/audio/transcriptions: Whisper base (faster-whisper, CTranslate2, int8 on CPU).
- POST /v1/chat/completions: SmolLM2-135M-Instruct (GGUF, through cyllama's llama.cpp).
- The Azure OpenAI forms of both, under /openai/deployments/{deployment}/...?api-version=...
- GET /v1/models, GET /health.

Answers use the real OpenAI response shapes (with `usage`), so the Rust
client (async-openai) is tested with its typed calls. Errors use OpenAI's
`{"error": {"message", "type", "code"}}` shape. With --api-key, requests
need `Authorization: Bearer <key>` (or Azure's `api-key` header).

It listens on 127.0.0.1 only and prints `ready <port>` once the models are
loaded. See ../../docs/testing.md for why these models.
"""

import argparse
import io
import sys
import threading
import time
import uuid

import uvicorn
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse


def error(status, message, kind="invalid_request_error", code=None):
    return JSONResponse(
        status_code=status,
        content={"error": {"message": message, "type": kind, "param": None, "code": code}},
    )


def build_app(args):
    from faster_whisper import WhisperModel

    whisper = WhisperModel(args.whisper, device="cpu", compute_type="int8", local_files_only=True)
    llm = None
    if args.llm:
        from cyllama.api import LLM

        llm = LLM(args.llm)
    # One request at a time per model: both engines are CPU-bound.
    whisper_lock = threading.Lock()
    llm_lock = threading.Lock()
    stats = {"transcriptions": 0, "completions": 0}

    app = FastAPI()

    @app.middleware("http")
    async def auth(request: Request, call_next):
        if args.api_key and request.url.path not in ("/health",):
            bearer = request.headers.get("authorization", "")
            key = request.headers.get("api-key", "")
            if bearer != f"Bearer {args.api_key}" and key != args.api_key:
                return error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        return await call_next(request)

    @app.get("/health")
    def health():
        return {"status": "ok", **stats}

    @app.get("/v1/models")
    def models():
        data = [{"id": args.whisper_name, "object": "model", "created": 0, "owned_by": "local"}]
        if llm is not None:
            data.append({"id": args.llm_name, "object": "model", "created": 0, "owned_by": "local"})
        return {"object": "list", "data": data}

    def transcribe(body: bytes, language, prompt, response_format, model):
        if not body:
            return error(400, "The audio file is empty.")
        try:
            with whisper_lock:
                segments, info = whisper.transcribe(
                    io.BytesIO(body),
                    language=language or None,
                    initial_prompt=prompt or None,
                    beam_size=1,
                    vad_filter=False,
                )
                segments = list(segments)
        except Exception as e:  # noqa: BLE001 - report any decoder failure as a 400
            return error(400, f"Could not decode the audio: {e}")
        stats["transcriptions"] += 1
        text = "".join(s.text for s in segments).strip()
        seconds = max(1, int(round(info.duration)))
        if response_format == "text":
            return PlainTextResponse(text)
        if response_format == "verbose_json":
            return {
                "task": "transcribe",
                "language": info.language,
                "duration": info.duration,
                "text": text,
                "segments": [
                    {
                        "id": i,
                        "seek": 0,
                        "start": s.start,
                        "end": s.end,
                        "text": s.text,
                        "tokens": list(s.tokens),
                        "temperature": s.temperature,
                        "avg_logprob": s.avg_logprob,
                        "compression_ratio": s.compression_ratio,
                        "no_speech_prob": s.no_speech_prob,
                    }
                    for i, s in enumerate(segments)
                ],
                "usage": {"type": "duration", "seconds": seconds},
            }
        return {"text": text, "usage": {"type": "duration", "seconds": seconds}}

    async def transcription_route(file, model, language, prompt, response_format):
        body = await file.read()
        return transcribe(body, language, prompt, response_format or "json", model)

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(
        file: UploadFile = File(...),
        model: str = Form(...),
        language: str = Form(None),
        prompt: str = Form(None),
        response_format: str = Form(None),
        temperature: float = Form(None),
    ):
        return await transcription_route(file, model, language, prompt, response_format)

    @app.post("/openai/deployments/{deployment}/audio/transcriptions")
    async def azure_transcriptions(
        deployment: str,
        request: Request,
        file: UploadFile = File(...),
        model: str = Form(None),
        language: str = Form(None),
        prompt: str = Form(None),
        response_format: str = Form(None),
    ):
        if not request.query_params.get("api-version"):
            return error(404, "Resource not found (missing api-version).", code="404")
        return await transcription_route(file, model or deployment, language, prompt, response_format)

    def complete(payload, model_name):
        if llm is None:
            return error(404, "No chat model is loaded.", code="model_not_found")
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "'messages' must be a non-empty array.")
        from cyllama.api import GenerationConfig

        max_tokens = int(payload.get("max_completion_tokens") or payload.get("max_tokens") or 256)
        config = GenerationConfig(max_tokens=max_tokens, temperature=float(payload.get("temperature") or 0.2))
        started = time.time()
        with llm_lock:
            text = llm.chat(
                [{"role": m.get("role", "user"), "content": str(m.get("content", ""))} for m in messages],
                config=config,
            )
        stats["completions"] += 1
        text = str(text).strip()
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(text.split())
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(started),
            "model": model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        payload = await request.json()
        return complete(payload, payload.get("model") or args.llm_name)

    @app.post("/openai/deployments/{deployment}/chat/completions")
    async def azure_chat(deployment: str, request: Request):
        if not request.query_params.get("api-version"):
            return error(404, "Resource not found (missing api-version).", code="404")
        payload = await request.json()
        return complete(payload, deployment)

    return app


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--whisper", required=True, help="faster-whisper model directory")
    p.add_argument("--whisper-name", default="whisper-1")
    p.add_argument("--llm", default="", help="GGUF chat model (optional)")
    p.add_argument("--llm-name", default="smollm2-135m-instruct")
    p.add_argument("--api-key", default="")
    args = p.parse_args()
    app = build_app(args)
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")
    server = uvicorn.Server(config)

    def announce():
        while not server.started:
            time.sleep(0.05)
        print(f"ready {args.port}", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
    sys.exit(0)


if __name__ == "__main__":
    main()
