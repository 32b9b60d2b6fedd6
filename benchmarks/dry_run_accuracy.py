"""How near ``caredio run --dry-run``'s typical estimate comes to the calls and tokens a run makes.

Per trial: a real run (real graph, FAKE stub server in this process, FAKE hash embedder) into an
empty ``--out``, then the dry run of the same plan (its typical figures drawn from that run),
then the real run of that plan: printed is estimate / actual for calls and tokens, with the
least and most. The stub's J is noise, so samples stop on a plateau of J after ``min_rounds``
at random: the spread over trials is what the estimate is up against.

    python benchmarks/dry_run_accuracy.py --samples-per-topic 6 --min-rounds 2 --trials 5

Figures are printed, never asserted (tests/run/test_dry_run.py asserts within 25%).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the FAKE stub server lives with the test support, not the package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--samples-per-topic", type=int, default=6)
    parser.add_argument("--min-rounds", type=int, default=2)
    parser.add_argument("--max-rounds", type=int, default=4)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    from caredio.run.estimate import dry_run
    from caredio.run.runner import start_run
    from testing.jobs import HashEmbedder, stub_settings, trace_totals
    from testing.stub_server import StubOpenAIServer

    plan = {"cultures": ("Japan", "China", "South Korea"), "topics": ("food_drink", "gift_giving"),
            "samples_per_topic": args.samples_per_topic}
    loop = {"min_rounds": args.min_rounds, "patience": 1, "epsilon": 0.0}
    embedder = HashEmbedder()
    print("| trial | calls: least / actual / most | typical / actual calls | typical / actual tokens |")
    print("|---|---|---|---|")
    for trial in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp, StubOpenAIServer(varied_text=True) as stub:
            out = str(Path(tmp) / "runs")
            for run_id in ("earlier", "next"):
                settings = stub_settings(stub.url, out, run_id=run_id, rounds=args.max_rounds, loop=loop, **plan)
                if run_id == "next":
                    estimate = dry_run(settings, embedder=embedder)
                run_dir, _ = start_run(settings, lambda kind, data: None, embedder=embedder)
            totals = trace_totals(run_dir)["tokens"].values()
            calls = sum(t["calls"] for t in totals)
            tokens = sum(t["input"] + t["output"] for t in totals)
            assert estimate.input_tokens is not None and estimate.output_tokens is not None
            typical_tokens = estimate.input_tokens.typical + estimate.output_tokens.typical
            print(f"| {trial} | {estimate.calls.least:.0f} / {calls} / {estimate.calls.most:.0f} | "
                  f"{estimate.calls.typical / calls:.2f} | {typical_tokens / tokens:.2f} |", flush=True)


if __name__ == "__main__":
    main()
