"""Bad settings and bad rows stop the sweep before any job: exit code 1, one line on stderr
naming the file or the row (order_id) and the key, no run folder and no multirun folder."""

from __future__ import annotations

import pytest

from tests.conftest import run_model

MODEL = """
from sem_core import Experiment
ex = Experiment(__file__)

def nest(levels):
    value = 1
    for _ in range(levels):
        value = {"k": value}
    return value

@ex.configs
def get_config():
    return [{"x": 1, "fold": 0}, ROW]

@ex.automain
def main(config):
    return 1
"""

GOOD_ROW = '{"x": 2, "fold": 1}'

# (id, the second row, experiment_config.yaml bytes, command-line arguments, what the line must say)
CASES = [
    (
        "storage-list",
        GOOD_ROW,
        b"sem:\n  storage: [1, 2]\n",
        [],
        ["experiment_config.yaml: section 'sem' key 'storage': [1, 2] is not a folder path"],
    ),
    (
        "heartbeat-inf-in-file",
        GOOD_ROW,
        b"sem:\n  heartbeat_interval: .inf\n",
        [],
        ["experiment_config.yaml: section 'sem' key 'heartbeat_interval': inf must be a number of seconds"],
    ),
    ("not-utf8", GOOD_ROW, b"sem:\n  storage: caf\xe9\n", [], ["experiment_config.yaml:2: not UTF-8 text (byte 0xe9"]),
    (
        "duplicate-section",
        GOOD_ROW,
        b"sem:\n  storage: a\ndvc: {}\nsem:\n  storage: b\n",
        [],
        ["experiment_config.yaml:4:1: invalid YAML: key 'sem' is given twice (first on line 1)"],
    ),
    (
        "duplicate-nested-key",
        GOOD_ROW,
        b"sem:\n  storage: a\n  storage: b\n",
        [],
        ["experiment_config.yaml:3:3: invalid YAML: key 'storage' is given twice (first on line 2)"],
    ),
    (
        "n_jobs",
        GOOD_ROW,
        None,
        ["hydra/launcher=local", "hydra.launcher.n_jobs=-1"],
        ["hydra.launcher.n_jobs=-1: must be a whole number at least 1"],
    ),
    (
        "max_batch_size",
        GOOD_ROW,
        None,
        ["hydra.sweeper.max_batch_size=-1"],
        ["hydra.sweeper.max_batch_size=-1: must be a whole number of jobs at least 1"],
    ),
    (
        "heartbeat-inf",
        GOOD_ROW,
        None,
        ["sem.heartbeat_interval=inf"],
        ["sem.heartbeat_interval=inf: must be a number of seconds above 0 and at most 86400"],
    ),
    (
        "heartbeat-nan",
        GOOD_ROW,
        None,
        ["sem.heartbeat_interval=nan"],
        ["sem.heartbeat_interval=nan: must be a number of seconds above 0"],
    ),
    (
        "deep-row",
        '{"x": 3, "deep": nest(150)}',
        None,
        [],
        ["m_test.py row order_id=1: key 'deep.k.k.k", "more than 32 levels deep"],
    ),
    (
        "row-in-itself",
        '(lambda r: (r.__setitem__("me", r), r)[1])({"x": 3})',
        None,
        [],
        ["m_test.py row order_id=1: key 'me.me.me", "levels deep"],
    ),
    (
        "lone-surrogate",
        '{"x": 3, "name": "caf\\udce9"}',
        None,
        [],
        ["m_test.py row order_id=1: key 'name' has a string", "lone surrogate"],
    ),
    (
        "surrogate-key",
        '{"x": 3, "caf\\udce9": 1}',
        None,
        [],
        ["m_test.py row order_id=1: key 'caf\\udce9' holds", "lone surrogate"],
    ),
    (
        "json-collision",
        '{"x": 3, "opt": {1: "a", "1": "b"}}',
        None,
        [],
        ["m_test.py row order_id=1: keys 1 and '1' under 'opt' are both written as '1' in config.json"],
    ),
    (
        "reserved-key",
        '{"x": 3, "order_id": 7}',
        None,
        [],
        ["m_test.py row order_id=1: key 'order_id' is set by sem for every run; rename it in the rows"],
    ),
    (
        "tuple-key",
        '{"x": 3, (1, 2): "a"}',
        None,
        [],
        ["m_test.py row order_id=1: key (1, 2) at the top level is a tuple"],
    ),
    (
        "unspellable-key",
        '{"x": 3, "it\'s \\"x\\"": 1}',
        None,
        [],
        ["m_test.py row order_id=1: key", "holds both quote characters, so no command line can select it"],
    ),
    (
        "control-character-key",
        '{"x": 3, "a\\nb": 1}',
        None,
        [],
        ["m_test.py row order_id=1: key 'a\\nb' holds a control character"],
    ),
    (
        "surrogate-on-command-line",
        GOOD_ROW,
        None,
        ["++name='caf\udce9'"],
        ["++name='caf\\udce9': key 'name' has a string", "lone surrogate"],
    ),
    (
        "unparsable-override",
        GOOD_ROW,
        None,
        ["++name=café"],
        ["cannot parse override '++name=café'", "goes in quotes: key='a b'"],
    ),
    (
        "dotted-key-unquoted",
        '{"x": 3, "a.b": 1}',
        None,
        ["a.b=1"],
        ["a.b=1: 'a.b' is not a key of any row of m_test.py", "the row key 'a.b' is typed in quotes: \"a.b\"=..."],
    ),
]


@pytest.mark.parametrize("row, experiment_config, args, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_stops_the_sweep_before_any_job(write_model, row, experiment_config, args, expected):
    model = write_model(MODEL.replace("ROW", row))
    if experiment_config is not None:
        (model.parent.parent / "experiment_config.yaml").write_bytes(experiment_config)
    proc = run_model(model, *args, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("m_test.py: error: "), proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    assert not (model.parent / "runs").exists()
    assert not (model.parent / "multirun").exists()


QUOTED = """
from sem_core import Experiment
ex = Experiment(__file__)

@ex.configs
def get_config():
    return [{"a.b": i, "learning rate": 0.1 * i, "é": "x", "opt": {"β 1": i}} for i in range(3)]

@ex.automain
def main(config):
    return config["learning rate"]
"""


def test_keys_with_dots_spaces_and_other_characters_are_selected_and_set_in_quotes(write_model):
    from tests.conftest import load_store

    model = write_model(QUOTED)
    proc = run_model(model, '"a.b"=1,2', "'opt'.\"β 1\"=2", '++"learning rate"=5', "~'é'", timeout=120)
    assert proc.returncode == 0, proc.stderr
    (run,) = load_store(model.parent / "runs")
    config = run["config"]
    assert (config["a.b"], config["learning rate"], config["opt"], "é" in config) == (2, 5, {"β 1": 2}, False)
