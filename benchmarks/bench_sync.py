"""MongoDB benchmark: live sync per job (sem vs sacred's MongoObserver, both live), and ``sem sync``
of 1,000 and 10,000 runs plus the no-op re-sync, on a SecantusDB server this script starts.

    python benchmarks/bench_sync.py [--quick] [--repeat 3] [--live-rows 50] [--runs 1000 10000]

Live means the run's final document is in the database when the job returns; both sides here
are live:

- sem: ``python m.py -m`` over --live-rows rows of a model logging 3 metrics x 1,000 points and
  a 16 KiB artifact, with SEM_MONGO_URL set (sem's defaults otherwise) vs without; after each
  sweep with the database the script checks every run's document there is final;
- sacred: a loop of ``ex.run`` doing the same work with a FileStorageObserver, plus a
  MongoObserver vs without it.
Per job, the added time is (with - without) / rows for each side.

``sem sync``: run as a user does (``sem sync EXPERIMENT`` with SEM_MONGO_URL, a fresh process)
into an empty database over stores of --runs runs cloned from a real sem sweep (a 100-step
training curve, 4 test metrics, a 16 KiB artifact each); then again with nothing changed (no-op:
what the store remembers of its last sync, checked against the database's run count); then
``sem sync --verify`` (every run's state asked of the database, the check without the memory).
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import benchlib as bl

sys.path.insert(0, str(bl.REPO))

from tests.mongo_fixtures import SecantusServer  # noqa: E402

POINTS = 1000
ARTIFACT_BYTES = 16 * 1024

SEM_MODEL = f"""
import os
from pathlib import Path
from sem_core import Experiment

ex = Experiment(__file__)


@ex.configs
def get_config():
    return [{{"lr": 0.1, "fold": i}} for i in range(int(os.environ["SEM_BENCH_ROWS"]))]


@ex.automain
def main(config):
    for name in ("loss", "accuracy", "lr"):
        for step in range({POINTS}):
            ex.log_scalar(name, 1.0 / (step + 1) + config["fold"], step)
    path = Path(config["global_id"] + ".bin")
    path.write_bytes(os.urandom({ARTIFACT_BYTES}))
    ex.add_artifact(path, name="model.bin")
    path.unlink()
    return 0.5
"""

SACRED_LOOP = f"""
import os, sys
from sacred import Experiment
from sacred.observers import FileStorageObserver, MongoObserver

ex = Experiment("bench", save_git_info=False)
ex.observers.append(FileStorageObserver(sys.argv[1]))
if len(sys.argv) > 3:
    ex.observers.append(MongoObserver(url=sys.argv[3], db_name=sys.argv[4]))


@ex.config
def cfg():
    fold = 0


@ex.main
def main(_run, fold):
    for name in ("loss", "accuracy", "lr"):
        for step in range({POINTS}):
            _run.log_scalar(name, 1.0 / (step + 1) + fold, step)
    path = f"artifact-{{fold}}.bin"
    with open(path, "wb") as fh:
        fh.write(os.urandom({ARTIFACT_BYTES}))
    _run.add_artifact(path, name="model.bin")
    os.unlink(path)
    return 0.5


for i in range(int(sys.argv[2])):
    ex.run(config_updates={{"fold": i}}, options={{"--loglevel": "ERROR"}})
"""


def final_in_database(url: str, rows: int, final: tuple[str, ...] = ("COMPLETED",)) -> None:
    import pymongo

    client = pymongo.MongoClient(url)
    try:
        docs = list(client.get_default_database().runs.find({}, {"status": 1}))
    finally:
        client.close()
    statuses = sorted({d.get("status") for d in docs})
    if len(docs) != rows or not set(statuses) <= set(final):
        raise RuntimeError(f"{url}: {len(docs)} run documents with statuses {statuses}, expected {rows} in {final}")


def main() -> int:
    parser = bl.arg_parser(__doc__)
    parser.add_argument("--live-rows", type=int, default=None, help="default 50, --quick 2")
    parser.add_argument("--runs", type=int, nargs="+", default=None, help="default 1000 10000, --quick 20")
    args = parser.parse_args()
    rows = args.live_rows or (2 if args.quick else 50)
    sizes = sorted(args.runs or ([20] if args.quick else [1000, 10_000]))
    repeat = bl.repeats(args)
    env = bl.environment()
    root = Path(tempfile.mkdtemp(prefix="sem-bench-sync-"))
    home = root / "home"  # no user settings (~/.config/sem) change what sem does
    home.mkdir()
    server = SecantusServer(root / "db")
    server.start()
    counter = [0]
    server_cpu: dict[str, list[float]] = {}  # contender -> CPU seconds the database server spent on it

    def server_cpu_s() -> float:
        """User + system CPU of the SecantusDB server process so far (Linux /proc)."""
        assert server.proc is not None
        fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fresh_url() -> str:
        counter[0] += 1
        return server.url(f"bench{counter[0]}")

    try:
        (root / "sacred_loop.py").write_text(SACRED_LOOP)
        base_env = {"HOME": str(home), "SEM_BENCH_ROWS": str(rows)}

        def sem_live(with_db: bool, n: int = rows, key: str = "") -> bl.Sample:
            env_ = dict(base_env, SEM_BENCH_ROWS=str(n))
            url = fresh_url() if with_db else None
            if url:
                env_["SEM_MONGO_URL"] = url
            counter[0] += 1
            models = root / f"live{counter[0]}" / "exp" / "models"  # each sweep its own store, as the sacred side
            models.mkdir(parents=True)
            (models / "m_bench.py").write_text(SEM_MODEL)
            before = server_cpu_s()
            sample = bl.run([sys.executable, "m_bench.py", "-m"], models, env_)
            if url:
                server_cpu.setdefault(key, []).append(server_cpu_s() - before)
                final_in_database(url, n)
            return sample

        def sacred_live(with_db: bool, n: int = rows, key: str = "") -> bl.Sample:
            counter[0] += 1
            cmd = [sys.executable, "sacred_loop.py", str(root / f"sacred{counter[0]}"), str(n)]
            if with_db:
                cmd += [server.url(""), f"sacred{counter[0]}"]
            before = server_cpu_s()
            sample = bl.run(cmd, root, {"HOME": str(home)})
            if with_db:
                server_cpu.setdefault(key, []).append(server_cpu_s() - before)
            return sample

        contenders = {
            "sem_db": lambda: sem_live(True, key="sem_db"),
            "sem_file": lambda: sem_live(False),
            "sacred_db": lambda: sacred_live(True, key="sacred_db"),
            "sacred_file": lambda: sacred_live(False),
        }
        if not args.quick:  # one-row sweeps take the fixed costs (imports, connecting) out of the per-job figure
            contenders.update(
                {
                    "sem_db_1": lambda: sem_live(True, 1, key="sem_db_1"),
                    "sem_file_1": lambda: sem_live(False, 1),
                    "sacred_db_1": lambda: sacred_live(True, 1, key="sacred_db_1"),
                    "sacred_file_1": lambda: sacred_live(False, 1),
                }
            )
        samples = bl.round_robin(contenders, repeat)
        live = {k: [x.wall_s for x in v] for k, v in samples.items()}
        live_cpu = {k: [x.user_s + x.sys_s for x in v] for k, v in samples.items()}

        # sem sync over stores cloned from a real sweep
        _, templates = bl.real_runs(root, artifact_bytes=ARTIFACT_BYTES)
        exp = root / "sync" / "exp"
        store = exp / "models" / "runs"
        (exp / "models").mkdir(parents=True)
        shutil.copy(templates[0].parent.parent / "m_bench.py", exp / "models" / "m_bench.py")
        sync: dict[int, dict[str, list[float]]] = {}
        # CPU of the command and of the database server: (client, server) seconds per sample
        sync_cpu: dict[int, dict[str, list[tuple[float, float]]]] = {}
        have = 0
        for n in sizes:
            bl.clone_runs(templates, store, n - have, gid_prefix=f"20260102T{n:06d}")
            have = n
            sync[n] = {"full": [], "noop": [], "verify": []}
            sync_cpu[n] = {"noop": [], "verify": []}
            for _ in range(repeat if n < 5000 else 1):  # 10,000 runs take minutes: once
                url = fresh_url()
                env_ = {"HOME": str(home), "SEM_MONGO_URL": url}
                sync[n]["full"].append(
                    bl.run([sys.executable, "-m", "sem_core.cli", "sync", "-q", str(exp)], exp, env_).wall_s
                )
                for kind, flags in (("noop", []), ("verify", ["--verify"])):
                    before = server_cpu_s()
                    sample = bl.run([sys.executable, "-m", "sem_core.cli", "sync", "-q", *flags, str(exp)], exp, env_)
                    sync[n][kind].append(sample.wall_s)
                    sync_cpu[n][kind].append((sample.user_s + sample.sys_s, server_cpu_s() - before))
                final_in_database(url, n, ("COMPLETED", "FAILED"))  # the clones are 2% FAILED
        record_bytes = bl.folder_bytes(next(d for d in store.iterdir() if (d / "run.json").exists()))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    work = f"3 metrics x {POINTS:,} points and a 16 KiB artifact per run"
    m = {
        "sem_live_db": bl.measurement(
            f"sem, `python m.py -m`, {rows} rows, live MongoDB sync",
            live["sem_db"],
            f"the sweep with its file observer and the live Mongo observer; {work}",
        ),
        "sem_live_file": bl.measurement(
            f"sem, the same {rows} rows, no database", live["sem_file"], f"the sweep with its file observer; {work}"
        ),
        "sacred_live_db": bl.measurement(
            f"sacred loop, {rows} runs, FileStorageObserver + MongoObserver",
            live["sacred_db"],
            f"`ex.run` per row; {work}",
        ),
        "sacred_live_file": bl.measurement(
            f"sacred loop, {rows} runs, FileStorageObserver only", live["sacred_file"], f"`ex.run` per row; {work}"
        ),
    }
    for key, label in (
        ()
        if args.quick
        else (
            ("sem_db_1", "sem, 1 row, live MongoDB sync"),
            ("sem_file_1", "sem, 1 row, no database"),
            ("sacred_db_1", "sacred, 1 run, FileStorageObserver + MongoObserver"),
            ("sacred_file_1", "sacred, 1 run, FileStorageObserver only"),
        )
    ):
        m[key] = bl.measurement(label, live[key], f"as above with one row; {work}")
    for key in live_cpu:
        m[f"cpu_{key}"] = bl.measurement(
            f"{m[key]['label'] if key in m else key}: CPU time",
            live_cpu[key],
            "user + system CPU of the command (the job side; the database server's CPU is not included)",
        )
    for key, who in (("sem_db", f"sem, {rows} rows"), ("sacred_db", f"sacred loop, {rows} runs")):
        m[f"server_cpu_{key}"] = bl.measurement(
            f"{who}, live MongoDB: CPU time of the database server",
            server_cpu[key],
            "user + system CPU of the SecantusDB process during the command (sem: with its sweep-end sync)",
        )
    for n in sizes:
        m[f"sync_{n}"] = bl.measurement(
            f"`sem sync` of {n:,} runs into an empty database",
            sync[n]["full"],
            "the whole command: start-up, reading every record, uploading runs, metrics, sources and artifacts",
        )
        m[f"noop_{n}"] = bl.measurement(
            f"`sem sync` again, nothing changed, {n:,} runs",
            sync[n]["noop"],
            "the whole command: start-up, a stat per file, the store's sync-state file, the database's run count",
        )
        for kind, what in (("noop", "`sem sync` again"), ("verify", "`sem sync --verify`")):
            m[f"cpu_{kind}_{n}"] = bl.measurement(
                f"{what}, nothing changed, {n:,} runs: CPU time of the command",
                [c for c, _ in sync_cpu[n][kind]],
                "user + system CPU of the command",
            )
            m[f"server_cpu_{kind}_{n}"] = bl.measurement(
                f"{what}, nothing changed, {n:,} runs: CPU time of the database server",
                [s for _, s in sync_cpu[n][kind]],
                "user + system CPU of the SecantusDB process during the command",
            )
        m[f"verify_{n}"] = bl.measurement(
            f"`sem sync --verify`, nothing changed, {n:,} runs",
            sync[n]["verify"],
            "the whole command: start-up, a stat per file, every run's fingerprint read back in one range query",
        )
    d = {
        "sem_live_per_job": bl.derived(
            "sem: live sync adds per job",
            (bl.median(m["sem_live_db"]) - bl.median(m["sem_live_file"])) / rows * 1000,
            "ms",
            f"(with - without) / {rows}",
        ),
        "sacred_live_per_run": bl.derived(
            "sacred: MongoObserver adds per run",
            (bl.median(m["sacred_live_db"]) - bl.median(m["sacred_live_file"])) / rows * 1000,
            "ms",
            f"(with - without) / {rows}",
        ),
        "sem_live_cpu_per_job": bl.derived(
            "sem: live sync adds per job, CPU time of the job side",
            (bl.median(m["cpu_sem_db"]) - bl.median(m["cpu_sem_file"])) / rows * 1000,
            "ms",
            f"(median CPU with - without) / {rows}",
        ),
        "sacred_live_cpu_per_run": bl.derived(
            "sacred: MongoObserver adds per run, CPU time of the job side",
            (bl.median(m["cpu_sacred_db"]) - bl.median(m["cpu_sacred_file"])) / rows * 1000,
            "ms",
            f"(median CPU with - without) / {rows}",
        ),
        "sem_server_cpu_per_job": bl.derived(
            "sem: database server CPU per job",
            bl.median(m["server_cpu_sem_db"]) / rows * 1000,
            "ms",
            f"median server CPU / {rows}",
        ),
        "sacred_server_cpu_per_run": bl.derived(
            "sacred: database server CPU per run",
            bl.median(m["server_cpu_sacred_db"]) / rows * 1000,
            "ms",
            f"median server CPU / {rows}",
        ),
        "record_bytes": bl.derived(
            "size of a synced run folder",
            record_bytes,
            "bytes",
            "config.json, run.json, metrics.json, cout.txt, info.json, model.bin",
        ),
    }
    for n in sizes:
        d[f"sync_rate_{n}"] = bl.derived(
            f"`sem sync`, {n:,} runs", n / bl.median(m[f"sync_{n}"]), "runs/s", "runs / median seconds"
        )
    if not args.quick:
        # Per job, the sweep's fixed costs taken out (start-up, importing pymongo, connecting,
        # creating indexes, the sweep-end sync of the store): ((with, N rows - with, 1 row) -
        # (without, N - without, 1)) / (N - 1). Paired: the four sweeps of one round-robin round
        # ran side by side (the same load on the machine), one figure per round, the median of
        # the rounds reported (not a difference of four medians taken from different rounds).
        def marginal(side: str, samples: dict[str, list[float]]) -> list[float]:
            rounds = zip(
                samples[f"{side}_db"], samples[f"{side}_db_1"], samples[f"{side}_file"], samples[f"{side}_file_1"]
            )
            return [((db - db1) - (f - f1)) / (rows - 1) * 1000 for db, db1, f, f1 in rounds]

        how = f"median over rounds of ((with, {rows} - with, 1) - (without, {rows} - without, 1)) / {rows - 1}"
        server_how = f"median over rounds of (database CPU with {rows} rows - with 1 row) / {rows - 1}"
        server_marginal = {
            side: [(a - b) / (rows - 1) * 1000 for a, b in zip(server_cpu[f"{side}_db"], server_cpu[f"{side}_db_1"])]
            for side in ("sem", "sacred")
        }
        for side, who, per in (("sem", "sem: live sync adds", "job"), ("sacred", "sacred: MongoObserver adds", "run")):
            wall_ms, cpu_ms = marginal(side, live), marginal(side, live_cpu)
            work_ms = [c + s for c, s in zip(cpu_ms, server_marginal[side])]
            d.update(
                {
                    f"{side}_live_per_{per}_marginal": bl.derived(
                        f"{who} per {per}, connection and start-up taken out", statistics.median(wall_ms), "ms", how
                    ),
                    f"{side}_live_cpu_per_{per}_marginal": bl.derived(
                        f"{who} per {per}, CPU time of the job side, connection and start-up taken out",
                        statistics.median(cpu_ms),
                        "ms",
                        how.replace("with", "CPU with"),
                    ),
                    f"{side}_server_cpu_per_{per}_marginal": bl.derived(
                        f"{who} per {per}: CPU time of the database server, connection and start-up taken out",
                        statistics.median(server_marginal[side]),
                        "ms",
                        server_how,
                    ),
                    f"{side}_live_work_per_{per}_marginal": bl.derived(
                        f"{who} per {per}: CPU time of the job side and of the database server together",
                        statistics.median(work_ms),
                        "ms",
                        "median over rounds of the two figures above, added (the work a core does, overlapped or not)",
                    ),
                }
            )
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        d["sync_rate_marginal"] = bl.derived(
            f"`sem sync`, runs/s from {lo:,} to {hi:,} runs",
            (hi - lo) / (bl.median(m[f"sync_{hi}"]) - bl.median(m[f"sync_{lo}"])),
            "runs/s",
            f"({hi} - {lo}) / (median at {hi} - median at {lo}): start-up taken out",
        )
    bl.write_result(
        args,
        "sync",
        "bench_sync.py",
        title="MongoDB: live sync and sem sync",
        description=(
            "SecantusDB (a pure-Python MongoDB wire-protocol server, the tests' database) on this "
            "machine; a real mongod is faster for both sides. Live: the final document is in the "
            "database when the job returns, on both sides."
        ),
        params={"live_rows": rows, "runs": sizes, "points_per_metric": POINTS, "artifact_bytes": ARTIFACT_BYTES},
        measurements=m,
        derived_=d,
        env=env,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
