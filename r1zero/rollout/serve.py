"""``r1zero serve-rollouts``: a vLLM engine on its own devices behind a small HTTP API (FastAPI + uvicorn,
which vLLM installs), for ``--rollout.backend vllm-server --rollout.url http://HOST:PORT``.

    CUDA_VISIBLE_DEVICES=4,5,6,7 r1zero serve-rollouts --model Qwen/Qwen2.5-Math-7B --tensor-parallel 4
    r1zero serve-rollouts --model runs/x/checkpoints/step_000100 --devices 1 --port 8001

Endpoints (JSON unless said):

- ``GET /health``: model, dtype, vLLM version.
- ``POST /generate``: ``{"prompt_ids": [[int]], "sampling": {n, temperature, top_p, top_k,
  max_new_tokens, stop, seed}}`` -> ``{"groups": [[{"ids", "logprobs", "finish_reason"}]]}``, ``n`` per
  prompt; prompt ``i`` samples with seed ``seed + i``.
- ``POST /weights``: a safetensors-encoded bucket of whole decoder layers (``application/octet-stream``),
  loaded in place from memory; ``POST /weights/done`` after the last one (re-ties a tied head, drops the
  prefix cache).

One request runs at a time (a lock); the engine samples the union of its callers' requests one call at a
time. Bind to localhost or a private network: the API has no authentication.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations (``Request``, a
# local import) at definition time.
import argparse
import logging
import os
import threading
from typing import Any

__all__ = ["main", "make_app"]

logger = logging.getLogger(__name__)


def make_app(engine: Any, model: str) -> Any:
    """The FastAPI app serving ``engine`` (a ``r1zero.rollout.vllm.VLLMEngine``)."""
    from fastapi import FastAPI, Request

    from r1zero.rollout.base import SamplingParams
    from r1zero.rollout.vllm_server import decode_bucket

    app = FastAPI(title="r1zero rollouts")
    lock = threading.Lock()

    @app.get("/health")
    def health() -> dict[str, Any]:
        import vllm

        dtype = str(engine.dtype).removeprefix("torch.") if engine.dtype is not None else "auto"
        return {"ok": True, "model": model, "dtype": dtype, "vllm": vllm.__version__}

    @app.post("/generate")
    def generate(body: dict[str, Any]) -> dict[str, Any]:
        fields = dict(body["sampling"])
        fields["stop"] = tuple(fields.get("stop", ()))
        sampling = SamplingParams(**fields)
        with lock:
            groups = engine.generate([list(map(int, p)) for p in body["prompt_ids"]], sampling)
        return {
            "groups": [
                [
                    {"ids": r.completion_ids, "logprobs": r.logprobs, "finish_reason": r.finish_reason}
                    for r in g
                ]
                for g in groups
            ]
        }

    @app.post("/weights")
    async def weights(request: Request) -> dict[str, Any]:
        bucket = decode_bucket(await request.body())
        with lock:
            engine.load_stream(bucket)
        return {"loaded": len(bucket)}

    @app.post("/weights/done")
    def weights_done() -> dict[str, Any]:
        with lock:
            engine.finish_load()
        return {"ok": True}

    return app


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="r1zero serve-rollouts", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="Hugging Face model directory or hub id (starting weights)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: localhost only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--devices", default="", help="GPUs to use, e.g. '4,5,6,7' (sets CUDA_VISIBLE_DEVICES)")
    p.add_argument("--tensor-parallel", type=int, default=1, help="GPUs per engine")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.devices:
        os.environ["CUDA_VISIBLE_DEVICES"] = args.devices  # before vLLM or torch touch CUDA
    import uvicorn
    from transformers import AutoTokenizer

    from r1zero.rollout.vllm import VLLMEngine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    engine = VLLMEngine(
        None,
        tokenizer,
        model_path=args.model,
        gpu_memory_utilization=args.gpu_memory_utilization,
        tensor_parallel_size=args.tensor_parallel,
        max_model_len=args.max_model_len,
        dtype=args.dtype,
        sleep=False,
        seed=args.seed,
    )
    try:
        uvicorn.run(make_app(engine, args.model), host=args.host, port=args.port, log_level="warning")
    finally:
        engine.close()
    return 0
