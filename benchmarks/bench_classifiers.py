"""Wall time of every estimator and fusion mode on TAU-sized features.

Data: random-but-structured segments (``classifiers.synthetic``: audio and video confuse
different class pairs, locations and clips add offsets), 512-d audio + 512-d video, 10 classes,
431 locations; ~86,000 training and ~36,000 test segments split by location (``--small``: a
tenth). Each experiment does what ``avscene train`` does: hold out 10% of the training locations,
fit with them as validation data, fit a temperature; then predicts the test segments.

Goals: every single experiment (fit + predict) <= 30 s, and the full set (LR, MLP, LightGBM on
concatenated features plus the fusion modes) <= 60 s, on 2 cores. Wall times are reported with
their ratio to a reference timed in the same run (one pass ``X.T @ (X @ W)`` over the 86,000 x 1024
training matrix, the cost of one gradient of a linear model), and with the process's CPU time,
which other jobs on the same cores inflate much less than wall time (with ``--threads 1`` it
approximates the wall time on an idle core). Figures are noisy when other jobs share the cores.

Usage: ``python -m benchmarks classifiers`` (defaults), or with options
``python -m benchmarks.bench_classifiers [--small] [--threads N] [--only NAME ...]``.
"""

import argparse
import os
import platform
import time

import numpy as np

from benchmarks.records import write_record

#: (name, features, model, fusion, part of the "full set")
EXPERIMENTS = (
    ("lr audio", ("audio",), "lr", "none", False),
    ("lr video", ("video",), "lr", "none", False),
    ("lr early", ("audio", "video"), "lr", "early", True),
    ("mlp early", ("audio", "video"), "mlp", "early", True),
    ("lgbm early", ("audio", "video"), "lgbm", "early", True),
    ("baseline audio", ("audio",), "baseline", "none", False),
    ("late lr", ("audio", "video"), "lr", "late", True),
    ("weighted lr+lgbm", ("audio", "video"), {"audio": "lr", "video": "lgbm"}, "weighted", True),
    ("stack lr", ("audio", "video"), "lr", "stack", True),
    ("proposed", ("audio", "video"), "baseline", "proposed", True),
)
SINGLE_GOAL_S, FULL_SET_GOAL_S = 30.0, 60.0


def make_data(small, seed=0):
    """Return (X, y, groups, clip_ids, train_rows, test_rows) with audio then video columns."""
    from classifiers import splits
    from classifiers.synthetic import make_av_features

    n_clips = 1220 if small else 12200
    data = make_av_features(
        n_clips=n_clips,
        segments_per_clip=10,
        dim_audio=512,
        dim_video=512,
        n_classes=10,
        locations_per_class=43,
        n_cities=10,
        random_state=seed,
    )
    X = np.concatenate([data["audio"], data["video"]], axis=1)
    del data["audio"], data["video"]
    train, test = splits.location_split(
        data["y"], data["location"], val_fraction=0.295, random_state=seed
    )
    return X, data["y"], data["location"], data["clip_id"], train, test


def reference_seconds(X, repeats=5):
    """Median time of one ``X.T @ (X @ W)`` pass (W: dim x 10), float32."""
    W = np.random.default_rng(0).standard_normal((X.shape[1], 10), dtype=np.float32)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _ = (X @ W).T @ X
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def sklearn_lr_seconds(X, y, iterations=10):
    """Seconds of a plain ``sklearn.linear_model.LogisticRegression`` fit of fixed iterations
    (a second reference: the library's own cost for the commonest model)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        LogisticRegression(max_iter=iterations, tol=0.0).fit(X, y)
    return time.perf_counter() - start


def warm_up():
    """Import torch and LightGBM and take one Adam step (torch's first optimiser imports its
    compiler stack: seconds that a process pays once), so that no experiment is charged for it."""
    start = time.perf_counter()
    import lightgbm  # noqa: F401

    try:
        import torch
    except ImportError:
        return time.perf_counter() - start
    layer = torch.nn.Linear(4, 2)
    optimiser = torch.optim.Adam(layer.parameters())
    layer(torch.zeros(3, 4)).sum().backward()
    optimiser.step()
    return time.perf_counter() - start


def run_experiment(spec, X, y, groups, clip_ids, train, test, *, threads, seed=0):
    """Fit like ``avscene train`` (10% of locations for validation + temperature), then predict."""
    from classifiers import metrics, splits, systems
    from classifiers.calibration import TemperatureScaledClassifier

    name, features, model, fusion, _ = spec
    columns = {"audio": slice(0, 512), "video": slice(512, 1024)}
    dims = dict.fromkeys(features, 512)
    models = model if isinstance(model, dict) else dict.fromkeys(features, model)
    use = np.concatenate([np.arange(1024)[columns[f]] for f in features])
    estimator = TemperatureScaledClassifier(
        systems.make_system(
            dims, models, fusion, preset="default", random_state=seed, n_jobs=threads
        ),
        random_state=seed,
    )
    fit_rows, val_rows = splits.location_split(
        y[train], groups[train], val_fraction=0.1, random_state=seed
    )
    fit_rows, val_rows = train[fit_rows], train[val_rows]
    X_use = X if len(features) == 2 else X[:, use]
    start, cpu_start = time.perf_counter(), time.process_time()
    estimator.fit(
        X_use[fit_rows],
        y[fit_rows],
        groups=groups[fit_rows],
        eval_set=(X_use[val_rows], y[val_rows]),
    )
    fitted = time.perf_counter()
    proba = estimator.predict_proba(X_use[test])
    predicted, cpu_end = time.perf_counter(), time.process_time()
    report = metrics.evaluate(
        y[test], proba, classes=estimator.classes_, clip_ids=clip_ids[test], n_bootstrap=0
    )
    return {
        "name": name,
        "fit_s": fitted - start,
        "predict_s": predicted - fitted,
        "total_s": predicted - start,
        "cpu_s": cpu_end - cpu_start,
        "log_loss": report["segment"]["log_loss"],
        "accuracy": report["segment"]["accuracy"],
        "clip_accuracy": report["clip"]["accuracy"],
        "temperature": estimator.temperature_,
    }


_WORKER_DATA = None


def _init_worker(small):
    """Per-process set-up of the parallel run: one thread, the data, the imports (not timed)."""
    global _WORKER_DATA
    from threadpoolctl import threadpool_limits

    _init_worker.limits = threadpool_limits(1)  # kept alive for the process
    _WORKER_DATA = make_data(small)
    warm_up()


def _timed_experiment(spec):
    """One experiment in a worker process; adds wall-clock start and end (time.time())."""
    begin = time.time()
    result = run_experiment(spec, *_WORKER_DATA, threads=1)
    return {**result, "started": begin, "ended": time.time()}


def run_full_set_in_parallel(specs, *, processes, small):
    """The full set on ``processes`` single-thread processes, longest experiments first.

    Returns the wall time from the first experiment's start to the last one's end (each worker
    loads the data and imports before it takes work, which is not counted), and the results.
    """
    import multiprocessing

    order = {"proposed": 0, "stack lr": 1, "weighted lr+lgbm": 2, "late lr": 3}
    specs = sorted(specs, key=lambda spec: order.get(spec[0], len(order)))
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_init_worker, initargs=(small,)) as pool:
        results = list(pool.imap_unordered(_timed_experiment, specs, chunksize=1))
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return wall, results


def table(results, reference):
    lines = [
        "| experiment | fit s | predict s | total s | x reference | <= 30 s | CPU s "
        "| test log loss | accuracy | clip accuracy |",
        "| --- | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['fit_s']:.1f} | {r['predict_s']:.2f} | {r['total_s']:.1f} | "
            f"{r['total_s'] / reference:.0f} | {'yes' if r['total_s'] <= SINGLE_GOAL_S else 'NO'} | "
            f"{r['cpu_s']:.1f} | "
            f"{r['log_loss']:.3f} | {100 * r['accuracy']:.1f}% | {100 * r['clip_accuracy']:.1f}% |"
        )
    return "\n".join(lines)


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks classifiers")
    parser.add_argument("--small", action="store_true", help="a tenth of the TAU size")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for BLAS, torch and LightGBM (default: libraries' own)",
    )
    parser.add_argument("--only", nargs="*", default=None, help="experiment names to run")
    parser.add_argument("--no-sklearn", action="store_true", help="skip the sklearn LR comparison")
    parser.add_argument(
        "--parallel",
        type=int,
        default=2,
        help="also time the full set on this many single-thread processes (0 or 1: skip)",
    )
    parser.add_argument("--out", default="bench-output/classifiers.json")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    load_before = os.getloadavg()
    with threadpool_limits(args.threads):
        start = time.perf_counter()
        X, y, groups, clip_ids, train, test = make_data(args.small)
        generated = time.perf_counter() - start
        reference = reference_seconds(X[train])
        warm = warm_up()
        print(
            f"data: {len(train)} train / {len(test)} test segments x {X.shape[1]} "
            f"(generated in {generated:.1f} s); reference pass X.T @ (X @ W): "
            f"{reference * 1000:.0f} ms; "
            f"threads {args.threads or 'library default'}; load average {load_before[0]:.1f}; "
            f"imports + first Adam step (paid once per process, not charged): {warm:.1f} s",
            flush=True,
        )
        sklearn_s = None
        if not args.no_sklearn:
            sklearn_s = sklearn_lr_seconds(X[train][:, :512], y[train])
            print(
                f"sklearn LogisticRegression, 10 lbfgs iterations on the audio columns (512-d): "
                f"{sklearn_s:.1f} s",
                flush=True,
            )
        results = []
        for spec in EXPERIMENTS:
            if args.only and spec[0] not in args.only:
                continue
            result = run_experiment(
                spec, X, y, groups, clip_ids, train, test, threads=args.threads
            )
            result["full_set"] = spec[4]
            results.append(result)
            print(f"  {result['name']}: {result['total_s']:.1f} s", flush=True)
    full_set = sum(r["total_s"] for r in results if r["full_set"])
    parallel = None
    full_specs = [
        spec for spec in EXPERIMENTS if spec[4] and (not args.only or spec[0] in args.only)
    ]
    if args.parallel > 1 and full_specs:
        wall, parallel_results = run_full_set_in_parallel(
            full_specs, processes=args.parallel, small=args.small
        )
        parallel = {
            "processes": args.parallel,
            "wall_s": wall,
            "results": [
                {k: r[k] for k in ("name", "total_s", "cpu_s", "log_loss")}
                for r in parallel_results
            ],
        }
    print()
    print(table(results, reference))
    print()
    print(
        f"full set ({', '.join(r['name'] for r in results if r['full_set'])}): {full_set:.1f} s "
        f"(goal <= {FULL_SET_GOAL_S:.0f} s: {'met' if full_set <= FULL_SET_GOAL_S else 'MISSED'}); "
        f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} "
        "(other jobs share the cores: figures are noisy)"
    )
    if parallel:
        print(
            f"full set on {parallel['processes']} single-thread processes at once: "
            f"{parallel['wall_s']:.1f} s wall (goal <= {FULL_SET_GOAL_S:.0f} s: "
            f"{'met' if parallel['wall_s'] <= FULL_SET_GOAL_S else 'MISSED'})"
        )
    document = {
        "benchmark": "classifiers",
        "small": args.small,
        "threads": args.threads,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "dim": int(X.shape[1]),
        "reference_s": reference,
        "sklearn_lr_10_iterations_s": sklearn_s,
        "warm_up_s": warm,
        "results": results,
        "full_set_s": full_set,
        "full_set_parallel": parallel,
        "goals": {"single_s": SINGLE_GOAL_S, "full_set_s": FULL_SET_GOAL_S},
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    write_record(args.out, document)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
